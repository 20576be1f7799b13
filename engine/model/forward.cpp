// engine/model/forward.cpp: the forward pass of every family, one function read top to bottom,
// every op through the Backend interface. The families differ by data (families.h): optional
// steps run when the model has their weights or hyperparameters. Prefill (many tokens) and decode (one token) are the same code; a batch
// may mix tokens of several sequences (continuous batching): each token carries its position,
// its KV-cache cell and the span of cells it attends to.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "llama.h"
#include "minerva/error.h"

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
    if (h.n_swa > 0) s.span_swa = make(b, DType::I32, 2, n_batch);
    s.out_rows = make(b, DType::I32, n_out_max);
    s.x = make(b, DType::F32, h.n_embd, n_batch);
    s.xb = make(b, DType::F32, h.n_embd, n_batch);
    s.q = make(b, DType::F32, h.head_dim, h.n_head, n_batch);
    s.k = make(b, DType::F32, n_kv, n_batch);
    s.v = make(b, DType::F32, n_kv, n_batch);
    s.att = make(b, DType::F32, h.head_dim, h.n_head, n_batch);
    if (h.n_expert > 0) {
        const int k = h.n_expert_used;
        s.router = make(b, DType::F32, h.n_expert, n_batch);
        s.expert_ids = make(b, DType::I32, k, n_batch);
        s.expert_w = make(b, DType::F32, k, n_batch);
        s.moe_gate = make(b, DType::F32, h.n_ff_exp, k, n_batch);
        s.moe_up = make(b, DType::F32, h.n_ff_exp, k, n_batch);
        s.moe_hidden = make(b, DType::F32, h.n_ff_exp, k, n_batch);
        s.moe_out = make(b, DType::F32, h.n_embd, k, n_batch);
    } else {
        s.gate = make(b, DType::F32, h.n_ff, n_batch);
        s.up = make(b, DType::F32, h.n_ff, n_batch);
        s.hidden = make(b, DType::F32, h.n_ff, n_batch);
    }
    s.x_out = make(b, DType::F32, h.n_embd, n_out_max);
    s.logits = make(b, DType::F32, h.n_vocab, n_out_max);
    return s;
}

KvCache alloc_kv_cache(const LlamaModel& m, int n_ctx, int n_seq, KvType type_k, KvType type_v) {
    const ModelInfo& h = m.info();
    KvCache kv;
    kv.n_ctx = n_ctx;
    kv.n_seq = n_seq;
    const int64_t n_kv = int64_t(h.n_head_kv) * h.head_dim;
    auto dtype = [&](KvType t, const char* which) {
        const DType d = t == KvType::F16 ? DType::F16 : t == KvType::F32 ? DType::F32 : t == KvType::Q8_0 ? DType::Q8_0 : DType::Q4_0;
        if (!m.backend().supports_kv_type(d))
            throw Error(std::string("KV cache type ") + kv_type_name(t) + " (" + which + ") is not supported on " + m.backend().name());
        // Blocks must not straddle heads: one scale per 32 values of one head (as llama.cpp requires).
        if (h.head_dim % dtype_info(d).block_elems != 0)
            throw Error(std::string("KV cache type ") + kv_type_name(t) + " needs a head size that is a multiple of " +
                        std::to_string(dtype_info(d).block_elems) + "; this model's is " + std::to_string(h.head_dim) +
                        " (use f16 or f32)");
        return d;
    };
    const DType tk = dtype(type_k, "K"), tv = dtype(type_v, "V");
    const int64_t n_cells = int64_t(n_ctx) * n_seq;
    for (int il = 0; il < h.n_layer; ++il) {
        kv.k.push_back(make(m.backend(), tk, n_kv, n_cells));
        kv.v.push_back(make(m.backend(), tv, n_kv, n_cells));
    }
    return kv;
}

void shift_kv_cache(const LlamaModel& m, const KvCache& kv, int64_t first, int n_keep, int n_discard, int n_past) {
    const ModelInfo& h = m.info();
    const ForwardParams& fp = m.params();
    const LlamaWeights& w = m.weights();
    const bool neox = fp.rope_style == RopeStyle::Neox;
    const RopeParams rope_global{h.n_rot, h.rope_freq_base, h.rope_freq_scale, neox, 1.f};
    const RopeParams rope_local{h.n_rot, fp.swa_rope_base, fp.swa_rope_scale, neox, 1.f};
    const Tensor* freq_factors = w.has_rope_freqs ? &w.rope_freqs : nullptr;
    if (w.rope_long) freq_factors = kv.n_ctx > fp.n_ctx_orig ? &*w.rope_long : &*w.rope_short;
    for (int il = 0; il < h.n_layer; ++il) {
        const size_t l = static_cast<size_t>(il);
        m.backend().kv_shift(kv.k[l], kv.v[l], first + n_keep, first + n_keep + n_discard, n_past - n_keep - n_discard,
                             -n_discard, h.head_dim, w.layers[l].swa ? rope_local : rope_global, freq_factors);
    }
    m.backend().sync();
}

