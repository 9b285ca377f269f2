// Calls on NAT-hostile networks, with headless Chromium in network
// namespaces this test builds (documentation-range addresses, veth pairs,
// nftables) and tears down:
//
//   [this namespace: SFU 203.0.113.1, coturn, Bob's browser]
//        | 203.0.113.1/24 -- 203.0.113.2/24
//   [nat: a router that masquerades with random ports (symmetric NAT)]
//        | 192.0.2.1/24 -- 192.0.2.2/24
//   [cli: Alice's browser (and in some cases Bob's)]
//
// Each case asserts remote video framesDecoded > 50 and the selected
// candidate pair's types and protocols:
//   1. behind the NAT, the call runs over UDP;
//   2. with UDP dropped in cli, over ICE-TCP; (2b) when cli may send
//      nothing but TCP to port 443, over ICE-TCP on 443 (signaling on 443
//      of a second address);
//   3. when cli reaches only coturn, through TURN with ephemeral
//      credentials from the SFU;
//   4. the SFU itself behind 1:1 NAT, with --public-ip (own topology);
//   5. (a) Alice's path is cut for 3 s mid-call and restored: video
//      resumes within 5 s, with the same Tracks; (b) Alice's address
//      changes, which kills her signaling socket too: the client notices
//      (a ping unanswered), resumes the session on a new socket, restarts
//      ICE with new credentials, and video resumes with the same Tracks;
//   6. Alice's media path is cut for good: the SFU removes her within the
//      consent timeout.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  fetchMetrics,
  freeUdpPort,
  inLoopbackOnlyNamespace,
  joinCall,
  launchBrowser,
  repoRoot,
  startServer,
  waitFor,
} from './lib.mjs';
import { Topology, framesDecoded, metricValue, selectedPair, symmetricNat } from './netns.mjs';

const SFU_IP = '203.0.113.1';
const CONSENT_SECS = 8;
const TURN_SECRET = 'nat-test-shared-secret';
const TURN_PORT = 3478;
const serverBin = process.env.SFU_SERVER_BIN || path.join(repoRoot, 'target/debug/sfu-server');
const skip = !inLoopbackOnlyNamespace() && 'needs a loopback-only network namespace (run through .ci/run)';

function secure(url) {
  // The camera needs a secure context; these plain-HTTP test origins are
  // not localhost, so they are declared secure for the test.
  return [`--unsafely-treat-insecure-origin-as-secure=${url}`];
}

async function waitDecoding(people, minFrames = 50, timeoutMs = 30_000) {
  await waitFor(
    async () => {
      const frames = await Promise.all(people.map((p) => framesDecoded(p.page)));
      return { ok: frames.every((f) => f > minFrames), frames };
    },
    {
      timeoutMs,
      intervalMs: 500,
      describe: (v) => `framesDecoded ${JSON.stringify(v.frames)}\n${people.map((p) => p.logs).join('\n')}`,
    },
  );
}

function room() {
  return `nat-${Math.random().toString(36).slice(2, 8)}`;
}

