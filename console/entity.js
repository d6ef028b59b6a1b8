// The entity page: every category the registry knows for the entity type (without a registry file, every
// category stored for the entity), in its state, with its features and metadata, and the same read as curl
// and Python.

import { ApiError, SERVICE_URL, call } from "./api.js";
import { duration, el, renderValue, replace, setStatus } from "./dom.js";

const STATES = {
  fresh: "Served to reads.",
  stale: "Older than the registry's max_age_seconds: reads still serve it.",
  expired: "Past its TTL: reads answer it as unavailable. What is still stored is shown.",
  erased: "Deleted: a tombstone keeps older writes out; reads answer it as unavailable.",
  absent: "Nothing stored for this entity.",
};

export function entityParams() {
  const [, query = ""] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query);
  return { entityType: params.get("entity_type") || "", entityId: params.get("id") || "" };
}

export function entityHash(entityType, entityId) {
  return `#entity?${new URLSearchParams({ entity_type: entityType, id: entityId })}`;
}

/** Fill the entity type list from the registry; keep the one the URL names. */
export function showEntityTypes(registry, chosen) {
  const select = document.getElementById("entity-type");
  const types = registry?.entity_types ?? [];
  replace(select, types.map((name) => el("option", { value: name }, name)));
  if (chosen && types.includes(chosen)) select.value = chosen;
}

export async function lookUp(registry, withKey) {
  const { entityType, entityId } = entityParams();
  const status = document.getElementById("entity-status");
  const result = document.getElementById("entity-result");
  document.getElementById("entity-id").value = entityId;
  if (entityType) document.getElementById("entity-type").value = entityType;
  if (!entityId) {
    setStatus(status, "Type or paste an entity id, then press Enter.");
    replace(result);
    return;
  }
  setStatus(status, `Looking up ${entityType} ${entityId}…`);
  const path = `inspect/${encodeURIComponent(entityId)}?${new URLSearchParams({ entity_type: entityType })}`;
  let answer;
  const started = performance.now();
  try {
    answer = (await call(path)).body;
  } catch (error) {
    setStatus(status, error instanceof ApiError ? error.message : String(error), "error");
    replace(result);
    return;
  }
  const elapsed = Math.round(performance.now() - started);
  // What is stored comes first, in the order a debugging eye wants it; absent categories last.
  const order = Object.keys(STATES);
  const categories = Object.entries(answer.categories)
    .sort(([a, x], [b, y]) => (x.state === "absent") - (y.state === "absent") || order.indexOf(x.state) - order.indexOf(y.state) || a.localeCompare(b));
  const counts = {};
  for (const [, found] of categories) counts[found.state] = (counts[found.state] || 0) + 1;
  const summary = Object.keys(STATES).filter((state) => counts[state]).map((state) => `${counts[state]} ${state}`);
  const listed = answer.listed === "store" ? "stored (no registry file)" : "in the registry";
  const found = categories.length ? summary.join(", ") : "nothing is stored for this entity";
  setStatus(status, `${entityType} ${entityId}: ${categories.length} ${categories.length === 1 ? "category" : "categories"} ${listed}, ${found} (${elapsed} ms).`);
  replace(
    result,
    snippets(entityType, entityId, categories.map(([name]) => name), withKey),
    categories.map(([name, found]) => category(name, found, registry?.categories?.[name])),
  );
}

function category(name, found, declared) {
  const id = `category-${name}`;
  const section = el(
    "section",
    { class: `category state-${found.state}`, "aria-labelledby": id, "data-category": name, "data-state": found.state },
    el("h2", { id }, el("span", { class: "name" }, name), " ", el("span", { class: `badge ${found.state}` }, found.state)),
    el("p", { class: "why" }, explanation(found)),
  );
  if (found.metadata) section.append(metadata(found.metadata));
  if (found.data && Object.keys(found.data).length > 0) section.append(features(name, found.data, declared));
  return section;
}

