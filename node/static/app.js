// The explorer page: cluster cards polled every second, live head updates by server-sent events,
// hash routing between the tabs (#blocks, #block/N, #tx/HASH, #orders, #inventory, #machines,
// #workorders, #views), and the search box.

import { renderBlock, renderBlockList, renderTx, renderViews } from "./chain.js";
import { renderInventory, renderMachines, renderOrders, renderWorkOrders } from "./factory.js";
import { age, badge, clock, el, fetchJSON, fill, short, syncClock } from "./util.js";

const CLUSTER_POLL_MS = 1000;
const PANEL_POLL_MS = 5000;
const REFRESH_GAP_MS = 300;
const DIRECT_STATUS_TIMEOUT_MS = 1500;

const app = {
  info: null,
  head: null,
  route: { tab: "blocks", arg: null },
  selectedHeight: null,
  nodes: new Map(), // name -> last row seen
  downSince: new Map(), // name -> ms when this page first saw it down
  viewLog: [], // view changes this page saw on any node
};
window.explorer = app; // for tests and curious operators

// -- cluster -------------------------------------------------------------------------------

async function clusterRows() {
  const result = await fetchJSON("/explorer/cluster", { timeoutMs: 3000 });
  if (result.ok) {
    syncClock(result.body.now_ms);
    return result.body.nodes;
  }
  // The serving node does not answer: ask every validator directly (their JSON allows it).
  const validators = app.info?.validators ?? [];
  return Promise.all(
    validators.map(async (v) => {
      const status = await fetchJSON(`${v.url}/status`, { timeoutMs: DIRECT_STATUS_TIMEOUT_MS });
      const row = { index: v.index, name: v.name, url: v.url, self: v.name === app.info.node.name };
      const answered = status.ok && status.body !== null && typeof status.body === "object" && !Array.isArray(status.body);
      return answered ? { ...status.body, ...row, alive: true } : { ...row, alive: false };
    }),
  );
}

function noteViewChanges(rows) {
  for (const row of rows) {
    const before = app.nodes.get(row.name);
    if (row.alive && before?.alive && before.view !== null && row.view !== null && row.view !== before.view) {
      app.viewLog.push({ node: row.name, from: before.view, to: row.view, at_ms: Date.now(), height: row.height });
    }
    if (!row.alive && !app.downSince.has(row.name)) app.downSince.set(row.name, Date.now());
    if (row.alive) app.downSince.delete(row.name);
    app.nodes.set(row.name, row.alive ? row : { ...before, ...row, alive: false });
  }
}

function nodeCard(row) {
  const last = app.nodes.get(row.name) || row;
  const alive = row.alive;
  const badges = [
    alive ? badge("up", "ok") : badge("DOWN", "bad"),
    alive && row.is_primary ? badge("primary", "info") : null,
    row.self ? badge("this node", "muted") : null,
    alive && row.halted ? badge("HALTED", "bad") : null,
    alive && row.view_active === false ? badge("changing view", "warn") : null,
    alive && row.role === "observer" ? badge("observer", "muted") : null,
  ];
  const stat = (name, value, extra = {}) => el("div", { class: "stat", ...extra }, el("span", { class: "muted" }, name), el("b", {}, value));
  return el(
    "div",
    { class: `node-card ${alive ? "alive" : "down"}`, dataset: { node: row.name, alive: String(alive) } },
    el("div", { class: "node-head" }, el("strong", {}, row.name), ...badges),
    el(
      "div",
      { class: "stats" },
      stat("height", last.height ?? "\u2013", { "data-field": "height" }),
      stat("view", last.view ?? "\u2013", { "data-field": "view" }),
      stat("primary", last.primary_name ?? "\u2013", { "data-field": "primary" }),
      stat("mempool", alive ? row.mempool : "\u2013"),
    ),
    el(
      "div",
      { class: "muted small" },
      alive ? `last commit ${age(row.last_commit_ms)}` : `not answering since ${clock(app.downSince.get(row.name))}`,
    ),
    alive ? el("div", { class: "muted small", "data-field": "stages", title: STAGES_TITLE }, stagesText(row.stages)) : null,
    el("div", { class: "muted small mono" }, row.url || ""),
  );
}

// A block's stages on a node, as its /status reports them (p50 over its recent blocks).
const BLOCK_STAGES = [
  ["propose", "propose"],
  ["pre_prepare", "pre-prepare"],
  ["prepare", "prepare"],
  ["commit", "commit"],
  ["execute", "execute"],
];
const STAGES_TITLE =
  "Median time a block spent in each stage on this node, over its last 1,000 blocks: propose " +
  "(primary only: its earliest transaction's arrival to the proposal), pre-prepare (the " +
  "proposal's trip), prepare, commit, execute.";

// A card for each node; a node whose status does not make one (it reports fields of other
// types than a node's) gets a card saying so, and the others are shown all the same.
function nodeCardOrNote(row) {
  try {
    return nodeCard(row);
  } catch (error) {
    return el(
      "div",
      { class: "node-card down", dataset: { node: String(row.name), alive: "false" } },
      el("div", { class: "node-head" }, el("strong", {}, String(row.name)), badge("MALFORMED", "bad")),
      el("div", { class: "muted small" }, `its status cannot be shown: ${error}`),
    );
  }
}

