// Content page: documents (status, version, groups), upload, replace, delete, change groups;
// ingestion runs with their per-file reports. Japanese and English (issue 25); the upload form
// and the row actions only for those who may use them (content owners, admins).
import { apiFetch, loadIdentity, mountDevSignIn } from "/static/lib/identity.js";
import { busy, el, loading, say, when } from "/static/lib/dom.js";
import { errorText, mountTopbar, translator } from "/static/lib/i18n.js";

const i18n = translator({
  en: {
    docTitle: "Content — Knowledge base", h1: "Content", uploadTitle: "Upload documents", files: "Files",
    title: "Title (one file only, optional)", groups: "Access groups (comma-separated; empty: public)",
    upload: "Upload", uploading: "Uploading…", documentsTitle: "Documents",
    documentsCaption: "Documents with status, version and access groups", runsTitle: "Ingestion runs",
    runsCaption: "Ingestion runs with their counts and per-file reports",
    colTitle: "Title", colStatus: "Status", colVersion: "Version", colChunks: "Chunks", colGroups: "Groups",
    colSource: "Source", colIngested: "Last ingested", colActions: "Actions", colStarted: "Started",
    colAdded: "Added", colUpdated: "Updated", colUnchanged: "Unchanged", colDeleted: "Deleted",
    colFailed: "Failed", colReport: "Report",
    readOnly: "You can read the documents you have access to. Uploading and changing documents needs the role content owner (or admin).",
    loadingDocs: "Loading documents…", docsFailed: "Could not load documents: {e}",
    docsCount: "{n} documents, {c} chunks in the index (the passages answers are searched and cited from).",
    noDocs: "No documents yet. Add some with the form above, or on the server with: kb ingest docs_corpus/",
    runsFailed: "Could not load runs: {e}", noRuns: "No ingestion runs yet.",
    filesSummary: "Files", progress: "{done} / {total} files {current}",
    done: "Done: {docs}", failedFiles: ". Failed: {failed}", nothing: "nothing",
    uploadFailed: "Upload failed: {e}", replacing: "Replacing {title}…", replaceFailed: "Replace failed: {e}",
    groupsOf: "Groups of {title}", newVersionOf: "New version of {title}", saveGroups: "Save groups",
    saving: "Saving…", replace: "Replace…", replaceLabel: "Replace {title}", delete: "Delete",
    deleteLabel: "Delete {title}", deleting: "Deleting…", managedBy: "managed by {source}", public: "public",
    groupsSet: "Groups of {title}: {groups}", groupsFailed: "Could not change groups: {e}",
    confirmDelete: "Delete “{title}” with its history and files?", deleted: "Deleted {title}",
    deleteFailed: "Delete failed: {e}", flagged: "{n} instruction-like passage(s)",
    status_indexed: "indexed", status_failed: "failed", status_stale: "stale", status_pending: "pending",
    status_running: "running", status_queued: "queued", status_finished: "finished",
    outcome_added: "added", outcome_updated: "updated", outcome_unchanged: "unchanged",
    outcome_deleted: "deleted", outcome_failed: "failed",
  },
  ja: {
    docTitle: "コンテンツ — ナレッジベース", h1: "コンテンツ", uploadTitle: "文書のアップロード", files: "ファイル",
    title: "タイトル（1ファイルのみ、任意）", groups: "アクセスグループ（カンマ区切り。空欄は全員に公開）",
    upload: "アップロード", uploading: "アップロード中…", documentsTitle: "文書",
    documentsCaption: "文書の状態、版、アクセスグループ", runsTitle: "取り込みの実行記録",
    runsCaption: "取り込みの実行ごとの件数とファイル別の結果",
    colTitle: "タイトル", colStatus: "状態", colVersion: "版", colChunks: "チャンク", colGroups: "グループ",
    colSource: "取得元", colIngested: "最終取り込み", colActions: "操作", colStarted: "開始",
    colAdded: "追加", colUpdated: "更新", colUnchanged: "変更なし", colDeleted: "削除",
    colFailed: "失敗", colReport: "結果",
    readOnly: "閲覧できる文書を表示しています。文書のアップロードと変更にはコンテンツ管理者（または管理者）のロールが必要です。",
    loadingDocs: "文書を読み込んでいます…", docsFailed: "文書を読み込めませんでした：{e}",
    docsCount: "文書{n}件、索引のチャンク{c}件（回答の検索と引用に使う文章の単位）。",
    noDocs: "文書はまだありません。上のフォームから追加するか、サーバーで kb ingest docs_corpus/ を実行してください。",
    runsFailed: "実行記録を読み込めませんでした：{e}", noRuns: "取り込みの実行はまだありません。",
    filesSummary: "ファイル", progress: "{done} / {total} ファイル {current}",
    done: "完了：{docs}", failedFiles: "。失敗：{failed}", nothing: "なし",
    uploadFailed: "アップロードに失敗しました：{e}", replacing: "{title} を置き換えています…", replaceFailed: "置き換えに失敗しました：{e}",
    groupsOf: "{title} のグループ", newVersionOf: "{title} の新しい版", saveGroups: "グループを保存",
    saving: "保存中…", replace: "置き換え…", replaceLabel: "{title} を置き換え", delete: "削除",
    deleteLabel: "{title} を削除", deleting: "削除中…", managedBy: "{source} で管理", public: "全員に公開",
    groupsSet: "{title} のグループ：{groups}", groupsFailed: "グループを変更できませんでした：{e}",
    confirmDelete: "「{title}」を履歴とファイルごと削除しますか？", deleted: "{title} を削除しました",
    deleteFailed: "削除に失敗しました：{e}", flagged: "指示のように読める箇所 {n}件",
    status_indexed: "索引済み", status_failed: "失敗", status_stale: "要更新", status_pending: "保留",
    status_running: "実行中", status_queued: "待機中", status_finished: "完了",
    outcome_added: "追加", outcome_updated: "更新", outcome_unchanged: "変更なし",
    outcome_deleted: "削除", outcome_failed: "失敗",
  },
});
const t = i18n.t;
mountTopbar(document.querySelector("nav.topbar"), i18n, "/content");
i18n.apply();

