// Small helpers shared by the explorer's views: building elements, fetching JSON, formatting.

// el("div", {class: "x", dataset: {a: 1}}, child, "text", ...) -> an element. Text is set as
// text, never parsed as HTML, so values from the chain cannot inject markup.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export async function fetchJSON(path, { timeoutMs = 4000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(path, { signal: controller.signal, cache: "no-store" });
    const body = await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, body };
  } catch (error) {
    return { ok: false, status: 0, body: { error: String(error) } };
  } finally {
    clearTimeout(timer);
  }
}

// The state of a contract at the head, or null when the contract or path does not exist.
export async function state(path) {
  const result = await fetchJSON(`/state/${path}`);
  return result.ok ? result.body.value : null;
}

export function short(hex, length = 12) {
  return hex ? `${hex.slice(0, length)}\u2026` : "";
}

// The server's clock minus ours, so ages are measured on the nodes' clock.
let clockSkewMs = 0;
export function syncClock(serverNowMs) {
  if (typeof serverNowMs === "number") clockSkewMs = serverNowMs - Date.now();
}
export function nowMs() {
  return Date.now() + clockSkewMs;
}

export function age(ms) {
  if (ms === null || ms === undefined) return "never";
  const seconds = Math.max(0, (nowMs() - ms) / 1000);
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms ago`;
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

export function clock(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export function duration(ms) {
  if (!ms) return "0";
  const minutes = ms / 60000;
  return minutes < 120 ? `${Math.round(minutes)} min` : `${(minutes / 60).toFixed(1)} h`;
}

export function compact(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  return JSON.stringify(value);
}

export function badge(text, kind = "") {
  return el("span", { class: `badge ${kind}`.trim() }, text);
}

export function table(columns, rows, { rowAttrs = () => ({}) } = {}) {
  return el(
    "table",
    { class: "grid" },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el(
      "tbody",
      {},
      rows.map((row, i) => el("tr", rowAttrs(row, i), row.cells.map((c) => el("td", {}, c)))),
    ),
  );
}

export function empty(text) {
  return el("p", { class: "empty" }, text);
}

// Replace a container's children in one step.
export function fill(container, ...children) {
  container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}
