// WebSocket signaling client for the `/ws` protocol (docs/signaling.md): one
// socket per page, JSON text frames, keep-alive pings, and reconnection with
// backoff whenever the connection drops or cannot be opened (faster while a
// call waits for us to come back: the server keeps it only a few seconds).

const PING_INTERVAL_MS = 20_000;
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 5000];
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
    this.handlers = handlers;
    this.ws = null;
    this.pingTimer = null;
    this.retryTimer = null;
    this.attempt = 0;
    this.everOpened = false;
    this.stopped = false;
    this.urgent = false;
    window.addEventListener('online', () => this.retryNow());
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
    ws.addEventListener('message', (event) => this.#onFrame(event));
    ws.addEventListener('close', (event) => {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
      this.ws = null;
      if (this.stopped) return;
      const delays = this.urgent ? URGENT_RETRY_DELAYS_MS : RETRY_DELAYS_MS;
      const retryInMs = delays[Math.min(this.attempt, delays.length - 1)];
      this.attempt += 1;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.start();
      }, retryInMs);
      this.handlers.onDown?.({ code: event.code, reason: event.reason, wasOpen: opened, retryInMs, attempt: this.attempt });
    });
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
