// The factory's views, read from the contracts' state at the head: the orders board, inventory
// with low-stock marks, machines with the predicted failure probability, and work orders.

import { PALETTE, probabilityChart } from "./chart.js";
import { age, badge, clock, compact, duration, el, empty, fetchJSON, fill, short, state, table } from "./util.js";

const ORDER_STATES = [
  "created", "accepted", "scheduled", "in_production", "quality_check", "passed", "shipped", "delivered", "cancelled",
];
const STATUS_KIND = {
  running: "ok", degraded: "warn", down: "bad", maintenance: "info",
  open: "warn", taken: "info", closed: "ok",
  created: "", accepted: "info", scheduled: "info", in_production: "warn", quality_check: "warn",
  passed: "ok", shipped: "ok", delivered: "ok", cancelled: "muted",
};
const BASIS_POINTS = 10000;
const PREDICTIONS_MAX = 200;

function label(text) {
  return text.replaceAll("_", " ");
}

// Says how many of `total` records a board shows, when the newest query left some out.
function showShown(id, shown, total, what) {
  const note = document.getElementById(id);
  note.hidden = !(total > shown);
  note.textContent = note.hidden ? "" : `The newest ${shown} of ${total} ${what}.`;
}

export async function renderOrders() {
  const board = document.getElementById("orders-board");
  const newest = await state("orders/newest");
  if (newest === null) {
    showShown("orders-shown", 0, 0, "orders");
    fill(board, empty("The orders contract has no state on this node."));
    return;
  }
  const orders = Object.values(newest.orders || {});
  showShown("orders-shown", orders.length, newest.total, "orders");
  const byState = Object.fromEntries(ORDER_STATES.map((s) => [s, []]));
  for (const order of orders) (byState[order.state] ??= []).push(order);
  fill(
    board,
    Object.entries(byState).map(([name, list]) =>
      el(
        "div",
        { class: `column ${list.length ? "" : "dim"}`.trim(), dataset: { state: name } },
        el("h3", {}, label(name), el("span", { class: "count" }, list.length)),
        list.map((o) =>
          el(
            "div",
            { class: "order", dataset: { order: o.id } },
            el("div", { class: "order-head" }, el("strong", {}, o.id), o.qc_failures ? badge(`QC \u00d7${o.qc_failures}`, "warn") : null),
            el("div", {}, `${o.product} \u00b7 ${o.variant} \u00d7 ${o.quantity}`),
            Object.keys(o.options || {}).length ? el("div", { class: "muted small" }, compact(o.options)) : null,
            el("div", { class: "muted small" }, o.machine ? `on ${o.machine}` : "no machine", ` \u00b7 ${o.customer}`),
            el("div", { class: "muted small" }, `updated ${age(o.updated_ms)}`),
          ),
        ),
      ),
    ),
  );
}

// Says that the inventory tab shows only the first page of stock records, when there are more.
function showFirst(id, shown, more) {
  const note = document.getElementById(id);
  note.hidden = !more;
  note.textContent = more
    ? `The first ${shown} stock records by item and location; there are more (millchain query inventory lists them all).`
    : "";
}

export async function renderInventory() {
  const container = document.getElementById("inventory-table");
  // The first page only: the whole list grows with every item name a supplier receives.
  const page = await state("inventory?after=");
  const rows = [];
  for (const [item, locations] of Object.entries(page?.items || {})) {
    for (const [location, s] of Object.entries(locations)) rows.push({ item, location, s });
  }
  showFirst("inventory-shown", rows.length, page?.more === true);
  if (!rows.length) {
    fill(container, empty("No stock recorded yet."));
    return;
  }
  const most = Math.max(...rows.map((r) => r.s.on_hand), 1);
  fill(
    container,
    table(
      ["item", "location", "on hand", "reserved", "for orders", "available", "reorder at", "stock", ""],
      rows.map(({ item, location, s }) => ({
        low: s.low,
        item,
        cells: [
          el("strong", {}, item),
          location,
          s.on_hand,
          s.reserved,
          s.for_orders,
          s.available,
          s.reorder_point ?? "\u2013",
          stockBar(s, most),
          s.low ? badge("LOW", "bad") : "",
        ],
      })),
      { rowAttrs: (row) => ({ class: row.low ? "low" : null, dataset: { item: row.item } }) },
    ),
  );
}

function stockBar(s, most) {
  const width = (value) => `${Math.round((100 * value) / most)}%`;
  const bar = el("div", { class: "bar", title: `${s.available} available, ${s.reserved} reserved` });
  const reserved = el("span", { class: "reserved" });
  reserved.style.width = width(s.reserved);
  const available = el("span", { class: s.low ? "available low" : "available" });
  available.style.width = width(s.available);
  bar.append(reserved, available);
  if (s.reorder_point !== null && s.reorder_point !== undefined) {
    const mark = el("span", { class: "reorder" });
    mark.style.left = width(s.reserved + s.reorder_point);
    bar.append(mark);
  }
  return bar;
}

