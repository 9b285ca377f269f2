// Helpers for the browser end-to-end tests: spawning sfu-server, launching
// headless Chromium, joining a call as a participant, reading WebRTC stats,
// and a TCP proxy whose connections a test can cut.

import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server (Debian's) on a free loopback port (or `port`), persisting nothing:
 * `{ port, url, cli(...args), kill() }`; `cli` runs redis-cli against it.
 */
export async function startRedis({ port = null } = {}) {
  port ??= await freeTcpPort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();
  await waitFor(
    async () => {
      try {
        return { ok: cli('PING') === 'PONG' };
      } catch {
        return { ok: false };
      }
    },
    { timeoutMs: 10_000, describe: () => 'redis-server answers PING' },
  );
  return { port, url: `redis://127.0.0.1:${port}/`, cli, kill: () => proc.kill('SIGKILL') };
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/**
 * A TCP proxy on 127.0.0.1 to `targetPort` (a page loaded through it also
 * opens its WebSocket through it). `cut()` breaks every connection it
 * carries with a TCP reset and no WebSocket close, as a lost network path
 * or a restarted proxy would; new connections still go through.
 */
export async function startTcpProxy(targetPort) {
  const open = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    open.add(pair);
    const drop = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      const n = open.size;
      for (const { client, upstream } of [...open]) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      return n;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Keeps the last `max` lines written to it. */
class Tail {
  constructor(max = 300) {
    this.max = max;
    this.lines = [];
  }
  push(line) {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  toString() {
    return this.lines.join('\n');
  }
}

/**
 * Starts sfu-server on 127.0.0.1 with an ephemeral HTTP port (or `httpPort`)
 * and the given UDP port, and waits for its "listening on" line.
 */
export async function startServer({ udpPort, host = '127.0.0.1', httpPort = 0, tcpPort = 0, extraArgs = [], timeoutMs = 20_000, bin = null }) {
  bin ??= process.env.SFU_SERVER_BIN || path.join(repoRoot, 'target/debug/sfu-server');
  const args = ['--bind', `${host}:${httpPort}`, '--udp-port', String(udpPort), '--tcp-port', String(tcpPort), '--public-ip', host, ...extraArgs];
  // Off loopback the server runs in dev mode only when told to (tests that
  // configure --api-key/--api-secret run it in production mode).
  const loopback = /^(127\.|localhost$|::1$)/.test(host);
  if (!loopback && !extraArgs.includes('--api-key') && !extraArgs.includes('--dev')) args.push('--dev');
  // Plain log lines for the failure dump; and no drain on SIGTERM (calls
  // are still up when a test stops its server) unless a test asks for one
  // with --drain-timeout-secs.
  const env = { ...process.env, NO_COLOR: '1', SFU_DRAIN_TIMEOUT_SECS: '0' };
  const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = new Tail();
  let exited = null;

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${bin} printed no "listening on" line within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onLine = (stream) => (line) => {
      output.push(`[${stream}] ${line}`);
      const m = /sfu-server listening on (https?:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    };
    readLines(proc.stdout, onLine('stdout'));
    readLines(proc.stderr, onLine('stderr'));
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${err.message}`));
    });
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      clearTimeout(timer);
      reject(new Error(`${bin} exited early (code ${code}, signal ${signal})`));
    });
  }).catch((err) => {
    proc.kill('SIGKILL');
    err.message += `\n--- server output ---\n${output}`;
    throw err;
  });

  const exit = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    url,
    udpPort,
    output,
    /** The server's process id. */
    pid: proc.pid,
    /** Resolves to `{ code, signal }` when the process has exited. */
    exit,
    /** Sends `signal` to the process. */
    kill(signal) {
      proc.kill(signal);
    },
    async stop() {
      if (exited || proc.exitCode !== null) return;
      const done = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      const timedOut = await Promise.race([done.then(() => false), sleep(5000).then(() => true)]);
      if (timedOut) {
        proc.kill('SIGKILL');
        await done;
      }
    },
  };
}

function readLines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => buf && onLine(buf));
}

/** Whether this process runs in a network namespace with nothing but `lo`. */
export function inLoopbackOnlyNamespace() {
  // /proc/self/net/dev lists the interfaces of this process's namespace.
  const lines = readFileSync('/proc/self/net/dev', 'utf8').trim().split('\n').slice(2);
  return lines.every((l) => l.trim().startsWith('lo:'));
}

export function launchBrowser(
  executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  extraArgs = [],
) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * A headless Chromium whose process a test can kill (SIGKILL, as a crash
 * or a power cut would): `{ browser, kill() }`.
 */
export async function launchKillableBrowser(executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium') {
  const server = await chromium.launchServer({ executablePath, headless: true, args: CHROMIUM_ARGS });
  const browser = await chromium.connect(server.wsEndpoint());
  return { browser, kill: () => server.process().kill('SIGKILL') };
}

/**
 * Opens the client in a fresh browser context and joins `room` as `name`;
 * `query` is appended to the page's URL (say `&simulcast=0`).
 */
export async function joinCall(browser, baseUrl, room, name, { query = '' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const logs = new Tail(200);
  page.on('console', (msg) => logs.push(`${new Date().toISOString().slice(11, 23)} [${name}] ${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => logs.push(`[${name}] pageerror: ${err.message}`));
  await page.goto(`${baseUrl}/?room=${encodeURIComponent(room)}${query}`);
  await page.fill('#name', name);
  await page.click('#join');
  return { name, context, page, logs };
}

/** Polls `fn` until it returns a truthy value; throws `describe(last)` on timeout. */
export async function waitFor(fn, { timeoutMs, intervalMs = 250, describe = (v) => String(v) }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms: ${describe(last)}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * A summary of `window.sfu.pc.getStats()`: framesDecoded of each inbound
 * video, packetsReceived of each inbound audio, and the remote candidate of
 * the selected candidate pair.
 */
export async function mediaStats(page) {
  return page.evaluate(async () => {
    const pc = window.sfu?.pc;
    if (!pc) return { pc: false, video: [], audio: [], remoteCandidate: null };
    const report = await pc.getStats();
    const video = [];
    const audio = [];
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') video.push(s.framesDecoded ?? 0);
      if (s.type === 'inbound-rtp' && s.kind === 'audio') audio.push(s.packetsReceived ?? 0);
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId) ?? pair;
      }
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) pair = s;
      });
    }
    const remote = pair ? report.get(pair.remoteCandidateId) : null;
    return {
      pc: true,
      connectionState: pc.connectionState,
      video,
      audio,
      remoteCandidate: remote
        ? { address: remote.address ?? remote.ip, port: remote.port, protocol: remote.protocol }
        : null,
    };
  });
}

