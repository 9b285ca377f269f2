// WebSocket signaling client for the `/ws` protocol (docs/signaling.md): one
// socket per page, JSON text frames, keep-alive pings, and reconnection with
// backoff whenever the connection drops or cannot be opened.

const PING_INTERVAL_MS = 20_000;
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 5000];

/** The signaling endpoint on the server that served this page. */
export function signalingUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/**
 * A signaling connection that keeps itself open.
 * - `onOpen({ reconnected })`: the socket (re)opened.
 * - `onMessage(msg)`: a parsed server message.
 * - `onDown({ code, reason, wasOpen, retryInMs })`: it closed or could not
 *   open; it retries after `retryInMs`.
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
      const retryInMs = RETRY_DELAYS_MS[Math.min(this.attempt, RETRY_DELAYS_MS.length - 1)];
      this.attempt += 1;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.start();
      }, retryInMs);
      this.handlers.onDown?.({ code: event.code, reason: event.reason, wasOpen: opened, retryInMs });
    });
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