export async function renderMachines() {
  const cards = document.getElementById("machine-cards");
  const machines = (await state("machines")) || {};
  const list = Object.values(machines);
  fill(
    cards,
    list.length
      ? list.map((m) =>
          el(
            "div",
            { class: `card machine ${m.status}`, dataset: { machine: m.id, status: m.status } },
            el("div", { class: "machine-head" }, el("strong", {}, m.id), " ", badge(m.status, STATUS_KIND[m.status])),
            el("div", { class: "muted small" }, `${m.type} \u00b7 ${m.capabilities.join(", ")}`),
            el("dl", { class: "kv small" },
              el("dt", {}, "producing"), el("dd", {}, m.producing || "\u2013"),
              el("dt", {}, "queue"), el("dd", {}, m.queue.length ? m.queue.join(", ") : "\u2013"),
              el("dt", {}, "tool wear"), el("dd", {}, `${m.tool_wear_min} min`),
              el("dt", {}, "downtime"), el("dd", {}, duration(m.downtime_ms)),
              el("dt", {}, "since"), el("dd", {}, `${clock(m.status_since_ms)}${m.status_reason && !m.at_risk ? ` \u00b7 ${m.status_reason}` : ""}`),
            ),
            m.at_risk
              ? el("div", { class: "risk" }, `at risk ${(m.at_risk.probability_bp / 100).toFixed(1)} %`, el("span", { class: "muted" }, ` by ${m.at_risk.source}${m.at_risk.reason ? `: ${m.at_risk.reason}` : ""}`))
              : null,
          ),
        )
      : empty("No machines registered yet."),
  );
  await renderPredictions(list.map((m) => m.id));
}

// A machine's predictions from the oracle contract, oldest reading first: the final value once
// a quorum reported, else the median of the reports so far.
async function machinePredictions(machine) {
  const result = await fetchJSON(`/state/oracle/predictions/${encodeURIComponent(machine)}`);
  if (!result.ok || !Array.isArray(result.body.value)) return [];
  return result.body.value.slice(-PREDICTIONS_MAX).flatMap((p) => {
    const reports = Object.values(p.reports || {}).sort((a, b) => a - b);
    const bp = p.final ? p.value_bp : reports[Math.floor((reports.length - 1) / 2)];
    if (typeof bp !== "number") return [];
    const how = p.final ? `final, ${reports.length} reports` : `${reports.length} report(s), no quorum yet`;
    return [{ x: p.seq, y: bp / BASIS_POINTS, final: p.final, risk: p.at_risk, title: `reading ${p.seq}: ${(bp / 100).toFixed(1)} % (${how})${p.at_risk ? ", at risk" : ""}` }];
  });
}

async function renderPredictions(machineIds) {
  const container = document.getElementById("predictions");
  const oracle = await fetchJSON("/state/oracle");
  const model = oracle.ok ? oracle.body.value?.model : null;
  const byMachine = oracle.ok ? await Promise.all(machineIds.map(machinePredictions)) : [];
  const charted = machineIds.map((id, i) => [id, byMachine[i] || []]).filter(([, points]) => points.length);
  const about = model
    ? el("p", { class: "muted small" }, `Model ${model.name} ${short(model.hash, 12)} \u00b7 failure within ${model.horizon} operations \u00b7 at risk from ${(model.threshold_bp / 100).toFixed(0)} % \u00b7 filled dots are final (a quorum of oracles agreed), open dots still wait for reports.`)
    : null;
  if (!charted.length) {
    let why = "No prediction has been reported for these machines.";
    if (!oracle.ok) why = "The oracle contract is not on this chain.";
    else if (!model) why = "No fault model is registered yet.";
    fill(container, el("p", { class: "empty", id: "predictions-empty" }, "no predictions yet"), el("p", { class: "muted small" }, why));
    return;
  }
  const threshold = model ? model.threshold_bp / BASIS_POINTS : null;
  fill(
    container,
    about,
    el(
      "div",
      { class: "chart-grid" },
      charted.map(([id, points], i) => {
        const last = points[points.length - 1];
        return el(
          "figure",
          { class: "chart-box", dataset: { machine: id } },
          el("figcaption", {}, el("strong", {}, id), ` latest ${(last.y * 100).toFixed(1)} % at reading ${last.x}`, last.risk ? badge("at risk", "bad") : null),
          probabilityChart(points, { color: PALETTE[i % PALETTE.length], threshold, xLabel: (x) => `#${x}` }),
        );
      }),
    ),
  );
}

export async function renderWorkOrders() {
  const container = document.getElementById("workorders-table");
  const newest = await state("maintenance/newest");
  const rows = Object.entries(newest?.work_orders || {});
  showShown("workorders-shown", rows.length, newest?.total, "work orders");
  if (!rows.length) {
    fill(container, empty("No work orders yet."));
    return;
  }
  fill(
    container,
    table(
      ["id", "machine", "state", "reason", "source", "opened", "taken by", "actions", "note"],
      rows.map(([id, w]) => ({
        cells: [
          el("strong", {}, id), w.machine, badge(w.state, STATUS_KIND[w.state]), w.reason, w.source ?? w.opened_by,
          `${clock(w.opened_ms)} by ${w.opened_by}`, w.taken_by || "\u2013", (w.actions || []).join(", ") || "\u2013", w.note || "",
        ],
      })),
    ),
  );
}
