// Support console: the unanswered queue with filters, the answer form, analytics charts, and
// the delivery log of escalation notifications (issue 23). Japanese and English (issue 25).
import { apiFetch, loadIdentity, mountDevSignIn, identityHeaders } from "/static/lib/identity.js";
import { busy, el, loading, pct, say, when } from "/static/lib/dom.js";
import { barChart, lineChart } from "/static/lib/charts.js";
import { errorText, mountTopbar, pickLang, translator } from "/static/lib/i18n.js";

const i18n = translator({
  en: {
    docTitle: "Support console — Knowledge base", h1: "Support console", sections: "Console sections",
    tabQueue: "Unanswered queue", tabAnalytics: "Analytics", tabNotifications: "Notifications",
    state: "State", state_open: "open", state_answered: "answered", state_dismissed: "dismissed", state_all: "all",
    any: "any", search: "Search", searchHint: "words in the questions", refresh: "Refresh",
    groupsLabel: "Question groups", answerTitle: "Answer", editorEmpty: "Select a group to answer it.",
    answerQuestion: "Question of the Q&A entry (optional; default: the group's questions)",
    answerText: "Answer", answerGroups: "Access groups (comma-separated; empty: public)",
    publish: "Publish answer", publishNew: "Publish new version", publishing: "Publishing…",
    dismiss: "Dismiss group", dismissing: "Dismissing…", from: "From", to: "To", show: "Show",
    export: "Export CSV", exporting: "Exporting…",
    deliveriesTitle: "Notification delivery log",
    deliveriesHint: "Each escalation is sent to the configured webhook and e-mail addresses by a background worker, retried with backoff. Newest first; only deliveries of questions you may read.",
    deliveriesCaption: "Webhook and e-mail deliveries with status, attempts and last error",
    colEvent: "Event", colChannel: "Channel", colTarget: "Target", colStatus: "Status", colAttempts: "Attempts",
    colError: "Last error", colCreated: "Created", colDelivered: "Delivered",
    loadingQueue: "Loading the queue…", queueFailed: "Could not load the queue: {e}",
    groupsShown: "{n} group(s)",
    noGroups: "No questions in this view. Questions arrive here when the bot cannot answer them, when an asker gives a thumbs-down, or asks for a person.",
    questions: "{n} question(s)", users: "{n} user(s)", hidden: "{n} more you may not read",
    last: "last {t}", assigned: "assigned to {who}",
    reason_escalated: "escalated by the bot (no answer in the documents)", reason_thumbs_down: "thumbs-down",
    reason_user_escalation: "asker asked for a person",
    status_answered: "answered", status_escalated: "escalated",
    followUps: "{n} follow-up question(s): open Variants for their earlier turns",
    variants: "Variants ({n})", note: "note: {note}", noDepartment: "no department",
    answerLabel: "Answer: {a}", viewAnswer: "View answer", answerThis: "Answer this",
    searchedAs: "Searched as ({how}): ", rewrittenLlm: "rewritten by the model",
    rewrittenRule: "completed from the earlier turns", earlier: "Earlier in this conversation:",
    followUpMark: "Follow-up", group: "Group {id}: {q}",
    published: "Published: document {doc}, version {v}. The bot cites it from now on.",
    notPublished: "Not published: {e}", dismissed: "Dismissed.",
    loadingAnalytics: "Loading analytics…", analyticsFailed: "Could not load analytics: {e}",
    analyticsRange: "Analytics {from} – {to}", exportFailed: "Export failed: {e}",
    cardQuestions: "Questions", cardDeflection: "Deflection rate", cardEscalations: "Escalations",
    cardThumbsDown: "Thumbs down", cardHelpful: "Helpful share", cardPolicy: "Policy hits",
    figDeflection: "Deflection rate over time", figDepartments: "Questions per department",
    figTop: "Top questions", figUnanswered: "Top unanswered groups", figCited: "Most cited documents",
    figNeverCited: "Never cited documents", none: "None", noData: "No data yet",
    deliveriesFailed: "Could not load the delivery log: {e}",
    deliveries: "{n} deliveries, newest first.", deliveriesWithFailed: "{n} deliveries, newest first; {f} failed.",
    noDeliveries: "No deliveries yet. Escalations are sent when KB_NOTIFY__WEBHOOK_URL or KB_NOTIFY__SMTP_URL is set.",
    groupN: "group {id}", gaveUp: "gave up", nextTry: "next try {t}",
    tabMemory: "Confirmed answers", linkTitle: "Or: answered by an existing passage",
    linkHint: "Find the passage that answers these questions: the bot answers the same need from it next time.",
    linkSearch: "Words to find the passage", linkFind: "Find passages", linkResults: "Passages found",
    finding: "Finding…", noPassages: "No passage found for these words.", linkThis: "Answered by this",
    linking: "Linking…", linked: "Linked: these questions are answered from “{title}” from now on.",
    notCovered: "Not covered by the knowledge base", marking: "Marking…",
    markedGap: "Marked as not covered: the same need is escalated to support next time.",
    memoryTitle: "Confirmed answers and gaps",
    memoryHint: "Questions whose answer an asker or staff confirmed, and questions staff marked as not covered. New questions close to them are answered from the same passage, or escalated. Remove an entry that teaches the wrong thing.",
    memoryCaption: "Confirmed questions with the passage that answers them",
    mem_active: "active", mem_demoted: "demoted", mem_stale: "stale", mem_removed: "removed",
    colKind: "Kind", colQuestion: "Question", colDocument: "Document", colHow: "Confirmed by", colActions: "Actions",
    kind_pair: "answer", kind_gap: "not covered", how_helpful: "asker (helpful: first source)", how_staff_link: "staff (linked)",
    howNamed: "asker (named source [{n}] as the one that answered)",
    how_staff_answer: "staff (answer)", how_not_covered: "staff (not covered)",
    memoryEntries: "{n} entries.", noMemory: "Nothing confirmed yet. A helpful vote, a linked passage, a staff answer or a \"not covered\" mark adds an entry.",
    memoryFailed: "Could not load the confirmed answers: {e}", remove: "Remove", removing: "Removing…",
    removed: "Removed entry {id}: it no longer affects answers.",
    learned_learned: "Learned from {n} confirmed questions: on confirmed questions it was not fitted on, the first passage is right {learned} of the time (search alone: {fused}).",
    learned_gate: " It answers {answered} of them, {wrong} wrongly (held to {target}).",
    learned_gate_dropped: " Its answer gate is not used: it would answer {learned} of them right, the product's own confidence {plain}.",
    learned_after: " After its first passage the search's order follows (the confirmed passage among the first three: {after} of them; in the learned order: {learned}).",
    learned_too_few: "The ranker learns from {min} confirmed questions ({n} so far).",
    learned_no_better: "Not used: on {n} confirmed questions it was not fitted on, it ranked no better than the search alone ({learned} against {fused}).",
    learned_off: "Learning from confirmed questions is switched off (support.memory_ranker).",
    learned_fitting: "Learning from the confirmed questions…",
    matchedPair: "matched a confirmed answer ({p})", matchedGap: "matched a question marked not covered ({p})",
    cardFromMemory: "Answered from confirmed answers",
  },
  ja: {
    docTitle: "サポートコンソール — ナレッジベース", h1: "サポートコンソール", sections: "コンソールの区分",
    tabQueue: "未回答の質問", tabAnalytics: "分析", tabNotifications: "通知",
    state: "状態", state_open: "未対応", state_answered: "回答済み", state_dismissed: "却下", state_all: "すべて",
    any: "すべて", search: "検索", searchHint: "質問に含まれる語", refresh: "更新",
    groupsLabel: "質問グループ", answerTitle: "回答", editorEmpty: "回答するグループを選んでください。",
    answerQuestion: "Q&Aの質問文（任意。省略時はグループの質問）",
    answerText: "回答", answerGroups: "アクセスグループ（カンマ区切り。空欄は全員に公開）",
    publish: "回答を公開", publishNew: "新しい版を公開", publishing: "公開中…",
    dismiss: "グループを却下", dismissing: "却下中…", from: "開始日", to: "終了日", show: "表示",
    export: "CSVを書き出す", exporting: "書き出し中…",
    deliveriesTitle: "通知の配信記録",
    deliveriesHint: "エスカレーションは設定されたWebhookとメールアドレスにバックグラウンドで送られ、失敗すると間隔を空けて再送されます。新しい順。閲覧できる質問の配信だけを表示します。",
    deliveriesCaption: "Webhookとメールの配信（状態、試行回数、最後のエラー）",
    colEvent: "イベント", colChannel: "経路", colTarget: "宛先", colStatus: "状態", colAttempts: "試行回数",
    colError: "最後のエラー", colCreated: "作成", colDelivered: "配信",
    loadingQueue: "質問を読み込んでいます…", queueFailed: "質問一覧を読み込めませんでした：{e}",
    groupsShown: "{n}グループ",
    noGroups: "この条件の質問はありません。ボットが回答できなかった質問、低評価が付いた質問、担当者への引き継ぎを求められた質問がここに届きます。",
    questions: "質問{n}件", users: "{n}人", hidden: "閲覧できない質問が他に{n}件",
    last: "最終 {t}", assigned: "担当：{who}",
    reason_escalated: "ボットが引き継ぎ（資料に回答なし）", reason_thumbs_down: "低評価",
    reason_user_escalation: "質問者が担当者を希望",
    status_answered: "回答済み", status_escalated: "引き継ぎ",
    followUps: "続けての質問{n}件：「言い換え」を開くと、それまでの会話が表示されます",
    variants: "言い換え（{n}件）", note: "メモ：{note}", noDepartment: "部署なし",
    answerLabel: "回答：{a}", viewAnswer: "回答を見る", answerThis: "回答する",
    searchedAs: "検索した文（{how}）：", rewrittenLlm: "モデルが書き換え",
    rewrittenRule: "それまでの会話から補完", earlier: "この会話のそれまでの質問：",
    followUpMark: "続けての質問", group: "グループ{id}：{q}",
    published: "公開しました：文書 {doc}、第{v}版。今後ボットはこの回答を引用します。",
    notPublished: "公開できませんでした：{e}", dismissed: "却下しました。",
    loadingAnalytics: "分析を読み込んでいます…", analyticsFailed: "分析を読み込めませんでした：{e}",
    analyticsRange: "分析 {from} – {to}", exportFailed: "書き出しに失敗しました：{e}",
    cardQuestions: "質問数", cardDeflection: "自己解決率", cardEscalations: "引き継ぎ",
    cardThumbsDown: "低評価", cardHelpful: "役に立った割合", cardPolicy: "ポリシー違反",
    figDeflection: "自己解決率の推移", figDepartments: "部署別の質問数",
    figTop: "よくある質問", figUnanswered: "未回答の多いグループ", figCited: "よく引用される文書",
    figNeverCited: "引用されていない文書", none: "なし", noData: "まだデータがありません",
    deliveriesFailed: "配信記録を読み込めませんでした：{e}",
    deliveries: "{n}件の配信（新しい順）。", deliveriesWithFailed: "{n}件の配信（新しい順）。失敗{f}件。",
    noDeliveries: "配信はまだありません。KB_NOTIFY__WEBHOOK_URL または KB_NOTIFY__SMTP_URL を設定するとエスカレーションが送られます。",
    groupN: "グループ{id}", gaveUp: "再送を終了", nextTry: "次回 {t}",
    tabMemory: "確認済みの回答", linkTitle: "または：既存の箇所で回答済みにする",
    linkHint: "これらの質問に答えている箇所を探してください。次に同じ内容が聞かれたとき、ボットはその箇所から回答します。",
    linkSearch: "箇所を探す語", linkFind: "箇所を探す", linkResults: "見つかった箇所",
    finding: "検索中…", noPassages: "この語に合う箇所は見つかりませんでした。", linkThis: "この箇所で回答",
    linking: "登録中…", linked: "登録しました：今後これらの質問には「{title}」から回答します。",
    notCovered: "ナレッジベースに回答なし", marking: "登録中…",
    markedGap: "回答なしとして登録しました：同じ内容の質問は次からサポートに引き継がれます。",
    memoryTitle: "確認済みの回答と回答なしの質問",
    memoryHint: "質問者または担当者が回答を確認した質問と、担当者が「回答なし」とした質問です。これに近い新しい質問は同じ箇所から回答されるか、引き継がれます。誤った内容を教えているものは削除してください。",
    memoryCaption: "確認済みの質問とその回答箇所",
    mem_active: "有効", mem_demoted: "格下げ", mem_stale: "古い", mem_removed: "削除済み",
    colKind: "種類", colQuestion: "質問", colDocument: "文書", colHow: "確認者", colActions: "操作",
    kind_pair: "回答", kind_gap: "回答なし", how_helpful: "質問者（役に立った：最初の出典）", how_staff_link: "担当者（箇所を指定）",
    howNamed: "質問者（出典[{n}]で解決したと指定）",
    how_staff_answer: "担当者（回答を作成）", how_not_covered: "担当者（回答なし）",
    memoryEntries: "{n}件。", noMemory: "確認済みのものはまだありません。「役に立った」の評価、箇所の指定、担当者の回答、「回答なし」の登録で追加されます。",
    memoryFailed: "確認済みの回答を読み込めませんでした：{e}", remove: "削除", removing: "削除中…",
    removed: "項目{id}を削除しました。今後の回答には影響しません。",
    learned_learned: "確認済みの質問{n}件から学習しました。学習に使っていない確認済みの質問で、最初の箇所が正しい割合は{learned}です（検索のみ：{fused}）。",
    learned_gate: "そのうち{answered}に回答し、誤答は{wrong}です（上限{target}）。",
    learned_gate_dropped: "回答の判定には使っていません：正しく回答できるのは{learned}件で、製品の確信度では{plain}件です。",
    learned_after: "最初の箇所の後は検索の順に並べます（確認済みの箇所が上位 3 件に入るのは{after}件、学習した順では{learned}件）。",
    learned_too_few: "確認済みの質問が{min}件になると学習します（現在{n}件）。",
    learned_no_better: "使用していません：学習に使っていない確認済みの質問{n}件で、検索のみより良い順位になりませんでした（{learned}、検索のみ{fused}）。",
    learned_off: "確認済みの質問からの学習はオフです（support.memory_ranker）。",
    learned_fitting: "確認済みの質問から学習しています…",
    matchedPair: "確認済みの回答に一致（{p}）", matchedGap: "回答なしの質問に一致（{p}）",
    cardFromMemory: "確認済みの回答から回答",
  },
});
const t = i18n.t;
mountTopbar(document.querySelector("nav.topbar"), i18n, "/console");
i18n.apply();

