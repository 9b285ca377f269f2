// WHIP and WHEP with Chromium's own RTCPeerConnection as the client (plain
// page script, not our web client): one page publishes its fake camera and
// microphone with POST /whip/room2, another plays POST /whep/room2 on two
// recvonly transceivers and decodes the video. Each then restarts ICE with
// a PATCH (RFC 9725 section 4.3.2: new a=ice-ufrag/a=ice-pwd, If-Match: *),
// applies the server's credentials from the 200 answer, and the video goes
// on with the same sessions. DELETE ends both.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  launchBrowser,
  metricValue,
  scenario,
  startServer,
  waitFor,
} from './lib.mjs';

const ADMIN = 'whip-browser-admin';
const ROOM = 'room2';

let server;
let browser;
const pages = {};

async function mint(identity, grants) {
  const res = await fetch(`${server.url}/api/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ room: ROOM, identity, grants }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

async function participants() {
  const res = await fetch(`${server.url}/api/rooms`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  const room = (await res.json()).rooms.find((r) => r.name === ROOM);
  return room?.participants ?? [];
}

/** Waits until `page`'s transport runs on the ICE ufrag `ufrag`. */
async function onUfrag(page, ufrag) {
  await waitFor(async () => {
    const s = await page.evaluate(() => window.stats());
    return { ok: s.ufrag === ufrag, ...s };
  }, { timeoutMs: 10_000, describe: (v) => `transport ufrag ${v.ufrag}, wanted ${ufrag}; state ${v.state}` });
}

/** A page of this server's origin with the WHIP/WHEP client functions. */
async function openClient(name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${name}] ${m.type()}: ${m.text()}`));
  await page.goto(`${server.url}/healthz`);
  await page.evaluate(() => {
    const bearer = (token) => ({ Authorization: `Bearer ${token}` });
    /** POSTs the offer of `pc`; keeps the session in `window.session`. */
    window.start = async (pc, url, token) => {
      await pc.setLocalDescription(await pc.createOffer());
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', ...bearer(token) },
        body: pc.localDescription.sdp,
      });
      const answer = await res.text();
      if (res.status !== 201) throw new Error(`POST ${res.status}: ${answer}`);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      window.session = { pc, token, answer, location: new URL(res.headers.get('Location'), url).href };
      return res.status;
    };
    window.publish = async (url, token) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      const pc = new RTCPeerConnection();
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
      return window.start(pc, url, token);
    };
    window.play = async (url, token) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      return window.start(pc, url, token);
    };
    /** An ICE restart over PATCH; returns the status and the local ufrags. */
    window.restartIce = async () => {
      const s = window.session;
      const before = /a=ice-ufrag:(\S+)/.exec(s.pc.localDescription.sdp)[1];
      s.pc.restartIce();
      const offer = await s.pc.createOffer();
      await s.pc.setLocalDescription(offer);
      const ufrag = /a=ice-ufrag:(\S+)/.exec(offer.sdp)[1];
      const pwd = /a=ice-pwd:(\S+)/.exec(offer.sdp)[1];
      const res = await fetch(s.location, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*', ...bearer(s.token) },
        body: `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`,
      });
      const fragment = await res.text();
      if (res.status !== 200) return { status: res.status, fragment };
      let answer = s.answer;
      for (const attr of ['ice-ufrag', 'ice-pwd']) {
        const value = new RegExp(`a=${attr}:(\\S+)`).exec(fragment)[1];
        answer = answer.replace(new RegExp(`a=${attr}:\\S+`, 'g'), `a=${attr}:${value}`);
      }
      await s.pc.setRemoteDescription({ type: 'answer', sdp: answer });
      return { status: res.status, before, after: ufrag, etag: res.headers.get('ETag') };
    };
    window.stats = async () => {
      const out = { frames: 0, audioPackets: 0, state: window.session?.pc.connectionState, ufrag: null };
      if (!window.session) return out;
      (await window.session.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') out.frames += s.framesDecoded ?? 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived ?? 0;
        if (s.type === 'transport') out.ufrag = s.iceLocalUsernameFragment ?? null;
      });
      return out;
    };
    window.end = async () => {
      const s = window.session;
      const res = await fetch(s.location, { method: 'DELETE', headers: bearer(s.token) });
      s.pc.close();
      return res.status;
    };
  });
  pages[name] = { name, page, logs };
  return page;
}

async function framesBeyond(page, more, timeoutMs = 15_000) {
  const base = (await page.evaluate(() => window.stats())).frames;
  return waitFor(async () => {
    const s = await page.evaluate(() => window.stats());
    return { ok: s.frames > base + more, ...s };
  }, { timeoutMs, describe: (v) => `framesDecoded ${base} -> ${v.frames}, state ${v.state}` });
}

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  for (const p of Object.values(pages)) console.error(`=== ${p.name} ===\n${p.logs.join('\n')}`);
}, { timeoutMs: 45_000 });
const { step } = run;

describe('WHIP and WHEP with Chromium as the client, and ICE restarts over PATCH', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort(), extraArgs: ['--admin-token', ADMIN] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  step('a page publishes over WHIP and another plays over WHEP', async () => {
    const publisher = await openClient('publisher');
    const token = await mint('chrome-publisher', { canPublish: true, roomCreate: true });
    assert.equal(await publisher.evaluate(([u, t]) => window.publish(u, t), [`${server.url}/whip/${ROOM}`, token]), 201);
    const player = await openClient('player');
    const viewer = await mint('chrome-player', { canSubscribe: true });
    assert.equal(await player.evaluate(([u, t]) => window.play(u, t), [`${server.url}/whep/${ROOM}`, viewer]), 201);
    const s = await framesBeyond(player, 50);
    console.log(`WHEP in Chromium: framesDecoded ${s.frames}, audio packets ${s.audioPackets}`);
    assert.ok(s.audioPackets > 50, `audio packets ${s.audioPackets}`);
  });

  step('the publisher restarts ICE with a PATCH: 200, and the video goes on', async () => {
    const before = (await participants()).map((p) => p.peerId).sort();
    const r = await pages.publisher.page.evaluate(() => window.restartIce());
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.notEqual(r.before, r.after, 'new client credentials');
    assert.match(r.etag ?? '', /^"[0-9a-f]+"$/);
    // The transport now runs on the new credentials: the server took them.
    await onUfrag(pages.publisher.page, r.after);
    await framesBeyond(pages.player.page, 40);
    assert.deepEqual((await participants()).map((p) => p.peerId).sort(), before, 'the same sessions');
  });

  step('the player restarts ICE with a PATCH: 200, and keeps decoding', async () => {
    const r = await pages.player.page.evaluate(() => window.restartIce());
    assert.equal(r.status, 200, JSON.stringify(r));
    await onUfrag(pages.player.page, r.after);
    await framesBeyond(pages.player.page, 40);
  });

  step('DELETE ends both sessions', async () => {
    assert.equal(await pages.player.page.evaluate(() => window.end()), 200);
    assert.equal(await pages.publisher.page.evaluate(() => window.end()), 200);
    await waitFor(async () => ({ ok: (await participants()).length === 0 }), {
      timeoutMs: 3_000,
      describe: () => 'sessions are still in the room',
    });
    const m = await fetchMetrics(server.url);
    assert.equal(metricValue(m, 'sfu_whip_sessions', 'endpoint="whip"'), 0);
    assert.equal(metricValue(m, 'sfu_whip_sessions', 'endpoint="whep"'), 0);
  });
});
