// engine/model/forward.cpp: the LLaMA forward pass, one function read top to bottom, every op through
// the Backend interface. Prefill (many tokens) and decode (one token) are the same code; a batch
// may mix tokens of several sequences (continuous batching): each token carries its position,
// its KV-cache cell and the span of cells it attends to.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "llama.h"

namespace minerva {

namespace {

// The first n entries along dimension dim (the outermost used one) of a dense tensor: itself a
// dense tensor sharing the memory.
Tensor cols(const Tensor& t, int dim, int64_t n) {
    Tensor v = t;
    v.ne[dim] = n;
    return v;
}

Tensor make(Backend& b, DType type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
    const int64_t ne[4] = {ne0, ne1, ne2, 1};
    return b.alloc(type, ne);
}

}  // namespace

ForwardScratch alloc_scratch(const LlamaModel& m, int n_batch, int n_out_max) {
    const ModelInfo& h = m.info();
    Backend& b = m.backend();
    ForwardScratch s;
    s.n_batch = n_batch;
    s.n_out_max = n_out_max;
    const int64_t n_kv = int64_t(h.n_head_kv) * h.head_dim;
    s.ids = make(b, DType::I32, n_batch);
    s.pos = make(b, DType::I32, n_batch);
    s.cells = make(b, DType::I32, n_batch);
    s.span = make(b, DType::I32, 2, n_batch);
    s.out_rows = make(b, DType::I32, n_out_max);
    s.x = make(b, DType::F32, h.n_embd, n_batch);
    s.xb = make(b, DType::F32, h.n_embd, n_batch);
    s.q = make(b, DType::F32, h.head_dim, h.n_head, n_batch);
    s.k = make(b, DType::F32, n_kv, n_batch);
    s.v = make(b, DType::F32, n_kv, n_batch);
    s.att = make(b, DType::F32, h.head_dim, h.n_head, n_batch);
    s.gate = make(b, DType::F32, h.n_ff, n_batch);
    s.up = make(b, DType::F32, h.n_ff, n_batch);
    s.hidden = make(b, DType::F32, h.n_ff, n_batch);
    s.x_out = make(b, DType::F32, h.n_embd, n_out_max);
    s.logits = make(b, DType::F32, h.n_vocab, n_out_max);
    return s;
}

KvCache alloc_kv_cache(const LlamaModel& m, int n_ctx, int n_seq, KvType type) {
    const ModelInfo& h = m.info();
    KvCache kv;
    kv.n_ctx = n_ctx;
    kv.n_seq = n_seq;
    const DType t = type == KvType::F16 ? DType::F16 : DType::F32;
    const int64_t n_kv = int64_t(h.n_head_kv) * h.head_dim;
    const int64_t n_cells = int64_t(n_ctx) * n_seq;
    for (int il = 0; il < h.n_layer; ++il) {
        kv.k.push_back(make(m.backend(), t, n_kv, n_cells));
        kv.v.push_back(make(m.backend(), t, n_kv, n_cells));
    }
    return kv;
}

void forward(const LlamaModel& m, const KvCache& kv, const ForwardScratch& s, const ForwardBatch& batch,
             float* logits_out, float* hidden_out) {
    const ModelInfo& h = m.info();
    const LlamaWeights& w = m.weights();
    Backend& be = m.backend();
    const int64_t n = static_cast<int64_t>(batch.tokens.size());  // tokens in this pass

    // Per-token inputs: ids, positions, cache cells and attention spans.
    be.write(s.ids, batch.tokens.data(), n * sizeof(int32_t));
    be.write(s.pos, batch.pos.data(), n * sizeof(int32_t));
    be.write(s.cells, batch.cells.data(), n * sizeof(int32_t));
    be.write(s.span, batch.span.data(), 2 * n * sizeof(int32_t));
    const Tensor ids = cols(s.ids, 0, n), pos = cols(s.pos, 0, n), cells = cols(s.cells, 0, n), span = cols(s.span, 1, n);

    const Tensor x = cols(s.x, 1, n);          // [n_embd, n] residual stream
    const Tensor xb = cols(s.xb, 1, n);        // [n_embd, n]
    const Tensor q = cols(s.q, 2, n);          // [head_dim, n_head, n]
    const Tensor k = cols(s.k, 1, n);          // [head_dim * n_head_kv, n]
    const Tensor v = cols(s.v, 1, n);          // [head_dim * n_head_kv, n]
    const Tensor att = cols(s.att, 2, n);      // [head_dim, n_head, n]
    const Tensor gate = cols(s.gate, 1, n);    // [n_ff, n]
    const Tensor up = cols(s.up, 1, n);        // [n_ff, n]
    const Tensor hidden = cols(s.hidden, 1, n);// [n_ff, n]
    // q/k as matmul outputs are [n_head * head_dim, n]; RoPE sees them as [head_dim, heads, n].
    Tensor q_flat = q, k_heads = k;
    q_flat.ne[0] = int64_t(h.head_dim) * h.n_head, q_flat.ne[1] = n, q_flat.ne[2] = 1;
    k_heads.ne[0] = h.head_dim, k_heads.ne[1] = h.n_head_kv, k_heads.ne[2] = n;
    Tensor att_flat = att;
    att_flat.ne[0] = q_flat.ne[0], att_flat.ne[1] = n, att_flat.ne[2] = 1;

    const RopeParams rope{h.n_rot, h.rope_freq_base, h.rope_freq_scale};
    const Tensor* freq_factors = w.has_rope_freqs ? &w.rope_freqs : nullptr;
    const AttentionParams attn{h.n_head, h.n_head_kv, h.head_dim, 1.f / std::sqrt(static_cast<float>(h.head_dim))};

    // x = token_embd[:, ids]
    be.get_rows(w.token_embd, ids, x);

    for (int il = 0; il < h.n_layer; ++il) {
        const LayerWeights& L = w.layers[static_cast<size_t>(il)];

        // Attention block.  xb = x / rms(x) * attn_norm
        be.rms_norm(x, L.attn_norm, xb, h.rms_eps);
        // q = Wq xb, k = Wk xb, v = Wv xb
        be.matmul(L.wq, xb, q_flat);
        be.matmul(L.wk, xb, k);
        be.matmul(L.wv, xb, v);
        // Rotate adjacent pairs of q and k by pos * theta_i, theta_i = base^(-2i/n_rot) / factor_i
        be.rope(q, pos, rope, freq_factors);
        be.rope(k_heads, pos, rope, freq_factors);
        // Append k, v to the cache at each token's cell.
        be.kv_store(k, v, kv.k[static_cast<size_t>(il)], kv.v[static_cast<size_t>(il)], cells);
        // att = softmax(q K^T / sqrt(head_dim)) V over each token's span of cells (causal, GQA)
        be.attention(q, kv.k[static_cast<size_t>(il)], kv.v[static_cast<size_t>(il)], span, att, attn);
        // x += Wo att
        be.matmul(L.wo, att_flat, xb);
        be.add(x, xb);

        // Feed-forward block.  xb = x / rms(x) * ffn_norm
        be.rms_norm(x, L.ffn_norm, xb, h.rms_eps);
        // x += W_down (silu(W_gate xb) * (W_up xb))
        be.matmul(L.ffn_gate, xb, gate);
        be.matmul(L.ffn_up, xb, up);
        be.swiglu(gate, up, hidden);
        be.matmul(L.ffn_down, hidden, xb);
        be.add(x, xb);
    }

    // Final norm, then logits only for the rows asked for, n_out_max rows per output matmul.
    be.rms_norm(x, w.output_norm, xb, h.rms_eps);
    if (hidden_out) {  // embeddings: every token's normed final hidden state
        be.submit();
        be.read(xb, hidden_out, static_cast<size_t>(n) * static_cast<size_t>(h.n_embd) * sizeof(float));
    }
    const size_t n_out = batch.out_rows.size();
    const size_t row_bytes = static_cast<size_t>(h.n_vocab) * sizeof(float);
    for (size_t first = 0; first < n_out; first += static_cast<size_t>(s.n_out_max)) {
        const int64_t r = static_cast<int64_t>(std::min(n_out - first, static_cast<size_t>(s.n_out_max)));
        be.write(s.out_rows, batch.out_rows.data() + first, static_cast<size_t>(r) * sizeof(int32_t));
        const Tensor x_out = cols(s.x_out, 1, r), logits = cols(s.logits, 1, r);
        // x_out = xb[:, out_rows];  logits = W_out x_out
        be.gather_rows(xb, cols(s.out_rows, 0, r), x_out);
        be.matmul(w.output, x_out, logits);
        be.submit();
        be.read(logits, logits_out + first * static_cast<size_t>(h.n_vocab), static_cast<size_t>(r) * row_bytes);
    }
    be.sync();
}

}  // namespace minerva
