// Garbage on the media ports does not disturb a call: while Alice and Bob
// (headless Chromium) are in a call, this script sends 100,000 garbage
// datagrams to the server's UDP port from 8 source ports (random bytes,
// truncated STUN, truncated DTLS records, truncated RTP), 1,000 STUN
// binding requests that name Alice's real SFU ufrag with a wrong
// MESSAGE-INTEGRITY, and garbage and truncated RFC 4571 frames over 200
// TCP connections to the ICE-TCP port. It checks that both browsers keep
// decoding video through and after the flood, that the server's VmRSS
// grows by less than 20 MB, and that the drop counters in /metrics grew by
// what was sent: sfu_inbound_dropped_packets_total{reason="unknown_address"}
// and {reason="unknown_ufrag"} by the garbage that arrived, and
// {reason="rejected"} by the forged checks.
//
// Run: cargo build --bin sfu-server && SFU_SERVER_BIN=$PWD/target/debug/sfu-server \
//   unshare --net sh -c 'ip link set lo up && exec node --test tests/browser/garbage.test.mjs'

import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  framesDecoded,
  joinCall,
  launchBrowser,
  metricValue,
  scenario,
  sleep,
  startServer,
  waitAllDecoding,
} from './lib.mjs';

const room = `garbage-${Math.random().toString(36).slice(2, 10)}`;
const DATAGRAMS = 100_000;
const SOURCES = 8;
const FORGED = 1_000;
const TCP_CONNECTIONS = 200;
const FRAMES_PER_CONNECTION = 20;
const RSS_BOUND_KB = 20 * 1024;

let server;
let browser;
const people = {};

