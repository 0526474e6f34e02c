// The simple ask page: posts to /api/ask and renders the answer with clickable citations.
// Text from the server is always inserted as text, never as HTML.

const T = {
  en: { title: "Ask the knowledge base", ask: "Ask", label: "Your question",
        hint: "Ask about our products in English or Japanese. Every answer cites its sources; if the documents don't answer it, your question goes to the support team.",
        sources: "Sources", confidence: "confidence", error: "Something went wrong",
        newConversation: "New conversation",
        generated: "written by the assistant from the sources, each sentence checked",
        extractive: "quoted from the sources", fallback: "the generated answer could not be used" },
  ja: { title: "ナレッジベースに質問する", ask: "質問する", label: "質問",
        hint: "製品について日本語または英語で質問してください。回答には必ず出典が付きます。資料で回答できない質問はサポート担当者に引き継がれます。",
        sources: "出典", confidence: "確信度", error: "エラーが発生しました",
        newConversation: "新しい会話",
        generated: "出典をもとにアシスタントが作成（各文を出典で確認済み）",
        extractive: "出典からの引用", fallback: "生成した回答は使用できませんでした" },
};
const lang = (document.documentElement.lang || navigator.language || "en").startsWith("ja") ? "ja" : "en";
const t = T[lang];
document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t[el.dataset.i18n]; });

const form = document.getElementById("ask-form");
const input = document.getElementById("question");
const button = document.getElementById("ask-button");
const results = document.getElementById("results");

// The conversation this page continues (issue 23): follow-ups are resolved with its earlier
// turns. Kept for the browser session; "New conversation" starts over.
let conversationId = sessionStorage.getItem("kb-conversation") || null;
const fresh = document.createElement("button");
fresh.type = "button";
fresh.id = "new-conversation";
fresh.textContent = t.newConversation;
fresh.addEventListener("click", () => {
  conversationId = null;
  sessionStorage.removeItem("kb-conversation");
  results.replaceChildren();
  input.focus();
});
form.append(fresh);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// "text [1] more [2]" -> text nodes and links to the source cards.
function renderAnswer(answer, citations, turnId) {
  const p = el("p", { class: "a" });
  const known = new Set(citations.map((c) => c.n));
  for (const part of answer.split(/(\[\d+\])/)) {
    const m = part.match(/^\[(\d+)\]$/);
    if (m && known.has(Number(m[1]))) {
      p.append(el("a", { class: "cite", href: `#${turnId}-src-${m[1]}` }, `[${m[1]}]`));
    } else {
      p.append(document.createTextNode(part));
    }
  }
  return p;
}

function renderTurn(question, data) {
  const turnId = `t${data.query_id.slice(0, 8)}`;
  const turn = el("article", { class: `turn ${data.status}`, id: turnId });
  turn.append(el("p", { class: "q" }, question));
  turn.append(renderAnswer(data.answer, data.citations, turnId));
  if (data.citations.length) {
    const list = el("ol", { class: "sources", "aria-label": t.sources });
    for (const c of data.citations) {
      const link = el("a", { href: c.url, target: "_blank", rel: "noopener" }, c.title);
      const item = el("li", { id: `${turnId}-src-${c.n}` },
        `[${c.n}] `, el("span", { class: "title" }, link),
        c.location ? el("span", { class: "loc" }, ` · ${c.location}`) : "",
        el("blockquote", {}, c.snippet));
      list.append(item);
    }
    turn.append(list);
  }
  // Which mode wrote the answer (issue 7); the answer itself is always plain text.
  const mode = data.mode === "generated" ? t.generated : t.extractive;
  const fallback = data.fallback_reason ? ` (${t.fallback}: ${data.fallback_reason})` : "";
  turn.append(el("p", { class: "meta", "data-mode": data.mode || "extractive" },
    `${data.status} · ${mode}${fallback} · ${t.confidence} ${data.confidence.toFixed(2)}`));
  return turn;
}

// POST /api/ask/stream: show checked text as it arrives, then the final answer ("done").
async function askStreaming(question, live) {
  const resp = await fetch("/api/ask/stream", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(conversationId ? { question, conversation_id: conversationId } : { question }),
  });
  if (resp.status === 404 && conversationId) {  // expired or purged: start a new one
    conversationId = null;
    sessionStorage.removeItem("kb-conversation");
    return askStreaming(question, live);
  }
  if (!resp.ok || !resp.body) {
    const data = await resp.json().catch(() => ({}));
    throw new Error(data.detail || resp.statusText);
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
      else if (event === "meta" && payload.conversation_id) {
        conversationId = payload.conversation_id;
        sessionStorage.setItem("kb-conversation", conversationId);
      }
      else if (event === "done") return payload;
      else if (event === "error") throw new Error(payload.detail || payload.error_code);
    }
  }
  throw new Error("the answer stream ended early");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question) return;
  button.disabled = true;
  try {
    const live = el("article", { class: "turn pending", "aria-live": "polite" },
      el("p", { class: "q" }, question));
    const liveAnswer = el("p", { class: "a" });
    live.append(liveAnswer);
    results.prepend(live);
    try {
      const data = await askStreaming(question, liveAnswer);
      live.replaceWith(renderTurn(question, data));
    } catch (err) {
      live.remove();
      throw err;
    }
    input.value = "";
  } catch (err) {
    results.prepend(el("p", { class: "turn error", role: "alert" }, `${t.error}: ${err.message}`));
  } finally {
    button.disabled = false;
    input.focus();
  }
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});
