// Robustness of minerva-serve under hostile clients and load (ctest server_robustness):
// malformed and oversized requests, wrong parameter types, path traversal, slowloris, idle
// connections, aborts, overload, concurrent streams, load/unload races, memory over many
// requests, shutdown, and model management. Loopback only; every case checks the status, the
// OpenAI error shape, and that the server still answers afterwards.
//   node robustness.test.mjs PATH/TO/minerva-serve SHARED_DIR
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const SERVE = process.argv[2] || process.env.MINERVA_SERVE;
const SHARED = process.env.MINERVA_SHARED || process.argv[3];
const REQUIRE = process.env.MINERVA_REQUIRE_SHARED === '1';
const MODEL_FILE = SHARED ? path.join(SHARED, 'models', 'stories260K-f32.gguf') : '';
const missing = !SERVE || !fs.existsSync(SERVE) ? `minerva-serve not found (${SERVE})`
  : !SHARED || !fs.existsSync(MODEL_FILE) ? `shared model not found (${MODEL_FILE}); set MINERVA_SHARED` : '';
if (missing && REQUIRE) test('shared data and server binary are present', () => assert.fail(missing));
const skip = missing ? missing : false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const servers = [];
let modelsDir;
let main;

// ---- helpers -------------------------------------------------------------------------------

function spawnServer(args, { home } = {}) {
  const proc = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home || modelsDir } });
  proc.out = '';
  proc.err = '';
  proc.stdout.on('data', (d) => { proc.out += d; });
  proc.stderr.on('data', (d) => { proc.err += d; });
  proc.exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  servers.push(proc);
  return proc;
}

async function startServer(extra = [], opts = {}) {
  const proc = spawnServer(['--port', '0', '--models-dir', modelsDir, '--threads', '1', ...extra], opts);
  const t0 = Date.now();
  while (Date.now() - t0 < 60000) {
    const m = proc.out.match(/listening on http:\/\/[^:]+:(\d+)/);
    if (m) {
      const port = Number(m[1]);
      return { proc, port, url: `http://127.0.0.1:${port}`, log: () => proc.err };
    }
    if (proc.exitCode !== null) throw new Error(`minerva-serve exited with ${proc.exitCode}:\n${proc.err}`);
    await sleep(20);
  }
  throw new Error('minerva-serve did not start:\n' + proc.err);
}

// Sends raw bytes (a string, Buffer, or async generator of chunks) and collects what comes back
// until the server closes or `timeout` ms pass. Write errors (a server that closed on us) are
// expected in some cases and ignored.
function raw(port, data, { timeout = 10000, localAddress, localPort, halfClose = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress, localPort });
    const chunks = [];
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), why });
    };
    const timer = setTimeout(() => finish('timeout'), timeout);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish('end'));
    sock.on('close', () => finish('close'));
    sock.on('error', () => finish('error'));
    sock.on('connect', async () => {
      try {
        if (typeof data === 'string' || Buffer.isBuffer(data)) {
          sock.write(data);
        } else {
          for await (const chunk of data) {
            if (done || sock.destroyed) break;
            if (!sock.write(chunk)) await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
          }
        }
        if (halfClose) sock.end();
      } catch {
        // the server closed the connection while we wrote: what it answered is in `chunks`
      }
    });
  });
}

// The responses in a raw byte stream: [{status, headers, body}], 1xx interim responses skipped.
function responses(text) {
  const out = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) break;
    const head = rest.slice(0, headEnd).split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const h of head.slice(1)) {
      const i = h.indexOf(':');
      headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
    }
    rest = rest.slice(headEnd + 4);
    if (status >= 100 && status < 200) continue;
    let body = '';
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = rest.slice(0, n);
      rest = rest.slice(n);
    } else if (headers['transfer-encoding'] === 'chunked') {
      while (true) {
        const nl = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, nl), 16);
        if (!(size >= 0)) break;
        body += rest.slice(nl + 2, nl + 2 + size);
        rest = rest.slice(nl + 2 + size + 2);
        if (size === 0) break;
      }
    } else {
      body = rest;
      rest = '';
    }
    out.push({ status, headers, body });
  }
  return out;
}

function assertOpenAIError(body, status, code) {
  const j = typeof body === 'string' ? JSON.parse(body) : body;
  assert.equal(typeof j.error?.message, 'string', `error.message in ${JSON.stringify(j)}`);
  assert.ok('type' in j.error && 'param' in j.error && 'code' in j.error, 'OpenAI error shape');
  if (code) assert.equal(j.error.code, code, `error.code for ${status}: ${j.error.message}`);
  return j.error;
}

async function rawExpect(server, data, status, code, opts) {
  const { text } = await raw(server.port, data, opts);
  const rs = responses(text);
  assert.ok(rs.length >= 1, `a response to ${String(data).slice(0, 80)}...: got ${JSON.stringify(text.slice(0, 200))}`);
  assert.equal(rs[0].status, status, `status: ${rs[0].body.slice(0, 300)}`);
  assertOpenAIError(rs[0].body, status, code);
  return rs[0];
}

