// The console's entry: who may do what, the key form, and the page the URL's fragment names
// (#entity?entity_type=…&id=…, #registry, #pipeline), so every view can be linked and reloaded.

import { ApiError, fetchAccess, keepKey } from "./api.js";
import { el, replace } from "./dom.js";
import { entityHash, entityParams, lookUp, showEntityTypes } from "./entity.js";
import { showPipeline } from "./pipeline.js";
import { forgetRegistry, loadRegistry, render as renderRegistry, showRegistry } from "./registry.js";

const PAGES = ["entity", "registry", "pipeline"];
let access = null;

function pageName() {
  const name = location.hash.slice(1).split("?")[0];
  return PAGES.includes(name) ? name : "entity";
}

function showAccess() {
  const area = document.getElementById("access");
  const form = document.getElementById("key-form");
  const needsKey = access.auth && (!access.key || !access.valid);
  form.hidden = !needsKey;
  document.getElementById("key-error").textContent = access.key && !access.valid ? "That key is not valid (401)." : "";
  if (!access.auth) {
    replace(area, "API keys are off: no key needed.");
    return;
  }
  if (needsKey) {
    replace(area, "An API key is needed.");
    return;
  }
  replace(
    area,
    el("span", { id: "key-grants" }, describeGrants(access)),
    " ",
    el("button", { type: "button", class: "link", id: "forget-key", onclick: forgetKey }, "Forget key"),
  );
}

/** What the key may do, in one line: `Key writer: may read features; write user_features as backfill; no admin`. */
function describeGrants(access) {
  const grants = access.grants;
  if (!grants) return "Token: valid, but no grant applies to it (403).";
  const who = `${grants.kind === "jwt" ? "Token" : "Key"} ${grants.name}`;
  let write = "not write";
  if (access.write) {
    const categories = grants.categories === null ? "every category" : grants.categories.join(", ") || "no category";
    write = `write ${categories}${grants.sources.length ? ` as ${grants.sources.join(", ")}` : ""}`;
  }
  const may = [access.read ? "read features" : "not read features", write, access.admin ? "admin" : "no admin"];
  return `${who}: may ${may.join("; ")}`;
}

async function forgetKey() {
  keepKey("");
  forgetRegistry();
  await refreshAccess();
}

async function refreshAccess() {
  try {
    access = await fetchAccess();
  } catch (error) {
    replace(document.getElementById("access"), error instanceof ApiError ? error.message : String(error));
    access = { auth: true, key: false, valid: false, read: false, write: false, admin: false };
  }
  showAccess();
  await route();
}

async function route() {
  const name = pageName();
  for (const page of PAGES) {
    document.getElementById(`page-${page}`).hidden = page !== name;
    const link = document.querySelector(`nav a[data-page="${page}"]`);
    if (page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · Feature Store console`;
  if (!access || (access.auth && !access.valid)) return;
  if (name === "entity") {
    let registry = null;
    try {
      ({ registry } = await loadRegistry());
    } catch {
      registry = null;
    }
    showEntityTypes(registry, entityParams().entityType);
    await lookUp(registry, access.auth);
  } else if (name === "registry") {
    await showRegistry();
  } else {
    await showPipeline(access);
  }
}

function start() {
  document.getElementById("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("key-input");
    keepKey(input.value.trim());
    input.value = "";
    forgetRegistry();
    await refreshAccess();
  });
  document.getElementById("entity-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const entityType = document.getElementById("entity-type").value;
    const entityId = document.getElementById("entity-id").value.trim();
    const wanted = entityHash(entityType, entityId);
    if (location.hash === wanted) route();
    else location.hash = wanted;
  });
  document.getElementById("registry-filter").addEventListener("input", () => renderRegistry(""));
  document.getElementById("registry-reload").addEventListener("click", showRegistry);
  document.getElementById("pipeline-reload").addEventListener("click", () => showPipeline(access));
  window.addEventListener("hashchange", route);
  refreshAccess();
}

start();
