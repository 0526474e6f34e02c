// <kb-widget>: the knowledge-base assistant for any intranet page (issue 6).
//
//   <script type="module" src="https://kb.example/static/widget/kb-widget.js"></script>
//
// One script tag is enough: without a <kb-widget> element on the page, one is added to <body>.
// Attributes: lang (ja|en; else the page's or the browser's language), suggestions (a JSON list
// or "|"-separated questions), open, inline (render in place instead of a floating button),
// api-base (default: the server the script came from), token (a short-lived widget token the
// embedding page's backend got from POST /api/widget/token for its signed-in user; when it
// expires the widget fires a "kb-token-expired" event and the page sets a fresh one), and, only
// for a service running with dev headers, user-id, user-groups, user-roles, user-department
// (see ../lib/identity.js).
// Everything lives in a Shadow DOM: the host page's CSS cannot reach in, ours cannot leak out.
// Server text is always inserted as text (textContent / text nodes), never as HTML.

import { el } from "../lib/dom.js";
import { apiFetch, identityFromAttributes, loadIdentity } from "../lib/identity.js";

const T = {
  en: {
    launcher: "Ask a question", title: "Knowledge base", close: "Close",
    label: "Your question", placeholder: "Ask about our products…", send: "Ask",
    suggestions: "Not sure what to ask? Try one of these:", popular: "Popular",
    sources: "Sources", source: "Source", open: "Open the source", helpful: "Helpful",
    unhelpful: "Not helpful", stillNeed: "Still need help", note: "Note for the support team (optional)",
    sendSupport: "Send to support", cancel: "Cancel", thinking: "Looking it up…",
    thanks: "Thanks for your feedback.",
    answered: "This answered it", answeredThanks: "Thanks: the next person who asks this gets this source first.",
    whichSource: "Which source answered it? Press “✓ This answered it” under it, and the next person who asks gets it first.",
    down: "Thanks. Your question has been sent to the support team so they can improve the answer.",
    escalated: "I couldn't find this in the documents, so I passed your question to the support team.",
    next: "What happens next: a support person answers it in the knowledge base, usually within one business day. Ask again later and I will quote their answer.",
    sent: "Your question is with the support team.", error: "Something went wrong",
    you: "You asked", history: "Conversation", newConversation: "New conversation",
    started: "New conversation started. Earlier questions no longer shape the answers.",
    followUp: "Follow-up",
    confidence: "confidence", dev: "development identity",
    generated: "written by the assistant, checked against the sources", extractive: "quoted from the sources",
    escalatedMeta: "passed to the support team", asking: "Asking…", rateLabel: "Was this answer helpful?",
  },
  ja: {
    launcher: "質問する", title: "ナレッジベース", close: "閉じる",
    label: "質問", placeholder: "製品について質問してください…", send: "質問する",
    suggestions: "何を聞けばよいか迷ったら、こちらをどうぞ：", popular: "よくある質問",
    sources: "出典", source: "出典", open: "出典を開く", helpful: "役に立った",
    unhelpful: "役に立たなかった", stillNeed: "まだ解決しない", note: "サポート担当者へのメモ（任意）",
    sendSupport: "サポートに送る", cancel: "キャンセル", thinking: "調べています…",
    thanks: "フィードバックありがとうございます。",
    answered: "これで解決した", answeredThanks: "ありがとうございます。次に同じ質問をした人には、この出典を最初にお見せします。",
    whichSource: "どの出典で解決しましたか？その出典の「✓ これで解決した」を押すと、次に同じ質問をした人に最初にお見せします。",
    down: "ありがとうございます。回答を改善できるよう、質問をサポート担当者に送りました。",
    escalated: "資料に回答が見つからなかったため、質問をサポート担当者に引き継ぎました。",
    next: "今後の流れ：サポート担当者がナレッジベースに回答を登録します（通常1営業日以内）。後でもう一度質問すると、その回答を引用してお答えします。",
    sent: "質問はサポート担当者に届いています。", error: "エラーが発生しました",
    you: "質問", history: "会話", newConversation: "新しい会話",
    started: "新しい会話を始めました。これまでの質問は回答に影響しません。",
    followUp: "続けての質問",
    confidence: "確信度", dev: "開発用ID",
    generated: "アシスタントが作成（出典で確認済み）", extractive: "出典からの引用",
    escalatedMeta: "サポート担当者に引き継ぎ", asking: "質問中…", rateLabel: "この回答は役に立ちましたか？",
  },
};

