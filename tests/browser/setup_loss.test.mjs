// Call set-up under loss: two headless Chromium peers join through the SFU
// with 5% random loss and 40 ms delay on every datagram in each direction,
// from the very first one (STUN, DTLS, then media), through the userspace
// impairment relay (impair.mjs; see loss.test.mjs for the addressing).
// Every one of several set-ups must reach decoded video on both sides
// within 20 s. Before the SFU dropped repeated DTLS ClientHellos
// (sfu/src/core/dtls_guard.rs), about one set-up in eight stalled in DTLS
// for good when one of the SFU's handshake datagrams was lost.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startImpairRelay } from './impair.mjs';
import {
  fetchMetrics,
  freeUdpPort,
  inLoopbackOnlyNamespace,
  joinCall,
  launchBrowser,
  startServer,
  waitFor,
} from './lib.mjs';

const SETUPS = Number(process.env.SETUP_LOSS_RUNS ?? 6);
const MEDIA_BIND_IP = '127.0.0.1';
const PUBLIC_IP = '127.0.0.2';

async function decoded(page) {
  return page.evaluate(async () => {
    const pc = window.sfu?.pc;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0;
    });
    return n;
  });
}

describe('call set-up with 5% loss and 40 ms delay from the first datagram', {
  skip: !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)',
}, () => {
  let browser;
  let relay;
  let server;

  before(async () => {
    const udpPort = await freeUdpPort();
    relay = await startImpairRelay({
      listen: { host: PUBLIC_IP, port: udpPort },
      target: { host: MEDIA_BIND_IP, port: udpPort },
      toServer: { loss: 0.05, delayMs: 40 },
      toClient: { loss: 0.05, delayMs: 40 },
    });
    // One media Worker: the relay forwards its one UDP port.
    server = await startServer({ udpPort, host: PUBLIC_IP, extraArgs: ['--media-bind-ip', MEDIA_BIND_IP, '--workers', '1'] });
    // The camera needs a secure context; this plain-HTTP origin is not
    // localhost, so it is declared secure for the test.
    browser = await launchBrowser(undefined, [`--unsafely-treat-insecure-origin-as-secure=${server.url}`]);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
    await relay?.stop();
  });

  it(`${SETUPS} set-ups in a row all reach decoded video`, { timeout: SETUPS * 40_000 }, async () => {
    const times = [];
    for (let i = 0; i < SETUPS; i++) {
      const room = `setup-${i}-${Math.random().toString(36).slice(2, 8)}`;
      const started = Date.now();
      const people = [
        await joinCall(browser, server.url, room, 'Alice'),
        await joinCall(browser, server.url, room, 'Bob'),
      ];
      try {
        await waitFor(
          async () => {
            const frames = await Promise.all(people.map((p) => decoded(p.page)));
            return { ok: frames.every((f) => f > 0), frames };
          },
          {
            timeoutMs: 20_000,
            intervalMs: 250,
            describe: (v) => `set-up ${i + 1}: frames decoded ${JSON.stringify(v.frames)}\n${server.output}`,
          },
        );
        times.push(Date.now() - started);
      } finally {
        for (const p of people) await p.context.close().catch(() => {});
      }
    }
    const metrics = await fetchMetrics(server.url);
    const repeats = /^sfu_dtls_repeats_dropped_total (\d+)/m.exec(metrics)?.[1];
    console.log(`set-up under loss: ${times.length}/${SETUPS} reached video, in ${times.join(', ')} ms; repeated ClientHellos dropped: ${repeats}`);
    assert.equal(times.length, SETUPS);
  });
});
