// Staff vocabulary (issue 23): list, add and delete sets of equivalent terms. Content owners and
// admins only: the API enforces it (403 otherwise); this page asks /api/me and offers the form
// only to them. Japanese and English (issue 25).
import { apiFetch, loadIdentity, mountDevSignIn } from "/static/lib/identity.js";
import { busy, el, loading, say, when } from "/static/lib/dom.js";
import { errorText, mountTopbar, translator } from "/static/lib/i18n.js";

const i18n = translator({
  en: {
    docTitle: "Staff vocabulary — Knowledge base", h1: "Staff vocabulary",
    intro: "Sets of terms that mean the same thing: abbreviations, internal names, product codes, spellings, in Japanese and English. A question naming one term is searched with the others too, and the support queue groups such questions together. A change applies to the next question; nothing is re-ingested.",
    addTitle: "Add a set", termsLabel: "Terms that mean the same (separated by commas or one per line; at least two)",
    add: "Add set", adding: "Adding…", setsTitle: "Sets", caption: "Sets of equivalent terms",
    colSet: "Set", colTerms: "Terms", colBy: "Added by", colAdded: "Added", colActions: "Actions",
    duplicate: "Not added: {e}. Each set of terms is stored once.",
    tooFew: "Not added: a set needs at least two different terms (separate them with commas or line breaks), none empty.",
    forbidden: "Only content owners and admins may change the vocabulary.", signInFirst: "Sign in first.",
    wrong: "Something went wrong: {e}", loadFailed: "Could not load the vocabulary: {e}",
    count: "{n} set(s).", none: "No sets yet. Add the first one above: at least two terms that mean the same.",
    termsOf: "Terms of set {id}", deleteLabel: "Delete set {id}: {terms}", delete: "Delete", deleting: "Deleting…",
    deleted: "Deleted set {id} ({terms}). It no longer applies from the next question.",
    gone: "Set {id} was already deleted.", added: "Added set {id}: {terms}. It applies from the next question.",
    signIn: "Sign in to see the vocabulary ({e}).",
    keptBy: "The vocabulary is kept by content owners and admins. You are {who} (roles: {roles}).",
    noRoles: "none", loadingSets: "Loading the vocabulary…",
  },
  ja: {
    docTitle: "用語集 — ナレッジベース", h1: "用語集",
    intro: "同じ意味の語のまとまり（略語、社内の呼び名、製品コード、表記ゆれ。日本語と英語）。どれか一つを含む質問は他の語でも検索され、サポートの質問一覧でも同じグループにまとめられます。変更は次の質問から反映され、再取り込みは不要です。",
    addTitle: "まとまりを追加", termsLabel: "同じ意味の語（カンマ区切りまたは1行に1語。2語以上）",
    add: "追加", adding: "追加中…", setsTitle: "登録済みのまとまり", caption: "同じ意味の語のまとまり",
    colSet: "番号", colTerms: "語", colBy: "追加した人", colAdded: "追加日時", colActions: "操作",
    duplicate: "追加できませんでした：{e}。同じ語のまとまりは一度だけ登録できます。",
    tooFew: "追加できませんでした：異なる語が2つ以上必要です（カンマか改行で区切ってください）。空の語は使えません。",
    forbidden: "用語集を変更できるのはコンテンツ管理者と管理者だけです。", signInFirst: "先にサインインしてください。",
    wrong: "エラーが発生しました：{e}", loadFailed: "用語集を読み込めませんでした：{e}",
    count: "{n}件のまとまり。", none: "まだ登録がありません。上のフォームから、同じ意味の語を2つ以上追加してください。",
    termsOf: "まとまり{id}の語", deleteLabel: "まとまり{id}を削除：{terms}", delete: "削除", deleting: "削除中…",
    deleted: "まとまり{id}（{terms}）を削除しました。次の質問から適用されません。",
    gone: "まとまり{id}はすでに削除されています。", added: "まとまり{id}を追加しました：{terms}。次の質問から適用されます。",
    signIn: "用語集を見るにはサインインしてください（{e}）。",
    keptBy: "用語集はコンテンツ管理者と管理者が管理します。あなたは {who}（ロール：{roles}）です。",
    noRoles: "なし", loadingSets: "用語集を読み込んでいます…",
  },
});
const t = i18n.t;
mountTopbar(document.querySelector("nav.topbar"), i18n, "/vocabulary");
i18n.apply();

