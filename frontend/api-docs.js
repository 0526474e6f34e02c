// The API reference at /docs (issue 20): rendered here from /openapi.json, with nothing loaded
// from a CDN, so that an offline install has its documentation too.
import { el } from "./lib/dom.js";
import { mountTopbar, translator } from "./lib/i18n.js";

// The page's own words in Japanese and English (issue 25); the operations are the schema's.
const i18n = translator({
  en: { docTitle: "API — Knowledge base", h1: "API reference", from: "Generated from",
        auth: "Every /api route needs a bearer token (Authorization: Bearer); errors have one shape, {\"error_code\", \"detail\", \"message\"}.", responses: "Responses", required: "required",
        failed: "Could not load the API description: {e}" },
  ja: { docTitle: "API — ナレッジベース", h1: "APIリファレンス", from: "生成元：",
        auth: "/api のすべてのルートにベアラートークン（Authorization: Bearer）が必要です。エラーは常に {\"error_code\", \"detail\", \"message\"} の形です（message は Accept-Language の言語）。", responses: "応答", required: "必須",
        failed: "API の説明を読み込めませんでした：{e}" },
});
mountTopbar(document.querySelector("nav.topbar"), i18n, "/docs");
i18n.apply();

const status = document.getElementById("status");
const target = document.getElementById("operations");

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return `${schemaName(schema.items)}[]`;
  return schema.type || "";
}

function operation(path, method, op) {
  const params = (op.parameters || []).map((p) =>
    el("li", {}, el("code", {}, p.name), ` (${p.in}${p.required ? `, ${i18n.t("required")}` : ""}) ${schemaName(p.schema)}`));
  const body = op.requestBody?.content
    ? Object.entries(op.requestBody.content).map(([type, c]) => el("li", {}, `body ${type}: ${schemaName(c.schema)}`))
    : [];
  const responses = Object.entries(op.responses || {}).map(([code, r]) =>
    el("li", {}, el("code", {}, code), ` ${r.description || ""}`));
  return el("section", { class: "card" },
    el("h2", {}, el("code", {}, `${method.toUpperCase()} ${path}`)),
    el("p", {}, op.summary || ""),
    op.description ? el("p", { class: "meta" }, op.description) : null,
    params.length || body.length ? el("ul", {}, [...params, ...body]) : null,
    el("details", {}, el("summary", {}, i18n.t("responses")), el("ul", {}, responses)));
}

try {
  const response = await fetch("/openapi.json");
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const spec = await response.json();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) target.append(operation(path, method, op));
  }
} catch (err) {
  status.textContent = i18n.t("failed", { e: err.message });
}
