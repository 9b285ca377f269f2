// The compose stack (deploy/compose.yaml), run for real without containers:
// `docker compose config` resolves compose.yaml with a test .env, and this
// test starts sfu-server, Prometheus, coturn and Redis with the
// environment, command lines and config files it resolves (container paths
// mapped back to the files compose mounts), inside a network namespace that
// plays the Docker host (host networking, as in compose.yaml):
//
//   [this namespace: the test]  198.51.100.254/24
//        |
//   [srv: the host, 198.51.100.1 and 203.0.113.1 (SFU_PUBLIC_IP):
//    sfu-server, prometheus, turnserver, redis-server]
//        | 203.0.113.1/24 -- 203.0.113.2/24
//   [cli: two headless Chromiums that reach only TCP 8080 and UDP 3478 of
//    the host, so media must go through coturn]
//
// Then: Prometheus scrapes sfu-server (and keeps 15 days), Redis answers,
// a call between the two browsers is relayed by coturn with credentials
// sfu-server mints from the shared secret (framesDecoded > 50, selected
// pair relay), every Grafana dashboard query runs in that Prometheus on
// metrics the server exports, and deploy/docker/sfu-drain drains the server
// until it exits.
//
// Needs `bash deploy/check.sh --tools-only` first (Docker Compose into
// target/deploy-tools; .ci/run does it), and prometheus, coturn and
// redis-server from Debian. DEPLOY_TEST_TURN_VERBOSE=1 adds coturn's
// --verbose (its session log) to the output of a failure.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  fetchMetrics,
  inLoopbackOnlyNamespace,
  joinCall,
  launchBrowser,
  repoRoot,
  scenario,
  sleep,
  waitFor,
} from './lib.mjs';
import { Topology, framesDecoded, metricValue, selectedPair } from './netns.mjs';

const HOST_IP = '198.51.100.1'; // the host, as the test reaches it
const PUBLIC_IP = '203.0.113.1'; // the host, as browsers reach it
const composeBin = process.env.DOCKER_COMPOSE_BIN || path.join(repoRoot, 'target/deploy-tools/bin/docker-compose');
const serverBin = process.env.SFU_SERVER_BIN || path.join(repoRoot, 'target/debug/sfu-server');
const skip = !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)';

// deploy/.env for this test: the required settings, and addresses the test
// namespace can reach. Everything else keeps compose.yaml's defaults.
// SFU_DEV: no access tokens for the call page (servers without the flag
// ignore it), since no API key is set here.
const TEST_ENV = {
  SFU_PUBLIC_IP: PUBLIC_IP,
  SFU_TURN_SECRET: 'deploy-test-turn-secret',
  SFU_ADMIN_TOKEN: 'deploy-test-admin-token',
  SFU_DEV: 'true',
  SFU_DRAIN_TIMEOUT_SECS: '5',
  GRAFANA_ADMIN_PASSWORD: 'deploy-test-grafana',
  PROMETHEUS_LISTEN: `${HOST_IP}:9090`,
};

/** `docker compose config` of deploy/compose.yaml with `env`, as JSON. */
function composeConfig(envFile) {
  if (!existsSync(composeBin)) {
    throw new Error(`${composeBin} is missing: run bash deploy/check.sh --tools-only first`);
  }
  // Only PATH from our environment: variables passed through by
  // compose.yaml must come from the env file alone.
  const out = execFileSync(
    composeBin,
    ['-f', path.join(repoRoot, 'deploy/compose.yaml'), '--env-file', envFile, 'config', '--format', 'json'],
    { env: { PATH: process.env.PATH, HOME: os.tmpdir() }, encoding: 'utf8' },
  );
  return JSON.parse(out);
}

/**
 * A service's command with its container paths replaced by what compose
 * mounts there: bind mounts by their source, named volumes by a fresh
 * directory under `dir`.
 */
function hostCommand(service, dir) {
  const mounts = (service.volumes ?? []).map((v) => ({
    target: v.target,
    source: v.type === 'bind' ? v.source : path.join(dir, v.source),
  }));
  mounts.sort((a, b) => b.target.length - a.target.length);
  return (service.command ?? []).map((arg) => {
    for (const { target, source } of mounts) {
      const i = arg.indexOf(target);
      const end = i + target.length;
      if (i >= 0 && (end === arg.length || arg[end] === '/')) return arg.slice(0, i) + source + arg.slice(end);
    }
    return arg;
  });
}

/** A service's environment without the unset pass-through variables. */
function hostEnv(service) {
  return Object.fromEntries(Object.entries(service.environment ?? {}).filter(([, v]) => v !== null));
}