function explanation(found) {
  const meta = found.metadata ?? {};
  if (found.state === "stale") return `${STATES.stale} Its bound is ${duration(found.max_age_seconds)}; it is ${duration(meta.age_seconds)} old.`;
  if (found.state === "erased") return `${STATES.erased} Deleted at ${meta.deleted_at}.`;
  if (found.state === "expired") return `${STATES.expired} Expired at ${meta.expires_at}.`;
  if (found.state === "fresh" && found.max_age_seconds) return `${STATES.fresh} Within its max age of ${duration(found.max_age_seconds)}.`;
  return STATES[found.state];
}

function metadata(meta) {
  const rows = [
    ["Source", meta.source],
    ["Compute id", meta.compute_id],
    ["Event time", meta.event_time],
    ["Written at", meta.updated_at],
    ["Age", meta.age_seconds === undefined ? undefined : duration(meta.age_seconds)],
    ["Expires at", meta.expires_at ?? "never"],
  ];
  return el("dl", { class: "meta" }, rows.map(([label, value]) => [el("dt", {}, label), el("dd", {}, value ?? "—")]));
}

function features(category, data, declared) {
  const rows = Object.entries(data).map(([feature, value]) => {
    const spec = declared?.features?.[feature];
    const type = spec ? `${spec.type}${spec.nullable ? " or null" : ""}` : "undeclared";
    return el("tr", { "data-feature": feature }, el("th", { scope: "row" }, feature), el("td", {}, renderValue(value)), el("td", { class: "type" }, type));
  });
  return el(
    "table",
    { class: "features values" },
    el("caption", {}, `Features of ${category}`),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Feature"), el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "Declared type"))),
    el("tbody", {}, rows),
  );
}

function shellQuote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** The read a model would make for this entity, to paste into a terminal or a notebook. */
export function readSnippets(entityType, entityId, categories, withKey) {
  const featureList = categories.map((name) => `${name}:*`);
  const body = { data: { entity_type: entityType, entity_value: entityId, feature_list: featureList } };
  const curl = [
    `curl -sS -X POST ${shellQuote(`${SERVICE_URL}/api/v1/get/items`)}`,
    "  -H 'Content-Type: application/json'",
    withKey ? '  -H "X-API-Key: $FEATURE_STORE_API_KEY"' : null,
    `  -d ${shellQuote(JSON.stringify(body))}`,
  ].filter(Boolean).join(" \\\n");
  const python = [
    withKey ? "import os\n" : null,
    "from feature_store_client import FeatureStoreClient\n",
    `with FeatureStoreClient(${JSON.stringify(SERVICE_URL)}${withKey ? ', api_key=os.environ["FEATURE_STORE_API_KEY"]' : ""}) as store:`,
    `    features = store.read_features(${JSON.stringify(entityId)}, ${JSON.stringify(featureList)}, ${JSON.stringify(entityType)})`,
  ].filter(Boolean).join("\n");
  return { curl, python };
}

function snippets(entityType, entityId, categories, withKey) {
  const { curl, python } = readSnippets(entityType, entityId, categories, withKey);
  const copied = el("span", { class: "copied", role: "status", "aria-live": "polite" });
  const copy = (text, what) => async () => {
    try {
      await navigator.clipboard.writeText(text);
      copied.textContent = `${what} copied.`;
    } catch {
      copied.textContent = `Copying is not allowed here: select the ${what} below.`;
    }
  };
  return el(
    "div",
    { class: "snippets" },
    el("button", { type: "button", id: "copy-curl", onclick: copy(curl, "curl command") }, "Copy as curl"),
    el("button", { type: "button", id: "copy-python", onclick: copy(python, "Python code") }, "Copy as Python"),
    copied,
    el(
      "details",
      {},
      el("summary", {}, "Show the read"),
      el("pre", { id: "snippet-curl" }, curl),
      el("pre", { id: "snippet-python" }, python),
    ),
  );
}
