// synth_file: LLaMA-shaped GGUF files with seeded random weights, written in the target type.
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

void check_shape(const LlamaShape& s) {
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
    if (s.n_embd % s.n_head != 0)
        throw Error("synth: n_embd " + std::to_string(s.n_embd) + " is not a multiple of n_head " + std::to_string(s.n_head));
    if (s.n_head % s.n_head_kv != 0)
        throw Error("synth: n_head " + std::to_string(s.n_head) + " is not a multiple of n_head_kv " +
                    std::to_string(s.n_head_kv));
    if ((s.n_embd / s.n_head) % 2 != 0)
        throw Error("synth: head dimension " + std::to_string(s.n_embd / s.n_head) + " must be even for RoPE");
}

struct SynthTensor {
    std::string name;
    std::vector<int64_t> ne;
    enum Kind { Random, Ones, RopeFreqs } kind = Random;
};

}  // namespace

std::optional<LlamaShape> synth_shape(std::string_view name) {
    LlamaShape s;
    s.name = std::string(name);
    if (name == "tinyllama-1.1b") {
        s.n_embd = 2048, s.n_layer = 22, s.n_head = 32, s.n_head_kv = 4, s.n_ff = 5632, s.n_vocab = 32000;
        s.n_ctx = 2048;
        s.rope_freq_base = 10000.0f;
    } else if (name == "llama3.2-1b") {
        s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192, s.n_vocab = 128256;
        s.n_ctx = 131072;
        s.rope_freq_base = 500000.0f;
        s.tied_output = true;
        s.llama3_rope_scale = 32.0f;
    } else if (name == "llama2-7b") {
        s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 32, s.n_ff = 11008, s.n_vocab = 32000;
        s.n_ctx = 4096;
        s.rope_freq_base = 10000.0f;
    } else {
        return std::nullopt;
    }
    return s;
}

std::vector<std::string> synth_shape_names() { return {"tinyllama-1.1b", "llama3.2-1b", "llama2-7b"}; }

void synth_file(const SynthOptions& opt) {
    if (opt.out_path.empty()) throw Error("synth: no output path");
    LlamaShape s;
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
    check_shape(s);
    const int64_t head_dim = s.n_embd / s.n_head, n_embd_kv = head_dim * s.n_head_kv;
    const int n_threads = detail::resolve_threads(opt.n_threads);

    gguf::Writer w(opt.out_path);
    w.add_string("general.architecture", "llama");
    w.add_string("general.name", s.name);
    w.add_u32("general.alignment", 32);
    w.add_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
    w.add_u32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
    w.add_u32("llama.block_count", static_cast<uint32_t>(s.n_layer));
    w.add_u32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
    w.add_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
    w.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
    w.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
    w.add_f32("llama.rope.freq_base", s.rope_freq_base);
    w.add_f32("llama.attention.layer_norm_rms_epsilon", s.rms_eps);
    w.add_u32("llama.vocab_size", static_cast<uint32_t>(s.n_vocab));
    w.add_u32("general.file_type", file_type_for(*target));
    w.add_u32("general.quantization_version", 2);
    if (vocab)
        for (const auto& [key, value] : vocab->metadata())
            if (key.rfind("tokenizer.", 0) == 0) w.add_value(key, value);

    // The tensor list, in llama.cpp's order.
    std::vector<SynthTensor> tensors;
    tensors.push_back({"token_embd.weight", {s.n_embd, s.n_vocab}});
    if (s.llama3_rope_scale > 0.0f) tensors.push_back({"rope_freqs.weight", {head_dim / 2}, SynthTensor::RopeFreqs});
    for (int64_t l = 0; l < s.n_layer; ++l) {
        std::string p = "blk." + std::to_string(l) + ".";
        tensors.push_back({p + "attn_norm.weight", {s.n_embd}, SynthTensor::Ones});
        tensors.push_back({p + "attn_q.weight", {s.n_embd, s.n_embd}});
        tensors.push_back({p + "attn_k.weight", {s.n_embd, n_embd_kv}});
        tensors.push_back({p + "attn_v.weight", {s.n_embd, n_embd_kv}});
        tensors.push_back({p + "attn_output.weight", {s.n_embd, s.n_embd}});
        tensors.push_back({p + "ffn_norm.weight", {s.n_embd}, SynthTensor::Ones});
        tensors.push_back({p + "ffn_gate.weight", {s.n_embd, s.n_ff}});
        tensors.push_back({p + "ffn_up.weight", {s.n_embd, s.n_ff}});
        tensors.push_back({p + "ffn_down.weight", {s.n_ff, s.n_embd}});
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
    logging::info("synth: {} ({} layers, n_embd {}, n_vocab {}) as {}: {:.1f} MiB -> {}", s.name, s.n_layer, s.n_embd,
                 s.n_vocab, target->name, static_cast<double>(w.data_bytes()) / (1 << 20), opt.out_path);
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
