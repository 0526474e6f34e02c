// The ask page (/): posts to /api/ask/stream and renders the answer with clickable citations,
// helpful / not helpful buttons, in Japanese or English (issue 25). A conversation reads top to
// bottom and survives a reload, so a follow-up is always shown under the turn it continues.
// Text from the server is always inserted as text, never as HTML.
import { apiFetch, identityHeaders, loadIdentity } from "/static/lib/identity.js";
import { el } from "/static/lib/dom.js";
import { mountLangSwitch, translator } from "/static/lib/i18n.js";

const i18n = translator({
  en: {
    docTitle: "Ask the knowledge base", brand: "Knowledge base", title: "Ask the knowledge base", ask: "Ask",
    asking: "Asking…", label: "Your question", conversation: "Conversation",
    placeholder: "e.g. How do I replace the toner? / トナーカートリッジを交換するには？",
    hint: "Ask about our products in English or Japanese. Every answer cites its sources; if the documents don't answer it, your question goes to the support team.",
    enterHint: "Enter sends; Shift+Enter starts a new line.",
    sources: "Sources", confidence: "confidence", error: "Something went wrong",
    newConversation: "New conversation", thinking: "Looking it up…",
    started: "New conversation started. Earlier questions no longer shape the answers.",
    followUp: "Follow-up", continues: "Continues: {q}",
    generated: "written by the assistant from the sources, each sentence checked",
    extractive: "quoted from the sources", fallback: "the generated answer could not be used",
    answered: "answered", escalatedMeta: "passed to the support team: the documents do not answer this",
    escalated: "I couldn't find this in the documents, so I passed your question to the support team.",
    helpful: "Helpful", unhelpful: "Not helpful", rateLabel: "Was this answer helpful?",
    thanks: "Thanks for your feedback.",
    solved: "This answered it", solvedThanks: "Thanks: the next person who asks this gets this source first.",
    whichSource: "Which source answered it? Press “✓ This answered it” under it, and the next person who asks gets it first.",
    down: "Thanks. Your question has been sent to the support team so they can improve the answer.",
    next: "A support person answers it in the knowledge base, usually within one business day. Ask again later and the answer will quote theirs.",
  },
  ja: {
    docTitle: "ナレッジベースに質問する", brand: "ナレッジベース", title: "ナレッジベースに質問する", ask: "質問する",
    asking: "質問中…", label: "質問", conversation: "会話",
    placeholder: "例：トナーカートリッジを交換するには？ / How do I replace the toner?",
    hint: "製品について日本語または英語で質問してください。回答には必ず出典が付きます。資料で回答できない質問はサポート担当者に引き継がれます。",
    enterHint: "Enterで送信、Shift+Enterで改行します。",
    sources: "出典", confidence: "確信度", error: "エラーが発生しました",
    newConversation: "新しい会話", thinking: "調べています…",
    started: "新しい会話を始めました。これまでの質問は回答に影響しません。",
    followUp: "続けての質問", continues: "前の質問：{q}",
    generated: "出典をもとにアシスタントが作成（各文を出典で確認済み）",
    extractive: "出典からの引用", fallback: "生成した回答は使用できませんでした",
    answered: "回答", escalatedMeta: "サポート担当者に引き継ぎ（資料に回答がありません）",
    escalated: "資料に回答が見つからなかったため、質問をサポート担当者に引き継ぎました。",
    helpful: "役に立った", unhelpful: "役に立たなかった", rateLabel: "この回答は役に立ちましたか？",
    thanks: "フィードバックありがとうございます。",
    solved: "これで解決した", solvedThanks: "ありがとうございます。次に同じ質問をした人には、この出典を最初にお見せします。",
    whichSource: "どの出典で解決しましたか？その出典の「✓ これで解決した」を押すと、次に同じ質問をした人に最初にお見せします。",
    down: "ありがとうございます。回答を改善できるよう、質問をサポート担当者に送りました。",
    next: "サポート担当者がナレッジベースに回答を登録します（通常1営業日以内）。後でもう一度質問すると、その回答を引用してお答えします。",
  },
});
const t = i18n.t;
mountLangSwitch(document.getElementById("lang"), i18n);
i18n.apply();

const form = document.getElementById("ask-form");
const input = document.getElementById("question");
const button = document.getElementById("ask-button");
const fresh = document.getElementById("new-conversation");
const results = document.getElementById("results");
const status = document.getElementById("status");

// The conversation this page continues (issue 23) and its turns (issue 25), kept for the browser
// session: a follow-up is resolved with the earlier turns and shown under them, also after a
// reload. "New conversation" starts over.
const CONVERSATION_KEY = "kb-conversation";
const TURNS_KEY = "kb-ask-turns";
let conversationId = sessionStorage.getItem(CONVERSATION_KEY) || null;
let turns = [];
try { turns = JSON.parse(sessionStorage.getItem(TURNS_KEY) || "[]"); } catch { turns = []; }

