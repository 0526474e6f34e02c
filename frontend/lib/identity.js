// Identity (issues 6 and 8): the pages and the widget tell the API who is asking with a bearer
// token (a local API token from `kb tokens create`, an OIDC access token, or a short-lived
// widget token issued by POST /api/widget/token). Only when the service runs with
// KB_AUTH__DEV_HEADERS=true (loopback only) do the X-User-* development headers count.
// This is the only module that knows how.

const KEY = "kb.devIdentity";
const FIELDS = ["token", "userId", "groups", "roles", "department"];

/** The identity stored in this browser tab (sessionStorage), or null. */
export function loadIdentity() {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/** Store an identity for this tab. */
export function saveIdentity(identity) {
  const clean = {};
  for (const f of FIELDS) clean[f] = String(identity[f] || "").trim();
  sessionStorage.setItem(KEY, JSON.stringify(clean));
  return clean;
}

export function clearIdentity() {
  sessionStorage.removeItem(KEY);
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

/** An error from the API, in its one shape: {error_code, detail}. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** fetch() with the identity's headers; JSON in and out; throws ApiError on an error status. */
export async function apiFetch(url, { identity = loadIdentity(), json, headers = {}, ...init } = {}) {
  const all = { ...identityHeaders(identity), ...headers };
  if (json !== undefined) {
    all["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const resp = await fetch(url, { ...init, headers: all });
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    throw new ApiError(resp.status, body && body.error_code, body && body.detail);
  }
  return body;
}

/**
 * A small sign-in form for the staff pages, clearly labelled as a development identity.
 * Calls onChange(identity) after each save and once at start when one is stored.
 */
export function mountDevSignIn(container, { defaults = {}, onChange = () => {} } = {}) {
  const current = loadIdentity() || defaults;
  const form = document.createElement("form");
  form.className = "dev-identity";
  form.setAttribute("aria-label", "Development identity");
  const legend = document.createElement("p");
  legend.className = "dev-note";
  legend.textContent = "Sign in with an API token (kb tokens create) or an OIDC access token; " +
    "kept in this tab only. The other fields are a development identity, sent as X-User-* " +
    "headers and accepted only when the service runs with KB_AUTH__DEV_HEADERS=true.";
  form.append(legend);
  const labels = { token: "Token", userId: "User id", groups: "Groups", roles: "Roles",
                   department: "Department" };
  for (const f of FIELDS) {
    const label = document.createElement("label");
    label.textContent = labels[f] + " ";
    const input = document.createElement("input");
    input.name = f;
    input.value = current[f] || "";
    input.autocomplete = "off";
    if (f === "token") input.type = "password";
    label.append(input);
    form.append(label);
  }
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Use this identity";
  form.append(button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    onChange(saveIdentity(data));
  });
  container.append(form);
  if (!loadIdentity() && defaults.userId) saveIdentity(defaults);
  onChange(loadIdentity());
}
