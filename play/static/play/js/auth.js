// Login, token refresh and logout over the HTTP API (PROTOCOL.md §2, §7).
//
// Tokens live in sessionStorage: one login per browser tab, so two tabs can be two players.
// Refresh tokens rotate (each refresh returns a new one and blacklists the old), so only one
// refresh may be in flight at a time.

const STORE_KEY = "aeturnis.play.tokens";

export class AuthError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function postJson(path, body, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new AuthError(data.detail || `HTTP ${response.status}`, response.status);
  }
  return data;
}

/** Milliseconds since the epoch at which a JWT expires (its `exp` claim), or 0. */
export function tokenExpiresAt(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).exp * 1000;
  } catch {
    return 0;
  }
}

export class Auth {
  constructor() {
    this.tokens = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    this.refreshing = null;
    this.timer = null;
  }

  get access() {
    return this.tokens?.access ?? null;
  }

  #store(tokens) {
    this.tokens = tokens;
    if (tokens) sessionStorage.setItem(STORE_KEY, JSON.stringify(tokens));
    else sessionStorage.removeItem(STORE_KEY);
  }

  async login(username, password) {
    const body = await postJson("/api/auth/token/", { username, password });
    this.#store({ access: body.access, refresh: body.refresh });
  }

  /** A new access token from the refresh token; throws AuthError when the session is over. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        if (!this.tokens) throw new AuthError("Not logged in", 401);
        try {
          const body = await postJson("/api/auth/token/refresh/", { refresh: this.tokens.refresh });
          this.#store({ access: body.access, refresh: body.refresh ?? this.tokens.refresh });
          return body.access;
        } catch (err) {
          if (err.status === 401) this.#store(null);
          throw err;
        }
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** An access token valid for at least `marginMs`, refreshed first when needed. */
  async fresh(marginMs = 30_000) {
    if (!this.tokens) throw new AuthError("Not logged in", 401);
    if (tokenExpiresAt(this.access) - Date.now() > marginMs) return this.access;
    return this.refresh();
  }

  /**
   * Refresh shortly before the access token expires (a fifth of its life, at most a minute,
   * early), then call `onRefreshed(token)` so live connections can send `auth:refresh`.
   */
  keepFresh(onRefreshed, onFailed) {
    clearTimeout(this.timer);
    if (!this.tokens) return;
    const expiresAt = tokenExpiresAt(this.access);
    const lifetime = Math.max(0, expiresAt - Date.now());
    const margin = Math.min(60_000, lifetime / 5);
    this.timer = setTimeout(
      async () => {
        try {
          onRefreshed(await this.refresh());
          this.keepFresh(onRefreshed, onFailed);
        } catch (err) {
          onFailed(err);
        }
      },
      Math.max(0, lifetime - margin),
    );
  }

  async logout() {
    clearTimeout(this.timer);
    const tokens = this.tokens;
    this.#store(null);
    if (!tokens) return;
    await postJson(
      "/api/auth/logout/",
      { refresh: tokens.refresh },
      { Authorization: `Bearer ${tokens.access}` },
    ).catch(() => {});
  }

  /** GET a JSON resource of the play app with the access token. */
  async getJson(path) {
    const call = async (token) =>
      fetch(path, { headers: { Accept: "application/json", Authorization: `Bearer ${token}` } });
    let response = await call(await this.fresh());
    if (response.status === 401) response = await call(await this.refresh());
    if (!response.ok) throw new AuthError(`GET ${path}: HTTP ${response.status}`, response.status);
    return response.json();
  }
}
