// Decode speed of minerva-serve with and without a JSON-schema constraint, on one model:
//   node bench/grammar_server_ratio.mjs PATH/TO/minerva-serve MODEL.gguf [MAX_TOKENS] [RUNS] [THREADS]
// Starts the server (one slot), warms it up, then runs RUNS free and RUNS constrained chat
// requests (seeds 1..RUNS) and prints the generated tokens per second of each (completion
// tokens / time after the first token: the timing fields the server logs are not needed) and
// the ratio constrained / free. The first constrained request is left out of the timing: it
// compiles the schema and fills the mask cache, as the first request with a new schema does.
import { spawn } from 'node:child_process';

const [serve, model, maxTok = '128', runs = '4', threads = '2'] = process.argv.slice(2);
if (!serve || !model) {
  console.error('usage: node grammar_server_ratio.mjs MINERVA_SERVE MODEL.gguf [MAX_TOKENS] [RUNS] [THREADS]');
  process.exit(2);
}
const proc = spawn(serve, ['-m', model, '--port', '0', '--parallel', '1', '--threads', threads], { stdio: ['ignore', 'pipe', 'pipe'] });
const url = await new Promise((resolve, reject) => {
  let log = '';
  const on = (d) => { log += d; const m = log.match(/listening on http:\/\/[^:]+:(\d+)/); if (m) resolve(`http://127.0.0.1:${m[1]}`); };
  proc.stdout.on('data', on);
  proc.stderr.on('data', on);
  proc.on('exit', (c) => reject(new Error(`server exited ${c}: ${log}`)));
});

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 }, age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { type: 'string', maxLength: 16 }, maxItems: 8 },
    notes: { type: 'string' },
  },
  required: ['name', 'age', 'tags', 'notes'],
};

async function run(seed, constrained) {
  const body = {
    messages: [{ role: 'user', content: 'Describe a person.' }], max_tokens: Number(maxTok), seed, temperature: 1.0, stream: true,
    ...(constrained ? { response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } } : {}),
  };
  const t0 = performance.now();
  const res = await fetch(url + '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ ...body, stream_options: { include_usage: true } }) });
  const reader = res.body.getReader();
  let first = 0, usage = null, buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!first) first = performance.now();
    buf += new TextDecoder().decode(value);
    const m = buf.match(/"completion_tokens":(\d+)/);
    if (m) usage = { completion_tokens: Number(m[1]) };
  }
  const t1 = performance.now();
  return { tokens: usage.completion_tokens, seconds: (t1 - first) / 1000, total: (t1 - t0) / 1000 };
}

process.on('exit', () => proc.kill('SIGTERM'));  // also when a request fails
await run(100, false);  // warm-up: weights paged in
await run(100, true);   // schema compiled, masks of the common states cached
const stats = { free: [0, 0], constrained: [0, 0] };
for (let i = 1; i <= Number(runs); ++i) {
  for (const c of [false, true]) {
    const r = await run(i, c);
    const s = stats[c ? 'constrained' : 'free'];
    s[0] += r.tokens - 1;  // tokens after the first
    s[1] += r.seconds;
    console.log(`${c ? 'constrained' : 'free       '} seed ${i}: ${r.tokens} tokens, ${((r.tokens - 1) / r.seconds).toFixed(1)} tokens/s`);
  }
}
const free = stats.free[0] / stats.free[1], cons = stats.constrained[0] / stats.constrained[1];
console.log(`free ${free.toFixed(1)} tokens/s, constrained ${cons.toFixed(1)} tokens/s, ratio ${(cons / free).toFixed(3)}`);
proc.kill('SIGTERM');
