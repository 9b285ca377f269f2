// A room that spans two nodes (cascading), with headless Chromium: two
// sfu-server nodes on one Redis (redis-server from Debian, started here)
// with --cascade-peers 2, so that once node 1 carries two participants,
// newcomers to its room are placed on node 2, which links the room to
// node 1. Four participants, two per node:
//   - everyone decodes everyone's video;
//   - each published track crosses the link exactly once (the cluster
//     metrics of node 2, which runs the link);
//   - the far node's layer choice reaches the home: when node 2's tiles
//     are small, node 1 sends the link layer q, and a larger one again
//     when they grow;
//   - NACKs work across the link: node 1's media port sits behind a
//     userspace impairment relay (impair.mjs); with 5% loss each way on it,
//     Ben on node 2 still receives Ann's camera (two lossy legs away) with
//     under 2% of its packets lost;
//   - a keyframe request from a subscriber on the far node reaches the
//     publisher: a newcomer on node 2 decodes node 1's camera, the
//     publisher's pliCount grows, and the link counts the request.

import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import { startImpairRelay } from './impair.mjs';
import {
  fetchMetrics,
  freeUdpPort,
  joinCall,
  launchBrowser,
  metricValue,
  scenario,
  startRedis,
  startServer,
  waitFor,
} from './lib.mjs';

const ADMIN = 'cascade-admin';
const nodes = {};
const people = {};
let redis;
let impair;
let browser;

const run = scenario(() => {
  for (const [id, n] of Object.entries(nodes)) console.error(`=== ${id} output (tail) ===\n${n.output}`);
  for (const p of Object.values(people)) console.error(`--- ${p.name} ---\n${p.logs}`);
});
const { step } = run;


/**
 * Node `id`; with `relay`, its media port sits behind that impairment relay
 * (it binds 127.0.0.1 and advertises 127.0.0.2, where the relay listens),
 * so every datagram of its media, the link's included, crosses the relay.
 */
async function startNode(id, { udpPort = null, relay = false } = {}) {
  const behind = relay ? ['--media-bind-ip', '127.0.0.1'] : [];
  return startServer({
    udpPort: udpPort ?? (await freeUdpPort()),
    host: relay ? '127.0.0.2' : '127.0.0.1',
    extraArgs: [
      ...behind,
      '--redis-url', redis.url,
      '--node-id', id,
      '--cluster-ttl-secs', '3',
      '--cascade-peers', '2',
      '--api-key', 'cascade-key', '--api-secret', 'cascade-secret', '--dev',
      '--admin-token', ADMIN,
      '--workers', '1',
    ],
  });
}

async function api(node, path) {
  const res = await fetch(`${node.url}${path}`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200, `${path} on ${node.url}`);
  return res.json();
}

/** framesDecoded (or `field`) of each remote video the page receives, by publisher name. */
function decodedByName(page, field = 'framesDecoded') {
  return page.evaluate(async (field) => {
    const pc = window.sfu.pc;
    const out = {};
    if (!pc) return out;
    const stats = await pc.getStats();
    const byTrack = new Map();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') byTrack.set(s.trackIdentifier, s[field] ?? 0);
    });
    for (const tile of document.querySelectorAll('.tile.remote[data-peer-id]')) {
      const video = tile.querySelector('video');
      const track = video?.srcObject?.getVideoTracks?.()[0];
      const name = tile.querySelector('.name')?.textContent ?? '?';
      if (track && byTrack.has(track.id)) out[name] = byTrack.get(track.id);
    }
    return out;
  }, field);
}

/** The simulcast layer node 1 forwards to the link's sink for `name`'s camera. */
async function sinkLayerOf(name) {
  const room = (await api(nodes.n1, '/api/rooms')).rooms.find((r) => r.name === roomName);
  const publisher = room.participants.find((p) => p.name === name && !p.relay);
  const video = publisher?.tracks.find((t) => t.kind === 'video')?.trackId;
  const sink = room.participants.find((p) => p.relay && p.tracks.length === 0);
  const entry = sink?.video.find((v) => v.trackId === video);
  return entry?.layer ?? null;
}

async function pliCount(page) {
  return page.evaluate(async () => {
    let n = 0;
    (await window.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') n += s.pliCount ?? 0;
    });
    return n;
  });
}

const roomName = `cascade-${Math.random().toString(36).slice(2, 8)}`;
const NAMES = ['Ann', 'Amy', 'Ben', 'Bob'];