const status = document.getElementById("status");
const docsBody = document.querySelector("#documents tbody");
const docsNote = document.getElementById("documents-note");
const runsBody = document.querySelector("#runs tbody");
const upload = document.getElementById("upload");
const uploadSection = document.getElementById("upload-section");
const uploadNote = document.getElementById("upload-note");
const api = (url, init = {}) => apiFetch(url, { identity: loadIdentity("/content"), ...init });
let canWrite = false;
let docs = null;
let runs = null;

function outcomeText(result) {
  const done = result.documents.map((d) => `${d.title} (${i18n.word("outcome_", d.outcome)}, v${d.version})`).join(", ");
  const failed = result.failed.map((f) => `${f.name}: ${f.message || f.detail}`).join("; ");
  return t("done", { docs: done || t("nothing") }) + (failed ? t("failedFiles", { failed }) : "");
}

// Text that reads like instructions to a language model (issue 7): indexed, removed from
// prompts, listed here so the owner can fix the document.
function flagList(flags) {
  if (!flags || !flags.length) return null;
  return el("details", { class: "flags" },
    el("summary", {}, el("span", { class: "badge flagged" }, t("flagged", { n: flags.length }))),
    el("ul", {}, flags.map((f) => el("li", {}, `${f.kind}${f.location ? ` · ${f.location}` : ""}: `, el("q", {}, f.excerpt)))));
}

async function loadDocuments() {
  say(docsNote, t("loadingDocs"));
  try {
    docs = await loading(docsBody, () => api("/api/documents"));
  } catch (err) {
    docs = null;
    docsBody.replaceChildren();
    say(docsNote, t("docsFailed", { e: errorText(err, t) }), "error");
    return;
  }
  renderDocuments();
}

function renderDocuments() {
  if (!docs) return;
  const chunks = docs.reduce((n, d) => n + (d.status === "indexed" ? d.chunk_count || 0 : 0), 0);
  say(docsNote, docs.length ? t("docsCount", { n: docs.length, c: chunks }) : t("noDocs"));
  docsBody.replaceChildren();
  for (const d of docs) {
    const uploaded = d.source === "upload";
    let actions;
    if (uploaded && canWrite) {
      const groupsInput = el("input", { type: "text", value: d.groups.join(", "),
        "aria-label": t("groupsOf", { title: d.title }) });
      const fileInput = el("input", { type: "file", class: "sr-only", tabindex: "-1",
        "aria-label": t("newVersionOf", { title: d.title }) });
      const replaceButton = el("button", { type: "button", onclick: () => fileInput.click(),
        "aria-label": t("replaceLabel", { title: d.title }) }, t("replace"));
      fileInput.addEventListener("change", () => replace(d, fileInput, replaceButton));
      actions = el("div", { class: "row-actions" },
        groupsInput,
        el("button", { type: "button", onclick: (e) => setGroups(d, groupsInput.value, e.currentTarget) }, t("saveGroups")),
        fileInput, replaceButton,
        el("button", { type: "button", class: "danger", onclick: (e) => remove(d, e.currentTarget),
          "aria-label": t("deleteLabel", { title: d.title }) }, t("delete")));
    } else {
      actions = el("span", { class: "meta" }, uploaded ? "–" : t("managedBy", { source: d.source }));
    }
    docsBody.append(el("tr", { "data-document-id": d.id },
      el("td", {}, el("a", { href: `/api/documents/${encodeURIComponent(d.id)}/source`, target: "_blank", rel: "noopener" }, d.title)),
      el("td", {}, el("span", { class: `badge ${d.status}` }, i18n.word("status_", d.status)),
        d.last_error ? el("div", { class: "meta" }, d.last_error) : null, flagList(d.flags)),
      el("td", { class: "num" }, d.version),
      el("td", { class: "num" }, d.chunk_count),
      el("td", {}, d.groups.length ? d.groups.join(", ") : t("public")),
      el("td", {}, d.source_path || d.source),
      el("td", {}, when(d.last_ingested)),
      el("td", {}, actions)));
  }
}

