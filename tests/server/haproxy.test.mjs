// Scale-out behind a real load balancer (ctest server_haproxy): three minerva-serve replicas
// behind HAProxy with /ready health checks; a bounded stream of requests runs while one replica
// is stopped (SIGTERM, drained) and started again. Every request must complete in full, or be
// refused before any byte of its answer and then succeed when the client retries.
//   node haproxy.test.mjs PATH/TO/minerva-serve SHARED_DIR
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const SERVE = process.argv[2] || process.env.MINERVA_SERVE;
const SHARED = process.env.MINERVA_SHARED || process.argv[3];
const REQUIRE = process.env.MINERVA_REQUIRE_SHARED === '1';
const MODEL_FILE = SHARED ? path.join(SHARED, 'models', 'stories260K-f32.gguf') : '';
let HAPROXY = '';
for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy']) if (fs.existsSync(p)) HAPROXY ||= p;
const missing = !SERVE || !fs.existsSync(SERVE) ? `minerva-serve not found (${SERVE})`
  : !SHARED || !fs.existsSync(MODEL_FILE) ? `shared model not found (${MODEL_FILE}); set MINERVA_SHARED`
    : !HAPROXY ? 'haproxy is not installed (scripts/install-deps.sh installs it)' : '';
if (missing && REQUIRE) test('shared data, server binary and haproxy are present', () => assert.fail(missing));
const skip = missing ? missing : false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];
let dir;

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startReplica(port) {
  const proc = spawn(SERVE, ['--port', String(port), '-m', MODEL_FILE, '--threads', '1', '--parallel', '4', '--ctx-size', '512',
    '--drain-timeout', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.out = '';
  proc.err = '';
  proc.stdout.on('data', (d) => { proc.out += d; });
  proc.stderr.on('data', (d) => { proc.err += d; });
  proc.exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  procs.push(proc);
  const t0 = Date.now();
  while (!proc.out.includes('listening on')) {
    if (proc.exitCode !== null || Date.now() - t0 > 30000) throw new Error('replica did not start:\n' + proc.err);
    await sleep(20);
  }
  return proc;
}

// One request through the balancer; retried (up to 20 times) only when it was refused before
// any byte of a 200 answer arrived. Returns what the client finally got.
async function request(url, i) {
  const stream = i % 2 === 0;
  const body = JSON.stringify({ prompt: `Once upon a time ${i}`, max_tokens: 48, temperature: 0, stream,
    logit_bias: { 2: -100 } });
  let refusals = 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    let r;
    try {
      r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    } catch {
      refusals++;  // connection refused or reset before an answer
      await sleep(100);
      continue;
    }
    if (r.status === 502 || r.status === 503 || r.status === 504) {
      await r.text();
      refusals++;
      await sleep(100);
      continue;
    }
    // from here on the answer has begun: it must be whole
    const text = await r.text();
    return { status: r.status, text, stream, refusals };
  }
  return { status: 0, text: '', stream, refusals };
}

after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('3 replicas behind HAProxy: a replica restart loses and truncates nothing', { skip, timeout: 120000 }, async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-haproxy-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const lbPort = await freePort();
  const replicas = [];
  for (const p of ports) replicas.push(await startReplica(p));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, `
global
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend fe
  bind 127.0.0.1:${lbPort}
  default_backend minerva
backend minerva
  balance leastconn
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 200ms fall 1 rise 2
${ports.map((p, k) => `  server r${k} 127.0.0.1:${p} check`).join('\n')}
`);
  execFileSync(HAPROXY, ['-c', '-f', cfg], { stdio: 'pipe' });
  const lb = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let lbLog = '';
  lb.stdout.on('data', (d) => { lbLog += d; });
  lb.stderr.on('data', (d) => { lbLog += d; });
  procs.push(lb);
  const url = `http://127.0.0.1:${lbPort}`;
  for (let t0 = Date.now(); ; await sleep(100)) {
    try {
      if ((await fetch(url + '/health')).status === 200) break;
    } catch { /* not up yet */ }
    if (Date.now() - t0 > 10000) throw new Error('haproxy did not come up:\n' + lbLog);
  }

  // 240 requests, 8 at a time; replica 1 stops after 60 and is back after about 120
  const N = 240;
  const results = new Array(N);
  let next = 0;
  let restartedAt = -1;
  const worker = async () => {
    while (next < N) {
      const i = next++;
      results[i] = await request(url, i);
    }
  };
  const chaos = (async () => {
    while (next < 60) await sleep(20);
    // a long stream straight to the replica is certainly in flight when it is told to stop
    const direct = fetch(`http://127.0.0.1:${ports[1]}/v1/completions`, { method: 'POST', body: JSON.stringify({
      prompt: 'Once', max_tokens: 400, temperature: 0, stream: true, logit_bias: { 2: -100 } }) }).then((r) => r.text());
    await sleep(50);
    replicas[1].kill('SIGTERM');
    const directText = await direct;
    assert.ok(directText.endsWith('data: [DONE]\n\n') && directText.includes('"finish_reason":"length"'),
      'the stream in flight on the stopped replica finished: ...' + directText.slice(-200));
    const code = await replicas[1].exited;
    assert.equal(code, 0, 'the replica drained and exited cleanly:\n' + replicas[1].err);
    assert.match(replicas[1].err, /shutdown: drained/);
    while (next < 120) await sleep(20);
    replicas[1] = await startReplica(ports[1]);
    restartedAt = next;
  })();
  await Promise.all([...Array.from({ length: 8 }, worker), chaos]);

  let refused = 0;
  for (let i = 0; i < N; i++) {
    const r = results[i];
    assert.equal(r.status, 200, `request ${i} failed after retries: ${r.text.slice(0, 300)}`);
    if (r.stream) {
      assert.ok(r.text.endsWith('data: [DONE]\n\n'), `stream ${i} truncated: ...${r.text.slice(-200)}`);
      assert.match(r.text, /"finish_reason":"length"/, `stream ${i} ended early`);
    } else {
      const j = JSON.parse(r.text);
      assert.equal(j.choices[0].finish_reason, 'length', `request ${i}`);
      assert.equal(j.usage.completion_tokens, 48);
    }
    refused += r.refusals;
  }
  // the restarted replica takes traffic again once its /ready passes
  assert.ok(restartedAt > 0);
  for (let k = 0; k < 40 && !/POST \/v1\/completions 200/.test(replicas[1].err); k++) {
    await Promise.all(Array.from({ length: 6 }, (_, i) => request(url, 1000 + i)));
  }
  assert.match(replicas[1].err, /POST \/v1\/completions 200/, 'the restarted replica serves requests');
  process.stderr.write(`# ${N} requests through HAProxy, ${refused} refusal(s) retried, replica restarted at request ${restartedAt}\n`);
  lb.kill('SIGTERM');
});
