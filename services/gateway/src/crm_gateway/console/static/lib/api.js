// The console's only way to the server: the gateway's public /v1 API, with the session cookie
// (HttpOnly: this code never sees the token). State-changing calls carry the CSRF token the
// gateway bound to the session, and POST/PATCH an Idempotency-Key, so a retried click is applied once.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let onUnauthorized = null;
export function whenUnauthorized(callback) { onUnauthorized = callback; }

function csrfToken() {
  const found = document.cookie.split("; ").find((part) => part.startsWith("crm_csrf="));
  return found ? decodeURIComponent(found.slice("crm_csrf=".length)) : "";
}

async function request(method, path, { query, body, headers } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
  }
  const init = { method, credentials: "same-origin", headers: { accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  if (!["GET", "HEAD"].includes(method)) init.headers["x-csrf-token"] = csrfToken();
  if (["POST", "PATCH"].includes(method) && !init.headers["idempotency-key"]) {
    init.headers["idempotency-key"] = crypto.randomUUID();
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, { title: t("common.network_error"), detail: String(error) });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { title: response.statusText || `HTTP ${response.status}`,
                                                                 detail: typeof data === "string" ? data : "" };
    if (response.status === 401 && onUnauthorized && !path.startsWith("/v1/session")) onUnauthorized();
    throw new ApiError(response.status, problem);
  }
  return data;
}

export const api = {
  get: (path, query, options) => request("GET", path, { ...options, query }),
  post: (path, body, options) => request("POST", path, { ...options, body: body ?? {} }),
  put: (path, body, options) => request("PUT", path, { ...options, body }),
  patch: (path, body, options) => request("PATCH", path, { ...options, body }),
  del: (path, options) => request("DELETE", path, options),
};