const status = document.getElementById("status");
const groupsBox = document.getElementById("groups");
const filters = document.getElementById("filters");
const form = document.getElementById("answer-form");
const editorStatus = document.getElementById("editor-status");
const identity = () => loadIdentity("/console");
const api = (url, init = {}) => apiFetch(url, { identity: identity(), ...init });
let groups = [];
let selected = null;
let analyticsData = null;
let deliveryRows = null;

// Tabs (arrow keys move between them, as the ARIA tabs pattern says).
const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab) {
  for (const x of tabs) {
    const on = x === tab;
    x.setAttribute("aria-selected", String(on));
    x.tabIndex = on ? 0 : -1;
    document.getElementById(x.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
  if (tab.id === "tab-analytics") loadAnalytics();
  if (tab.id === "tab-notifications") loadNotifications();
  if (tab.id === "tab-memory") loadMemory();
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
  say(status, t("loadingQueue"));
  await loading(groupsBox, async () => {
    try {
      groups = await api(`/api/queue?state=${encodeURIComponent(f.get("state"))}&limit=200`);
      say(status, "");
    } catch (err) {
      groups = [];
      say(status, t("queueFailed", { e: errorText(err, t) }), "error");
    }
  });
  renderGroups();
}

const reasonText = (r) => i18n.word("reason_", r);

function renderGroups() {
  const f = new FormData(filters);
  const lang = f.get("lang");
  const q = String(f.get("q") || "").toLowerCase();
  const shown = groups.filter((g) => (!lang || g.languages.includes(lang)) &&
    (!q || [g.representative, ...g.variants.map((v) => v.question)].some((x) => x.toLowerCase().includes(q))));
  groupsBox.replaceChildren(el("p", { class: "meta" }, t("groupsShown", { n: shown.length })));
  if (!shown.length) groupsBox.append(el("p", { class: "empty" }, t("noGroups")));
  for (const g of shown) {
    const reasons = Object.entries(g.reasons).map(([k, v]) => `${reasonText(k)}: ${v}`).join(", ");
    const card = el("article", { class: "group", "data-group-id": g.id,
      "aria-current": String(Boolean(selected && selected.id === g.id)) },
      el("h3", {}, g.representative),
      el("div", { class: "meta" },
        el("span", { class: `badge ${g.state}` }, i18n.word("state_", g.state)), " ",
        [t("questions", { n: g.count }), t("users", { n: g.users }), g.languages.join(", "), reasons].join(" · "),
        g.hidden ? ` · ${t("hidden", { n: g.hidden })}` : "",
        ` · ${t("last", { t: when(g.last_seen) })}`, g.assignee ? ` · ${t("assigned", { who: g.assignee })}` : ""),
      followUps(g) ? el("p", { class: "meta" }, t("followUps", { n: followUps(g) })) : null,
      el("details", {}, el("summary", {}, t("variants", { n: g.variants.length })),
        el("ul", {}, g.variants.map((v) => el("li", { class: "variant", "data-query-id": v.query_id },
          isFollowUp(v) ? el("span", { class: "badge follow" }, t("followUpMark")) : null,
          isFollowUp(v) ? " " : null,
          `[${v.lang}] ${v.question}`,
          v.note ? el("em", {}, ` — ${t("note", { note: v.note })}`) : null,
          el("span", { class: "meta" }, ` (${v.department || t("noDepartment")}, ${i18n.word("status_", v.status)}; ${v.reasons.map(reasonText).join(", ")})`),
          memoryOf(v),
          conversationOf(v))))),
      g.answer ? el("p", { class: "meta" }, t("answerLabel", { a: g.answer })) : null,
      el("button", { type: "button", class: "select", onclick: () => select(g) },
        g.state === "answered" ? t("viewAnswer") : t("answerThis")));
    groupsBox.append(card);
  }
}

/** What the question memory said about a question (issue 22): a close confirmed answer or gap. */
function memoryOf(v) {
  const shown = (v.memory || []).filter((m) => m.lifted || m.applied || m.p >= 0.5);
  if (!shown.length) return null;
  return el("span", { class: "badge memory" }, " ", shown.map((m) => t(m.kind === "gap" ? "matchedGap" : "matchedPair", { p: pct(m.p) })).join("; "));
}

function isFollowUp(v) {
  return Boolean(v.rewritten || (v.earlier_turns && v.earlier_turns.length));
}

function followUps(g) {
  return g.variants.filter(isFollowUp).length;
}

// A queued follow-up (issue 23): what was searched for it and the turns before it, so staff read
// "and the drum unit?" as the asker meant it, whatever brought it here (the bot's escalation, a
// thumbs-down or the asker's request, issue 25).
function conversationOf(v) {
  const earlier = v.earlier_turns || [];
  if (!v.rewritten && !earlier.length) return null;
  const how = v.rewrite_mode === "llm" ? t("rewrittenLlm") : t("rewrittenRule");
  return el("div", { class: "conversation" },
    v.rewritten ? el("p", { class: "rewritten" }, el("span", { class: "label" }, t("searchedAs", { how })),
      el("q", {}, v.rewritten)) : null,
    earlier.length ? el("div", { class: "earlier" },
      el("span", { class: "label" }, t("earlier")),
      el("ol", {}, earlier.map((x) => el("li", { "data-query-id": x.query_id }, x.question,
        el("span", { class: "meta" }, ` (${i18n.word("status_", x.status)}${x.asked_at ? `, ${when(x.asked_at)}` : ""})`))))) : null);
}

function publishLabel() {
  return selected && selected.state === "answered" ? t("publishNew") : t("publish");
}

function select(g) {
  selected = g;
  document.getElementById("editor-empty").hidden = true;
  form.hidden = false;
  document.getElementById("editor-question").textContent = t("group", { id: g.id, q: g.representative });
  form.elements.answer.value = g.answer || "";
  form.elements.question.value = "";
  form.elements.groups.value = "";
  document.getElementById("publish").textContent = publishLabel();
  document.getElementById("passage-q").value = "";
  passages.replaceChildren();
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
  await busy(document.getElementById("publish"), t("publishing"), async () => {
    try {
      const method = selected.state === "answered" ? "PUT" : "POST";
      const entry = await api(`/api/queue/${selected.id}/answer`, { method, json: body });
      say(editorStatus, t("published", { doc: entry.document_id, v: entry.version }), "ok");
      await loadQueue();
    } catch (err) {
      say(editorStatus, t("notPublished", { e: errorText(err, t) }), "error");
    }
  });
});

document.getElementById("dismiss").addEventListener("click", async (e) => {
  if (!selected) return;
  await busy(e.currentTarget, t("dismissing"), async () => {
    try {
      await api(`/api/queue/${selected.id}`, { method: "PATCH", json: { state: "dismissed" } });
      say(editorStatus, t("dismissed"), "ok");
      await loadQueue();
    } catch (err) {
      say(editorStatus, errorText(err, t), "error");
    }
  });
});

// "Answered by ...": a passage picker over what the signed-in agent may read (issue 22).
const passages = document.getElementById("passages");
document.getElementById("find-passages").addEventListener("click", async (e) => {
  if (!selected) return;
  const q = document.getElementById("passage-q").value.trim() || selected.representative;
  await busy(e.currentTarget, t("finding"), async () => {
    try {
      const found = await api(`/api/memory/passages?q=${encodeURIComponent(q)}&limit=8`);
      passages.replaceChildren(...(found.length ? found.map((p) => el("li", {},
        el("strong", {}, p.title), p.location ? ` — ${p.location}` : "",
        el("p", { class: "snippet" }, p.snippet),
        el("button", { type: "button", onclick: (ev) => link(ev.currentTarget, p) }, t("linkThis"))))
        : [el("li", { class: "empty" }, t("noPassages"))]));
    } catch (err) {
      say(editorStatus, errorText(err, t), "error");
    }
  });
});

async function link(button, passage) {
  await busy(button, t("linking"), async () => {
    try {
      await api(`/api/queue/${selected.id}/link`, { method: "POST", json: { document_id: passage.document_id, chunk_id: passage.chunk_id } });
      passages.replaceChildren();
      say(editorStatus, t("linked", { title: passage.title }), "ok");
      await loadQueue();
    } catch (err) {
      say(editorStatus, errorText(err, t), "error");
    }
  });
}

document.getElementById("not-covered").addEventListener("click", async (e) => {
  if (!selected) return;
  await busy(e.currentTarget, t("marking"), async () => {
    try {
      await api(`/api/queue/${selected.id}/not-covered`, { method: "POST" });
      say(editorStatus, t("markedGap"), "ok");
      await loadQueue();
    } catch (err) {
      say(editorStatus, errorText(err, t), "error");
    }
  });
});

// Confirmed answers and gaps (issue 22).
const memoryFilters = document.getElementById("memory-filters");
const memoryNote = document.getElementById("memory-note");
const memoryBody = document.querySelector("#memory tbody");
async function loadMemory() {
  const state = new FormData(memoryFilters).get("state");
  let entries;
  try {
    entries = await api(`/api/memory?state=${encodeURIComponent(state)}&limit=500`);
  } catch (err) {
    say(memoryNote, t("memoryFailed", { e: errorText(err, t) }), "error");
    return;
  }
  say(memoryNote, entries.length ? t("memoryEntries", { n: entries.length }) : t("noMemory"));
  loadLearning();
  memoryBody.replaceChildren(...entries.map((m) => el("tr", { "data-entry-id": m.id },
    el("td", {}, i18n.word("kind_", m.kind)),
    el("td", {}, `[${m.lang}] ${m.question}`),
    el("td", {}, m.document_id || "—"),
    el("td", {}, `${m.citation ? t("howNamed", { n: m.citation }) : i18n.word("how_", m.how)} ${m.confirmed_by}`),
    el("td", {}, i18n.word("mem_", m.state), m.note ? el("span", { class: "meta" }, ` (${m.note})`) : null),
    el("td", {}, when(m.created_at)),
    el("td", {}, m.state === "removed" ? "" : el("button", { type: "button", class: "danger",
      "aria-label": `${t("remove")} ${m.id}`, onclick: (ev) => removeEntry(ev.currentTarget, m) }, t("remove"))))));
}
/** What the confirmed answers taught: the learned ranker's state and its out-of-fold figures. */
async function loadLearning() {
  const line = document.getElementById("memory-learning");
  try {
    const l = await api("/api/memory/learning");
    line.textContent = t(`learned_${l.ranker}`, { n: l.questions, min: l.min_questions,
      learned: pct(l.learned_first_right ?? 0), fused: pct(l.fused_first_right ?? 0) });
    if (l.ranker === "learned" && l.target_wrong_rate != null) {
      line.textContent += t("learned_gate", { answered: pct(l.validated_answered),
        wrong: pct(l.validated_wrong_rate), target: pct(l.target_wrong_rate) });
    } else if (l.ranker === "learned" && l.answerability_right != null && !l.answerability) {
      line.textContent += t("learned_gate_dropped", { learned: l.answerability_right,
        plain: l.configured_right });
    }
    if (l.ranker === "learned" && l.search_after) {
      line.textContent += t("learned_after", { after: l.search_after_cited, learned: l.learned_cited });
    }
  } catch (err) {
    line.textContent = errorText(err, t);
  }
}
async function removeEntry(button, entry) {
  await busy(button, t("removing"), async () => {
    try {
      await api(`/api/memory/${entry.id}`, { method: "DELETE" });
      await loadMemory();
      say(memoryNote, t("removed", { id: entry.id }), "ok");
    } catch (err) {
      say(memoryNote, errorText(err, t), "error");
    }
  });
}
memoryFilters.addEventListener("submit", (e) => {
  e.preventDefault();
  busy(document.getElementById("memory-refresh"), null, loadMemory);
});

filters.addEventListener("submit", (e) => {
  e.preventDefault();
  busy(document.getElementById("refresh"), null, loadQueue);
});
filters.elements.lang.addEventListener("change", renderGroups);
filters.elements.q.addEventListener("input", renderGroups);
filters.elements.state.addEventListener("change", loadQueue);

// Analytics.
const range = document.getElementById("range");
range.addEventListener("submit", (e) => {
  e.preventDefault();
  busy(document.getElementById("show"), null, loadAnalytics);
});
document.getElementById("export").addEventListener("click", async (e) => {
  // A plain link cannot carry the identity headers: fetch, then save the blob.
  await busy(e.currentTarget, t("exporting"), async () => {
    const resp = await fetch(`/api/analytics/export.csv?${rangeQuery()}`,
      { headers: { "Accept-Language": pickLang(), ...identityHeaders(identity()) } });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      say(status, t("exportFailed", { e: body.message || body.detail || resp.status }), "error");
      return;
    }
    const a = el("a", { href: URL.createObjectURL(await resp.blob()), download: "kb-queries.csv" });
    a.click();
    URL.revokeObjectURL(a.href);
  });
});

