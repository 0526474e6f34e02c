// Identity (issues 6 and 8): the pages and the widget tell the API who is asking with a bearer
// token (a local API token from `kb tokens create`, an OIDC access token, or a short-lived
// widget token issued by POST /api/widget/token). Only when the service runs with
// KB_AUTH__DEV_HEADERS=true (loopback only) do the X-User-* development headers count.
// This is the only module that knows how.

import { pickLang } from "./i18n.js";

// Each staff page keeps its own development identity in this tab (issue 25): the console acts
// as support-1 while the content page, in the same tab, acts as owner-1, and switching a role
// on one page changes no other. A bearer token is who you are, not a role: it is shared by the
// pages of the tab. sessionStorage is per tab, so other tabs are never affected.
const PREFIX = "kb.devIdentity:";
const TOKEN_KEY = "kb.token";
const FIELDS = ["token", "userId", "groups", "roles", "department"];
export const ROLES = ["employee", "support", "content_owner", "evaluator", "admin"];

function scopeKey(scope) {
  return PREFIX + (scope || location.pathname || "/");
}

/** The identity this page uses in this browser tab (sessionStorage), or null. */
export function loadIdentity(scope) {
  try {
    const value = JSON.parse(sessionStorage.getItem(scopeKey(scope)) || "null");
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    if (!value && !token) return null;
    return { ...(value && typeof value === "object" ? value : {}), token };
  } catch {
    return null;
  }
}

/** Store this page's identity for this tab (the token for every page of the tab). */
export function saveIdentity(identity, scope) {
  const clean = {};
  for (const f of FIELDS) clean[f] = String(identity[f] || "").trim();
  const { token, ...dev } = clean;
  sessionStorage.setItem(scopeKey(scope), JSON.stringify(dev));
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  return clean;
}

export function clearIdentity(scope) {
  sessionStorage.removeItem(scopeKey(scope));
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An identity from an element's attributes (user-id, user-groups, user-roles, user-department). */
export function identityFromAttributes(element) {
  if (element.hasAttribute("token")) return { token: element.getAttribute("token") || "" };
  if (!element.hasAttribute("user-id")) return null;
  return {
    userId: element.getAttribute("user-id") || "",
    groups: element.getAttribute("user-groups") || "",
    roles: element.getAttribute("user-roles") || "",
    department: element.getAttribute("user-department") || "",
  };
}

/** The request headers that carry an identity. */
export function identityHeaders(identity) {
  const headers = {};
  if (!identity) return headers;
  if (identity.token) {
    headers["Authorization"] = `Bearer ${identity.token}`;
    return headers;
  }
  const map = { userId: "X-User-Id", groups: "X-User-Groups", roles: "X-User-Roles",
                department: "X-User-Department" };
  for (const [field, header] of Object.entries(map)) {
    if (identity[field]) headers[header] = identity[field];
  }
  return headers;
}

/** An error from the API, in its one shape: {error_code, detail} plus `message`, the detail in
 * the language asked for with Accept-Language (issue 25). */
export class ApiError extends Error {
  constructor(status, code, detail, message) {
    super(message || detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail || "";
  }
}

/** fetch() with the identity's headers and the page's language; JSON in and out; throws
 * ApiError on an error status. */
export async function apiFetch(url, { identity = loadIdentity(), json, headers = {}, ...init } = {}) {
  const all = { "Accept-Language": pickLang(), ...identityHeaders(identity), ...headers };
  if (json !== undefined) {
    all["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const resp = await fetch(url, { ...init, headers: all });
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    throw new ApiError(resp.status, body && body.error_code, body && body.detail, body && body.message);
  }
  return body;
}

/**
 * The sign-in form of the staff pages: a token (an API or OIDC token), or, clearly labelled,
 * a development identity with a role picker. Calls onChange(identity) after each save and once
 * at start. `i18n` is the page's translator (lib/i18n.js); `scope` names the page.
 */
export function mountDevSignIn(container, { defaults = {}, onChange = () => {}, i18n, scope } = {}) {
  const t = i18n ? i18n.t : (k) => k;
  if (!loadIdentity(scope) && defaults.userId) saveIdentity(defaults, scope);
  const current = loadIdentity(scope) || defaults;
  const form = document.createElement("form");
  form.className = "dev-identity";
  form.setAttribute("data-i18n-aria-label", "signIn");
  const legend = document.createElement("p");
  legend.className = "dev-note";
  legend.dataset.i18n = "signInNote";
  legend.id = `${scope || "page"}-sign-in-note`.replace(/[^\w-]/g, "");
  form.setAttribute("aria-describedby", legend.id);
  form.append(legend);
  for (const f of ["token", "userId", "groups", "department"]) {
    const label = document.createElement("label");
    const span = document.createElement("span");
    span.dataset.i18n = f;
    const input = document.createElement("input");
    input.name = f;
    input.value = current[f] || "";
    input.autocomplete = "off";
    if (f === "token") input.type = "password";
    label.append(span, input);
    form.append(label);
  }
  // Roles from a picker, not free text (issue 25): the five the service knows.
  const roles = document.createElement("fieldset");
  roles.className = "roles";
  const legendRoles = document.createElement("legend");
  legendRoles.dataset.i18n = "roles";
  roles.append(legendRoles);
  const held = new Set(String(current.roles || "").split(",").map((r) => r.trim()).filter(Boolean));
  for (const role of ROLES) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "roles";
    box.value = role;
    box.checked = held.has(role);
    const span = document.createElement("span");
    span.dataset.i18n = `role_${role}`;
    label.append(box, span);
    roles.append(label);
  }
  form.append(roles);
  const button = document.createElement("button");
  button.type = "submit";
  button.dataset.i18n = "useIdentity";
  form.append(button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const identity = Object.fromEntries([...data.entries()].filter(([k]) => k !== "roles"));
    identity.roles = data.getAll("roles").join(",");
    onChange(saveIdentity(identity, scope));
  });
  container.append(form);
  if (i18n) i18n.apply(form);
  onChange(loadIdentity(scope));
}

/** The roles of the current identity as the page believes them (GET /api/me is the truth). */
export function rolesOf(identity) {
  return String((identity && identity.roles) || "").split(",").map((r) => r.trim()).filter(Boolean);
}