describe('a room spread over two nodes', () => {
  after(async () => {
    for (const p of Object.values(people)) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    for (const n of Object.values(nodes)) await n.stop();
    redis?.kill();
    await impair?.stop();
  });

  step('four participants, two per node, everyone decodes everyone', async () => {
    redis = await startRedis();
    const udpPort = await freeUdpPort();
    impair = await startImpairRelay({
      listen: { host: '127.0.0.2', port: udpPort },
      target: { host: '127.0.0.1', port: udpPort },
      toServer: { loss: 0 },
      toClient: { loss: 0 },
    });
    nodes.n1 = await startNode('n1', { udpPort, relay: true });
    nodes.n2 = await startNode('n2');
    browser = await launchBrowser();
    for (const name of ['Ann', 'Amy']) {
      people[name] = await joinCall(browser, nodes.n1.url, roomName, name);
      await people[name].page.waitForFunction(() => window.sfu.room?.state === 'joined', null, { timeout: 10_000 });
    }
    // Node 1's two participants are registered before the next joins.
    await waitFor(
      async () => {
        const view = await api(nodes.n2, '/api/cluster');
        return { ok: view.nodes.find((n) => n.id === 'n1')?.peers === 2, view };
      },
      { timeoutMs: 10_000, describe: (v) => JSON.stringify(v.view?.nodes) },
    );
    for (const name of ['Ben', 'Bob']) {
      people[name] = await joinCall(browser, nodes.n2.url, roomName, name);
      await people[name].page.waitForFunction(() => window.sfu.room?.state === 'joined', null, { timeout: 10_000 });
    }
    const { decoded } = await waitFor(
      async () => {
        const decoded = {};
        for (const name of NAMES) decoded[name] = await decodedByName(people[name].page);
        const ok = NAMES.every((me) => NAMES.filter((n) => n !== me).every((other) => (decoded[me][other] ?? 0) > 30));
        return { ok, decoded };
      },
      { timeoutMs: 40_000, describe: (v) => JSON.stringify(v.decoded) },
    );
    console.log(`frames decoded (receiver -> publisher): ${JSON.stringify(decoded)}`);
    for (const name of ['Ben', 'Bob']) assert.doesNotMatch(String(people[name].logs), /redirected to node/, name);
    // Each node hosts its own two; node 1 stays the room's home.
    const rooms1 = await api(nodes.n1, '/api/rooms');
    const rooms2 = await api(nodes.n2, '/api/rooms');
    const people1 = rooms1.rooms.find((r) => r.name === roomName).participants.filter((p) => !p.relay).map((p) => p.name).sort();
    const people2 = rooms2.rooms.find((r) => r.name === roomName).participants.filter((p) => !p.relay).map((p) => p.name).sort();
    console.log(`node 1: ${people1.join(', ')}; node 2: ${people2.join(', ')}`);
    assert.deepEqual(people1, ['Amy', 'Ann']);
    assert.deepEqual(people2, ['Ben', 'Bob']);
    assert.equal(redis.cli('GET', `sfu:room:${roomName}`), 'n1');
  });

  step('each published track crosses the link exactly once', async () => {
    const text = await fetchMetrics(nodes.n2.url);
    const tracksIn = metricValue(text, 'sfu_cluster_relayed_tracks', 'direction="in"');
    const tracksOut = metricValue(text, 'sfu_cluster_relayed_tracks', 'direction="out"');
    console.log(`relayed tracks: in ${tracksIn}, out ${tracksOut}; bridges ${metricValue(text, 'sfu_cluster_bridges')}`);
    // Two publishers per side, audio and camera each.
    assert.equal(tracksIn, 4);
    assert.equal(tracksOut, 4);
    assert.equal(metricValue(text, 'sfu_cluster_bridges'), 1);
    // Node 1 sends each of its tracks once, to the link's sink: the
    // sink holds 4 subscriptions, not one per remote subscriber.
    const rooms1 = await api(nodes.n1, '/api/rooms');
    const sinks = rooms1.rooms.find((r) => r.name === roomName).participants.filter((p) => p.relay && p.tracks.length === 0);
    assert.equal(sinks.length, 1);
    assert.equal(sinks[0].subscriptions, 4);
  });

  step("the far node's layer choice reaches the home: small tiles there get layer q over the link", async () => {
    const before = await sinkLayerOf('Ann');
    // Node 2's pages shrink to 220 px high, so no tile there is over 240 px: neither Ben nor Bob wants more than q.
    // Node 2's tiles shrink to 80 by 45 px: neither Ben nor Bob wants more than q.
    const shrink = '.tile.remote video { width: 80px !important; height: 45px !important; }';
    for (const name of ['Ben', 'Bob']) {
      await people[name].page.evaluate((css) => {
        const style = document.createElement('style');
        style.id = 'shrink';
        style.textContent = css;
        document.head.append(style);
      }, shrink);
    }
    const { layer } = await waitFor(
      async () => {
        const layer = await sinkLayerOf('Ann');
        return { ok: layer === 'q', layer };
      },
      { timeoutMs: 15_000, describe: (v) => `node 1 forwards layer ${v.layer} of Ann's camera to the link` },
    );
    const { height } = await waitFor(
      async () => {
        const height = (await decodedByName(people.Ben.page, 'frameHeight')).Ann ?? 0;
        return { ok: height > 0 && height <= 240, height };
      },
      { timeoutMs: 15_000, describe: (v) => `Ben receives Ann at ${v.height}p` },
    );
    // Back to large tiles: the link carries more again.
    for (const name of ['Ben', 'Bob']) await people[name].page.evaluate(() => document.getElementById('shrink')?.remove());
    const { layer: again } = await waitFor(
      async () => {
        const layer = await sinkLayerOf('Ann');
        return { ok: layer === 'h' || layer === 'f', layer };
      },
      { timeoutMs: 15_000, describe: (v) => `node 1 forwards layer ${v.layer} of Ann's camera to the link` },
    );
    console.log(`link layer of Ann's camera: ${before} -> ${layer} (Ben decodes ${height}p) -> ${again}`);
  });

  step('NACKs across the link: with 5% loss on node 1\'s media, node 2 still gets node 1\'s video nearly whole', async () => {
    const inbound = async () => {
      const got = await decodedByName(people.Ben.page, 'packetsReceived');
      const lost = await decodedByName(people.Ben.page, 'packetsLost');
      return { received: got.Ann ?? 0, lost: lost.Ann ?? 0 };
    };
    const retransmissions = async () => metricValue(await fetchMetrics(nodes.n1.url), 'sfu_retransmissions_total');
    const before = await inbound();
    const rtx0 = await retransmissions();
    const drops0 = impair.stats();
    // Every datagram to and from node 1: Ann's uplink, and the link's
    // sink, lose 5% each way.
    impair.configure({ toServer: { loss: 0.05 }, toClient: { loss: 0.05 } });
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    impair.configure({ toServer: { loss: 0 }, toClient: { loss: 0 } });
    const afterwards = await inbound();
    const drops = impair.stats();
    const received = afterwards.received - before.received;
    const lost = afterwards.lost - before.lost;
    const dropped = drops.toClient.dropped - drops0.toClient.dropped;
    const crossed = drops.toClient.received - drops0.toClient.received;
    const rtx = (await retransmissions()) - rtx0;
    console.log(
      `under 5% loss: the relay dropped ${dropped} of ${crossed} datagrams from node 1; ` +
        `Ben received ${received} packets of Ann's camera and lost ${lost} (${((100 * lost) / Math.max(1, received + lost)).toFixed(2)}%); ` +
        `node 1 retransmitted ${rtx} packets`,
    );
    assert.ok(dropped > 0.03 * crossed, 'the relay dropped about 5%');
    assert.ok(received > 100, 'video flowed');
    assert.ok(rtx > 0, 'node 1 answered NACKs');
    // Two lossy legs (Ann -> node 1 -> the link's sink) would lose ~10%
    // unrepaired; NACKs on each leg leave far less.
    assert.ok(lost < 0.02 * (received + lost), `Ben lost ${lost} of ${received + lost}`);
  });

  step('a keyframe request from the far node reaches the publisher', async () => {
    // Bob leaves, so node 2 has room for one more (the threshold is 2).
    await people.Bob.context.close();
    delete people.Bob;
    await waitFor(
      async () => {
        const view = await api(nodes.n1, '/api/cluster');
        return { ok: view.nodes.find((n) => n.id === 'n2')?.peers === 1, view };
      },
      { timeoutMs: 10_000, describe: (v) => JSON.stringify(v.view?.nodes) },
    );
    const before = await pliCount(people.Ann.page);
    const text0 = await fetchMetrics(nodes.n2.url);
    const relayed0 = metricValue(text0, 'sfu_cluster_relay_keyframe_requests_total', 'direction="in"');
    // A newcomer on node 2 needs a keyframe of Ann's camera to start.
    people.Cal = await joinCall(browser, nodes.n2.url, roomName, 'Cal');
    const { frames } = await waitFor(
      async () => {
        const frames = (await decodedByName(people.Cal.page)).Ann ?? 0;
        return { ok: frames > 10, frames };
      },
      { timeoutMs: 20_000, describe: (v) => `Cal decoded ${v.frames} frames of Ann` },
    );
    const { after } = await waitFor(
      async () => {
        const after = await pliCount(people.Ann.page);
        return { ok: after > before, after };
      },
      { timeoutMs: 10_000, describe: (v) => `Ann's pliCount ${before} -> ${v.after}` },
    );
    const relayed = metricValue(await fetchMetrics(nodes.n2.url), 'sfu_cluster_relay_keyframe_requests_total', 'direction="in"');
    console.log(`Cal decoded ${frames} frames of Ann; Ann's pliCount ${before} -> ${after}; keyframe requests over the link ${relayed0} -> ${relayed}`);
    assert.ok(relayed > relayed0, 'the link carried the request');
  });
});
