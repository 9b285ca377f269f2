// End-to-end test of renegotiation glare in headless Chromium through a real
// sfu-server. The page is the impolite side of perfect negotiation: Bob's
// page holds back the server's messages while the server has an offer out
// for him (Alice's new screen share), makes its own offer (Bob's screen
// share), and then receives everything in order. The page must ignore the
// crossed server offer, apply the answer, answer the server's new offer, and
// both screen shares must reach the other side. Also: a stopped share hides
// its tile and a second share reuses the same track; the device pickers
// switch the microphone without renegotiating; every tile shows its
// connection quality.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  dumpLogs,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  outboundStats,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';

const room = `glare-${Math.random().toString(36).slice(2, 10)}`;

let server;
let browser;
const people = {};

const run = scenario(() => dumpLogs(server, people));
const { step } = run;

/** framesDecoded of the screen share of `peer` as `page` receives it (0 if none). */
function screenFrames(page, peer) {
  return page.evaluate(async (id) => {
    const tile = document.querySelector(`.tile.remote.screen[data-peer-id="${id}"]`);
    if (!tile || tile.hidden) return 0;
    let frames = 0;
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.trackIdentifier === tile.dataset.trackId) frames = s.framesDecoded ?? 0;
    });
    return frames;
  }, peer);
}

describe('renegotiation glare', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('Alice and Bob are in a room', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    await waitFor(
      async () => {
        const s = await Promise.all([people.Alice, people.Bob].map((p) => mediaStats(p.page)));
        return { ok: s.every((x) => Math.max(0, ...x.video) > 30), s };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.s) },
    );
  });

  step('crossed offers: Bob\'s page ignores the server\'s, and both shares arrive', async () => {
    const bob = people.Bob.page;
    await bob.evaluate(() => {
      window.__held = [];
      window.__hold = true;
      const handlers = window.sfu.signaling.handlers;
      const deliver = handlers.onMessage;
      handlers.onMessage = (msg) => {
        if (window.__hold && (msg.type === 'offer' || msg.type === 'answer')) window.__held.push(msg);
        else deliver(msg);
      };
      window.__release = () => {
        window.__hold = false;
        for (const msg of window.__held.splice(0)) deliver(msg);
      };
    });
    // Alice's share makes the server offer to Bob; the offer is held.
    await people.Alice.page.click('#screen-toggle');
    await bob.waitForFunction(() => window.__held.some((m) => m.type === 'offer'), null, { timeout: 15_000 });
    // Bob offers too, while the server's offer is out.
    await bob.click('#screen-toggle');
    await bob.waitForFunction(() => window.__held.some((m) => m.type === 'answer'), null, { timeout: 10_000 });
    await sleep(500); // the server's new offer follows its answer
    const held = await bob.evaluate(() => window.__held.map((m) => m.type));
    assert.deepEqual(held.slice(0, 2), ['offer', 'answer'], `held ${held}`);
    assert.equal(await bob.evaluate(() => window.sfu.pc.signalingState), 'have-local-offer');
    await bob.evaluate(() => window.__release());

    const aliceId = await people.Alice.page.evaluate(() => window.sfu.peerId);
    const bobId = await bob.evaluate(() => window.sfu.peerId);
    const result = await waitFor(
      async () => {
        const state = await bob.evaluate(() => ({ signaling: window.sfu.pc.signalingState, ...window.sfu.room.call.stats }));
        const atBob = await screenFrames(bob, aliceId);
        const atAlice = await screenFrames(people.Alice.page, bobId);
        return { ok: state.signaling === 'stable' && atBob > 10 && atAlice > 10, state, atBob, atAlice };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v) },
    );
    assert.ok(result.state.serverOffersIgnored >= 1, `ignored ${result.state.serverOffersIgnored}`);
    assert.ok(result.state.serverOffersAnswered >= 2, `answered ${result.state.serverOffersAnswered}`);
  });

  step('a stopped share disappears; sharing again reuses the track', async () => {
    const aliceId = await people.Alice.page.evaluate(() => window.sfu.peerId);
    const before = await people.Bob.page.locator(`.tile.remote.screen[data-peer-id="${aliceId}"]`).getAttribute('data-track-id');
    await people.Alice.page.click('#screen-toggle');
    await people.Bob.page.locator(`.tile.remote.screen[data-peer-id="${aliceId}"]`).waitFor({ state: 'hidden', timeout: 5_000 });
    await people.Alice.page.click('#screen-toggle');
    const seen = await waitFor(
      async () => {
        const frames = await screenFrames(people.Bob.page, aliceId);
        const tiles = await people.Bob.page.locator('.tile.remote.screen').count();
        return { ok: frames > 10, frames, tiles };
      },
      { timeoutMs: 15_000, describe: (v) => JSON.stringify(v) },
    );
    const after = await people.Bob.page.locator(`.tile.remote.screen[data-peer-id="${aliceId}"]`).getAttribute('data-track-id');
    assert.equal(after, before, 'the same track resumes');
    assert.equal(seen.tiles, 1, 'still one screen tile for Alice');
  });

  step('the device pickers list the devices; switching the microphone keeps audio flowing', async () => {
    const alice = people.Alice.page;
    await alice.click('#devices-toggle');
    await alice.locator('#devices-panel').waitFor({ timeout: 5_000 });
    await waitFor(
      async () => {
        const cams = await alice.locator('#camera-select option').count();
        const mics = await alice.locator('#mic-select option').count();
        return { ok: cams >= 1 && mics >= 2, cams, mics };
      },
      { timeoutMs: 5_000, describe: (v) => JSON.stringify(v) },
    );
    const options = await alice.$$eval('#mic-select option', (os) => os.map((o) => ({ value: o.value, selected: o.selected, label: o.textContent })));
    const other = options.find((o) => !o.selected);
    const offers = await alice.evaluate(() => window.sfu.room.call.stats.offersSent);
    await alice.selectOption('#mic-select', other.value);
    await alice.waitForFunction((label) => window.sfu.room.mic?.label === label, other.label, { timeout: 5_000 });
    const before = await outboundStats(alice);
    await sleep(1_500);
    const after = await outboundStats(alice);
    assert.ok(after.audio[0] > before.audio[0] + 20, `audio packets ${before.audio} -> ${after.audio}`);
    assert.equal(await alice.evaluate(() => window.sfu.room.call.stats.offersSent), offers, 'no renegotiation');
    await alice.click('#devices-toggle');
  });

  step('every tile shows its connection quality from getStats', async () => {
    for (const p of Object.values(people)) {
      const q = await waitFor(
        async () => {
          const q = await p.page.evaluate(() => window.sfu.quality);
          const levels = await p.page.$$eval('.tile:not([hidden]):not(.local.screen)', (ts) => ts.map((t) => t.dataset.quality ?? null));
          return { ok: levels.length >= 3 && levels.every((l) => l === 'good'), q, levels };
        },
        { timeoutMs: 10_000, describe: (v) => JSON.stringify(v) },
      );
      for (const [key, figures] of Object.entries(q.q)) {
        assert.ok(figures.lossPct >= 0 && figures.lossPct < 2, `${p.name} ${key} loss ${figures.lossPct}`);
        assert.ok(figures.rttMs !== null && figures.rttMs < 100, `${p.name} ${key} RTT ${figures.rttMs}`);
      }
      const title = await p.page.locator('.tile.remote .quality').first().getAttribute('title');
      assert.match(title, /^Good connection: loss \d+\.\d% · RTT \d+ ms$/);
    }
  });
});