describe('calls across NAT, blocked UDP and TURN', { skip }, () => {
  const topo = new Topology('nt');
  let server;
  let natBrowser;
  let openBrowser;
  const people = [];
  let cliLink;

  before(async () => {
    ({ cliLink } = symmetricNat(topo, SFU_IP));
    server = await startServer({
      udpPort: await freeUdpPort(),
      host: SFU_IP,
      extraArgs: ['--consent-timeout-secs', String(CONSENT_SECS)],
    });
    natBrowser = await launchBrowser(await topo.wrapper('cli', '/usr/bin/chromium'), secure(server.url));
    openBrowser = await launchBrowser(undefined, secure(server.url));
  });

  after(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await natBrowser?.close().catch(() => {});
    await openBrowser?.close().catch(() => {});
    await server?.stop();
    await topo.teardown();
  });

  async function leaveAll() {
    while (people.length) await people.pop().context.close().catch(() => {});
  }

  it('1. both behind a symmetric NAT: the call runs over UDP', { timeout: 60_000 }, async () => {
    const r = room();
    people.push(await joinCall(natBrowser, server.url, r, 'Alice'));
    people.push(await joinCall(natBrowser, server.url, r, 'Bob'));
    await waitDecoding(people);
    for (const p of people) {
      const pair = await selectedPair(p.page);
      assert.equal(pair.remote.protocol, 'udp', JSON.stringify(pair));
      assert.equal(pair.remote.address, SFU_IP, JSON.stringify(pair));
      // The SFU's answers told the browser its address outside the NAT.
      assert.equal(pair.local.type, 'prflx', JSON.stringify(pair));
      assert.equal(pair.local.address, '203.0.113.2', JSON.stringify(pair));
    }
    const metrics = await fetchMetrics(server.url);
    assert.ok(metricValue(metrics, 'sfu_ice_connections_total', 'transport="udp"') >= 2, metrics);
    await leaveAll();
  });

  it('2. UDP blocked: the call falls back to ICE-TCP', { timeout: 60_000 }, async () => {
    topo.nft('cli', 'table inet block { chain out { type filter hook output priority 0; meta l4proto udp drop; }\n}');
    try {
      const r = room();
      people.push(await joinCall(natBrowser, server.url, r, 'Alice'));
      people.push(await joinCall(natBrowser, server.url, r, 'Bob'));
      await waitDecoding(people, 50, 40_000);
      for (const p of people) {
        const pair = await selectedPair(p.page);
        assert.equal(pair.remote.protocol, 'tcp', JSON.stringify(pair));
        assert.equal(pair.remote.type, 'host', JSON.stringify(pair));
        assert.equal(pair.local.protocol, 'tcp', JSON.stringify(pair));
      }
      const metrics = await fetchMetrics(server.url);
      assert.ok(metricValue(metrics, 'sfu_ice_connections_total', 'transport="tcp"') >= 2, metrics);
    } finally {
      await leaveAll();
      topo.nftFlush('cli');
    }
  });

  it('5. a network change mid-call: ICE restarts and video resumes with the same Tracks', { timeout: 90_000 }, async () => {
    const r = room();
    const alice = await joinCall(natBrowser, server.url, r, 'Alice');
    const bob = await joinCall(openBrowser, server.url, r, 'Bob');
    people.push(alice, bob);
    try {
      await waitDecoding(people);
      const joinsBefore = metricValue(await fetchMetrics(server.url), 'sfu_joins_total');
      const tracksBefore = await bob.page.evaluate(() => window.sfu.pc.getReceivers().map((x) => x.track.id).sort());

      // Alice's path is cut for 3 s (everything: media and signaling),
      // then restored.
      topo.nft('cli', 'table inet cut { chain out { type filter hook output priority 0; drop; }\n}');
      await new Promise((res) => setTimeout(res, 3000));
      topo.nftFlush('cli');
      const restoredAt = Date.now();
      const base = await framesDecoded(bob.page);
      // Resumed: Bob decodes new frames of Alice's camera.
      await waitFor(
        async () => {
          const f = await framesDecoded(bob.page);
          return { ok: f > base + 10, f };
        },
        { timeoutMs: 20_000, intervalMs: 250, describe: (v) => `Bob framesDecoded ${v.f} (was ${base})\n${alice.logs}\n${bob.logs}\n${server.output}` },
      );
      const resumedMs = Date.now() - restoredAt;
      if (process.env.NAT_DEBUG) console.log(`${alice.logs}\n${bob.logs}\n${server.output}`);
      const restarts = alice.logs.toString().split('restarting ICE').length - 1;
      console.log(`path cut 3 s: video resumed ${resumedMs} ms after the path came back; ICE restarts by Alice: ${restarts}`);
      assert.ok(resumedMs <= 5000, `video resumed only after ${resumedMs} ms`);
      const metrics = await fetchMetrics(server.url);
      assert.equal(metricValue(metrics, 'sfu_joins_total'), joinsBefore, 'no rejoin: the same Peer');
      const tracksAfter = await bob.page.evaluate(() => window.sfu.pc.getReceivers().map((x) => x.track.id).sort());
      assert.deepEqual(tracksAfter, tracksBefore, 'the same Tracks');
    } finally {
      topo.nftFlush('cli');
      await leaveAll();
    }
  });

  it('5b. an address change mid-call: signaling resumes, ICE restarts, video resumes with the same Tracks', { timeout: 90_000 }, async () => {
    const r = room();
    const alice = await joinCall(natBrowser, server.url, r, 'Alice');
    const bob = await joinCall(openBrowser, server.url, r, 'Bob');
    people.push(alice, bob);
    const dev = cliLink[1];
    try {
      await waitDecoding(people);
      const before = await fetchMetrics(server.url);
      const tracksBefore = await bob.page.evaluate(() => window.sfu.pc.getReceivers().map((x) => x.track.id).sort());
      const ufragBefore = await alice.page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.sfu.pc.localDescription.sdp)?.[1]);

      // Alice moves to another address (Wi-Fi to cellular): her sockets,
      // the signaling one included, are dead.
      topo.ip('cli', 'addr', 'del', '192.0.2.2/24', 'dev', dev);
      topo.ip('cli', 'addr', 'add', '192.0.2.3/24', 'dev', dev);
      topo.ip('cli', 'route', 'replace', 'default', 'via', '192.0.2.1');
      const movedAt = Date.now();
      const base = await framesDecoded(bob.page);
      await waitFor(
        async () => {
          const f = await framesDecoded(bob.page);
          return { ok: f > base + 10, f };
        },
        { timeoutMs: 30_000, intervalMs: 250, describe: (v) => `Bob framesDecoded ${v.f} (was ${base})\n${alice.logs}\n${server.output}` },
      );
      const resumedMs = Date.now() - movedAt;
      const pair = await selectedPair(alice.page);
      const ufragAfter = await alice.page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.sfu.pc.localDescription.sdp)?.[1]);
      const after = await fetchMetrics(server.url);
      if (process.env.NAT_DEBUG) console.log(`${alice.logs}\n${server.output}`);
      console.log(`address change: video resumed ${resumedMs} ms after the move; pair ${JSON.stringify(pair)}; ufrag ${ufragBefore} -> ${ufragAfter}; resumes ${metricValue(after, 'sfu_ws_resumes_total') - metricValue(before, 'sfu_ws_resumes_total')}`);
      assert.notEqual(ufragAfter, ufragBefore, 'ICE restarted (new credentials)');
      assert.equal(metricValue(after, 'sfu_joins_total'), metricValue(before, 'sfu_joins_total'), 'no rejoin: the same Peer');
      assert.equal(metricValue(after, 'sfu_ws_resumes_total'), metricValue(before, 'sfu_ws_resumes_total') + 1, 'signaling resumed');
      const tracksAfter = await bob.page.evaluate(() => window.sfu.pc.getReceivers().map((x) => x.track.id).sort());
      assert.deepEqual(tracksAfter, tracksBefore, 'the same Tracks');
      assert.ok(resumedMs <= 5000, `video resumed only after ${resumedMs} ms`);
    } finally {
      // Leave first, over the sockets of the new address, then move back.
      await leaveAll();
      topo.ip('cli', 'addr', 'flush', 'dev', dev);
      topo.ip('cli', 'addr', 'add', '192.0.2.2/24', 'dev', dev);
      topo.ip('cli', 'route', 'replace', 'default', 'via', '192.0.2.1');
    }
  });

  it('6. a client whose path is cut for good is removed within the consent timeout', { timeout: 60_000 }, async () => {
    const r = room();
    const alice = await joinCall(natBrowser, server.url, r, 'Alice');
    const bob = await joinCall(openBrowser, server.url, r, 'Bob');
    people.push(alice, bob);
    await waitDecoding(people);
    const port = new URL(server.url).port;
    const before = await fetchMetrics(server.url);
    assert.equal(metricValue(before, 'sfu_peers'), 2);
    const timeoutsBefore = metricValue(before, 'sfu_leaves_total', 'reason="timeout"');
    // Media is cut; signaling (the HTTP port) still works, so only ICE
    // consent can notice.
    topo.nft('cli', `table inet cut { chain out { type filter hook output priority 0; tcp dport ${port} accept; ip daddr ${SFU_IP} drop; }
}`);
    const cutAt = Date.now();
    try {
      await waitFor(
        async () => {
          const m = await fetchMetrics(server.url);
          return { ok: metricValue(m, 'sfu_peers') === 1, peers: metricValue(m, 'sfu_peers') };
        },
        { timeoutMs: (CONSENT_SECS + 4) * 1000, intervalMs: 250, describe: (v) => `sfu_peers ${v.peers}` },
      );
      const removedMs = Date.now() - cutAt;
      console.log(`consent: removed ${removedMs} ms after the cut (timeout ${CONSENT_SECS} s)`);
      // The timeout runs from the client's last ICE check, and browsers
      // check every few seconds: the removal comes up to one check
      // interval before the timeout after the cut, never after it.
      assert.ok(removedMs >= (CONSENT_SECS - 6) * 1000, `removed too early: ${removedMs} ms`);
      const m = await fetchMetrics(server.url);
      assert.equal(metricValue(m, 'sfu_leaves_total', 'reason="timeout"'), timeoutsBefore + 1);
    } finally {
      topo.nftFlush('cli');
      await leaveAll();
    }
  });
});