const STYLE = `
:host { all: initial !important; display: block !important; box-sizing: border-box !important;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP", sans-serif !important;
  color: #1b1f24 !important; visibility: visible !important; opacity: 1 !important; }
:host(:not([inline])) { position: fixed !important; right: 16px !important; bottom: 16px !important;
  z-index: 2147483000 !important; width: auto !important; height: auto !important; }
:host([hidden]) { display: none !important; }
*, *::before, *::after { box-sizing: border-box; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
button, textarea, input { font: inherit; color: inherit; }
button { cursor: pointer; border-radius: 8px; border: 1px solid #8a94a3; background: #fff; padding: 6px 10px; min-height: 36px; }
button[disabled], button[aria-busy="true"] { opacity: .65; cursor: progress; }
button:focus-visible, a:focus-visible, textarea:focus-visible, .card:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
.launcher { display: flex; align-items: center; gap: 8px; margin-left: auto; background: #1d4ed8; color: #fff;
  border: none; border-radius: 999px; padding: 10px 18px; font-weight: 600; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
:host([inline]) .launcher { display: none; }
.panel { display: flex; flex-direction: column; width: min(420px, calc(100vw - 24px));
  height: min(640px, calc(100vh - 90px)); background: #fff; border: 1px solid #c7ced8; border-radius: 14px;
  box-shadow: 0 10px 30px rgba(0,0,0,.25); overflow: hidden; margin-bottom: 10px; }
:host([inline]) .panel { width: 100%; height: 600px; box-shadow: none; margin: 0; }
.panel[hidden] { display: none; }
.head { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 10px 14px;
  background: #1d4ed8; color: #fff; }
.head h2 { font-size: 16px; margin: 0; }
.head button { background: transparent; color: #fff; border-color: rgba(255,255,255,.6); }
.head .tools { display: flex; gap: 6px; flex-shrink: 0; }
.head .new-conversation { font-size: 13px; white-space: nowrap; }
.who { font-size: 12px; opacity: .9; }
.log { flex: 1; overflow-y: auto; padding: 12px 14px; display: flex; flex-direction: column; gap: 14px; }
.suggest p { margin: 0 0 6px; color: #4b5563; font-size: 14px; }
.suggest ul { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 6px; }
.suggest button { border-radius: 999px; font-size: 13px; background: #eef2ff; border-color: #a5b4fc; text-align: left; }
.suggest .tag { font-size: 11px; color: #4338ca; margin-right: 4px; font-weight: 600; }
.turn { border-top: 1px solid #e5e7eb; padding-top: 10px; }
.q { font-weight: 600; margin: 0 0 6px; }
.q .follow { font-size: 11px; font-weight: 600; color: #4338ca; background: #eef2ff; border-radius: 999px;
  padding: 1px 8px; margin-right: 6px; vertical-align: 1px; }
.a { margin: 0 0 8px; white-space: pre-wrap; }
.escalated .a { color: #7c2d12; }
.cite { font-size: 12px; vertical-align: super; color: #1d4ed8; text-decoration: none; font-weight: 700;
  padding: 0 2px; border: none; background: none; min-height: 0; }
.sources { list-style: none; margin: 0 0 8px; padding: 0; display: grid; gap: 8px; }
.card { border: 1px solid #d1d5db; border-radius: 10px; padding: 8px 10px; background: #f9fafb; }
.card.flash { outline: 3px solid #f59e0b; }
.card .n { font-weight: 700; color: #1d4ed8; margin-right: 4px; }
.card .title { font-weight: 600; }
.card .loc { display: block; font-size: 12px; color: #4b5563; }
.card blockquote { margin: 6px 0; padding-left: 8px; border-left: 3px solid #cbd5e1; font-size: 13px; color: #374151; }
mark { background: #fde68a; color: inherit; }
.card a.open { font-size: 13px; color: #1d4ed8; }
.card button.solved { display: block; margin-top: 6px; font-size: 13px; min-height: 32px; padding: 4px 8px; }
.card button.solved[aria-pressed="true"] { background: #dcfce7; border-color: #15803d; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.actions button[aria-pressed="true"] { background: #dbeafe; border-color: #1d4ed8; }
.meta { font-size: 12px; color: #6b7280; margin-left: auto; }
.note { margin: 6px 0 0; font-size: 13px; background: #ecfdf5; border: 1px solid #a7f3d0; border-radius: 8px; padding: 6px 8px; }
.note:empty { display: none; }
.escalate { margin-top: 6px; display: grid; gap: 6px; }
.escalate[hidden] { display: none; }
textarea { width: 100%; border: 1px solid #8a94a3; border-radius: 8px; padding: 8px; resize: vertical; }
form.ask { display: flex; gap: 8px; padding: 10px 14px; border-top: 1px solid #e5e7eb; align-items: flex-end; }
form.ask textarea { min-height: 42px; }
form.ask button { background: #1d4ed8; color: #fff; border: none; font-weight: 600; white-space: nowrap; }
.status { font-size: 13px; padding: 0 14px 8px; margin: 0; color: #4b5563; min-height: 1em; }
.status[data-kind="error"] { color: #b91c1c; }
@media (max-width: 480px) {
  :host(:not([inline])) { right: 0 !important; bottom: 0 !important; left: 0 !important; }
  .panel { width: 100vw; height: calc(100vh - 60px); border-radius: 0; margin: 0; }
  .launcher { margin: 0 12px 12px auto; }
}
`;


