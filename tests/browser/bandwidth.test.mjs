// Congestion control against a real bottleneck: Carol's Chromium runs in a
// network namespace of its own, behind a veth whose SFU-side egress is
// limited to 300 kbit/s by a token bucket (tc tbf). Alice and Bob stay on
// the unlimited side. The SFU's bandwidth estimate for Carol, from her TWCC
// feedback, must fall below 400 kbit/s within 15 s, while Bob's stays high.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  freeUdpPort,
  inLoopbackOnlyNamespace,
  joinCall,
  launchBrowser,
  startServer,
  waitFor,
} from './lib.mjs';
import { Topology } from './netns.mjs';

const TOKEN = 'bandwidth-test-token';
const SFU_IP = '198.51.100.1';
const CAROL_IP = '198.51.100.2';

// Carol's host, linked to this namespace (the SFU's side).
const topo = new Topology('bw');

function setUpBottleneck() {
  topo.host('carol');
  const [hostIf] = topo.link(null, `${SFU_IP}/24`, 'carol', `${CAROL_IP}/24`);
  // Everything the SFU sends Carol leaves through this token bucket.
  topo.exec(null, 'tc', 'qdisc', 'add', 'dev', hostIf, 'root', 'tbf', 'rate', '300kbit', 'burst', '4kb', 'latency', '400ms');
}

async function estimates(server) {
  const res = await fetch(`${server.url}/api/rooms`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body = await res.json();
  const out = {};
  for (const room of body.rooms) {
    for (const p of room.participants) out[p.name] = p.bandwidthEstimateBps;
  }
  return out;
}

describe('per-subscriber bandwidth estimate behind a 300 kbit/s bottleneck', {
  skip: !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)',
}, () => {
  let server;
  let browser;
  let limitedBrowser;
  const people = [];

  before(async () => {
    setUpBottleneck();
    const wrapper = await topo.wrapper('carol', '/usr/bin/chromium');
    server = await startServer({ udpPort: await freeUdpPort(), host: SFU_IP, extraArgs: ['--admin-token', TOKEN] });
    // The camera needs a secure context; this plain-HTTP origin is not
    // localhost, so it is declared secure for the test.
    const secure = [`--unsafely-treat-insecure-origin-as-secure=${server.url}`];
    browser = await launchBrowser(undefined, secure);
    limitedBrowser = await launchBrowser(wrapper, secure);
  });

  after(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await limitedBrowser?.close().catch(() => {});
    await server?.stop();
    await topo.teardown();
  });

  it('Carol converges below 400 kbit/s within 15 s; Bob stays high', { timeout: 90_000 }, async () => {
    const room = `bw-${Math.random().toString(36).slice(2, 8)}`;
    // One camera encoding each: the estimate is measured against a link the
    // video fills. With simulcast, Carol would get the low layer, leave the
    // link idle and her estimate free to wander above it; that case is
    // simulcast.test.mjs's.
    const single = { query: '&simulcast=0' };
    people.push(await joinCall(browser, server.url, room, 'Alice', single));
    people.push(await joinCall(browser, server.url, room, 'Bob', single));
    people.push(await joinCall(limitedBrowser, server.url, room, 'Carol', single));
    const history = [];
    // Carol's estimate needs her media connection and her first feedback.
    await waitFor(
      async () => {
        const e = await estimates(server);
        history.push(e);
        return { ok: e.Carol > 0, e };
      },
      {
        timeoutMs: 20_000,
        intervalMs: 500,
        describe: (v) => `${JSON.stringify(v.e)}\n${server.output}\n${people.map((p) => p.logs).join('\n')}`,
      },
    );
    const start = Date.now();
    const seen = await waitFor(
      async () => {
        const e = await estimates(server);
        history.push(e);
        return { ok: e.Carol < 400_000, e };
      },
      { timeoutMs: 15_000, intervalMs: 500, describe: () => `estimates over time: ${JSON.stringify(history)}` },
    );
    const convergedMs = Date.now() - start;
    // Bob, unlimited, stays well above the bottleneck while Carol stays low.
    await new Promise((r) => setTimeout(r, 10_000));
    const final = await estimates(server);
    console.log(`bandwidth estimates: converged in ${convergedMs} ms; ${JSON.stringify({ atConvergence: seen.e, final })}`);
    assert.ok(seen.e.Carol < 400_000, `Carol ${seen.e.Carol}`);
    assert.ok(final.Carol < 400_000, `Carol went back up: ${final.Carol}`);
    assert.ok(final.Bob > 2 * final.Carol && final.Bob > 600_000, `Bob ${final.Bob} vs Carol ${final.Carol}: ${JSON.stringify(history)}`);
  });
});
