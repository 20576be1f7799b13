// engine/model/families.h (internal): what differs between the model families Minerva runs, as
// data. One row per GGUF architecture (general.architecture) says which tensors a block has and
// which optional steps forward() takes; model.cpp reads the row at load and forward() tests the
// loaded weights and hyperparameters (`if (L.q_norm) ...`), never the architecture name.
// Adding a family is a row here plus, at most, a new Backend op. See docs/architecture.md.
#pragma once
#include <span>
#include <string>

namespace minerva {

enum class RopeStyle {
    Norm,  // rotates (x[2i], x[2i+1]): LLaMA (the converter permutes the Q/K rows for it)
    Neox,  // rotates (x[i], x[i + n_rot/2]): Qwen, Gemma, Phi
};

enum class FfnAct {
    Silu,      // W_down(silu(W_gate h) * W_up h)
    GeluTanh,  // W_down(gelu(W_gate h) * W_up h), gelu in its tanh form (Gemma)
};

// Whether a block's tensor must be there, may be there, or must not be there.
enum class Need { Never, Optional, Required };

struct Family {
    const char* arch;            // general.architecture, also the metadata key prefix
    RopeStyle rope = RopeStyle::Norm;
    FfnAct act = FfnAct::Silu;
    Need qkv_bias = Need::Optional;   // attn_{q,k,v}.bias (Qwen2 requires them)
    Need out_bias = Need::Optional;   // attn_output.bias
    Need qk_norm = Need::Never;       // attn_q_norm, attn_k_norm [head_dim]: per-head RMSNorm before RoPE
    bool post_norms = false;          // post_attention_norm, post_ffw_norm: RMSNorm of each sub-layer's output
    bool embd_scale = false;          // x = token_embd[t] * sqrt(n_embd)
    bool fused_qkv = false;           // attn_qkv [n_embd, q_dim + 2 kv_dim] accepted instead of attn_q/k/v
    bool fused_gate_up = false;       // ffn_up [n_embd, 2 n_ff] holds gate then up; no ffn_gate
    Need moe = Need::Never;           // experts in every block (Optional: when {arch}.expert_count > 0)
    bool tied_only = false;           // output.weight must be absent (Gemma 2 always ties)
    // Softcaps: defaults when the key is absent; 0 = off unless the key is present.
    float attn_softcap = 0.f;         // {arch}.attn_logit_softcapping
    float final_softcap = 0.f;        // {arch}.final_logit_softcapping
    // Sliding-window attention: default window when attention.sliding_window is absent (0: the
    // family has no window unless the key is present and > 0) and the default layer pattern n
    // (layer il is local when il mod n < n - 1). 0 = no local layers.
    int swa_window = 0;
    int swa_pattern = 0;
    bool swa_needs_key = false;       // local layers only when attention.sliding_window > 0 is present
    // RoPE of local layers: base rope.freq_base_swa, else this default (0: the global base);
    // with swa_rope_unscaled the file's rope scaling applies to the global layers only.
    float swa_rope_base = 0.f;
    bool swa_rope_unscaled = false;
    // The largest Gemma models scale queries by 1/sqrt(n_embd / n_head) instead of
    // 1/sqrt(head_dim); they are recognised by their layer count (0: never).
    int query_scale_embd_layers = 0;
    bool longrope = false;            // rope_factors_long/short and rope.scaling.attn_factor (Phi-3)
};

// The row for an architecture, or nullptr when Minerva does not run it.
const Family* find_family(const std::string& arch);
// All rows, for messages ("Minerva runs: llama, qwen2, ...") and docs.
std::span<const Family> families();
std::string family_names();

}  // namespace minerva
