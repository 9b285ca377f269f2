// End-to-end test of a four-person room in headless Chromium through a real
// sfu-server: everyone decodes three remote videos; muting the microphone
// shows the muted icon to the others and stops the sender's audio packets;
// turning the camera off shows the placeholder and stops its video; a screen
// share appears as a fifth tile for the others; a chat message reaches all
// four, and markup in chat and in a display name is shown as text. Also the
// 4 KiB chat limit and chat flooding. Screenshots of the room at 1280x720
// and 390x844 go to test-artifacts/.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  outboundStats,
  remoteTileNames,
  saveScreenshot,
  scenario,
  sleep,
  startServer,
  sum,
  waitFor,
} from './lib.mjs';

/**
 * framesSent of each outbound video: without RTX, the browser's bandwidth
 * probes are padding packets on the video stream itself, so its
 * packetsSent moves even when no frame is sent.
 */
function videoFramesSent(page) {
  return page.evaluate(async () => {
    const out = [];
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.push(s.framesSent ?? 0);
    });
    return out;
  });
}

const STEP_TIMEOUT_MS = 90_000;
const PHONE = { width: 390, height: 844 };
const EVIL_NAME = '<img src=x onerror="window.pwned=1">Dan';
const room = `four-${Math.random().toString(36).slice(2, 10)}`;

let server;
let browser;
const people = {}; // name -> { name, context, page, logs }

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  for (const p of Object.values(people)) {
    const s = await mediaStats(p.page).catch((e) => e.message);
    console.error(`=== ${p.name}: ${JSON.stringify(s)}\n${p.logs}`);
  }
}, { timeoutMs: STEP_TIMEOUT_MS });
const { step } = run;

const all = () => Object.values(people);
const others = (me) => all().filter((p) => p !== me);
const peerId = (p) => p.page.evaluate(() => window.sfu.peerId);

/** framesDecoded of the inbound video whose track id is `trackId`. */
function framesOf(page, trackId) {
  return page.evaluate(async (id) => {
    let frames = 0;
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.trackIdentifier === id) frames = s.framesDecoded ?? 0;
    });
    return frames;
  }, trackId);
}

/** The track ids `page` knows for participant `peer`, by kind and source. */
function tracksOf(page, peer) {
  return page.evaluate((id) => window.sfu.participants.get(id)?.tracks ?? [], peer);
}

async function tileHas(page, peer, selector) {
  return page.locator(`.tile.remote[data-peer-id="${peer}"][data-source="camera"] ${selector}`).isVisible();
}