function save() {
  try {
    sessionStorage.setItem(TURNS_KEY, JSON.stringify(turns.slice(-30)));
    if (conversationId) sessionStorage.setItem(CONVERSATION_KEY, conversationId);
    else sessionStorage.removeItem(CONVERSATION_KEY);
  } catch { /* full or unavailable */ }
}

function say(text, kind = "info") {
  status.textContent = text;
  status.dataset.kind = kind;
}

fresh.addEventListener("click", () => {
  conversationId = null;
  turns = [];
  save();
  results.replaceChildren();
  say(t("started"));
  input.focus();
});

// "text [1] more [2]" -> text nodes and links to the source cards.
function renderAnswer(answer, citations, turnId) {
  const p = el("p", { class: "a" });
  const known = new Set(citations.map((c) => c.n));
  for (const part of answer.split(/(\[\d+\])/)) {
    const m = part.match(/^\[(\d+)\]$/);
    if (m && known.has(Number(m[1]))) {
      p.append(el("a", { class: "cite", href: `#${turnId}-src-${m[1]}`, "aria-label": `${t("sources")} ${m[1]}` }, `[${m[1]}]`));
    } else {
      p.append(document.createTextNode(part));
    }
  }
  return p;
}

function renderTurn(turn, index) {
  const { question, data } = turn;
  const turnId = `t${data.query_id.slice(0, 8)}`;
  const node = el("article", { class: `turn ${data.status}`, id: turnId, "data-query-id": data.query_id });
  node.append(el("p", { class: "q" }, turn.followUp ? el("span", { class: "follow" }, t("followUp")) : null, question));
  // A follow-up names the turn it continues, also when that turn has scrolled away.
  const before = index > 0 ? turns[index - 1] : null;
  if (turn.followUp && before) node.append(el("p", { class: "earlier" }, t("continues", { q: before.question })));
  node.append(renderAnswer(data.answer, data.citations, turnId));
  if (data.citations.length) {
    const list = el("ol", { class: "sources", "aria-label": t("sources") });
    for (const c of data.citations) {
      list.append(el("li", { id: `${turnId}-src-${c.n}` },
        `[${c.n}] `, el("span", { class: "title" }, el("a", { href: c.url, target: "_blank", rel: "noopener" }, c.title)),
        c.location ? el("span", { class: "loc" }, ` · ${c.location}`) : null,
        el("blockquote", {}, c.snippet),
        // A thumbs-up naming the source: the question memory learns this passage (issue 22).
        data.status === "answered" ? el("button", { type: "button", class: "solved", "data-n": c.n,
          "aria-pressed": String(turn.feedback === true && turn.source === c.n),
          onclick: (e) => rate(true, e.currentTarget, c.n) }, `✓ ${t("solved")}`) : null));
    }
    node.append(list);
  }
  const note = el("p", { class: "note", role: "status" });
  if (data.status === "escalated") note.textContent = `${t("escalated")} ${t("next")}`;
  else if (turn.feedback === false) note.textContent = `${t("down")} ${t("next")}`;
  else if (turn.feedback === true) note.textContent = turn.source ? t("solvedThanks") : t("thanks");
  // Helpful / not helpful, as in the widget (issue 25): a thumbs-down sends the question to the
  // support queue, a thumbs-up lets it become a suggestion for others.
  const up = el("button", { type: "button", class: "up", "aria-pressed": String(turn.feedback === true) }, `▲ ${t("helpful")}`);
  const down = el("button", { type: "button", class: "down", "aria-pressed": String(turn.feedback === false) }, `▼ ${t("unhelpful")}`);
  const rate = async (helpful, pressed, source = null) => {
    up.disabled = down.disabled = true;
    pressed.setAttribute("aria-busy", "true");
    try {
      const json = { query_id: data.query_id, helpful };
      if (source !== null) json.citation = source;
      await apiFetch("/api/feedback", { method: "POST", json, identity: loadIdentity("/") });
      turn.feedback = helpful;
      turn.source = source;
      save();
      up.setAttribute("aria-pressed", String(helpful));
      down.setAttribute("aria-pressed", String(!helpful));
      for (const b of node.querySelectorAll("button.solved")) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.n) === source));
      }
      note.textContent = source !== null ? t("solvedThanks")
        : helpful ? (data.citations.length > 1 ? `${t("thanks")} ${t("whichSource")}` : t("thanks"))
        : `${t("down")} ${t("next")}`;
    } catch (err) {
      note.textContent = `${t("error")}: ${err.message}`;
    } finally {
      up.disabled = down.disabled = false;
      pressed.setAttribute("aria-busy", "false");
    }
  };
  up.addEventListener("click", () => rate(true, up));
  down.addEventListener("click", () => rate(false, down));
  // Which mode wrote the answer (issue 7); an escalation quotes nothing, so it says so (issue 25).
  let meta;
  if (data.status === "escalated") {
    meta = t("escalatedMeta");
  } else {
    const mode = data.mode === "generated" ? t("generated") : t("extractive");
    const fallback = data.fallback_reason ? ` (${t("fallback")}: ${data.fallback_reason})` : "";
    meta = `${t("answered")} · ${mode}${fallback} · ${t("confidence")} ${Number(data.confidence).toFixed(2)}`;
  }
  node.append(
    el("div", { class: "actions", role: "group", "aria-label": t("rateLabel") }, up, down),
    el("p", { class: "meta", "data-mode": data.status === "escalated" ? "escalated" : data.mode || "extractive" }, meta),
    note);
  return node;
}

