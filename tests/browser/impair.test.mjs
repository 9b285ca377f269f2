// Unit tests of the UDP impairment relay (impair.mjs) on loopback, with a
// UDP echo server standing in for the SFU: per-client upstream sockets,
// replies routed back to the right client, delay, loss, kept order under
// jitter, counters and reconfiguration. Needs no browser and no namespace.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { datagramKind, seededRandom, startImpairRelay } from './impair.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function bound(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, host, () => resolve(s));
  });
}

/** A UDP server that answers each datagram with "<source port>|<payload>". */
async function echoServer() {
  const s = await bound();
  const sources = new Set();
  s.on('message', (msg, from) => {
    sources.add(`${from.address}:${from.port}`);
    s.send(Buffer.concat([Buffer.from(`${from.port}|`), msg]), from.port, from.address);
  });
  return { socket: s, port: s.address().port, sources };
}

/** A client socket that collects what it receives, with arrival times. */
async function client() {
  const s = await bound();
  const got = [];
  s.on('message', (msg) => got.push({ text: msg.toString(), at: performance.now() }));
  return { socket: s, got };
}

async function until(pred, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(5);
  }
}

describe('impairment relay', () => {
  let server;
  const closers = [];

  before(async () => {
    server = await echoServer();
    closers.push(() => server.socket.close());
  });

  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  async function relay(opts = {}) {
    const r = await startImpairRelay({
      listen: { host: '127.0.0.2', port: 0 },
      target: { host: '127.0.0.1', port: server.port },
      ...opts,
    });
    closers.push(() => r.stop());
    return r;
  }

  async function peer() {
    const c = await client();
    closers.push(() => new Promise((r) => c.socket.close(r)));
    return c;
  }

  it('gives each client its own upstream socket and routes replies back', async () => {
    const r = await relay();
    const a = await peer();
    const b = await peer();
    a.socket.send('from-a', r.address.port, r.address.host);
    b.socket.send('from-b', r.address.port, r.address.host);
    await until(() => a.got.length === 1 && b.got.length === 1);
    const [portA, textA] = a.got[0].text.split('|');
    const [portB, textB] = b.got[0].text.split('|');
    assert.equal(textA, 'from-a');
    assert.equal(textB, 'from-b');
    assert.notEqual(portA, portB, 'both clients came out of the same upstream socket');
    const stats = r.stats();
    assert.equal(stats.flows.length, 2);
    assert.deepEqual(
      new Set(stats.flows.map((f) => Number(f.upstream.split(':')[1]))),
      new Set([Number(portA), Number(portB)]),
    );
    // A second datagram from a reuses its flow.
    a.socket.send('again', r.address.port, r.address.host);
    await until(() => a.got.length === 2);
    assert.equal(a.got[1].text.split('|')[0], portA);
    assert.equal(r.stats().flows.length, 2);
    assert.equal(r.stats().toServer.forwarded, 3);
    assert.equal(r.stats().toClient.forwarded, 3);
    const flowA = r.stats().flows.find((f) => f.upstream.endsWith(`:${portA}`));
    // "from-a" and "again" start with letters; the replies with digits,
    // which RFC 7983 puts in the DTLS range.
    assert.deepEqual(flowA.kinds.toServer.other, { received: 2, dropped: 0 });
    assert.deepEqual(flowA.kinds.toClient.dtls, { received: 2, dropped: 0 });
  });

  it('tells STUN, DTLS, RTP and RTCP apart', () => {
    assert.equal(datagramKind(Buffer.from([0x00, 0x01, 0, 0])), 'stun');
    assert.equal(datagramKind(Buffer.from([22, 0xfe, 0xfd])), 'dtls');
    assert.equal(datagramKind(Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])), 'rtp');
    assert.equal(datagramKind(Buffer.from([0x81, 205, 0, 3, 0, 0, 0, 1])), 'rtcp');
    assert.equal(datagramKind(Buffer.from('hello')), 'other');
    assert.equal(datagramKind(Buffer.alloc(0)), 'other');
  });

  it('delays each direction', async () => {
    const r = await relay({ toServer: { delayMs: 30 }, toClient: { delayMs: 50 } });
    const a = await peer();
    // The first datagram also binds the upstream socket; time the second.
    a.socket.send('warm-up', r.address.port, r.address.host);
    await until(() => a.got.length === 1);
    const sent = performance.now();
    a.socket.send('timed', r.address.port, r.address.host);
    await until(() => a.got.length === 2);
    const rtt = a.got[1].at - sent;
    assert.ok(rtt >= 79, `round trip ${rtt.toFixed(1)} ms through 30 + 50 ms of delay`);
    assert.ok(rtt < 200, `round trip ${rtt.toFixed(1)} ms`);
  });

  it('drops about the configured share in each direction and counts it', async () => {
    const r = await relay({ toServer: { loss: 0.2 }, toClient: { loss: 0.1 }, seed: 42 });
    const a = await peer();
    const n = 2000;
    for (let i = 0; i < n; i++) {
      a.socket.send(`p${i}`, r.address.port, r.address.host);
      if (i % 20 === 19) await sleep(2); // stay clear of socket buffers
    }
    await sleep(200);
    const { toServer, toClient } = r.stats();
    assert.equal(toServer.received, n);
    assert.equal(toServer.dropped + toServer.forwarded, n);
    assert.equal(toClient.received, toServer.forwarded);
    assert.equal(toClient.dropped + toClient.forwarded, toClient.received);
    assert.equal(a.got.length, toClient.forwarded);
    assert.ok(Math.abs(toServer.dropped / n - 0.2) < 0.04, `toServer dropped ${toServer.dropped}/${n}`);
    assert.ok(Math.abs(toClient.dropped / toClient.received - 0.1) < 0.03, `toClient dropped ${toClient.dropped}/${toClient.received}`);
  });

  it('keeps the order of a flow under jitter', async () => {
    const r = await relay({ toServer: { delayMs: 5, jitterMs: 20 }, toClient: { delayMs: 5, jitterMs: 20 }, seed: 7 });
    const a = await peer();
    const n = 300;
    for (let i = 0; i < n; i++) {
      a.socket.send(String(i), r.address.port, r.address.host);
      if (i % 20 === 19) await sleep(1);
    }
    await until(() => a.got.length === n);
    const order = a.got.map((g) => Number(g.text.split('|')[1]));
    assert.deepEqual(order, [...Array(n).keys()]);
  });

  it('changes impairment on the fly', async () => {
    const r = await relay({ toServer: { loss: 1 } });
    const a = await peer();
    a.socket.send('lost', r.address.port, r.address.host);
    await sleep(50);
    assert.equal(a.got.length, 0);
    assert.equal(r.stats().toServer.dropped, 1);
    r.configure({ toServer: { loss: 0 } });
    assert.deepEqual(r.settings().toServer, { loss: 0, delayMs: 0, jitterMs: 0 });
    a.socket.send('through', r.address.port, r.address.host);
    await until(() => a.got.length === 1);
    assert.throws(() => r.configure({ toClient: { loss: 2 } }), RangeError);
  });

  it('seededRandom is reproducible and uniform enough', () => {
    const x = seededRandom(1);
    const y = seededRandom(1);
    const xs = Array.from({ length: 10_000 }, x);
    assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, y));
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    assert.ok(xs.every((v) => v >= 0 && v < 1));
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  });
});