describe('TURN only, with ephemeral credentials from the SFU', { skip }, () => {
  const topo = new Topology('nr');
  let server;
  let coturn;
  let coturnLog = '';
  let browser;
  const people = [];

  before(async () => {
    symmetricNat(topo, SFU_IP);
    coturn = topo.spawn(null, 'turnserver', [
      '-n', `--listening-ip=${SFU_IP}`, `--relay-ip=${SFU_IP}`, `--listening-port=${TURN_PORT}`,
      '--min-port=49160', '--max-port=49200', '--use-auth-secret', `--static-auth-secret=${TURN_SECRET}`,
      '--realm=sfu.test', '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--log-file=stdout',
    ]);
    coturn.stdout.on('data', (d) => { coturnLog = (coturnLog + d).slice(-20_000); });
    coturn.stderr.on('data', (d) => { coturnLog = (coturnLog + d).slice(-20_000); });
    server = await startServer({
      udpPort: await freeUdpPort(),
      host: SFU_IP,
      extraArgs: ['--turn-url', `turn:${SFU_IP}:${TURN_PORT}?transport=udp`, '--turn-secret', TURN_SECRET, '--turn-ttl-secs', '600'],
    });
    browser = await launchBrowser(await topo.wrapper('cli', '/usr/bin/chromium'), secure(server.url));
    // cli reaches the SFU's signaling and coturn, nothing else.
    const port = new URL(server.url).port;
    topo.nft('cli', `table inet turnonly { chain out { type filter hook output priority 0;
      ip daddr ${SFU_IP} tcp dport ${port} accept;
      ip daddr ${SFU_IP} udp dport ${TURN_PORT} accept;
      ip daddr ${SFU_IP} drop; }
}`);
  });

  after(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
    coturn?.kill('SIGTERM');
    await topo.teardown();
  });

  it('3. the call connects through coturn', { timeout: 60_000 }, async () => {
    const r = room();
    people.push(await joinCall(browser, server.url, r, 'Alice'));
    people.push(await joinCall(browser, server.url, r, 'Bob'));
    try {
      await waitDecoding(people, 50, 40_000);
    } catch (err) {
      err.message += `\n--- coturn ---\n${coturnLog}\n--- sfu ---\n${server.output}`;
      throw err;
    }
    for (const p of people) {
      const pair = await selectedPair(p.page);
      assert.equal(pair.local.type, 'relay', JSON.stringify(pair));
      assert.equal(pair.remote.address, SFU_IP, JSON.stringify(pair));
    }
    const metrics = await fetchMetrics(server.url);
    assert.ok(metricValue(metrics, 'sfu_ice_connections_total', 'transport="relay"') >= 2, metrics);
    const creds = await people[0].page.evaluate(() => window.sfu.pc.getConfiguration().iceServers);
    assert.match(creds[0].username, /^\d+:p\d+$/, 'ephemeral username <expiry>:<peer>');
    const expiry = Number(creds[0].username.split(':')[0]);
    const ttl = expiry - Date.now() / 1000;
    assert.ok(ttl > 590 && ttl <= 601, `expiry in ${ttl} s`);
  });
});

