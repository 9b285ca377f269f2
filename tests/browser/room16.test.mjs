// End-to-end test of a 16-person room in headless Chromium through a real
// sfu-server: 15 participants publish a small synthetic camera (a 160x120
// canvas at 5 frames/s, no microphone) from one browser with the full
// client, and an observer joins with the full client and Chromium's fake
// camera. To fit a 2-core machine the
// publishers do not watch each other (their answers mark the forwarded
// m-lines inactive), so the observer alone receives all 15. The observer's grid shows 16
// named tiles, and it decodes the others' video: the count of remote
// inbound-rtp videos with framesDecoded > 0 is asserted and printed.
// Screenshots of the observer at 1280x720 and 390x844 go to test-artifacts/.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  freeUdpPort,
  inboundVideo,
  joinCall,
  launchBrowser,
  remoteTileNames,
  saveScreenshot,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';

const PUBLISHERS = 15;
/**
 * Of the 15 remote videos, how many the observer must decode. All 15 are
 * expected; on a loaded 2-core machine (16 browsers encoding and decoding)
 * a slow publisher may not have reached it yet.
 */
const MIN_DECODED = 14;
const PHONE = { width: 390, height: 844 };
const room = `sixteen-${Math.random().toString(36).slice(2, 8)}`;
const names = Array.from({ length: PUBLISHERS }, (_, i) => `P${String(i + 1).padStart(2, '0')}`);

let server;
let browser; // the observer's
let crowd; // the publishers'
const people = {}; // name -> { name, context, page, logs }

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  const o = people.Observer;
  if (o) console.error(`=== Observer: ${JSON.stringify(await inboundVideo(o.page).catch((e) => e.message))}\n${o.logs}`);
  for (const n of names) {
    const p = people[n];
    if (!p) continue;
    const state = await p.page.evaluate(() => ({
      pc: window.sfu.pc?.connectionState, ice: window.sfu.pc?.iceConnectionState,
      signaling: window.sfu.pc?.signalingState, status: document.getElementById('status').textContent,
      error: document.getElementById('error-text').textContent, stats: window.sfu.room?.call?.stats,
      cam: window.sfu.room?.cam && { state: window.sfu.room.cam.readyState, muted: window.sfu.room.cam.muted, settings: window.sfu.room.cam.getSettings() },
    })).catch((e) => e.message);
    const out = await p.page.evaluate(async () => {
      const o = [];
      (await window.sfu.pc?.getStats())?.forEach((s) => {
        if (s.type === 'outbound-rtp') o.push({ kind: s.kind, frames: s.framesEncoded, sent: s.packetsSent, limit: s.qualityLimitationReason, target: s.targetBitrate, active: s.active });
        if (s.type === 'media-source' && s.kind === 'video') o.push({ source: s.frames, fps: s.framesPerSecond });
      });
      return o;
    }).catch((e) => e.message);
    console.error(`    outbound: ${JSON.stringify(out)}`);
    console.error(`=== ${n}: ${JSON.stringify(state)}\n${p.logs.join('\n')}`);
  }
}, { timeoutMs: 180_000 });
const { step } = run;

/**
 * A publisher's page: getUserMedia gives a small camera and no microphone
 * (the client then joins with its camera only),
 * and the page does not watch the others: it answers the server's m-lines
 * `inactive`, so its browser decodes nothing (15 browsers decoding 14
 * videos each would not fit 2 cores).
 */
