// TURN credentials the relay refuses: the client says so. Alice's and
// Bob's Chromium run behind a NAT in a namespace (cli) that reaches only
// the SFU's signaling port and coturn (as in nat.test.mjs, "TURN only"),
// so a call can only go through TURN:
//
//   [this namespace: SFU 203.0.113.1, coturn]
//        | 203.0.113.1/24 -- 203.0.113.2/24
//   [nat: a router that masquerades (symmetric NAT)]
//        | 192.0.2.1/24 -- 192.0.2.2/24
//   [cli: the browsers]
//
// 1. coturn runs under `faketime -f +2h`: the ephemeral credentials the SFU
//    mints (valid for 10 minutes) look expired to it, and it answers 401.
//    Both pages show "The relay server refused our credentials (expired?)"
//    and neither connects.
// 2. The same with a coturn on the real clock: the call connects through
//    it and no such message shows (Chromium reports no error for the 401
//    challenge that precedes every authenticated TURN request).

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  inLoopbackOnlyNamespace,
  launchBrowser,
  openHome,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';
import { Topology, metricValue, selectedPair, symmetricNat } from './netns.mjs';

const SFU_IP = '203.0.113.1';
const TURN_SECRET = 'turn-test-shared-secret';
const EXPIRED_PORT = 3478; // coturn two hours ahead
const VALID_PORT = 3479; // coturn on the real clock
const REFUSED = /The relay server refused our credentials \(expired\?\)/;
const skip = !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)';

const topo = new Topology('tu');
const coturns = {}; // port -> { proc, log }
const servers = {}; // 'expired' | 'valid' -> sfu-server
let browser;
const people = [];

