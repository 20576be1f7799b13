// End-to-end tests of minerva-serve, driven by the official OpenAI Node SDK.
//   node server.test.mjs PATH/TO/minerva-serve SHARED_DIR
// SHARED_DIR is ../shared (models, references). Without it the tests are skipped, or fail when
// MINERVA_REQUIRE_SHARED=1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { launch } from './serve.mjs';

const SERVE = process.argv[2] || process.env.MINERVA_SERVE;
const SHARED = process.env.MINERVA_SHARED || process.argv[3];
const REQUIRE = process.env.MINERVA_REQUIRE_SHARED === '1';
const MODEL_FILE = SHARED ? path.join(SHARED, 'models', 'stories260K-f32.gguf') : '';
const REFERENCE = SHARED ? path.join(SHARED, 'reference', 'stories260K-f32.json') : '';

const missing = !SERVE || !fs.existsSync(SERVE) ? `minerva-serve not found (${SERVE})`
  : !SHARED || !fs.existsSync(MODEL_FILE) ? `shared model not found (${MODEL_FILE}); set MINERVA_SHARED` : '';
if (missing && REQUIRE) {
  test('shared data and server binary are present', () => assert.fail(missing + ' but MINERVA_REQUIRE_SHARED=1'));
}
const skip = missing ? missing : false;

// ---- server processes --------------------------------------------------------------------

const servers = [];
let modelsDir;

async function startServer(extra = []) {
  const server = launch(SERVE, ['--port', '0', '--models-dir', modelsDir, '--threads', '1', ...extra], modelsDir);
  server.then((s) => servers.push(s.proc), () => {});
  return server;
}

function client(server, apiKey = 'none') {
  return new OpenAI({ baseURL: server.url + '/v1', apiKey, maxRetries: 0, timeout: 120000 });
}

async function expectApiError(promise, status, check = () => {}) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `expected an APIError, got ${e}`);
    assert.equal(e.status, status, `status of: ${e.message}`);
    assert.equal(typeof e.error?.message, 'string', 'error.message');
    assert.ok('type' in e.error && 'param' in e.error && 'code' in e.error, 'OpenAI error shape');
    check(e);
    return e;
  }
  assert.fail(`expected HTTP ${status}, the request succeeded`);
}