const status = document.getElementById("status");
const editor = document.getElementById("editor");
const form = document.getElementById("add-set");
const formStatus = document.getElementById("form-status");
const body = document.querySelector("#sets tbody");
const api = (url, init = {}) => apiFetch(url, { identity: loadIdentity("/vocabulary"), ...init });
let sets = null;

/** "a, b\nc" -> ["a", "b", "c"]: commas (also 、 and ，) or line breaks separate terms. */
export function splitTerms(text) {
  return String(text).split(/[,，、\n]/).map((x) => x.trim()).filter(Boolean);
}

/** The API's refusal in plain words. */
function plain(err) {
  if (err.status === 409) return t("duplicate", { e: errorText(err, t) });
  if (err.status === 422) return t("tooFew");
  if (err.status === 403) return t("forbidden");
  if (err.status === 401) return t("signInFirst");
  return t("wrong", { e: errorText(err, t) });
}

async function loadSets() {
  say(status, t("loadingSets"));
  try {
    sets = await loading(body, () => api("/api/synonyms"));
  } catch (err) {
    sets = null;
    say(status, t("loadFailed", { e: errorText(err, t) }), "error");
    return;
  }
  render();
}

function render() {
  if (!sets) return;
  say(status, sets.length ? t("count", { n: sets.length }) : t("none"));
  body.replaceChildren(...sets.map((s) => el("tr", { "data-set-id": s.id },
    el("td", { class: "num" }, s.id),
    el("td", {}, el("ul", { class: "terms", "aria-label": t("termsOf", { id: s.id }) }, s.terms.map((x) => el("li", {}, x)))),
    el("td", {}, s.created_by),
    el("td", {}, when(s.created_at)),
    el("td", {}, el("button", { type: "button", class: "danger",
      "aria-label": t("deleteLabel", { id: s.id, terms: s.terms.join(", ") }),
      onclick: (e) => remove(s, e.currentTarget) }, t("delete"))))));
}

async function remove(set, button) {
  await busy(button, t("deleting"), async () => {
    try {
      await api(`/api/synonyms/${set.id}`, { method: "DELETE" });
      say(formStatus, t("deleted", { id: set.id, terms: set.terms.join(", ") }), "ok");
    } catch (err) {
      say(formStatus, err.status === 404 ? t("gone", { id: set.id }) : plain(err), "error");
    }
  });
  await loadSets();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const terms = splitTerms(form.elements.terms.value);
  await busy(document.getElementById("add-button"), t("adding"), async () => {
    try {
      const added = await api("/api/synonyms", { method: "POST", json: { terms } });
      say(formStatus, t("added", { id: added.id, terms: added.terms.join(", ") }), "ok");
      form.reset();
    } catch (err) {
      say(formStatus, plain(err), "error");
    }
    await loadSets();
  });
  form.elements.terms.focus();
});

async function start() {
  editor.hidden = true;
  body.replaceChildren();
  say(formStatus, "");
  let me;
  try {
    me = await api("/api/me");
  } catch (err) {
    say(status, t("signIn", { e: errorText(err, t) }), "error");
    return;
  }
  if (!me.roles.includes("content_owner") && !me.roles.includes("admin")) {
    say(status, t("keptBy", { who: me.user_id, roles: me.roles.join(", ") || t("noRoles") }), "error");
    return;
  }
  editor.hidden = false;
  await loadSets();
}

i18n.onChange(render);

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "owner-1", roles: "content_owner", groups: "", department: "support" },
  i18n,
  scope: "/vocabulary",
  onChange: start,
});