describe('only TCP 443 open: signaling and ICE-TCP on port 443', { skip }, () => {
  // The SFU host has two public addresses: signaling on one (as behind a
  // TLS proxy, here plain HTTP), media on the other, both on port 443. The
  // client, behind the symmetric NAT, may send nothing but TCP to port 443.
  const SIGNALING_IP = '203.0.113.5';
  const topo = new Topology('n4');
  let server;
  let browser;
  const people = [];

  before(async () => {
    const [sfuSide] = symmetricNat(topo, SFU_IP).publicLink;
    topo.exec(null, 'ip', 'addr', 'add', `${SIGNALING_IP}/24`, 'dev', sfuSide);
    server = await startServer({
      udpPort: await freeUdpPort(),
      host: SIGNALING_IP,
      httpPort: 443,
      tcpPort: 443,
      extraArgs: ['--media-bind-ip', SFU_IP, '--public-ip', SFU_IP],
    });
    browser = await launchBrowser(await topo.wrapper('cli', '/usr/bin/chromium'), secure(server.url));
    topo.nft('cli', `table inet only443 { chain out { type filter hook output priority 0;
      tcp dport 443 accept;
      ip daddr 203.0.113.0/24 drop; }
}`);
  });

  after(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
    await topo.teardown();
  });

  it('2b. the call connects over ICE-TCP on 443', { timeout: 60_000 }, async () => {
    const r = room();
    people.push(await joinCall(browser, server.url, r, 'Alice'));
    people.push(await joinCall(browser, server.url, r, 'Bob'));
    await waitDecoding(people, 50, 40_000);
    for (const p of people) {
      const pair = await selectedPair(p.page);
      assert.equal(pair.remote.protocol, 'tcp', JSON.stringify(pair));
      assert.equal(pair.remote.port, 443, JSON.stringify(pair));
      assert.equal(pair.remote.address, SFU_IP, JSON.stringify(pair));
    }
  });
});

