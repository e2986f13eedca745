// The API client: bearer tokens, refresh on 401, problem+json errors, server clock offset.
//
// Tokens: the access token (15 min) lives in memory and sessionStorage (this tab only); the
// refresh token in localStorage, so an installed app that the phone closed can still check in
// without a new login. See docs/app.md ("Security notes") for the trade-off.

const BASE = '/api/v1';
const ACCESS = 'doorstep.access';
const REFRESH = 'doorstep.refresh';

let access = sessionStorage.getItem(ACCESS);
let refreshing = null;
/** Server time minus this device's time, in ms (from the `Date` header of API answers). */
let clockOffsetMs = 0;
export const events = new EventTarget();

export class ApiError extends Error {
  constructor(status, problem) {
    const fields = problem && Array.isArray(problem.errors) && problem.errors.length > 1
      ? problem.errors.map((e) => `${e.field}: ${e.message}`).join('; ')
      : null;
    const detail = fields || (problem && (problem.detail || problem.title));
    super(detail || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || null;
    this.kind = problem && typeof problem.type === 'string' ? problem.type.split('/').pop() : '';
  }
}

/** The request did not reach the server, or its answer did not come back. */
export class NetworkError extends Error {
  constructor() {
    super('No connection to the server.');
  }
}

export function serverNow() {
  return Date.now() + clockOffsetMs;
}

export function hasSession() {
  return Boolean(access || localStorage.getItem(REFRESH));
}

export function setTokens(t) {
  access = t.access_token;
  sessionStorage.setItem(ACCESS, t.access_token);
  localStorage.setItem(REFRESH, t.refresh_token);
}

export function clearTokens() {
  access = null;
  sessionStorage.removeItem(ACCESS);
  localStorage.removeItem(REFRESH);
}

export function tokenExpiresAt(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).exp * 1000;
  } catch {
    return 0;
  }
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function noteClock(res) {
  const date = res.headers.get('date');
  const at = date ? Date.parse(date) : NaN;
  // Second resolution: only correct clocks that are clearly off.
  if (!Number.isNaN(at) && Math.abs(at - Date.now()) > 2000) clockOffsetMs = at - Date.now();
  else if (!Number.isNaN(at)) clockOffsetMs = 0;
}

/** Spends the refresh token for a new pair. One at a time, across tabs too: presenting a spent
 * refresh token revokes the whole login, so two tabs must never race with the same one. */
export function refreshTokens() {
  if (!refreshing) {
    const run = async () => {
      const token = localStorage.getItem(REFRESH);
      if (!token) return false;
      let res;
      try {
        res = await fetch(`${BASE}/auth/refresh`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ refresh_token: token }),
          cache: 'no-store',
        });
      } catch {
        throw new NetworkError();
      }
      if (res.ok) {
        setTokens(await res.json());
        return true;
      }
      if (res.status === 401 || res.status === 422) {
        if (localStorage.getItem(REFRESH) === token) clearTokens();
        events.dispatchEvent(new Event('signed-out'));
        return false;
      }
      throw new ApiError(res.status, await readJson(res));
    };
    const locked = navigator.locks ? navigator.locks.request('doorstep-refresh', run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** An access token good for at least another minute (for EventSource, which cannot refresh). */
export async function freshAccessToken() {
  if (!access || tokenExpiresAt(access) - Date.now() < 60_000) await refreshTokens();
  return access;
}

/**
 * Calls the API. `body` is an object (sent as JSON) or, with `raw: true`, a JSON string sent
 * byte for byte (a retried check-in must repeat its first body exactly). Resolves to the parsed
 * answer (null for 204), or with `text: true` to the answer's text (an incident's printable
 * export, which needs the bearer token and so cannot be a plain link); rejects with ApiError
 * (problem+json) or NetworkError.
 */
export async function api(method, path, body, opts = {}) {
  const { auth = true, headers = {}, raw = false, retried = false, text = false } = opts;
  if (auth && !access && localStorage.getItem(REFRESH)) await refreshTokens();
  const h = { ...headers };
  if (body !== undefined && body !== null) h['content-type'] = 'application/json';
  if (auth && access) h.authorization = `Bearer ${access}`;
  let res;
  try {
    res = await fetch(`${BASE}${path}`, {
      method,
      headers: h,
      body: body === undefined || body === null ? undefined : raw ? body : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new NetworkError();
  }
  noteClock(res);
  if (res.status === 401 && auth && !retried) {
    if (await refreshTokens()) return api(method, path, body, { ...opts, retried: true });
  }
  if (text && res.ok) return res.text();
  const data = res.status === 204 ? null : await readJson(res);
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && auth) events.dispatchEvent(new Event('signed-out'));
    throw err;
  }
  return data;
}

export async function login(email, password, totpCode) {
  const body = { email, password };
  if (totpCode) body.totp_code = totpCode;
  const tokens = await api('POST', '/auth/login', body, { auth: false });
  setTokens(tokens);
}

export async function logout() {
  const token = localStorage.getItem(REFRESH);
  try {
    if (token) await api('POST', '/auth/logout', { refresh_token: token }, { auth: false });
  } finally {
    clearTokens();
  }
}
