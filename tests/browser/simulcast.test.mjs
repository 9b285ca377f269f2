// Simulcast end to end with real Chromium (the web client's default: see
// SIMULCAST_BY_DEFAULT in web-client/call.js). A publisher (Chromium's fake camera at 1280x720)
// sends three encodings (q 320x180, h 640x360, f 1280x720), and two
// receive-only subscribers get the layer their tile needs, as their pages
// report it (`videoPreference`):
//   - A shows the publisher in a large tile (a 1280x720 viewport at device
//     pixel ratio 2: about 980x550 device pixels) and gets f, 1280 wide; B
//     in a small one (a 320x240 viewport) and gets q, 320 wide;
//   - dynacast: with both tiles small nobody needs f, and the publisher
//     stops sending it within 10 s (its rid f encoding paused and the
//     outbound-rtp's packetsSent stalls, or framesSent where Chromium's
//     padding probes still use that SSRC); a large tile again resumes it
//     (frames encoded again, and A back at 1280);
//   - B, in a larger tile (a 1920x1080 viewport: about 810x455, layer h),
//     gets its downlink limited to 250 kbit/s (tc tbf on the veth into B's
//     own network namespace, as in bandwidth.test.mjs): within 5 s of the
//     SFU's estimate for B falling below what h needs, B is on q (320 wide)
//     or shows the "video paused" notice, its decoder not frozen; A stays at
//     1280 meanwhile;
//   - the limit lifted, B climbs back to h or f;
//   - a second publisher joins, which renegotiates the first one's
//     connection: the first camera still reaches A, though Chromium no
//     longer names the rids of its SSRCs (sfu/src/core/simulcast_sdp.rs).
// The subscribers publish nothing, so until that last step the publisher's
// connection is negotiated once. The figures (times, layers, estimates,
// packet counts, /metrics lines) are printed for the record, and what B
// sees while limited goes to test-artifacts/simulcast-b-limited.png.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  inLoopbackOnlyNamespace,
  inboundVideo,
  launchBrowser,
  openHome,
  saveScreenshot,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';
import { Topology } from './netns.mjs';

const TOKEN = 'simulcast-test-token';
const SFU_IP = '198.51.100.1';
const B_IP = '198.51.100.2';
/** A's viewport (at device pixel ratio 2) and B's larger one (at 1). */
const LARGE = { width: 1280, height: 720 };
const B_LARGE = { width: 1920, height: 1080 };
const SMALL = { width: 320, height: 240 };
const LIMIT = '250kbit';
/** What layer h needs by the SFU's reckoning: 500 kbit/s nominal, 15% headroom. */
const H_NEEDS_BPS = 575_000;

const skip = !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)';

// B's host, linked to this namespace (the SFU's side).
const topo = new Topology('sc');
let hostIf;

function setUpLink() {
  topo.host('b');
  [hostIf] = topo.link(null, `${SFU_IP}/24`, 'b', `${B_IP}/24`);
}

/** Everything the SFU sends B leaves through this token bucket. */
function limitB() {
  topo.exec(null, 'tc', 'qdisc', 'add', 'dev', hostIf, 'root', 'tbf', 'rate', LIMIT, 'burst', '4kb', 'latency', '400ms');
}

function unlimitB() {
  topo.exec(null, 'tc', 'qdisc', 'del', 'dev', hostIf, 'root');
}


let server;
let browser; // the publisher's and A's
let bBrowser; // B's, in its own namespace
const people = {}; // Pub, A, B
const room = `simulcast-${Math.random().toString(36).slice(2, 8)}`;
const figures = {};

/** The admin API's view of `name`: bandwidth estimate and received videos. */
async function admin(name) {
  const res = await fetch(`${server.url}/api/rooms`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body = await res.json();
  for (const r of body.rooms) {
    for (const p of r.participants) {
      if (p.name === name) return { estimate: p.bandwidthEstimateBps, video: p.video ?? [], bitrateIn: p.bitrateInBps };
    }
  }
  return { estimate: null, video: [], bitrateIn: null };
}

/** What `name` publishes, by the admin API: [{trackId, kind}]. */
async function adminTracks(name) {
  const res = await fetch(`${server.url}/api/rooms`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body = await res.json();
  for (const r of body.rooms) {
    for (const p of r.participants) if (p.name === name) return p.tracks ?? [];
  }
  return [];
}

/**
 * The publisher's outbound video per rid: packetsSent, framesSent,
 * frameWidth, whether the encoding is active, and why its quality is
 * limited. packetsSent alone can mislead: without RTX, Chromium's
 * bandwidth probes are padding packets on a video SSRC, even a paused one.
 */
function outboundByRid(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out[s.rid ?? ''] = {
          packetsSent: s.packetsSent ?? 0, framesSent: s.framesSent ?? 0, width: s.frameWidth ?? 0, active: s.active, limit: s.qualityLimitationReason,
        };
      }
    });
    return out;
  });
}