async function metric(server, name) {
  const text = await (await fetch(server.url + '/metrics')).text();
  const m = text.match(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

let main; // --parallel 8
let ai;
const MODEL = 'stories';
const PROMPT = 'Once upon a time, there was a little girl named Mia.';

before(async () => {
  if (skip) return;
  modelsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-serve-test-'));
  fs.symlinkSync(MODEL_FILE, path.join(modelsDir, 'stories.gguf'));
  fs.symlinkSync(path.join(SHARED, 'models', 'stories260K-Q8_0.gguf'), path.join(modelsDir, 'stories-q8.gguf'));
  fs.writeFileSync(path.join(modelsDir, 'broken.gguf'), 'GGUF this is not a model file');
  fs.writeFileSync(path.join(modelsDir, 'notes.txt'), 'not listed');
  main = await startServer(['--parallel', '8', '--max-body', '1048576', '--ctx-size', '4096']);
  ai = client(main);
});

after(() => {
  for (const p of servers) p.kill('SIGTERM');
  if (modelsDir) fs.rmSync(modelsDir, { recursive: true, force: true });
});

// ---- models, health ------------------------------------------------------------------------

test('models list and retrieve', { skip }, async () => {
  const list = await ai.models.list();
  const ids = list.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['broken', 'stories', 'stories-q8']);
  for (const m of list.data) assert.equal(m.object, 'model');
  const one = await ai.models.retrieve('stories');
  assert.equal(one.id, 'stories');
  await expectApiError(ai.models.retrieve('nope'), 404, (e) => assert.equal(e.code, 'model_not_found'));
  await expectApiError(ai.models.retrieve('..%2Fstories'), 404);
});

test('health, ready, tokenize, detokenize, metrics', { skip }, async () => {
  assert.equal((await fetch(main.url + '/health')).status, 200);
  const ready = await fetch(main.url + '/ready');
  assert.equal(ready.status, 200);
  const tok = await (await fetch(main.url + '/tokenize', {
    method: 'POST', body: JSON.stringify({ model: MODEL, content: PROMPT, add_special: true }),
  })).json();
  const ref = JSON.parse(fs.readFileSync(REFERENCE, 'utf8'));
  assert.ok(tok.tokens.length > 5);
  assert.equal(tok.tokens[0], ref.prompt_tokens[0], 'BOS first');
  assert.deepEqual(tok.tokens, ref.prompt_tokens.slice(0, tok.tokens.length), 'same ids as llama.cpp for the prefix');
  const detok = await (await fetch(main.url + '/detokenize', {
    method: 'POST', body: JSON.stringify({ model: MODEL, tokens: tok.tokens.slice(1) }),
  })).json();
  assert.equal(detok.content.trim(), PROMPT);
  const text = await (await fetch(main.url + '/metrics')).text();
  for (const name of ['minerva_requests_total', 'minerva_prompt_tokens_total', 'minerva_generated_tokens_total',
    'minerva_generation_tokens_per_second', 'minerva_time_to_first_token_seconds_bucket',
    'minerva_request_duration_seconds_bucket', 'minerva_queue_depth', 'minerva_active_slots',
    'minerva_kv_cache_usage_ratio', 'minerva_models_loaded']) {
    assert.ok(text.includes(name), `metrics has ${name}`);
  }
  assert.match(text, /minerva_requests_total\{route="\/tokenize",status="200"\} \d+/);
});

// ---- generation ------------------------------------------------------------------------------

test('completions: greedy output equals llama.cpp reference continuation', { skip }, async () => {
  const ref = JSON.parse(fs.readFileSync(REFERENCE, 'utf8'));
  const r = await ai.completions.create({ model: MODEL, prompt: ref.prompt_tokens, max_tokens: 32, temperature: 0 });
  let greedy = ref.greedy;
  const eos = greedy.indexOf(2);
  if (eos >= 0) greedy = greedy.slice(0, eos);
  const expected = await (await fetch(main.url + '/detokenize', {
    method: 'POST', body: JSON.stringify({ model: MODEL, tokens: greedy }),
  })).json();
  assert.equal(r.choices[0].text, expected.content);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.prompt_tokens, ref.prompt_tokens.length);
  assert.equal(r.usage.completion_tokens, greedy.length);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('chat: non-streaming and streaming agree, usage', { skip }, async () => {
  const body = { model: MODEL, messages: [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: PROMPT }],
    max_tokens: 24, temperature: 0 };
  const r = await ai.chat.completions.create(body);
  assert.equal(r.object, 'chat.completion');
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.ok(r.usage.prompt_tokens > 10);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 24);
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 24);

  const stream = await ai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, role = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      if (ch.delta.role) role = ch.delta.role;
      text += ch.delta.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.ok(chunks > 3);
  assert.equal(role, 'assistant');
  assert.equal(text, c.message.content);
  assert.equal(finish, c.finish_reason);
  assert.deepEqual({ p: usage.prompt_tokens, c: usage.completion_tokens }, { p: r.usage.prompt_tokens, c: r.usage.completion_tokens });
});

test('completions: streaming', { skip }, async () => {
  const body = { model: MODEL, prompt: PROMPT, max_tokens: 20, temperature: 0 };
  const r = await ai.completions.create(body);
  const stream = await ai.completions.create({ ...body, stream: true });
  let text = '', finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      text += ch.text;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finish, r.choices[0].finish_reason);
});