async function alive(server) {
  const t0 = Date.now();
  const r = await fetch(server.url + '/health');
  assert.equal(r.status, 200, 'server alive');
  assert.deepEqual(await r.json(), { status: 'ok' });
  return Date.now() - t0;
}

async function post(server, route, body, headers = {}) {
  const r = await fetch(server.url + route, { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* SSE or empty */ }
  return { status: r.status, text, json, headers: r.headers };
}

function rss(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) * 1024;
}

async function metricsText(server) { return (await fetch(server.url + '/metrics')).text(); }
async function stats(server) { return (await (await fetch(server.url + '/v1/models/stats')).json()); }

const LONG = { model: 'stories', prompt: 'Once upon a time', temperature: 1, top_k: 0, top_p: 1, min_p: 0, seed: 3,
  logit_bias: { 2: -100 } };

before(async () => {
  if (skip) return;
  modelsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-robust-'));
  fs.symlinkSync(MODEL_FILE, path.join(modelsDir, 'stories.gguf'));
  fs.symlinkSync(path.join(SHARED, 'models', 'stories260K-Q8_0.gguf'), path.join(modelsDir, 'stories-q8.gguf'));
  fs.symlinkSync(MODEL_FILE, path.join(modelsDir, 'stories-b.gguf'));
  main = await startServer(['--parallel', '4', '--ctx-size', '1024', '--default-model', 'stories', '--header-timeout', '2',
    '--max-loaded-models', '3']);
  await post(main, '/v1/models/stories/load', '');
});

after(async () => {
  for (const p of servers) if (p.exitCode === null) p.kill('SIGKILL');
  if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
});

// ---- defects of the issue, each reproduced ------------------------------------------------

test('130k levels of JSON nesting are a 400, not a crash (every body-reading route)', { skip }, async () => {
  const deep = '['.repeat(130000) + ']'.repeat(130000);
  for (const [route, body] of [
    ['/v1/chat/completions', `{"messages":[{"role":"user","content":${deep}}]}`],
    ['/v1/completions', `{"prompt":${deep}}`],
    ['/tokenize', `{"content":${deep}}`],
    ['/detokenize', `{"tokens":${deep}}`],
    ['/v1/models/stories/load', `{"keep_alive":${deep}}`],
  ]) {
    const r = await post(main, route, body);
    assert.equal(r.status, 400, route);
    assertOpenAIError(r.json, 400, 'invalid_json');
  }
  // nesting inside a string is not nesting
  const r = await post(main, '/tokenize', { content: '['.repeat(100000) });
  assert.equal(r.status, 200);
  await alive(main);
});

