// A userspace UDP impairment relay for the browser tests: it stands between
// WebRTC peers and the SFU's media port and drops and delays datagrams,
// because the kernel on the test machines has neither netem nor NFQUEUE.
//
// The relay listens on one UDP address (the one the SFU advertises in its
// ICE candidate) and forwards to the SFU's real UDP address. Like a NAT, it
// gives each client source address its own upstream socket, so the SFU sees
// one distinct source per client and its replies go back to the right one.
// Every datagram, in each direction (STUN, DTLS, RTP, RTCP alike), is
// dropped with probability `loss` and otherwise delivered `delayMs` later
// (plus up to `jitterMs`), in the order it arrived on its flow and direction.
//
//   const relay = await startImpairRelay({
//     listen: { host: '127.0.0.2', port },
//     target: { host: '127.0.0.1', port },
//     toServer: { loss: 0.05, delayMs: 40 },
//     toClient: { loss: 0.05, delayMs: 40 },
//   });
//   relay.stats(); relay.configure({ toServer: { loss: 0 } }); await relay.stop();

import dgram from 'node:dgram';

/** A seeded uniform [0, 1) generator (mulberry32), for reproducible drops. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function impairment({ loss = 0, delayMs = 0, jitterMs = 0 } = {}) {
  if (!(loss >= 0 && loss <= 1)) throw new RangeError(`loss must be within [0, 1]: ${loss}`);
  if (!(delayMs >= 0) || !(jitterMs >= 0)) throw new RangeError(`delay and jitter must be >= 0: ${delayMs}, ${jitterMs}`);
  return { loss, delayMs, jitterMs };
}

// Room for a keyframe burst while the event loop is busy (the kernel caps
// it at net.core.rmem_max / wmem_max).
const BUFFER_BYTES = 4 << 20;
const udpSocket = () => dgram.createSocket({ type: 'udp4', recvBufferSize: BUFFER_BYTES, sendBufferSize: BUFFER_BYTES });

function bindSocket(host, port = 0) {
  return new Promise((resolve, reject) => {
    const socket = udpSocket();
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/**
 * One direction of one flow: a FIFO of datagrams, each with its due time,
 * drained by a single timer so that delivery keeps arrival order even when
 * jitter gives a later datagram an earlier due time.
 */
class Lane {
  constructor(send) {
    this.send = send;
    this.queue = [];
    this.head = 0;
    this.timer = null;
    this.lastDue = 0;
  }

  push(datagram, delayMs) {
    // Never due before the datagram ahead of it: order is kept per flow.
    const due = Math.max(performance.now() + delayMs, this.lastDue);
    this.lastDue = due;
    if (delayMs === 0 && this.head === this.queue.length) {
      this.send(datagram);
      return;
    }
    this.queue.push({ datagram, due });
    if (!this.timer) this.arm();
  }

  arm() {
    const wait = Math.max(0, this.queue[this.head].due - performance.now());
    this.timer = setTimeout(() => this.drain(), wait);
  }

  drain() {
    this.timer = null;
    const now = performance.now();
    // Timers fire up to a millisecond early or late: allow half a millisecond.
    while (this.head < this.queue.length && this.queue[this.head].due <= now + 0.5) {
      this.send(this.queue[this.head].datagram);
      this.queue[this.head++] = undefined;
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 1024) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.arm();
    }
  }

  clear() {
    clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    this.head = 0;
  }
}

const counters = () => ({ received: 0, dropped: 0, forwarded: 0, bytesForwarded: 0 });

/**
 * What a datagram carries, from its first bytes (RFC 7983 demultiplexing,
 * then RFC 5761 to tell RTCP from RTP): 'stun', 'dtls', 'rtp', 'rtcp' or
 * 'other'. SRTP and SRTCP leave these header bytes in the clear.
 */
export function datagramKind(datagram) {
  const b = datagram[0];
  if (b === undefined) return 'other';
  if (b <= 3) return 'stun';
  if (b >= 20 && b <= 63) return 'dtls';
  if (b >= 128 && b <= 191 && datagram.length >= 8) {
    return datagram[1] >= 192 && datagram[1] <= 223 ? 'rtcp' : 'rtp';
  }
  return 'other';
}

const KINDS = ['stun', 'dtls', 'rtp', 'rtcp', 'other'];
/** Per kind: datagrams that arrived and datagrams dropped, in one direction of one flow. */
const kindCounters = () => Object.fromEntries(KINDS.map((k) => [k, { received: 0, dropped: 0 }]));

