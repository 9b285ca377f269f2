// End-to-end test of the errors a person sees, in headless Chromium through
// a real sfu-server: camera and microphone blocked (join and watch without
// sending), camera in use by another application (join with the microphone
// only), and the server going away and coming back (the page says it is
// reconnecting, then registers the same call ID and rejoins its room).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  dumpLogs,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  openHome,
  outboundStats,
  scenario,
  startServer,
  waitFor,
} from './lib.mjs';

const room = `errors-${Math.random().toString(36).slice(2, 10)}`;

let server;
let httpPort;
let browser;
const people = {};

const run = scenario(() => dumpLogs(server, people));
const { step } = run;

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

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
});
