// A signaling flood does not reach other rooms: while Alice and Bob are in a
// call, a third page opens a WebSocket and sends 10,000 messages as fast as
// it can. The server drops what is over the per-connection rate, closes the
// flooding socket (1008), counts the drops in /metrics, and the call goes on
// decoding video throughout.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  framesDecoded,
  joinCall,
  launchBrowser,
  metricValue,
  scenario,
  sleep,
  startServer,
  waitAllDecoding,
} from './lib.mjs';

const room = `flood-${Math.random().toString(36).slice(2, 10)}`;

let server;
let browser;
const people = {};

const run = scenario(() => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output ?? '(not started)'}`);
  for (const p of Object.values(people)) console.error(`--- ${p.name} ---\n${p.logs}`);
});
const { step } = run;

describe('a signaling flood from one socket', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort() });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('Alice and Bob decode each other before the flood', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    await waitAllDecoding([people.Alice, people.Bob]);
  });

  step('10,000 messages are dropped past the rate, the socket closed, and the call keeps decoding', async () => {
    const before = await fetchMetrics(server.url);
    const dropsBefore = metricValue(before, 'sfu_limit_rejections_total{limit="message_rate"}');
    const framesBefore = [await framesDecoded(people.Alice.page), await framesDecoded(people.Bob.page)];
    const started = Date.now();

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/healthz`);
    const result = await page.evaluate(async (wsUrl) => {
      const ws = new WebSocket(wsUrl);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error('websocket did not open'));
      });
      const received = { pong: 0, rate_limited: 0 };
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === 'pong') received.pong += 1;
        if (msg.code === 'rate_limited') received.rate_limited += 1;
      };
      const closed = new Promise((resolve) => {
        ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
      });
      let sent = 0;
      for (let i = 0; i < 10_000 && ws.readyState === WebSocket.OPEN; i += 1) {
        ws.send(i % 2 ? '{"type":"ping"}' : 'not json at all');
        sent += 1;
      }
      const close = await Promise.race([closed, new Promise((r) => setTimeout(() => r(null), 15_000))]);
      return { sent, close, received };
    }, `${server.url.replace(/^http/, 'ws')}/ws`);
    await context.close();
    const floodMs = Date.now() - started;

    // The call decodes on through the flood and after it.
    await sleep(2000);
    const framesAfter = [await framesDecoded(people.Alice.page), await framesDecoded(people.Bob.page)];
    const seconds = (Date.now() - started) / 1000;
    const rates = framesAfter.map((f, i) => (f - framesBefore[i]) / seconds);

    const text = await fetchMetrics(server.url);
    const drops = metricValue(text, 'sfu_limit_rejections_total{limit="message_rate"}') - dropsBefore;
    console.log(
      `flood: sent ${result.sent} in ${floodMs} ms, close ${JSON.stringify(result.close)}, ` +
        `pongs ${result.received.pong}, rate_limited errors ${result.received.rate_limited}, ` +
        `drops counted ${drops}; call decoded ${rates.map((r) => r.toFixed(1)).join(' and ')} frames/s`,
    );
    assert.equal(result.sent, 10_000, 'the page sent all 10,000 messages');
    assert.deepEqual(result.close, { code: 1008, reason: 'message flood' });
    assert.ok(drops >= 2000, `drops counted: ${drops}`);
    assert.ok(result.received.rate_limited >= 1 && result.received.rate_limited <= Math.ceil(floodMs / 1000) + 1, 'one warning a second');
    for (const r of rates) assert.ok(r > 10, `the call kept decoding: ${r.toFixed(1)} frames/s`);
  });
});
