// End-to-end test of screen sharing with sound in headless Chromium through
// a real sfu-server. Headless Chromium with --use-fake-device-for-media-stream
// and --use-fake-ui-for-media-stream answers getDisplayMedia({ video, audio })
// with a fake screen (1280x720) and a fake audio track (a beep), so the share's
// audio path is tested for real: Alice shares; Bob gets a screen tile named
// "Alice (screen)" that decodes the share's video and plays its audio (the
// tile's media element holds the share's audio track, and Bob's inbound-rtp
// for it receives packets and plays samples out); the stop button stops both
// tracks, Alice sends nothing more on either, and Bob's screen tile goes
// away. A second share reuses the senders and reaches Bob again.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  dumpLogs,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';

const room = `share-${Math.random().toString(36).slice(2, 8)}`;

let server;
let browser;
const people = {};
let firstShare = null; // Bob's counters at the end of the first share

const run = scenario(() => dumpLogs(server, people), { timeoutMs: 60_000 });
const { step } = run;

/** What `page` receives of `peer`'s screen share: the tile, and inbound stats of the share's tracks. */
function screenAt(page, peer) {
  return page.evaluate(async (peerId) => {
    const tracks = window.sfu.participants.get(peerId)?.tracks ?? [];
    const video = tracks.find((t) => t.kind === 'video' && t.source === 'screen' && !t.muted);
    const audio = tracks.find((t) => t.kind === 'audio' && t.source === 'screen' && !t.muted);
    const tile = document.querySelector(`.tile.remote.screen[data-peer-id="${peerId}"]:not([hidden])`);
    const el = tile?.querySelector('video');
    const out = {
      tile: !!tile,
      name: tile?.querySelector('.name').textContent ?? null,
      playing: !!el && !el.paused && !el.muted,
      tileAudio: el?.srcObject?.getAudioTracks().map((t) => t.id) ?? [],
      videoId: video?.trackId ?? null,
      audioId: audio?.trackId ?? null,
      frames: 0,
      packets: 0,
      samples: 0,
    };
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.trackIdentifier === out.videoId) out.frames = s.framesDecoded ?? 0;
      if (s.trackIdentifier === out.audioId) {
        out.packets = s.packetsReceived ?? 0;
        out.samples = s.totalSamplesReceived ?? 0;
      }
    });
    return out;
  }, peer);
}

/**
 * What Alice's screen senders send: video frames (framesSent: without RTX,
 * the browser's bandwidth probes are padding packets on the video stream
 * itself, so packetsSent moves even with nothing to send) and audio
 * packets; and her share's track states.
 */
function sharerOut(page) {
  return page.evaluate(async () => {
    const call = window.sfu.room.call;
    const sent = async (entry) => {
      let n = 0;
      (await entry?.sender.getStats())?.forEach((s) => {
        if (s.type === 'outbound-rtp') n += (s.kind === 'video' ? s.framesSent : s.packetsSent) ?? 0;
      });
      return n;
    };
    const screen = window.sfu.room.screen;
    return {
      video: await sent(call.screen),
      audio: await sent(call.screenAudio),
      sharing: !!screen,
      tracks: screen ? [screen.track.readyState, screen.audio?.readyState] : null,
    };
  });
}