function rangeQuery() {
  const p = new URLSearchParams();
  for (const k of ["from", "to"]) if (range.elements[k].value) p.set(k, range.elements[k].value);
  return p.toString();
}

async function loadAnalytics() {
  const cards = document.getElementById("cards");
  say(status, t("loadingAnalytics"));
  try {
    analyticsData = await loading(cards, () => api(`/api/analytics/summary?${rangeQuery()}`));
  } catch (err) {
    analyticsData = null;
    say(status, t("analyticsFailed", { e: errorText(err, t) }), "error");
    return;
  }
  renderAnalytics();
}

function renderAnalytics() {
  const a = analyticsData;
  if (!a) return;
  const cards = document.getElementById("cards");
  const charts = document.getElementById("charts");
  say(status, t("analyticsRange", { from: a.from, to: a.to }));
  const card = (k, v) => el("div", { class: "card" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  cards.replaceChildren(card(t("cardQuestions"), a.questions), card(t("cardDeflection"), pct(a.deflection_rate)),
    card(t("cardEscalations"), a.escalations), card(t("cardThumbsDown"), a.thumbs_down),
    card(t("cardHelpful"), pct(a.helpful_share)), card(t("cardPolicy"), a.policy_hits),
    card(t("cardFromMemory"), `${a.from_memory ?? 0} (${pct(a.memory_share)})`));
  const empty = t("noData");
  const fig = (title, svg) => el("figure", {}, el("figcaption", {}, title), svg);
  charts.replaceChildren(
    fig(t("figDeflection"), lineChart(a.per_day.map((d) => ({ label: d.date, value: d.deflection_rate || 0 })),
      { title: t("figDeflection"), empty })),
    fig(t("figDepartments"), barChart(a.per_department.map((d) => ({ label: d.department || t("noDepartment"), value: d.questions })),
      { title: t("figDepartments"), empty })),
    fig(t("figTop"), barChart(a.top_questions.map((q) => ({ label: q.question, value: q.count })),
      { title: t("figTop"), color: "#0f766e", empty })),
    fig(t("figUnanswered"), barChart(a.top_unanswered_groups.map((g) => ({ label: g.representative, value: g.count })),
      { title: t("figUnanswered"), color: "#b91c1c", empty })),
    fig(t("figCited"), barChart(a.most_cited_documents.map((d) => ({ label: d.title || d.document_id, value: d.citations })),
      { title: t("figCited"), color: "#7c3aed", empty })),
    fig(t("figNeverCited"), el("ul", {}, a.never_cited_documents.length
      ? a.never_cited_documents.map((d) => el("li", {}, d.title || d.document_id)) : el("li", {}, t("none")))),
  );
}

// Notifications: the delivery log of escalation webhooks and e-mails (GET /api/notifications).
const deliveriesBody = document.querySelector("#deliveries tbody");
const deliveriesNote = document.getElementById("deliveries-note");
document.getElementById("deliveries-refresh").addEventListener("click", (e) => busy(e.currentTarget, null, loadNotifications));

async function loadNotifications() {
  say(deliveriesNote, t("loading"));
  try {
    deliveryRows = await loading(deliveriesBody, () => api("/api/notifications?limit=200"));
  } catch (err) {
    deliveryRows = null;
    deliveriesBody.replaceChildren();
    say(deliveriesNote, t("deliveriesFailed", { e: errorText(err, t) }), "error");
    return;
  }
  renderNotifications();
}

function renderNotifications() {
  const rows = deliveryRows;
  if (!rows) return;
  const failed = rows.filter((r) => r.status === "failed").length;
  say(deliveriesNote, rows.length
    ? (failed ? t("deliveriesWithFailed", { n: rows.length, f: failed }) : t("deliveries", { n: rows.length }))
    : t("noDeliveries"), failed ? "error" : "info");
  deliveriesBody.replaceChildren(...rows.map((r) => el("tr", { "data-delivery-id": r.id, "data-status": r.status },
    el("td", {}, r.event, r.group_id ? el("div", { class: "meta" }, t("groupN", { id: r.group_id })) : null),
    el("td", {}, r.channel),
    el("td", { class: "target" }, r.target),
    el("td", {}, el("span", { class: `badge ${r.status}` }, r.status)),
    el("td", { class: "num" }, r.attempts),
    el("td", { class: "error" }, r.last_error || "–"),
    el("td", {}, when(r.created_at)),
    el("td", {}, r.delivered_at ? when(r.delivered_at)
      : r.status === "failed" ? t("gaveUp") : t("nextTry", { t: when(r.next_attempt_at) })))));
}

// A language switch redraws what is on screen in the other language, without asking again.
i18n.onChange(() => {
  renderGroups();
  if (selected) {
    document.getElementById("editor-question").textContent = t("group", { id: selected.id, q: selected.representative });
    document.getElementById("publish").textContent = publishLabel();
  }
  renderAnalytics();
  renderNotifications();
});

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "support-1", roles: "support", groups: "", department: "support" },
  i18n,
  scope: "/console",
  onChange: () => {
    loadQueue();
    if (!document.getElementById("panel-analytics").hidden) loadAnalytics();
    if (!document.getElementById("panel-notifications").hidden) loadNotifications();
  },
});
