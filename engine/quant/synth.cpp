// synth_file: GGUF files of each supported architecture with seeded random weights, written in
// the target type.
//
// Every weight row is generated from its own seed (seed, tensor name, row), quantized at once
// and streamed to the writer, so the file does not depend on the thread count and memory stays
// at one chunk of rows (a 7B file is written with ~100 MB of RAM).
#include "log/log.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "cpu/quantize.h"
#include "gguf/gguf_writer.h"
#include "minerva/gguf.h"
#include "minerva/quantize.h"
#include "quant/quant_plan.h"

namespace minerva {
namespace {

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    return h;
}

// n gaussian values N(0, std^2) for one row (Box-Muller on a splitmix64 stream).
void gaussian_row(uint64_t seed, float std_dev, float* y, int64_t n) {
    uint64_t s = seed;
    constexpr float two_pi = 2.0f * std::numbers::pi_v<float>;
    for (int64_t i = 0; i < n; i += 2) {
        uint64_t r = splitmix64(s);
        // Two 24-bit uniforms: u1 in (0, 1] (log needs > 0), u2 in [0, 1).
        float u1 = (static_cast<float>(r >> 40) + 1.0f) * (1.0f / 16777216.0f);
        float u2 = static_cast<float>((r >> 8) & 0xFFFFFF) * (1.0f / 16777216.0f);
        float rad = std_dev * std::sqrt(-2.0f * std::log(u1));
        y[i] = rad * std::cos(two_pi * u2);
        if (i + 1 < n) y[i + 1] = rad * std::sin(two_pi * u2);
    }
}

// Llama-3.1 RoPE frequency divisors (rope_freqs.weight): high frequencies kept, low ones
// divided by the scale factor, a smooth blend in between (original context 8192, low/high
// frequency factors 1 and 4, as Meta's Llama 3.1 and 3.2 configurations give).
std::vector<float> llama3_rope_factors(int64_t head_dim, float base, float scale) {
    const double old_ctx = 8192, low_ff = 1, high_ff = 4;
    const double low_wavelen = old_ctx / low_ff, high_wavelen = old_ctx / high_ff;
    std::vector<float> f(static_cast<size_t>(head_dim / 2));
    for (int64_t i = 0; i < head_dim / 2; ++i) {
        double freq = 1.0 / std::pow(static_cast<double>(base), 2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
        double wavelen = 2.0 * std::numbers::pi / freq;
        double factor;
        if (wavelen < high_wavelen) factor = 1.0;
        else if (wavelen > low_wavelen) factor = scale;
        else {
            double smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff);
            factor = 1.0 / ((1.0 - smooth) / scale + smooth);
        }
        f[static_cast<size_t>(i)] = static_cast<float>(factor);
    }
    return f;
}

// What an architecture's blocks hold beyond LLaMA's (architectures.md; one row per family).
struct ArchTraits {
    const char* name;
    bool qkv_bias;        // attn_q/k/v.bias
    bool qk_norm;         // attn_q_norm, attn_k_norm [head_dim]
    bool post_norms;      // post_attention_norm, post_ffw_norm
    bool fused;           // attn_qkv and gate+up in ffn_up
    bool head_keys;       // the converter writes attention.key_length / value_length
    bool head_dim_fixed;  // head_dim must be n_embd / n_head
    enum { Dense, Optional, Required } moe;
    bool tied_required;
};

constexpr ArchTraits k_archs[] = {
    //  name        bias   qknorm post   fused  keys   fixed  moe                  tied
    {"llama",    false, false, false, false, false, true,  ArchTraits::Optional, false},
    {"qwen2",    true,  false, false, false, false, true,  ArchTraits::Dense,    false},
    {"qwen3",    false, true,  false, false, true,  false, ArchTraits::Dense,    false},
    {"qwen3moe", false, true,  false, false, true,  false, ArchTraits::Required, false},
    {"gemma2",   false, false, true,  false, true,  false, ArchTraits::Dense,    true},
    {"gemma3",   false, true,  true,  false, true,  false, ArchTraits::Dense,    false},
    {"phi3",     false, false, false, true,  false, true,  ArchTraits::Dense,    false},
};

std::string arch_list() {
    std::string names;
    for (const auto& a : k_archs) names += (names.empty() ? "" : ", ") + std::string(a.name);
    return names;
}

const ArchTraits& arch_traits(const std::string& arch) {
    for (const auto& a : k_archs)
        if (arch == a.name) return a;
    throw Error("synth: unknown architecture '" + arch + "' (known: " + arch_list() + ")");
}

void check_shape(const ModelShape& s, const ArchTraits& a) {
    auto need = [&](int64_t v, const char* what, int64_t max) {
        if (v <= 0 || v > max)
            throw Error("synth: " + std::string(what) + " = " + std::to_string(v) + " is out of range (1.." +
                        std::to_string(max) + ")");
    };
    need(s.n_embd, "n_embd", 1 << 16);
    need(s.n_layer, "n_layer", 1024);
    need(s.n_head, "n_head", 1024);
    need(s.n_head_kv, "n_head_kv", 1024);
    need(s.n_ff, "n_ff", 1 << 18);
    need(s.n_vocab, "n_vocab", 1 << 22);
    need(s.n_ctx, "n_ctx", 1 << 24);
    const std::string where = "synth: " + s.arch + ": ";
    if (s.head_dim < 0 || s.head_dim > 4096)
        throw Error(where + "head_dim = " + std::to_string(s.head_dim) + " is out of range (0 = n_embd / n_head, or 1..4096)");
    if ((s.head_dim == 0 || a.head_dim_fixed) && s.n_embd % s.n_head != 0)
        throw Error("synth: n_embd " + std::to_string(s.n_embd) + " is not a multiple of n_head " + std::to_string(s.n_head));
    if (a.head_dim_fixed && s.head_dim != 0 && s.head_dim != s.n_embd / s.n_head)
        throw Error(where + "head_dim must be n_embd / n_head = " + std::to_string(s.n_embd / s.n_head) + ", got " +
                    std::to_string(s.head_dim) + " (only qwen3, qwen3moe, gemma2 and gemma3 take another)");
    if (s.n_head % s.n_head_kv != 0)
        throw Error("synth: n_head " + std::to_string(s.n_head) + " is not a multiple of n_head_kv " +
                    std::to_string(s.n_head_kv));
    const int64_t head_dim = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
    if (head_dim % 2 != 0)
        throw Error("synth: head dimension " + std::to_string(head_dim) + " must be even for RoPE");
    if (s.n_expert < 0 || s.n_expert > 1024)
        throw Error(where + "n_expert = " + std::to_string(s.n_expert) + " is out of range (0..1024)");
    if (s.n_expert > 0) {
        if (a.moe == ArchTraits::Dense)
            throw Error(where + "has no mixture-of-experts layout (n_expert " + std::to_string(s.n_expert) +
                        "); experts are written as qwen3moe or llama");
        if (s.n_expert_used < 1 || s.n_expert_used > s.n_expert)
            throw Error(where + "n_expert_used = " + std::to_string(s.n_expert_used) + " must be in 1..n_expert (" +
                        std::to_string(s.n_expert) + ")");
        if (s.n_ff_exp < 0 || s.n_ff_exp > (1 << 18))
            throw Error(where + "n_ff_exp = " + std::to_string(s.n_ff_exp) + " is out of range (0 = n_ff, or 1..262144)");
    } else if (a.moe == ArchTraits::Required) {
        throw Error(where + "needs experts (n_expert > 0, n_expert_used); a dense shape is written as qwen3");
    }
    if (a.tied_required && !s.tied_output)
        throw Error(where + "ties the output to token_embd (llama.cpp rejects output.weight): set tied_output");
    if (s.n_swa < 0) throw Error(where + "sliding window n_swa must be >= 0");
    if (s.llama3_rope_scale > 0.0f && std::string(a.name) != "llama")
        throw Error(where + "rope_freqs.weight (Llama-3.1 scaling) is a llama tensor");
}

struct SynthTensor {
    std::string name;
    std::vector<int64_t> ne;
    enum Kind { Random, Ones, RopeFreqs } kind = Random;
};

ModelShape make(const char* name, const char* arch, int64_t n_embd, int64_t n_layer, int64_t n_head, int64_t n_head_kv,
                int64_t n_ff, int64_t n_vocab, int64_t n_ctx, float rope_base, float eps) {
    ModelShape s;
    s.name = name, s.arch = arch;
    s.n_embd = n_embd, s.n_layer = n_layer, s.n_head = n_head, s.n_head_kv = n_head_kv, s.n_ff = n_ff;
    s.n_vocab = n_vocab, s.n_ctx = n_ctx, s.rope_freq_base = rope_base, s.rms_eps = eps;
    return s;
}

}  // namespace

