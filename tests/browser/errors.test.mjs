// End-to-end test of the errors a person sees, in headless Chromium through
// a real sfu-server: camera and microphone blocked (join and watch without
// sending), camera in use by another application (join with the microphone
// only), the server going away and coming back (the page says it is
// reconnecting, then registers the same call ID and rejoins its room), and a
// page whose server stops right after serving it, before its WebSocket
// opens: it says it cannot reach the server, with the address and a "Retry
// now" button, and connects by itself once the server is up again.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  dumpLogs,
  freeTcpPort,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  openHome,
  outboundStats,
  repoRoot,
  saveScreenshot,
  scenario,
  startServer,
  waitFor,
  waitForCallId,
} from './lib.mjs';

const room = `errors-${Math.random().toString(36).slice(2, 10)}`;

let server;
let httpPort;
let browser;
const people = {};

const run = scenario(() => dumpLogs(server, people));
const { step } = run;

/** Makes getUserMedia fail in `context` with `name` for `kinds` (audio / video). */
function failMedia(context, name, kinds) {
  return context.addInitScript(
    ([errorName, failing]) => {
      const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = async (constraints) => {
        if (failing.some((k) => constraints?.[k])) throw new DOMException('simulated', errorName);
        return real(constraints);
      };
    },
    [name, kinds],
  );
}

/** Joins `room` as `name` in a context whose media fails as given. */
async function joinWithBrokenMedia(name, errorName, kinds) {
  const p = await openHome(browser, server.url, name, {
    path: `/?room=${room}`,
    init: (context) => failMedia(context, errorName, kinds),
  });
  await p.page.click('#join');
  return p;
}

describe('errors a person understands', () => {
  before(async () => {
    httpPort = await freeTcpPort();
    server = await startServer({ udpPort: await freeUdpPort(), httpPort });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('camera and microphone blocked: told so, still sees and hears the room', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinWithBrokenMedia('Bob', 'NotAllowedError', ['audio', 'video']);
    await people.Bob.page.locator('#error-text', { hasText: 'is blocked' }).waitFor({ timeout: 10_000 });
    assert.match(await people.Bob.page.locator('#error-text').textContent(), /You can watch and listen, but not send/);
    await waitFor(
      async () => {
        const s = await mediaStats(people.Bob.page);
        return { ok: Math.max(0, ...s.video) > 30, s };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.s) },
    );
    const sent = await outboundStats(people.Bob.page);
    assert.deepEqual(sent, { audio: [], video: [] }, 'nothing sent');
    assert.equal(await people.Bob.page.locator('#mic-toggle').isDisabled(), true);
  });

  step('camera in use: told so, joins with the microphone only', async () => {
    people.Carol = await joinWithBrokenMedia('Carol', 'NotReadableError', ['video']);
    await people.Carol.page.locator('#error-text', { hasText: 'in use by another application' }).waitFor({ timeout: 10_000 });
    assert.match(await people.Carol.page.locator('#error-text').textContent(), /microphone only/);
    await waitFor(
      async () => {
        const sent = await outboundStats(people.Carol.page);
        return { ok: sent.audio.length === 1 && sent.audio[0] > 50 && sent.video.length === 0, sent };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.sent) },
    );
  });

  step('the server goes away: "reconnecting"; it comes back: same call ID, room rejoined', async () => {
    const alice = people.Alice.page;
    const id = await alice.evaluate(() => window.sfu.callId);
    await server.stop();
    await alice.locator('#error-text', { hasText: 'Reconnecting' }).waitFor({ timeout: 10_000 });
    assert.equal(await alice.locator('#conn-state').textContent(), 'Offline');
    server = await startServer({ udpPort: await freeUdpPort(), httpPort });
    await alice.locator('#conn-state', { hasText: 'Online' }).waitFor({ timeout: 15_000 });
    // Alice hears Carol again, and Carol sees Alice again, on new connections.
    await waitFor(
      async () => {
        const atAlice = await mediaStats(alice);
        const atCarol = await mediaStats(people.Carol.page);
        const tiles = await alice.locator('.tile.remote').count();
        const ok = tiles === 2 && Math.max(0, ...atAlice.audio) > 50 && Math.max(0, ...atCarol.video) > 20;
        return { ok, atAlice, atCarol, tiles };
      },
      { timeoutMs: 30_000, describe: (v) => JSON.stringify(v) },
    );
    assert.equal(await alice.evaluate(() => window.sfu.callId), id, 'same call ID');
    assert.equal(await alice.locator('#error').isHidden(), true, 'the error is cleared');
  });

  step('the server stops right after serving the page: a clear message, then it connects by itself', async () => {
    for (const p of Object.values(people)) await p.context.close();
    for (const name of Object.keys(people)) delete people[name];
    const base = server.url;
    // The server serves the page itself, and is stopped as soon as the page
    // asks for its style sheet and scripts (which then come from disk, as
    // from a cache), so it is gone before the page opens its WebSocket.
    let stopping = null;
    people.Dan = await openHome(browser, base, 'Dan', {
      init: (context) =>
        context.route(/\.(js|css)$/, async (route) => {
          stopping ??= server.stop();
          await stopping;
          const file = new URL(route.request().url()).pathname.slice(1);
          const body = await readFile(path.join(repoRoot, 'web-client', path.basename(file)));
          const contentType = file.endsWith('.css') ? 'text/css' : 'text/javascript';
          await route.fulfill({ status: 200, contentType, body });
        }),
    });
    const dan = people.Dan.page;
    const error = dan.locator('#error-text', { hasText: `Cannot reach the server at 127.0.0.1:${httpPort}` });
    await error.waitFor({ timeout: 5_000 });
    assert.match(await error.textContent(), /Retrying in \d+ s \(attempt \d+\)…$/);
    assert.equal(await dan.locator('#conn-state').textContent(), 'Offline');
    assert.equal(await dan.locator('#error-action').textContent(), 'Retry now');
    assert.equal(await dan.locator('#my-call-id').textContent(), '·······');
    assert.match(await dan.locator('#id-hint').textContent(), /Not connected to the server/);
    // Calling someone meanwhile says why it cannot.
    await dan.fill('#callee-id', 'K7M3QXA');
    await dan.click('#call-button');
    await dan.locator('#error-text', { hasText: 'Not connected to the server yet' }).waitFor({ timeout: 2_000 });
    // Let it retry a few times, as it would while the server is down.
    await dan.locator('#error-text', { hasText: '(attempt 3)' }).waitFor({ timeout: 10_000 });
    await saveScreenshot(dan, 'unreachable-1280x720.png');
    await saveScreenshot(dan, 'unreachable-390x844.png', { width: 390, height: 844 });

    server = await startServer({ udpPort: await freeUdpPort(), httpPort });
    const up = Date.now();
    await dan.locator('#conn-state', { hasText: 'Online' }).waitFor({ timeout: 10_000 });
    const id = await waitForCallId(dan);
    console.log(`server up: the page connected after ${Date.now() - up} ms and registered ${id}`);
    assert.equal(await dan.locator('#error').isHidden(), true, 'the error is cleared');
    assert.equal(await dan.locator('#my-call-id').textContent(), id);
    assert.match(await dan.locator('#id-hint').textContent(), /Give this ID to people/);
  });
});
