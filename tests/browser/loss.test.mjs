// Media quality under loss and delay: two headless Chromium peers call
// through the SFU, once on a clean path (the baseline) and once with 5%
// random loss and 40 ms delay on every datagram in each direction of both
// legs (publisher <-> SFU and SFU <-> subscriber), 20 s measured each.
//
// The impairment comes from a userspace UDP relay (impair.mjs), because the
// kernel here has neither netem nor NFQUEUE. The SFU binds its media on
// 127.0.0.1 (--media-bind-ip) and advertises 127.0.0.2 (--public-ip); the
// relay listens on 127.0.0.2 and forwards to 127.0.0.1, so every UDP
// datagram of every peer (STUN, DTLS, RTP, RTCP) crosses it. (The ICE-TCP
// candidate is advertised on 127.0.0.2 too, where nothing listens, so media
// stays on UDP; the test checks that Bob's selected pair goes to the relay.)
// The baseline crosses the same relay with 0% loss and 0 ms delay, so that
// the two calls differ only in the impairment.
//
// Alice publishes one camera encoding (`simulcast=0`): what is measured is
// how the SFU repairs one stream. With simulcast, the loss would also lower
// the bandwidth estimate and move Bob to another layer (a keyframe wait per
// switch), which is the layer selector's business, tested in
// simulcast.test.mjs; the frame count against the baseline would then
// measure both at once.
//
// The 40 ms delay applies from the first datagram, so ICE and DTLS set up
// through it. The loss starts once both peers decode video, so that what
// is measured is how the SFU repairs media (set-up under loss has its own
// test, setup_loss.test.mjs).
//
// Asserted: Bob's framesDecoded over the 20 s is at least 80% of the
// baseline's and his freezeCount at most 8, and Alice's of Bob's video at
// least 80% of hers in the baseline (whichever browser probes its
// bandwidth with padding under the loss, the other's picture must not
// stall: a retransmission behind such a burst used to fall outside the
// SRTP replay window, ARCHITECTURE.md note 25); the SFU's /metrics count NACKs
// in and retransmissions out; Bob's ICE round-trip time (candidate-pair
// currentRoundTripTime) is 80 ms or more, so the delay is real. The SFU
// NACKs publishers for their own uplink losses, so "no NACK forwarded
// upstream" is checked by a third call, 10 s with the same delay and 5%
// loss on the SFU -> browser datagrams only: the SFU receives NACKs and
// retransmits, and must send no NACK at all.

import assert from 'node:assert/strict';
import { loadavg } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startImpairRelay } from './impair.mjs';
import {
  fetchMetrics,
  freeUdpPort,
  inLoopbackOnlyNamespace,
  joinCall,
  launchBrowser,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';

const RUN_MS = 20_000;
const LOSS = 0.05;
const DELAY_MS = 40;
/** The downlink-only call is measured for this long. */
const DOWNLINK_ONLY_MS = 10_000;
/** The SFU binds media here and advertises PUBLIC_IP, where the relay listens. */
const MEDIA_BIND_IP = '127.0.0.1';
const PUBLIC_IP = '127.0.0.2';
/**
 * Bob's freezes (inbound-rtp freezeCount: a frame more than ~200 ms late at
 * 20 fps) allowed in the 20 s under loss. Each packet lost on a publisher's
 * uplink is repaired over two hops (SFU NACK, publisher RTX, then on to
 * Bob) with 80 ms of round trip, which is often that late; with loss on the
 * downlinks only, freezes stay about as rare as in the baseline. Measured
 * 0-19 over 15 runs on a shared 2-core machine, more than 8 in 5 of them
 * (BENCHMARKS.md).
 */
const MAX_FREEZES = 8;

/**
 * Alice's camera as a publisher: NACKs it received, frames it encoded, and
 * packets it sent and retransmitted (outbound-rtp, all simulcast layers).
 */
function publisherStats(page) {
  return page.evaluate(async () => {
    const v = { nackCount: 0, framesEncoded: 0, packetsSent: 0, retransmittedPacketsSent: 0 };
    if (!window.sfu?.pc) return v;
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        for (const k of Object.keys(v)) v[k] += s[k] ?? 0;
      }
    });
    return v;
  });
}

/** Bob's view of Alice's video. */
function videoStats(page) {
  return page.evaluate(async () => {
    const v = { framesDecoded: 0, framesReceived: 0, framesDropped: 0, keyFramesDecoded: 0, pliCount: 0, freezeCount: 0, totalFreezesDuration: 0, packetsLost: 0, packetsReceived: 0, nackCount: 0 };
    if (!window.sfu?.pc) return v;
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        for (const k of Object.keys(v)) v[k] += s[k] ?? 0;
      }
    });
    return v;
  });
}

/**
 * Round-trip times Bob's browser measured, in ms: the selected candidate
 * pair's (STUN consent checks) and, where the SFU's receiver reports allow
 * it, remote-inbound-rtp's; and the remote candidate Bob sends to.
 */