/**
 * Starts a relay from `listen` to `target`. `toServer` and `toClient` are
 * each `{ loss, delayMs, jitterMs }` (loss a probability in [0, 1]);
 * `upstreamHost` is the IP the per-client upstream sockets bind; `random`
 * (or `seed`) drives the drops.
 */
export async function startImpairRelay({
  listen,
  target,
  toServer = {},
  toClient = {},
  upstreamHost = target.host,
  random = null,
  seed = null,
}) {
  const rand = random ?? (seed === null ? Math.random : seededRandom(seed));
  const settings = { toServer: impairment(toServer), toClient: impairment(toClient) };
  const stats = { toServer: counters(), toClient: counters() };
  const flows = new Map(); // "ip:port" of a client -> its upstream socket and lanes
  const errors = [];
  let stopped = false;

  const front = await bindSocket(listen.host, listen.port ?? 0);
  const frontAddr = front.address();
  front.on('error', (err) => errors.push(err));

  const forward = (flow, direction, datagram) => {
    const s = stats[direction];
    const k = flow.kinds[direction][datagramKind(datagram)];
    const imp = settings[direction];
    s.received += 1;
    k.received += 1;
    if (imp.loss > 0 && rand() < imp.loss) {
      s.dropped += 1;
      k.dropped += 1;
      return;
    }
    const delay = imp.delayMs + (imp.jitterMs > 0 ? rand() * imp.jitterMs : 0);
    flow[direction].push(datagram, delay);
  };

  const sender = (socket, direction, port, host) => (datagram) => {
    if (stopped) return;
    socket.send(datagram, port, host, (err) => {
      if (err) {
        errors.push(err);
        return;
      }
      stats[direction].forwarded += 1;
      stats[direction].bytesForwarded += datagram.length;
    });
  };

  const flowFor = (client) => {
    const key = `${client.address}:${client.port}`;
    let flow = flows.get(key);
    if (flow) return flow;
    // Datagrams wait in `pending` while the upstream socket binds.
    flow = {
      key,
      client: { address: client.address, port: client.port },
      pending: [],
      upstream: null,
      upstreamAddr: null,
      kinds: { toServer: kindCounters(), toClient: kindCounters() },
    };
    flows.set(key, flow);
    const upstream = udpSocket();
    upstream.on('error', (err) => errors.push(err));
    upstream.bind(0, upstreamHost, () => {
      if (stopped) {
        upstream.close();
        return;
      }
      flow.upstream = upstream;
      flow.upstreamAddr = `${upstream.address().address}:${upstream.address().port}`;
      flow.toServer = new Lane(sender(upstream, 'toServer', target.port, target.host));
      flow.toClient = new Lane(sender(front, 'toClient', client.port, client.address));
      upstream.on('message', (msg, from) => {
        // Only the SFU's replies travel back; anything else is ignored.
        if (from.port !== target.port || from.address !== target.host) return;
        forward(flow, 'toClient', msg);
      });
      for (const msg of flow.pending) forward(flow, 'toServer', msg);
      flow.pending = null;
    });
    flow.socket = upstream;
    return flow;
  };

  front.on('message', (msg, client) => {
    const flow = flowFor(client);
    if (flow.pending) flow.pending.push(msg);
    else forward(flow, 'toServer', msg);
  });

  return {
    /** The address clients send to. */
    address: { host: frontAddr.address, port: frontAddr.port },
    /** Changes the impairment of one or both directions from now on. */
    configure(next) {
      for (const dir of ['toServer', 'toClient']) {
        if (next[dir]) settings[dir] = impairment({ ...settings[dir], ...next[dir] });
      }
    },
    /** The current impairment of each direction. */
    settings() {
      return structuredClone(settings);
    },
    /**
     * Datagrams received, dropped and forwarded in each direction, and per
     * flow (client address) the upstream socket and, by kind and direction,
     * the datagrams received and dropped.
     */
    stats() {
      return {
        toServer: { ...stats.toServer },
        toClient: { ...stats.toClient },
        flows: [...flows.values()].map((f) => ({
          client: `${f.client.address}:${f.client.port}`,
          upstream: f.upstreamAddr ?? null,
          kinds: structuredClone(f.kinds),
        })),
        errors: errors.map((e) => e.message),
      };
    },
    /** Closes every socket; datagrams still waiting are discarded. */
    async stop() {
      if (stopped) return;
      stopped = true;
      const closing = [new Promise((resolve) => front.close(resolve))];
      for (const flow of flows.values()) {
        flow.toServer?.clear();
        flow.toClient?.clear();
        if (flow.upstream) closing.push(new Promise((resolve) => flow.upstream.close(resolve)));
      }
      await Promise.all(closing);
    },
  };
}
