// The llama.cpp yardstick for grammar-constrained decoding (prebuilt binaries of the npm package
// node-llama-cpp@3.22.1, installed in a scratch folder: `npm install node-llama-cpp@3.22.1`; run
// this file from there or with NODE_PATH pointing at its node_modules). Decodes N_GEN tokens at
// temperature 1 with and without a JSON-schema grammar (the same schema as
// grammar_server_ratio.mjs, converted by node-llama-cpp's own JSON-schema grammar), 3 seeds each,
// and prints tokens/s of both and their ratio, CPU only.
// usage: node llamacpp_grammar.mjs MODEL THREADS N_GEN
import { getLlama, LlamaLogLevel, LlamaGrammarEvaluationState } from 'node-llama-cpp';

const [model, threads = '2', nGen = '48'] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error, build: 'never' });
const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
const ctx = await m.createContext({ contextSize: 512, threads: Number(threads) });
const seq = ctx.getSequence();
const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 }, age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { type: 'string', maxLength: 16 }, maxItems: 8 }, notes: { type: 'string' },
  },
  required: ['name', 'age', 'tags', 'notes'],
};
const grammar = await llama.createGrammarForJsonSchema(schema);
const prompt = m.tokenize('Describe a person.');

async function run(seed, constrained) {
  await seq.clearHistory();
  const opts = { temperature: 1, seed };
  if (constrained) opts.grammarEvaluationState = new LlamaGrammarEvaluationState({ model: m, grammar });
  const it = seq.evaluate(prompt, opts);
  let r = await it.next();
  const t0 = performance.now();
  let n = 0;
  for (let i = 1; i < Number(nGen); i++) {
    r = await it.next();
    if (r.done) break;
    ++n;
  }
  const s = (performance.now() - t0) / 1000;
  await it.return();
  return { n, s };
}

await run(100, false);
await run(100, true);
const acc = { free: [0, 0], constrained: [0, 0] };
for (const seed of [1, 2, 3])
  for (const c of [false, true]) {
    const r = await run(seed, c);
    const a = acc[c ? 'constrained' : 'free'];
    a[0] += r.n;
    a[1] += r.s;
  }
const free = acc.free[0] / acc.free[1], cons = acc.constrained[0] / acc.constrained[1];
console.log(JSON.stringify({ engine: 'llama.cpp (node-llama-cpp)', free_tps: free, constrained_tps: cons, ratio: cons / free }));
await m.dispose();
await llama.dispose();