const HISTORY_KEY = "kb.widget.history";
// The conversation the widget continues (issue 23): each follow-up sends its id, so "and how do
// I reset it?" is searched with the earlier turns. Kept for the browser session, like the turns.
const CONVERSATION_KEY = "kb.widget.conversation";
let seq = 0;

/** Sentences of the answer that cite [n], without their markers. */
function citedSentences(answer, n) {
  const out = [];
  const re = /([^[\]]+?)((?:\s*\[\d+\])+)/g;
  let m;
  while ((m = re.exec(answer))) {
    const nums = [...m[2].matchAll(/\d+/g)].map((x) => Number(x[0]));
    if (nums.includes(n)) out.push(m[1].trim().replace(/^[.。!?！？\s]+/, ""));
  }
  return out.filter((s) => s.length > 3);
}

/** The snippet as text nodes, with the quoted sentence(s) inside <mark>. */
function highlighted(snippet, sentences) {
  const frag = document.createDocumentFragment();
  let ranges = [];
  for (const s of sentences) {
    for (const probe of [s, s.replace(/[.。]$/, "")]) {
      const i = snippet.indexOf(probe);
      if (i >= 0 && probe.length > 3) { ranges.push([i, i + probe.length]); break; }
    }
  }
  if (!ranges.length) {
    // Not found word for word: mark the snippet's first sentence, the one the match starts on.
    const m = snippet.match(/^.+?(?:[.!?。！？](?=\s|$)|$)/s);
    if (m) ranges.push([0, m[0].length]);
  }
  ranges = ranges.sort((a, b) => a[0] - b[0]);
  let pos = 0;
  for (const [a, b] of ranges) {
    if (a < pos) continue;
    frag.append(snippet.slice(pos, a), el("mark", {}, snippet.slice(a, b)));
    pos = b;
  }
  frag.append(snippet.slice(pos));
  return frag;
}

