// engine/model/llama.h: the loaded LLaMA model (weights as backend tensors) and the forward pass.
// Internal to libminerva: the public face is minerva/model.h.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "minerva/gguf.h"
#include "minerva/model.h"

namespace minerva {

// One transformer block's weights. Shapes as [ne0, ne1]: ne0 is the input (contiguous) dim.
struct LayerWeights {
    Tensor attn_norm;    // [n_embd] F32
    Tensor wq;           // [n_embd, n_head * head_dim]
    Tensor wk;           // [n_embd, n_head_kv * head_dim]
    Tensor wv;           // [n_embd, n_head_kv * head_dim]
    Tensor wo;           // [n_head * head_dim, n_embd]
    Tensor ffn_norm;     // [n_embd] F32
    Tensor ffn_gate;     // [n_embd, n_ff]
    Tensor ffn_up;       // [n_embd, n_ff]
    Tensor ffn_down;     // [n_ff, n_embd]
};

struct LlamaWeights {
    Tensor token_embd;   // [n_embd, n_vocab]
    Tensor output_norm;  // [n_embd] F32
    Tensor output;       // [n_embd, n_vocab] (token_embd itself when tied)
    Tensor rope_freqs;   // [n_rot / 2] F32, divisors of the rotation frequencies (Llama 3.1)
    bool has_rope_freqs = false;
    std::vector<LayerWeights> layers;  // [n_layer]
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

private:
    void read_hparams();
    void load_weights(const ModelOptions& opts);

    gguf::File file_;                   // the mapping the CPU backend's weights point into
    std::unique_ptr<Backend> backend_;  // declared after file_: destroyed before the mapping
    ModelInfo info_;
    std::shared_ptr<const Vocab> vocab_;
    std::string chat_template_;
    LlamaWeights w_;
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
    Tensor x_out;         // [n_embd, n_out_max] final-normed rows whose logits are wanted
    Tensor logits;        // [n_vocab, n_out_max]
};

struct KvCache {
    int n_ctx = 0;               // cells per sequence
    int n_seq = 0;
    std::vector<Tensor> k;       // [n_layer] of [head_dim * n_head_kv, n_seq * n_ctx] F16/F32
    std::vector<Tensor> v;       // [n_layer] of [head_dim * n_head_kv, n_seq * n_ctx] F16/F32
};

// One forward pass: tokens[i] sits at position pos[i] of its sequence, is stored in cache cell
// cells[i] and attends to cells span_first[i] .. span_first[i] + span_len[i] - 1.
struct ForwardBatch {
    std::vector<int32_t> tokens;     // [n]
    std::vector<int32_t> pos;        // [n]
    std::vector<int32_t> cells;      // [n]
    std::vector<int32_t> span;       // [2 * n] (first, count) pairs
    std::vector<int32_t> out_rows;   // rows of the batch whose logits are wanted, ascending
};

ForwardScratch alloc_scratch(const LlamaModel& m, int n_batch, int n_out_max);
KvCache alloc_kv_cache(const LlamaModel& m, int n_ctx, int n_seq, KvType type);

// Runs the model over the batch and writes the logits of its out_rows, in order, to
// logits_out ([out_rows.size() * n_vocab]). With hidden_out, the final hidden state of every
// token (after the output norm, before the output projection) goes there ([n * n_embd]).
void forward(const LlamaModel& m, const KvCache& kv, const ForwardScratch& s, const ForwardBatch& b,
             float* logits_out, float* hidden_out = nullptr);

}  // namespace minerva