test('body limits hold for chunked bodies, bodies without Content-Length, and Content-Length', { skip }, async () => {
  const mib = 'x'.repeat(1 << 20);
  async function* chunked() {
    yield 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    for (let i = 0; i < 12; i++) yield (1 << 20).toString(16) + '\r\n' + mib + '\r\n';
    yield '0\r\n\r\n';
  }
  await rawExpect(main, chunked(), 413, 'request_too_large');
  await rawExpect(main, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 12582912\r\n\r\n', 413, 'request_too_large');
  // no Content-Length: no body. The JSON that follows is not read as one.
  const r = await raw(main.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{"prompt":"x"}', { timeout: 5000 });
  const rs = responses(r.text);
  assert.equal(rs[0].status, 400);
  assertOpenAIError(rs[0].body, 400, 'invalid_json');
  await alive(main);
});

test('a 48 MiB header line is a 431 without buffering it; 200,000 headers are a 431; a 100 KB URL is a 414', { skip }, async () => {
  const before = rss(main.proc.pid);
  const mib = 'a'.repeat(1 << 20);
  async function* longLine() {
    yield 'GET /health HTTP/1.1\r\nHost: x\r\nX-Long: ';
    for (let i = 0; i < 48; i++) yield mib;
    yield '\r\n\r\n';
  }
  await rawExpect(main, longLine(), 431, 'headers_too_large');
  const grown = rss(main.proc.pid) - before;
  assert.ok(grown < 16 * (1 << 20), `RSS grew by ${grown} bytes`);
  async function* manyHeaders() {
    yield 'GET /health HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 200; i++) yield Array.from({ length: 1000 }, (_, k) => `X-H${i}-${k}: v\r\n`).join('');
    yield '\r\n';
  }
  await rawExpect(main, manyHeaders(), 431, 'headers_too_large');
  await rawExpect(main, `GET /v1/models/${'a'.repeat(100000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414, 'uri_too_long');
  await alive(main);
});

test('bad framing: negative, huge or non-numeric Content-Length, CL with TE, unknown TE, bad chunks', { skip }, async () => {
  for (const [head, status] of [
    ['Content-Length: -1', 400], ['Content-Length: 18446744073709551615', 400], ['Content-Length: 1e3', 400],
    ['Content-Length: 5\r\nContent-Length: 6', 400], ['Content-Length: 99999999999', 413],
    ['Content-Length: 5\r\nTransfer-Encoding: chunked', 400], ['Transfer-Encoding: gzip', 501],
  ]) {
    const t0 = Date.now();
    await rawExpect(main, `POST /v1/completions HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n`, status);
    assert.ok(Date.now() - t0 < 2000, `${head}: answered at once`);
  }
  await rawExpect(main, 'POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400);
  await rawExpect(main, 'GARBAGE\r\n\r\n', 400);
  await rawExpect(main, 'GET /health HTTP/2.0\r\n\r\n', 505);
  await rawExpect(main, 'GET /health HTTP/1.1\r\nBad Header\r\n\r\n', 400);
  // a chunked body within the limit is read
  const ok = await raw(main.port, 'POST /tokenize HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n' +
    '5\r\n{"con\r\n10\r\ntent":"Hello wor\r\n3\r\nld"\r\n1\r\n}\r\n0\r\n\r\n');
  assert.equal(responses(ok.text)[0].status, 200, ok.text);
  assert.ok(JSON.parse(responses(ok.text)[0].body).tokens.length > 0);
  await alive(main);
});

test('random bytes get an error or a close, never a crash', { skip }, async () => {
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const pieces = ['GET ', 'POST ', '/v1/completions', '/health', ' HTTP/1.1', '\r\n', '\n', ':', 'Content-Length: ',
    'Transfer-Encoding: chunked', '0', 'ffffffffffffffff', '{"prompt":', '[', '"', '\u0000', '\xff', '%', '%zz', ' '];
  await Promise.all(Array.from({ length: 200 }, async () => {
    let msg = '';
    const n = 1 + Math.floor(rnd() * 20);
    for (let k = 0; k < n; k++) {
      msg += rnd() < 0.7 ? pieces[Math.floor(rnd() * pieces.length)]
        : String.fromCharCode(...Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * 256)));
    }
    const { text } = await raw(main.port, Buffer.from(msg + '\r\n\r\n', 'latin1'), { timeout: 300 });
    for (const r of responses(text)) if (r.status >= 400) assertOpenAIError(r.body);
  }));
  await alive(main);
});

test('an idle keep-alive connection is closed after --keep-alive-timeout', { skip }, async () => {
  const s = await startServer(['--keep-alive-timeout', '1']);
  const t0 = Date.now();
  const r = await raw(s.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', { timeout: 5000 });
  assert.equal(responses(r.text)[0].status, 200);
  assert.equal(responses(r.text)[0].headers.connection, 'keep-alive');
  assert.notEqual(r.why, 'timeout', 'the server closed the idle connection');
  assert.ok(Date.now() - t0 >= 900 && Date.now() - t0 < 3000, `closed after ${Date.now() - t0} ms`);
  s.proc.kill('SIGKILL');
});

test('POST /v1/models/{id}/load without a body answers at once', { skip }, async () => {
  const t0 = Date.now();
  const { text } = await raw(main.port, 'POST /v1/models/stories/load HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const rs = responses(text);
  assert.equal(rs[0].status, 200, text);
  assert.equal(JSON.parse(rs[0].body).loaded, true);
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});

test('a disconnect from another address with the same source port does not cancel a request', { skip }, async () => {
  // A streams from 127.0.0.1; B uses A's source port from 127.0.0.2 and 127.0.0.3, then leaves
  const body = JSON.stringify({ ...LONG, max_tokens: 300, stream: true });
  const req = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const a = net.connect({ port: main.port, host: '127.0.0.1' });
  await new Promise((r) => a.on('connect', r));
  const port = a.localPort;
  const chunks = [];
  const aDone = new Promise((r) => { a.on('data', (d) => chunks.push(d)); a.on('close', r); });
  a.write(req);
  for (const host of ['127.0.0.2', '127.0.0.3']) {
    const b = await raw(main.port, req, { localAddress: host, localPort: port, timeout: 200 });
    void b;
  }
  await aDone;
  const text = Buffer.concat(chunks).toString();
  assert.match(text, /^HTTP\/1.1 200/);
  assert.ok(text.includes('data: [DONE]'), 'A completed');
  assert.ok(text.includes('"finish_reason":"length"'), 'A was not cancelled');
  await alive(main);
});

test('a half-closed client gets its answer; pipelined requests all get theirs', { skip }, async () => {
  const body = JSON.stringify({ model: 'stories', prompt: 'Once', max_tokens: 4, temperature: 0 });
  const r = await raw(main.port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    { halfClose: true });
  const rs = responses(r.text);
  assert.equal(rs.length, 1, r.text);
  assert.equal(rs[0].status, 200);
  assert.equal(JSON.parse(rs[0].body).choices[0].finish_reason, 'length');

  const p = await raw(main.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' +
    `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
    'GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const ps = responses(p.text);
  assert.deepEqual(ps.map((x) => x.status), [200, 200, 200], p.text.slice(0, 500));
  assert.deepEqual(JSON.parse(ps[0].body), { status: 'ok' });
  assert.equal(JSON.parse(ps[1].body).object, 'text_completion');
  assert.equal(JSON.parse(ps[2].body).object, 'list');
});

test('HTTP/1.0: answers close the connection; a stream is ended by the close', { skip }, async () => {
  const h = await raw(main.port, 'GET /health HTTP/1.0\r\n\r\n');
  assert.notEqual(h.why, 'timeout');
  assert.match(h.text, /^HTTP\/1.0 200 OK\r\n/);
  assert.match(h.text, /Connection: close/);
  const body = JSON.stringify({ prompt: 'Once', max_tokens: 8, stream: true });
  const st = await raw(main.port, `POST /v1/completions HTTP/1.0\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  assert.notEqual(st.why, 'timeout');
  assert.ok(!/Transfer-Encoding/i.test(st.text), 'no chunked encoding for HTTP/1.0');
  assert.ok(st.text.endsWith('data: [DONE]\n\n'), st.text.slice(-200));
});

test('the access log cannot be forged: the target is escaped', { skip }, async () => {
  await raw(main.port, 'GET /v1/models%0aFAKE%20req-1%20200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await rawExpect(main, 'GET /a\x01\x1b[31mb HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  await sleep(100);
  const log = main.log();
  assert.ok(!log.split('\n').some((l) => l.startsWith('FAKE')), 'no forged line');
  assert.ok(!log.includes('\x01') && !log.includes('\x1b[31m'), 'no raw control bytes');
  assert.ok(log.includes('/a\\x01\\x1b[31mb'), 'the control bytes are escaped');
});

test('token ids out of range are refused, not truncated', { skip }, async () => {
  for (const ids of [[4294967297], [2147483648], [-1], [512], [1.5], [1, 'x']]) {
    const c = await post(main, '/v1/completions', { prompt: ids, max_tokens: 1 });
    assert.equal(c.status, 400, JSON.stringify(ids));
    assert.equal(assertOpenAIError(c.json, 400, 'invalid_value').param, 'prompt');
    const d = await post(main, '/detokenize', { tokens: ids });
    assert.equal(d.status, 400, JSON.stringify(ids));
    assert.equal(assertOpenAIError(d.json).param, 'tokens');
  }
  const lb = await post(main, '/v1/completions', { prompt: 'x', max_tokens: 1, logit_bias: { 4294967297: 5 } });
  assert.equal(lb.status, 400);
});

test('overload: a full queue is a prompt 429, never an unbounded wait', { skip }, async () => {
  const s = await startServer(['--parallel', '2', '--max-queue', '6', '--ctx-size', '1024']);
  await post(s, '/v1/models/stories/load', '');
  const t = await Promise.all(Array.from({ length: 40 }, async () => {
    const t0 = Date.now();
    const r = await post(s, '/v1/completions', { ...LONG, max_tokens: 600 });
    return { status: r.status, ms: Date.now() - t0, json: r.json };
  }));
  const refused = t.filter((x) => x.status === 429);
  const served = t.filter((x) => x.status === 200);
  assert.equal(refused.length + served.length, 40, JSON.stringify(t.map((x) => x.status)));
  assert.ok(refused.length >= 30, `${refused.length} refused`);
  for (const x of refused) {
    assertOpenAIError(x.json, 429, 'queue_full');
    assert.ok(x.ms < 3000, `a 429 took ${x.ms} ms`);
  }
  const text = await metricsText(s);
  assert.match(text, /^minerva_queue_depth \d/m);
  s.proc.kill('SIGKILL');
});

test('Authorization scheme is case-insensitive; the key is not', { skip }, async () => {
  const s = await startServer(['--api-key', 'Secret']);
  for (const [auth, status] of [['bearer Secret', 200], ['BEARER Secret', 200], ['Bearer  Secret', 200], ['Bearer secret', 401],
    ['Basic Secret', 401], ['', 401]]) {
    const r = await fetch(s.url + '/v1/models', { headers: auth ? { authorization: auth } : {} });
    assert.equal(r.status, status, auth);
    if (status === 401) assertOpenAIError(await r.json(), 401, 'invalid_api_key');
  }
  s.proc.kill('SIGKILL');
});

test('a second server on a taken port fails with a clear error', { skip }, async () => {
  const p = spawnServer(['--port', String(main.port), '--models-dir', modelsDir]);
  const { code } = await p.exited;
  assert.equal(code, 1);
  assert.match(p.err, /cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  await alive(main);
});

test('a bad -m or --models-dir is a start-up error; /ready means a request would be served', { skip }, async () => {
  for (const args of [['-m', '/nope.gguf'], ['--models-dir', '/nonexistent-dir'], ['-m', path.join(modelsDir, '..', 'x.txt')]]) {
    const p = spawnServer(['--port', '0', ...args]);
    const { code } = await p.exited;
    assert.equal(code, 1, args.join(' '));
    assert.match(p.err, /minerva-serve: error: /);
    assert.equal(p.out, '', 'nothing on stdout');
  }
  const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-bad-'));
  fs.writeFileSync(path.join(bad, 'x.gguf'), 'GGUF not a model');
  const p = spawnServer(['--port', '0', '-m', path.join(bad, 'x.gguf')]);
  assert.equal((await p.exited).code, 1, 'a -m that cannot load stops the server');
  assert.match(p.err, /cannot load model 'x'/);
  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-empty-'));
  const empty = await startServer(['--models-dir', emptyDir]);
  const r = await fetch(empty.url + '/ready');
  assert.equal(r.status, 503);
  empty.proc.kill('SIGKILL');
  assert.equal((await fetch(main.url + '/ready')).status, 200);
  fs.rmSync(bad, { recursive: true, force: true });
  fs.rmSync(emptyDir, { recursive: true, force: true });
});

test('200 idle connections do not delay a request; idle and slowloris connections are closed', { skip }, async () => {
  const idle = [];
  for (let i = 0; i < 200; i++) {
    const s = net.connect({ port: main.port, host: '127.0.0.1' });
    s.on('error', () => {});
    idle.push(s);
  }
  await Promise.all(idle.map((s) => new Promise((r) => { if (s.readyState === 'open') r(); else s.on('connect', r); })));
  // 64 slowloris clients: a header byte every 200 ms never extends the 2 s header deadline
  const slow = [];
  for (let i = 0; i < 64; i++) {
    const s = net.connect({ port: main.port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.data = '';
    s.on('data', (d) => { s.data += d; });
    s.on('connect', () => s.write('GET /health HTTP/1.1\r\n'));
    s.timer = setInterval(() => { if (!s.destroyed) s.write('X'); }, 200);
    slow.push(s);
  }
  await sleep(300);
  const t0 = Date.now();
  const r = await post(main, '/v1/completions', { prompt: 'Once', max_tokens: 8 });
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 < 2000, `a request took ${Date.now() - t0} ms next to 264 idle connections`);
  assert.ok(await alive(main) < 1000, '/health is fast');
  await sleep(2500);
  for (const s of slow) clearInterval(s.timer);
  const timedOut = slow.filter((s) => /^HTTP\/1.1 408/.test(s.data)).length;
  assert.equal(timedOut, 64, 'every slowloris connection got a 408 at the header deadline');
  assertOpenAIError(responses(slow[0].data)[0].body, 408, 'request_timeout');
  const closed = idle.filter((s) => s.destroyed || s.readableEnded).length;
  await sleep(100);
  assert.ok(idle.filter((s) => s.readableEnded || s.destroyed).length >= closed);
  const conns = Number((await metricsText(main)).match(/^minerva_http_connections (\d+)/m)[1]);
  assert.ok(conns <= 2, `idle connections closed after the header deadline (${conns} open)`);
  for (const s of [...idle, ...slow]) s.destroy();
});

test('a connection limit answers 503 beyond it', { skip }, async () => {
  const s = await startServer(['--max-connections', '16']);
  const socks = [];
  for (let i = 0; i < 24; i++) {
    const c = net.connect({ port: s.port, host: '127.0.0.1' });
    c.data = '';
    c.on('data', (d) => { c.data += d; });
    c.on('error', () => {});
    socks.push(c);
  }
  await sleep(500);
  const refused = socks.filter((c) => c.data.startsWith('HTTP/1.1 503'));
  assert.ok(refused.length >= 8, `${refused.length} refused`);
  assertOpenAIError(responses(refused[0].data)[0].body, 503, 'server_busy');
  for (const c of socks) c.destroy();
  await sleep(200);
  await alive(s);
  s.proc.kill('SIGKILL');
});

test('request bytes buffered over all connections are bounded (503 beyond)', { skip }, async () => {
  // --max-body 64 KiB: all connections together may buffer 64 x that, 4 MiB
  const s = await startServer(['--max-body', '65536']);
  const socks = await Promise.all(Array.from({ length: 100 }, () => new Promise((resolve) => {
    const c = net.connect({ port: s.port, host: '127.0.0.1' });
    c.data = '';
    c.on('data', (d) => { c.data += d; });
    c.on('error', () => {});
    c.on('connect', () => {
      c.write('POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n' + 'x'.repeat(60000));
      resolve(c);
    });
  })));
  await sleep(500);
  const refused = socks.filter((c) => c.data.startsWith('HTTP/1.1 503'));
  assert.ok(refused.length >= 30, `${refused.length} of 100 half-sent 60 KB bodies refused`);
  assertOpenAIError(responses(refused[0].data)[0].body, 503, 'server_busy');
  for (const c of socks) c.destroy();
  await sleep(200);
  const r = await post(s, '/tokenize', { content: 'x'.repeat(60000) });
  assert.equal(r.status, 200, 'the budget is freed when the connections go');
  s.proc.kill('SIGKILL');
});

test('wrong types and values of every parameter are a 400 naming it', { skip }, async () => {
  const chat = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
  const comp = { prompt: 'hi', max_tokens: 2 };
  const cases = [
    ['model', 5], ['max_tokens', 'x'], ['max_tokens', 0], ['max_completion_tokens', -1], ['temperature', 'hot'],
    ['temperature', 3], ['top_p', 2], ['top_k', 1.5], ['top_k', -1], ['min_p', 'x'], ['presence_penalty', 5],
    ['frequency_penalty', 'x'], ['repeat_penalty', 0], ['seed', 'x'], ['stop', 5], ['stop', [1]], ['n', 0], ['n', 17],
    ['logit_bias', []], ['logit_bias', { x: 1 }], ['stream', 'yes'], ['keep_alive', {}], ['keep_alive', '5 minutes'],
  ];
  for (const [param, value] of cases) {
    for (const [route, base] of [['/v1/chat/completions', chat], ['/v1/completions', comp]]) {
      const r = await post(main, route, { ...base, [param]: value });
      assert.equal(r.status, 400, `${route} ${param}=${JSON.stringify(value)}: ${r.text}`);
      assert.equal(assertOpenAIError(r.json).param, param, `${route} ${param}`);
    }
  }
  for (const [param, value, route, base] of [
    ['messages', 'x', '/v1/chat/completions', {}], ['messages', [], '/v1/chat/completions', {}],
    ['messages[0].role', 'x', '/v1/chat/completions', { messages: [{ role: 'x', content: 'a' }] }],
    ['messages[0].content', 'x', '/v1/chat/completions', { messages: [{ role: 'user', content: 5 }] }],
    ['logprobs', 'x', '/v1/chat/completions', chat], ['top_logprobs', 50, '/v1/chat/completions', { ...chat, logprobs: true }],
    ['prompt', 5, '/v1/completions', {}], ['echo', 'x', '/v1/completions', comp], ['logprobs', 9, '/v1/completions', comp],
    ['stream_options', 1, '/v1/completions', { ...comp, stream: true }],
    ['content', 5, '/tokenize', {}], ['add_special', 'x', '/tokenize', { content: 'a' }], ['tokens', 'x', '/detokenize', {}],
  ]) {
    const body = value === 'x' && param.startsWith('messages[') ? base : { ...base, [param.split('[')[0]]: value };
    const r = await post(main, route, body);
    assert.equal(r.status, 400, `${route} ${param}: ${r.text}`);
    assert.ok(assertOpenAIError(r.json).param?.startsWith(param.split('[')[0]), `${route} ${param}: ${r.text}`);
  }
  for (const body of ['', 'null', '[]', '"x"', '{', '{"a":1}x', '\u0000']) {
    const r = await post(main, '/v1/completions', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assertOpenAIError(r.json, 400, 'invalid_json');
  }
  await alive(main);
});

test('path traversal in model ids finds nothing', { skip }, async () => {
  for (const id of ['..%2F..%2Fetc%2Fpasswd', '..', '%2Fetc%2Fpasswd', 'stories%00', 'stories.gguf', '..%2Fstories']) {
    const g = await fetch(`${main.url}/v1/models/${id}`);
    assert.ok(g.status === 404 || g.status === 400, `${id}: ${g.status}`);
    assertOpenAIError(await g.json());
    const l = await fetch(`${main.url}/v1/models/${id}/load`, { method: 'POST' });
    assert.ok(l.status === 404 || l.status === 400, `${id}/load: ${l.status}`);
  }
  for (const model of ['../stories', '/etc/passwd', path.join(modelsDir, 'stories'), 'stories/../stories']) {
    const r = await post(main, '/v1/completions', { model, prompt: 'x', max_tokens: 1 });
    assert.equal(r.status, 404, model);
    assertOpenAIError(r.json, 404, 'model_not_found');
  }
});

test('client aborts mid-body and mid-stream leave the server healthy and the slot free', { skip }, async () => {
  for (let i = 0; i < 5; i++) {
    await raw(main.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"prompt":', { timeout: 100 });
  }
  const ac = new AbortController();
  const r = await fetch(main.url + '/v1/completions', { method: 'POST', signal: ac.signal,
    body: JSON.stringify({ ...LONG, max_tokens: 1000, stream: true }) });
  const reader = r.body.getReader();
  await reader.read();
  await reader.read();
  ac.abort();
  let active = -1;
  for (let i = 0; i < 50 && active !== 0; i++) {
    await sleep(50);
    active = Number((await metricsText(main)).match(/^minerva_active_slots (\d+)/m)[1]);
  }
  assert.equal(active, 0, 'the aborted stream freed its slot');
  await alive(main);
});

test('a burst of 300 connections is accepted (no backlog overflow) and /health answers each', { skip }, async () => {
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 300 }, () =>
    raw(main.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeout: 5000 })));
  for (const r of rs) assert.equal(responses(r.text)[0]?.status, 200, r.text.slice(0, 200));
  // a dropped SYN is retried by the kernel after 1 s, then 3 s: overflows would show as seconds
  assert.ok(Date.now() - t0 < 2500, `300 connections took ${Date.now() - t0} ms`);
});

test('64 concurrent streams all start at once and complete', { skip }, async () => {
  const results = await Promise.all(Array.from({ length: 64 }, async (_, i) => {
    const t0 = Date.now();
    const r = await fetch(main.url + '/v1/chat/completions', { method: 'POST', body: JSON.stringify({
      messages: [{ role: 'user', content: `story ${i}` }], max_tokens: 24, stream: true, temperature: 0 }) });
    const headersMs = Date.now() - t0;
    return { status: r.status, text: await r.text(), headersMs };
  }));
  for (const r of results) {
    assert.ok(r.headersMs < 2000, `a stream started after ${r.headersMs} ms`);
    assert.equal(r.status, 200);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'), r.text.slice(-200));
    assert.match(r.text, /"finish_reason":"(length|stop)"/);
  }
});

test('load and unload races during generation', { skip }, async () => {
  const streams = Array.from({ length: 8 }, () => post(main, '/v1/completions', { ...LONG, model: 'stories-b', max_tokens: 200, stream: true }));
  const churn = (async () => {
    for (let i = 0; i < 10; i++) {
      const d = await fetch(main.url + '/v1/models/stories-b', { method: 'DELETE' });
      assert.equal(d.status, 200);
      const l = await fetch(main.url + '/v1/models/stories-b/load', { method: 'POST' });
      assert.equal(l.status, 200);
    }
  })();
  const [rs] = await Promise.all([Promise.all(streams), churn]);
  for (const r of rs) {
    assert.ok(r.status === 200 || r.status === 429, r.text.slice(0, 200));
    if (r.status === 200) assert.ok(r.text.endsWith('data: [DONE]\n\n'), 'every stream ends with [DONE]');
  }
  await alive(main);
});

test('RSS is stable over 1,000 requests', { skip }, async () => {
  const run = async (n) => {
    for (let i = 0; i < n; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) => (k % 2
        ? post(main, '/v1/completions', { prompt: 'Once upon', max_tokens: 2 })
        : post(main, '/tokenize', { content: 'Hello world ' + k }))));
    }
  };
  await run(200);
  const r0 = rss(main.proc.pid);
  await run(1000);
  const grown = rss(main.proc.pid) - r0;
  assert.ok(grown < 8 * (1 << 20), `RSS grew by ${(grown / 1048576).toFixed(1)} MiB over 1,000 requests`);
});

test('metrics also under vLLM names', { skip }, async () => {
  const text = await metricsText(main);
  for (const name of ['vllm:num_requests_running{model_name="stories"}', 'vllm:num_requests_waiting{model_name="stories"}',
    'vllm:kv_cache_usage_perc{model_name="stories"}', 'vllm:time_to_first_token_seconds_bucket',
    'vllm:inter_token_latency_seconds_count', 'minerva_http_connections', 'minerva_queue_depth']) {
    assert.ok(text.includes(name), name);
  }
  assert.ok(Number(text.match(/^vllm:inter_token_latency_seconds_count (\d+)/m)[1]) > 0);
});

// ---- model management ------------------------------------------------------------------------

test('preload, stats, and the eviction policies lru, lfu, fifo', { skip }, async () => {
  // greedy, so no request can end early on an end-of-sequence token (the stats count 2 tokens each)
  const use = (s, model) => post(s, '/v1/completions', { model, prompt: 'Once', max_tokens: 2, temperature: 0 });
  const loaded = async (s) => (await stats(s)).data.filter((m) => m.loaded).map((m) => m.id).sort();
  for (const [policy, expectEvicted] of [['lru', 'stories-q8'], ['lfu', 'stories-q8'], ['fifo', 'stories']]) {
    const cfgHome = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-home-'));
    fs.mkdirSync(path.join(cfgHome, '.minerva'));
    fs.writeFileSync(path.join(cfgHome, '.minerva', 'config.json'), JSON.stringify({ eviction_policy: policy, max_loaded_models: 2 }));
    const s = await startServer(['--parallel', '1'], { home: cfgHome });
    const p = await post(s, '/v1/models/stories/preload', '');
    assert.equal(p.status, 200);
    let st = (await stats(s)).data.find((m) => m.id === 'stories');
    assert.equal(st.loaded, true);
    assert.equal(st.requests, 0, 'a preload is not a use');
    assert.equal(st.loads, 1);
    assert.ok(st.load_seconds > 0 && st.bytes > 0);
    // stories: loaded first, used 3 times (first, then twice); stories-q8 loaded second, used once, last
    await use(s, 'stories');
    await use(s, 'stories-q8');
    await use(s, 'stories');
    await use(s, 'stories');
    await use(s, 'stories-q8');
    if (policy === 'lru') await use(s, 'stories');
    await use(s, 'stories-b');
    const now = await loaded(s);
    assert.ok(!now.includes(expectEvicted), `${policy}: ${expectEvicted} evicted, loaded ${now}`);
    assert.equal(now.length, 2);
    const all = await stats(s);
    assert.equal(all.policy, policy);
    st = all.data.find((m) => m.id === expectEvicted);
    assert.equal(st.evictions, 1);
    assert.ok(st.requests >= 2 && st.completion_tokens >= 4 && st.prompt_tokens > 0 && st.last_used > 0, JSON.stringify(st));
    s.proc.kill('SIGKILL');
    fs.rmSync(cfgHome, { recursive: true, force: true });
  }
});

test('memory budget: eviction before a load would exceed it, 503 when one model cannot fit', { skip }, async () => {
  const size = fs.statSync(MODEL_FILE).size;
  const s = await startServer(['--max-memory', String(Math.floor(size * 1.5)), '--max-loaded-models', '8', '--parallel', '1']);
  await post(s, '/v1/models/stories/load', '');
  await post(s, '/v1/models/stories-b/load', '');
  const st = await stats(s);
  assert.deepEqual(st.data.filter((m) => m.loaded).map((m) => m.id), ['stories-b'], 'stories was evicted for the budget');
  assert.ok(st.loaded_bytes <= st.max_memory_bytes);
  s.proc.kill('SIGKILL');
  const tiny = await startServer(['--max-memory', '1000']);
  const r = await post(tiny, '/v1/models/stories/load', '');
  assert.equal(r.status, 503);
  assertOpenAIError(r.json, 503, 'model_too_large');
  const c = await post(tiny, '/v1/completions', { model: 'stories', prompt: 'x' });
  assert.equal(c.status, 503);
  await alive(tiny);
  tiny.proc.kill('SIGKILL');
});

test('keep_alive: per request, and from the configuration', { skip }, async () => {
  const s = await startServer(['--parallel', '1', '--keep-alive', '1s']);
  const loadedNow = async (id) => (await stats(s)).data.find((m) => m.id === id).loaded;
  const r = await post(s, '/v1/completions', { model: 'stories', prompt: 'Once', max_tokens: 2, keep_alive: 0 });
  assert.equal(r.status, 200);
  await sleep(1500);
  assert.equal(await loadedNow('stories'), false, 'keep_alive 0 unloads after the request');
  await post(s, '/v1/completions', { model: 'stories-q8', prompt: 'Once', max_tokens: 2, keep_alive: '-1' });
  await post(s, '/v1/completions', { model: 'stories-b', prompt: 'Once', max_tokens: 2 });
  await sleep(2200);
  assert.equal(await loadedNow('stories-q8'), true, 'keep_alive -1 keeps it');
  assert.equal(await loadedNow('stories-b'), false, 'the configured 1s unloads an idle model');
  s.proc.kill('SIGKILL');
});

// ---- shutdown --------------------------------------------------------------------------------

test('SIGTERM drains: streams end with [DONE], no new connections, the shutdown is logged', { skip }, async () => {
  const s = await startServer(['--parallel', '2', '--drain-timeout', '2', '--ctx-size', '4096']);
  await post(s, '/v1/models/stories/load', '');
  const short = post(s, '/v1/completions', { ...LONG, max_tokens: 40, stream: true });
  const long = post(s, '/v1/completions', { ...LONG, max_tokens: 4000, stream: true });
  await sleep(150);
  s.proc.kill('SIGTERM');
  const [a, b] = await Promise.all([short, long]);
  for (const r of [a, b]) {
    assert.equal(r.status, 200);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'), r.text.slice(-300));
  }
  assert.match(a.text, /"finish_reason":"length"/, 'a short stream finishes');
  await sleep(100);
  await assert.rejects(fetch(s.url + '/health'), 'no new connections while draining or after');
  const { code } = await s.proc.exited;
  assert.equal(code, 0);
  assert.match(s.log(), /shutdown: no longer accepting connections/);
  assert.match(s.log(), /shutdown: drained/);
  if (/drain timeout/.test(s.log())) assert.match(b.text, /shutting down/);

  // past the drain timeout (here 0 s) a stream is ended with an error event and [DONE]
  const s2 = await startServer(['--parallel', '1', '--drain-timeout', '0', '--ctx-size', '4096']);
  await post(s2, '/v1/models/stories/load', '');
  const cut = post(s2, '/v1/completions', { ...LONG, max_tokens: 4000, stream: true });
  await sleep(150);
  s2.proc.kill('SIGINT');
  const c = await cut;
  assert.ok(c.text.endsWith('data: [DONE]\n\n'), c.text.slice(-300));
  const events = c.text.split('\n\n').filter((e) => e.startsWith('data: {'));
  const last = JSON.parse(events[events.length - 1].slice(6));
  assert.match(last.error.message, /shutting down/);
  assert.equal((await s2.proc.exited).code, 0);
  assert.match(s2.log(), /drain timeout \(0 s\) reached/);
});