function rttStats(page) {
  return page.evaluate(async () => {
    const out = { iceRttMs: null, remoteInboundRttMs: [], remote: null };
    if (!window.sfu?.pc) return out;
    const report = await window.sfu.pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
      if (s.type === 'remote-inbound-rtp' && s.roundTripTime !== undefined) {
        out.remoteInboundRttMs.push(Math.round(s.roundTripTime * 1000));
      }
    });
    if (pair) {
      if (pair.currentRoundTripTime !== undefined) out.iceRttMs = Math.round(pair.currentRoundTripTime * 1000);
      const r = report.get(pair.remoteCandidateId);
      if (r) out.remote = `${r.address ?? r.ip}:${r.port}/${r.protocol}`;
    }
    return out;
  });
}

function metric(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

async function serverCounters(url) {
  const text = await fetchMetrics(url);
  return {
    nacksIn: metric(text, 'sfu_rtcp_packets_total{direction="in",type="nack"}'),
    nacksOut: metric(text, 'sfu_rtcp_packets_total{direction="out",type="nack"}'),
    retransmissions: metric(text, 'sfu_retransmissions_total'),
    tooLate: metric(text, 'sfu_packets_dropped_total{reason="too_late_for_retransmission"}'),
    tooOld: metric(text, 'sfu_packets_dropped_total{reason="too_old"}'),
    padding: metric(text, 'sfu_packets_dropped_total{reason="padding"}'),
    duplicate: metric(text, 'sfu_packets_dropped_total{reason="duplicate"}'),
  };
}

const minus = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - b[k]]));

/** Connection and DTLS states of a page's peer connection, for a failure message. */
function connectionStates(page) {
  return page.evaluate(async () => {
    const pc = window.sfu?.pc;
    if (!pc) return null;
    const dtls = [];
    (await pc.getStats()).forEach((s) => s.type === 'transport' && dtls.push(s.dtlsState));
    return { connection: pc.connectionState, ice: pc.iceConnectionState, dtls };
  });
}

/**
 * One call between Alice and Bob through the relay: `delayMs` each way
 * from the first datagram, and `loss` ({ toServer, toClient }) once both
 * decode video. Returns Bob's video figures over the `runMs` measured
 * from then, the RTTs, and the SFU's and the relay's counters.
 */
async function runCall(browser, label, { delayMs, loss, runMs = RUN_MS }) {
  const udpPort = await freeUdpPort();
  const relay = await startImpairRelay({
    listen: { host: PUBLIC_IP, port: udpPort },
    target: { host: MEDIA_BIND_IP, port: udpPort },
    toServer: { loss: 0, delayMs },
    toClient: { loss: 0, delayMs },
  });
  let server;
  const people = [];
  try {
    // One media Worker: the relay forwards its one UDP port.
    server = await startServer({ udpPort, host: PUBLIC_IP, extraArgs: ['--media-bind-ip', MEDIA_BIND_IP, '--workers', '1'] });
    const room = `loss-${label}-${Math.random().toString(36).slice(2, 8)}`;
    const joinedAt = Date.now();
    const single = { query: '&simulcast=0' };
    people.push(await joinCall(browser, server.url, room, 'Alice', single));
    people.push(await joinCall(browser, server.url, room, 'Bob', single));
    const [alice, bob] = people;
    await waitFor(
      async () => {
        const decoded = await Promise.all(people.map(async (p) => (await videoStats(p.page)).framesDecoded));
        return { ok: decoded.every((n) => n > 0), decoded };
      },
      {
        timeoutMs: 30_000,
        describe: (last) =>
          `frames decoded (Alice, Bob): ${last.decoded}; relay ${JSON.stringify(relay.stats())}\n${server.output}\n--- Alice ---\n${alice.logs}\n--- Bob ---\n${bob.logs}`,
      },
    ).catch(async (err) => {
      const states = await Promise.all(people.map((p) => connectionStates(p.page)));
      err.message += `\nconnection states (Alice, Bob): ${JSON.stringify(states)}`;
      throw err;
    });
    const setupMs = Date.now() - joinedAt;
    // Loss starts once both peers decode (see the header); the delay has
    // applied since the first datagram.
    relay.configure({ toServer: { loss: loss.toServer }, toClient: { loss: loss.toClient } });

    const start = await videoStats(bob.page);
    const aliceViewStart = await videoStats(alice.page);
    const serverStart = await serverCounters(server.url);
    const aliceStart = await publisherStats(alice.page);
    const relayStart = relay.stats();
    await sleep(runMs);
    const end = await videoStats(bob.page);
    const aliceViewEnd = await videoStats(alice.page);
    const serverEnd = await serverCounters(server.url);
    const aliceEnd = await publisherStats(alice.page);
    const relayEnd = relay.stats();
    const rtt = await rttStats(bob.page);
    return {
      setupMs,
      loadAverage: loadavg()[0],
      bob: minus(end, start),
      // Alice's view of Bob's video, for the record: the same path the
      // other way, where Bob's browser may probe as Alice's may.
      aliceView: minus(aliceViewEnd, aliceViewStart),
      rtt,
      alice: minus(aliceEnd, aliceStart),
      server: minus(serverEnd, serverStart),
      relay: {
        toServer: minus(relayEnd.toServer, relayStart.toServer),
        toClient: minus(relayEnd.toClient, relayStart.toClient),
        flows: relayEnd.flows.length,
        errors: relayEnd.errors,
      },
    };
  } finally {
    for (const p of people) await p.context.close().catch(() => {});
    await server?.stop();
    await relay.stop();
  }
}

