// WHIP end to end with a publisher nobody on the team wrote: GStreamer's
// webrtcbin (tests/whip/gst_whip.py, Debian's /usr/bin/python3 with gi)
// publishes a VP8 test pattern and an Opus tone to POST /whip/room1 with a
// dev-mode token, trickling its candidates with PATCH. A headless Chromium
// participant in the same room, on our web client, decodes that video;
// DELETE on the session's Location removes the publisher from the room
// (the page's tile and the admin API) within 2 s; a second DELETE is 404.
// webrtcbin sends no STUN once connected, yet stays past the consent
// timeout (3 s here): authenticated media keeps a WHIP session alive. A
// publisher that dies without DELETE (SIGKILL) is removed by that timeout
// and its session freed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import {
  fetchMetrics,
  framesDecoded,
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

const ADMIN = 'whip-test-admin';
const PUBLISHER = 'gst-publisher';
const ROOM = 'room1';
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(repoRoot, 'tests/whip/gst_whip.py');

let server;
let browser;
let gst;
const people = {};
let gstLines = [];

/** The rooms as the admin API lists them. */
async function rooms() {
  const res = await fetch(`${server.url}/api/rooms`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200);
  return (await res.json()).rooms;
}

async function participantNames(room) {
  const r = (await rooms()).find((x) => x.name === room);
  return (r?.participants ?? []).map((p) => p.name).sort();
}

async function mint(identity, grants) {
  const res = await fetch(`${server.url}/api/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ room: ROOM, identity, grants }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).token;
}

/** The first line of the publisher's output starting with `prefix`. */
function gstLine(prefix) {
  return gstLines.find((l) => l.startsWith(prefix));
}

const run = scenario(async () => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}`);
  console.error(`=== gst_whip.py output ===\n${gstLines.join('\n')}`);
  for (const p of Object.values(people)) console.error(`=== ${p.name} console ===\n${p.logs}`);
}, { timeoutMs: 60_000 });
const { step } = run;

