// minerva/quantize.h: make model files: quantize an existing GGUF, or synthesize one of any
// supported architecture with seeded random weights (for tests and benchmarks of the engine on
// realistic shapes).
//
// Both write GGUF version 3 through a temporary "<out>.tmp" that is renamed when complete, and
// both stream tensor by tensor, so memory stays at a few chunks of rows whatever the model size.
// Both throw minerva::Error with a message naming the file, tensor or option that was wrong.
// The functions are safe to call from several threads on different files.
#pragma once
#include "minerva/export.h"
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/types.h"

namespace minerva {

// ---- target types ------------------------------------------------------------------------

// A quantization target: one weight type for all 2-D tensors ("Q4_0", "Q8_0", "Q6_K", "F16",
// ...: any DType name of a compute type), or a llama.cpp-style mix:
//   Q4_K_M / Q5_K_M: matrices Q4_K / Q5_K; attn_v.weight and ffn_down.weight (ffn_down_exps.weight
//   likewise) Q6_K in the layers i with i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2 (n = block
//   count); a fused attn_qkv.weight Q5_K / Q6_K; output.weight Q6_K (or token_embd.weight when
//   the output is tied to it).
// In every target, 1-D tensors (norms, biases, rope factors) and the MoE router
// (ffn_gate_inp.weight) are kept F32, and a matrix whose rows are
// not a multiple of the type's block size falls back to a fitting type (Q2_K/Q3_K -> Q4_0,
// Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, 32-element types -> F16) with a log line.
struct MINERVA_API QuantTarget {
    std::string name;   // as given, upper-cased ("Q4_K_M")
    DType base;         // the type of ordinary matrices
    bool mix = false;   // Q4_K_M / Q5_K_M promotions on
};
// nullopt for names that are neither a producible type nor a known mix.
MINERVA_API std::optional<QuantTarget> parse_quant_target(std::string_view name);
// The names accepted, for help texts.
MINERVA_API std::vector<std::string> quant_target_names();

// The type a tensor gets under a target (before the block-size fallback, which needs ne[0]).
// layer: the N of "blk.N." (-1 for none); n_layer: the block count; has_output: whether the
// model has its own output.weight (when not, token_embd.weight is the output).
MINERVA_API DType tensor_type_for(const QuantTarget& target, std::string_view tensor_name, int n_dims, int layer,
                      int n_layer, bool has_output);

// llama.cpp's general.file_type number for a target (e.g. 2 for Q4_0, 15 for Q4_K_M).
MINERVA_API uint32_t file_type_for(const QuantTarget& target);

// ---- quantize ----------------------------------------------------------------------------

// Reads in_path (tensors in F32, F16 or BF16; already-quantized tensors are dequantized and
// re-quantized with a log line) and writes out_path with every tensor converted as above.
// Metadata is copied; general.file_type and general.quantization_version are set.
// n_threads <= 0: all hardware threads. progress (optional) sees the fraction of tensor bytes
// written after each tensor; returning false cancels (Error, the temporary file is removed).
MINERVA_API void quantize_file(const std::string& in_path, const std::string& out_path, std::string_view type_name,
                               int n_threads = 0, const ProgressCallback& progress = {});

// ---- synth -------------------------------------------------------------------------------

// The hyperparameters of a decoder-only model of one of the GGUF architectures Minerva runs.
// The architecture decides which tensors a block has (as ../shared/docs/architectures.md and
// llama.cpp's converters lay them out):
//   llama     attn_q/k/v, attn_output, ffn_gate/up/down; with n_expert > 0 the Mixtral layout
//             (ffn_gate_inp router + ffn_{gate,up,down}_exps, n_ff per expert)
//   qwen2     llama + attn_q/k/v.bias (F32); head_dim must be n_embd / n_head
//   qwen3     llama + attn_q_norm, attn_k_norm [head_dim]
//   qwen3moe  qwen3 attention + the expert FFN (n_expert > 0 required; n_ff_exp per expert)
//   gemma2    llama + post_attention_norm, post_ffw_norm; softcaps and sliding window keys;
//             tied output required
//   gemma3    gemma2's tensors + attn_q_norm, attn_k_norm; sliding window, local rope base
//   phi3      fused attn_qkv [n_embd, q_dim + 2 kv_dim] and ffn_up [n_embd, 2 n_ff] (gate, up)
struct MINERVA_API ModelShape {
    std::string name;
    std::string arch = "llama";  // general.architecture (see synth_arch_names())
    int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0;
    int64_t head_dim = 0;  // 0: n_embd / n_head (q_dim = n_head * head_dim may differ from n_embd)
    int64_t n_ctx = 2048;
    float rope_freq_base = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied_output = false;        // no output.weight: logits use token_embd.weight
    float llama3_rope_scale = 0.0f;  // > 0: write rope_freqs.weight with Llama-3.1 scaling (factor)
    // Mixture of experts (qwen3moe, llama): n_expert experts, n_expert_used chosen per token,
    // n_ff_exp the FFN width of one expert (0: n_ff).
    int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;
    // Sliding-window attention (gemma2, gemma3; phi3 writes it, llama.cpp ignores it there):
    // the window in tokens, 0 for none (gemma2 then defaults to 4096 when loaded).
    int64_t n_swa = 0;
    float rope_freq_base_swa = 0.0f;  // > 0: {arch}.rope.freq_base_swa (base of the local layers)
    float rope_scale_linear = 0.0f;   // > 0: rope.scaling.type "linear" with this factor
    float attn_softcap = 0.0f;        // > 0: {arch}.attn_logit_softcapping
    float final_softcap = 0.0f;       // > 0: {arch}.final_logit_softcapping
};

// Known shapes (real models' hyperparameters, each with its architecture): the LLaMA shapes
// "tinyllama-1.1b", "llama3.2-1b", "llama2-7b", "mixtral-8x7b" and the other families'
// "qwen2.5-0.5b", "qwen3-0.6b", "qwen3-30b-a3b", "olmoe-1b-7b", "gemma2-2b", "gemma3-1b",
// "phi3-mini" (synth_shape_names() lists them). nullopt for others.
MINERVA_API std::optional<ModelShape> synth_shape(std::string_view name);
MINERVA_API std::vector<std::string> synth_shape_names();
// The architectures synth writes: llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3.
MINERVA_API std::vector<std::string> synth_arch_names();

struct MINERVA_API SynthOptions {
    // Either a known shape's name, or shape empty and dims set (n_embd, n_layer, n_head,
    // n_head_kv, n_ff, n_vocab and whatever the architecture needs; n_ctx defaults to 2048).
    std::string shape;
    ModelShape dims;
    // Non-empty: write this architecture instead of the shape's own (e.g. olmoe-1b-7b, a
    // qwen3moe by default, as a Mixtral-layout "llama"); an architecture the shape cannot be
    // written as (dense shape as qwen3moe, head_dim != n_embd / n_head as qwen2, ...) is an error.
    std::string arch;
    std::string type = "F16";  // any quant target name (see parse_quant_target)
    // A GGUF whose tokenizer.* metadata is copied (any vocab-only or model file). The vocab
    // file decides n_vocab: when the shape's n_vocab differs, the vocab file's token count is
    // used and a log line says so (so any shape can be paired with any vocabulary). Empty: no
    // tokenizer metadata, n_vocab from the shape.
    std::string vocab_from;
    uint64_t seed = 1;
    float weight_std = 0.02f;  // weights and biases ~ N(0, std^2); norm weights are 1
    int n_threads = 0;         // <= 0: all hardware threads
    std::string out_path;
    ProgressCallback progress;  // optional: the fraction of bytes written; false cancels (Error)
};

// Writes a GGUF of the shape's architecture with the metadata llama.cpp's converter writes for
// it and the usual tensor names (token_embd.weight, blk.N.attn_q.weight, ..., output.weight),
// each matrix with ne[0] = its input dimension (expert tensors [n_in, n_out, n_expert]). Weights
// are drawn per row from a generator seeded by (seed, tensor name, row): the file is the same
// for any thread count, and rows are streamed to the file, so a 30B file needs ~100 MB of RAM.
// Norms, biases, the MoE router and rope factors stay F32. Random weights carry no positional
// structure, so no RoPE row permutation is applied or needed (NORM and NEOX alike).
MINERVA_API void synth_file(const SynthOptions& options);

}  // namespace minerva
