// WebSocket signaling client for the `/ws` protocol (docs/signaling.md): one
// socket per page, JSON text frames, keep-alive pings, and reconnection with
// backoff whenever the connection drops or cannot be opened (faster while a
// call waits for us to come back: the server keeps it only a few seconds).
// In a cluster the socket may be moved to another node (`switchTo`, on a
// `redirect`), and a node that cannot be reached is replaced by the next of
// the nodes `joined` listed.

const PING_INTERVAL_MS = 20_000;
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 5000];
/** How long `probe` waits for any answer before giving the socket up. */
const PROBE_TIMEOUT_MS = 1500;
/** The close code reported to `onDown` for a socket given up by `probe`. */
export const CLOSE_NO_ANSWER = 4900;
/** While a call or room waits for the rejoin (see `setUrgent`). */
const URGENT_RETRY_DELAYS_MS = [250, 500, 1000];

/** The signaling endpoint on the server that served this page. */
export function signalingUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/**
 * A signaling connection that keeps itself open.
 * - `onOpen({ reconnected })`: the socket (re)opened.
 * - `onMessage(msg)`: a parsed server message.
 * - `onDown({ code, reason, wasOpen, retryInMs, attempt })`: it closed or
 *   could not open; it retries after `retryInMs`. `attempt` counts the
 *   failures since the socket was last open (1 for the first).
 */
export class Signaling {
  constructor(url, handlers) {
    this.url = url;
    this.entry = url; // where the page came from
    this.nodes = []; // in a cluster: other nodes to try when `url` is unreachable
    this.handlers = handlers;
    this.ws = null;
    this.pingTimer = null;
    this.probeTimer = null;
    this.heardAt = 0; // when the socket last brought a frame
    this.retryTimer = null;
    this.attempt = 0;
    this.everOpened = false;
    this.stopped = false;
    this.urgent = false;
    // A network change (Wi-Fi to cellular, a new address) may leave the
    // socket dead but "open": checked at once.
    window.addEventListener('online', () => {
      this.retryNow();
      this.probe();
    });
    navigator.connection?.addEventListener?.('change', () => this.probe());
  }

  /** True while the socket is open. */
  get connected() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Opens the socket (and keeps reopening it until `stop`). */
  start() {
    if (this.stopped || this.ws) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_INTERVAL_MS);
      this.handlers.onOpen?.({ reconnected });
    });
    // A socket given up by `probe` may still deliver frames: ignored.
    ws.addEventListener('message', (event) => this.ws === ws && this.#onFrame(event));
    ws.addEventListener('close', (event) => this.#down(ws, event.code, event.reason, opened, null));
  }

  /**
   * Checks that the open socket still reaches the server: sends a ping,
   * and if nothing at all arrives within `timeoutMs`, gives the socket up
   * and opens a new one at once (the session is then resumed). After a
   * network change the old TCP connection is dead, but the browser would
   * keep it "open" for minutes. The old socket is not closed: a close frame
   * that did reach a slow server would end the session there, where a
   * `resume` from the new socket takes it over.
   */
  probe(timeoutMs = PROBE_TIMEOUT_MS) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.probeTimer) return;
    const heard = this.heardAt;
    this.send({ type: 'ping' });
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (this.ws !== ws || this.heardAt !== heard) return;
      console.info(`signaling: no answer within ${timeoutMs} ms; reconnecting`);
      this.#down(ws, CLOSE_NO_ANSWER, 'no answer', true, 0);
    }, timeoutMs);
  }

  /** `ws` closed (or was given up): reconnect after a delay (`retryInMs`, or the backoff's). */
  #down(ws, code, reason, wasOpen, retryInMs) {
    // A socket given up by `probe` reports its own close later: ignored.
    if (this.ws !== ws) return;
    clearInterval(this.pingTimer);
    clearTimeout(this.probeTimer);
    this.pingTimer = null;
    this.probeTimer = null;
    this.ws = null;
    if (this.stopped) return;
    // A node that could not be reached: in a cluster, the next attempt goes
    // to another node. (A dropped socket is first retried where it was:
    // only that node can resume the session.)
    if (!wasOpen) this.url = this.#nextUrl();
    const delays = this.urgent ? URGENT_RETRY_DELAYS_MS : RETRY_DELAYS_MS;
    const delay = retryInMs ?? delays[Math.min(this.attempt, delays.length - 1)];
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.start();
    }, delay);
    this.handlers.onDown?.({ code, reason, wasOpen, retryInMs: delay, attempt: this.attempt });
  }

  /**
   * Moves to another node's signaling URL at once (a `redirect`): the
   * current socket is closed without a reconnect of its own, and `onOpen`
   * reports the new one.
   */
  switchTo(url) {
    const ws = this.ws;
    this.url = url;
    this.ws = null;
    clearInterval(this.pingTimer);
    clearTimeout(this.probeTimer);
    clearTimeout(this.retryTimer);
    this.pingTimer = null;
    this.probeTimer = null;
    this.retryTimer = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'redirected');
    this.start();
  }

  /** The cluster's nodes, from `joined`: tried in turn when the current one is unreachable. */
  setNodes(urls) {
    this.nodes = Array.isArray(urls) ? urls.filter((u) => typeof u === 'string') : [];
  }

  /** The URL to try after `url` could not be reached: the next known node. */
  #nextUrl() {
    const all = [...new Set([this.entry, ...this.nodes])];
    if (all.length < 2) return this.url;
    const at = all.indexOf(this.url);
    return all[(at + 1) % all.length];
  }

  /** Retries quickly (at most every second) while `on`: a call is waiting for us. */
  setUrgent(on) {
    this.urgent = on;
  }

  /**
   * Closes the socket and reconnects as usual. The server sees a clean
   * close, so it removes us at once instead of keeping the session for a
   * `resume`. For tests.
   */
  drop() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(4000, 'dropped by the client');
  }

  /** Reconnects at once if a retry is waiting. */
  retryNow() {
    if (!this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.start();
  }

  /** Sends one message; returns false if the socket is not open. */
  send(msg) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Closes the socket for good (the page is going away). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'bye');
  }

  #onFrame(event) {
    this.heardAt = performance.now();
    if (typeof event.data !== 'string') {
      console.warn('signaling: ignoring binary frame');
      return;
    }
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (err) {
      console.warn('signaling: ignoring non-JSON frame', err);
      return;
    }
    if (!msg || typeof msg.type !== 'string') {
      console.warn('signaling: ignoring frame without type', msg);
      return;
    }
    if (msg.type !== 'pong') console.debug('signaling <-', msg.type);
    this.handlers.onMessage(msg);
  }
}
