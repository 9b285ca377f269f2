// End-to-end test: three headless Chromium participants call each other
// through a real sfu-server, and the test checks decoded media, the ICE path,
// the tiles in the UI and the server's peer gauge.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  remoteTileCount,
  remoteTileNames,
  repoRoot,
  scenario,
  startServer,
  waitFor,
} from './lib.mjs';

const STEP_TIMEOUT_MS = 60_000;
const room = `e2e-${Math.random().toString(36).slice(2, 10)}`;

let server;
let browser;
const people = {}; // name -> { name, context, page, logs }

/** Runs one step; after a failure, later steps are skipped and logs are printed once. */
const run = scenario(() => dumpDiagnostics(), { timeoutMs: STEP_TIMEOUT_MS });
const { step } = run;

async function dumpDiagnostics() {
  const out = [];
  out.push(`=== sfu-server output (tail) ===\n${server?.output ?? '(not started)'}`);
  for (const p of Object.values(people)) {
    let stats = '(unavailable)';
    try {
      stats = JSON.stringify(await mediaStats(p.page));
    } catch (err) {
      stats = `(error: ${err.message})`;
    }
    let status = '';
    try {
      status = await p.page.locator('#status').textContent();
      const error = await p.page.locator('#error-text').textContent();
      if (error) status += ` | error banner: ${error}`;
    } catch {
      // page already closed
    }
    out.push(`=== ${p.name}: ${status}\nstats: ${stats}\n--- console ---\n${p.logs}`);
  }
  console.error(out.join('\n'));
}

function describeStats(results) {
  return JSON.stringify(results.map(({ who, s }) => ({ who, ...s })));
}

describe('three-way call through sfu-server', () => {
  before(async () => {
    const udpPort = await freeUdpPort();
    server = await startServer({ udpPort });
    browser = await launchBrowser();
  });

  after(async () => {
    if (process.env.E2E_VERBOSE && !run.failed) await dumpDiagnostics();
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('Alice and Bob decode each other\'s video and receive audio', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    const pages = [people.Alice, people.Bob];

    const { results } = await waitFor(
      async () => {
        const results = await Promise.all(
          pages.map(async (p) => ({ who: p.name, s: await mediaStats(p.page) })),
        );
        const ok = results.every(
          ({ s }) => Math.max(0, ...s.video) > 50 && Math.max(0, ...s.audio) > 100,
        );
        return { ok, results };
      },
      { timeoutMs: 15_000, describe: (v) => describeStats(v.results) },
    );
    for (const { who, s } of results) {
      assert.ok(Math.max(0, ...s.video) > 50, `${who} framesDecoded ${s.video}`);
      assert.ok(Math.max(0, ...s.audio) > 100, `${who} audio packetsReceived ${s.audio}`);
    }
  });

  step('media flows over the server\'s UDP port', async () => {
    for (const p of [people.Alice, people.Bob]) {
      const s = await mediaStats(p.page);
      assert.ok(s.remoteCandidate, `${p.name} has no selected candidate pair: ${JSON.stringify(s)}`);
      assert.equal(
        s.remoteCandidate.port,
        server.udpPort,
        `${p.name} selected remote candidate ${JSON.stringify(s.remoteCandidate)}`,
      );
    }
  });

  step('Carol joins and everyone sees two remote participants', async () => {
    people.Carol = await joinCall(browser, server.url, room, 'Carol');
    const pages = Object.values(people);

    const { results } = await waitFor(
      async () => {
        const results = await Promise.all(
          pages.map(async (p) => ({
            who: p.name,
            s: { tiles: await remoteTileCount(p.page), ...(await mediaStats(p.page)) },
          })),
        );
        const ok = results.every(
          ({ s }) => s.tiles === 2 && s.video.filter((frames) => frames > 20).length >= 2,
        );
        return { ok, results };
      },
      { timeoutMs: 15_000, describe: (v) => describeStats(v.results) },
    );
    for (const { who, s } of results) {
      assert.equal(s.tiles, 2, `${who} remote tiles`);
      const decoding = s.video.filter((frames) => frames > 20);
      assert.ok(decoding.length >= 2, `${who} inbound videos with >20 frames: ${s.video}`);
    }
    for (const p of pages) {
      const expected = pages.filter((o) => o !== p).map((o) => o.name).sort();
      assert.deepEqual(await remoteTileNames(p.page), expected, `${p.name} tile names`);
    }

    const dir = path.join(repoRoot, 'test-artifacts');
    await mkdir(dir, { recursive: true });
    await people.Alice.page.screenshot({ path: path.join(dir, 'call.png') });
  });

  step('Carol leaves: the others drop her tile and the server counts 2 peers', async () => {
    const carol = people.Carol;
    await carol.page.click('#leave');
    await carol.page.locator('#join-form').waitFor({ state: 'visible', timeout: 5_000 });

    const remaining = [people.Alice, people.Bob];
    let metrics = '';
    await waitFor(
      async () => {
        const tiles = await Promise.all(remaining.map((p) => remoteTileCount(p.page)));
        metrics = await fetchMetrics(server.url);
        const ok = tiles.every((n) => n === 1) && /^sfu_peers 2$/m.test(metrics);
        return { ok, tiles };
      },
      {
        timeoutMs: 5_000,
        describe: (v) =>
          `tiles ${v.tiles}; sfu_peers lines: ${metrics.split('\n').filter((l) => l.startsWith('sfu_peers'))}`,
      },
    );
    for (const p of remaining) {
      assert.equal(await remoteTileCount(p.page), 1, `${p.name} remote tiles`);
    }
    assert.match(metrics, /^sfu_peers 2$/m);
    await carol.context.close();
    delete people.Carol;
  });
});
