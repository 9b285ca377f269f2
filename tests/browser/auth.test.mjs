// Access tokens end to end: a server in production mode (an API key and
// secret, no dev minter), pages opened with `?token=` minted by
// `sfu-server token`. Two full tokens see each other; a subscribe-only
// participant who tries to publish is refused and nobody receives anything
// from it; a participant of another room receives nothing of this one; and
// an expired token gets a clear message in the page.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import {
  dumpLogs,
  fetchMetrics,
  freeUdpPort,
  launchBrowser,
  mediaStats,
  remoteTileCount,
  repoRoot,
  scenario,
  sleep,
  startServer,
  waitFor,
} from './lib.mjs';

const API_KEY = 'browser-test-key';
const API_SECRET = 'browser-test-secret-0123456789';
const BIN = process.env.SFU_SERVER_BIN || path.join(repoRoot, 'target/debug/sfu-server');
const suffix = Math.random().toString(36).slice(2, 8);
const ROOM_A = `auth-a-${suffix}`;
const ROOM_B = `auth-b-${suffix}`;

let server;
let browser;
const people = {}; // name -> { name, context, page, logs }

const run = scenario(() => dumpLogs(server, people), { timeoutMs: 60_000 });
const { step } = run;

/** A token from `sfu-server token` (flags: --publish, --subscribe, ...). */
function mint(room, identity, flags = []) {
  const out = spawnSync(
    BIN,
    ['token', '--api-key', API_KEY, '--api-secret', API_SECRET, '--room', room, '--identity', identity, '--ttl', '1h', ...flags],
    { encoding: 'utf8' },
  );
  assert.equal(out.status, 0, `sfu-server token failed: ${out.stderr}`);
  return out.stdout.trim();
}

/** An HS256 token whose `exp` is an hour past, signed with the right secret. */
function expiredToken(room, identity) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    iss: API_KEY, sub: identity, room, iat: now - 7200, nbf: now - 7200, exp: now - 3600,
    grants: { canPublish: true, canSubscribe: true, canPublishData: true, roomCreate: true },
  })}`;
  return `${body}.${createHmac('sha256', API_SECRET).update(body).digest('base64url')}`;
}

/** Opens `/?room=R&token=T` in a fresh context and joins as `name`. */
async function openWithToken(name, room, token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const lines = [];
  const logs = { toString: () => lines.slice(-200).join('\n') };
  page.on('console', (msg) => lines.push(`[${name}] ${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => lines.push(`[${name}] pageerror: ${err.message}`));
  await page.goto(`${server.url}/?room=${encodeURIComponent(room)}&token=${encodeURIComponent(token)}`);
  people[name] = { name, context, page, logs };
  return people[name];
}

async function join(person) {
  await person.page.fill('#name', person.name);
  await person.page.click('#join');
}

function errorText(page) {
  return page.locator('#error-text').textContent();
}

