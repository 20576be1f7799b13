// Times llama.cpp (the prebuilt CPU binaries of the npm package node-llama-cpp@3.22.1) at a
// context depth: DEPTH tokens are evaluated once (not timed), then each round times prompt
// processing of N_PROMPT tokens and greedy decoding of N_GEN tokens after them, and erases them
// again. Flash attention and the KV cache types are llama.cpp's options (defaults: on, f16).
// usage: node llamacpp-depth.mjs MODEL THREADS N_PROMPT N_GEN DEPTH [KV_TYPE] -> JSON {pp_tps, tg_tps}
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
const [model, threads = "2", nPrompt = "128", nGen = "64", depthArg = "0", kvType = "F16"] = process.argv.slice(2);
const depth = Number(depthArg), np = Number(nPrompt), ng = Number(nGen);
const llama = await getLlama({gpu: false, logLevel: LlamaLogLevel.error, build: "never"});
const m = await llama.loadModel({modelPath: model, gpuLayers: 0});
const ctx = await m.createContext({
  contextSize: depth + np + ng + 16, batchSize: Math.max(np, 512), threads: Number(threads), flashAttention: true,
  experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType,
});
const seq = ctx.getSequence();
const nVocab = m.fileInsights.tokens?.vocabularySize ?? 30000;
const tokens = [];
for (let i = 0; tokens.length < depth + np; i++) tokens.push(100 + (i * 7919) % 20000 % nVocab);
if (depth > 0) await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(0, depth));
const pp = [], tg = [];
for (let rep = 0; rep < 3; rep++) {
  if (seq.nextTokenIndex > depth) await seq.eraseContextTokenRanges([{start: depth, end: seq.nextTokenIndex}]);
  let t0 = performance.now();
  const it = seq.evaluate(tokens.slice(depth), {temperature: 0});
  let r = await it.next();                        // the first generated token needs the whole prompt
  pp.push(np / ((performance.now() - t0) / 1000));
  t0 = performance.now();
  for (let i = 1; i < ng; i++) r = await it.next();
  tg.push((ng - 1) / ((performance.now() - t0) / 1000));
  await it.return();
}
const median = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(JSON.stringify({engine: "llama.cpp (node-llama-cpp)", depth, kv_type: kvType, pp_tps: median(pp), tg_tps: median(tg)}));
await ctx.dispose(); await m.dispose(); await llama.dispose();
