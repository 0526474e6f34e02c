// Inline SVG charts drawn by hand (no chart library). Labels are text nodes, never markup.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Roughly how wide `text` is at 11px: CJK characters are about twice a Latin letter. */
function textWidth(text) {
  let w = 0;
  for (const ch of String(text)) w += /[\u1100-\uffdc]/.test(ch) ? 11 : 6.2;
  return w;
}

/** `text` cut with an ellipsis to fit `room` pixels. */
function fit(text, room) {
  const t = String(text);
  if (textWidth(t) <= room) return t;
  let out = "";
  for (const ch of t) {
    if (textWidth(`${out}${ch}…`) > room) break;
    out += ch;
  }
  return `${out}…`;
}

/** Horizontal bars: rows [{label, value}]. Each label sits on its own line above its bar,
 * across the whole width, so long (and Japanese) labels are not cut at the chart's edge
 * (issue 25); the full label is the tooltip of the label and of the bar. */
export function barChart(rows, { title, format = (v) => String(v), width = 420, color = "#1d4ed8",
  empty = "No data yet" } = {}) {
  const bar = 16, labelH = 16, gap = 8, right = 44;
  const step = labelH + bar + gap;
  const height = Math.max(40, rows.length * step + 4);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": title });
  svg.append(s("title", {}, title));
  if (!rows.length) {
    svg.append(s("text", { x: 8, y: 24 }, empty));
    return svg;
  }
  const max = Math.max(...rows.map((r) => r.value), 1e-9);
  rows.forEach((r, i) => {
    const y = 2 + i * step;
    const w = Math.max(1, ((width - right) * r.value) / max);
    // x 2, not 0: a capital T or V reaches left of its origin in some fonts (issue 22's CI).
    const label = s("text", { x: 2, y: y + 12 }, fit(r.label, width - 6));
    label.append(s("title", {}, String(r.label)));
    const rect = s("rect", { x: 0, y: y + labelH, width: w, height: bar, fill: color, rx: 3 });
    rect.append(s("title", {}, `${r.label}: ${format(r.value)}`));
    svg.append(label, rect, s("text", { x: w + 4, y: y + labelH + bar * 0.75 }, format(r.value)));
  });
  return svg;
}

/** A line over days: points [{label, value}] with value in [0, 1] (a rate). */
export function lineChart(points, { title, width = 420, height = 200, empty = "No data yet" } = {}) {
  const pad = { l: 40, r: 24, t: 10, b: 34 };
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
    svg.append(s("text", { x: pad.l + 8, y: pad.t + 20 }, empty));
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
      // The first and last dates are anchored inside the chart, not centred past its edges.
      const anchor = points.length > 1 && i === 0 ? "start" : points.length > 1 && i === points.length - 1 ? "end" : "middle";
      svg.append(s("text", { x: x(i), y: height - 12, "text-anchor": anchor }, p.label.slice(5)));
    }
  });
  return svg;
}