describe('video through the SFU under 5% loss and 40 ms delay on both legs', { skip: !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)' }, () => {
  let browser;
  const results = {};

  before(async () => {
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    console.log(`loss figures: ${JSON.stringify(results)}`);
  });

  it('baseline: the same relay, no loss and no delay', { timeout: 120_000 }, async () => {
    results.baseline = await runCall(browser, 'baseline', { delayMs: 0, loss: { toServer: 0, toClient: 0 } });
    const { bob, rtt, relay } = results.baseline;
    assert.ok(bob.framesDecoded > 200, `baseline framesDecoded over 20 s: ${bob.framesDecoded}`);
    assert.ok(rtt.remote?.startsWith(`${PUBLIC_IP}:`), `Bob's media does not go to the relay: ${JSON.stringify(rtt)}`);
    assert.ok(relay.toClient.forwarded > 1000 && relay.toServer.forwarded > 1000, `relay ${JSON.stringify(relay)}`);
  });

  it('5% loss and 40 ms delay each way on both legs: NACKs are answered and video keeps up', { timeout: 120_000 }, async () => {
    const base = results.baseline?.bob.framesDecoded;
    assert.ok(base, 'no baseline');
    // Under loss Chromium probes its bandwidth with padding-only packets
    // (without RTX, on the media stream). The SFU drops them and closes the
    // holes that probes lost upstream leave, so Bob's receiver never waits
    // on a packet nobody can resend (core/renumber.rs).
    results.impaired = await runCall(browser, 'impaired', { delayMs: DELAY_MS, loss: { toServer: LOSS, toClient: LOSS } });
    const { bob, rtt, server, relay } = results.impaired;

    // The impairment is real: datagrams were dropped both ways, and the
    // round trip grew by the two 40 ms delays.
    assert.ok(rtt.remote?.startsWith(`${PUBLIC_IP}:`), `Bob's media does not go to the relay: ${JSON.stringify(rtt)}`);
    assert.ok(relay.toServer.dropped > 0 && relay.toClient.dropped > 0, `relay ${JSON.stringify(relay)}`);
    assert.deepEqual(relay.errors, [], 'the relay failed to send');
    assert.ok(rtt.iceRttMs >= 2 * DELAY_MS, `Bob's ICE RTT ${rtt.iceRttMs} ms with ${DELAY_MS} ms each way`);

    assert.ok(bob.framesDecoded >= 0.8 * base, `framesDecoded ${bob.framesDecoded} vs baseline ${base}`);
    const aliceBase = results.baseline.aliceView.framesDecoded;
    assert.ok(
      results.impaired.aliceView.framesDecoded >= 0.8 * aliceBase,
      `Alice's framesDecoded of Bob's video ${results.impaired.aliceView.framesDecoded} vs baseline ${aliceBase}`,
    );
    assert.ok(bob.freezeCount <= MAX_FREEZES, `freezeCount ${bob.freezeCount} (at most ${MAX_FREEZES})`);
    assert.ok(bob.nackCount > 0, `Bob sent no NACK: ${JSON.stringify(bob)}`);
    // A few packets can stay lost: a media packet lost upstream whose NACKs
    // or retransmissions were all lost too (5% each way, at most 4 NACKs
    // per packet). 0-1 in most 20 s runs, 9 in one of 8; the padding holes
    // this guards against left 35 and froze the picture.
    assert.ok(bob.packetsLost <= 12, `holes left after repair: ${JSON.stringify(bob)}`);
    assert.ok(server.nacksIn > 0, `server counted no NACK in: ${JSON.stringify(server)}`);
    assert.ok(server.retransmissions > 0, `no retransmission: ${JSON.stringify(server)}`);
  });

  it('5% loss on the downlinks only: NACKs are answered, none goes upstream', { timeout: 120_000 }, async () => {
    // Publishers' datagrams all arrive, so the SFU has nothing of its own
    // to NACK: any NACK it sends would be a subscriber's passed upstream.
    results.downlinkOnly = await runCall(browser, 'downlink', {
      delayMs: DELAY_MS,
      loss: { toServer: 0, toClient: LOSS },
      runMs: DOWNLINK_ONLY_MS,
    });
    const { server, relay, rtt } = results.downlinkOnly;
    assert.ok(rtt.remote?.startsWith(`${PUBLIC_IP}:`), `Bob's media does not go to the relay: ${JSON.stringify(rtt)}`);
    assert.ok(relay.toClient.dropped > 0 && relay.toServer.dropped === 0, `relay ${JSON.stringify(relay)}`);
    assert.ok(server.nacksIn > 0, `no NACK in: ${JSON.stringify(server)}`);
    assert.ok(server.retransmissions > 0, `no retransmission: ${JSON.stringify(server)}`);
    assert.equal(server.nacksOut, 0, `the SFU sent NACKs upstream: ${JSON.stringify(server)}`);
  });
});
