// A cluster of three sfu-server nodes on one Redis (redis-server from
// Debian, started here), with headless Chromium:
//   - Alice opens the page on node 1 and Bob on node 2, for one room: Bob
//     is redirected to the room's node and both decode each other's video;
//   - a second room is placed on a least-loaded node, not on node 1;
//   - the room's home node is SIGKILLed: both browsers are back in one
//     call on a surviving node, decoding video, within 15 s, and Redis
//     holds nothing that points at the dead node once its TTL is out;
//   - the new home node is drained: it hands the room to the last node,
//     both browsers follow the `redirect` and decode again there, and the
//     drained node exits once they have left;
//   - Redis is killed: the call goes on, a join of a new room gets a clear
//     "cluster" error on the page, and once Redis is back (empty, on the
//     same port) the node registers again and the join succeeds.

import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  joinCall,
  launchBrowser,
  metricValue,
  scenario,
  sleep,
  startRedis,
  startServer,
  waitFor,
} from './lib.mjs';

const TTL_SECS = 3;
const ADMIN = 'cluster-admin';
const nodes = {};
const people = {};
let redis;
let browser;

const run = scenario(() => {
  for (const [id, n] of Object.entries(nodes)) console.error(`=== ${id} output (tail) ===\n${n.output}`);
  for (const p of Object.values(people)) console.error(`--- ${p.name} ---\n${p.logs}`);
});
const { step } = run;



async function startNode(id) {
  return startServer({
    udpPort: await freeUdpPort(),
    extraArgs: [
      '--redis-url', redis.url,
      '--node-id', id,
      '--cluster-ttl-secs', String(TTL_SECS),
      '--api-key', 'cluster-key', '--api-secret', 'cluster-secret', '--dev',
      '--admin-token', ADMIN,
      '--workers', '1',
      '--drain-timeout-secs', '10',
    ],
  });
}

async function clusterView(node) {
  const res = await fetch(`${node.url}/api/cluster`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200, `/api/cluster on ${node.url}`);
  return res.json();
}

const homeOf = (view, room) => view.rooms.find((r) => r.room === room)?.node;

/** framesDecoded of the page's current connection, and whether it is a new one. */
function decodingOnNewConnection(page) {
  return page.evaluate(async () => {
    const pc = window.sfu.pc;
    if (!pc || pc === window.__oldPc) return { fresh: false, frames: 0 };
    let frames = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
    });
    return { fresh: true, frames, state: window.sfu.room?.state };
  });
}

const roomName = `cluster-${Math.random().toString(36).slice(2, 8)}`;

