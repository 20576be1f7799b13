// engine/model/llama.h: the loaded model (weights as backend tensors) and the forward pass, for
// every family of families.h (LLaMA and the families that extend it: Qwen, Gemma, Phi, MoE).
// Internal to libminerva: the public face is minerva/model.h.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <optional>

#include "kernels/backend.h"
#include "minerva/gguf.h"
#include "minerva/model.h"
#include "model/families.h"

namespace minerva {

// One transformer block's weights. Shapes as [ne0, ne1]: ne0 is the input (contiguous) dim.
// q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim. Optional tensors are the optional
// steps of forward(); fused file tensors (Phi-3's attn_qkv, ffn_up) are loaded as row views.
struct LayerWeights {
    Tensor attn_norm;                    // [n_embd] F32
    Tensor wq;                           // [n_embd, q_dim]
    Tensor wk;                           // [n_embd, kv_dim]
    Tensor wv;                           // [n_embd, kv_dim]
    std::optional<Tensor> bq, bk, bv;    // [q_dim], [kv_dim], [kv_dim] F32 (Qwen2)
    std::optional<Tensor> q_norm;        // [head_dim] F32: per-head RMSNorm of q before RoPE (Qwen3, Gemma 3)
    std::optional<Tensor> k_norm;        // [head_dim] F32
    Tensor wo;                           // [q_dim, n_embd]
    std::optional<Tensor> bo;            // [n_embd] F32
    std::optional<Tensor> post_attn_norm;// [n_embd] F32: RMSNorm of the attention output (Gemma)
    Tensor ffn_norm;                     // [n_embd] F32
    // Dense FFN
    Tensor ffn_gate;                     // [n_embd, n_ff]
    Tensor ffn_up;                       // [n_embd, n_ff]
    Tensor ffn_down;                     // [n_ff, n_embd]
    // Mixture of experts (instead of the dense FFN)
    std::optional<Tensor> ffn_router;    // [n_embd, n_expert] (ffn_gate_inp)
    Tensor gate_exps;                    // [n_embd, n_ff_exp, n_expert]
    Tensor up_exps;                      // [n_embd, n_ff_exp, n_expert]
    Tensor down_exps;                    // [n_ff_exp, n_embd, n_expert]
    std::optional<Tensor> post_ffn_norm; // [n_embd] F32: RMSNorm of the FFN output (Gemma)
    bool swa = false;                    // sliding-window (local) layer
};

struct LlamaWeights {
    Tensor token_embd;   // [n_embd, n_vocab]
    Tensor output_norm;  // [n_embd] F32
    Tensor output;       // [n_embd, n_vocab] (token_embd itself when tied)
    Tensor rope_freqs;   // [n_rot / 2] F32, divisors of the rotation frequencies (Llama 3.1)
    bool has_rope_freqs = false;
    std::optional<Tensor> rope_long, rope_short;  // [n_rot / 2] F32 LongRoPE divisors (Phi-3)
    std::vector<LayerWeights> layers;  // [n_layer]
};

// Hyperparameters forward() needs beyond the public ModelInfo.
struct ForwardParams {
    RopeStyle rope_style = RopeStyle::Norm;
    FfnAct act = FfnAct::Silu;
    bool embd_scale = false;
    float query_scale = 0.f;          // attention scale of q.k
    float swa_rope_base = 0.f;        // RoPE base of local layers
    float swa_rope_scale = 1.f;       // RoPE position scale of local layers
    float rope_attn_factor = 1.f;     // LongRoPE: cos/sin multiplier
    int n_ctx_orig = 0;               // LongRoPE: the long factors apply beyond this context
};

class LlamaModel final : public Model {
public:
    LlamaModel(gguf::File file, const ModelOptions& opts);
    ~LlamaModel() override;

    const ModelInfo& info() const override { return info_; }
    const std::shared_ptr<const Vocab>& vocab() const override { return vocab_; }
    std::string chat_template() const override { return chat_template_; }
    std::string backend_name() const override { return backend_->name(); }

    Backend& backend() const { return *backend_; }
    const LlamaWeights& weights() const { return w_; }
    const Family& family() const { return *family_; }
    const ForwardParams& params() const { return fp_; }
    // Held around every forward() of any Session of this model: the backend's thread pool,
    // command buffers and staging memory are the model's, so two passes must not interleave.
    std::mutex& forward_mutex() const { return forward_mu_; }

private:
    void read_hparams();
    void load_weights(const ModelOptions& opts);