class Proc {
  constructor(name, child) {
    this.name = name;
    this.child = child;
    this.log = '';
    this.exit = null;
    const keep = (d) => {
      this.log = (this.log + d).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  async waitFor(re, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.log)) {
      if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}):\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`${this.name} printed no ${re} within ${timeoutMs} ms:\n${this.log}`);
      await sleep(100);
    }
  }

  async stop(signal = 'SIGTERM') {
    if (this.exit) return;
    this.child.kill(signal);
    const timedOut = await Promise.race([this.exited.then(() => false), sleep(5000).then(() => true)]);
    if (timedOut) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** The metric names a PromQL expression uses (as signaling/tests/dashboard.rs finds them). */
function metricNames(expr) {
  return [...expr.matchAll(/(?<![A-Za-z0-9_:])((?:sfu_|process_)[a-z0-9_]+)/g)].map((m) => m[1]);
}

/** Every panel's PromQL, with Grafana's variables given values. */
function dashboardQueries() {
  const dashboard = JSON.parse(readFileSync(path.join(repoRoot, 'deploy/grafana/sfu-dashboard.json'), 'utf8'));
  const out = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) {
        if (t.expr) out.push({ panel: p.title, expr: t.expr });
      }
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out.map((q) => ({
    ...q,
    promql: q.expr
      .replaceAll('$__rate_interval', '20s')
      .replaceAll('$__interval', '5s')
      .replaceAll('$__range', '5m')
      .replaceAll(/\$\{?(job|instance)(:\w+)?\}?/g, '.*'),
  }));
}