test('stop strings cut the output', { skip }, async () => {
  const full = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 0 });
  const text = full.choices[0].text;
  const words = text.split(' ').filter((w) => w.length >= 3);
  assert.ok(words.length >= 3, `need some words in: ${text}`);
  const stop = words[2];
  const cut = text.slice(0, text.indexOf(stop));
  const r = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 0, stop: [stop, 'zzzz'] });
  assert.equal(r.choices[0].text, cut);
  assert.equal(r.choices[0].finish_reason, 'stop');
  // streamed too: no part of the stop string leaks out
  const s = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 0, stop, stream: true });
  let streamed = '';
  for await (const chunk of s) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, cut);
});

test('seed makes sampling reproducible', { skip }, async () => {
  const body = { model: MODEL, prompt: PROMPT, max_tokens: 24, temperature: 1.0, top_k: 0, top_p: 1, min_p: 0 };
  const a = await ai.completions.create({ ...body, seed: 42 });
  const b = await ai.completions.create({ ...body, seed: 42 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  const others = await Promise.all([43, 44, 45].map((seed) => ai.completions.create({ ...body, seed })));
  assert.ok(others.some((o) => o.choices[0].text !== a.choices[0].text), 'different seeds give some different text');
});

test('n > 1 gives n choices', { skip }, async () => {
  const r = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: PROMPT }], n: 3,
    max_tokens: 16, temperature: 1.0, seed: 7 });
  assert.equal(r.choices.length, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of r.choices) assert.equal(typeof c.message.content, 'string');
  assert.ok(r.usage.completion_tokens >= 3 && r.usage.completion_tokens <= 48);
  const stream = await ai.completions.create({ model: MODEL, prompt: PROMPT, n: 2, max_tokens: 12, temperature: 1, seed: 3, stream: true });
  const texts = ['', ''];
  const finished = [false, false];
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      texts[ch.index] += ch.text;
      if (ch.finish_reason) finished[ch.index] = true;
    }
  }
  assert.deepEqual(finished, [true, true]);
});

test('logprobs and top_logprobs', { skip }, async () => {
  const r = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: PROMPT }], max_tokens: 8,
    temperature: 0, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob && t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob);
    assert.equal(t.token, t.top_logprobs[0].token, 'greedy picks the most likely token');
    assert.ok(Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-5);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  }
  assert.equal(lp.map((t) => t.token).join(''), r.choices[0].message.content);
  const c = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0, logprobs: 2 });
  const l = c.choices[0].logprobs;
  assert.equal(l.tokens.length, c.usage.completion_tokens);
  assert.equal(l.token_logprobs.length, l.tokens.length);
  assert.equal(Object.keys(l.top_logprobs[0]).length, 2);
});

test('prefix KV cache reuse is reported as cached prompt tokens', { skip }, async () => {
  const body = { model: MODEL, prompt: PROMPT + ' She liked to play.', max_tokens: 2, temperature: 0 };
  await ai.completions.create(body);
  const again = await ai.completions.create(body);
  assert.ok(again.usage.prompt_tokens_details.cached_tokens >= again.usage.prompt_tokens - 1,
    JSON.stringify(again.usage));
});

// ---- concurrency ---------------------------------------------------------------------------------

test('8 concurrent streams all complete', { skip }, async () => {
  const run = async (i) => {
    const stream = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `${PROMPT} ${i}` }],
      max_tokens: 32, temperature: 0.8, seed: i, stream: true });
    let text = '', finish = null;
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        text += ch.delta.content ?? '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    return { text, finish };
  };
  const results = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(run));
  for (const r of results) assert.ok(['stop', 'length'].includes(r.finish));
  assert.ok(results.filter((r) => r.text.length > 0).length >= 6);
});

