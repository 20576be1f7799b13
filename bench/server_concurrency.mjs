// bench/server_concurrency.mjs: aggregate generation throughput of minerva-serve with N
// concurrent streams against one stream (continuous batching).
//   node bench/server_concurrency.mjs BUILD/minerva-serve MODEL.gguf [STREAMS=8] [TOKENS=128] [THREADS=1]
// Starts the server with --parallel STREAMS on a free port, warms it up, then times
//   1) one stream of TOKENS tokens (best of 3), and
//   2) STREAMS streams of TOKENS tokens each, started together;
// and prints tokens/s for both and their ratio. Sampling ignores nothing: temperature 1 with a
// seed, so every stream runs the full TOKENS unless the model emits EOS (counted from usage).
import { spawn } from 'node:child_process';

const [serve, model, streamsArg, tokensArg, threadsArg] = process.argv.slice(2);
if (!serve || !model) {
  console.error('usage: node bench/server_concurrency.mjs MINERVA_SERVE MODEL.gguf [STREAMS] [TOKENS] [THREADS]');
  process.exit(2);
}
const STREAMS = Number(streamsArg || 8), TOKENS = Number(tokensArg || 128), THREADS = Number(threadsArg || 1);

const proc = spawn(serve, ['--model', model, '--port', '0', '--parallel', String(STREAMS), '--threads', String(THREADS),
  '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
let log = '';
const port = await new Promise((resolve, reject) => {
  const on = (d) => {
    log += d;
    const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
    if (m) resolve(Number(m[1]));
  };
  proc.stdout.on('data', on);
  proc.stderr.on('data', on);
  proc.on('exit', (c) => reject(new Error(`server exited ${c}: ${log}`)));
});
const url = `http://127.0.0.1:${port}/v1/completions`;
const id = model.split('/').pop().replace(/\.gguf$/, '');

// One streamed completion; resolves to {tokens, ok}.
async function stream(seed) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: id, prompt: 'Once upon a time', max_tokens: TOKENS, temperature: 1, seed, stream: true,
      stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) return { tokens: 0, ok: false, status: res.status };
  const text = await res.text();
  let tokens = 0, done = false;
  for (const line of text.split('\n')) {
    if (line === 'data: [DONE]') done = true;
    else if (line.startsWith('data: ')) {
      const j = JSON.parse(line.slice(6));
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { tokens, ok: done };
}

// load the model and open STREAMS keep-alive connections before timing anything
await Promise.all(Array.from({ length: STREAMS }, (_, i) => stream(i)));
let single = 0;
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  const s = await stream(100 + r);
  single = Math.max(single, s.tokens / ((performance.now() - t0) / 1000));
}
const t0 = performance.now();
const results = await Promise.all(Array.from({ length: STREAMS }, (_, i) => stream(200 + i)));
const secs = (performance.now() - t0) / 1000;
const total = results.reduce((a, r) => a + r.tokens, 0);
const lost = results.filter((r) => !r.ok).length;
const aggregate = total / secs;
console.log(`model ${id}, ${TOKENS} tokens per stream, ${THREADS} threads`);
console.log(`1 stream:  ${single.toFixed(1)} tokens/s`);
console.log(`${STREAMS} streams: ${aggregate.toFixed(1)} tokens/s aggregate (${total} tokens in ${secs.toFixed(2)} s, ${lost} lost)`);
console.log(`ratio: ${(aggregate / single).toFixed(2)}x`);
proc.kill('SIGTERM');
process.exit(lost === 0 && aggregate >= 3 * single ? 0 : 1);