function publisherOnly(context) {
  return context.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      if (!constraints?.video) throw new DOMException('no microphone here', 'NotFoundError');
      // A 160x120 camera at 5 frames/s drawn on a canvas: Chromium's fake
      // capture device, opened by 15 pages of one browser, sometimes
      // delivers no frames at all to one of them.
      const canvas = Object.assign(document.createElement('canvas'), { width: 160, height: 120 });
      const g = canvas.getContext('2d');
      let n = 0;
      setInterval(() => {
        n += 1;
        g.fillStyle = `hsl(${(n * 7) % 360} 60% 35%)`;
        g.fillRect(0, 0, 160, 120);
        g.fillStyle = '#fff';
        g.font = '28px sans-serif';
        g.fillText(String(n), 10 + (n % 60), 70);
      }, 200);
      return canvas.captureStream(5);
    };
    const createAnswer = RTCPeerConnection.prototype.createAnswer;
    RTCPeerConnection.prototype.createAnswer = function (...args) {
      for (const t of this.getTransceivers()) if (t.direction === 'recvonly') t.direction = 'inactive';
      return createAnswer.apply(this, args);
    };
  });
}

/** Joins `room` as `name` from `b` with a small viewport and camera. */
async function joinSmall(b, name) {
  const context = await b.newContext({ viewport: { width: 320, height: 240 } });
  await publisherOnly(context);
  const page = await context.newPage();
  const logs = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'debug') logs.push(`[${name}] ${msg.type()}: ${msg.text()}`);
  });
  await page.goto(`${server.url}/?room=${room}`);
  await page.fill('#name', name);
  await page.click('#join');
  // Nobody looks at the publishers' screens: do not paint their tiles.
  await page.addStyleTag({ content: '#grid { display: none !important; }' });
  return { name, context, page, logs };
}

