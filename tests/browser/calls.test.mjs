// End-to-end test of 1:1 calls by call ID in headless Chromium through a real
// sfu-server: Bob's ID is stable across a reload, Alice calls it, Bob's page
// rings and he answers, both decode each other's video, a third person
// cannot join the private room, and hanging up returns both to the home
// screen. Also decline, cancel, ring timeout (shortened), busy, unknown and
// malformed IDs, and a closed tab ending the call for the other side.
// Screenshots of the home screen, the ringing banner and the call at
// 1280x720 and 390x844 go to test-artifacts/.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  dumpLogs,
  fetchMetrics,
  freeUdpPort,
  launchBrowser,
  mediaStats,
  openHome,
  recordMessages,
  remoteTileNames,
  saveScreenshot,
  scenario,
  startServer,
  waitFor,
} from './lib.mjs';

const RING_TIMEOUT_SECS = 4;
const PHONE = { width: 390, height: 844 };

let server;
let browser;
const people = {}; // name -> { name, context, page, logs }

const run = scenario(() => dumpLogs(server, people));
const { step } = run;

const callId = (p) => p.page.evaluate(() => window.sfu.callId);
const visible = (p, selector, timeout = 5_000) => p.page.locator(selector).waitFor({ state: 'visible', timeout });
const hidden = (p, selector, timeout = 5_000) => p.page.locator(selector).waitFor({ state: 'hidden', timeout });
const text = (p, selector) => p.page.locator(selector).textContent();

async function waitForCallId(p) {
  await p.page.waitForFunction(() => /^[2-9A-HJKMNP-Z]{7}$/.test(window.sfu.callId ?? ''), null, { timeout: 10_000 });
  return callId(p);
}

async function dial(from, id) {
  await from.page.fill('#callee-id', id);
  await from.page.click('#call-button');
}

/** Alice calls Bob and Bob answers; both decode > 50 frames. */
async function connectCall(caller, callee) {
  await dial(caller, await callId(callee));
  await visible(callee, '#incoming');
  await callee.page.click('#answer');
  await waitFor(
    async () => {
      const s = await Promise.all([caller, callee].map((p) => mediaStats(p.page)));
      return { ok: s.every((x) => Math.max(0, ...x.video) > 50), s };
    },
    { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.s) },
  );
}

async function expectNotice(p, pattern, timeout = 5_000) {
  await p.page.locator('#notice-text', { hasText: pattern }).waitFor({ state: 'visible', timeout });
}