/** The publisher browser's own estimate of its uplink (availableOutgoingBitrate), bit/s. */
function publisherEstimate(page) {
  return page.evaluate(async () => {
    let bps = null;
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) bps = Math.round(s.availableOutgoingBitrate);
    });
    return bps;
  });
}

/** The one received video of `p` (the publisher's camera), with whether its tile says it is paused. */
async function received(p) {
  const [video] = await inboundVideo(p.page);
  const paused = await p.page.locator('.tile.remote .paused-notice:visible').count();
  return { width: video?.width ?? 0, framesDecoded: video?.framesDecoded ?? 0, paused: paused > 0 };
}

/** Opens the client as `name`, receive-only (no camera, no microphone) unless `publish`, and joins. */
async function join(b, name, { viewport, publish = false, dpr = 1 }) {
  const p = await openHome(b, server.url, name, {
    viewport,
    contextOptions: { deviceScaleFactor: dpr },
    path: `/?room=${room}`,
    init: publish
      ? null
      : (context) =>
          context.addInitScript(() => {
            navigator.mediaDevices.getUserMedia = async () => {
              throw new DOMException('no devices in this test', 'NotFoundError');
            };
          }),
  });
  await p.page.click('#join');
  people[name] = p;
  return p;
}

function metricLines(text) {
  return text
    .split('\n')
    .filter((l) => /^sfu_(video_layer_subscriptions|layer_switches_total|dynacast_changes_total|video_paused_subscriptions)/.test(l))
    .join('; ');
}

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  for (const p of Object.values(people)) {
    const state = await p.page
      .evaluate(() => ({ pc: window.sfu.pc?.connectionState, error: document.getElementById('error-text').textContent, prefs: window.sfu.room?.prefs?.snapshot() }))
      .catch((e) => e.message);
    console.error(`=== ${p.name}: ${JSON.stringify(state)} admin ${JSON.stringify(await admin(p.name).catch((e) => e.message))}\n${p.logs}`);
  }
  if (people.Pub) {
    const out = await outboundByRid(people.Pub.page).catch((e) => e.message);
    console.error(`=== Pub outbound: ${JSON.stringify(out)}; its own estimate ${await publisherEstimate(people.Pub.page).catch((e) => e.message)} bit/s`);
  }
}, { timeoutMs: 60_000 });
const { step } = run;

