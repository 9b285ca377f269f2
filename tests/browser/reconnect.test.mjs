// End-to-end test of a 1:1 call surviving signaling outages, in headless
// Chromium through a real sfu-server. Alice's page goes through a TCP proxy
// the test can cut. The client keeps the call on screen saying
// "Reconnecting…" and reconnects:
// - a socket lost without a close (the proxy cuts it): the server parked the
//   session, the client resumes it (same peer, same media connection, and a
//   new offer for whatever was lost), and Bob never sees Alice leave;
// - a socket closed (the server removed the participant): the server keeps
//   the call and both call IDs for its rejoin grace period; the client
//   registers the same call ID and rejoins the call's room on a new media
//   connection.
// Checked with figures: the call view never goes away on either side, the
// remote video's framesDecoded keeps growing afterwards, a muted microphone
// stays muted across a rejoin, a party that never comes back ends the call
// for the other after the grace period, and a closed tab ends it within
// 10 s. Last, the client's ICE restart: `restartIce` sends a new offer with
// fresh ICE credentials.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  dumpLogs,
  freeUdpPort,
  inboundVideo,
  launchBrowser,
  mediaStats,
  openHome,
  outboundStats,
  recordMessages,
  remoteTileNames,
  saveScreenshot,
  scenario,
  sleep,
  startServer,
  startTcpProxy,
  sum,
  waitFor,
  waitForCallId,
} from './lib.mjs';

/** The server's grace period (signaling/src/calls.rs, REJOIN_GRACE). */
const GRACE_MS = 5_000;

let server;
let proxy; // Alice's way to the server
let browser;
const people = {}; // name -> { name, context, page, logs }

const run = scenario(async () => {
  for (const p of Object.values(people)) {
    const s = await mediaStats(p.page).catch((e) => e.message);
    const states = await p.page.evaluate(() => JSON.stringify(window.__callStates ?? [])).catch(() => '');
    console.error(`=== ${p.name}: ${JSON.stringify(s)} call states ${states}`);
  }
  dumpLogs(server, people);
}, { timeoutMs: 60_000 });
const { step } = run;

const visible = (p, selector, timeout = 5_000) => p.page.locator(selector).waitFor({ state: 'visible', timeout });

/**
 * Records on the page every text of the "Reconnecting…" banner and whether
 * the home screen ever showed (it must not, during an outage).
 */
async function watch(p) {
  await p.page.evaluate(() => {
    window.__callStates = [];
    window.__sawHome = false;
    const state = document.getElementById('call-state');
    const home = document.getElementById('home-view');
    const note = () => {
      if (!state.hidden) window.__callStates.push({ text: state.textContent, kind: state.dataset.kind });
      if (!home.hidden) window.__sawHome = true;
    };
    const observer = new MutationObserver(note);
    observer.observe(state, { attributes: true, childList: true, characterData: true, subtree: true });
    observer.observe(home, { attributes: true });
  });
}

const watched = (p) => p.page.evaluate(() => ({ states: window.__callStates, sawHome: window.__sawHome }));

/** The greatest framesDecoded among `p`'s inbound videos whose track id is not in `old`. */
/**
 * The most frames one inbound video decoded beyond `base` (track id ->
 * framesDecoded): the SFU reuses an m-line whose track ended for the next
 * track of its kind, so a new track may arrive on an existing receiver,
 * whose count goes on.
 */
async function newFrames(p, base = new Map()) {
  const videos = await inboundVideo(p.page);
  return Math.max(0, ...videos.map((v) => v.framesDecoded - (base.get(v.trackId) ?? 0)));
}

/** `caller` calls `callee`, who answers; both decode > 50 frames. */
async function connectCall(caller, callee) {
  await caller.page.fill('#callee-id', await waitForCallId(callee.page));
  await caller.page.click('#call-button');
  await visible(callee, '#incoming');
  await callee.page.click('#answer');
  await waitFor(
    async () => {
      const frames = await Promise.all([caller, callee].map((p) => newFrames(p)));
      return { ok: frames.every((f) => f > 50), frames };
    },
    { timeoutMs: 20_000, describe: (v) => `framesDecoded ${v.frames}` },
  );
}