    gguf::File file_;                   // the mapping the CPU backend's weights point into
    std::unique_ptr<Backend> backend_;  // declared after file_: destroyed before the mapping
    ModelInfo info_;
    std::shared_ptr<const Vocab> vocab_;
    std::string chat_template_;
    const Family* family_ = nullptr;
    ForwardParams fp_;
    std::vector<bool> swa_layers_;      // [n_layer] which layers are local (read_hparams)
    LlamaWeights w_;
    mutable std::mutex forward_mu_;
};

// Scratch activations for up to n_batch tokens, allocated once per Session. The forward pass
// works on views of the first n columns (tensors are dense, so a prefix of columns is a tensor).
struct ForwardScratch {
    int n_batch = 0;      // most tokens per forward()
    int n_out_max = 0;    // most logit rows computed per output matmul
    Tensor ids;           // [n_batch] I32 token ids
    Tensor pos;           // [n_batch] I32 position of each token in its sequence
    Tensor cells;         // [n_batch] I32 KV-cache cell of each token (seq * n_ctx + pos)
    Tensor span;          // [2, n_batch] I32 (first cell, cell count) each token attends to
    Tensor span_swa;      // [2, n_batch] I32 the same, cut to the sliding window (local layers)
    Tensor out_rows;      // [n_out_max] I32 batch rows whose logits are wanted
    Tensor x;             // [n_embd, n_batch] the residual stream
    Tensor xb;            // [n_embd, n_batch] normalised input / block output
    Tensor q;             // [head_dim, n_head, n_batch]
    Tensor k;             // [head_dim * n_head_kv, n_batch]
    Tensor v;             // [head_dim * n_head_kv, n_batch]
    Tensor att;           // [head_dim, n_head, n_batch] attention output
    Tensor gate;          // [n_ff, n_batch]
    Tensor up;            // [n_ff, n_batch]
    Tensor hidden;        // [n_ff, n_batch] silu(gate) * up
    // Mixture of experts (allocated only for MoE models); k = n_expert_used.
    Tensor router;        // [n_expert, n_batch] router logits
    Tensor expert_ids;    // [k, n_batch] I32 chosen experts
    Tensor expert_w;      // [k, n_batch] their mixing weights
    Tensor moe_gate;      // [n_ff_exp, k, n_batch]
    Tensor moe_up;        // [n_ff_exp, k, n_batch]
    Tensor moe_hidden;    // [n_ff_exp, k, n_batch]
    Tensor moe_out;       // [n_embd, k, n_batch] each chosen expert's output
    Tensor x_out;         // [n_embd, n_out_max] final-normed rows whose logits are wanted
    Tensor logits;        // [n_vocab, n_out_max]
};

struct KvCache {
    int n_ctx = 0;               // cells per sequence
    int n_seq = 0;
    std::vector<Tensor> k;       // [n_layer] of [head_dim * n_head_kv, n_seq * n_ctx] F16/F32/Q8_0/Q4_0
    std::vector<Tensor> v;       // [n_layer] of [head_dim * n_head_kv, n_seq * n_ctx]
};

// One forward pass: tokens[i] sits at position pos[i] of its sequence, is stored in cache cell
// cells[i] and attends to cells span_first[i] .. span_first[i] + span_len[i] - 1.
struct ForwardBatch {
    std::vector<int32_t> tokens;     // [n]
    std::vector<int32_t> pos;        // [n]
    std::vector<int32_t> cells;      // [n]
    std::vector<int32_t> span;       // [2 * n] (first, count) pairs
    std::vector<int32_t> out_rows;   // rows of the batch whose logits are wanted, ascending
    std::vector<int32_t> span_swa;   // [2 * n] filled by forward() for sliding-window layers
};

ForwardScratch alloc_scratch(const LlamaModel& m, int n_batch, int n_out_max);
KvCache alloc_kv_cache(const LlamaModel& m, int n_ctx, int n_seq, KvType type_k, KvType type_v);

// Context shift of one sequence whose cells start at `first`: drops its cells n_keep ..
// n_keep + n_discard - 1 and moves the n_past - n_keep - n_discard after them down, re-rotating
// their keys by -n_discard positions with each layer's RoPE (local or global).
void shift_kv_cache(const LlamaModel& m, const KvCache& kv, int64_t first, int n_keep, int n_discard, int n_past);

// Runs the model over the batch and writes the logits of its out_rows, in order, to
// logits_out ([out_rows.size() * n_vocab]). With hidden_out, the final hidden state of every
// token (after the output norm, before the output projection) goes there ([n * n_embd]).
void forward(const LlamaModel& m, const KvCache& kv, const ForwardScratch& s, ForwardBatch& b,
             float* logits_out, float* hidden_out = nullptr);

}  // namespace minerva
