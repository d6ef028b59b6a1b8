// The registry page: every category with its rules and features, a filter, and reloads that cost a 304
// while nothing changed.

import { ApiError, call } from "./api.js";
import { duration, el, replace, setStatus } from "./dom.js";

let etag = null;
let registry = null;

/** The registry document, revalidated with its ETag; null when the key may not read it. */
export async function loadRegistry() {
  const answer = await call("registry", { headers: etag ? { "If-None-Match": etag } : {} });
  const unchanged = answer.status === 304 && registry !== null;
  if (!unchanged) {
    registry = answer.body;
    etag = answer.headers.get("ETag");
  }
  return { registry, unchanged };
}

export function forgetRegistry() {
  etag = null;
  registry = null;
}

export async function showRegistry() {
  const status = document.getElementById("registry-status");
  let unchanged;
  try {
    ({ unchanged } = await loadRegistry());
  } catch (error) {
    setStatus(status, error instanceof ApiError ? error.message : String(error), "error");
    replace(document.getElementById("registry-result"));
    return;
  }
  render(unchanged ? `unchanged, checked at ${new Date().toLocaleTimeString()} (304)` : `loaded at ${new Date().toLocaleTimeString()}`);
}

function searchable(name, category) {
  const features = Object.entries(category.features).map(([feature, spec]) => `${feature} ${spec.type} ${spec.description ?? ""}`);
  return [name, category.owner, category.description, category.mode, ...(category.writers ?? []), ...category.entity_types, ...features]
    .filter(Boolean).join(" ").toLowerCase();
}

export function render(how) {
  if (!registry) return;
  const filter = document.getElementById("registry-filter").value.trim().toLowerCase();
  const all = Object.entries(registry.categories);
  const shown = all.filter(([name, category]) => filter.split(/\s+/).every((word) => searchable(name, category).includes(word)));
  const status = document.getElementById("registry-status");
  setStatus(status, `${shown.length} of ${all.length} categories${filter ? ` match "${filter}"` : ""}${how ? `; ${how}` : ""}.`);
  replace(document.getElementById("registry-result"), shown.map(([name, category]) => describe(name, category)));
}

function describe(name, category) {
  const id = `registry-${name}`;
  const rows = [
    ["Owner", category.owner ?? "—"],
    ["Description", category.description ?? "—"],
    ["Entity types", category.entity_types.join(", ")],
    ["TTL", category.default_ttl_seconds ? `${duration(category.default_ttl_seconds)} (${category.default_ttl_seconds} s)` : "none"],
    ["Max age", category.max_age_seconds ? `${duration(category.max_age_seconds)} (${category.max_age_seconds} s)` : "none"],
    ["Mode", category.mode],
    ["Writers", category.writers ? category.writers.join(", ") : "any allowed writer"],
  ];
  const features = Object.entries(category.features);
  return el(
    "section",
    { class: "category", "aria-labelledby": id, "data-category": name },
    el("h2", { id }, name),
    el("dl", { class: "meta" }, rows.map(([label, value]) => [el("dt", {}, label), el("dd", {}, value)])),
    features.length === 0
      ? el("p", { class: "why" }, "No declared features.")
      : el(
        "table",
        { class: "features" },
        el("caption", {}, `Features of ${name}`),
        el("thead", {}, el("tr", {}, ["Feature", "Type", "Nullable", "Description"].map((label) => el("th", { scope: "col" }, label)))),
        el("tbody", {}, features.map(([feature, spec]) => el(
          "tr",
          {},
          el("th", { scope: "row" }, feature),
          el("td", { class: "type" }, spec.type),
          el("td", {}, spec.nullable ? "yes" : "no"),
          el("td", {}, spec.description ?? ""),
        ))),
      ),
  );
}