void forward(const LlamaModel& m, const KvCache& kv, const ForwardScratch& s, ForwardBatch& batch,
             float* logits_out, float* hidden_out) {
    const ModelInfo& h = m.info();
    const ForwardParams& fp = m.params();
    const LlamaWeights& w = m.weights();
    Backend& be = m.backend();
    const int64_t n = static_cast<int64_t>(batch.tokens.size());  // tokens in this pass

    // Per-token inputs: ids, positions, cache cells and attention spans. A local layer sees only
    // the last n_swa cells of a token's span (its own position included).
    be.write(s.ids, batch.tokens.data(), n * sizeof(int32_t));
    be.write(s.pos, batch.pos.data(), n * sizeof(int32_t));
    be.write(s.cells, batch.cells.data(), n * sizeof(int32_t));
    be.write(s.span, batch.span.data(), 2 * n * sizeof(int32_t));
    if (h.n_swa > 0) {
        batch.span_swa.resize(static_cast<size_t>(2 * n));
        for (size_t t = 0; t < static_cast<size_t>(n); ++t) {
            const int32_t first = batch.span[2 * t], len = batch.span[2 * t + 1];
            const int32_t drop = std::max(0, len - h.n_swa);
            batch.span_swa[2 * t] = first + drop;
            batch.span_swa[2 * t + 1] = len - drop;
        }
        be.write(s.span_swa, batch.span_swa.data(), 2 * n * sizeof(int32_t));
    }
    const Tensor ids = cols(s.ids, 0, n), pos = cols(s.pos, 0, n), cells = cols(s.cells, 0, n), span = cols(s.span, 1, n);
    const Tensor span_swa = h.n_swa > 0 ? cols(s.span_swa, 1, n) : span;

    const Tensor x = cols(s.x, 1, n);          // [n_embd, n] residual stream
    const Tensor xb = cols(s.xb, 1, n);        // [n_embd, n]
    const Tensor q = cols(s.q, 2, n);          // [head_dim, n_head, n]
    const Tensor k = cols(s.k, 1, n);          // [head_dim * n_head_kv, n]
    const Tensor v = cols(s.v, 1, n);          // [head_dim * n_head_kv, n]
    const Tensor att = cols(s.att, 2, n);      // [head_dim, n_head, n]
    // q/k as matmul outputs are [n_head * head_dim, n]; RoPE and the q/k norms see them as
    // [head_dim, heads, n].
    Tensor q_flat = q, k_heads = k;
    q_flat.ne[0] = int64_t(h.head_dim) * h.n_head, q_flat.ne[1] = n, q_flat.ne[2] = 1;
    k_heads.ne[0] = h.head_dim, k_heads.ne[1] = h.n_head_kv, k_heads.ne[2] = n;
    Tensor att_flat = att;
    att_flat.ne[0] = q_flat.ne[0], att_flat.ne[1] = n, att_flat.ne[2] = 1;

    // RoPE: global layers use the file's base and scaling, local (sliding-window) layers their own
    // base and possibly no scaling. LongRoPE picks its factors by the context the session has.
    const bool neox = fp.rope_style == RopeStyle::Neox;
    const RopeParams rope_global{h.n_rot, h.rope_freq_base, h.rope_freq_scale, neox, fp.rope_attn_factor};
    const RopeParams rope_local{h.n_rot, fp.swa_rope_base, fp.swa_rope_scale, neox, fp.rope_attn_factor};
    const Tensor* freq_factors = w.has_rope_freqs ? &w.rope_freqs : nullptr;
    if (w.rope_long) freq_factors = kv.n_ctx > fp.n_ctx_orig ? &*w.rope_long : &*w.rope_short;
    const AttentionParams attn{h.n_head, h.n_head_kv, h.head_dim, fp.query_scale, h.attn_softcap};

    // x = token_embd[:, ids]  (Gemma: * sqrt(n_embd))
    be.get_rows(w.token_embd, ids, x);
    if (fp.embd_scale) be.scale(x, std::sqrt(static_cast<float>(h.n_embd)));

    for (int il = 0; il < h.n_layer; ++il) {
        const LayerWeights& L = w.layers[static_cast<size_t>(il)];
        const size_t l = static_cast<size_t>(il);

        // Attention block.  xb = x / rms(x) * attn_norm
        be.rms_norm(x, L.attn_norm, xb, h.rms_eps);
        // q = Wq xb (+ bq), k = Wk xb (+ bk), v = Wv xb (+ bv)
        be.matmul(L.wq, xb, q_flat);
        be.matmul(L.wk, xb, k);
        be.matmul(L.wv, xb, v);
        if (L.bq) be.add_bias(q_flat, *L.bq);
        if (L.bk) be.add_bias(k, *L.bk);
        if (L.bv) be.add_bias(v, *L.bv);
        // Per-head RMSNorm of q and k (Qwen3, Gemma 3): each head's head_dim vector, in place.
        if (L.q_norm) be.rms_norm(q, *L.q_norm, q, h.rms_eps);
        if (L.k_norm) be.rms_norm(k_heads, *L.k_norm, k_heads, h.rms_eps);
        // Rotate the pairs of q and k by pos * theta_i, theta_i = base^(-2i/n_rot) / factor_i
        const RopeParams& rope = L.swa ? rope_local : rope_global;
        be.rope(q, pos, rope, freq_factors);
        be.rope(k_heads, pos, rope, freq_factors);
        // Append k, v to the cache at each token's cell.
        be.kv_store(k, v, kv.k[l], kv.v[l], cells);
        // att = softmax(softcap(q K^T * scale)) V over each token's span of cells (causal, GQA;
        // the last n_swa cells on local layers)
        be.attention(q, kv.k[l], kv.v[l], L.swa ? span_swa : span, att, attn);
        // x += post_norm(Wo att (+ bo))
        be.matmul(L.wo, att_flat, xb);
        if (L.bo) be.add_bias(xb, *L.bo);
        if (L.post_attn_norm) be.rms_norm(xb, *L.post_attn_norm, xb, h.rms_eps);
        be.add(x, xb);

        // Feed-forward block.  xb = x / rms(x) * ffn_norm
        be.rms_norm(x, L.ffn_norm, xb, h.rms_eps);
        if (L.ffn_router) {
            // Mixture of experts: p = softmax(W_router xb); the k best experts, weights renormalised;
            // xb = sum_j w_j W_down_j (silu(W_gate_j xb) * (W_up_j xb))
            const Tensor router = cols(s.router, 1, n), eids = cols(s.expert_ids, 1, n), ew = cols(s.expert_w, 1, n);
            const Tensor g = cols(s.moe_gate, 2, n), u = cols(s.moe_up, 2, n), hid = cols(s.moe_hidden, 2, n);
            const Tensor y = cols(s.moe_out, 2, n);
            be.matmul(*L.ffn_router, xb, router);
            be.moe_route(router, eids, ew);
            be.matmul_id(L.gate_exps, xb, eids, g);
            be.matmul_id(L.up_exps, xb, eids, u);
            be.swiglu(g, u, hid);
            be.matmul_id(L.down_exps, hid, eids, y);
            be.moe_sum(y, ew, xb);
        } else {
            // xb = W_down (act(W_gate xb) * (W_up xb)), act = silu, or gelu (Gemma)
            const Tensor gate = cols(s.gate, 1, n), up = cols(s.up, 1, n), hidden = cols(s.hidden, 1, n);
            be.matmul(L.ffn_gate, xb, gate);
            be.matmul(L.ffn_up, xb, up);
            if (fp.act == FfnAct::GeluTanh)
                be.geglu(gate, up, hidden);
            else
                be.swiglu(gate, up, hidden);
            be.matmul(L.ffn_down, hidden, xb);
        }
        // x += post_norm(xb)
        if (L.post_ffn_norm) be.rms_norm(xb, *L.post_ffn_norm, xb, h.rms_eps);
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
        // x_out = xb[:, out_rows];  logits = W_out x_out  (Gemma 2: softcapped)
        be.gather_rows(xb, cols(s.out_rows, 0, r), x_out);
        be.matmul(w.output, x_out, logits);
        if (h.final_softcap > 0) be.softcap(logits, h.final_softcap);
        be.submit();
        be.read(logits, logits_out + first * static_cast<size_t>(h.n_vocab), static_cast<size_t>(r) * row_bytes);
    }
    be.sync();
}

}  // namespace minerva
