// WHEP end to end with a player nobody on the team wrote: aiortc
// (tests/whip/aiortc_whep.py, in a virtualenv: AIORTC_PYTHON, else
// target/aiortc-venv/bin/python) offers one recvonly audio and one recvonly
// video section to POST /whep/room1 while headless Chromium participants
// publish with our web client. The player decodes video and audio frames;
// when the participant it watches leaves, its sections are fed by another
// participant and, for a player that chose one (?participant=), by the
// chosen one again when it comes back, all without renegotiation. DELETE
// frees the player's Subscriptions (the sfu_subscriptions gauge). Players
// are hidden: the participants' pages show no tile for them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  joinCall,
  launchBrowser,
  metricValue,
  remoteTileNames,
  repoRoot,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';

const ADMIN = 'whep-test-admin';
const ROOM = 'room1';
const PYTHON = process.env.AIORTC_PYTHON || path.join(repoRoot, 'target/aiortc-venv/bin/python');
const SCRIPT = path.join(repoRoot, 'tests/whip/aiortc_whep.py');

let server;
let browser;
const people = {};
const players = [];

async function rooms() {
  const res = await fetch(`${server.url}/api/rooms`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200);
  return (await res.json()).rooms;
}

async function participant(name) {
  const room = (await rooms()).find((r) => r.name === ROOM);
  return room?.participants.find((p) => p.name === name);
}

/** The publisher whose video the participant `viewer` receives now. */
async function watching(viewer) {
  const room = (await rooms()).find((r) => r.name === ROOM);
  const v = room?.participants.find((p) => p.name === viewer);
  const track = v?.video[0]?.trackId;
  return room?.participants.find((p) => p.tracks.some((t) => t.trackId === track))?.name ?? null;
}

