// Support console: the unanswered queue with filters, the answer form, analytics charts, and
// the delivery log of escalation notifications (issue 23).
import { apiFetch, loadIdentity, mountDevSignIn, identityHeaders } from "/static/lib/identity.js";
import { el, pct, say, when } from "/static/lib/dom.js";
import { barChart, lineChart } from "/static/lib/charts.js";

const status = document.getElementById("status");
const groupsBox = document.getElementById("groups");
const filters = document.getElementById("filters");
const form = document.getElementById("answer-form");
const editorStatus = document.getElementById("editor-status");
let groups = [];
let selected = null;

// Tabs (arrow keys move between them, as the ARIA tabs pattern says).
const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
  if (tab.id === "tab-analytics") loadAnalytics();
  if (tab.id === "tab-notifications") loadNotifications();
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      selectTab(tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length]);
    }
  });
});

async function loadQueue() {
  const f = new FormData(filters);
  try {
    groups = await apiFetch(`/api/queue?state=${encodeURIComponent(f.get("state"))}&limit=200`);
    say(status, "");
  } catch (err) {
    groups = [];
    say(status, `Could not load the queue: ${err.message}`, "error");
  }
  renderGroups();
}

function renderGroups() {
  const f = new FormData(filters);
  const lang = f.get("lang");
  const q = String(f.get("q") || "").toLowerCase();
  const shown = groups.filter((g) => (!lang || g.languages.includes(lang)) &&
    (!q || [g.representative, ...g.variants.map((v) => v.question)].some((t) => t.toLowerCase().includes(q))));
  groupsBox.replaceChildren(el("p", { class: "meta" }, `${shown.length} group(s)`));
  for (const g of shown) {
    const reasons = Object.entries(g.reasons).map(([k, v]) => `${k} ${v}`).join(", ");
    const card = el("article", { class: "group", "data-group-id": g.id,
      "aria-current": String(selected && selected.id === g.id) },
      el("h3", {}, g.representative),
      el("div", { class: "meta" },
        el("span", { class: `badge ${g.state}` }, g.state), " ",
        `${g.count} question(s) · ${g.users} user(s) · ${g.languages.join(", ")} · ${reasons}`,
        g.hidden ? ` · ${g.hidden} more you may not read` : "",
        ` · last ${when(g.last_seen)}`, g.assignee ? ` · assigned to ${g.assignee}` : ""),
      followUps(g) ? el("p", { class: "meta" }, `${followUps(g)} follow-up question(s): open Variants for their earlier turns`) : null,
      el("details", {}, el("summary", {}, `Variants (${g.variants.length})`),
        el("ul", {}, g.variants.map((v) => el("li", { "data-query-id": v.query_id }, `[${v.lang}] ${v.question}`,
          v.note ? el("em", {}, ` — note: ${v.note}`) : null,
          el("span", { class: "meta" }, ` (${v.department || "no department"}, ${v.reasons.join(", ")})`),
          conversationOf(v))))),
      g.answer ? el("p", { class: "meta" }, `Answer: ${g.answer}`) : null,
      el("button", { type: "button", class: "select", onclick: () => select(g) },
        g.state === "answered" ? "View answer" : "Answer this"));
    groupsBox.append(card);
  }
}

function followUps(g) {
  return g.variants.filter((v) => v.rewritten || (v.earlier_turns && v.earlier_turns.length)).length;
}

// A queued follow-up (issue 23): what was searched for it and the turns before it, so staff read
// "and the drum unit?" as the asker meant it.
function conversationOf(v) {
  const earlier = v.earlier_turns || [];
  if (!v.rewritten && !earlier.length) return null;
  const how = v.rewrite_mode === "llm" ? "rewritten by the model" : "completed from the earlier turns";
  return el("div", { class: "conversation" },
    v.rewritten ? el("p", { class: "rewritten" }, el("span", { class: "label" }, `Searched as (${how}): `),
      el("q", {}, v.rewritten)) : null,
    earlier.length ? el("div", { class: "earlier" },
      el("span", { class: "label" }, "Earlier in this conversation:"),
      el("ol", {}, earlier.map((t) => el("li", { "data-query-id": t.query_id }, t.question,
        el("span", { class: "meta" }, ` (${t.status}${t.asked_at ? `, ${when(t.asked_at)}` : ""})`))))) : null);
}

function select(g) {
  selected = g;
  document.getElementById("editor-empty").hidden = true;
  form.hidden = false;
  document.getElementById("editor-question").textContent = `Group ${g.id}: ${g.representative}`;
  form.elements.answer.value = g.answer || "";
  form.elements.question.value = "";
  form.elements.groups.value = "";
  document.getElementById("publish").textContent = g.state === "answered" ? "Publish new version" : "Publish answer";
  say(editorStatus, "");
  renderGroups();
  form.elements.answer.focus();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!selected) return;
  const body = { answer: form.elements.answer.value.trim() };
  if (form.elements.question.value.trim()) body.question = form.elements.question.value.trim();
  const g = form.elements.groups.value.split(",").map((x) => x.trim()).filter(Boolean);
  if (g.length) body.groups = g;
  try {
    const method = selected.state === "answered" ? "PUT" : "POST";
    const entry = await apiFetch(`/api/queue/${selected.id}/answer`, { method, json: body });
    say(editorStatus, `Published: document ${entry.document_id}, version ${entry.version}. The bot cites it from now on.`, "ok");
    await loadQueue();
  } catch (err) {
    say(editorStatus, `Not published: ${err.message}`, "error");
  }
});

