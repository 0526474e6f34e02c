// Inline SVG charts drawn by hand (no chart library). Labels are text nodes, never markup.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function shorten(text, max) {
  const t = String(text);
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** Horizontal bars: rows [{label, value}], with the value at the end of each bar. */
export function barChart(rows, { title, format = (v) => String(v), width = 420, color = "#1d4ed8" } = {}) {
  const bar = 20, gap = 6, left = 170, right = 50;
  const height = Math.max(40, rows.length * (bar + gap) + 10);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": title });
  svg.append(s("title", {}, title));
  if (!rows.length) {
    svg.append(s("text", { x: 8, y: 24 }, "No data yet"));
    return svg;
  }
  const max = Math.max(...rows.map((r) => r.value), 1e-9);
  rows.forEach((r, i) => {
    const y = 5 + i * (bar + gap);
    const w = Math.max(1, ((width - left - right) * r.value) / max);
    const label = s("text", { x: left - 6, y: y + bar * 0.7, "text-anchor": "end" }, shorten(r.label, 28));
    label.append(s("title", {}, r.label));
    svg.append(label, s("rect", { x: left, y, width: w, height: bar, fill: color, rx: 3 }),
      s("text", { x: left + w + 4, y: y + bar * 0.7 }, format(r.value)));
  });
  return svg;
}

/** A line over days: points [{label, value}] with value in [0, 1] (a rate). */
export function lineChart(points, { title, width = 420, height = 200 } = {}) {
  const pad = { l: 40, r: 12, t: 10, b: 34 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": title });
  svg.append(s("title", {}, title));
  const iw = width - pad.l - pad.r, ih = height - pad.t - pad.b;
  for (const v of [0, 0.5, 1]) {
    const y = pad.t + ih * (1 - v);
    svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, stroke: "#e5e7eb" }),
      s("text", { x: pad.l - 4, y: y + 4, "text-anchor": "end" }, `${Math.round(v * 100)}%`));
  }
  if (!points.length) {
    svg.append(s("text", { x: pad.l + 8, y: pad.t + 20 }, "No data yet"));
    return svg;
  }
  const x = (i) => pad.l + (points.length === 1 ? iw / 2 : (iw * i) / (points.length - 1));
  const y = (v) => pad.t + ih * (1 - v);
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
  svg.append(s("path", { d, fill: "none", stroke: "#1d4ed8", "stroke-width": 2 }));
  points.forEach((p, i) => {
    const dot = s("circle", { cx: x(i), cy: y(p.value), r: 4, fill: "#1d4ed8" });
    dot.append(s("title", {}, `${p.label}: ${Math.round(p.value * 100)}%`));
    svg.append(dot);
  });
  const every = Math.ceil(points.length / 6);
  points.forEach((p, i) => {
    if (i % every === 0 || i === points.length - 1) {
      svg.append(s("text", { x: x(i), y: height - 12, "text-anchor": "middle" }, p.label.slice(5)));
    }
  });
  return svg;
}
