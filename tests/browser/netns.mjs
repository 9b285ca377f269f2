// Network topologies for browser tests, built from network namespaces,
// veth pairs and nftables inside the test's own (loopback-only) namespace,
// with addresses from the documentation ranges. Nothing leaves the machine.
// A Topology removes every namespace it made when torn down.

import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// Moved to lib.mjs; re-exported for the tests that import them from here.
export { framesDecoded, metricValue } from './lib.mjs';

function run(cmd, args, input) {
  return execFileSync(cmd, args, {
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
}

export class Topology {
  /** `tag` keeps names short and unique per test process. */
  constructor(tag) {
    this.tag = `${tag}${process.pid % 10000}`;
    this.namespaces = [];
    this.links = 0;
    this.dir = null;
  }

  /** The full name of host `name`. */
  ns(name) {
    return `${this.tag}-${name}`;
  }

  /** Adds a host (a network namespace with `lo` up). */
  host(name) {
    const ns = this.ns(name);
    run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * Links host `a` (or the test's own namespace when null) and host `b` with
   * a veth pair, addresses in CIDR form. Returns the interface names.
   */
  link(a, aAddr, b, bAddr) {
    const n = this.links++;
    const ia = `${this.tag}a${n}`;
    const ib = `${this.tag}b${n}`;
    const nsA = a && this.ns(a);
    const nsB = this.ns(b);
    run('ip', ['link', 'add', ia, ...(nsA ? ['netns', nsA] : []), 'type', 'veth', 'peer', 'name', ib, 'netns', nsB]);
    const inA = nsA ? ['-n', nsA] : [];
    // No IPv6 link-local address, which would appear a moment after the
    // link comes up: Chromium sees that as a network change and fails the
    // page loads under way (ERR_NETWORK_CHANGED).
    run('ip', [...inA, 'link', 'set', 'dev', ia, 'addrgenmode', 'none']);
    run('ip', ['-n', nsB, 'link', 'set', 'dev', ib, 'addrgenmode', 'none']);
    run('ip', [...inA, 'addr', 'add', aAddr, 'dev', ia]);
    run('ip', [...inA, 'link', 'set', ia, 'up']);
    run('ip', ['-n', nsB, 'addr', 'add', bAddr, 'dev', ib]);
    run('ip', ['-n', nsB, 'link', 'set', ib, 'up']);
    return [ia, ib];
  }

  /** Runs `ip` in host `name`. */
  ip(name, ...args) {
    return run('ip', ['-n', this.ns(name), ...args]);
  }

  /** Runs a command inside host `name` (null: the test's own namespace). */
  exec(name, cmd, ...args) {
    return name ? run('ip', ['netns', 'exec', this.ns(name), cmd, ...args]) : run(cmd, args);
  }

  /** Makes host `name` forward packets (a router). */
  router(name) {
    this.exec(name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  }

  /** Loads an nftables ruleset (text) into host `name` (null: ours). */
  nft(name, ruleset) {
    if (name) run('ip', ['netns', 'exec', this.ns(name), 'nft', '-f', '-'], ruleset);
    else run('nft', ['-f', '-'], ruleset);
  }

  /** Removes every table of host `name`'s nftables. */
  nftFlush(name) {
    this.exec(name, 'nft', 'flush', 'ruleset');
  }

  /**
   * A script that runs `binary` inside host `name`, for Playwright's
   * `executablePath` or the server's binary.
   */
  async wrapper(name, binary) {
    this.dir ??= await mkdtemp(path.join(os.tmpdir(), 'sfu-netns-'));
    const file = path.join(this.dir, `${name}-${path.basename(binary)}`);
    await writeFile(file, `#!/bin/sh\nexec ip netns exec ${this.ns(name)} ${binary} "$@"\n`);
    await chmod(file, 0o755);
    return file;
  }

  /** Starts a long-running process inside host `name` (null: ours). */
  spawn(name, cmd, args, opts = {}) {
    const [c, a] = name ? ['ip', ['netns', 'exec', this.ns(name), cmd, ...args]] : [cmd, args];
    return spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  /** Deletes every namespace (and with them their veths). */
  async teardown() {
    for (const ns of this.namespaces.reverse()) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    this.namespaces = [];
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * The usual client-behind-NAT topology on `topo`: this namespace holds
 * `publicIp`/24 (the SFU's side) and links to host `nat` (203.0.113.2), a
 * router that masquerades with random ports (a symmetric NAT: a fresh
 * source port for every destination); behind it, host `cli` is
 * 192.0.2.2/24 with its default route through the router (192.0.2.1).
 * Returns the interface names of both links, each as [near side, far
 * side]: `publicLink` (this namespace, router) and `cliLink` (router, cli).
 */
export function symmetricNat(topo, publicIp) {
  topo.host('nat');
  topo.host('cli');
  const publicLink = topo.link(null, `${publicIp}/24`, 'nat', '203.0.113.2/24');
  const natOut = publicLink[1];
  const cliLink = topo.link('nat', '192.0.2.1/24', 'cli', '192.0.2.2/24');
  topo.ip('cli', 'route', 'add', 'default', 'via', '192.0.2.1');
  topo.router('nat');
  topo.nft('nat', `table ip nat {
    chain post { type nat hook postrouting priority 100; oifname "${natOut}" masquerade random; }
  }`);
  return { cliLink, publicLink };
}

/**
 * The selected candidate pair of `window.sfu.pc` as the browser sees it:
 * local and remote candidate types, protocols and addresses.
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.sfu?.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const l = report.get(pair.localCandidateId);
    const r = report.get(pair.remoteCandidateId);
    return {
      local: { type: l?.candidateType, protocol: l?.protocol, address: l?.address, relayProtocol: l?.relayProtocol },
      remote: { type: r?.candidateType, protocol: r?.protocol, address: r?.address, port: r?.port },
    };
  });
}