test('client abort mid-stream frees the slot; the next request works', { skip }, async () => {
  const controller = new AbortController();
  // a long generation that cannot end early: EOS (id 2) is banned through logit_bias
  const { data: stream, response } = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 4000,
    temperature: 1, top_k: 0, top_p: 1, min_p: 0, stream: true, seed: 1, logit_bias: { 2: -100 } },
  { signal: controller.signal }).withResponse();
  const rid = response.headers.get('x-request-id');
  assert.match(rid, /^req-\d+$/);
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      void chunk;
      if (++chunks === 3) controller.abort();
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
  }
  // the server noticed: the request was cancelled before its 4000 tokens
  let line = null;
  for (let i = 0; i < 40 && !line; i++) {
    line = main.log().split('\n').find((l) => l.includes(rid + ' '));
    if (!line) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(line, `access log line of ${rid}`);
  assert.match(line, /completion_tokens=(\d+) .*cancelled/);
  assert.ok(Number(line.match(/completion_tokens=(\d+)/)[1]) < 4000, line);
  // the slot is released within a moment (no need to wait for 4000 tokens)
  let active = NaN;
  for (let i = 0; i < 40; i++) {
    active = await metric(main, 'minerva_active_slots');
    if (active === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(active, 0, 'active slots after abort');
  const r = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 8, temperature: 0 });
  assert.ok(r.choices[0].text.length > 0);
});

// ---- errors ------------------------------------------------------------------------------------

test('400: invalid JSON, invalid parameters, context_length_exceeded', { skip }, async () => {
  const raw = await fetch(main.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: '{"model": "stories", "messages": [' });
  assert.equal(raw.status, 400);
  const err = (await raw.json()).error;
  assert.equal(err.type, 'invalid_request_error');
  assert.match(err.message, /JSON/);

  const msgs = [{ role: 'user', content: 'hi' }];
  const cases = [
    [{ temperature: 'hot' }, 'temperature'], [{ temperature: 7 }, 'temperature'], [{ top_p: 2 }, 'top_p'],
    [{ n: 0 }, 'n'], [{ max_tokens: -1 }, 'max_tokens'], [{ stop: 5 }, 'stop'], [{ seed: 'x' }, 'seed'],
    [{ logit_bias: { abc: 1 } }, 'logit_bias'], [{ top_logprobs: 3 }, 'top_logprobs'], [{ messages: 'hi' }, 'messages'],
    [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'], [{ model: 42 }, 'model'],
  ];
  for (const [extra, param] of cases) {
    await expectApiError(ai.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 4, ...extra }), 400,
      (e) => assert.equal(e.param, param, JSON.stringify(extra)));
  }
  await expectApiError(ai.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 100000 }), 400,
    (e) => assert.equal(e.code, 'context_length_exceeded'));
  await expectApiError(ai.completions.create({ model: MODEL, prompt: 'x '.repeat(5000), max_tokens: 4 }), 400,
    (e) => assert.equal(e.code, 'context_length_exceeded'));
  // a field the server does not implement is refused, named (never silently ignored)
  await expectApiError(ai.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 2, some_future_field: { a: 1 } }), 400,
    (e) => { assert.equal(e.param, 'some_future_field'); assert.equal(e.code, 'unsupported_parameter'); });
  await expectApiError(ai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2, suffix: 'y' }), 400,
    (e) => assert.equal(e.param, 'suffix'));
  const ok = await ai.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 2, user: 'u-1' });
  assert.equal(ok.choices.length, 1);
});

test('404: unknown model and unknown route', { skip }, async () => {
  await expectApiError(ai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), 404,
    (e) => assert.equal(e.code, 'model_not_found'));
  await expectApiError(ai.completions.create({ model: '../stories', prompt: 'x' }), 404);
  const r = await fetch(main.url + '/v1/nothing/here');
  assert.equal(r.status, 404);
  assert.equal(typeof (await r.json()).error.message, 'string');
});

test('413: oversized body', { skip }, async () => {
  const big = JSON.stringify({ model: MODEL, prompt: 'a'.repeat(2 * 1024 * 1024) });
  const r = await fetch(main.url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
  assert.equal(r.status, 413);
  const err = (await r.json()).error;
  assert.equal(err.code, 'request_too_large');
});

test('500: a model file that cannot be loaded', { skip }, async () => {
  await expectApiError(ai.completions.create({ model: 'broken', prompt: 'x', max_tokens: 2 }), 500,
    (e) => assert.equal(e.type, 'server_error'));
  // the server is still fine
  const r = await ai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 2 });
  assert.equal(r.choices.length, 1);
});