describe('WHIP: GStreamer publishes, Chromium watches', { skip: !existsSync(PYTHON) && 'no /usr/bin/python3' }, () => {
  let token;
  let location;

  before(async () => {
    server = await startServer({
      udpPort: await freeUdpPort(),
      extraArgs: ['--admin-token', ADMIN, '--consent-timeout-secs', '3'],
    });
    browser = await launchBrowser();
  });

  after(async () => {
    gst?.kill('SIGKILL');
    await browser?.close();
    await server?.stop();
  });

  step('a Chromium participant joins room1', async () => {
    people.viewer = await joinCall(browser, server.url, ROOM, 'browser-viewer');
    await waitFor(async () => ({ ok: (await participantNames(ROOM)).includes('browser-viewer') }), {
      timeoutMs: 15_000,
      describe: () => 'browser-viewer never appeared in room1',
    });
  });

  /** Starts the GStreamer publisher; its output goes to `gstLines`. */
  function publish(args = []) {
    gstLines = [];
    gst = spawn(PYTHON, [SCRIPT, `${server.url}/whip/${ROOM}`, token, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = gstLines;
    for (const stream of [gst.stdout, gst.stderr]) {
      stream.setEncoding('utf8');
      let partial = '';
      stream.on('data', (chunk) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop();
        for (const line of parts) if (line.trim() && !line.includes('CRITICAL')) lines.push(line);
      });
    }
  }

  step('GStreamer webrtcbin publishes VP8 and Opus over WHIP', async () => {
    token = await mint(PUBLISHER, { canPublish: true, roomCreate: true });
    publish();
    await waitFor(async () => ({ ok: gstLine('CONNECTED') }), {
      timeoutMs: 20_000,
      describe: () => `publisher output: ${gstLines.join(' | ')}`,
    });
    assert.equal(gstLine('STATUS'), 'STATUS 201');
    location = gstLine('LOCATION').split(' ')[1];
    assert.match(location, new RegExp(`/whip/${ROOM}/[0-9a-f]{32}$`));
    assert.match(gstLine('ETAG') ?? '', /^ETAG "[0-9a-f]+"$/);
    assert.ok(gstLines.some((l) => l === 'PATCH 204'), 'trickled candidates were accepted (204)');
    const metrics = await fetchMetrics(server.url);
    assert.equal(metricValue(metrics, 'sfu_whip_sessions', 'endpoint="whip"'), 1);
  });

  step('the Chromium participant decodes the WHIP video (framesDecoded > 50)', async () => {
    const page = people.viewer.page;
    await waitFor(async () => ({ ok: (await remoteTileNames(page)).includes(PUBLISHER) }), {
      timeoutMs: 10_000,
      describe: async () => `tiles: ${await remoteTileNames(page)}`,
    });
    const { frames } = await waitFor(async () => {
      const frames = await framesDecoded(page);
      return { ok: frames > 50, frames };
    }, { timeoutMs: 20_000, describe: (v) => `framesDecoded ${v.frames}` });
    console.log(`WHIP video: framesDecoded ${frames}`);
    const names = await participantNames(ROOM);
    assert.deepEqual(names, ['browser-viewer', PUBLISHER]);
    const publisher = (await rooms()).find((r) => r.name === ROOM).participants.find((p) => p.name === PUBLISHER);
    const kinds = publisher.tracks.map((t) => t.kind).sort();
    assert.deepEqual(kinds, ['audio', 'video'], JSON.stringify(publisher));
  });

  step('the publisher stays past the 3 s consent timeout: webrtcbin sends no STUN, its media keeps it', async () => {
    const page = people.viewer.page;
    const before = await framesDecoded(page);
    await sleep(4_000);
    assert.ok((await participantNames(ROOM)).includes(PUBLISHER), 'still in the room');
    const after = await framesDecoded(page);
    assert.ok(after > before + 40, `still decoding (${before} -> ${after})`);
  });

  step('DELETE removes the publisher from the room within 2 s', async () => {
    const started = Date.now();
    const res = await fetch(location, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const page = people.viewer.page;
    await waitFor(async () => ({ ok: !(await remoteTileNames(page)).includes(PUBLISHER) }), {
      timeoutMs: 2_000,
      intervalMs: 50,
      describe: () => 'the publisher tile is still there 2 s after DELETE',
    });
    const leftAfter = Date.now() - started;
    console.log(`DELETE to participant-left on the page: ${leftAfter} ms`);
    assert.ok(leftAfter < 2_000);
    assert.deepEqual(await participantNames(ROOM), ['browser-viewer']);
    const again = await fetch(location, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    assert.equal(again.status, 404, 'a second DELETE finds no session');
    const metrics = await fetchMetrics(server.url);
    assert.equal(metricValue(metrics, 'sfu_whip_sessions', 'endpoint="whip"'), 0);
    assert.equal(metricValue(metrics, 'sfu_whip_sessions_ended_total', 'endpoint="whip",reason="deleted"'), 1);
    assert.equal(metricValue(metrics, 'sfu_whip_rejections_total', 'endpoint="whip",status="404"'), 1);
    gst.kill('SIGTERM');
    await sleep(200);
  });

  step('a publisher killed without DELETE is removed by the consent timeout', async () => {
    publish(['--no-delete']);
    await waitFor(async () => ({ ok: gstLine('CONNECTED') }), {
      timeoutMs: 20_000,
      describe: () => `publisher output: ${gstLines.join(' | ')}`,
    });
    const page = people.viewer.page;
    await waitFor(async () => ({ ok: (await remoteTileNames(page)).includes(PUBLISHER) }), {
      timeoutMs: 10_000,
      describe: async () => `tiles: ${await remoteTileNames(page)}`,
    });
    const killed = Date.now();
    gst.kill('SIGKILL');
    await waitFor(async () => ({ ok: !(await participantNames(ROOM)).includes(PUBLISHER) }), {
      timeoutMs: 10_000,
      describe: () => 'the killed publisher is still in the room',
    });
    console.log(`killed publisher removed after ${Date.now() - killed} ms (consent timeout 3 s)`);
    const metrics = await fetchMetrics(server.url);
    assert.equal(metricValue(metrics, 'sfu_whip_sessions', 'endpoint="whip"'), 0);
    assert.equal(metricValue(metrics, 'sfu_whip_sessions_ended_total', 'endpoint="whip",reason="connection_lost"'), 1);
    const location = gstLine('LOCATION').split(' ')[1];
    const res = await fetch(location, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 404, 'the session is gone');
  });
});