describe('a 16-person room', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
    crowd = await launchBrowser();
  });

  after(async () => {
    await crowd?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step(`${PUBLISHERS} people join, each publishing a 160x120 camera at 5 frames/s`, async () => {
    for (const name of names) {
      people[name] = await joinSmall(crowd, name);
      await sleep(700); // a ramp, as people arrive
    }
    await waitFor(
      async () => {
        const sending = await Promise.all(
          names.map((n) => people[n].page.evaluate(async () => {
            let sent = 0;
            (await window.sfu?.pc?.getStats())?.forEach((s) => {
              if (s.type === 'outbound-rtp' && s.kind === 'video') sent += s.framesEncoded ?? 0;
            });
            return sent > 0;
          })),
        );
        const n = sending.filter(Boolean).length;
        return { ok: n === PUBLISHERS, n };
      },
      { timeoutMs: 60_000, intervalMs: 1000, describe: (v) => `${v.n} of ${PUBLISHERS} publishers sending` },
    );
  });

  step('the observer joins: 16 named tiles, and it decodes the others\' video', async () => {
    people.Observer = await joinCall(browser, server.url, room, 'Observer');
    const o = people.Observer.page;
    const joinedAt = Date.now();
    await waitFor(
      async () => {
        const tiles = await remoteTileNames(o);
        return { ok: tiles.length === PUBLISHERS, tiles };
      },
      { timeoutMs: 20_000, describe: (v) => `tiles ${v.tiles}` },
    );
    const { decoded, videos } = await waitFor(
      async () => {
        const videos = await inboundVideo(o);
        const decoded = videos.filter((v) => v.framesDecoded > 0).length;
        return { ok: decoded === PUBLISHERS, decoded, videos };
      },
      { timeoutMs: 60_000, intervalMs: 1000, describe: (v) => `decoding ${v.decoded}` },
    ).catch(async (err) => {
      // Not all 15 in time: assert the stated minimum below instead.
      const videos = await inboundVideo(o);
      console.log(`not all decoded: ${err.message}`);
      return { decoded: videos.filter((v) => v.framesDecoded > 0).length, videos };
    });
    const seconds = ((Date.now() - joinedAt) / 1000).toFixed(1);
    console.log(`observer decodes ${decoded} of ${PUBLISHERS} remote videos ${seconds} s after joining; ` +
      `sizes ${[...new Set(videos.map((v) => v.width))].join(',')} px wide`);
    assert.ok(decoded >= MIN_DECODED, `decodes ${decoded} of ${PUBLISHERS}`);
    // And keeps decoding them: frames gained by each video over 5 s (the
    // publishers send at most 5 frames/s, so about 25).
    const before = new Map(videos.map((v) => [v.trackId, v.framesDecoded]));
    await sleep(5_000);
    const gained = (await inboundVideo(o)).map((v) => v.framesDecoded - (before.get(v.trackId) ?? 0)).sort((a, b) => a - b);
    const flowing = gained.filter((g) => g >= 5).length;
    console.log(`frames decoded per remote video in 5 s: ${gained.join(',')}; ${flowing} of ${PUBLISHERS} gained 5 or more`);
    assert.ok(flowing >= MIN_DECODED, `${flowing} of ${PUBLISHERS} videos keep decoding: ${gained}`);

    assert.deepEqual(await remoteTileNames(o), names);
    assert.equal(await o.locator('#grid .tile:visible').count(), PUBLISHERS + 1, '16 tiles');
    assert.equal(await o.locator('.tile.local .name').textContent(), 'Observer (you)');
    assert.equal(await o.locator('#people-count').textContent(), String(PUBLISHERS + 1));
  });

  step('a re-offer in the full room (an ICE restart) stays far below the 64 KiB message limit', async () => {
    const o = people.Observer.page;
    const r = await o.evaluate(async () => {
      const sizes = [];
      const signaling = window.sfu.signaling;
      const send = signaling.send.bind(signaling);
      signaling.send = (msg) => {
        if (msg.type === 'offer') sizes.push({ bytes: JSON.stringify(msg).length, mlines: msg.sdp.match(/^m=/gm).length });
        return send(msg);
      };
      window.sfu.room.call.restartIce('test');
      for (let i = 0; i < 100 && !(sizes.length && window.sfu.pc.signalingState === 'stable'); i++) {
        await new Promise((res) => setTimeout(res, 100));
      }
      signaling.send = send;
      // The same m-lines offered with every codec the browser has.
      const pc = new RTCPeerConnection();
      for (const t of window.sfu.pc.getTransceivers()) pc.addTransceiver(t.receiver.track.kind, { direction: 'recvonly' });
      const unnarrowed = (await pc.createOffer()).sdp.length;
      pc.close();
      return { sizes, unnarrowed, state: window.sfu.pc.signalingState, error: document.getElementById('error-text').textContent };
    });
    console.log(`ICE restart offer in the 16-person room: ${JSON.stringify(r.sizes)}; ` +
      `the same m-lines with every codec: ${r.unnarrowed} bytes of SDP`);
    assert.equal(r.sizes.length, 1);
    assert.ok(r.sizes[0].bytes < 32 * 1024, `${r.sizes[0].bytes} bytes`);
    assert.equal(r.state, 'stable', 'answered');
    assert.equal(r.error, '');
  });

  step('screenshots at 1280x720 and 390x844: every tile inside the stage, names readable', async () => {
    const o = people.Observer.page;
    await sleep(1_000);
    for (const [viewport, file] of [[{ width: 1280, height: 720 }, 'room-16-1280x720.png'], [PHONE, 'room-16-390x844.png']]) {
      await o.setViewportSize(viewport);
      await sleep(500);
      const layout = await o.evaluate(() => {
        const grid = document.getElementById('grid').getBoundingClientRect();
        return [...document.querySelectorAll('#grid .tile')].map((t) => {
          const r = t.getBoundingClientRect();
          const name = t.querySelector('.name');
          return {
            inside: r.left >= grid.left - 1 && r.right <= grid.right + 1 && r.top >= grid.top - 1 && r.bottom <= grid.bottom + 1,
            width: r.width,
            nameFits: name.scrollWidth <= name.clientWidth + 1 || name.clientWidth >= 24,
          };
        });
      });
      await saveScreenshot(o, file);
      console.log(`${viewport.width}x${viewport.height}: ${layout.length} tiles, ${Math.round(layout[0].width)} px wide`);
      assert.ok(layout.every((t) => t.inside), `${viewport.width}x${viewport.height}: a tile outside the grid`);
      assert.ok(layout.every((t) => t.nameFits), 'names have room');
    }
    await o.setViewportSize({ width: 1280, height: 720 });
  });
});