test('401: --api-key; CORS only with --cors', { skip }, async () => {
  const plain = await fetch(main.url + '/health', { headers: { Origin: 'http://a.example' } });
  assert.equal(plain.headers.get('access-control-allow-origin'), null, 'CORS is off by default');
  const s = await startServer(['--api-key', 'sekrit', '--parallel', '1', '--cors', 'http://a.example']);
  const cors = await fetch(s.url + '/health', { headers: { Origin: 'http://a.example' } });
  assert.equal(cors.headers.get('access-control-allow-origin'), 'http://a.example');
  const other = await fetch(s.url + '/health', { headers: { Origin: 'http://b.example' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  await expectApiError(client(s, 'wrong').models.list(), 401, (e) => assert.equal(e.code, 'invalid_api_key'));
  const noKey = await fetch(s.url + '/v1/models');
  assert.equal(noKey.status, 401);
  assert.equal((await fetch(s.url + '/health')).status, 200);
  const list = await client(s, 'sekrit').models.list();
  assert.ok(list.data.length >= 1);
  s.proc.kill('SIGTERM');
});

test('429: the queue is full', { skip }, async () => {
  const s = await startServer(['--parallel', '1', '--max-queue', '1', '--ctx-size', '4096']);
  const c = client(s);
  // long generations (EOS banned) so that all six requests arrive while the first runs
  const body = { model: MODEL, prompt: PROMPT, max_tokens: 3000, temperature: 1, top_k: 0, top_p: 1, min_p: 0, seed: 5,
    logit_bias: { 2: -100 } };
  await c.completions.create({ ...body, max_tokens: 1 }); // load the model first
  const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map(() => c.completions.create(body)));
  const rejected = results.filter((r) => r.status === 'rejected');
  const fulfilled = results.filter((r) => r.status === 'fulfilled');
  assert.ok(rejected.length >= 1, 'some requests were refused');
  for (const r of rejected) {
    assert.equal(r.reason.status, 429, String(r.reason));
    assert.equal(r.reason.code, 'queue_full');
  }
  assert.ok(fulfilled.length >= 1, 'the admitted requests completed');
  s.proc.kill('SIGTERM');
});

test('access log has one line per request', { skip }, async () => {
  const log = main.log();
  assert.match(log, /req-\d+ 127\.0\.0\.1 POST \/v1\/chat\/completions 200 prompt_tokens=\d+ completion_tokens=\d+ [0-9.]+s/);
  assert.match(log, /POST \/v1\/completions 413/);
});

test('load, unload, and least-recently-used unloading past --max-loaded-models', { skip }, async () => {
  const s = await startServer(['--max-loaded-models', '1', '--parallel', '1']);
  const loaded = async () => (await (await fetch(s.url + '/v1/models')).json()).data.filter((m) => m.loaded).map((m) => m.id);
  assert.deepEqual(await loaded(), []);
  const l = await fetch(s.url + '/v1/models/stories/load', { method: 'POST' });
  assert.equal(l.status, 200);
  assert.deepEqual(await loaded(), ['stories']);
  await client(s).completions.create({ model: 'stories-q8', prompt: 'Once', max_tokens: 2 });
  assert.deepEqual(await loaded(), ['stories-q8'], 'the least recently used model was unloaded');
  const d = await (await fetch(s.url + '/v1/models/stories-q8', { method: 'DELETE' })).json();
  assert.equal(d.deleted, true);
  assert.deepEqual(await loaded(), []);
  assert.equal((await fetch(s.url + '/v1/models/nope/load', { method: 'POST' })).status, 404);
  s.proc.kill('SIGTERM');
});

test('config file: values apply, flags override, a bad file is a clear error', { skip }, async () => {
  const cfgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-cfg-'));
  const good = path.join(cfgDir, 'good.json');
  fs.writeFileSync(good, JSON.stringify({ models_dir: modelsDir, api_key: 'fromconfig', parallel: 2 }));
  const s = await startServer(['--config', good]);
  assert.equal((await fetch(s.url + '/v1/models')).status, 401, 'api_key from the config file');
  assert.equal((await client(s, 'fromconfig').models.list()).data.length, 3);
  s.proc.kill('SIGTERM');
  const s2 = await startServer(['--config', good, '--api-key', 'fromflag']);
  assert.equal((await client(s2, 'fromflag').models.list()).data.length, 3, 'the flag overrides the file');
  s2.proc.kill('SIGTERM');
  for (const [text, needle] of [['{"port": "high"}', "'port'"], ['{not json', 'invalid JSON'], ['{"colour": 1}', "'colour'"]]) {
    const bad = path.join(cfgDir, 'bad.json');
    fs.writeFileSync(bad, text);
    await assert.rejects(startServer(['--config', bad]), (e) => e.message.includes(needle) && e.message.includes('bad.json'));
  }
  fs.rmSync(cfgDir, { recursive: true, force: true });
});

test('context shift: KV cache types and per-token memory in /metrics; a long chat drops its oldest turns; generation goes past the context', { skip }, async () => {
  const long = 'The little dog ran to the park and played with a red ball all day long. ';
  const turns = [{ role: 'system', content: 'You tell short stories.' }];
  for (let i = 0; i < 6; i++) {
    turns.push({ role: 'user', content: `${i}: ${long}` });
    turns.push({ role: 'assistant', content: `Story ${i}: ${long}` });
  }
  turns.push({ role: 'user', content: 'The end.' });
  // Without --context-shift the conversation is refused by name.
  const off = await startServer(['--ctx-size', '160', '--parallel', '1']);
  await expectApiError(client(off).chat.completions.create({ model: MODEL, messages: turns, max_tokens: 8 }), 400,
    (e) => assert.equal(e.error.code, 'context_length_exceeded'));
  await expectApiError(client(off).completions.create({ model: MODEL, prompt: 'Once', max_tokens: 4, n_keep: 2 }), 400,
    (e) => assert.equal(e.error.param, 'n_keep'));
  off.proc.kill('SIGTERM');

  const on = await startServer(['--ctx-size', '160', '--parallel', '1', '--context-shift']);
  const raw = await fetch(on.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: turns, max_tokens: 8, temperature: 0 }),
  });
  assert.equal(raw.status, 200);
  assert.ok(Number(raw.headers.get('x-minerva-dropped-messages')) >= 1, 'the dropped turns are reported');
  const body = await raw.json();
  assert.ok(body.usage.prompt_tokens < 160, 'the prompt fits the context');
  // Generation past the context: 300 tokens in a context of 160 (EOS banned), the context shifts.
  const r = await client(on).completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 300, temperature: 0, logit_bias: { '2': -100 } });
  assert.equal(r.usage.completion_tokens, 300);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.ok(await metric(on, 'minerva_context_shifts_total') >= 1);
  const metrics = await (await fetch(on.url + '/metrics')).text();
  const m = metrics.match(/^minerva_kv_cache_bytes_per_token\{model="stories",cache_type_k="f16",cache_type_v="f16"\} (\d+)$/m);
  assert.ok(m && Number(m[1]) > 0, 'KV bytes per token in /metrics');
  on.proc.kill('SIGTERM');

  // A quantized cache on a model whose head size (8) is not a multiple of 32 is refused with the reason.
  const q8 = await startServer(['--parallel', '1', '-ctk', 'q8_0']);
  await expectApiError(client(q8).completions.create({ model: MODEL, prompt: 'Once', max_tokens: 2 }), 500,
    (e) => assert.match(e.error.message, /multiple of 32/));
  q8.proc.kill('SIGTERM');
  await assert.rejects(startServer(['--parallel', '1', '-ctk', 'q3']), (e) => e.message.includes('q8_0'));
});