/**
 * Drops `who`'s signaling socket and waits until both sides decode each
 * other's video again on new tracks; returns the figures.
 */
async function dropAndRecover(who, other) {
  await Promise.all([watch(who), watch(other)]);
  const oldAtOther = new Map((await inboundVideo(other.page)).map((v) => [v.trackId, v.framesDecoded]));
  const oldPeer = await who.page.evaluate(() => window.sfu.peerId);
  const dropped = Date.now();
  await who.page.evaluate(() => window.sfu.signaling.drop());
  // `who` decodes on a new connection (a new peer id); `other` keeps its
  // connection and decodes `who`'s new tracks.
  const frames = async () => {
    const peer = await who.page.evaluate(() => window.sfu.peerId);
    const mine = peer && peer !== oldPeer ? await newFrames(who) : 0;
    return [mine, await newFrames(other, oldAtOther)];
  };
  const first = await waitFor(
    async () => {
      const f = await frames();
      return { ok: f.every((n) => n > 10), f };
    },
    { timeoutMs: 20_000, describe: (v) => `new framesDecoded ${v.f}` },
  );
  const recoveredMs = Date.now() - dropped;
  // The video keeps coming: more frames two seconds later.
  await sleep(2_000);
  const later = await frames();
  const newPeer = await who.page.evaluate(() => window.sfu.peerId);
  return { recoveredMs, frames: first.f, later, oldPeer, newPeer };
}

