// Access tokens. The server admits nobody without one (docs/ARCHITECTURE.md,
// "Access tokens"): an application hands its users a link with `?token=`;
// a dev-mode server mints tokens for anyone with POST /api/token, which is
// how the zero-config server works without a link. Tokens are fetched
// before each `join` and `register`, and the last one is kept for `resume`.

/** Shown when the server is not in dev mode and the page has no token. */
export const NEEDS_TOKEN_TEXT = 'This server needs an access token: open the link your app gave you.';

/** Why no token could be had, for people. */
export class AccessError extends Error {}

const pageToken = new URLSearchParams(window.location.search).get('token') || null;
const tabIdentity = `guest-${Math.random().toString(36).slice(2, 10)}`;
const cache = new Map(); // `${room}\n${identity}` → { token, expiresAt }
let lastToken = pageToken;

/** The `?token=` the page was opened with, if any. */
export function hasPageToken() {
  return pageToken !== null;
}

/** The claims of a token (not verified: only the server can), or null. */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

/** Whether the page's token lets us publish (true without one: dev tokens do). */
export function mayPublish() {
  if (!pageToken) return true;
  return claimsOf(pageToken)?.grants?.canPublish === true;
}

/**
 * Forgets minted tokens (not the last one, which a `resume` presents): a
 * dev server that restarted signs with a new secret.
 */
export function forgetTokens() {
  cache.clear();
}

/** The token last used, for `resume`. */
export function lastAccessToken() {
  return lastToken;
}

/**
 * A token for `room` as `identity` (this tab's own when absent): the page's
 * `?token=`, else one minted by a dev-mode server. Throws AccessError.
 */
export async function accessToken({ room, identity = tabIdentity, name = '' }) {
  if (pageToken) return pageToken;
  const key = `${room}\n${identity}`;
  const cached = cache.get(key);
  if (cached && Date.parse(cached.expiresAt) - Date.now() > 60_000) {
    lastToken = cached.token;
    return cached.token;
  }
  let response;
  try {
    response = await fetch('/api/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ room, identity, name }),
    });
  } catch (err) {
    // The node that served the page is gone (in a cluster, another node
    // carries on): the last token still serves if it is for this room.
    const claims = lastToken ? claimsOf(lastToken) : null;
    if (claims?.room === room && claims.exp * 1000 - Date.now() > 60_000) return lastToken;
    throw new AccessError(`Could not get an access token from the server (${err.message}).`);
  }
  if (response.status === 404) throw new AccessError(NEEDS_TOKEN_TEXT);
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.token) {
    throw new AccessError(`The server would not give an access token: ${body.message ?? response.status}.`);
  }
  cache.set(key, body);
  lastToken = body.token;
  return body.token;
}