describe('simulcast: layers by tile size and bandwidth, and dynacast', { skip }, () => {
  before(async () => {
    setUpLink();
    const wrapper = await topo.wrapper('b', '/usr/bin/chromium');
    server = await startServer({ udpPort: await freeUdpPort(), host: SFU_IP, extraArgs: ['--admin-token', TOKEN] });
    // The camera needs a secure context; this plain-HTTP origin is not
    // localhost, so it is declared secure for the test.
    const secure = [`--unsafely-treat-insecure-origin-as-secure=${server.url}`];
    browser = await launchBrowser(undefined, secure);
    bBrowser = await launchBrowser(wrapper, secure);
  });

  after(async () => {
    for (const p of Object.values(people)) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await bBrowser?.close().catch(() => {});
    await server?.stop();
    await topo.teardown();
    console.log(`simulcast figures: ${JSON.stringify(figures)}`);
  });

  step('the publisher sends three layers; A (large tile) gets 1280 wide, B (small tile) 320 wide', async () => {
    // The publisher is there first, as someone usually is: its browser's
    // bandwidth estimate gets going before the others load their pages
    // (on 2 busy cores, Chromium's first probe sometimes fails when three
    // pages start at once, and its estimate then climbs at about 8% a
    // second, holding f back for 20 s or more).
    const pub = await join(browser, 'Pub', { viewport: { width: 640, height: 360 }, publish: true });
    await pub.page.waitForFunction(() => window.sfu.pc?.connectionState === 'connected', null, { timeout: 15_000 });
    await sleep(4000);
    const start = Date.now();
    await join(browser, 'A', { viewport: LARGE, dpr: 2 });
    await join(bBrowser, 'B', { viewport: SMALL });
    // The SFU's log names each layer after the first (which made the track).
    const layers = await waitFor(
      async () => {
        const video = (await adminTracks('Pub')).find((t) => t.kind === 'video');
        const re = new RegExp(`simulcast layer peer=\\S+ track=${video?.trackId} rid="(\\w+)"`, 'g');
        const rids = video ? [...server.output.toString().matchAll(re)].map((m) => m[1]) : [];
        return { ok: new Set(rids).size === 2, rids, video };
      },
      { timeoutMs: 15_000, describe: (v) => `layers logged: ${v.rids}` },
    );
    const a = await waitFor(
      async () => {
        const r = await received(people.A);
        return { ok: r.width === 1280 && r.framesDecoded > 0, r };
      },
      { timeoutMs: 15_000, intervalMs: 250, describe: (v) => `A receives ${JSON.stringify(v.r)}` },
    );
    figures.aAt1280Ms = Date.now() - start;
    const b = await waitFor(
      async () => {
        const r = await received(people.B);
        return { ok: r.width === 320 && r.framesDecoded > 0, r };
      },
      { timeoutMs: 10_000, intervalMs: 250, describe: (v) => `B receives ${JSON.stringify(v.r)}` },
    );
    figures.bAt320Ms = Date.now() - start;
    const out = await outboundByRid(people.Pub.page);
    figures.publisherEstimate = await publisherEstimate(people.Pub.page);
    const api = { A: await admin('A'), B: await admin('B') };
    console.log(`${layers.video.trackId}: layers logged after the first ${layers.rids.join(',')}; A ${JSON.stringify(a.r)} after ${figures.aAt1280Ms} ms, ` +
      `B ${JSON.stringify(b.r)} after ${figures.bAt320Ms} ms; publisher ${JSON.stringify(out)}; admin ${JSON.stringify(api)}`);
    assert.deepEqual(Object.keys(out).sort(), ['f', 'h', 'q'], 'three outbound encodings');
    assert.deepEqual(['q', 'h', 'f'].map((r) => out[r].packetsSent > 0), [true, true, true], 'each sent');
    assert.equal(api.A.video[0]?.layer, 'f');
    assert.equal(api.B.video[0]?.layer, 'q');
  });

  step('dynacast: with both tiles small the publisher stops sending f within 10 s, and resumes for a large tile', async () => {
    const pub = people.Pub.page;
    const dynacastBefore = metricLines(await fetchMetrics(server.url));
    await people.A.page.setViewportSize(SMALL);
    const smallAt = Date.now();
    // f has stopped when its encoding is paused and its packetsSent (or,
    // should padding keep that moving, its framesSent) holds still for 1.5 s.
    let last = null;
    const stalled = await waitFor(
      async () => {
        const f = (await outboundByRid(pub)).f ?? {};
        const now = Date.now();
        if (!last || f.packetsSent !== last.packets) last = { ...last, packets: f.packetsSent, packetsSince: now };
        if (f.framesSent !== last.frames) last = { ...last, frames: f.framesSent, framesSince: now };
        const held = now - Math.min(last.packetsSince, last.framesSince);
        return { ok: f.active === false && held >= 1500, f, held };
      },
      { timeoutMs: 11_500, intervalMs: 250, describe: (v) => `f ${JSON.stringify(v.f)}, unchanged for ${v.held} ms` },
    );
    figures.fStoppedMs = Math.min(last.packetsSince, last.framesSince) - smallAt;
    figures.fStoppedBy = last.packetsSince <= last.framesSince ? 'packetsSent' : 'framesSent';
    const afterStop = await outboundByRid(pub);
    const aSmall = await received(people.A);
    console.log(`both tiles small: f stopped ${figures.fStoppedMs} ms later (${figures.fStoppedBy} held still; f ${JSON.stringify(stalled.f)}); ` +
      `publisher ${JSON.stringify(afterStop)}; A now ${JSON.stringify(aSmall)}; admin A ${JSON.stringify((await admin('A')).video)}`);
    assert.ok(figures.fStoppedMs <= 10_000, `f stopped only after ${figures.fStoppedMs} ms`);
    assert.equal(aSmall.width, 320, 'A is on q with a small tile');

    await people.A.page.setViewportSize(LARGE);
    const largeAt = Date.now();
    // Resumed: the encoding is on again and encodes frames.
    const resumed = await waitFor(
      async () => {
        const f = (await outboundByRid(pub)).f ?? {};
        return { ok: f.active === true && f.framesSent > stalled.f.framesSent + 5, f };
      },
      { timeoutMs: 15_000, intervalMs: 250, describe: (v) => `f ${JSON.stringify(v.f)} (was ${JSON.stringify(stalled.f)})` },
    );
    figures.fResumedMs = Date.now() - largeAt;
    // Chromium's own uplink estimate decides how soon f is back in full.
    await waitFor(
      async () => {
        const r = await received(people.A);
        return { ok: r.width === 1280, r };
      },
      { timeoutMs: 20_000, intervalMs: 250, describe: (v) => `A receives ${JSON.stringify(v.r)}` },
    );
    figures.aBackAt1280Ms = Date.now() - largeAt;
    const metrics = metricLines(await fetchMetrics(server.url));
    console.log(`A large again: f resumed after ${figures.fResumedMs} ms (f ${JSON.stringify(resumed.f)}), A at 1280 after ${figures.aBackAt1280Ms} ms; ` +
      `publisher's own estimate ${await publisherEstimate(pub)} bit/s; publisher layer updates ${await pub.evaluate(() => window.sfu.room.call.stats.layerUpdates)}; ` +
      `metrics before: ${dynacastBefore}; after: ${metrics}`);
  });

  step('B in a large tile climbs to h or f', async () => {
    await people.B.page.setViewportSize(B_LARGE);
    const largeAt = Date.now();
    const r = await waitFor(
      async () => {
        const [api, rec] = [await admin('B'), await received(people.B)];
        const layer = api.video[0]?.layer;
        return { ok: ['h', 'f'].includes(layer) && rec.width >= 640, layer, rec, estimate: api.estimate };
      },
      { timeoutMs: 20_000, intervalMs: 250, describe: (v) => `B on ${v.layer}, ${JSON.stringify(v.rec)}, estimate ${v.estimate}` },
    );
    figures.bUpMs = Date.now() - largeAt;
    figures.bUpLayer = r.layer;
    console.log(`B large: layer ${r.layer} (${r.rec.width} wide) after ${figures.bUpMs} ms; estimate ${r.estimate}`);
  });

  step(`B limited to ${LIMIT}: on q or paused within 5 s of its estimate falling, never frozen; A stays at 1280`, async () => {
    const samples = [];
    limitB();
    const limitedAt = Date.now();
    let fellAt = null;
    let downAt = null;
    const aWidths = new Set();
    await waitFor(
      async () => {
        const [api, rec, a] = [await admin('B'), await received(people.B), await received(people.A)];
        const t = Date.now() - limitedAt;
        const v = api.video[0] ?? {};
        samples.push({ t, estimate: api.estimate, layer: v.layer, target: v.targetLayer, paused: v.paused, ...rec, aWidth: a.width });
        aWidths.add(a.width);
        if (fellAt === null && api.estimate !== null && api.estimate < H_NEEDS_BPS) fellAt = t;
        if (downAt === null && ((v.layer === 'q' && rec.width === 320) || rec.paused)) downAt = t;
        return { ok: fellAt !== null && downAt !== null };
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: () => `samples ${JSON.stringify(samples)}` },
    );
    // Then: B keeps decoding (or says it is paused) for 3 s more.
    const before = await received(people.B);
    await sleep(3000);
    const later = await received(people.B);
    const a = await received(people.A);
    aWidths.add(a.width);
    // What B sees: the notice on the tile, if paused.
    await saveScreenshot(people.B.page, 'simulcast-b-limited.png');
    figures.limit = { estimateFellMs: fellAt, downMs: downAt, fromFallMs: downAt - fellAt, bState: later, framesIn3s: later.framesDecoded - before.framesDecoded };
    console.log(`B limited to ${LIMIT}: estimate below ${H_NEEDS_BPS} after ${fellAt} ms, B on q/paused after ${downAt} ms ` +
      `(${downAt - fellAt} ms after the fall); then ${later.framesDecoded - before.framesDecoded} frames decoded in 3 s, paused notice ${later.paused}; ` +
      `A widths ${[...aWidths]}; admin B ${JSON.stringify(await admin('B'))}; samples ${JSON.stringify(samples)}`);
    assert.ok(downAt - fellAt <= 5000, `B came down ${downAt - fellAt} ms after its estimate fell`);
    assert.ok(later.paused || later.framesDecoded > before.framesDecoded + 5, `B frozen: ${JSON.stringify({ before, later })}`);
    assert.deepEqual([...aWidths], [1280], 'A stays at 1280');
  });

  step('the limit lifted, B climbs back to h or f', async () => {
    unlimitB();
    const liftedAt = Date.now();
    const samples = [];
    const r = await waitFor(
      async () => {
        const [api, rec] = [await admin('B'), await received(people.B)];
        const layer = api.video[0]?.layer;
        samples.push({ t: Date.now() - liftedAt, estimate: api.estimate, layer, width: rec.width, paused: rec.paused });
        return { ok: ['h', 'f'].includes(layer) && rec.width >= 640 && !rec.paused, layer, rec };
      },
      { timeoutMs: 25_000, intervalMs: 500, describe: () => `samples ${JSON.stringify(samples)}` },
    );
    figures.recoverMs = Date.now() - liftedAt;
    const metrics = metricLines(await fetchMetrics(server.url));
    const reports = {};
    for (const name of ['A', 'B']) reports[name] = await people[name].page.evaluate(() => window.sfu.room.prefs.sentCount);
    console.log(`limit lifted: B back on ${r.layer} (${r.rec.width} wide) after ${figures.recoverMs} ms; samples ${JSON.stringify(samples)}; ` +
      `metrics: ${metrics}; videoPreference messages sent in all: ${JSON.stringify(reports)}`);
    assert.ok(figures.recoverMs <= 25_000);
  });

  it('a second publisher joins: the first camera still reaches A', {
    timeout: 60_000,
  }, async (t) => {
    if (run.failed) return t.skip('an earlier step failed');
    const pubVideo = (await adminTracks('Pub')).find((x) => x.kind === 'video').trackId;
    const framesOfPub = async () => (await inboundVideo(people.A.page)).find((v) => v.trackId === pubVideo)?.framesDecoded ?? 0;
    await join(browser, 'C', { viewport: { width: 640, height: 360 }, publish: true });
    await waitFor(
      async () => {
        const tracks = await adminTracks('C');
        return { ok: tracks.some((x) => x.kind === 'video'), tracks };
      },
      { timeoutMs: 15_000, describe: (v) => `C publishes ${JSON.stringify(v.tracks)}` },
    );
    await sleep(5000);
    const before = await framesOfPub();
    await sleep(3000);
    const gained = (await framesOfPub()) - before;
    const pub = await admin('Pub');
    const a = (await admin('A')).video.find((v) => v.trackId === pubVideo);
    console.log(`after a second publisher joined: A decoded ${gained} frames of the first camera in 3 s; ` +
      `the SFU receives ${Math.round(pub.bitrateIn ?? 0)} bit/s from the publisher; A's subscription ${JSON.stringify(a)}`);
    assert.ok(gained >= 10, `A decoded ${gained} frames of the first camera in 3 s`);
    assert.ok(pub.bitrateIn > 200_000, `the SFU receives ${pub.bitrateIn} bit/s from the publisher`);
  });
});