function startCoturn(port, minPort, faketime) {
  const args = [
    '-n', `--listening-ip=${SFU_IP}`, `--relay-ip=${SFU_IP}`, `--listening-port=${port}`,
    `--min-port=${minPort}`, `--max-port=${minPort + 20}`, '--use-auth-secret', `--static-auth-secret=${TURN_SECRET}`,
    '--realm=sfu.test', '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--log-file=stdout',
  ];
  // In a process group of its own: `faketime` runs turnserver as its child,
  // and both must go when the test ends.
  const proc = faketime
    ? topo.spawn(null, 'faketime', ['-m', '-f', faketime, 'turnserver', ...args], { detached: true })
    : topo.spawn(null, 'turnserver', args, { detached: true });
  const entry = { proc, log: '' };
  const keep = (d) => {
    entry.log = (entry.log + d).slice(-20_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  coturns[port] = entry;
}

async function startSfu(turnPort) {
  return startServer({
    udpPort: await freeUdpPort(),
    host: SFU_IP,
    extraArgs: ['--turn-url', `turn:${SFU_IP}:${turnPort}?transport=udp`, '--turn-secret', TURN_SECRET, '--turn-ttl-secs', '600'],
  });
}

async function join(server, r, name) {
  const p = await openHome(browser, server.url, name, { path: `/?room=${r}` });
  // Chromium in a fresh namespace sometimes fails a module load with
  // ERR_NETWORK_CHANGED; the page then has no client: load it again.
  if (!(await p.page.evaluate(() => !!window.sfu))) {
    console.log(`${name}: the client did not load (${p.logs.toString().split('\n').pop()}); reloading`);
    await p.page.reload();
    await p.page.fill('#name', name);
  }
  await p.page.click('#join');
  people.push(p);
  return p;
}

async function leaveAll() {
  while (people.length) await people.pop().context.close().catch(() => {});
}

/** What the page shows and how its connection stands. */
function pageState(p) {
  return p.page.evaluate(() => ({
    error: document.getElementById('error-text').textContent,
    errorShown: !document.getElementById('error').hidden,
    pc: window.sfu?.pc?.connectionState ?? null,
    ice: window.sfu?.pc?.iceConnectionState ?? null,
  }));
}

const run = scenario(async () => {
  for (const [name, s] of Object.entries(servers)) console.error(`=== sfu-server (${name}) ===\n${s.output}`);
  for (const [port, c] of Object.entries(coturns)) console.error(`=== coturn :${port} ===\n${c.log}`);
  for (const p of people) console.error(`=== ${p.name}: ${JSON.stringify(await pageState(p).catch((e) => e.message))}\n${p.logs}`);
}, { timeoutMs: 60_000 });
const { step } = run;

describe('TURN credentials refused by the relay', { skip }, () => {
  before(async () => {
    symmetricNat(topo, SFU_IP);
    startCoturn(EXPIRED_PORT, 49160, '+2h');
    startCoturn(VALID_PORT, 49190, null);
    servers.expired = await startSfu(EXPIRED_PORT);
    servers.valid = await startSfu(VALID_PORT);
    // The camera needs a secure context; these plain-HTTP test origins are
    // not localhost, so they are declared secure for the test.
    const secure = `--unsafely-treat-insecure-origin-as-secure=${Object.values(servers).map((s) => s.url).join(',')}`;
    browser = await launchBrowser(await topo.wrapper('cli', '/usr/bin/chromium'), [secure]);
    // cli reaches the SFUs' signaling and the two coturns, nothing else there.
    const ports = Object.values(servers).map((s) => new URL(s.url).port);
    topo.nft('cli', `table inet turnonly { chain out { type filter hook output priority 0;
      ip daddr ${SFU_IP} tcp dport { ${ports.join(', ')} } accept;
      ip daddr ${SFU_IP} udp dport { ${EXPIRED_PORT}, ${VALID_PORT} } accept;
      ip daddr ${SFU_IP} drop; }
}`);
  });

  after(async () => {
    await leaveAll();
    await browser?.close().catch(() => {});
    for (const s of Object.values(servers)) await s.stop();
    for (const c of Object.values(coturns)) {
      try {
        process.kill(-c.proc.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await topo.teardown();
  });

  step('1. credentials that look expired to coturn: both pages say the relay refused them, and the call does not connect', async () => {
    const r = `turn-${Math.random().toString(36).slice(2, 8)}`;
    const alice = await join(servers.expired, r, 'Alice');
    const bob = await join(servers.expired, r, 'Bob');
    const joinedAt = Date.now();
    const shown = await waitFor(
      async () => {
        const states = await Promise.all([alice, bob].map(pageState));
        return { ok: states.every((s) => s.errorShown && REFUSED.test(s.error)), states };
      },
      { timeoutMs: 20_000, intervalMs: 250, describe: (v) => JSON.stringify(v.states) },
    );
    const shownMs = Date.now() - joinedAt;
    // Give the call every chance to connect anyway: 10 s more.
    const seen = new Set();
    while (Date.now() - joinedAt < shownMs + 10_000) {
      for (const s of await Promise.all([alice, bob].map(pageState))) seen.add(s.pc);
      await sleep(500);
    }
    const metrics = await fetchMetrics(servers.expired.url);
    const connections = ['udp', 'tcp', 'relay'].map((t) => metricValue(metrics, 'sfu_ice_connections_total', `transport="${t}"`));
    const errors = alice.logs.toString().split('\n').filter((l) => /ICE candidate error 4\d\d/.test(l)).slice(0, 2);
    console.log(`expired credentials: message on both pages ${shownMs} ms after joining ("${shown.states[0].error}"); ` +
      `connection states seen ${[...seen].join(',')}; sfu_ice_connections_total udp/tcp/relay ${connections.join('/')}; ` +
      `Alice's candidate errors: ${errors.join(' | ')}`);
    assert.ok(!seen.has('connected'), `connected: ${[...seen]}`);
    assert.deepEqual(connections, [0, 0, 0], 'no media connection reached the SFU');
    // coturn's word for a REST credential past its expiry time.
    assert.match(coturns[EXPIRED_PORT].log, /check_stun_auth: Cannot find credentials of user/);
    await leaveAll();
  });

  step('2. the same with coturn on the real clock: the call connects through it, and no such message shows', async () => {
    const r = `turn-${Math.random().toString(36).slice(2, 8)}`;
    const alice = await join(servers.valid, r, 'Alice');
    const bob = await join(servers.valid, r, 'Bob');
    await waitFor(
      async () => {
        const states = await Promise.all([alice, bob].map(pageState));
        return { ok: states.every((s) => s.pc === 'connected'), states };
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: (v) => JSON.stringify(v.states) },
    );
    await sleep(2000); // any late candidate error would have come by now
    const states = await Promise.all([alice, bob].map(pageState));
    const pairs = await Promise.all([alice, bob].map((p) => selectedPair(p.page)));
    const errors = [alice, bob].flatMap((p) => p.logs.toString().split('\n').filter((l) => /ICE candidate error 4\d\d/.test(l)));
    console.log(`valid credentials: connected through ${pairs.map((p) => p?.local.type).join(',')} candidates; ` +
      `errors shown: ${JSON.stringify(states.map((s) => s.errorShown && s.error))}; 4xx candidate errors: ${errors.length ? errors.join(' | ') : 'none'}`);
    assert.deepEqual(errors, [], 'no 4xx from coturn');
    for (const p of pairs) assert.equal(p?.local.type, 'relay', JSON.stringify(p));
    for (const s of states) assert.doesNotMatch(s.error, REFUSED);
    await leaveAll();
  });
});