function stagesText(stages) {
  const parts = BLOCK_STAGES.filter(([key]) => typeof stages?.[key]?.p50_ms === "number").map(
    ([key, label]) => `${label} ${stages[key].p50_ms.toFixed(1)}`,
  );
  return parts.length ? `block p50 ms: ${parts.join(" \u00b7 ")}` : "no blocks timed yet";
}

let clusterInFlight = false;

async function refreshCluster() {
  if (clusterInFlight) return;
  clusterInFlight = true;
  try {
    const rows = await clusterRows();
    noteViewChanges(rows);
    fill(document.getElementById("cluster"), rows.map(nodeCardOrNote));
    const alive = rows.filter((r) => r.alive).length;
    document.getElementById("footer").textContent =
      `${alive} of ${rows.length} nodes answering \u00b7 f = ${app.info?.f ?? "?"} \u00b7 updated ${clock(Date.now())}`;
  } finally {
    clusterInFlight = false;
  }
}

// -- live head -----------------------------------------------------------------------------

function setLive(stateName, text) {
  const live = document.getElementById("live");
  live.dataset.state = stateName;
  document.getElementById("live-text").textContent = text;
}

function connectEvents() {
  const source = new EventSource("/explorer/events");
  source.addEventListener("open", () => setLive("live", "live"));
  source.addEventListener("error", () => setLive("down", "reconnecting"));
  source.addEventListener("head", (message) => {
    const head = JSON.parse(message.data);
    syncClock(head.now_ms);
    const changed = !app.head || head.height !== app.head.height || head.view !== app.head.view;
    app.head = head;
    setLive("live", "live");
    document.getElementById("height-note").textContent =
      `height ${head.height} \u00b7 view ${head.view ?? "\u2013"} \u00b7 head ${short(head.head, 10)}`;
    if (changed) {
      scheduleRefresh();
      refreshCluster();
    }
  });
}

// -- panels --------------------------------------------------------------------------------

let refreshTimer = null;
let refreshing = false;
let lastRefresh = 0;

function scheduleRefresh() {
  if (refreshTimer !== null) return;
  const wait = Math.max(0, REFRESH_GAP_MS - (Date.now() - lastRefresh));
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    if (refreshing) {
      scheduleRefresh();
      return;
    }
    refreshing = true;
    lastRefresh = Date.now();
    try {
      await refreshPanel();
    } catch (error) {
      console.error("refresh failed", error);
    } finally {
      refreshing = false;
    }
  }, wait);
}

async function refreshPanel() {
  const { tab, arg } = app.route;
  if (tab === "blocks") {
    await renderBlockList(app);
    if (app.selectedHeight === null) return;
    if (arg !== null && document.querySelector("#block-detail .block-view")?.dataset.height !== String(arg)) {
      await renderBlock(app, arg);
    }
  } else if (tab === "tx") {
    const { status, settled } = document.getElementById("tx-result").dataset;
    const final = status === "committed" && settled !== "false";
    if (!final && status !== "loading") await renderTx(app, arg);
  } else if (tab === "orders") await renderOrders();
  else if (tab === "inventory") await renderInventory();
  else if (tab === "machines") await renderMachines();
  else if (tab === "workorders") await renderWorkOrders();
  else if (tab === "views") await renderViews(app);
}

function parseRoute() {
  const [tab, arg] = location.hash.replace(/^#/, "").split("/");
  if (tab === "block" && /^\d+$/.test(arg || "")) return { tab: "blocks", arg: Number(arg) };
  if (tab === "tx" && arg) return { tab: "tx", arg: arg.toLowerCase() };
  const known = ["blocks", "orders", "inventory", "machines", "workorders", "views"];
  return { tab: known.includes(tab) ? tab : "blocks", arg: null };
}

async function onRoute() {
  app.route = parseRoute();
  const { tab, arg } = app.route;
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.dataset.panel !== tab;
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.tab === tab);
  }
  if (tab === "blocks") {
    app.selectedHeight = arg;
    if (arg !== null) await renderBlock(app, arg);
    await renderBlockList(app);
  } else if (tab === "tx") {
    await renderTx(app, arg);
  } else {
    await refreshPanel();
  }
}

function onSearch(event) {
  event.preventDefault();
  const text = document.getElementById("search-input").value.trim().toLowerCase().replace(/^0x/, "");
  if (!text) return;
  location.hash = /^\d+$/.test(text) ? `#block/${text}` : `#tx/${text}`;
}

async function start() {
  // Search and routes work before the node's info arrives: until then a search typed on a page
  // served by a slow node submitted the form, reloading the page and losing the search.
  document.getElementById("search").addEventListener("submit", onSearch);
  window.addEventListener("hashchange", onRoute);
  const info = await fetchJSON("/explorer/info");
  if (info.ok) {
    app.info = info.body;
    syncClock(info.body.now_ms);
    document.getElementById("chain-id").textContent = info.body.chain_id;
    document.getElementById("served-by").textContent = `served by ${info.body.node.name}`;
    document.title = `${info.body.chain_id} \u00b7 millchain explorer`;
  }
  connectEvents();
  refreshCluster();
  setInterval(refreshCluster, CLUSTER_POLL_MS);
  await onRoute();
  setInterval(scheduleRefresh, PANEL_POLL_MS);
}

start();