// Hyperparameters from each model's published config.json (hidden_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads, head_dim, intermediate_size, vocab_size,
// max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings, and the MoE and
// window fields), as llama.cpp's converter maps them to GGUF keys.
std::optional<ModelShape> synth_shape(std::string_view name) {
    ModelShape s;
    if (name == "tinyllama-1.1b") {
        s = make("tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f);
    } else if (name == "llama3.2-1b") {
        s = make("llama3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f);
        s.tied_output = true;
        s.llama3_rope_scale = 32.0f;
    } else if (name == "llama2-7b") {
        s = make("llama2-7b", "llama", 4096, 32, 32, 32, 11008, 32000, 4096, 10000.0f, 1e-5f);
    } else if (name == "mixtral-8x7b") {
        s = make("mixtral-8x7b", "llama", 4096, 32, 32, 8, 14336, 32000, 32768, 1e6f, 1e-5f);
        s.n_expert = 8, s.n_expert_used = 2;
    } else if (name == "qwen2.5-0.5b") {
        s = make("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1e6f, 1e-6f);
        s.tied_output = true;
    } else if (name == "qwen3-0.6b") {
        s = make("qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 3072, 151936, 40960, 1e6f, 1e-6f);
        s.head_dim = 128;
        s.tied_output = true;
    } else if (name == "qwen3-30b-a3b") {
        s = make("qwen3-30b-a3b", "qwen3moe", 2048, 48, 32, 4, 6144, 151936, 40960, 1e6f, 1e-6f);
        s.head_dim = 128;
        s.n_expert = 128, s.n_expert_used = 8, s.n_ff_exp = 768;
    } else if (name == "olmoe-1b-7b") {
        // OLMoE-1B-7B-0924's sizes (64 experts of width 1024, 8 used) in qwen3moe's layout.
        s = make("olmoe-1b-7b", "qwen3moe", 2048, 16, 16, 16, 1024, 50304, 4096, 10000.0f, 1e-5f);
        s.n_expert = 64, s.n_expert_used = 8, s.n_ff_exp = 1024;
    } else if (name == "gemma2-2b") {
        s = make("gemma2-2b", "gemma2", 2304, 26, 8, 4, 9216, 256000, 8192, 10000.0f, 1e-6f);
        s.head_dim = 256;
        s.tied_output = true;
        s.n_swa = 4096;
        s.attn_softcap = 50.0f, s.final_softcap = 30.0f;
    } else if (name == "gemma3-1b") {
        s = make("gemma3-1b", "gemma3", 1152, 26, 4, 1, 6912, 262144, 32768, 1e6f, 1e-6f);
        s.head_dim = 256;
        s.tied_output = true;
        s.n_swa = 512;
        s.rope_freq_base_swa = 10000.0f;
    } else if (name == "phi3-mini") {
        // Phi-3-mini-4k-instruct.
        s = make("phi3-mini", "phi3", 3072, 32, 32, 32, 8192, 32064, 4096, 10000.0f, 1e-5f);
        s.n_swa = 2047;
    } else {
        return std::nullopt;
    }
    return s;
}

std::vector<std::string> synth_shape_names() {
    return {"tinyllama-1.1b", "llama3.2-1b", "llama2-7b",  "mixtral-8x7b", "qwen2.5-0.5b", "qwen3-0.6b",
            "qwen3-30b-a3b",  "olmoe-1b-7b", "gemma2-2b", "gemma3-1b",    "phi3-mini"};
}

std::vector<std::string> synth_arch_names() {
    std::vector<std::string> v;
    for (const auto& a : k_archs) v.emplace_back(a.name);
    return v;
}

void synth_file(const SynthOptions& opt) {
    if (opt.out_path.empty()) throw Error("synth: no output path");
    ModelShape s;
    if (!opt.shape.empty()) {
        auto known = synth_shape(opt.shape);
        if (!known) {
            std::string names;
            for (auto& n : synth_shape_names()) names += (names.empty() ? "" : ", ") + n;
            throw Error("synth: unknown shape '" + opt.shape + "' (known: " + names + ")");
        }
        s = *known;
    } else {
        s = opt.dims;
        if (s.name.empty()) s.name = "synth-custom";
    }
    if (!opt.arch.empty()) s.arch = opt.arch;
    const ArchTraits& arch = arch_traits(s.arch);
    auto target = parse_quant_target(opt.type);
    if (!target) throw Error("synth: unknown type '" + opt.type + "'");
    if (!(opt.weight_std > 0.0f) || !std::isfinite(opt.weight_std))
        throw Error("synth: weight standard deviation must be positive");

    std::optional<gguf::File> vocab;
    if (!opt.vocab_from.empty()) {
        vocab = gguf::File::open(opt.vocab_from);
        const gguf::Value* tokens = vocab->find("tokenizer.ggml.tokens");
        if (!tokens || tokens->type != gguf::ValueType::ARRAY)
            throw Error(opt.vocab_from + ": no tokenizer.ggml.tokens array: not a vocabulary file");
        auto n = static_cast<int64_t>(tokens->as_array().size());
        if (n != s.n_vocab) {
            if (s.n_vocab > 0)
                logging::info("synth: shape {} has n_vocab {}, vocabulary {} has {} tokens: using {}", s.name,
                             s.n_vocab, opt.vocab_from, n, n);
            s.n_vocab = n;
        }
    }
    check_shape(s, arch);
    const int64_t head_dim = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
    const int64_t q_dim = head_dim * s.n_head, kv_dim = head_dim * s.n_head_kv;
    const bool moe = s.n_expert > 0;
    const int64_t n_ff_exp = s.n_ff_exp ? s.n_ff_exp : s.n_ff;
    const int n_threads = detail::resolve_threads(opt.n_threads);

    // Metadata as llama.cpp's converter writes it for the architecture.
    gguf::Writer w(opt.out_path);
    const std::string k = s.arch + ".";
    auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
    w.add_string("general.architecture", s.arch);
    w.add_string("general.name", s.name);
    w.add_u32("general.alignment", 32);
    w.add_u32(k + "context_length", u32(s.n_ctx));
    w.add_u32(k + "embedding_length", u32(s.n_embd));
    w.add_u32(k + "block_count", u32(s.n_layer));
    // A llama MoE states the expert width here (Mixtral); qwen3moe has its own key for it.
    w.add_u32(k + "feed_forward_length", u32(moe && s.arch == "llama" ? n_ff_exp : s.n_ff));
    w.add_u32(k + "attention.head_count", u32(s.n_head));
    w.add_u32(k + "attention.head_count_kv", u32(s.n_head_kv));
    if (arch.head_keys || head_dim != s.n_embd / s.n_head) {
        w.add_u32(k + "attention.key_length", u32(head_dim));
        w.add_u32(k + "attention.value_length", u32(head_dim));
    }
    w.add_u32(k + "rope.dimension_count", u32(head_dim));
    w.add_f32(k + "rope.freq_base", s.rope_freq_base);
    if (s.rope_freq_base_swa > 0.0f) w.add_f32(k + "rope.freq_base_swa", s.rope_freq_base_swa);
    if (s.rope_scale_linear > 0.0f) {
        w.add_string(k + "rope.scaling.type", "linear");
        w.add_f32(k + "rope.scaling.factor", s.rope_scale_linear);
    }
    if (s.arch == "phi3") w.add_u32(k + "rope.scaling.original_context_length", u32(s.n_ctx));
    w.add_f32(k + "attention.layer_norm_rms_epsilon", s.rms_eps);
    if (s.n_swa > 0) w.add_u32(k + "attention.sliding_window", u32(s.n_swa));
    if (s.attn_softcap > 0.0f) w.add_f32(k + "attn_logit_softcapping", s.attn_softcap);
    if (s.final_softcap > 0.0f) w.add_f32(k + "final_logit_softcapping", s.final_softcap);
    if (moe) {
        w.add_u32(k + "expert_count", u32(s.n_expert));
        w.add_u32(k + "expert_used_count", u32(s.n_expert_used));
        if (s.arch != "llama") w.add_u32(k + "expert_feed_forward_length", u32(n_ff_exp));
    }
    w.add_u32(k + "vocab_size", u32(s.n_vocab));
    w.add_u32("general.file_type", file_type_for(*target));
    w.add_u32("general.quantization_version", 2);
    if (vocab)
        for (const auto& [key, value] : vocab->metadata())
            if (key.rfind("tokenizer.", 0) == 0) w.add_value(key, value);

    // The tensor list, in llama.cpp's order; optional parts as the architecture's row says.
    std::vector<SynthTensor> tensors;
    tensors.push_back({"token_embd.weight", {s.n_embd, s.n_vocab}});
    if (s.llama3_rope_scale > 0.0f) tensors.push_back({"rope_freqs.weight", {head_dim / 2}, SynthTensor::RopeFreqs});
    for (int64_t l = 0; l < s.n_layer; ++l) {
        std::string p = "blk." + std::to_string(l) + ".";
        tensors.push_back({p + "attn_norm.weight", {s.n_embd}, SynthTensor::Ones});
        if (arch.fused) {
            tensors.push_back({p + "attn_qkv.weight", {s.n_embd, q_dim + 2 * kv_dim}});
        } else {
            tensors.push_back({p + "attn_q.weight", {s.n_embd, q_dim}});
            tensors.push_back({p + "attn_k.weight", {s.n_embd, kv_dim}});
            tensors.push_back({p + "attn_v.weight", {s.n_embd, kv_dim}});
        }
        if (arch.qkv_bias) {
            tensors.push_back({p + "attn_q.bias", {q_dim}});
            tensors.push_back({p + "attn_k.bias", {kv_dim}});
            tensors.push_back({p + "attn_v.bias", {kv_dim}});
        }
        if (arch.qk_norm) {
            tensors.push_back({p + "attn_q_norm.weight", {head_dim}, SynthTensor::Ones});
            tensors.push_back({p + "attn_k_norm.weight", {head_dim}, SynthTensor::Ones});
        }
        tensors.push_back({p + "attn_output.weight", {q_dim, s.n_embd}});
        if (arch.post_norms) tensors.push_back({p + "post_attention_norm.weight", {s.n_embd}, SynthTensor::Ones});
        tensors.push_back({p + "ffn_norm.weight", {s.n_embd}, SynthTensor::Ones});
        if (moe) {
            tensors.push_back({p + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}});
            tensors.push_back({p + "ffn_gate_exps.weight", {s.n_embd, n_ff_exp, s.n_expert}});
            tensors.push_back({p + "ffn_up_exps.weight", {s.n_embd, n_ff_exp, s.n_expert}});
            tensors.push_back({p + "ffn_down_exps.weight", {n_ff_exp, s.n_embd, s.n_expert}});
        } else if (arch.fused) {
            tensors.push_back({p + "ffn_up.weight", {s.n_embd, 2 * s.n_ff}});
            tensors.push_back({p + "ffn_down.weight", {s.n_ff, s.n_embd}});
        } else {
            tensors.push_back({p + "ffn_gate.weight", {s.n_embd, s.n_ff}});
            tensors.push_back({p + "ffn_up.weight", {s.n_embd, s.n_ff}});
            tensors.push_back({p + "ffn_down.weight", {s.n_ff, s.n_embd}});
        }
        if (arch.post_norms) tensors.push_back({p + "post_ffw_norm.weight", {s.n_embd}, SynthTensor::Ones});
    }
    tensors.push_back({"output_norm.weight", {s.n_embd}, SynthTensor::Ones});
    if (!s.tied_output) tensors.push_back({"output.weight", {s.n_embd, s.n_vocab}});

    std::vector<DType> types;
    for (const auto& t : tensors) {
        DType ty = detail::plan_tensor_type(*target, t.name, static_cast<int>(t.ne.size()), t.ne[0],
                                            static_cast<int>(s.n_layer), !s.tied_output);
        types.push_back(ty);
        w.add_tensor(t.name, ty, t.ne);
    }
    logging::info("synth: {} ({}, {} layers, n_embd {}, n_vocab {}) as {}: {:.1f} MiB -> {}", s.name, s.arch, s.n_layer,
                  s.n_embd, s.n_vocab, target->name, static_cast<double>(w.data_bytes()) / (1 << 20), opt.out_path);
    w.begin_data();

    std::vector<uint8_t> chunk_buf;
    int last_layer = -1;
    uint64_t done_bytes = 0;
    const uint64_t total_bytes = w.data_bytes();
    auto report = [&](size_t bytes) {
        done_bytes += bytes;
        if (opt.progress &&
            !opt.progress(total_bytes ? static_cast<float>(static_cast<double>(done_bytes) / total_bytes) : 1.f))
            throw Error(opt.out_path + ": synth cancelled");
    };
    for (size_t i = 0; i < tensors.size(); ++i) {
        const SynthTensor& t = tensors[i];
        const DType ty = types[i];
        const int64_t ne0 = t.ne[0];
        int64_t n_rows = 1;
        for (size_t d = 1; d < t.ne.size(); ++d) n_rows *= t.ne[d];
        const size_t rb = row_bytes(ty, ne0);

        if (t.kind != SynthTensor::Random) {
            std::vector<float> v = t.kind == SynthTensor::Ones
                                       ? std::vector<float>(static_cast<size_t>(ne0), 1.0f)
                                       : llama3_rope_factors(head_dim, s.rope_freq_base, s.llama3_rope_scale);
            chunk_buf.resize(rb);
            cpu::quantize_row(ty, v.data(), chunk_buf.data(), ne0);
            w.write_data(chunk_buf.data(), rb);
            report(rb);
            continue;
        }
        const uint64_t tensor_seed = opt.seed * 0x9E3779B97F4A7C15ull ^ fnv1a(t.name);
        const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / ne0);
        for (int64_t r = 0; r < n_rows; r += chunk) {
            const int64_t nr = std::min(chunk, n_rows - r);
            chunk_buf.resize(static_cast<size_t>(nr) * rb);
            detail::parallel_ranges(nr, n_threads, [&](int64_t r0, int64_t r1) {
                std::vector<float> row(static_cast<size_t>(ne0));
                for (int64_t k = r0; k < r1; ++k) {
                    uint64_t row_seed = tensor_seed + static_cast<uint64_t>(r + k);
                    uint64_t mixed = splitmix64(row_seed);
                    gaussian_row(mixed, opt.weight_std, row.data(), ne0);
                    cpu::quantize_row(ty, row.data(), chunk_buf.data() + static_cast<size_t>(k) * rb, ne0);
                }
            });
            w.write_data(chunk_buf.data(), chunk_buf.size());
            report(chunk_buf.size());
        }
        int layer = detail::layer_of(t.name);
        if (layer != last_layer && layer >= 0 && t.name.find("ffn_down") != std::string::npos) {
            logging::debug("synth: layer {}/{} written", layer + 1, s.n_layer);
            last_layer = layer;
        }
    }
    w.finish();
}

}  // namespace minerva
