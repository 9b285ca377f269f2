// A participant stays while others join and leave, round after round: the
// SFU reuses the m-lines of ended tracks, so the staying participant's
// remote description stays small, and its tiles show the people there now,
// decoding their video.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { freeUdpPort, joinCall, launchBrowser, remoteTileNames, scenario, startServer, waitFor } from './lib.mjs';

const ROUNDS = 6;
const room = `churn-${Math.random().toString(36).slice(2, 10)}`;
let server;
let browser;
let stay;
const guests = [];

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  if (stay) console.error(`=== ${stay.name}\n${stay.logs}`);
}, { timeoutMs: 240_000 });
const { step } = run;

/** Each inbound video: its SSRC, the tile key the client shows it on, framesDecoded. */
function inbound(page) {
  return page.evaluate(async () => {
    const out = [];
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
      const owner = window.sfu.room?.roster?.ownerOf?.(s.trackIdentifier) ?? null;
      out.push({ ssrc: s.ssrc, owner, frames: s.framesDecoded ?? 0, mid: s.mid, packets: s.packetsReceived, framesReceived: s.framesReceived, keyFramesDecoded: s.keyFramesDecoded, pli: s.pliCount, nack: s.nackCount, dropped: s.framesDropped, lost: s.packetsLost, codec: s.codecId, trackIdentifier: s.trackIdentifier });
    });
    return out;
  });
}

/**
 * Frames decoded since `base` (SSRC -> framesDecoded) by tile key: a reused
 * m-line keeps its SSRC, so its counter goes on from the last publisher's.
 */
async function decodedByOwner(page, base) {
  const out = {};
  for (const { ssrc, owner, frames } of await inbound(page)) {
    if (owner) out[owner] = (out[owner] ?? 0) + frames - (base.get(ssrc) ?? 0);
  }
  return out;
}

function sections(page) {
  return page.evaluate(() => (window.sfu.pc.remoteDescription?.sdp ?? '').split('\nm=').length - 1);
}

describe('a room with churn', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step(`one stays while ${ROUNDS} rounds of two join and leave`, async () => {
    stay = await joinCall(browser, server.url, room, 'Stay');
    for (let round = 0; round < ROUNDS; round++) {
      const pair = [];
      for (const n of ['A', 'B']) pair.push(await joinCall(browser, server.url, room, `${n}${round}`));
      guests.push(...pair);
      const base = new Map((await inbound(stay.page)).map((v) => [v.ssrc, v.frames]));
      const { seen, detail } = await waitFor(
        async () => {
          const ids = await Promise.all(pair.map((g) => g.page.evaluate(() => window.sfu.peerId)));
          const seen = await decodedByOwner(stay.page, base);
          const names = await remoteTileNames(stay.page);
          const detail = await inbound(stay.page);
          return { detail, ok: ids.every((id) => id && (seen[id] ?? 0) > 15) && names.join() === pair.map((g) => g.name).sort().join(), seen, names };
        },
        { timeoutMs: 45_000, intervalMs: 1000, describe: (v) => `round ${round}: ${JSON.stringify(v)}` },
      );
      console.log(`round ${round}: decoded ${JSON.stringify(seen)}, m-sections ${await sections(stay.page)}`);
      console.log(`  ${JSON.stringify(detail.map(({ ssrc, mid, packets, lost, nack, pli, frames, dropped }) => ({ ssrc, mid, packets, lost, nack, pli, frames, dropped })))}`);
      if (round < ROUNDS - 1) {
        for (const g of pair) await g.context.close();
        await waitFor(async () => {
          const names = await remoteTileNames(stay.page);
          return { ok: names.length === 0, names };
        }, { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.names) });
      }
    }
    const count = await sections(stay.page);
    const bytes = await stay.page.evaluate(() => window.sfu.pc.remoteDescription.sdp.length);
    console.log(`final: ${count} m-sections, ${bytes} bytes of SDP`);
    // Its own two, and two per current remote publisher, with room for a few.
    assert.ok(count <= 2 + 2 * 2 + 2, `${count} m-sections after ${ROUNDS * 2} publishers`);
    assert.ok(bytes < 20_000, `${bytes} bytes of SDP`);
  });
});