describe('the SFU behind 1:1 NAT', { skip }, () => {
  const topo = new Topology('ns');
  const PUBLIC = '203.0.113.10';
  const PRIVATE = '198.51.100.2';
  let server;
  let browser;
  let publicUrl;
  const people = [];

  before(async () => {
    topo.host('gw');
    topo.host('srv');
    topo.link(null, '203.0.113.1/24', 'gw', `${PUBLIC}/24`);
    topo.link('gw', '198.51.100.1/24', 'srv', `${PRIVATE}/24`);
    topo.ip('srv', 'route', 'add', 'default', 'via', '198.51.100.1');
    topo.router('gw');
    topo.nft('gw', `table ip nat {
      chain pre { type nat hook prerouting priority -100; ip daddr ${PUBLIC} dnat to ${PRIVATE}; }
      chain post { type nat hook postrouting priority 100; ip saddr ${PRIVATE} snat to ${PUBLIC}; }
    }`);
    server = await startServer({
      bin: await topo.wrapper('srv', serverBin),
      udpPort: await freeUdpPort(),
      host: PRIVATE,
      extraArgs: ['--nat-1to1', PUBLIC],
    });
    publicUrl = server.url.replace(PRIVATE, PUBLIC);
    browser = await launchBrowser(undefined, secure(publicUrl));
  });

  after(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
    await topo.teardown();
  });

  it('4. clients reach it at its public address', { timeout: 60_000 }, async () => {
    const r = room();
    people.push(await joinCall(browser, publicUrl, r, 'Alice'));
    people.push(await joinCall(browser, publicUrl, r, 'Bob'));
    await waitDecoding(people);
    for (const p of people) {
      const pair = await selectedPair(p.page);
      assert.equal(pair.remote.address, PUBLIC, JSON.stringify(pair));
      assert.equal(pair.remote.protocol, 'udp', JSON.stringify(pair));
      assert.equal(pair.remote.type, 'host', JSON.stringify(pair));
    }
  });
});