document.getElementById("dismiss").addEventListener("click", async () => {
  if (!selected) return;
  try {
    await apiFetch(`/api/queue/${selected.id}`, { method: "PATCH", json: { state: "dismissed" } });
    say(editorStatus, "Dismissed.", "ok");
    await loadQueue();
  } catch (err) {
    say(editorStatus, err.message, "error");
  }
});

filters.addEventListener("submit", (e) => { e.preventDefault(); loadQueue(); });
filters.elements.lang.addEventListener("change", renderGroups);
filters.elements.q.addEventListener("input", renderGroups);
filters.elements.state.addEventListener("change", loadQueue);

// Analytics.
const range = document.getElementById("range");
range.addEventListener("submit", (e) => { e.preventDefault(); loadAnalytics(); });
document.getElementById("export").addEventListener("click", async (e) => {
  // A plain link cannot carry the identity headers: fetch, then save the blob.
  e.preventDefault();
  const resp = await fetch(`/api/analytics/export.csv?${rangeQuery()}`, { headers: identityHeaders(loadIdentity()) });
  if (!resp.ok) { say(status, `Export failed (${resp.status})`, "error"); return; }
  const a = el("a", { href: URL.createObjectURL(await resp.blob()), download: "kb-queries.csv" });
  a.click();
  URL.revokeObjectURL(a.href);
});

function rangeQuery() {
  const p = new URLSearchParams();
  for (const k of ["from", "to"]) if (range.elements[k].value) p.set(k, range.elements[k].value);
  return p.toString();
}

async function loadAnalytics() {
  const cards = document.getElementById("cards");
  const charts = document.getElementById("charts");
  let a;
  try {
    a = await apiFetch(`/api/analytics/summary?${rangeQuery()}`);
  } catch (err) {
    say(status, `Could not load analytics: ${err.message}`, "error");
    return;
  }
  say(status, `Analytics ${a.from} – ${a.to}`);
  const card = (k, v) => el("div", { class: "card" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  cards.replaceChildren(card("Questions", a.questions), card("Deflection rate", pct(a.deflection_rate)),
    card("Escalations", a.escalations), card("Thumbs down", a.thumbs_down),
    card("Helpful share", pct(a.helpful_share)), card("Policy hits", a.policy_hits));
  const fig = (title, svg, extra) => el("figure", {}, el("figcaption", {}, title), svg, extra || null);
  charts.replaceChildren(
    fig("Deflection rate over time", lineChart(a.per_day.map((d) => ({ label: d.date, value: d.deflection_rate || 0 })),
      { title: "Deflection rate per day" })),
    fig("Questions per department", barChart(a.per_department.map((d) => ({ label: d.department, value: d.questions })),
      { title: "Questions per department" })),
    fig("Top questions", barChart(a.top_questions.map((q) => ({ label: q.question, value: q.count })),
      { title: "Top questions", color: "#0f766e" })),
    fig("Top unanswered groups", barChart(a.top_unanswered_groups.map((g) => ({ label: g.representative, value: g.count })),
      { title: "Top unanswered groups", color: "#b91c1c" })),
    fig("Most cited documents", barChart(a.most_cited_documents.map((d) => ({ label: d.title || d.document_id, value: d.citations })),
      { title: "Most cited documents", color: "#7c3aed" })),
    fig("Never cited documents", el("ul", {}, a.never_cited_documents.length
      ? a.never_cited_documents.map((d) => el("li", {}, d.title || d.document_id)) : el("li", {}, "None"))),
  );
}

// Notifications: the delivery log of escalation webhooks and e-mails (GET /api/notifications).
const deliveriesBody = document.querySelector("#deliveries tbody");
const deliveriesNote = document.getElementById("deliveries-note");
document.getElementById("deliveries-refresh").addEventListener("click", loadNotifications);

async function loadNotifications() {
  let rows;
  try {
    rows = await apiFetch("/api/notifications?limit=200");
  } catch (err) {
    deliveriesBody.replaceChildren();
    say(deliveriesNote, `Could not load the delivery log: ${err.message}`, "error");
    return;
  }
  const failed = rows.filter((r) => r.status === "failed").length;
  say(deliveriesNote, rows.length
    ? `${rows.length} deliver${rows.length === 1 ? "y" : "ies"}, newest first${failed ? `; ${failed} failed` : ""}.`
    : "No deliveries yet. Escalations are sent when KB_NOTIFY__WEBHOOK_URL or KB_NOTIFY__SMTP_URL is set.",
    failed ? "error" : "info");
  deliveriesBody.replaceChildren(...rows.map((r) => el("tr", { "data-delivery-id": r.id, "data-status": r.status },
    el("td", {}, r.event, r.group_id ? el("div", { class: "meta" }, `group ${r.group_id}`) : null),
    el("td", {}, r.channel),
    el("td", { class: "target" }, r.target),
    el("td", {}, el("span", { class: `badge ${r.status}` }, r.status)),
    el("td", { class: "num" }, r.attempts),
    el("td", { class: "error" }, r.last_error || "–"),
    el("td", {}, when(r.created_at)),
    el("td", {}, r.delivered_at ? when(r.delivered_at)
      : r.status === "failed" ? "gave up" : `next try ${when(r.next_attempt_at)}`))));
}

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "support-1", roles: "support", groups: "", department: "support" },
  onChange: () => {
    loadQueue();
    if (!document.getElementById("panel-analytics").hidden) loadAnalytics();
    if (!document.getElementById("panel-notifications").hidden) loadNotifications();
  },
});
