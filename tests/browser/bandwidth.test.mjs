// Congestion control against a real bottleneck: Carol's Chromium runs in a
// network namespace of its own, behind a veth whose SFU-side egress is
// limited to 300 kbit/s by a token bucket (tc tbf). Alice and Bob stay on
// the unlimited side. The SFU's bandwidth estimate for Carol, from her TWCC
// feedback, must fall below 400 kbit/s within 15 s, while Bob's stays high.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  freeUdpPort,
  inLoopbackOnlyNamespace,
  joinCall,
  launchBrowser,
  startServer,
  waitFor,
} from './lib.mjs';

const TOKEN = 'bandwidth-test-token';
const NS = `sfu-bw-${process.pid}`;
const HOST_IF = `vbh${process.pid % 100000}`;
const PEER_IF = `vbp${process.pid % 100000}`;
const SFU_IP = '198.51.100.1';
const CAROL_IP = '198.51.100.2';

function sh(cmd, ...args) {
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function setUpBottleneck() {
  sh('ip', 'netns', 'add', NS);
  sh('ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', PEER_IF, 'netns', NS);
  // No IPv6 link-local addresses: one appearing a moment after the link
  // comes up is a network change to Chromium, which fails the page loads
  // and sockets under way (ERR_NETWORK_CHANGED).
  sh('ip', 'link', 'set', 'dev', HOST_IF, 'addrgenmode', 'none');
  sh('ip', '-n', NS, 'link', 'set', 'dev', PEER_IF, 'addrgenmode', 'none');
  sh('ip', 'addr', 'add', `${SFU_IP}/24`, 'dev', HOST_IF);
  sh('ip', 'link', 'set', HOST_IF, 'up');
  sh('ip', '-n', NS, 'addr', 'add', `${CAROL_IP}/24`, 'dev', PEER_IF);
  sh('ip', '-n', NS, 'link', 'set', PEER_IF, 'up');
  sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
  // Everything the SFU sends Carol leaves through this token bucket.
  sh('tc', 'qdisc', 'add', 'dev', HOST_IF, 'root', 'tbf', 'rate', '300kbit', 'burst', '4kb', 'latency', '400ms');
}

function tearDownBottleneck() {
  try {
    sh('ip', 'netns', 'del', NS); // removes the veth pair with it
  } catch {
    // never created
  }
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
  let dir;
  const people = [];

  before(async () => {
    setUpBottleneck();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sfu-bw-'));
    const wrapper = path.join(dir, 'chromium-in-netns');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} /usr/bin/chromium "$@"\n`);
    await chmod(wrapper, 0o755);
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
    tearDownBottleneck();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('Carol converges below 400 kbit/s within 15 s; Bob stays high', { timeout: 90_000 }, async () => {
    const room = `bw-${Math.random().toString(36).slice(2, 8)}`;
    people.push(await joinCall(browser, server.url, room, 'Alice'));
    people.push(await joinCall(browser, server.url, room, 'Bob'));
    people.push(await joinCall(limitedBrowser, server.url, room, 'Carol'));
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