class KbWidget extends HTMLElement {
  static get observedAttributes() { return ["lang"]; }

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.turns = [];
    this.conversationId = null;
  }

  get lang2() {
    const raw = this.getAttribute("lang") || document.documentElement.lang || navigator.language || "en";
    return raw.toLowerCase().startsWith("ja") ? "ja" : "en";
  }

  get t() { return T[this.lang2]; }

  get apiBase() {
    return (this.getAttribute("api-base") || new URL("/", import.meta.url).href).replace(/\/$/, "");
  }

  get identity() { return identityFromAttributes(this) || loadIdentity(); }

  async api(path, init = {}) {
    try {
      // Accept-Language: refusals come back in the widget's language (issue 25).
      return await apiFetch(this.apiBase + path, { identity: this.identity,
        headers: { "Accept-Language": this.lang2 }, ...init });
    } catch (err) {
      if (err && err.status === 401) {
        this.dispatchEvent(new CustomEvent("kb-token-expired", { bubbles: true, composed: true }));
      }
      throw err;
    }
  }

  connectedCallback() {
    if (this.rendered) return;
    this.rendered = true;
    this.render();
    try {
      this.turns = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
    } catch { this.turns = []; }
    try { this.conversationId = sessionStorage.getItem(CONVERSATION_KEY) || null; } catch { /* none */ }
    for (const turn of this.turns) this.log.append(this.renderTurn(turn));
    this.loadSuggestions();
    if (this.hasAttribute("open") || this.hasAttribute("inline")) this.toggle(true, false);
  }

  attributeChangedCallback() {
    if (this.rendered) {
      const open = !this.panel.hidden;  // a language switch keeps an open panel open
      this.root.replaceChildren();
      this.render();
      for (const turn of this.turns) this.log.append(this.renderTurn(turn));
      this.loadSuggestions();
      if (open) this.toggle(true, false);
    }
  }

  render() {
    const t = this.t;
    const id = `kbw${++seq}`;
    this.root.append(el("style", {}, STYLE));
    this.panel = el("section", { class: "panel", id: `${id}-panel`, role: "dialog",
      "aria-labelledby": `${id}-title`, hidden: true, lang: this.lang2 });
    const who = this.identity;
    // A div, not <header>: inside the host page a second banner landmark would confuse (issue 25).
    const header = el("div", { class: "head" },
      el("div", {}, el("h2", { id: `${id}-title` }, t.title),
        who && who.userId ? el("div", { class: "who" }, `${who.userId} (${t.dev})`) : null),
      el("div", { class: "tools" },
        el("button", { type: "button", class: "new-conversation", onclick: () => this.newConversation() },
          t.newConversation),
        el("button", { type: "button", class: "close", "aria-label": t.close,
          onclick: () => this.toggle(false) }, "✕")));
    this.log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": t.history });
    this.suggest = el("div", { class: "suggest" }, el("p", {}, t.suggestions), el("ul", {}));
    this.input = el("textarea", { id: `${id}-q`, rows: 2, maxlength: 2000, required: true,
      placeholder: t.placeholder });
    this.sendButton = el("button", { type: "submit" }, t.send);
    const form = el("form", { class: "ask" },
      el("label", { class: "sr", for: `${id}-q` }, t.label), this.input, this.sendButton);
    form.addEventListener("submit", (e) => { e.preventDefault(); this.ask(this.input.value); });
    // Enter sends; Shift+Enter is a new line; the Enter that ends an IME composition never sends
    // (isComposing in Chrome; Safari's keydown after compositionend has keyCode 229).
    let composing = false;
    let composedAt = 0;
    this.input.addEventListener("compositionstart", () => { composing = true; });
    this.input.addEventListener("compositionend", () => { composing = false; composedAt = performance.now(); });
    this.input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || e.shiftKey) return;
      if (e.isComposing || composing || e.keyCode === 229 || performance.now() - composedAt < 50) return;
      e.preventDefault();
      form.requestSubmit();
    });
    this.status = el("p", { class: "status", role: "status" });
    this.panel.append(header, this.log, form, this.status);
    this.panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.hasAttribute("inline")) { e.stopPropagation(); this.toggle(false); }
    });
    // The suggestions sit at the top of the log, scrolling with it.
    this.log.prepend(this.suggest);
    this.launcher = el("button", { type: "button", class: "launcher", "aria-expanded": "false",
      "aria-controls": this.panel.id, onclick: () => this.toggle() }, t.launcher);
    this.root.append(this.panel, this.launcher);
  }

  toggle(open = this.panel.hidden, focus = true) {
    this.panel.hidden = !open;
    this.launcher.setAttribute("aria-expanded", String(open));
    if (!focus) return;
    if (open) this.input.focus();
    else this.launcher.focus();
  }

  async loadSuggestions() {
    const t = this.t;
    const list = this.suggest.querySelector("ul");
    list.replaceChildren();
    // The page's own suggestions first; then what people here asked, and, where few have
    // asked yet, the questions of this knowledge base's own Q&A entries (starters).
    let templates = [];
    const attr = this.getAttribute("suggestions");
    if (attr) {
      try { templates = JSON.parse(attr); } catch { templates = attr.split("|"); }
    }
    const add = (q, popular) => list.append(el("li", {}, el("button", { type: "button",
      onclick: () => this.ask(q) }, popular ? el("span", { class: "tag" }, t.popular) : null, q)));
    const seen = new Set();
    for (const q of templates.map((s) => String(s).trim()).filter(Boolean)) { seen.add(q); add(q, false); }
    try {
      const more = await this.api(`/api/suggestions?lang=${this.lang2}&limit=3&starters=true`);
      for (const s of more) if (!seen.has(s.question)) add(s.question, s.kind === "popular");
    } catch { /* suggestions are optional */ }
  }

  save() {
    try {
      sessionStorage.setItem(HISTORY_KEY, JSON.stringify(this.turns.slice(-30)));
      if (this.conversationId) sessionStorage.setItem(CONVERSATION_KEY, this.conversationId);
      else sessionStorage.removeItem(CONVERSATION_KEY);
    } catch { /* full or unavailable */ }
  }

  /** Forget the turns and the conversation id: the next question starts a new conversation. */
  newConversation() {
    this.turns = [];
    this.conversationId = null;
    this.save();
    for (const node of [...this.log.querySelectorAll(".turn")]) node.remove();
    this.status.dataset.kind = "info";
    this.status.textContent = this.t.started;
    this.input.focus();
  }

  /** POST /api/ask in the current conversation; one that expired or was purged starts anew. */
  async askInConversation(question) {
    // No `lang`: the widget's interface language says nothing about the words typed; the
    // server reads the question's language from its text (issues 21 and 25).
    const json = { question };
    if (this.conversationId) json.conversation_id = this.conversationId;
    try {
      return await this.api("/api/ask", { method: "POST", json });
    } catch (err) {
      if (!(err && err.status === 404 && json.conversation_id)) throw err;
      this.conversationId = null;
      delete json.conversation_id;
      return this.api("/api/ask", { method: "POST", json });
    }
  }

  async ask(raw) {
    const question = String(raw || "").trim();
    if (!question) return;
    if (this.panel.hidden) this.toggle(true);
    if (this.asking) return;
    this.asking = true;
    this.sendButton.disabled = true;
    this.sendButton.setAttribute("aria-busy", "true");
    this.sendButton.textContent = this.t.asking;
    this.log.setAttribute("aria-busy", "true");
    this.status.dataset.kind = "info";
    this.status.textContent = this.t.thinking;
    try {
      const sent = this.conversationId;
      const data = await this.askInConversation(question);
      if (data.conversation_id) this.conversationId = data.conversation_id;
      // A follow-up: asked in the conversation of the turns shown above it.
      const followUp = Boolean(sent) && data.conversation_id === sent && this.turns.length > 0;
      const turn = { question, data, feedback: null, escalated: false, followUp };
      this.turns.push(turn);
      this.save();
      const node = this.renderTurn(turn);
      this.log.append(node);
      node.scrollIntoView({ block: "start" });
      this.input.value = "";
      this.status.textContent = "";
    } catch (err) {
      this.status.dataset.kind = "error";
      this.status.textContent = `${this.t.error}: ${err.message}`;
    } finally {
      this.asking = false;
      this.sendButton.disabled = false;
      this.sendButton.setAttribute("aria-busy", "false");
      this.sendButton.textContent = this.t.send;
      this.log.setAttribute("aria-busy", "false");
      this.input.focus();
    }
  }

  renderTurn(turn) {
    const t = this.t;
    const { data } = turn;
    const tid = `turn-${data.query_id.slice(0, 8)}`;
    const node = el("article", { class: `turn ${data.status}`, id: tid, "data-query-id": data.query_id,
      "aria-label": `${t.you}: ${turn.question}` });
    node.append(el("p", { class: "q" },
      turn.followUp ? el("span", { class: "follow" }, t.followUp) : null, turn.question));
    const answer = el("p", { class: "a" });
    const known = new Set(data.citations.map((c) => c.n));
    for (const part of data.answer.split(/(\[\d+\])/)) {
      const m = part.match(/^\[(\d+)\]$/);
      if (m && known.has(Number(m[1]))) {
        const n = Number(m[1]);
        answer.append(el("a", { class: "cite", href: `#${tid}-src-${n}`, "aria-label": `${t.source} ${n}`,
          onclick: (e) => { e.preventDefault(); this.showCard(node, n); } }, `[${n}]`));
      } else {
        answer.append(document.createTextNode(part));
      }
    }
    node.append(answer);
    if (data.citations.length) {
      const list = el("ol", { class: "sources", "aria-label": t.sources });
      for (const c of data.citations) {
        const url = /^https?:/.test(c.url) ? c.url : this.apiBase + c.url;
        list.append(el("li", { class: "card", id: `${tid}-src-${c.n}`, tabindex: "-1", "data-n": c.n },
          el("span", { class: "n" }, `[${c.n}]`),
          el("a", { class: "title", href: url, target: "_blank", rel: "noopener" }, c.title),
          c.location ? el("span", { class: "loc" }, c.location) : null,
          el("blockquote", {}, highlighted(c.snippet, citedSentences(data.answer, c.n))),
          el("a", { class: "open", href: url, target: "_blank", rel: "noopener",
            "aria-label": `${t.open}: ${c.title}${c.location ? `, ${c.location}` : ""}` }, `${t.open} ↗`),
          // "This answered it": a thumbs-up that names the source, so the question memory
          // learns this passage for the question, not merely the first one quoted (issue 22).
          data.status === "answered" ? el("button", { type: "button", class: "solved", "data-n": c.n,
            "aria-pressed": String(turn.feedback === true && turn.source === c.n),
            "aria-label": `${t.answered}: ${t.source} ${c.n}`,
            onclick: () => rate(true, c.n) }, `✓ ${t.answered}`) : null));
      }
      node.append(list);
    }
    const note = el("p", { class: "note", role: "status" });
    if (data.status === "escalated") note.textContent = `${t.escalated} ${t.next}`;
    else if (turn.escalated) note.textContent = `${t.sent} ${t.next}`;
    else if (turn.feedback === false) note.textContent = `${t.down} ${t.next}`;
    else if (turn.feedback === true) note.textContent = turn.source ? t.answeredThanks : t.thanks;
    const up = el("button", { type: "button", class: "up",
      "aria-pressed": String(turn.feedback === true) }, `▲ ${t.helpful}`);
    const down = el("button", { type: "button", class: "down",
      "aria-pressed": String(turn.feedback === false) }, `▼ ${t.unhelpful}`);
    const more = el("button", { type: "button", class: "more", "aria-expanded": "false" }, t.stillNeed);
    const noteId = `${tid}-note`;
    const escText = el("textarea", { id: noteId, rows: 2, maxlength: 2000 });
    const escForm = el("form", { class: "escalate", hidden: true },
      el("label", { for: noteId }, t.note), escText,
      el("div", { class: "actions" }, el("button", { type: "submit" }, t.sendSupport),
        el("button", { type: "button", onclick: () => { escForm.hidden = true; more.focus(); } }, t.cancel)));
    const rate = async (helpful, source = null) => {
      try {
        const json = { query_id: data.query_id, helpful };
        if (source !== null) json.citation = source;
        await this.api("/api/feedback", { method: "POST", json });
        turn.feedback = helpful;
        turn.source = source;
        this.save();
        up.setAttribute("aria-pressed", String(helpful));
        down.setAttribute("aria-pressed", String(!helpful));
        for (const b of node.querySelectorAll("button.solved")) {
          b.setAttribute("aria-pressed", String(Number(b.dataset.n) === source));
        }
        note.textContent = source !== null ? t.answeredThanks
          : helpful ? (data.citations.length > 1 ? `${t.thanks} ${t.whichSource}` : t.thanks)
          : `${t.down} ${t.next}`;
      } catch (err) { note.textContent = `${t.error}: ${err.message}`; }
    };
    up.addEventListener("click", () => rate(true));
    down.addEventListener("click", () => rate(false));
    more.addEventListener("click", () => {
      escForm.hidden = !escForm.hidden;
      more.setAttribute("aria-expanded", String(!escForm.hidden));
      if (!escForm.hidden) escText.focus();
    });
    escForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await this.api("/api/escalate", { method: "POST",
          json: { query_id: data.query_id, note: escText.value.trim() || null } });
        turn.escalated = true;
        this.save();
        escForm.hidden = true;
        more.disabled = true;
        more.setAttribute("aria-expanded", "false");
        note.textContent = `${t.sent} ${t.next}`;
      } catch (err) { note.textContent = `${t.error}: ${err.message}`; }
    });
    if (turn.escalated) more.disabled = true;
    // An escalation quotes nothing: its line says where the question went (issue 25).
    const meta = data.status === "escalated" ? t.escalatedMeta
      : `${data.mode === "generated" ? t.generated : t.extractive} · ${t.confidence} ${Number(data.confidence).toFixed(2)}`;
    node.append(el("div", { class: "actions", role: "group", "aria-label": t.rateLabel }, up, down, more,
      el("span", { class: "meta", "data-mode": data.status === "escalated" ? "escalated" : data.mode || "extractive" }, meta)),
    escForm, note);
    return node;
  }

  showCard(turnNode, n) {
    const card = turnNode.querySelector(`.card[data-n="${n}"]`);
    if (!card) return;
    card.scrollIntoView({ block: "nearest" });
    card.focus();
    card.classList.add("flash");
    setTimeout(() => card.classList.remove("flash"), 1500);
  }
}

if (!customElements.get("kb-widget")) customElements.define("kb-widget", KbWidget);

// One script tag is enough: add the widget when the page has none.
function autoMount() {
  if (!document.querySelector("kb-widget")) document.body.append(document.createElement("kb-widget"));
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", autoMount);
else autoMount();