describe('1:1 calls by call ID', () => {
  before(async () => {
    server = await startServer({
      udpPort: await freeUdpPort(),
      extraArgs: ['--ring-timeout-secs', String(RING_TIMEOUT_SECS)],
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('each page gets a call ID, stable across a reload', async () => {
    people.Alice = await openHome(browser, server.url, 'Alice');
    people.Bob = await openHome(browser, server.url, 'Bob');
    const aliceId = await waitForCallId(people.Alice);
    const bobId = await waitForCallId(people.Bob);
    assert.notEqual(aliceId, bobId);
    assert.equal(await text(people.Bob, '#my-call-id'), bobId, 'the ID is shown');
    await people.Bob.page.reload();
    assert.equal(await waitForCallId(people.Bob), bobId, 'same ID after a reload');
    assert.equal(await people.Bob.page.inputValue('#name'), 'Bob', 'name remembered');
    await saveScreenshot(people.Alice.page, 'home-1280x720.png');
    await saveScreenshot(people.Alice.page, 'home-390x844.png', PHONE);
  });

  step('Alice calls Bob: "Calling Bob…" and a ringing banner naming Alice', async () => {
    await dial(people.Alice, await callId(people.Bob));
    await people.Alice.page.locator('#outgoing-text', { hasText: 'Calling Bob…' }).waitFor({ timeout: 5_000 });
    await visible(people.Bob, '#incoming');
    assert.equal(await text(people.Bob, '#incoming-text'), 'Alice is calling you');
    await saveScreenshot(people.Bob.page, 'ringing-1280x720.png');
    await saveScreenshot(people.Bob.page, 'ringing-390x844.png', PHONE);
  });

  step('Bob answers: both decode each other\'s video, tiles named', async () => {
    await people.Bob.page.click('#answer');
    const { s } = await waitFor(
      async () => {
        const s = await Promise.all([people.Alice, people.Bob].map((p) => mediaStats(p.page)));
        return { ok: s.every((x) => Math.max(0, ...x.video) > 50 && Math.max(0, ...x.audio) > 50), s };
      },
      { timeoutMs: 20_000, describe: (v) => JSON.stringify(v.s) },
    );
    for (const x of s) assert.ok(Math.max(...x.video) > 50, `framesDecoded ${x.video}`);
    assert.deepEqual(await remoteTileNames(people.Alice.page), ['Bob']);
    assert.deepEqual(await remoteTileNames(people.Bob.page), ['Alice']);
    await hidden(people.Alice, '#outgoing');
    await hidden(people.Bob, '#incoming');
    await saveScreenshot(people.Alice.page, 'call-1280x720.png');
    await saveScreenshot(people.Bob.page, 'call-390x844.png', PHONE);
  });

  step('a third person cannot join the private room, even knowing its name', async () => {
    const room = await people.Alice.page.evaluate(() => window.sfu.room.room);
    assert.match(room, /^call-[0-9a-f]{32}$/, '128 random bits');
    people.Mallory = await openHome(browser, server.url, 'Mallory', { path: `/?room=${room}` });
    await waitForCallId(people.Mallory);
    await people.Mallory.page.click('#join');
    await people.Mallory.page.locator('#error-text', { hasText: 'private call' }).waitFor({ timeout: 5_000 });
    await visible(people.Mallory, '#home-view');
    assert.match(await fetchMetrics(server.url), /^sfu_ws_errors_total\{code="private_room"\} 1$/m);
    assert.match(await fetchMetrics(server.url), /^sfu_peers 2$/m);
  });

  step('Alice hangs up: both are back home within 5 s, Bob is told', async () => {
    const started = Date.now();
    await people.Alice.page.click('#leave');
    await Promise.all([visible(people.Alice, '#home-view'), visible(people.Bob, '#home-view')]);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    await expectNotice(people.Bob, 'Alice hung up.');
    await waitFor(async () => ({ ok: /^sfu_peers 0$/m.test(await fetchMetrics(server.url)) }), {
      timeoutMs: 5_000,
      describe: () => 'peers remain after hang-up',
    });
  });

  step('Bob declines: Alice is told', async () => {
    await dial(people.Alice, await callId(people.Bob));
    await visible(people.Bob, '#incoming');
    await people.Bob.page.click('#decline');
    await hidden(people.Bob, '#incoming');
    await expectNotice(people.Alice, 'Bob declined the call.');
    await hidden(people.Alice, '#outgoing');
  });

  step('Alice cancels: Bob stops ringing and sees a missed call', async () => {
    await dial(people.Alice, await callId(people.Bob));
    await visible(people.Bob, '#incoming');
    await visible(people.Alice, '#cancel-call');
    await people.Alice.page.click('#cancel-call');
    await hidden(people.Bob, '#incoming');
    await expectNotice(people.Bob, 'Missed call from Alice.');
  });

  step(`nobody answers: both are told after the ${RING_TIMEOUT_SECS} s ring timeout`, async () => {
    const started = Date.now();
    await dial(people.Alice, await callId(people.Bob));
    await visible(people.Bob, '#incoming');
    await expectNotice(people.Alice, 'Bob did not answer.', 10_000);
    const waited = Date.now() - started;
    assert.ok(waited >= RING_TIMEOUT_SECS * 1000 - 500 && waited < RING_TIMEOUT_SECS * 1000 + 3000, `after ${waited} ms`);
    await expectNotice(people.Bob, 'Missed call from Alice.');
    await hidden(people.Bob, '#incoming');
  });

  step('unknown and malformed IDs get a clear message', async () => {
    await dial(people.Alice, 'ZZZZZZZ');
    await people.Alice.page.locator('#error-text', { hasText: 'No one with call ID ZZZZZZZ is online' }).waitFor({ timeout: 5_000 });
    await dial(people.Alice, 'abc');
    await people.Alice.page.locator('#error-text', { hasText: 'is not a call ID' }).waitFor({ timeout: 5_000 });
    await dial(people.Alice, await callId(people.Alice));
    await people.Alice.page.locator('#error-text', { hasText: 'your own call ID' }).waitFor({ timeout: 5_000 });
    await people.Alice.page.click('#error-close');
  });

  step('busy: Mallory calls Bob during a call; a closed tab ends the call within 10 s', async () => {
    await connectCall(people.Alice, people.Bob);
    await dial(people.Mallory, await callId(people.Bob));
    await expectNotice(people.Mallory, 'Bob is busy in another call.');
    await expectNotice(people.Bob, 'Missed call from Mallory');
    const started = Date.now();
    await people.Bob.context.close();
    delete people.Bob;
    await visible(people.Alice, '#home-view', 10_000);
    // The closing page hangs up; had it not managed to, the server would end
    // the call when its rejoin grace period (5 s) is over.
    await expectNotice(people.Alice, /Bob hung up\.|Bob's connection was lost/);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  });

  step('a flood of call requests is rate limited', async () => {
    const alice = people.Alice.page;
    await recordMessages(alice);
    await alice.evaluate(() => {
      for (let i = 0; i < 20; i++) window.sfu.signaling.send({ type: 'call', to: 'ZZZZZZZ' });
    });
    const { codes } = await waitFor(
      async () => {
        const codes = await alice.evaluate(() => window.__messages.filter((m) => m.type === 'error').map((m) => m.code));
        return { ok: codes.length === 20, codes };
      },
      { timeoutMs: 5_000, describe: (v) => `errors: ${v.codes}` },
    );
    const limited = codes.filter((c) => c === 'rate_limited').length;
    assert.ok(limited >= 13, `${limited} of 20 rate limited: ${codes}`);
    assert.equal(codes.filter((c) => c === 'unknown_id').length, 20 - limited);
    await alice.locator('#error-text', { hasText: 'Too many calls' }).waitFor({ timeout: 5_000 });
    const metrics = await fetchMetrics(server.url);
    assert.equal(Number(/^sfu_ws_errors_total\{code="rate_limited"\} (\d+)$/m.exec(metrics)?.[1]), limited);
  });
});
