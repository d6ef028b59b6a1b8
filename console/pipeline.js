// The pipeline page: readiness of the store and the event sink, the outbox backlog, and dead letters
// (listed and re-driven with the admin scope only; without it there are no buttons).

import { ApiError, call } from "./api.js";
import { duration, el, renderValue, replace, setStatus } from "./dom.js";

const PAGE_SIZE = 20;
let cursors = [null];

export async function showPipeline(access) {
  const status = document.getElementById("pipeline-status");
  setStatus(status, "Loading…");
  try {
    const ready = await call("ready", { accept: [503] });
    replace(document.getElementById("pipeline-ready"), readiness(ready.body));
    setStatus(status, `Checked at ${new Date().toLocaleTimeString()}.`, ready.status === 200 ? "" : "error");
  } catch (error) {
    setStatus(status, error instanceof ApiError ? error.message : String(error), "error");
  }
  cursors = [null];
  await showDeadLetters(access);
}

function readiness(answer) {
  const store = answer.checks.store ?? {};
  const events = answer.checks.events ?? {};
  const state = (ok) => el("span", { class: `badge ${ok ? "fresh" : "expired"}` }, ok ? "ready" : "not ready");
  const rows = [
    ["Service", el("span", {}, answer.status)],
    ["Store", el("span", {}, state(store.ok), ` ${store.backend ?? ""}`, store.error ? ` — ${store.error}` : "")],
    ["Event sink", el("span", {}, state(events.ok), ` ${events.sink ?? ""}`, events.error ? ` — ${events.error}` : "")],
    ["Outbox backlog", events.pending ?? "unknown"],
    ["Oldest pending", events.oldest_pending_age_s === undefined ? "unknown" : duration(events.oldest_pending_age_s)],
    ["Dead letters", events.dead_letters ?? "unknown"],
    ["Delivered / failed", `${events.delivered ?? "?"} / ${events.failed ?? "?"}`],
  ];
  return el("dl", { class: "meta", id: "readiness" }, rows.map(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

async function showDeadLetters(access) {
  const status = document.getElementById("dead-status");
  const list = document.getElementById("dead-letters");
  if (!access.admin) {
    setStatus(status, "Listing and re-driving dead letters needs a key with the admin scope.");
    replace(list);
    return;
  }
  const cursor = cursors[cursors.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) query.set("cursor", cursor);
  let page;
  try {
    page = (await call(`admin/dead-letters?${query}`)).body;
  } catch (error) {
    setStatus(status, error instanceof ApiError ? error.message : String(error), "error");
    replace(list);
    return;
  }
  const number = cursors.length;
  setStatus(status, page.dead_letters.length ? `Page ${number}: ${page.dead_letters.length} dead letters, the longest dead first.` : "No dead letters.");
  const buttons = el(
    "div",
    { class: "actions" },
    number > 1 ? el("button", { type: "button", onclick: () => { cursors.pop(); showDeadLetters(access); } }, "Previous page") : null,
    page.next_cursor ? el("button", { type: "button", onclick: () => { cursors.push(page.next_cursor); showDeadLetters(access); } }, "Next page") : null,
    page.dead_letters.length ? el("button", { type: "button", id: "redrive-all", onclick: () => redrive(access, { all: true }) }, "Re-drive all") : null,
  );
  replace(list, page.dead_letters.length ? table(access, page.dead_letters) : null, buttons);
}

function table(access, letters) {
  return el(
    "table",
    { class: "features dead" },
    el("caption", {}, "Dead letters"),
    el("thead", {}, el("tr", {}, ["Event", "Entity", "Category", "Reason", "Attempts", "Dead at", ""].map((label) => el("th", { scope: "col" }, label)))),
    el("tbody", {}, letters.map((letter) => el(
      "tr",
      { "data-event-id": letter.event_id },
      el("th", { scope: "row" }, el("code", {}, letter.event_id), el("div", {}, renderValue(letter.event))),
      el("td", {}, letter.key),
      el("td", {}, letter.event?.resource_name ?? ""),
      el("td", {}, letter.reason),
      el("td", {}, letter.attempts),
      el("td", {}, letter.dead_at),
      el("td", {}, el("button", { type: "button", class: "redrive", "aria-label": `Re-drive ${letter.event_id}`, onclick: () => redrive(access, { event_ids: [letter.event_id] }) }, "Re-drive")),
    ))),
  );
}

async function redrive(access, body) {
  const status = document.getElementById("dead-status");
  try {
    const answer = (await call("admin/dead-letters/redrive", { method: "POST", body })).body;
    cursors = [null];
    await showDeadLetters(access);
    setStatus(status, `Re-driven: ${answer.redriven.length}${answer.not_found.length ? `; no longer dead: ${answer.not_found.length}` : ""}. The relay publishes them now.`);
  } catch (error) {
    setStatus(status, error instanceof ApiError ? error.message : String(error), "error");
  }
}
