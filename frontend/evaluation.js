// Evaluation page: runs from `kb eval` with their headline metrics and HTML reports.
import { apiFetch, identityHeaders, loadIdentity, mountDevSignIn } from "/static/lib/identity.js";
import { el, num, pct, say, when } from "/static/lib/dom.js";

const status = document.getElementById("status");
const body = document.querySelector("#runs tbody");

async function openReport(run) {
  // The report needs the identity headers, which a plain link cannot send: fetch, then show.
  const resp = await fetch(run.report_url, { headers: identityHeaders(loadIdentity()) });
  if (!resp.ok) { say(status, `Report not available (${resp.status})`, "error"); return; }
  const url = URL.createObjectURL(new Blob([await resp.text()], { type: "text/html" }));
  window.open(url, "_blank", "noopener");
}

async function load() {
  let runs;
  try {
    runs = await apiFetch("/api/eval/runs");
  } catch (err) {
    body.replaceChildren();
    say(status, `Could not load evaluation runs: ${err.message}`, "error");
    return;
  }
  say(status, `${runs.length} run(s)`);
  body.replaceChildren();
  for (const r of runs) {
    r.datasets.forEach((d, i) => {
      const m = d.metrics;
      body.append(el("tr", { "data-run-id": r.id },
        i === 0 ? el("th", { scope: "row", rowspan: r.datasets.length },
          when(r.time), el("div", { class: "meta" }, r.commit ? r.commit.slice(0, 10) : "")) : null,
        el("td", {}, d.name, d.variant && d.variant !== "default" ? ` (${d.variant})` : ""),
        el("td", { class: "num" }, d.questions ?? "–"),
        el("td", { class: "num" }, num(m["recall@10"])), el("td", { class: "num" }, num(m["mrr@10"])),
        el("td", { class: "num" }, num(m["ndcg@10"])), el("td", { class: "num" }, pct(m.deflection_rate)),
        el("td", { class: "num" }, pct(m.wrong_answer_rate)), el("td", { class: "num" }, pct(m.escalation_recall)),
        el("td", { class: "num" }, pct(m.faithfulness)), el("td", { class: "num" }, num(m.latency_p95_ms, 0)),
        i === 0 ? el("td", { rowspan: r.datasets.length }, r.report_url
          ? el("button", { type: "button", class: "report", onclick: () => openReport(r) }, "Open report")
          : "no report") : null));
    });
  }
}

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "evaluator-1", roles: "evaluator", groups: "", department: "" },
  onChange: load,
});