describe('screen share with audio', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('Alice and Bob join and see each other', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    await waitFor(
      async () => {
        const s = await Promise.all([people.Alice, people.Bob].map((p) => mediaStats(p.page)));
        return { ok: s.every((x) => Math.max(0, ...x.video) > 20), s };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.s) },
    );
  });

  step('Alice shares her screen with sound: Bob decodes the video and plays the audio with the screen tile', async () => {
    const alice = people.Alice.page;
    const aliceId = await alice.evaluate(() => window.sfu.peerId);
    await alice.click('#screen-toggle');
    await alice.locator('.tile.local.screen').waitFor({ timeout: 10_000 });
    const kinds = await alice.evaluate(() => window.sfu.room.screen.stream.getTracks().map((t) => t.kind).sort());
    assert.deepEqual(kinds, ['audio', 'video'], 'getDisplayMedia gave video and audio');
    const { s } = await waitFor(
      async () => {
        const s = await screenAt(people.Bob.page, aliceId);
        return { ok: s.tile && s.frames > 10 && s.packets > 50 && s.samples > 0 && s.tileAudio.includes(s.audioId), s };
      },
      { timeoutMs: 30_000, intervalMs: 500, describe: (v) => JSON.stringify(v.s) },
    );
    // A captured screen that hardly changes is encoded at a few frames per
    // second (content-adaptive), so "keeps decoding" allows up to 6 s for
    // 5 more frames; the audio is measured over the same span.
    const started = Date.now();
    const { s: later } = await waitFor(
      async () => {
        const now = await screenAt(people.Bob.page, aliceId);
        return { ok: now.frames > s.frames + 5 && Date.now() - started >= 2_000, s: now };
      },
      { timeoutMs: 6_000, intervalMs: 250, describe: (v) => `framesDecoded ${s.frames} -> ${v.s.frames}` },
    );
    const spanS = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`at Bob: screen video ${s.videoId} framesDecoded ${s.frames} -> ${later.frames} in ${spanS} s; ` +
      `screen audio ${s.audioId} packetsReceived ${s.packets} -> ${later.packets}, samples played ${s.samples} -> ${later.samples}`);
    assert.equal(later.name, 'Alice (screen)');
    assert.equal(later.playing, true, 'the screen tile plays, unmuted');
    assert.deepEqual(later.tileAudio, [later.audioId], "the tile plays the share's audio");
    assert.ok(later.frames > s.frames + 5, 'video keeps decoding');
    assert.ok(later.packets > s.packets + 50, 'audio keeps arriving (50 packets/s)');
    assert.ok(later.samples > s.samples, 'audio is played out');
    firstShare = later;
    // The camera tile plays the microphone, not the share's audio.
    const cameraAudio = await people.Bob.page.evaluate((id) => {
      const v = document.querySelector(`.tile.remote[data-peer-id="${id}"][data-source="camera"] video`);
      return v.srcObject.getAudioTracks().map((t) => t.id);
    }, aliceId);
    assert.equal(cameraAudio.length, 1);
    assert.notEqual(cameraAudio[0], later.audioId);
  });

  step('the stop button stops both: Alice sends nothing more, Bob\'s screen tile goes away', async () => {
    const alice = people.Alice.page;
    const aliceId = await alice.evaluate(() => window.sfu.peerId);
    const tracks = await alice.evaluate(() => {
      const s = window.sfu.room.screen;
      window.__stoppedShare = [s.track, s.audio];
      return s.stream.getTracks().length;
    });
    assert.equal(tracks, 2);
    await alice.click('#screen-toggle');
    await waitFor(
      async () => {
        const s = await screenAt(people.Bob.page, aliceId);
        return { ok: !s.tile && !s.videoId && !s.audioId, s };
      },
      { timeoutMs: 10_000, describe: (v) => JSON.stringify(v.s) },
    );
    const states = await alice.evaluate(() => window.__stoppedShare.map((t) => t.readyState));
    assert.deepEqual(states, ['ended', 'ended'], 'both captured tracks stopped');
    await sleep(500);
    const first = await sharerOut(alice);
    await sleep(2_000);
    const second = await sharerOut(alice);
    console.log(`after stop: Alice's screen senders: video framesSent ${first.video} -> ${second.video}, audio packetsSent ${first.audio} -> ${second.audio}`);
    assert.equal(second.sharing, false);
    assert.equal(second.video, first.video, 'no screen video sent');
    assert.equal(second.audio, first.audio, 'no screen audio sent');
    assert.equal(await alice.locator('.tile.local.screen').count(), 0);
  });

  step('a second share reuses the senders and reaches Bob with its sound', async () => {
    const alice = people.Alice.page;
    const aliceId = await alice.evaluate(() => window.sfu.peerId);
    const offersBefore = await alice.evaluate(() => window.sfu.room.call.stats.offersSent);
    await alice.click('#screen-toggle');
    const { s } = await waitFor(
      async () => {
        const s = await screenAt(people.Bob.page, aliceId);
        const ok = s.tile && s.frames > firstShare.frames + 10 && s.packets > firstShare.packets + 50 && s.tileAudio.includes(s.audioId);
        return { ok, s };
      },
      { timeoutMs: 20_000, intervalMs: 500, describe: (v) => JSON.stringify(v.s) },
    );
    console.log(`second share at Bob: framesDecoded ${firstShare.frames} -> ${s.frames}, audio packetsReceived ${firstShare.packets} -> ${s.packets}`);
    assert.equal(s.videoId, firstShare.videoId, 'the same track');
    assert.equal(s.audioId, firstShare.audioId, 'the same audio track');
    assert.equal(await alice.evaluate(() => window.sfu.room.call.stats.offersSent), offersBefore, 'no renegotiation');
    await alice.click('#screen-toggle');
  });
});
