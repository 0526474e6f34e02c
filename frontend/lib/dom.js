// Tiny DOM helpers shared by the pages. Server text always goes in as text nodes.

/** el("p", {class: "x"}, "text", child) -> element; attributes set with setAttribute. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export function pct(x) {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`;
}

export function num(x, digits = 3) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(document.documentElement.lang || undefined);
}

/** Show a message in a status element (role=status or alert). */
export function say(node, text, kind = "info") {
  node.textContent = text;
  node.dataset.kind = kind;
}

/**
 * Run `work` with `control` busy (issue 25): disabled, aria-busy, its label replaced by
 * `label` (e.g. "Publishing…") until the work ends, whatever the outcome. Returns its result.
 */
export async function busy(control, label, work) {
  const before = control.textContent;
  control.disabled = true;
  control.setAttribute("aria-busy", "true");
  if (label) control.textContent = label;
  try {
    return await work();
  } finally {
    control.disabled = false;
    control.setAttribute("aria-busy", "false");
    if (label && control.textContent === label) control.textContent = before;
  }
}

/** A region that is loading: aria-busy while `work` runs. */
export async function loading(region, work) {
  region.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    region.setAttribute("aria-busy", "false");
  }
}
