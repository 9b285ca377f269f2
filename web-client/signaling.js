// WebSocket signaling client for the `/ws` protocol (docs/signaling.md):
// JSON text frames, one handler per message type, keep-alive pings.

const PING_INTERVAL_MS = 20_000;

/** The signaling endpoint on the server that served this page. */
export function signalingUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/**
 * One WebSocket to the server.
 * `handlers.onMessage(msg)` gets every parsed server message;
 * `handlers.onClose({code, reason, expected})` fires once when the socket closes.
 */
export class Signaling {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.pingTimer = null;
    this.closing = false;
  }

  /** Opens the socket; resolves once it is open, rejects if it never opens. */
  open() {
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.addEventListener('open', () => {
        opened = true;
        this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_INTERVAL_MS);
        resolve();
      });
      ws.addEventListener('message', (event) => this.#onFrame(event));
      ws.addEventListener('close', (event) => {
        clearInterval(this.pingTimer);
        this.pingTimer = null;
        if (!opened) {
          reject(new Error(`cannot connect to ${this.url} (code ${event.code})`));
          return;
        }
        this.handlers.onClose?.({
          code: event.code,
          reason: event.reason,
          expected: this.closing,
        });
      });
    });
  }

  /** Sends one message; returns false if the socket is not open. */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Closes the socket on purpose (onClose then reports `expected: true`). */
  close() {
    this.closing = true;
    clearInterval(this.pingTimer);
    this.pingTimer = null;
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