describe('the compose stack without containers: sfu-server, Prometheus, coturn and Redis', { skip }, () => {
  const topo = new Topology('dp');
  let dir;
  let config;
  const procs = {};
  let browser;
  const people = {};
  const sfuUrl = `http://${HOST_IP}:8080`;
  const promUrl = `http://${TEST_ENV.PROMETHEUS_LISTEN}`;

  const run = scenario(async () => {
    for (const p of Object.values(people)) {
      const ice = await p.page.evaluate(async () => {
        const pc = window.sfu?.pc;
        if (!pc) return null;
        const cands = [];
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'local-candidate' || s.type === 'remote-candidate') cands.push(`${s.type} ${s.candidateType} ${s.protocol} ${s.address}:${s.port}`);
        });
        return { iceServers: pc.getConfiguration().iceServers, cands };
      }).catch((err) => err.message);
      console.error(`=== ${p.name} ICE ===\n${JSON.stringify(ice, null, 1)}`);
    }
    for (const p of Object.values(procs)) console.error(`=== ${p.name} (tail) ===\n${p.log.slice(-6000)}`);
    for (const p of Object.values(people)) console.error(`=== ${p.name} console ===\n${p.logs}`);
  }, { timeoutMs: 90_000 });
  const { step } = run;

  async function prom(expr) {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = await res.json();
    if (body.status !== 'success') throw new Error(`query ${expr}: ${JSON.stringify(body)}`);
    return body.data.result;
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sfu-deploy-'));
    topo.host('srv');
    topo.host('cli');
    topo.link(null, '198.51.100.254/24', 'srv', `${HOST_IP}/24`);
    topo.link('srv', `${PUBLIC_IP}/24`, 'cli', '203.0.113.2/24');
  });

  after(async () => {
    for (const p of Object.values(people)) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    for (const p of Object.values(procs).reverse()) await p.stop().catch(() => {});
    await topo.teardown();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  step('docker compose config resolves compose.yaml with the test settings', async () => {
    const envFile = path.join(dir, 'test.env');
    await writeFile(envFile, Object.entries(TEST_ENV).map(([k, v]) => `${k}=${v}\n`).join(''));
    config = composeConfig(envFile);
    const s = config.services;
    assert.deepEqual(Object.keys(s).sort(), ['coturn', 'grafana', 'prometheus', 'redis', 'sfu-server']);
    for (const name of ['sfu-server', 'prometheus', 'coturn', 'redis']) assert.equal(s[name].network_mode, 'host', name);
    assert.equal(s['sfu-server'].environment.SFU_PUBLIC_IP, PUBLIC_IP);
    assert.ok(s.prometheus.command.includes('--storage.tsdb.retention.time=15d'));
  });

  step('sfu-server starts with the environment compose gives it, and answers /healthz and /readyz', async () => {
    const env = { PATH: process.env.PATH, NO_COLOR: '1', ...hostEnv(config.services['sfu-server']) };
    assert.equal(config.services['sfu-server'].command ?? null, null, 'sfu-server takes its flags from the environment');
    procs.sfu = new Proc('sfu-server', topo.spawn('srv', serverBin, [], { env }));
    await procs.sfu.waitFor(/sfu-server listening on http:\/\/0\.0\.0\.0:8080/);
    assert.match(procs.sfu.log, new RegExp(`advertised as ${PUBLIC_IP.replaceAll('.', '\\.')}:7882`));
    assert.equal((await fetch(`${sfuUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${sfuUrl}/readyz`)).status, 200);
    // The image's HEALTHCHECK script, with the same environment.
    topo.exec('srv', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), path.join(repoRoot, 'deploy/docker/sfu-healthcheck'));
  });

  step('Prometheus, with compose\'s command line and prometheus.yml, scrapes sfu-server and keeps 15 days', async () => {
    const args = hostCommand(config.services.prometheus, dir);
    procs.prometheus = new Proc('prometheus', topo.spawn('srv', 'prometheus', args));
    const up = await waitFor(
      async () => {
        try {
          const r = await prom('up{job="sfu"}');
          return { ok: r.length === 1 && r[0].value[1] === '1', r };
        } catch (err) {
          return { ok: false, r: err.message };
        }
      },
      { timeoutMs: 30_000, intervalMs: 500, describe: (v) => `up{job="sfu"}: ${JSON.stringify(v.r)}\n${procs.prometheus.log}` },
    );
    assert.equal(up.r[0].metric.instance, '127.0.0.1:8080');
    const flags = (await (await fetch(`${promUrl}/api/v1/status/flags`)).json()).data;
    assert.equal(flags['storage.tsdb.retention.time'], '15d');
    const build = await prom('sfu_build_info');
    assert.equal(build.length, 1, 'sfu_build_info scraped');
  });

  step('coturn starts with compose\'s command line and turnserver.conf; Redis answers PING', async () => {
    const turnArgs = hostCommand(config.services.coturn, dir);
    assert.ok(turnArgs.includes(`--static-auth-secret=${TEST_ENV.SFU_TURN_SECRET}`), 'coturn shares the SFU\'s secret');
    assert.ok(turnArgs.includes(path.join(repoRoot, 'deploy/coturn/turnserver.conf')));
    procs.coturn = new Proc('turnserver', topo.spawn('srv', 'turnserver', [...turnArgs, ...(process.env.DEPLOY_TEST_TURN_VERBOSE ? ['--verbose'] : [])]));
    await procs.coturn.waitFor(/Total (UDP|General) servers|IPv4\. UDP listener opened on/);

    const [cmd, ...redisArgs] = hostCommand(config.services.redis, dir);
    assert.equal(cmd, 'redis-server');
    procs.redis = new Proc('redis-server', topo.spawn('srv', cmd, redisArgs));
    // Redis listens on the host's loopback (compose's default): ask there.
    const pong = await waitFor(
      async () => {
        try {
          return { ok: true, reply: topo.exec('srv', 'redis-cli', '-h', '127.0.0.1', '-p', '6379', 'PING').trim() };
        } catch (err) {
          return { ok: false, reply: err.message };
        }
      },
      { timeoutMs: 10_000, describe: (v) => `${v.reply}\n${procs.redis.log}` },
    );
    assert.equal(pong.reply, 'PONG');
  });

  step('two browsers that reach only signaling and TURN call through coturn', async () => {
    browser = await launchBrowser(await topo.wrapper('cli', '/usr/bin/chromium'), [
      `--unsafely-treat-insecure-origin-as-secure=http://${PUBLIC_IP}:8080`,
    ]);
    topo.nft('cli', `table inet turnonly { chain out { type filter hook output priority 0;
      ip daddr ${PUBLIC_IP} tcp dport 8080 accept;
      ip daddr ${PUBLIC_IP} udp dport 3478 accept;
      ip daddr ${PUBLIC_IP} drop; }
}`);
    const room = `deploy-${Math.random().toString(36).slice(2, 8)}`;
    people.Alice = await joinCall(browser, `http://${PUBLIC_IP}:8080`, room, 'Alice');
    people.Bob = await joinCall(browser, `http://${PUBLIC_IP}:8080`, room, 'Bob');
    const frames = await waitFor(
      async () => {
        const f = await Promise.all([people.Alice, people.Bob].map((p) => framesDecoded(p.page)));
        return { ok: f.every((n) => n > 50), f };
      },
      { timeoutMs: 40_000, intervalMs: 500, describe: (v) => `framesDecoded ${JSON.stringify(v.f)}\n--- coturn ---\n${procs.coturn.log.slice(-4000)}` },
    );
    console.log(`framesDecoded through coturn: Alice ${frames.f[0]}, Bob ${frames.f[1]}`);
    for (const p of [people.Alice, people.Bob]) {
      const pair = await selectedPair(p.page);
      assert.equal(pair.local.type, 'relay', `${p.name}: ${JSON.stringify(pair)}`);
      assert.equal(pair.remote.address, PUBLIC_IP, `${p.name}: ${JSON.stringify(pair)}`);
      assert.equal(pair.remote.port, 7882, `${p.name}: ${JSON.stringify(pair)}`);
    }
    const creds = await people.Alice.page.evaluate(() => window.sfu.pc.getConfiguration().iceServers);
    assert.deepEqual(creds[0].urls, [`turn:${PUBLIC_IP}:3478?transport=udp`, `turn:${PUBLIC_IP}:3478?transport=tcp`].slice(0, creds[0].urls.length));
    assert.match(creds[0].username, /^\d+:\S+$/, 'ephemeral credentials');
    const metrics = await fetchMetrics(sfuUrl);
    assert.ok(metricValue(metrics, 'sfu_ice_connections_total', 'transport="relay"') >= 2, 'relayed connections counted');
  });

  step('Prometheus sees the call, and every dashboard query runs on metrics sfu-server exports', async () => {
    await waitFor(
      async () => {
        const peers = await prom('sfu_peers');
        const rate = await prom('sum(rate(sfu_rtp_packets_out_total[20s]))');
        return { ok: Number(peers[0]?.value[1]) === 2 && Number(rate[0]?.value[1]) > 50, peers, rate };
      },
      { timeoutMs: 30_000, intervalMs: 1000, describe: (v) => `sfu_peers ${JSON.stringify(v.peers)}, forwarded/s ${JSON.stringify(v.rate)}` },
    );
    const scrape = await fetchMetrics(sfuUrl);
    const families = new Map(
      [...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]),
    );
    const familyOf = (name) => {
      for (const suffix of ['_bucket', '_sum', '_count']) {
        const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
        if (base && ['histogram', 'summary'].includes(families.get(base))) return base;
      }
      return name;
    };
    const queries = dashboardQueries();
    assert.ok(queries.length >= 20, `${queries.length} dashboard queries`);
    const missing = [];
    let withData = 0;
    for (const q of queries) {
      const result = await prom(q.promql); // throws on a query Prometheus cannot run
      if (result.length > 0) withData += 1;
      for (const name of metricNames(q.expr)) {
        if (!families.has(familyOf(name))) missing.push(`${q.panel}: ${name}`);
      }
    }
    assert.deepEqual(missing, [], 'dashboard metrics missing from /metrics');
    console.log(`dashboard: ${queries.length} queries ran in Prometheus, ${withData} with data during the call`);
    assert.ok(withData >= queries.length / 2, `only ${withData} of ${queries.length} queries returned data`);
  });

  step('sfu-drain (the preStop hook) drains the server until it exits', async () => {
    const env = { PATH: process.env.PATH, ...hostEnv(config.services['sfu-server']) };
    const started = Date.now();
    const drain = topo.spawn('srv', 'env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), path.join(repoRoot, 'deploy/docker/sfu-drain')]);
    const drainProc = new Proc('sfu-drain', drain);
    await waitFor(async () => ({ ok: (await fetch(`${sfuUrl}/readyz`).then((r) => r.status, () => 0)) === 503 }), {
      timeoutMs: 5_000,
      describe: () => `/readyz not 503 while draining\n${drainProc.log}`,
    });
    const exit = await Promise.race([drainProc.exited, sleep(30_000).then(() => null)]);
    assert.ok(exit, `sfu-drain still running after 30 s:\n${drainProc.log}`);
    assert.equal(exit.code, 0, drainProc.log);
    assert.match(drainProc.log, /"draining":true/);
    const serverExit = await Promise.race([procs.sfu.exited, sleep(5_000).then(() => null)]);
    assert.ok(serverExit, 'sfu-server still running after sfu-drain returned');
    assert.equal(serverExit.code, 0, procs.sfu.log.slice(-3000));
    const secs = (Date.now() - started) / 1000;
    console.log(`drained and exited in ${secs.toFixed(1)} s (SFU_DRAIN_TIMEOUT_SECS=${TEST_ENV.SFU_DRAIN_TIMEOUT_SECS})`);
    assert.ok(secs < Number(TEST_ENV.SFU_DRAIN_TIMEOUT_SECS) + 10, `${secs} s`);
  });
});

it('the test\'s settings are knobs that deploy/.env.example documents', () => {
  const example = readFileSync(path.join(repoRoot, 'deploy/.env.example'), 'utf8');
  const documented = new Set([...example.matchAll(/^#? ?([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]));
  assert.deepEqual(Object.keys(TEST_ENV).filter((k) => !documented.has(k)), []);
});
