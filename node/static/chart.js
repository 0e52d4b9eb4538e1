// A dependency-free SVG line chart of a probability (0..100 %) against a number (a machine's
// reading sequence), with an optional dashed threshold.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2563eb", "#7c3aed", "#0891b2", "#d97706", "#16a34a", "#db2777"];
const RISK = "#dc2626";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// points: [{x, y: 0..1, final, risk, title}]. Final points are filled, others open; points at
// or above the threshold are drawn in red.
export function probabilityChart(points, { color = PALETTE[0], threshold = null, xLabel = (x) => x, width = 560, height = 200 } = {}) {
  const margin = { left: 40, right: 12, top: 10, bottom: 26 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const sorted = [...points].sort((a, b) => a.x - b.x);
  let xMin = sorted[0].x;
  let xMax = sorted[sorted.length - 1].x;
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  }
  const x = (value) => margin.left + ((value - xMin) / (xMax - xMin)) * plotW;
  const y = (value) => margin.top + (1 - value) * plotH;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(
      svg("line", { x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick), class: "grid-line" }),
      svg("text", { x: margin.left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, `${tick * 100}%`),
    );
  }
  const ticks = [...new Set([xMin, Math.round((xMin + xMax) / 2), xMax])];
  const anchors = ["start", "middle", "end"];
  ticks.forEach((tick, i) => {
    root.append(svg("text", { x: x(tick), y: height - 6, class: "axis", "text-anchor": anchors[i] ?? "middle" }, xLabel(tick)));
  });
  if (threshold !== null) {
    root.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: y(threshold), y2: y(threshold), class: "threshold" }));
    root.append(svg("text", { x: margin.left + 4, y: y(threshold) - 4, class: "axis threshold-label", "text-anchor": "start" }, `threshold ${Math.round(threshold * 100)} %`));
  }
  if (sorted.length > 1) {
    const path = sorted.map((p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`);
    root.append(svg("path", { d: path.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
  }
  for (const p of sorted) {
    const stroke = p.risk ? RISK : color;
    const dot = svg("circle", { cx: x(p.x), cy: y(p.y), r: 4, fill: p.final ? stroke : "#fff", stroke, "stroke-width": 2, class: p.final ? "final" : "pending" });
    dot.append(svg("title", {}, p.title || `${(p.y * 100).toFixed(1)} %`));
    root.append(dot);
  }
  return root;
}