async function loadRuns() {
  if (!canWrite) {
    runs = [];
    renderRuns();
    return;
  }
  try {
    runs = await loading(runsBody, () => api("/api/ingest/runs?limit=30"));
  } catch (err) {
    runs = null;
    runsBody.replaceChildren(el("tr", {}, el("td", { colspan: 9 }, t("runsFailed", { e: errorText(err, t) }))));
    return;
  }
  renderRuns();
  clearTimeout(runsTimer);
  if (runs.some((r) => r.status === "running" || r.status === "queued")) runsTimer = setTimeout(loadRuns, 2000);
}
let runsTimer;

function renderRuns() {
  if (!runs) return;
  runsBody.replaceChildren();
  if (!runs.length) runsBody.append(el("tr", {}, el("td", { colspan: 9 }, canWrite ? t("noRuns") : t("readOnly"))));
  for (const r of runs) {
    const details = el("details", {}, el("summary", {}, t("filesSummary")));
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      try {
        const full = await api(`/api/ingest/runs/${encodeURIComponent(r.id)}`);
        details.append(el("ul", {}, (full.files || []).map((f) =>
          el("li", {}, `${i18n.word("outcome_", f.outcome)}: ${f.path}`, f.error ? el("em", {}, ` — ${f.error}`) : null,
            (f.warnings || []).length ? el("em", {}, ` (${f.warnings.join("; ")})`) : null))));
      } catch (err) {
        details.append(el("p", {}, errorText(err, t)));
      }
    });
    runsBody.append(el("tr", {},
      el("td", {}, when(r.started_at)), el("td", {}, r.source),
      el("td", {}, el("span", { class: `badge ${r.status}` }, i18n.word("status_", r.status)), r.error ? ` ${r.error}` : "",
        // Progress of a run in the worker (issue 20): files done of the total, the one in hand.
        r.status === "running" && r.progress
          ? el("div", { class: "meta" }, t("progress", { done: r.progress.done, total: r.progress.total, current: r.progress.current || "" }))
          : null),
      el("td", { class: "num" }, r.added), el("td", { class: "num" }, r.updated),
      el("td", { class: "num" }, r.unchanged), el("td", { class: "num" }, r.deleted),
      el("td", { class: "num" }, r.failed), el("td", {}, details)));
  }
}

async function refresh() {
  await Promise.all([loadDocuments(), loadRuns()]);
}

upload.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = new FormData(upload);
  await busy(document.getElementById("upload-button"), t("uploading"), async () => {
    say(status, t("uploading"));
    try {
      const result = await api("/api/documents", { method: "POST", body: data });
      say(status, outcomeText(result), result.failed.length ? "error" : "ok");
      upload.reset();
    } catch (err) {
      say(status, t("uploadFailed", { e: errorText(err, t) }), "error");
    }
    await refresh();
  });
});

async function replace(doc, input, button) {
  if (!input.files.length) return;
  const data = new FormData();
  data.append("file", input.files[0]);
  await busy(button, t("working"), async () => {
    say(status, t("replacing", { title: doc.title }));
    try {
      const result = await api(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "PUT", body: data });
      say(status, outcomeText(result), "ok");
    } catch (err) {
      say(status, t("replaceFailed", { e: errorText(err, t) }), "error");
    }
    await refresh();
  });
}

async function setGroups(doc, value, button) {
  const groups = value.split(",").map((g) => g.trim()).filter(Boolean);
  await busy(button, t("saving"), async () => {
    try {
      await api(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "PATCH", json: { groups } });
      say(status, t("groupsSet", { title: doc.title, groups: groups.join(", ") || t("public") }), "ok");
    } catch (err) {
      say(status, t("groupsFailed", { e: errorText(err, t) }), "error");
    }
    await refresh();
  });
}

async function remove(doc, button) {
  if (!confirm(t("confirmDelete", { title: doc.title }))) return;
  await busy(button, t("deleting"), async () => {
    try {
      await api(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
      say(status, t("deleted", { title: doc.title }), "ok");
    } catch (err) {
      say(status, t("deleteFailed", { e: errorText(err, t) }), "error");
    }
    await refresh();
  });
}

/** Who the API says this is: the upload form and row actions only for writers (issue 25). */
async function start() {
  let me = null;
  try {
    me = await api("/api/me");
  } catch { /* the documents' own error says why */ }
  const roles = me ? me.roles : [];
  canWrite = roles.includes("content_owner") || roles.includes("admin");
  uploadSection.hidden = !canWrite;
  uploadNote.hidden = canWrite;
  uploadNote.dataset.i18n = "readOnly";
  uploadNote.textContent = t("readOnly");
  await refresh();
}

i18n.onChange(() => { renderDocuments(); renderRuns(); });

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "owner-1", roles: "content_owner", groups: "", department: "" },
  i18n,
  scope: "/content",
  onChange: start,
});