async function mint(identity, grants) {
  const res = await fetch(`${server.url}/api/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ room: ROOM, identity, grants }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

/** Starts a player; its latest counts are in `.video` and `.audio`. */
function play(identity, token, query = '') {
  const player = { identity, token, lines: [], video: 0, audio: 0, location: null };
  player.proc = spawn(
    PYTHON,
    [SCRIPT, `${server.url}/whep/${ROOM}${query}`, token, '--video', '1000000', '--timeout', '120', '--no-delete'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const stream of [player.proc.stdout, player.proc.stderr]) {
    stream.setEncoding('utf8');
    let partial = '';
    stream.on('data', (chunk) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop();
      for (const line of parts) {
        if (!line.trim()) continue;
        player.lines.push(line);
        const m = /^FRAMES video=(\d+) audio=(\d+)/.exec(line);
        if (m) [player.video, player.audio] = [Number(m[1]), Number(m[2])];
        if (line.startsWith('LOCATION ')) player.location = line.split(' ')[1];
      }
    });
  }
  players.push(player);
  return player;
}

async function framesBeyond(player, { video, audio = 0 }, timeoutMs = 20_000) {
  const base = { video: player.video, audio: player.audio };
  await waitFor(async () => ({ ok: player.video > base.video + video && player.audio > base.audio + audio }), {
    timeoutMs,
    describe: () => `${player.identity}: video ${base.video} -> ${player.video}, audio ${base.audio} -> ${player.audio}; ${player.lines.slice(-5).join(' | ')}`,
  });
}

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  for (const p of players) console.error(`=== player ${p.identity} ===\n${p.lines.slice(-30).join('\n')}`);
  for (const p of Object.values(people)) console.error(`=== ${p.name} console ===\n${p.logs}`);
}, { timeoutMs: 60_000 });
const { step } = run;

describe('WHEP: aiortc plays the room', { skip: !existsSync(PYTHON) && `no aiortc python at ${PYTHON}` }, () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort(), extraArgs: ['--admin-token', ADMIN] });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of players) p.proc.kill('SIGKILL');
    await browser?.close();
    await server?.stop();
  });

  step('Chromium participants alice and bob publish in room1', async () => {
    people.alice = await joinCall(browser, server.url, ROOM, 'alice');
    await waitFor(async () => ({ ok: (await participant('alice'))?.tracks.length === 2 }), {
      timeoutMs: 20_000,
      describe: () => 'alice publishes no audio and video',
    });
    people.bob = await joinCall(browser, server.url, ROOM, 'bob');
    await waitFor(async () => ({ ok: (await participant('bob'))?.tracks.length === 2 }), {
      timeoutMs: 20_000,
      describe: () => 'bob publishes no audio and video',
    });
  });

  step('an aiortc player on /whep/room1 decodes video and audio (> 50 frames each)', async () => {
    const token = await mint('player', { canSubscribe: true });
    const player = play('player', token);
    await framesBeyond(player, { video: 50, audio: 50 });
    console.log(`WHEP (active speaker or first publisher): video frames ${player.video}, audio frames ${player.audio}`);
    assert.ok(player.location?.includes(`/whep/${ROOM}/`), player.lines.join('\n'));
    const p = await participant('player');
    assert.equal(p.subscriptions, 2, 'one audio and one video Subscription');
    // A viewer is not a participant the others see (the admin API lists it).
    assert.deepEqual(await remoteTileNames(people.alice.page), ['bob']);
    assert.deepEqual(await remoteTileNames(people.bob.page), ['alice']);
  });

  step('when the watched participant leaves, the player is fed by the other without renegotiation', async () => {
    const player = players[0];
    const source = await watching('player');
    assert.ok(['alice', 'bob'].includes(source), `watching ${source}`);
    const other = source === 'alice' ? 'bob' : 'alice';
    const started = Date.now();
    await people[source].context.close();
    delete people[source];
    await framesBeyond(player, { video: 40, audio: 20 });
    console.log(`after ${source} left: ${Date.now() - started} ms to 40 more video frames from ${other}`);
    assert.equal(await watching('player'), other);
    assert.equal(player.lines.filter((l) => l.startsWith('TRACK')).length, 2, 'the same two tracks, no renegotiation');
    // The one who left comes back for the next step.
    people[source] = await joinCall(browser, server.url, ROOM, source);
    await waitFor(async () => ({ ok: (await participant(source))?.tracks.length === 2 }), {
      timeoutMs: 20_000,
      describe: () => `${source} does not publish again`,
    });
  });

  step('a player that chose ?participant=alice gets alice back after she leaves and rejoins', async () => {
    const token = await mint('alice-fan', { canSubscribe: true });
    const fan = play('alice-fan', token, '?participant=alice');
    await framesBeyond(fan, { video: 30, audio: 20 });
    assert.equal(await watching('alice-fan'), 'alice');
    await people.alice.context.close();
    delete people.alice;
    await waitFor(async () => ({ ok: (await participant('alice-fan'))?.subscriptions === 0 }), {
      timeoutMs: 5_000,
      describe: () => 'the fan still receives something while alice is away',
    });
    const frozen = fan.video;
    await sleep(1_500);
    assert.ok(fan.video - frozen < 10, `no video while alice is away (${frozen} -> ${fan.video})`);
    const rejoined = Date.now();
    people.alice = await joinCall(browser, server.url, ROOM, 'alice');
    await framesBeyond(fan, { video: 30 });
    console.log(`alice rejoined: ${Date.now() - rejoined} ms (join included) to 30 more video frames`);
    assert.equal(await watching('alice-fan'), 'alice');
    assert.equal(fan.lines.filter((l) => l.startsWith('TRACK')).length, 2, 'the same two tracks, no renegotiation');
  });

  step('DELETE frees the players\' Subscriptions', async () => {
    const before = metricValue(await fetchMetrics(server.url), 'sfu_subscriptions');
    for (const p of players) {
      const res = await fetch(p.location, { method: 'DELETE', headers: { Authorization: `Bearer ${p.token}` } });
      assert.equal(res.status, 200);
    }
    await waitFor(async () => {
      const m = await fetchMetrics(server.url);
      return { ok: metricValue(m, 'sfu_whip_sessions', 'endpoint="whep"') === 0, m };
    }, { timeoutMs: 3_000, describe: () => 'WHEP sessions still live' });
    const m = await fetchMetrics(server.url);
    const afterDelete = metricValue(m, 'sfu_subscriptions');
    console.log(`sfu_subscriptions: ${before} before DELETE, ${afterDelete} after`);
    assert.equal(before - afterDelete, 4, 'two players, one audio and one video Subscription each');
    assert.equal(await participant('player'), undefined);
    assert.equal(await participant('alice-fan'), undefined);
    assert.equal(metricValue(m, 'sfu_whip_sessions_ended_total', 'endpoint="whep",reason="deleted"'), 2);
  });
});
