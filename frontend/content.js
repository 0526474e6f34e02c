// Content page: documents (status, version, groups), upload, replace, delete, change groups;
// ingestion runs with their per-file reports.
import { apiFetch, mountDevSignIn } from "/static/lib/identity.js";
import { el, say, when } from "/static/lib/dom.js";

const status = document.getElementById("status");
const docsBody = document.querySelector("#documents tbody");
const runsBody = document.querySelector("#runs tbody");
const upload = document.getElementById("upload");

function outcomeText(result) {
  const done = result.documents.map((d) => `${d.title} (${d.outcome}, v${d.version})`).join(", ");
  const failed = result.failed.map((f) => `${f.name}: ${f.detail}`).join("; ");
  return `Done: ${done || "nothing"}${failed ? `. Failed: ${failed}` : ""}`;
}

// Text that reads like instructions to a language model (issue 7): indexed, removed from
// prompts, listed here so the owner can fix the document.
function flagList(flags) {
  if (!flags || !flags.length) return null;
  return el("details", { class: "flags" },
    el("summary", {}, el("span", { class: "badge flagged" }, `${flags.length} instruction-like passage${flags.length > 1 ? "s" : ""}`)),
    el("ul", {}, flags.map((f) => el("li", {}, `${f.kind}${f.location ? ` · ${f.location}` : ""}: `, el("q", {}, f.excerpt)))));
}

async function loadDocuments() {
  let docs;
  try {
    docs = await apiFetch("/api/documents");
  } catch (err) {
    say(status, `Could not load documents: ${err.message}`, "error");
    return;
  }
  docsBody.replaceChildren();
  for (const d of docs) {
    const uploaded = d.source === "upload";
    const groupsInput = el("input", { type: "text", value: d.groups.join(", "),
      "aria-label": `Groups of ${d.title}` });
    const fileInput = el("input", { type: "file", class: "sr-only", "aria-label": `New version of ${d.title}` });
    fileInput.addEventListener("change", () => replace(d, fileInput));
    const actions = uploaded ? el("div", { class: "row-actions" },
      groupsInput,
      el("button", { type: "button", onclick: () => setGroups(d, groupsInput.value) }, "Save groups"),
      fileInput,
      el("button", { type: "button", onclick: () => fileInput.click(), "aria-label": `Replace ${d.title}` }, "Replace…"),
      el("button", { type: "button", class: "danger", onclick: () => remove(d), "aria-label": `Delete ${d.title}` }, "Delete"))
      : el("span", { class: "meta" }, `managed by ${d.source}`);
    docsBody.append(el("tr", { "data-document-id": d.id },
      el("td", {}, el("a", { href: `/api/documents/${encodeURIComponent(d.id)}/source`, target: "_blank", rel: "noopener" }, d.title)),
      el("td", {}, el("span", { class: `badge ${d.status}` }, d.status), d.last_error ? el("div", { class: "meta" }, d.last_error) : null,
        flagList(d.flags)),
      el("td", { class: "num" }, d.version),
      el("td", { class: "num" }, d.chunk_count),
      el("td", {}, d.groups.length ? d.groups.join(", ") : "public"),
      el("td", {}, d.source_path || d.source),
      el("td", {}, when(d.last_ingested)),
      el("td", {}, actions)));
  }
}

async function loadRuns() {
  let runs;
  try {
    runs = await apiFetch("/api/ingest/runs?limit=30");
  } catch (err) {
    runsBody.replaceChildren(el("tr", {}, el("td", { colspan: 9 }, `Could not load runs: ${err.message}`)));
    return;
  }
  runsBody.replaceChildren();
  for (const r of runs) {
    const details = el("details", {}, el("summary", {}, "Files"));
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      try {
        const full = await apiFetch(`/api/ingest/runs/${encodeURIComponent(r.id)}`);
        details.append(el("ul", {}, (full.files || []).map((f) =>
          el("li", {}, `${f.outcome}: ${f.path}`, f.error ? el("em", {}, ` — ${f.error}`) : null,
            (f.warnings || []).length ? el("em", {}, ` (${f.warnings.join("; ")})`) : null))));
      } catch (err) {
        details.append(el("p", {}, err.message));
      }
    });
    runsBody.append(el("tr", {},
      el("td", {}, when(r.started_at)), el("td", {}, r.source),
      el("td", {}, el("span", { class: `badge ${r.status}` }, r.status), r.error ? ` ${r.error}` : "",
        // Progress of a run in the worker (issue 20): files done of the total, the one in hand.
        r.status === "running" && r.progress
          ? el("div", { class: "meta" }, `${r.progress.done} / ${r.progress.total} ${r.progress.current || ""}`)
          : null),
      el("td", { class: "num" }, r.added), el("td", { class: "num" }, r.updated),
      el("td", { class: "num" }, r.unchanged), el("td", { class: "num" }, r.deleted),
      el("td", { class: "num" }, r.failed), el("td", {}, details)));
  }
  clearTimeout(runsTimer);
  if (runs.some((r) => r.status === "running" || r.status === "queued")) runsTimer = setTimeout(loadRuns, 2000);
}
let runsTimer;

async function refresh() {
  await Promise.all([loadDocuments(), loadRuns()]);
}

upload.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = new FormData(upload);
  say(status, "Uploading and indexing…");
  try {
    const result = await apiFetch("/api/documents", { method: "POST", body: data });
    say(status, outcomeText(result), result.failed.length ? "error" : "ok");
    upload.reset();
  } catch (err) {
    say(status, `Upload failed: ${err.message}`, "error");
  }
  refresh();
});

async function replace(doc, input) {
  if (!input.files.length) return;
  const data = new FormData();
  data.append("file", input.files[0]);
  say(status, `Replacing ${doc.title}…`);
  try {
    const result = await apiFetch(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "PUT", body: data });
    say(status, outcomeText(result), "ok");
  } catch (err) {
    say(status, `Replace failed: ${err.message}`, "error");
  }
  refresh();
}

async function setGroups(doc, value) {
  const groups = value.split(",").map((g) => g.trim()).filter(Boolean);
  try {
    await apiFetch(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "PATCH", json: { groups } });
    say(status, `Groups of ${doc.title}: ${groups.join(", ") || "public"}`, "ok");
  } catch (err) {
    say(status, `Could not change groups: ${err.message}`, "error");
  }
  refresh();
}

async function remove(doc) {
  if (!confirm(`Delete “${doc.title}” with its history and files?`)) return;
  try {
    await apiFetch(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
    say(status, `Deleted ${doc.title}`, "ok");
  } catch (err) {
    say(status, `Delete failed: ${err.message}`, "error");
  }
  refresh();
}

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "owner-1", roles: "content_owner", groups: "", department: "" },
  onChange: refresh,
});
