// Japanese and English for every page (issue 25). The language is the one picked with the
// switch (kept in localStorage, so every page and tab follows it), else the browser's.
// Each page passes its own dictionary; COMMON holds the words the pages share.

const KEY = "kb.lang";
export const LANGS = ["ja", "en"];

/** "ja" or "en": the stored choice, else the browser's first language we speak. */
export function pickLang() {
  try {
    const stored = localStorage.getItem(KEY);
    if (LANGS.includes(stored)) return stored;
  } catch { /* storage unavailable */ }
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const two = String(l).toLowerCase().slice(0, 2);
    if (LANGS.includes(two)) return two;
  }
  return "en";
}

export function storeLang(lang) {
  try { localStorage.setItem(KEY, lang); } catch { /* storage unavailable */ }
}

/** Words every staff page uses: navigation, the sign-in form, busy and error states. */
export const COMMON = {
  en: {
    brand: "Knowledge base", pages: "Pages", navAsk: "Ask", navConsole: "Support console",
    navContent: "Content", navEvaluation: "Evaluation", navVocabulary: "Vocabulary",
    navDemo: "Widget demo", navDocs: "API", language: "Language",
    signIn: "Sign in", signInNote: "Sign in with an API token (kb tokens create) or an OIDC access token. " +
      "The other fields are a development identity, sent as X-User-* headers and accepted only when the " +
      "service runs with KB_AUTH__DEV_HEADERS=true. Each page keeps its own identity in this tab.",
    token: "Token", userId: "User id", groups: "Groups (comma-separated)", roles: "Roles",
    department: "Department", useIdentity: "Use this identity",
    role_employee: "employee", role_support: "support", role_content_owner: "content owner",
    role_evaluator: "evaluator", role_admin: "admin",
    loading: "Loading…", working: "Working…", error: "Something went wrong",
  },
  ja: {
    brand: "ナレッジベース", pages: "ページ", navAsk: "質問", navConsole: "サポートコンソール",
    navContent: "コンテンツ", navEvaluation: "評価", navVocabulary: "用語集",
    navDemo: "ウィジェットのデモ", navDocs: "API", language: "言語",
    signIn: "サインイン", signInNote: "APIトークン（kb tokens create）またはOIDCアクセストークンでサインインします。" +
      "その他の欄は開発用IDで、X-User-* ヘッダーとして送られ、KB_AUTH__DEV_HEADERS=true で動くサービスだけが受け付けます。" +
      "IDはページごとにこのタブで保持されます。",
    token: "トークン", userId: "ユーザーID", groups: "グループ（カンマ区切り）", roles: "ロール",
    department: "部署", useIdentity: "このIDを使う",
    role_employee: "従業員", role_support: "サポート", role_content_owner: "コンテンツ管理者",
    role_evaluator: "評価担当", role_admin: "管理者",
    loading: "読み込み中…", working: "処理中…", error: "エラーが発生しました",
  },
};

/**
 * A translator for one page: t("key", {n: 3}) with {name} placeholders, falling back to
 * English and then to the key. Also fills elements marked data-i18n (text),
 * data-i18n-placeholder, data-i18n-aria-label and data-i18n-title.
 */
export function translator(pageDict) {
  let lang = pickLang();
  const listeners = [];
  const t = (key, vars = {}) => {
    const value = (pageDict[lang] && pageDict[lang][key]) ?? COMMON[lang][key] ??
      (pageDict.en && pageDict.en[key]) ?? COMMON.en[key] ?? key;
    if (typeof value !== "string") return value;
    return value.replace(/\{(\w+)\}/g, (_m, k) => (k in vars ? String(vars[k]) : `{${k}}`));
  };
  const apply = (root = document) => {
    document.documentElement.lang = lang;
    for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const attr of ["placeholder", "aria-label", "title"]) {
      for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
        node.setAttribute(attr, t(node.getAttribute(`data-i18n-${attr}`)));
      }
    }
    if (pageDict[lang] && pageDict[lang].docTitle) document.title = pageDict[lang].docTitle;
  };
  /** The word for a server value (a state, a status): its translation, else the value. */
  const word = (prefix, value) => {
    const key = `${prefix}${value}`;
    const found = (pageDict[lang] && pageDict[lang][key]) ?? (pageDict.en && pageDict.en[key]);
    return found === undefined ? String(value) : t(key);
  };
  return {
    t,
    word,
    apply,
    get lang() { return lang; },
    set(next) {
      if (!LANGS.includes(next) || next === lang) return;
      lang = next;
      storeLang(next);
      apply();
      for (const fn of listeners) fn(lang);
    },
    onChange(fn) { listeners.push(fn); },
  };
}

/**
 * The language switch: two buttons (日本語 / English) in a labelled group, the current one
 * pressed. Placed in `container`; calls i18n.set().
 */
export function mountLangSwitch(container, i18n) {
  const group = document.createElement("div");
  group.className = "lang-switch";
  group.setAttribute("role", "group");
  const names = { ja: "日本語", en: "English" };
  const buttons = LANGS.map((l) => {
    const b = document.createElement("button");
    b.type = "button";
    b.lang = l;
    b.dataset.lang = l;
    b.textContent = names[l];
    b.addEventListener("click", () => i18n.set(l));
    return b;
  });
  const sync = () => {
    group.setAttribute("aria-label", i18n.t("language"));
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.lang === i18n.lang));
  };
  group.append(...buttons);
  container.append(group);
  sync();
  i18n.onChange(sync);
  return group;
}

/** The staff pages' top bar: links to every page (the current one marked) and the switch. */
export function mountTopbar(nav, i18n, current) {
  const links = [
    ["/console", "navConsole"], ["/content", "navContent"], ["/evaluation", "navEvaluation"],
    ["/vocabulary", "navVocabulary"], ["/", "navAsk"], ["/demo", "navDemo"],
  ];
  nav.replaceChildren();
  nav.setAttribute("data-i18n-aria-label", "pages");
  const brand = document.createElement("span");
  brand.className = "brand";
  brand.dataset.i18n = "brand";
  nav.append(brand);
  const list = document.createElement("ul");
  for (const [href, key] of links) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = href;
    a.dataset.i18n = key;
    if (href === current) a.setAttribute("aria-current", "page");
    li.append(a);
    list.append(li);
  }
  nav.append(list);
  mountLangSwitch(nav, i18n);
}

/** An API error in the page's language: the server's translated `message` when it sent one. */
export function errorText(err, t) {
  if (!err) return t("error");
  return err.localized || err.message || t("error");
}
