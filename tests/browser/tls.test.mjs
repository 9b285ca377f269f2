// HTTPS and WSS straight from sfu-server (--tls-cert / --tls-key): two
// Chromium participants open https://, signal over wss:// and decode each
// other's video. The certificate is a throwaway self-signed one made by
// openssl for this test, trusted through --ignore-certificate-errors (only
// here). Plain HTTP on --redirect-http-bind answers with a redirect to
// HTTPS.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import {
  freeUdpPort,
  joinCall,
  launchBrowser,
  scenario,
  startServer,
  waitAllDecoding,
} from './lib.mjs';

const room = `tls-${Math.random().toString(36).slice(2, 10)}`;

let server;
let browser;
let dir;
const people = {};

const run = scenario(() => {
  console.error(`=== sfu-server output (tail) ===\n${server?.output ?? '(not started)'}`);
  for (const p of Object.values(people)) console.error(`--- ${p.name} ---\n${p.logs}`);
});
const { step } = run;

/** GET over plain HTTP; resolves to { status, location }. */
function plainGet(port, pathname) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: pathname }, (res) => {
        res.resume();
        resolve({ status: res.statusCode, location: res.headers.location });
      })
      .on('error', reject);
  });
}

describe('a call over HTTPS and WSS', () => {
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sfu-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    server = await startServer({
      udpPort: await freeUdpPort(),
      extraArgs: [
        '--tls-cert', path.join(dir, 'cert.pem'),
        '--tls-key', path.join(dir, 'key.pem'),
        '--redirect-http-bind', '127.0.0.1:0',
      ],
    });
    browser = await launchBrowser(undefined, ['--ignore-certificate-errors']);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  step('the server says https:// and redirects plain HTTP there', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const m = /plain HTTP on 127\.0\.0\.1:(\d+) redirects to HTTPS/.exec(String(server.output));
    assert.ok(m, 'the banner names the redirect port');
    const res = await plainGet(Number(m[1]), `/?room=${room}`);
    assert.equal(res.status, 308);
    assert.equal(res.location, `${server.url}/?room=${room}`);
  });

  step('Alice and Bob decode each other over WSS signaling', async () => {
    people.Alice = await joinCall(browser, server.url, room, 'Alice');
    people.Bob = await joinCall(browser, server.url, room, 'Bob');
    const { frames } = await waitAllDecoding([people.Alice, people.Bob], { more: 50 });
    // The server's one HTTP port speaks only TLS, so the signaling that
    // set this call up was WSS.
    const secure = await people.Alice.page.evaluate(() => ({
      isSecureContext: window.isSecureContext,
      protocol: location.protocol,
    }));
    console.log(`over TLS: framesDecoded ${frames.join(' and ')}; ${JSON.stringify(secure)}`);
    assert.equal(secure.protocol, 'https:');
    assert.equal(secure.isSecureContext, true);
  });
});