const run = scenario(() => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output ?? '(not started)'}`);
  for (const p of Object.values(people)) console.error(`--- ${p.name} ---\n${p.logs}`);
}, { timeoutMs: 120_000 });
const { step } = run;

function inboundDrops(text) {
  const out = {};
  for (const reason of ['unknown_address', 'unknown_ufrag', 'rejected', 'dtls_repeat', 'rate_limit', 'foreign_rtcp']) {
    out[reason] = metricValue(text, `sfu_inbound_dropped_packets_total{reason="${reason}"}`);
  }
  out.datagrams_in = metricValue(text, 'sfu_datagrams_in_total');
  return out;
}

/** UDP datagrams the kernel dropped for a full receive buffer, in this namespace. */
function udpRcvbufErrors() {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  return Number(values[names.indexOf('RcvbufErrors')]);
}

function vmRssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// --- garbage -----------------------------------------------------------

const MAGIC = Buffer.from([0x21, 0x12, 0xa4, 0x42]);

function stunAttr(type, value) {
  const pad = (4 - (value.length % 4)) % 4;
  const head = Buffer.alloc(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc(pad)]);
}

/** A binding request for `username` signed with `pwd` (RFC 5389 + 8445). */
function bindingRequest(username, pwd) {
  const txid = randomBytes(12);
  let attrs = Buffer.concat([
    stunAttr(0x0006, Buffer.from(username)),
    stunAttr(0x802a, randomBytes(8)),
    stunAttr(0x0024, Buffer.from([0x6e, 0x7f, 0x1e, 0xff])),
  ]);
  const header = (extra) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(0x0001, 0);
    h.writeUInt16BE(attrs.length + extra, 2);
    MAGIC.copy(h, 4);
    txid.copy(h, 8);
    return h;
  };
  const mac = createHmac('sha1', pwd).update(Buffer.concat([header(24), attrs])).digest();
  attrs = Buffer.concat([attrs, stunAttr(0x0008, mac)]);
  return Buffer.concat([header(0), attrs]);
}

/** One garbage datagram of kind `i % 4`. */
function garbage(i) {
  switch (i % 4) {
    case 0: // random bytes, 1 to 1200 of them
      return randomBytes(1 + (i % 1200));
    case 1: { // STUN: a header promising more than follows, or a USERNAME no Peer has
      if (i % 8 === 1) {
        const b = Buffer.concat([Buffer.from([0, 1, 0x02, 0x00]), MAGIC, randomBytes(12), randomBytes(i % 40)]);
        return b;
      }
      return bindingRequest(`nobody${i}:x`, 'not the password of anyone');
    }
    case 2: { // DTLS: a handshake record header and a few bytes
      const b = Buffer.concat([Buffer.from([22, 0xfe, 0xfd, 0, 0]), randomBytes(6 + (i % 30))]);
      return b;
    }
    default: { // RTP: version 2, a payload type, a few bytes
      const b = Buffer.concat([Buffer.from([0x80, 96 + (i % 32)]), randomBytes(i % 12)]);
      return b;
    }
  }
}

function sendAll(socket, port, packets) {
  return Promise.all(
    packets.map((p) => new Promise((resolve) => socket.send(p, port, '127.0.0.1', () => resolve()))),
  );
}

/** Sends the UDP flood in paced batches; resolves with how many went out. */
async function udpFlood(port, forgedUsername) {
  const sockets = await Promise.all(
    Array.from({ length: SOURCES }, () => new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => resolve(s));
    })),
  );
  let sent = 0;
  const batch = 500;
  for (let start = 0; start < DATAGRAMS; start += batch) {
    const socket = sockets[(start / batch) % SOURCES];
    const packets = [];
    for (let i = start; i < Math.min(start + batch, DATAGRAMS); i += 1) packets.push(garbage(i));
    await sendAll(socket, port, packets);
    sent += packets.length;
    await sleep(25);
  }
  let forged = 0;
  for (let i = 0; i < FORGED; i += 50) {
    const packets = Array.from({ length: 50 }, () => bindingRequest(forgedUsername, 'a guessed password!!'));
    await sendAll(sockets[i % SOURCES], port, packets);
    forged += packets.length;
    await sleep(10);
  }
  for (const s of sockets) s.close();
  return { sent, forged };
}

/** Garbage frames over many connections; resolves with the complete frames sent. */
async function tcpFlood(port) {
  let complete = 0;
  let refused = 0;
  const one = (k) => new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {
      refused += 1;
      resolve();
    });
    socket.on('connect', () => {
      const frames = [];
      for (let i = 0; i < FRAMES_PER_CONNECTION; i += 1) {
        const body = garbage(k * FRAMES_PER_CONNECTION + i).subarray(0, 600);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(body.length, 0);
        frames.push(len, body);
      }
      complete += FRAMES_PER_CONNECTION;
      // Then a frame that promises 65,535 bytes and stops after 10.
      frames.push(Buffer.from([0xff, 0xff]), randomBytes(10));
      socket.end(Buffer.concat(frames), () => resolve());
    });
  });
  for (let k = 0; k < TCP_CONNECTIONS; k += 20) {
    await Promise.all(Array.from({ length: 20 }, (_, j) => one(k + j)));
  }
  return { complete, refused };
}

describe('garbage on the media ports during a call', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('Alice and Bob decode each other before the flood', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    await waitAllDecoding([people.Alice, people.Bob]);
  });

  step('100,000 datagrams and 200 TCP connections of garbage: counted, no growth, the call decodes on', async () => {
    const pid = server.pid;
    // Alice's SFU-side ufrag and her own, from her answer and offer.
    const { sfuUfrag, clientUfrag, tcpPort } = await people.Alice.page.evaluate(() => {
      const remote = window.sfu.pc.remoteDescription.sdp;
      const local = window.sfu.pc.localDescription.sdp;
      const tcp = /a=candidate:\S+ \d+ tcp \d+ \S+ (\d+) typ host tcptype passive/i.exec(remote);
      return {
        sfuUfrag: /a=ice-ufrag:(\S+)/.exec(remote)[1],
        clientUfrag: /a=ice-ufrag:(\S+)/.exec(local)[1],
        tcpPort: tcp ? Number(tcp[1]) : null,
      };
    });
    assert.ok(tcpPort, 'the answer carries an ICE-TCP candidate');

    const rssBefore = vmRssKb(pid);
    const kernelDropsBefore = udpRcvbufErrors();
    const before = inboundDrops(await fetchMetrics(server.url));
    const framesBefore = [await framesDecoded(people.Alice.page), await framesDecoded(people.Bob.page)];
    const started = Date.now();

    const udp = udpFlood(server.udpPort, `${sfuUfrag}:${clientUfrag}`);
    const tcp = tcpFlood(tcpPort);
    // Halfway through, the call is still decoding.
    await sleep(2000);
    const framesDuring = [await framesDecoded(people.Alice.page), await framesDecoded(people.Bob.page)];
    const [udpSent, tcpSent] = await Promise.all([udp, tcp]);
    const floodMs = Date.now() - started;
    const framesAtEnd = [await framesDecoded(people.Alice.page), await framesDecoded(people.Bob.page)];

    await sleep(3000);
    const framesAfter = [await framesDecoded(people.Alice.page), await framesDecoded(people.Bob.page)];
    const rssAfter = vmRssKb(pid);
    const kernelDrops = udpRcvbufErrors() - kernelDropsBefore;
    const after = inboundDrops(await fetchMetrics(server.url));
    const delta = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
    const unrouted = delta.unknown_address + delta.unknown_ufrag;
    const garbageSent = udpSent.sent + tcpSent.complete;

    console.log(
      `garbage: ${udpSent.sent} datagrams from ${SOURCES} ports + ${udpSent.forged} forged checks + ` +
        `${tcpSent.complete} frames on ${TCP_CONNECTIONS} TCP connections (${tcpSent.refused} refused) in ${floodMs} ms; ` +
        `kernel receive-buffer drops ${kernelDrops}; datagrams_in +${delta.datagrams_in}; dropped +${JSON.stringify(delta)}; ` +
        `VmRSS ${rssBefore} -> ${rssAfter} kB (${rssAfter - rssBefore >= 0 ? '+' : ''}${rssAfter - rssBefore} kB); ` +
        `framesDecoded Alice ${framesBefore[0]} -> ${framesDuring[0]} -> ${framesAtEnd[0]} -> ${framesAfter[0]}, ` +
        `Bob ${framesBefore[1]} -> ${framesDuring[1]} -> ${framesAtEnd[1]} -> ${framesAfter[1]}`,
    );

    for (let i = 0; i < 2; i += 1) {
      assert.ok(framesDuring[i] > framesBefore[i], `decoding during the flood (${i ? 'Bob' : 'Alice'})`);
      assert.ok(framesAtEnd[i] > framesDuring[i], `decoding to the end of the flood (${i ? 'Bob' : 'Alice'})`);
      assert.ok(framesAfter[i] > framesAtEnd[i] + 20, `decoding after the flood (${i ? 'Bob' : 'Alice'})`);
    }
    assert.ok(rssAfter - rssBefore < RSS_BOUND_KB, `VmRSS grew ${rssAfter - rssBefore} kB`);
    // On loopback the kernel drops datagrams when the server falls behind
    // (/proc/net/snmp RcvbufErrors); everything that arrived is counted,
    // and none of it reaches a participant.
    const arrived = garbageSent - kernelDrops;
    assert.ok(unrouted >= arrived - 100, `unrouted +${unrouted}, arrived ${arrived} (${kernelDrops} dropped by the kernel)`);
    assert.ok(unrouted <= garbageSent, `unrouted +${unrouted} of ${garbageSent}`);
    assert.ok(
      delta.rejected >= udpSent.forged - kernelDrops && delta.rejected <= udpSent.forged + 50,
      `rejected +${delta.rejected} of ${udpSent.forged} forged checks`,
    );
    assert.equal(delta.rate_limit, 0, 'no participant was rate limited');
  });
});
