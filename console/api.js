// The public JSON API, called with the key kept in this tab's sessionStorage (never a cookie).

const KEY_STORAGE = "feature-store-console.api-key";
export const SERVICE_URL = new URL("..", document.baseURI).href.replace(/\/$/, "");
const API_URL = `${SERVICE_URL}/api/v1/`;

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function keepKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** An answer the page cannot use, said the way a person needs it: 401 and 403 are never "not found". */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
  }
}

function describe(status, body) {
  const detail = typeof body?.detail === "string" ? ` ${body.detail}` : "";
  const request = body?.request_id ? ` (request ${body.request_id})` : "";
  if (status === 0) return "The service did not answer.";
  if (status === 401) return `Not authenticated (401): the API key is missing or not valid.${request}`;
  if (status === 403) return `Forbidden (403): this API key may not do this.${detail}${request}`;
  if (status === 429) return `Too many requests (429): wait a moment and try again.${request}`;
  return `Error ${status}${body?.error ? ` ${body.error}` : ""}:${detail || " no detail"}${request}`;
}

/** `{status, headers, body}`; throws ApiError unless the status is 2xx, 304 or one of `accept`. */
export async function call(path, { method = "GET", body, headers = {}, key = storedKey(), accept = [] } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (key) sent["X-API-Key"] = key;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API_URL + path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, null);
  }
  const text = response.status === 304 ? "" : await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok && response.status !== 304 && !accept.includes(response.status)) {
    throw new ApiError(response.status, parsed);
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** What the key (or no key) may do here, as the service says it (`GET /api/v1/access`). */
export async function fetchAccess() {
  const key = storedKey();
  const answer = await call("access", { accept: [401, 403] });
  if (answer.status === 401) return { auth: true, key: Boolean(key), valid: false, read: false, write: false, admin: false };
  if (answer.status === 403) return { auth: true, key: true, valid: true, read: false, write: false, admin: false, grants: null };
  const grants = answer.body;
  const scopes = new Set(grants.scopes);
  return {
    auth: grants.auth_enabled,
    key: Boolean(key),
    valid: true,
    read: scopes.has("features:read"),
    write: scopes.has("features:write"),
    admin: scopes.has("admin"),
    grants,
  };
}