// A server started with --no-simulcast says so in `joined`, and the web
// client then publishes its camera as one encoding.
describe('--no-simulcast: one camera encoding', { skip }, () => {
  let plain;
  let plainBrowser;
  let page;
  before(async () => {
    plain = await startServer({ udpPort: await freeUdpPort(), extraArgs: ['--no-simulcast'] });
    plainBrowser = await launchBrowser();
  });
  after(async () => {
    await page?.context.close().catch(() => {});
    await plainBrowser?.close().catch(() => {});
    await plain?.stop();
  });

  it('the camera goes out as one encoding with no rid', { timeout: 60_000 }, async () => {
    page = await openHome(plainBrowser, plain.url, 'Solo', { path: '/?room=plain' });
    await page.page.click('#join');
    await page.page.waitForFunction(() => window.sfu.pc?.connectionState === 'connected', null, { timeout: 15_000 });
    const sent = await waitFor(
      async () => {
        const out = await outboundByRid(page.page);
        return { ok: Object.values(out).some((o) => o.framesSent > 10), out };
      },
      { timeoutMs: 20_000, describe: (v) => `outbound video ${JSON.stringify(v.out)}` },
    );
    const encodings = await page.page.evaluate(
      () => window.sfu.pc.getSenders().find((s) => s.track?.kind === 'video')?.getParameters().encodings.map((e) => e.rid ?? ''),
    );
    console.log(`--no-simulcast: outbound video ${JSON.stringify(sent.out)}; sender encodings ${JSON.stringify(encodings)}`);
    assert.deepEqual(Object.keys(sent.out), ['']);
    assert.deepEqual(encodings, ['']);
  });
});