function renderAll() {
  // A question still waiting for its answer stays where it is (a language switch meanwhile).
  const pending = results.querySelector(".turn.pending");
  results.replaceChildren(...turns.map((turn, i) => renderTurn(turn, i)), ...(pending ? [pending] : []));
}

// POST /api/ask/stream: show checked text as it arrives, then the final answer ("done").
async function askStreaming(question, live) {
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream",
    "Accept-Language": i18n.lang, ...identityHeaders(loadIdentity("/")) };
  const resp = await fetch("/api/ask/stream", {
    method: "POST",
    headers,
    // No `lang`: the question's language is read from its text, not from this page's (issue 21).
    body: JSON.stringify(conversationId ? { question, conversation_id: conversationId } : { question }),
  });
  if (resp.status === 404 && conversationId) {  // expired or purged: start a new one
    conversationId = null;
    save();
    return askStreaming(question, live);
  }
  if (!resp.ok || !resp.body) {
    const data = await resp.json().catch(() => ({}));
    throw new Error(data.message || data.detail || resp.statusText);
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      const payload = data ? JSON.parse(data) : {};
      if (event === "delta") live.textContent += payload.text;  // text only, never HTML
      else if (event === "meta" && payload.conversation_id) live.dataset.conversationId = payload.conversation_id;
      else if (event === "done") return payload;
      else if (event === "error") throw new Error(payload.message || payload.detail || payload.error_code);
    }
  }
  throw new Error("the answer stream ended early");
}

let asking = false;
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question || asking) return;
  asking = true;
  // Busy (issue 25): the button says so and cannot be pressed twice; the log is aria-busy.
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = t("asking");
  results.setAttribute("aria-busy", "true");
  say(t("thinking"));
  const live = el("article", { class: "turn pending" }, el("p", { class: "q" }, question));
  const liveAnswer = el("p", { class: "a", "data-busy": t("thinking") });
  live.append(liveAnswer);
  results.append(live);
  live.scrollIntoView({ block: "nearest" });
  try {
    const sent = conversationId;
    const data = await askStreaming(question, liveAnswer);
    const cid = data.conversation_id || liveAnswer.dataset.conversationId || null;
    const followUp = Boolean(sent) && cid === sent && turns.length > 0;
    conversationId = cid;
    const turn = { question, data, feedback: null, followUp };
    turns.push(turn);
    save();
    const node = renderTurn(turn, turns.length - 1);
    live.replaceWith(node);
    node.scrollIntoView({ block: "nearest" });
    input.value = "";
    say("");
  } catch (err) {
    live.remove();
    say(`${t("error")}: ${err.message}`, "error");
  } finally {
    asking = false;
    button.disabled = false;
    button.setAttribute("aria-busy", "false");
    button.textContent = t("ask");
    results.setAttribute("aria-busy", "false");
    input.focus();
  }
});

// Enter sends, Shift+Enter is a new line, and the Enter that ends an IME composition (Japanese
// input: it confirms the converted text) never sends (issue 25). Chrome reports that keydown
// with isComposing; Safari fires compositionend first and then a keydown with keyCode 229, so a
// composition that ended a moment ago also counts.
let composing = false;
let composedAt = 0;
input.addEventListener("compositionstart", () => { composing = true; });
input.addEventListener("compositionend", () => { composing = false; composedAt = performance.now(); });
input.addEventListener("keydown", (e) => {
  if (e.key !== "Enter" || e.shiftKey) return;
  if (e.isComposing || composing || e.keyCode === 229 || performance.now() - composedAt < 50) return;
  e.preventDefault();
  form.requestSubmit();
});

i18n.onChange(() => {
  renderAll();
  button.textContent = asking ? t("asking") : t("ask");
});
renderAll();