describe('a four-person room', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('four people join; every page decodes three remote videos', async () => {
    for (const name of ['Alice', 'Bob', 'Carol', EVIL_NAME]) {
      people[name] = await joinCall(browser, server.url, room, name);
    }
    const { results } = await waitFor(
      async () => {
        const results = await Promise.all(all().map(async (p) => ({ who: p.name, s: await mediaStats(p.page) })));
        const ok = results.every(({ s }) => s.video.filter((f) => f > 20).length >= 3);
        return { ok, results };
      },
      { timeoutMs: 45_000, intervalMs: 1000, describe: (v) => JSON.stringify(v.results) },
    );
    for (const { who, s } of results) {
      assert.ok(s.video.filter((f) => f > 20).length >= 3, `${who} decodes ${s.video}`);
    }
    for (const p of all()) {
      const expected = others(p).map((o) => o.name).sort();
      assert.deepEqual(await remoteTileNames(p.page), expected, `${p.name}'s tiles`);
    }
  });

  step('a display name with markup is shown as text', async () => {
    const alice = people.Alice.page;
    const label = alice.locator('.tile.remote .name', { hasText: 'onerror' });
    assert.equal(await label.textContent(), EVIL_NAME);
    assert.equal(await alice.locator('#grid img, #people-list img').count(), 0);
    for (const p of all()) assert.equal(await p.page.evaluate(() => window.pwned), undefined);
  });

  step('Alice mutes: the others see the icon, her audio packets stop', async () => {
    const alice = people.Alice;
    const aliceId = await peerId(alice);
    await alice.page.click('#mic-toggle');
    await waitFor(
      async () => {
        const seen = await Promise.all(others(alice).map((p) => tileHas(p.page, aliceId, '.mic-off')));
        return { ok: seen.every(Boolean), seen };
      },
      { timeoutMs: 5_000, describe: (v) => `muted icon seen: ${v.seen}` },
    );
    await sleep(500);
    const first = await outboundStats(alice.page);
    await sleep(2_000);
    const second = await outboundStats(alice.page);
    assert.deepEqual(second.audio, first.audio, 'audio packetsSent while muted');
    assert.ok(sum(second.video) > sum(first.video), 'video keeps flowing');

    await alice.page.click('#mic-toggle');
    await waitFor(
      async () => {
        const seen = await Promise.all(others(alice).map((p) => tileHas(p.page, aliceId, '.mic-off')));
        return { ok: seen.every((s) => !s), seen };
      },
      { timeoutMs: 5_000, describe: (v) => `muted icon still seen: ${v.seen}` },
    );
    await sleep(1_000);
    const third = await outboundStats(alice.page);
    assert.ok(third.audio[0] > second.audio[0], `audio resumes: ${second.audio} -> ${third.audio}`);
  });

  step('Bob stops his video: placeholder for the others, no video sent; then restarts it', async () => {
    const bob = people.Bob;
    const bobId = await peerId(bob);
    await bob.page.click('#cam-toggle');
    await waitFor(
      async () => {
        const off = await Promise.all(
          others(bob).map((p) => p.page.locator(`.tile.remote[data-peer-id="${bobId}"][data-source="camera"].video-off`).count()),
        );
        return { ok: off.every((n) => n === 1), off };
      },
      { timeoutMs: 5_000, describe: (v) => `camera-off tiles: ${v.off}` },
    );
    await sleep(500);
    const first = await videoFramesSent(bob.page);
    await sleep(2_000);
    const second = await videoFramesSent(bob.page);
    assert.deepEqual(second, first, 'video framesSent while the camera is off');

    await bob.page.click('#cam-toggle');
    const video = (await tracksOf(people.Alice.page, bobId)).find((t) => t.kind === 'video');
    const before = await framesOf(people.Alice.page, video.trackId);
    await waitFor(
      async () => {
        const frames = await framesOf(people.Alice.page, video.trackId);
        const off = await people.Alice.page.locator(`.tile.remote[data-peer-id="${bobId}"].video-off`).count();
        return { ok: off === 0 && frames > before + 20, frames, off };
      },
      { timeoutMs: 15_000, describe: (v) => `Bob's video at Alice: frames ${before} -> ${v.frames}, off ${v.off}` },
    );
  });

  step('Carol shares her screen: a fifth tile for the others, decoding', async () => {
    const carol = people.Carol;
    const carolId = await peerId(carol);
    await carol.page.click('#screen-toggle');
    await carol.page.locator('.tile.local.screen').waitFor({ timeout: 10_000 });
    const seen = await waitFor(
      async () => {
        const states = await Promise.all(
          others(carol).map(async (p) => {
            const tiles = await p.page.locator('#grid .tile:visible').count();
            const screen = p.page.locator(`.tile.remote.screen[data-peer-id="${carolId}"]`);
            const name = (await screen.count()) ? await screen.locator('.name').textContent() : null;
            const trackId = (await screen.count()) ? await screen.getAttribute('data-track-id') : null;
            const frames = trackId ? await framesOf(p.page, trackId) : 0;
            return { who: p.name, tiles, name, frames };
          }),
        );
        return { ok: states.every((s) => s.tiles === 5 && s.name === 'Carol (screen)' && s.frames > 10), states };
      },
      { timeoutMs: 30_000, intervalMs: 1000, describe: (v) => JSON.stringify(v.states) },
    );
    for (const s of seen.states) assert.equal(s.tiles, 5, `${s.who} tiles`);
    await saveScreenshot(people.Alice.page, 'room-4-1280x720.png');
    await saveScreenshot(people.Alice.page, 'room-4-390x844.png', PHONE);

    await carol.page.click('#screen-toggle');
    await waitFor(
      async () => {
        const counts = await Promise.all(others(carol).map((p) => p.page.locator('.tile.remote.screen:visible').count()));
        return { ok: counts.every((n) => n === 0), counts };
      },
      { timeoutMs: 10_000, describe: (v) => `screen tiles left: ${v.counts}` },
    );
  });

  step('a chat message reaches all four, markup shown as text', async () => {
    const bob = people.Bob;
    const message = 'hello <script>window.pwned=2</script> & <b>bold</b>';
    await bob.page.click('#chat-toggle');
    await bob.page.fill('#chat-input', message);
    await bob.page.press('#chat-input', 'Enter');
    await bob.page.locator('#chat-log .message.own .text', { hasText: 'hello' }).waitFor({ timeout: 5_000 });
    for (const p of others(bob)) {
      const item = p.page.locator('#chat-log .message', { hasText: 'window.pwned=2' });
      await item.waitFor({ state: 'attached', timeout: 5_000 });
      assert.equal(await item.locator('.text').textContent(), message, `${p.name} shows the text as sent`);
      assert.equal(await item.locator('.who').textContent(), 'Bob');
      assert.equal(await p.page.locator('#chat-log script, #chat-log b').count(), 0, 'no markup in the log');
      assert.equal(await p.page.locator('#chat-badge').textContent(), '1', `${p.name} unread badge`);
      assert.equal(await p.page.evaluate(() => window.pwned), undefined);
    }
    await people.Alice.page.click('#chat-toggle');
    await saveScreenshot(people.Alice.page, 'room-4-chat-1280x720.png');
    await saveScreenshot(people.Alice.page, 'room-4-chat-390x844.png', PHONE);
    await people.Alice.page.click('#chat-toggle');
  });

  step('an oversized chat is refused; a chat flood is rate limited', async () => {
    const alice = people.Alice.page;
    await alice.click('#chat-toggle');
    await alice.fill('#chat-input', 'x'.repeat(5000));
    await alice.locator('#chat-counter', { hasText: 'Message too long: 5000 of 4096 bytes' }).waitFor({ timeout: 5_000 });
    assert.equal(await alice.locator('#chat-send').isDisabled(), true);
    await alice.fill('#chat-input', '');
    // Past the page's own check, the server refuses it too.
    await alice.evaluate(() => window.sfu.signaling.send({ type: 'chat', text: 'y'.repeat(4097) }));
    await alice.locator('#chat-log .notice.error', { hasText: 'at most 4096 bytes' }).waitFor({ timeout: 5_000 });
    await alice.evaluate(() => {
      for (let i = 0; i < 30; i++) window.sfu.signaling.send({ type: 'chat', text: `flood ${i}` });
    });
    await alice.locator('#chat-log .notice.error', { hasText: 'Slow down' }).first().waitFor({ timeout: 5_000 });
    const metrics = await fetchMetrics(server.url);
    assert.match(metrics, /^sfu_ws_errors_total\{code="chat_too_long"\} 1$/m);
    const limited = Number(/^sfu_ws_errors_total\{code="rate_limited"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    assert.ok(limited >= 15, `rate_limited ${limited} of 30`);
    await alice.click('#chat-toggle');
  });
});
