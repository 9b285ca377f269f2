// End-to-end test for operators: a real Prometheus scrapes sfu-server during
// a two-browser call, the scrape passes promtool, and the admin API lists,
// measures and kicks live participants.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  dumpLogs,
  fetchMetrics,
  freeTcpPort,
  freeUdpPort,
  joinCall,
  launchBrowser,
  mediaStats,
  remoteTileCount,
  scenario,
  startServer,
  waitFor,
} from './lib.mjs';

const TOKEN = 'operators-test-token';
const room = `ops-${Math.random().toString(36).slice(2, 10)}`;

let server;
let browser;
let prom;
const people = {};

/** Starts Prometheus on loopback, scraping `target` (host:port) every second. */
async function startPrometheus(target) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sfu-prom-'));
  const config = path.join(dir, 'prometheus.yml');
  await writeFile(
    config,
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sfu\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const port = await freeTcpPort();
  const proc = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  proc.stderr.on('data', (d) => {
    log = (log + d).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    log: () => log,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = await res.json();
      if (body.status !== 'success') throw new Error(`query ${expr}: ${JSON.stringify(body)}`);
      return body.data.result.map((r) => Number(r.value[1]));
    },
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function api(method, pathname, token = TOKEN) {
  const res = await fetch(`${server.url}${pathname}`, {
    method,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const run = scenario(() => dumpLogs(server, people, `\n=== prometheus ===\n${prom?.log()}`));
const { step } = run;

describe('operators: Prometheus, promtool and the admin API on a live call', () => {
  before(async () => {
    server = await startServer({ udpPort: await freeUdpPort(), extraArgs: ['--admin-token', TOKEN] });
    prom = await startPrometheus(new URL(server.url).host);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await prom?.stop().catch(() => {});
    await server?.stop();
  });

  step('two browsers call; Prometheus sees 2 peers and forwarded packets', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    await waitFor(
      async () => {
        const s = await Promise.all([people.Alice, people.Bob].map((p) => mediaStats(p.page)));
        return { ok: s.every((x) => Math.max(0, ...x.video) > 30), s };
      },
      { timeoutMs: 15_000, describe: (v) => JSON.stringify(v.s) },
    );
    const seen = await waitFor(
      async () => {
        const peers = await prom.query('sfu_peers');
        const rate = await prom.query('sum(rate(sfu_rtp_packets_out_total[5s]))');
        return { ok: peers[0] === 2 && rate[0] > 0, peers, rate };
      },
      { timeoutMs: 20_000, describe: (v) => `sfu_peers ${v.peers}, forwarded rate ${v.rate}` },
    );
    assert.equal(seen.peers[0], 2);
    assert.ok(seen.rate[0] > 50, `forwarded packets/s ${seen.rate[0]}`);
  });

  step('the scrape passes promtool check metrics', async () => {
    const text = await fetchMetrics(server.url);
    const proc = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    proc.stdin.end(text);
    const code = await new Promise((r) => proc.once('exit', r));
    assert.equal(code, 0, `promtool: ${out}`);
    assert.match(text, /^sfu_forward_latency_seconds_count [1-9]\d*$/m, 'forwarding latency sampled');
    assert.match(text, /^sfu_join_time_seconds_count 2$/m, 'one join time per participant');
    assert.match(text, /^sfu_ice_connections_total\{transport="udp"\} 2$/m);
  });

  step('the admin API lists both participants with live figures', async () => {
    assert.equal((await api('GET', '/api/rooms', null)).status, 401);
    assert.equal((await api('GET', '/api/rooms', 'wrong')).status, 401);
    const { body } = await waitFor(
      async () => {
        const r = await api('GET', '/api/rooms');
        const ps = r.body?.rooms?.find((x) => x.name === room)?.participants ?? [];
        const ok = ps.length === 2 && ps.every((p) => p.connected && p.bitrateInBps > 0 && p.bitrateOutBps > 0 && p.rttMs !== null && p.bandwidthEstimateBps > 0);
        return { ok, body: r.body };
      },
      { timeoutMs: 10_000, describe: (v) => JSON.stringify(v.body) },
    );
    const ps = body.rooms.find((x) => x.name === room).participants;
    assert.deepEqual(ps.map((p) => p.name), ['Alice', 'Bob']);
    for (const p of ps) {
      assert.equal(p.transport, 'udp');
      // From Chromium's receiver reports: loopback, so tiny but measured.
      assert.ok(p.rttMs !== null && p.rttMs >= 0 && p.rttMs < 50, `${p.name} rttMs ${p.rttMs}`);
      assert.ok(p.jitterMs !== null && p.jitterMs >= 0 && p.jitterMs < 100, `${p.name} jitterMs ${p.jitterMs}`);
      assert.equal(p.loss, 0, `${p.name} loss`);
      assert.ok(p.bandwidthEstimateBps > 100_000, `${p.name} bandwidthEstimateBps ${p.bandwidthEstimateBps}`);
      assert.equal(p.tracks.length, 2, `${p.name} publishes audio and video`);
      assert.equal(p.subscriptions, 2);
    }
    const bob = ps.find((p) => p.name === 'Bob');
    const one = await api('GET', `/api/rooms/${room}/participants/${bob.peerId}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.name, 'Bob');
    people.Bob.peerId = bob.peerId;

    // The SFU's receiver reports give the browser a sane RTT and jitter for
    // what it publishes (remote-inbound-rtp), and its sender reports a
    // remote-outbound-rtp for what it receives.
    const rtcp = await people.Alice.page.evaluate(async () => {
      const out = { remoteInbound: [], remoteOutbound: 0 };
      (await window.sfu.pc.getStats()).forEach((s) => {
        if (s.type === 'remote-inbound-rtp') out.remoteInbound.push({ kind: s.kind, rtt: s.roundTripTime, jitter: s.jitter });
        if (s.type === 'remote-outbound-rtp') out.remoteOutbound += 1;
      });
      return out;
    });
    // One per outbound stream: audio, and each simulcast layer of the
    // camera. A layer nobody receives (paused by dynacast) may have no RTT.
    const measured = rtcp.remoteInbound.filter((r) => r.rtt !== undefined);
    assert.ok(measured.some((r) => r.kind === 'audio') && measured.some((r) => r.kind === 'video'),
      `remote-inbound-rtp: ${JSON.stringify(rtcp)}`);
    for (const r of rtcp.remoteInbound) {
      if (r.rtt !== undefined) assert.ok(r.rtt >= 0 && r.rtt < 0.05, `${r.kind} roundTripTime ${r.rtt}`);
      assert.ok(r.jitter >= 0 && r.jitter < 0.1, `${r.kind} jitter ${r.jitter}`);
    }
    assert.ok(rtcp.remoteOutbound >= 2, `remote-outbound-rtp: ${JSON.stringify(rtcp)}`);
  });

  step('kicking Bob tells him and removes him from Alice\'s call', async () => {
    const r = await api('DELETE', `/api/rooms/${room}/participants/${people.Bob.peerId}`);
    assert.equal(r.status, 204);
    await people.Bob.page.locator('#error-text', { hasText: 'removed' }).waitFor({ timeout: 5_000 });
    await waitFor(async () => ({ ok: (await remoteTileCount(people.Alice.page)) === 0 }), {
      timeoutMs: 5_000,
      describe: () => 'Alice still shows Bob',
    });
    assert.match(await fetchMetrics(server.url), /^sfu_leaves_total\{reason="kicked"\} 1$/m);
  });

  step('after Alice leaves, Prometheus sees 0 peers', async () => {
    await people.Alice.page.click('#leave');
    const seen = await waitFor(
      async () => {
        const peers = await prom.query('sfu_peers');
        return { ok: peers[0] === 0, peers };
      },
      { timeoutMs: 10_000, describe: (v) => `sfu_peers ${v.peers}` },
    );
    assert.equal(seen.peers[0], 0);
  });
});
