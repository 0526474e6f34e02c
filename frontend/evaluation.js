// Evaluation page: runs from `kb eval` with their headline metrics and HTML reports; when there
// is none, what to run to make one (issue 25). Japanese and English.
import { apiFetch, identityHeaders, loadIdentity, mountDevSignIn } from "/static/lib/identity.js";
import { busy, el, loading, num, pct, say, when } from "/static/lib/dom.js";
import { errorText, mountTopbar, translator } from "/static/lib/i18n.js";

const i18n = translator({
  en: {
    docTitle: "Evaluation — Knowledge base", h1: "Evaluation runs",
    caption: "Evaluation runs with their headline metrics",
    emptyWhy: "No evaluation run yet: this page lists the runs of kb eval, read from the server's KB_EVAL_DIR (./eval-runs by default).",
    emptyHow: "To make one, run on the server, from the repository:",
    emptyOwn: "Your own questions: a JSONL file with one case per line (see the README, \"Evaluation\").",
    colRun: "Run", colDataset: "Dataset", colQuestions: "Questions", colDeflection: "Deflection",
    colWrong: "Wrong answers", colEscalation: "Escalation recall", colFaithfulness: "Faithfulness",
    colP95: "p95 ms", colReport: "Report", loadingRuns: "Loading evaluation runs…",
    runsFailed: "Could not load evaluation runs: {e}", runs: "{n} run(s)", noRuns: "No runs.",
    openReport: "Open report", opening: "Opening…", noReport: "no report",
    reportFailed: "Report not available ({status})",
  },
  ja: {
    docTitle: "評価 — ナレッジベース", h1: "評価の実行記録",
    caption: "評価の実行記録と主な指標",
    emptyWhy: "評価の実行記録はまだありません。このページはサーバーの KB_EVAL_DIR（既定は ./eval-runs）にある kb eval の実行記録を表示します。",
    emptyHow: "サーバーのリポジトリで次を実行すると作成されます：",
    emptyOwn: "独自の質問で評価するには、1行に1件のJSONLファイルを用意します（READMEの「Evaluation」を参照）。",
    colRun: "実行", colDataset: "データセット", colQuestions: "質問数", colDeflection: "自己解決率",
    colWrong: "誤回答率", colEscalation: "引き継ぎの再現率", colFaithfulness: "忠実性",
    colP95: "p95（ミリ秒）", colReport: "レポート", loadingRuns: "評価の実行記録を読み込んでいます…",
    runsFailed: "評価の実行記録を読み込めませんでした：{e}", runs: "{n}件の実行", noRuns: "実行記録なし。",
    openReport: "レポートを開く", opening: "開いています…", noReport: "レポートなし",
    reportFailed: "レポートを表示できません（{status}）",
  },
});
const t = i18n.t;
mountTopbar(document.querySelector("nav.topbar"), i18n, "/evaluation");
i18n.apply();

const status = document.getElementById("status");
const body = document.querySelector("#runs tbody");
const empty = document.getElementById("empty");
const wrap = document.getElementById("runs-wrap");
const identity = () => loadIdentity("/evaluation");
let runs = null;

async function openReport(run, button) {
  // The report needs the identity headers, which a plain link cannot send: fetch, then show.
  await busy(button, t("opening"), async () => {
    const resp = await fetch(run.report_url, { headers: identityHeaders(identity()) });
    if (!resp.ok) { say(status, t("reportFailed", { status: resp.status }), "error"); return; }
    const url = URL.createObjectURL(new Blob([await resp.text()], { type: "text/html" }));
    window.open(url, "_blank", "noopener");
  });
}

async function load() {
  say(status, t("loadingRuns"));
  try {
    runs = await loading(body, () => apiFetch("/api/eval/runs", { identity: identity() }));
  } catch (err) {
    runs = null;
    body.replaceChildren();
    empty.hidden = true;
    say(status, t("runsFailed", { e: errorText(err, t) }), "error");
    return;
  }
  render();
}

function render() {
  if (!runs) return;
  // No run: say why the table is empty and what makes one (issue 25).
  empty.hidden = runs.length > 0;
  wrap.hidden = runs.length === 0;
  say(status, runs.length ? t("runs", { n: runs.length }) : t("noRuns"));
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
          ? el("button", { type: "button", class: "report", onclick: (e) => openReport(r, e.currentTarget) }, t("openReport"))
          : t("noReport")) : null));
    });
  }
}

i18n.onChange(render);

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "evaluator-1", roles: "evaluator", groups: "", department: "" },
  i18n,
  scope: "/evaluation",
  onChange: load,
});
