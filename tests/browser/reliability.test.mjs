// Restarts and deaths around a live call, with headless Chromium:
//   - drain: SIGTERM during a call turns /readyz to 503 at once, both
//     clients get `migrate`, and the process exits 0 within the deadline;
//   - server restart: the server is killed and started again on the same
//     ports; both clients rejoin their room by themselves and decode again
//     within 10 s, without a page reload;
//   - abrupt client death: one participant's Chromium is SIGKILLed; the
//     server removes it within the consent timeout, and the other
//     participant's page shows the leave.

import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import {
  fetchMetrics,
  freeTcpPort,
  freeUdpPort,
  joinCall,
  launchBrowser,
  launchKillableBrowser,
  metricValue,
  remoteTileCount,
  scenario,
  sleep,
  startServer,
  waitAllDecoding,
  waitFor,
} from './lib.mjs';

const CONSENT_SECS = 5;
const DRAIN_SECS = 5;

let server;
const browsers = [];
const people = {};

const run = scenario(() => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output ?? '(not started)'}`);
  for (const p of Object.values(people)) console.error(`--- ${p.name} ---\n${p.logs}`);
});
const { step } = run;

function room(kind) {
  return `${kind}-${Math.random().toString(36).slice(2, 8)}`;
}

async function closeAll() {
  for (const p of Object.values(people)) await p.context.close().catch(() => {});
  for (const key of Object.keys(people)) delete people[key];
}

describe('drain, server restart and client death around a live call', () => {
  after(async () => {
    await closeAll();
    for (const b of browsers) await b.close().catch(() => {});
    await server?.stop();
  });

  step('drain: /readyz 503 at once, both clients told to migrate, exit 0 within the deadline', async () => {
    server = await startServer({ udpPort: await freeUdpPort(), extraArgs: ['--drain-timeout-secs', String(DRAIN_SECS)] });
    const browser = await launchBrowser();
    browsers.push(browser);
    const r = room('drain');
    people.Alice = await joinCall(browser, server.url, r, 'Alice');
    people.Bob = await joinCall(browser, server.url, r, 'Bob');
    await waitAllDecoding([people.Alice, people.Bob]);

    const sentAt = Date.now();
    server.kill('SIGTERM');
    const ready = await waitFor(
      async () => {
        const res = await fetch(`${server.url}/readyz`).catch(() => null);
        return { ok: res?.status === 503, status: res?.status };
      },
      { timeoutMs: 2000, intervalMs: 50, describe: (v) => `/readyz ${v.status}` },
    );
    const readyMs = Date.now() - sentAt;
    await waitFor(
      async () => {
        const told = ['Alice', 'Bob'].map((n) => String(people[n].logs).includes('signaling <- migrate'));
        return { ok: told.every(Boolean), told };
      },
      { timeoutMs: 3000, describe: (v) => `migrate seen by Alice, Bob: ${v.told}` },
    );
    const { code, signal } = await Promise.race([
      server.exit,
      sleep((DRAIN_SECS + 5) * 1000).then(() => ({ code: 'still running', signal: null })),
    ]);
    const exitMs = Date.now() - sentAt;
    console.log(`drain: /readyz ${ready.status} after ${readyMs} ms; migrate to both; exit ${code} after ${exitMs} ms (deadline ${DRAIN_SECS} s)`);
    assert.ok(readyMs < 1000, `/readyz turned 503 only after ${readyMs} ms`);
    assert.equal(code, 0, `exit code (signal ${signal})`);
    assert.ok(exitMs <= (DRAIN_SECS + 2) * 1000, `exited ${exitMs} ms after SIGTERM`);
    await closeAll();
  });

  step('server restart: both clients rejoin and decode again within 10 s, no reload', async () => {
    const httpPort = await freeTcpPort();
    const udpPort = await freeUdpPort();
    server = await startServer({ udpPort, httpPort });
    const browser = browsers[0];
    const r = room('restart');
    people.Alice = await joinCall(browser, server.url, r, 'Alice');
    people.Bob = await joinCall(browser, server.url, r, 'Bob');
    await waitAllDecoding([people.Alice, people.Bob]);
    const loads = await Promise.all(
      [people.Alice, people.Bob].map((p) => p.page.evaluate(() => performance.getEntriesByType('navigation').length)),
    );

    // The connections of the old server are marked, to count frames on the
    // new ones only.
    for (const p of [people.Alice, people.Bob]) await p.page.evaluate(() => { window.sfu.pc.oldServer = true; });
    server.kill('SIGKILL');
    await server.exit;
    server = await startServer({ udpPort, httpPort });
    const upAt = Date.now();
    await waitFor(
      async () => {
        const f = await Promise.all(
          [people.Alice, people.Bob].map((p) =>
            p.page.evaluate(async () => {
              const pc = window.sfu?.pc;
              if (!pc || pc.oldServer) return 0;
              let n = 0;
              (await pc.getStats()).forEach((s) => {
                if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0;
              });
              return n;
            }),
          ),
        );
        return { ok: f.every((n) => n > 10), f };
      },
      { timeoutMs: 10_000, describe: (v) => `framesDecoded on the new connections ${v.f.join(' and ')}` },
    );
    const rejoinMs = Date.now() - upAt;
    const metrics = await fetchMetrics(server.url);
    const url = await people.Alice.page.evaluate(() => window.location.href);
    console.log(`server restart: both decoding again ${rejoinMs} ms after the new server was up; joins on it ${metricValue(metrics, 'sfu_joins_total')}`);
    assert.equal(metricValue(metrics, 'sfu_joins_total'), 2, 'both rejoined the new server');
    assert.ok(url.includes(`room=${r}`), url);
    const loadsAfter = await Promise.all(
      [people.Alice, people.Bob].map((p) => p.page.evaluate(() => performance.getEntriesByType('navigation').length)),
    );
    assert.deepEqual(loadsAfter, loads, 'no page reload');
    await closeAll();
    await server.stop();
  });

  step("abrupt client death: the server removes a SIGKILLed Chromium within the consent timeout, and the other side's page shows it", async () => {
    server = await startServer({ udpPort: await freeUdpPort(), extraArgs: ['--consent-timeout-secs', String(CONSENT_SECS)] });
    const aliceBrowser = browsers[0];
    const { browser: bobBrowser, kill: killBob } = await launchKillableBrowser();
    const r = room('death');
    people.Alice = await joinCall(aliceBrowser, server.url, r, 'Alice');
    people.Bob = await joinCall(bobBrowser, server.url, r, 'Bob');
    await waitAllDecoding([people.Alice, people.Bob]);
    assert.equal(await remoteTileCount(people.Alice.page), 1);
    const before = await fetchMetrics(server.url);

    killBob();
    const killedAt = Date.now();
    delete people.Bob;
    const gone = await waitFor(
      async () => {
        const m = await fetchMetrics(server.url);
        return { ok: metricValue(m, 'sfu_peers') === 1, peers: metricValue(m, 'sfu_peers'), m };
      },
      { timeoutMs: (CONSENT_SECS + 5) * 1000, intervalMs: 200, describe: (v) => `sfu_peers ${v.peers}` },
    );
    const removedMs = Date.now() - killedAt;
    await waitFor(
      async () => {
        const tiles = await remoteTileCount(people.Alice.page);
        return { ok: tiles === 0, tiles };
      },
      { timeoutMs: 3000, describe: (v) => `Alice still shows ${v.tiles} remote tiles` },
    );
    const leftMs = Date.now() - killedAt;
    const leaves = (m) =>
      ['normal', 'timeout', 'error', 'fault'].map((reason) => `${reason} ${metricValue(m, `sfu_leaves_total{reason="${reason}"}`) - metricValue(before, `sfu_leaves_total{reason="${reason}"}`)}`);
    console.log(`client death: removed by the server ${removedMs} ms after SIGKILL (consent timeout ${CONSENT_SECS} s); Alice's page showed the leave after ${leftMs} ms; leaves: ${leaves(gone.m).join(', ')}`);
    assert.ok(removedMs <= (CONSENT_SECS + 2) * 1000, `removed ${removedMs} ms after the kill`);
  });
});