describe('a three-node cluster on Redis', () => {
  after(async () => {
    for (const p of Object.values(people)) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    for (const n of Object.values(nodes)) await n.stop();
    redis?.kill();
  });

  step('Alice on node 1 and Bob on node 2 end up in one call, decoding both ways', async () => {
    redis = await startRedis();
    nodes.n1 = await startNode('n1');
    nodes.n2 = await startNode('n2');
    nodes.n3 = await startNode('n3');
    await waitFor(async () => ({ ok: (await clusterView(nodes.n1)).nodes.length === 3 }), {
      timeoutMs: 10_000,
      describe: () => 'three nodes registered',
    });
    browser = await launchBrowser();
    people.Alice = await joinCall(browser, nodes.n1.url, roomName, 'Alice');
    await people.Alice.page.waitForFunction(() => window.sfu.room?.state === 'joined', null, { timeout: 10_000 });
    people.Bob = await joinCall(browser, nodes.n2.url, roomName, 'Bob');
    const { frames } = await waitFor(
      async () => {
        const f = await Promise.all([people.Alice, people.Bob].map((p) => decodingOnNewConnection(p.page)));
        return { ok: f.every((x) => x.frames > 30), frames: f.map((x) => x.frames) };
      },
      { timeoutMs: 30_000, describe: (v) => `framesDecoded ${v.frames}` },
    );
    console.log(`decoded through the cluster: Alice ${frames[0]}, Bob ${frames[1]} frames`);
    assert.match(String(people.Bob.logs), /redirected to node n1 \(home\)/);
    assert.doesNotMatch(String(people.Alice.logs), /redirected to node/);
    assert.equal(homeOf(await clusterView(nodes.n3), roomName), 'n1');
    const text = await fetchMetrics(nodes.n2.url);
    assert.equal(metricValue(text, 'sfu_cluster_redirects_total', 'reason="home"'), 1);
  });

  step('a second room is placed on a least-loaded node', async () => {
    await waitFor(
      async () => {
        const view = await clusterView(nodes.n2);
        return { ok: view.nodes.find((n) => n.id === 'n1')?.peers === 2, view };
      },
      { timeoutMs: 10_000, describe: (v) => JSON.stringify(v.view?.nodes) },
    );
    const second = `${roomName}-2`;
    people.Carol = await joinCall(browser, nodes.n1.url, second, 'Carol');
    await people.Carol.page.waitForFunction(() => window.sfu.room?.state === 'joined', null, { timeout: 10_000 });
    const home = homeOf(await clusterView(nodes.n1), second);
    assert.ok(home === 'n2' || home === 'n3', `second room on ${home}`);
    assert.match(String(people.Carol.logs), /redirected to node n[23] \(placement\)/);
    await people.Carol.context.close();
    delete people.Carol;
  });

  step('SIGKILL the home node: both are back in a call on a live node within 15 s', async () => {
    for (const p of [people.Alice, people.Bob]) await p.page.evaluate(() => (window.__oldPc = window.sfu.pc));
    const killedAt = Date.now();
    nodes.n1.kill('SIGKILL');
    await nodes.n1.exit;
    const { frames } = await waitFor(
      async () => {
        const f = await Promise.all([people.Alice, people.Bob].map((p) => decodingOnNewConnection(p.page)));
        return { ok: f.every((x) => x.fresh && x.frames > 10), frames: f.map((x) => `${x.frames} (${x.state})`) };
      },
      { timeoutMs: 15_000, intervalMs: 200, describe: (v) => `framesDecoded on the new connections: ${v.frames}` },
    );
    const backMs = Date.now() - killedAt;
    const view = await clusterView(nodes.n2);
    const home = homeOf(view, roomName);
    assert.ok(home === 'n2' || home === 'n3', `room now on ${home}`);
    const takeovers = ['n2', 'n3'].map(async (id) => metricValue(await fetchMetrics(nodes[id].url), 'sfu_cluster_takeovers_total'));
    assert.equal((await Promise.all(takeovers)).reduce((a, b) => a + b, 0), 1);
    console.log(`back in the call on ${home} ${backMs} ms after the SIGKILL (frames ${frames})`);
  });

  step('Redis holds no entry pointing at the dead node after the TTL', async () => {
    await sleep(TTL_SECS * 1000 + 500);
    const keys = redis.cli('--scan', '--pattern', 'sfu:*').split('\n').filter(Boolean);
    assert.ok(!keys.includes('sfu:node:n1'), keys.join(' '));
    const rooms = keys.filter((k) => k.startsWith('sfu:room:'));
    for (const key of rooms) assert.notEqual(redis.cli('GET', key), 'n1', key);
    assert.deepEqual(keys.filter((k) => k.startsWith('sfu:node:')).sort(), ['sfu:node:n2', 'sfu:node:n3']);
    delete nodes.n1;
  });

  step('draining the home node moves the call to the last node', async () => {
    const home = homeOf(await clusterView(nodes.n2), roomName);
    const last = home === 'n2' ? 'n3' : 'n2';
    for (const p of [people.Alice, people.Bob]) await p.page.evaluate(() => (window.__oldPc = window.sfu.pc));
    const res = await fetch(`${nodes[home].url}/api/drain`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.status, 202);
    const startedAt = Date.now();
    await waitFor(
      async () => {
        const f = await Promise.all([people.Alice, people.Bob].map((p) => decodingOnNewConnection(p.page)));
        return { ok: f.every((x) => x.fresh && x.frames > 10), frames: f.map((x) => `${x.frames} (${x.state})`) };
      },
      { timeoutMs: 15_000, intervalMs: 200, describe: (v) => `framesDecoded on the new connections: ${v.frames}` },
    );
    const movedMs = Date.now() - startedAt;
    for (const p of [people.Alice, people.Bob]) {
      assert.match(String(p.logs), new RegExp(`redirected to node ${last} \\(drain\\)`), p.name);
    }
    assert.equal(homeOf(await clusterView(nodes[last]), roomName), last);
    const exit = await Promise.race([nodes[home].exit, sleep(12_000).then(() => null)]);
    assert.deepEqual(exit, { code: 0, signal: null }, 'the drained node exits cleanly');
    delete nodes[home];
    console.log(`call moved from ${home} to ${last} in ${movedMs} ms`);
  });

  step('Redis lost: the call goes on, a new room gets a clear error, and joins work again once Redis is back', async () => {
    const [id, node] = Object.entries(nodes)[0];
    const base = await Promise.all([people.Alice, people.Bob].map((p) => decodingOnNewConnection(p.page)));
    redis.kill();
    await waitFor(
      async () => ({ ok: metricValue(await fetchMetrics(node.url), 'sfu_cluster_redis_up') === 0 }),
      { timeoutMs: 10_000, describe: () => `${id} still reports Redis up` },
    );
    // The call on the node goes on without Redis.
    await waitFor(
      async () => {
        const f = await Promise.all([people.Alice, people.Bob].map((p) => decodingOnNewConnection(p.page)));
        return { ok: f.every((x, i) => x.frames > base[i].frames + 30), frames: f.map((x) => x.frames) };
      },
      { timeoutMs: 10_000, describe: (v) => `frames ${v.frames} (before ${base.map((x) => x.frames)})` },
    );
    // A room the node does not hold cannot be placed: the page says why.
    const other = `${roomName}-3`;
    people.Dana = await joinCall(browser, node.url, other, 'Dana');
    await people.Dana.page.waitForFunction(
      () => /cluster/.test(document.getElementById('error-text')?.textContent ?? ''),
      null,
      { timeout: 10_000 },
    );
    const shown = await people.Dana.page.textContent('#error-text');
    assert.equal(metricValue(await fetchMetrics(node.url), 'sfu_cluster_unavailable_total'), 1);
    // Redis returns (empty): the node registers again and Dana gets in.
    redis = await startRedis({ port: redis.port });
    await waitFor(
      async () => ({ ok: metricValue(await fetchMetrics(node.url), 'sfu_cluster_redis_up') === 1 }),
      { timeoutMs: 10_000, describe: () => `${id} does not report Redis up again` },
    );
    await people.Dana.context.close();
    people.Dana = await joinCall(browser, node.url, other, 'Dana');
    await people.Dana.page.waitForFunction(() => window.sfu.room?.state === 'joined', null, { timeout: 10_000 });
    assert.ok(redis.cli('--scan', '--pattern', 'sfu:node:*').includes(`sfu:node:${id}`));
    console.log(`without Redis the call went on; a new room was refused with "${shown}"; after Redis returned, it opened`);
  });
});