describe('a 1:1 call survives a signaling outage', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    proxy = await startTcpProxy(Number(new URL(server.url).port));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await proxy?.close();
    await server?.stop();
  });

  step('Alice calls Bob; both decode video', async () => {
    people.Alice = await openHome(browser, proxy.url, 'Alice');
    people.Bob = await openHome(browser, server.url, 'Bob');
    await connectCall(people.Alice, people.Bob);
  });

  step("Alice's connection is cut without a close: she resumes her session, Bob sees no leave", async () => {
    const { Alice, Bob } = people;
    await Promise.all([watch(Alice), watch(Bob), recordMessages(Bob.page)]);
    await recordMessages(Alice.page);
    const before = await Alice.page.evaluate(() => {
      window.__pcBefore = window.sfu.pc;
      return { peer: window.sfu.peerId, offers: window.sfu.room.call.stats.offersSent };
    });
    const atBob = await inboundVideo(Bob.page);
    const atAlice = await inboundVideo(Alice.page);
    const cutAt = Date.now();
    const cut = proxy.cut();
    await Alice.page.waitForFunction(() => window.__messages.some((m) => m.type === 'resumed'), null, { timeout: 10_000 });
    const resumedMs = Date.now() - cutAt;
    // A new offer supersedes whatever was lost with the old socket.
    await Alice.page.waitForFunction((n) => window.sfu.room.call.stats.offersSent > n, before.offers, { timeout: 5_000 });
    await sleep(3_000);
    const after = await Alice.page.evaluate(() => ({ peer: window.sfu.peerId, samePc: window.sfu.pc === window.__pcBefore }));
    const gained = async (page, old) => {
      const now = await inboundVideo(page);
      return Math.min(...old.map((o) => (now.find((v) => v.trackId === o.trackId)?.framesDecoded ?? 0) - o.framesDecoded));
    };
    const [gainedBob, gainedAlice] = [await gained(Bob.page, atBob), await gained(Alice.page, atAlice)];
    console.log(`cut ${cut} connection(s): Alice resumed after ${resumedMs} ms as ${after.peer}; ` +
      `the same video tracks decoded ${gainedAlice} more frames at Alice and ${gainedBob} at Bob within ${Date.now() - cutAt} ms`);
    assert.equal(after.peer, before.peer, 'the same peer');
    assert.equal(after.samePc, true, 'the same media connection');
    assert.ok(gainedAlice > 20 && gainedBob > 20, 'video keeps flowing on the same tracks');
    const bobSaw = await Bob.page.evaluate(() => window.__messages.map((m) => m.type));
    assert.ok(!bobSaw.includes('participantLeft') && !bobSaw.includes('callEnded'), `Bob saw ${bobSaw}`);
    for (const p of [Alice, Bob]) assert.equal((await watched(p)).sawHome, false, `${p.name} stayed in the call view`);
    const states = (await watched(Alice)).states.map((s) => s.text);
    assert.ok(states.includes('Reconnecting…'), `Alice was told: ${states}`);
    assert.equal(await Alice.page.locator('#call-state').isHidden(), true);
  });

  step("Alice's socket drops: both stay in the call, video flows again on new connections", async () => {
    const { Alice, Bob } = people;
    const aliceId = await Alice.page.evaluate(() => window.sfu.callId);
    const r = await dropAndRecover(Alice, Bob);
    console.log(`Alice's socket dropped: video back on both sides after ${r.recoveredMs} ms; ` +
      `new framesDecoded ${r.frames} -> ${r.later} 2 s later; peer ${r.oldPeer} -> ${r.newPeer}`);
    assert.ok(r.later[0] > r.frames[0] + 10 && r.later[1] > r.frames[1] + 10, `frames grow: ${r.frames} -> ${r.later}`);
    assert.notEqual(r.newPeer, r.oldPeer, 'a new media connection');
    assert.ok(r.recoveredMs < 10_000, `recovered in ${r.recoveredMs} ms`);
    for (const p of [Alice, Bob]) {
      const w = await watched(p);
      assert.equal(w.sawHome, false, `${p.name} never left the call view`);
      assert.equal(await p.page.locator('#call-view').isVisible(), true);
      assert.equal(await p.page.locator('#call-state').isHidden(), true, `${p.name}: no banner once back`);
    }
    const atAlice = (await watched(Alice)).states.map((s) => s.text);
    const atBob = (await watched(Bob)).states.map((s) => s.text);
    assert.ok(atAlice.includes('Reconnecting…'), `Alice was told: ${atAlice}`);
    assert.ok(atBob.some((t) => t.startsWith("Alice's connection dropped")), `Bob was told: ${atBob}`);
    assert.equal(await Alice.page.evaluate(() => window.sfu.callId), aliceId, 'same call ID');
    assert.deepEqual(await remoteTileNames(Alice.page), ['Bob']);
    assert.deepEqual(await remoteTileNames(Bob.page), ['Alice']);
  });

  step("Bob mutes, then his socket drops: back in the call, still muted", async () => {
    const { Alice, Bob } = people;
    await Bob.page.click('#mic-toggle');
    await Alice.page.locator('.tile.remote .mic-off').waitFor({ state: 'visible', timeout: 5_000 });
    const r = await dropAndRecover(Bob, Alice);
    console.log(`Bob's socket dropped: video back after ${r.recoveredMs} ms; new framesDecoded ${r.frames} -> ${r.later}`);
    assert.ok(r.later[0] > r.frames[0] + 10 && r.later[1] > r.frames[1] + 10, `frames grow: ${r.frames} -> ${r.later}`);
    assert.equal((await watched(Bob)).sawHome, false);
    assert.equal((await watched(Alice)).sawHome, false);
    await Alice.page.locator('.tile.remote .mic-off').waitFor({ state: 'visible', timeout: 5_000 });
    assert.equal(await Bob.page.locator('#mic-toggle').getAttribute('aria-pressed'), 'true');
    const first = await outboundStats(Bob.page);
    await sleep(1_500);
    const second = await outboundStats(Bob.page);
    assert.deepEqual(second.audio, first.audio, 'no audio sent while muted');
    assert.ok(sum(second.video) > sum(first.video), 'video sent');
    await Bob.page.click('#mic-toggle');
    await Alice.page.locator('.tile.remote .mic-off').waitFor({ state: 'hidden', timeout: 5_000 });
    await saveScreenshot(Alice.page, 'reconnect-call-1280x720.png');
  });

  step('a party that never comes back: the call ends for the other after the grace period', async () => {
    const { Alice, Bob } = people;
    await watch(Bob);
    const gone = Date.now();
    // Alice's socket closes and she stops reconnecting, like a tab that
    // died without hanging up.
    await Alice.page.evaluate(() => {
      window.sfu.signaling.stopped = true;
      window.sfu.signaling.ws.close(4000, 'gone');
    });
    await Bob.page.locator('#call-state', { hasText: "Alice's connection dropped" }).waitFor({ timeout: 3_000 });
    await visible(Bob, '#home-view', 10_000);
    const waited = Date.now() - gone;
    console.log(`call ended for Bob ${waited} ms after Alice's socket closed (grace ${GRACE_MS} ms)`);
    await Bob.page.locator('#notice-text', { hasText: "Alice's connection was lost" }).waitFor({ timeout: 2_000 });
    assert.ok(waited >= GRACE_MS - 500 && waited < 10_000, `after ${waited} ms`);
    await Alice.context.close();
    delete people.Alice;
  });

  step('a closed tab ends the call for the other side within 10 s', async () => {
    people.Carol = await openHome(browser, server.url, 'Carol');
    const { Bob, Carol } = people;
    await connectCall(Carol, Bob);
    const closed = Date.now();
    await Carol.context.close();
    delete people.Carol;
    await visible(Bob, '#home-view', 10_000);
    const waited = Date.now() - closed;
    const notice = await Bob.page.locator('#notice-text').textContent();
    console.log(`closed tab: the call ended for Bob after ${waited} ms ("${notice}")`);
    assert.match(notice, /Carol hung up\.|Carol's connection was lost/);
    assert.ok(waited < 10_000, `after ${waited} ms`);
  });

  step('ICE restart: the client sends a new offer with fresh ICE credentials', async () => {
    const { Bob } = people;
    await Bob.page.fill('#room', `ice-${Math.random().toString(36).slice(2, 8)}`);
    await Bob.page.click('#join');
    await Bob.page.waitForFunction(() => window.sfu.pc?.connectionState === 'connected', null, { timeout: 15_000 });
    const result = await Bob.page.evaluate(async () => {
      const ufrag = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
      const before = ufrag(window.sfu.pc.localDescription.sdp);
      const sent = [];
      const signaling = window.sfu.signaling;
      const send = signaling.send.bind(signaling);
      signaling.send = (msg) => {
        if (msg.type === 'offer') sent.push(ufrag(msg.sdp));
        return send(msg);
      };
      window.sfu.room.call.restartIce('test');
      for (let i = 0; i < 50 && sent.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      signaling.send = send;
      return { before, sent, restarts: window.sfu.room.call.stats.iceRestarts };
    });
    assert.equal(result.restarts, 1);
    assert.equal(result.sent.length, 1, 'one offer');
    assert.ok(result.sent[0] && result.sent[0] !== result.before, 'fresh ICE credentials');
    // The server answers it, and media goes on.
    await Bob.page.waitForFunction(() => window.sfu.pc.signalingState === 'stable', null, { timeout: 5_000 });
    const sentBefore = await outboundStats(Bob.page);
    await sleep(2_000);
    const after = await Bob.page.evaluate(() => ({ ice: window.sfu.pc.iceConnectionState, error: document.getElementById('error-text').textContent }));
    const sentAfter = await outboundStats(Bob.page);
    console.log(`ICE restart: ufrag ${result.before} -> offer with ${result.sent[0]}; answered; ICE ${after.ice}; ` +
      `video packetsSent ${sentBefore.video} -> ${sentAfter.video} in 2 s`);
    assert.equal(after.ice, 'connected');
    assert.equal(after.error, '', 'no error shown');
    assert.ok(sum(sentAfter.video) > sum(sentBefore.video) + 20);
  });
});