describe('access tokens in the browser (production mode)', () => {
  before(async () => {
    server = await startServer({
      udpPort: await freeUdpPort(),
      extraArgs: ['--api-key', API_KEY, '--api-secret', API_SECRET],
    });
    assert.doesNotMatch(String(server.output), /DEV MODE/, 'the server must not be in dev mode');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('the server mints nothing: /api/token is 404', async () => {
    const r = await fetch(`${server.url}/api/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ room: ROOM_A, identity: 'x' }),
    });
    assert.equal(r.status, 404);
  });

  step('two participants with full tokens decode each other\'s video', async () => {
    await join(await openWithToken('Alice', ROOM_A, mint(ROOM_A, 'alice', ['--room-create'])));
    await join(await openWithToken('Bob', ROOM_A, mint(ROOM_A, 'bob')));
    const pages = [people.Alice, people.Bob];
    await waitFor(
      async () => {
        const results = await Promise.all(pages.map(async (p) => ({ who: p.name, s: await mediaStats(p.page) })));
        return { ok: results.every(({ s }) => Math.max(0, ...s.video) > 30), results };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.results) },
    );
  });

  step('a subscribe-only participant watches, cannot publish a camera, and nothing of it is forwarded', async () => {
    const mallory = await openWithToken('Mallory', ROOM_A, mint(ROOM_A, 'mallory', ['--subscribe']));
    await join(mallory); // the page joins receive-only: its token may not publish
    await waitFor(
      async () => {
        const s = await mediaStats(mallory.page);
        return { ok: s.video.length === 2 && s.video.every((f) => f > 30), s };
      },
      { timeoutMs: 20_000, describe: (v) => `Mallory decodes Alice and Bob: ${JSON.stringify(v.s)}` },
    );
    // She tries anyway: a camera offer on her signaling socket.
    await mallory.page.evaluate(async () => {
      const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const pc = new RTCPeerConnection();
      camera.getTracks().forEach((t) => pc.addTrack(t, camera));
      await pc.setLocalDescription(await pc.createOffer());
      window.sfu.signaling.send({ type: 'offer', sdp: pc.localDescription.sdp });
    });
    await waitFor(
      async () => {
        const text = (await errorText(mallory.page)) ?? '';
        return { ok: text.includes('may not publish'), text };
      },
      { timeoutMs: 15_000, describe: (v) => `error banner: ${v.text}` },
    );
    // Give any forwarded media time to show up, then count streams.
    await sleep(3000);
    for (const p of [people.Alice, people.Bob]) {
      const s = await mediaStats(p.page);
      assert.equal(s.video.length, 1, `${p.name} receives video only from the other full participant: ${JSON.stringify(s)}`);
      assert.equal(s.audio.length, 1, `${p.name} receives audio only from the other full participant: ${JSON.stringify(s)}`);
    }
    const metrics = await fetchMetrics(server.url);
    assert.match(metrics, /sfu_ws_errors_total\{code="forbidden"\} [1-9]/);
  });

  step('a participant of room B receives nothing of room A', async () => {
    const carol = await openWithToken('Carol', ROOM_B, mint(ROOM_B, 'carol', ['--room-create']));
    await join(carol);
    await waitFor(
      async () => {
        const s = await mediaStats(carol.page);
        return { ok: s.connectionState === 'connected', s };
      },
      { timeoutMs: 15_000, describe: (v) => JSON.stringify(v.s) },
    );
    await sleep(3000);
    const s = await mediaStats(carol.page);
    assert.deepEqual(s.video, [], `Carol decodes no video: ${JSON.stringify(s)}`);
    assert.deepEqual(s.audio, [], `Carol receives no audio: ${JSON.stringify(s)}`);
    assert.equal(await remoteTileCount(carol.page), 0);
    // Her token is for room B: room A is refused.
    const wrongRoom = await openWithToken('Carol2', ROOM_A, mint(ROOM_B, 'carol2'));
    await join(wrongRoom);
    await waitFor(
      async () => {
        const text = (await errorText(wrongRoom.page)) ?? '';
        return { ok: text.includes(`token is for room ${ROOM_B}`), text };
      },
      { timeoutMs: 10_000, describe: (v) => `error banner: ${v.text}` },
    );
    // And room A's participants still see only each other.
    assert.equal((await mediaStats(people.Alice.page)).video.length, 1);
  });

  step('an expired token gets a clear message in the page', async () => {
    const late = await openWithToken('Late', ROOM_A, expiredToken(ROOM_A, 'late'));
    await waitFor(
      async () => {
        const text = (await errorText(late.page)) ?? '';
        const visible = await late.page.locator('#error').isVisible();
        return { ok: visible && /expired/.test(text) && /access token/.test(text), text };
      },
      { timeoutMs: 10_000, describe: (v) => `error banner: ${v.text}` },
    );
    assert.equal(await late.page.evaluate(() => window.sfu.pc), null, 'no media connection');
  });
});
