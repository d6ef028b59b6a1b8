// Building the page: every value from the service becomes a text node, never markup.

/** An element with attributes (`class`, `for`, `aria-*`, ...; `on*` functions become listeners) and children. */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(container, ...children) {
  container.replaceChildren();
  append(container, children);
}

const LONG_STRING = 80;

/** A feature value of any JSON shape: scalars as they are, long strings shortened, maps and lists collapsed. */
export function renderValue(value) {
  if (value === null) return el("code", { class: "null" }, "null");
  if (Array.isArray(value)) {
    if (value.length === 0) return el("code", {}, "[]");
    return el(
      "details",
      { class: "nested" },
      el("summary", {}, `list of ${value.length}`),
      el("ol", { start: 0 }, value.map((item) => el("li", {}, renderValue(item)))),
    );
  }
  if (typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return el("code", {}, "{}");
    return el(
      "details",
      { class: "nested" },
      el("summary", {}, `map of ${entries.length}`),
      el("dl", {}, entries.map(([key, item]) => [el("dt", {}, key), el("dd", {}, renderValue(item))])),
    );
  }
  if (typeof value === "string") {
    const quoted = JSON.stringify(value);
    if (value.length <= LONG_STRING) return el("code", { class: "string" }, quoted);
    return el(
      "details",
      { class: "long" },
      el("summary", {}, el("code", { class: "string" }, `${JSON.stringify(value.slice(0, LONG_STRING))}…`),
        ` (${value.length} characters)`),
      el("pre", { class: "whole" }, quoted),
    );
  }
  return el("code", { class: typeof value }, String(value));
}

/** "2 h 5 min", "41 s", "3 d 4 h": the two largest units. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  const sign = seconds < 0 ? "-" : "";
  let rest = Math.abs(seconds);
  if (rest < 1) return `${sign}${rest.toFixed(2)} s`;
  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const parts = [];
  for (const [name, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0 || parts.length > 0) parts.push(`${count} ${name}`);
    rest -= count * size;
    if (parts.length === 2) break;
  }
  return sign + parts.filter((part) => !part.startsWith("0 ")).join(" ");
}

export function setStatus(element, text, kind = "") {
  element.textContent = text;
  element.className = `status ${kind}`.trim();
}