/**
 * Each inbound video of `window.sfu.pc`: its track id (the SFU's `t<n>`),
 * framesDecoded and frame size. Empty without a connection.
 */
export async function inboundVideo(page) {
  return page.evaluate(async () => {
    const pc = window.sfu?.pc;
    if (!pc) return [];
    const out = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.push({ trackId: s.trackIdentifier, framesDecoded: s.framesDecoded ?? 0, width: s.frameWidth ?? 0 });
      }
    });
    return out;
  });
}

/** One sample's value from a Prometheus text exposition, or 0. */
export function metricValue(text, name, labels = '') {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Total remote video framesDecoded on `page`. */
export function framesDecoded(page) {
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

/**
 * Waits until every one of `people` decodes more than `more` video frames
 * beyond `base` (one figure per person; 0 if not given). Returns
 * `{ frames }`.
 */
export async function waitAllDecoding(people, { more = 30, base = null, timeoutMs = 30_000 } = {}) {
  const start = base ?? people.map(() => 0);
  const { frames } = await waitFor(
    async () => {
      const f = await Promise.all(people.map((p) => framesDecoded(p.page)));
      return { ok: f.every((n, i) => n > start[i] + more), frames: f };
    },
    { timeoutMs, describe: (v) => `framesDecoded ${v.frames.join(' and ')} (wanted more than ${more} beyond ${start.join(' and ')})` },
  );
  return { frames };
}

/** The call ID the page registered, once it has one. */
export async function waitForCallId(page, timeout = 10_000) {
  await page.waitForFunction(() => /^[2-9A-HJKMNP-Z]{7}$/.test(window.sfu.callId ?? ''), null, { timeout });
  return page.evaluate(() => window.sfu.callId);
}

export function remoteTileCount(page) {
  return page.locator('.tile.remote[data-peer-id]').count();
}

export function remoteTileNames(page) {
  return page.$$eval('.tile.remote[data-peer-id] .name', (els) =>
    els.map((e) => e.textContent).sort(),
  );
}

export async function fetchMetrics(baseUrl) {
  const res = await fetch(`${baseUrl}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
  return res.text();
}

/**
 * Opens the web client's home screen in a fresh context as `name` (typed
 * into the name field). `viewport` defaults to 1280x720; `init(context)`
 * runs before the page opens (to add init scripts); `contextOptions` go to
 * `browser.newContext` (for example `deviceScaleFactor`).
 */
export async function openHome(
  browser,
  baseUrl,
  name,
  { viewport = { width: 1280, height: 720 }, path: urlPath = '/', init = null, contextOptions = {} } = {},
) {
  const context = await browser.newContext({ viewport, ...contextOptions });
  if (init) await init(context);
  const page = await context.newPage();
  const logs = new Tail(200);
  page.on('console', (msg) => logs.push(`${new Date().toISOString().slice(11, 23)} [${name}] ${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => logs.push(`[${name}] pageerror: ${err.message}`));
  await page.goto(`${baseUrl}${urlPath}`);
  await page.fill('#name', name);
  await page.locator('#name').dispatchEvent('change');
  return { name, context, page, logs };
}

/** Saves a PNG of `page` as test-artifacts/`file`, at `viewport` if given. */
export async function saveScreenshot(page, file, viewport = null) {
  const dir = path.join(repoRoot, 'test-artifacts');
  await mkdir(dir, { recursive: true });
  const before = page.viewportSize();
  if (viewport) {
    await page.setViewportSize(viewport);
    await sleep(400); // let the grid lay itself out again
  }
  await page.screenshot({ path: path.join(dir, file) });
  if (viewport && before) await page.setViewportSize(before);
}

/** packetsSent of each outbound audio and video stream of `window.sfu.pc`. */
export async function outboundStats(page) {
  return page.evaluate(async () => {
    // One entry per outbound stream: a simulcast camera has one per layer.
    const out = { audio: [], video: [] };
    const pc = window.sfu?.pc;
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp') out[s.kind]?.push(s.packetsSent ?? 0);
    });
    return out;
  });
}

/** The sum of `xs` (say, packets sent over every layer of a simulcast camera). */
export function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}

/** Records every server message the page receives in `window.__messages`. */
export async function recordMessages(page) {
  await page.evaluate(() => {
    window.__messages = [];
    const handlers = window.sfu.signaling.handlers;
    const original = handlers.onMessage;
    handlers.onMessage = (msg) => {
      window.__messages.push(msg);
      original(msg);
    };
  });
}

export { sleep };

/**
 * The steps of one scenario, run in order: after a step fails, the later
 * ones are skipped and `diagnose()` prints, once, what helps to debug it.
 */
export function scenario(diagnose, { timeoutMs = 60_000 } = {}) {
  const run = { failed: false };
  run.step = (name, fn) =>
    it(name, { timeout: timeoutMs }, async (t) => {
      if (run.failed) return t.skip('an earlier step failed');
      try {
        await fn();
      } catch (err) {
        run.failed = true;
        await diagnose();
        throw err;
      }
    });
  return run;
}

/** The server's log tail and each participant's console, on stderr. */
export function dumpLogs(server, people, extra = '') {
  console.error(`=== sfu-server output (tail) ===\n${server?.output}${extra}`);
  for (const p of Object.values(people)) console.error(`=== ${p.name} console ===\n${p.logs}`);
}
