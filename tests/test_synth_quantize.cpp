// minerva synth + quantize: files made, read back, checked for shapes, types, metadata and
// values; the shared tiny-k model quantized and compared tensor by tensor with its original.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common.h"
#include "cpu/dequant.h"
#include "minerva/gguf.h"
#include "minerva/quantize.h"

using namespace minerva;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("minerva-test-synth-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return (dir / name).string();
}

std::vector<float> tensor_f32(const gguf::File& f, const gguf::TensorInfo& t) {
    std::vector<float> y(static_cast<size_t>(t.n_elements()));
    const int64_t ne0 = t.ne[0];
    for (int64_t r = 0; r < t.n_elements() / ne0; ++r)
        cpu::dequantize_row(t.type, f.tensor_data(t) + r * row_bytes(t.type, ne0), y.data() + r * ne0, ne0);
    return y;
}

double rel_rms(const std::vector<float>& x, const std::vector<float>& y) {
    double e2 = 0, x2 = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        e2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        x2 += double(x[i]) * x[i];
    }
    return std::sqrt(e2 / x2);
}

std::string file_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Relative RMS bounds for N(0, 0.02^2) weights, as in test_quantize (same quantizers).
double bound_for(DType t) {
    switch (t) {
        case DType::F32: return 1e-12;
        case DType::F16: return 0.00025;
        case DType::BF16: return 0.0019;
        case DType::Q8_0: return 0.006;
        case DType::Q6_K: return 0.0191;
        case DType::Q5_K: return 0.0384;
        case DType::Q5_1: return 0.0417;
        case DType::Q5_0: return 0.0471;
        case DType::Q4_K: return 0.0778;
        case DType::Q4_1: return 0.0861;
        case DType::Q4_0: return 0.0948;
        case DType::Q3_K: return 0.160;
        case DType::Q2_K: return 0.296;
        default: return 0;
    }
}

// 8 layers so the _M promotion rule has something to show: layers 0 (< n/8), 7 (>= 7n/8) and
// 3, 6 ((i - n/8) % 3 == 2). n_vocab 0: taken from the vocabulary file (stories260K: 512).
SynthOptions tiny_options(const std::string& vocab, const std::string& type, const std::string& out) {
    SynthOptions o;
    o.dims.n_embd = 256;
    o.dims.n_layer = 8;
    o.dims.n_head = 4;
    o.dims.n_head_kv = 2;
    o.dims.n_ff = 512;
    o.dims.n_vocab = 0;
    o.dims.n_ctx = 1024;
    o.type = type;
    o.vocab_from = vocab;
    o.seed = 3;
    o.n_threads = 2;
    o.out_path = out;
    return o;
}

TEST(Synth, TinyModelMetadataShapesAndValues) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    const std::string path = temp_path("tiny-f32.gguf");
    synth_file(tiny_options(vocab_path, "F32", path));
    auto f = gguf::File::open(path);
    auto vocab = gguf::File::open(vocab_path);

    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_string("general.name"), "synth-custom");
    EXPECT_EQ(f.get_int("general.alignment"), 32);
    EXPECT_EQ(f.get_int("llama.context_length"), 1024);
    EXPECT_EQ(f.get_int("llama.embedding_length"), 256);
    EXPECT_EQ(f.get_int("llama.block_count"), 8);
    EXPECT_EQ(f.get_int("llama.feed_forward_length"), 512);
    EXPECT_EQ(f.get_int("llama.attention.head_count"), 4);
    EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 2);
    EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 64);
    EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.rope.freq_base")), 10000.0f);
    EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
    EXPECT_EQ(f.get_int("llama.vocab_size"), 512);
    EXPECT_EQ(f.get_int("general.file_type"), 0);
    // Every tokenizer.* key copied, values equal.
    int n_tok_keys = 0;
    for (const auto& [k, v] : vocab.metadata()) {
        if (k.rfind("tokenizer.", 0) != 0) continue;
        ++n_tok_keys;
        const gguf::Value* c = f.find(k);
        ASSERT_NE(c, nullptr) << k;
        EXPECT_EQ(v.to_string(1 << 20), c->to_string(1 << 20)) << k;
    }
    EXPECT_GE(n_tok_keys, 3);

    // Tensors: names, shapes (ne[0] = input dim), the count.
    const int64_t E = 256, KV = 128, F = 512, V = 512;
    std::map<std::string, std::vector<int64_t>> want = {
        {"token_embd.weight", {E, V}}, {"output_norm.weight", {E}}, {"output.weight", {E, V}}};
    for (int l = 0; l < 8; ++l) {
        std::string p = "blk." + std::to_string(l) + ".";
        want[p + "attn_norm.weight"] = {E};
        want[p + "attn_q.weight"] = {E, E};
        want[p + "attn_k.weight"] = {E, KV};
        want[p + "attn_v.weight"] = {E, KV};
        want[p + "attn_output.weight"] = {E, E};
        want[p + "ffn_norm.weight"] = {E};
        want[p + "ffn_gate.weight"] = {E, F};
        want[p + "ffn_up.weight"] = {E, F};
        want[p + "ffn_down.weight"] = {F, E};
    }
    ASSERT_EQ(f.tensors().size(), want.size());
    for (const auto& t : f.tensors()) {
        auto it = want.find(t.name);
        ASSERT_NE(it, want.end()) << "unexpected tensor " << t.name;
        ASSERT_EQ(t.n_dims, it->second.size()) << t.name;
        for (size_t d = 0; d < it->second.size(); ++d) EXPECT_EQ(t.ne[d], it->second[d]) << t.name;
        EXPECT_EQ(t.type, DType::F32) << t.name;
        auto x = tensor_f32(f, t);
        if (t.n_dims == 1) {
            for (float v : x) ASSERT_EQ(v, 1.0f) << t.name;
        } else {
            double s = 0, s2 = 0;
            for (float v : x) {
                s += v;
                s2 += double(v) * v;
            }
            double mean = s / x.size(), sd = std::sqrt(s2 / x.size() - mean * mean);
            EXPECT_NEAR(sd, 0.02, 0.02 * 0.05) << t.name;
            EXPECT_NEAR(mean, 0.0, 0.02 * 5 / std::sqrt(double(x.size()))) << t.name;
        }
    }
    // Rows differ from each other and tensors from each other (no repeated seeds).
    auto q = tensor_f32(f, *f.find_tensor("blk.0.attn_q.weight"));
    auto k = tensor_f32(f, *f.find_tensor("blk.0.attn_output.weight"));
    EXPECT_NE(std::memcmp(q.data(), q.data() + 256, 256 * 4), 0);
    EXPECT_NE(std::memcmp(q.data(), k.data(), 256 * 4), 0);
}

// synth in a type == synth in F32 then quantize to that type, byte for byte; types follow the
// plan; values close to the F32 originals; general.file_type set.
TEST(Synth, QuantizedTypesMatchQuantizeOfF32) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    const std::string f32_path = temp_path("tiny-ref-f32.gguf");
    synth_file(tiny_options(vocab_path, "F32", f32_path));
    auto ref = gguf::File::open(f32_path);
    const std::set<int> promoted = {0, 3, 6, 7};
    const std::map<std::string, int> file_types = {{"Q8_0", 7}, {"Q4_0", 2}, {"Q4_K_M", 15}, {"Q5_K_M", 17},
                                                   {"Q2_K", 10}, {"F16", 1}};
    for (const auto& [type, ftype] : file_types) {
        const std::string synth_path = temp_path("tiny-" + type + ".gguf");
        const std::string quant_path = temp_path("tiny-" + type + "-q.gguf");
        synth_file(tiny_options(vocab_path, type, synth_path));
        quantize_file(f32_path, quant_path, type, 2);
        auto s = gguf::File::open(synth_path);
        auto q = gguf::File::open(quant_path);
        EXPECT_EQ(s.get_int("general.file_type"), ftype) << type;
        EXPECT_EQ(q.get_int("general.file_type"), ftype) << type;
        EXPECT_EQ(q.get_int("llama.block_count"), 8);
        EXPECT_EQ(q.get_array("tokenizer.ggml.tokens").size(), 512u);
        ASSERT_EQ(s.tensors().size(), ref.tensors().size());
        ASSERT_EQ(q.tensors().size(), ref.tensors().size());
        const QuantTarget target = *parse_quant_target(type);
        for (const auto& rt : ref.tensors()) {
            const auto* st = s.find_tensor(rt.name);
            const auto* qt = q.find_tensor(rt.name);
            ASSERT_TRUE(st && qt) << rt.name;
            DType want;
            if (rt.n_dims == 1) want = DType::F32;
            else if (!target.mix) want = target.base;
            else {
                bool v_or_down = rt.name.find("attn_v") != std::string::npos || rt.name.find("ffn_down") != std::string::npos;
                int layer = rt.name.rfind("blk.", 0) == 0 ? std::stoi(rt.name.substr(4)) : -1;
                want = rt.name == "output.weight" || (v_or_down && promoted.count(layer)) ? DType::Q6_K : target.base;
            }
            EXPECT_EQ(st->type, want) << type << " " << rt.name;
            EXPECT_EQ(qt->type, want) << type << " " << rt.name;
            for (int d = 0; d < 4; ++d) EXPECT_EQ(qt->ne[d], rt.ne[d]) << rt.name;
            ASSERT_EQ(st->nbytes, qt->nbytes) << rt.name;
            EXPECT_EQ(std::memcmp(s.tensor_data(*st), q.tensor_data(*qt), st->nbytes), 0)
                << type << " " << rt.name << ": synth and quantize disagree";
            auto x = tensor_f32(ref, rt);
            auto y = tensor_f32(q, *qt);
            double e = rel_rms(x, y);
            EXPECT_LE(e, bound_for(qt->type) * 1.05) << type << " " << rt.name;
        }
        fs::remove(synth_path);
        fs::remove(quant_path);
    }
}

TEST(Synth, SameFileForAnyThreadCountAndSeedMatters) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    auto o = tiny_options(vocab_path, "Q4_K_M", temp_path("t1.gguf"));
    o.n_threads = 1;
    synth_file(o);
    auto o3 = o;
    o3.n_threads = 3;
    o3.out_path = temp_path("t3.gguf");
    synth_file(o3);
    EXPECT_EQ(file_bytes(o.out_path), file_bytes(o3.out_path));
    auto o2 = o;
    o2.seed = 4;
    o2.out_path = temp_path("s4.gguf");
    synth_file(o2);
    auto a = gguf::File::open(o.out_path), b = gguf::File::open(o2.out_path);
    const auto* ta = a.find_tensor("token_embd.weight");
    const auto* tb = b.find_tensor("token_embd.weight");
    EXPECT_NE(std::memcmp(a.tensor_data(*ta), b.tensor_data(*tb), ta->nbytes), 0);
}

// Llama-3.2-like features: tied output (no output.weight; token_embd then counts as the output
// in the _M mixes) and rope_freqs.weight with the Llama-3.1 frequency divisors.
TEST(Synth, TiedOutputAndLlama3RopeFreqs) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    auto o = tiny_options(vocab_path, "Q4_K_M", temp_path("l3.gguf"));
    o.dims.tied_output = true;
    o.dims.llama3_rope_scale = 32.0f;
    o.dims.rope_freq_base = 500000.0f;
    synth_file(o);
    auto f = gguf::File::open(o.out_path);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
    ASSERT_NE(f.find_tensor("token_embd.weight"), nullptr);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, DType::Q6_K);
    EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.rope.freq_base")), 500000.0f);
    const auto* rf = f.find_tensor("rope_freqs.weight");
    ASSERT_NE(rf, nullptr);
    EXPECT_EQ(rf->type, DType::F32);
    ASSERT_EQ(rf->ne[0], 32);  // head_dim / 2
    auto v = tensor_f32(f, *rf);
    EXPECT_FLOAT_EQ(v.front(), 1.0f);   // highest frequency: unscaled
    EXPECT_FLOAT_EQ(v.back(), 32.0f);   // lowest: divided by the factor
    for (size_t i = 1; i < v.size(); ++i) EXPECT_GE(v[i], v[i - 1]);
}

TEST(Synth, VocabularyDecidesNVocab) {
    MINERVA_SHARED_FILE(spm, "vocab/ggml-vocab-llama-spm.gguf");
    SynthOptions o;
    o.dims.n_embd = 64, o.dims.n_layer = 1, o.dims.n_head = 2, o.dims.n_head_kv = 1, o.dims.n_ff = 96;
    o.dims.n_vocab = 1000;  // differs from the file's 32000: the file wins (logged)
    o.type = "F16";
    o.vocab_from = spm;
    o.out_path = temp_path("spm.gguf");
    synth_file(o);
    auto f = gguf::File::open(o.out_path);
    auto v = gguf::File::open(spm);
    EXPECT_EQ(f.get_int("llama.vocab_size"), 32000);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->ne[1], 32000);
    EXPECT_EQ(f.find_tensor("output.weight")->ne[1], 32000);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, DType::F16);
    EXPECT_EQ(f.get_array("tokenizer.ggml.tokens").strings, v.get_array("tokenizer.ggml.tokens").strings);
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
}

TEST(Synth, KnownShapes) {
    auto t = synth_shape("tinyllama-1.1b");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->n_embd, 2048);
    EXPECT_EQ(t->n_layer, 22);
    EXPECT_EQ(t->n_head, 32);
    EXPECT_EQ(t->n_head_kv, 4);
    EXPECT_EQ(t->n_ff, 5632);
    EXPECT_EQ(t->n_vocab, 32000);
    EXPECT_EQ(t->n_ctx, 2048);
    auto l3 = synth_shape("llama3.2-1b");
    ASSERT_TRUE(l3);
    EXPECT_EQ(l3->n_layer, 16);
    EXPECT_EQ(l3->n_head_kv, 8);
    EXPECT_EQ(l3->n_ff, 8192);
    EXPECT_EQ(l3->n_vocab, 128256);
    EXPECT_EQ(l3->rope_freq_base, 500000.0f);
    EXPECT_TRUE(l3->tied_output);
    EXPECT_EQ(l3->n_ctx, 131072);
    auto l7 = synth_shape("llama2-7b");
    ASSERT_TRUE(l7);
    EXPECT_EQ(l7->n_embd, 4096);
    EXPECT_EQ(l7->n_layer, 32);
    EXPECT_EQ(l7->n_head_kv, 32);
    EXPECT_EQ(l7->n_ff, 11008);
    EXPECT_FALSE(synth_shape("gpt-5"));
}

TEST(Synth, ClearErrors) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    auto expect_error = [](const SynthOptions& o, const std::string& needle) {
        try {
            synth_file(o);
            ADD_FAILURE() << "no error for " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    auto o = tiny_options(vocab_path, "Q4_K_M", temp_path("err.gguf"));
    auto bad = o;
    bad.type = "Q9_9";
    expect_error(bad, "unknown type");
    bad = o;
    bad.shape = "llama-99b";
    expect_error(bad, "unknown shape");
    bad = o;
    bad.dims.n_head = 3;
    expect_error(bad, "not a multiple of n_head");
    bad = o;
    bad.dims.n_head_kv = 3;
    expect_error(bad, "n_head_kv");
    bad = o;
    bad.dims.n_layer = 0;
    expect_error(bad, "n_layer");
    bad = o;
    bad.vocab_from = temp_path("does-not-exist.gguf");
    expect_error(bad, "cannot open");
    // A GGUF without a vocabulary.
    auto nov = o;
    nov.vocab_from = "";
    nov.dims.n_vocab = 32;
    nov.out_path = temp_path("novocab.gguf");
    synth_file(nov);
    bad = o;
    bad.vocab_from = nov.out_path;
    expect_error(bad, "tokenizer.ggml.tokens");
    EXPECT_FALSE(fs::exists(o.out_path));
    EXPECT_FALSE(fs::exists(o.out_path + ".tmp"));
}

TEST(Quantize, ClearErrors) {
    MINERVA_SHARED_FILE(src, "models/tiny-k-f32.gguf");
    EXPECT_THROW(quantize_file(src, temp_path("x.gguf"), "Q7_0"), Error);
    EXPECT_THROW(quantize_file(src, temp_path("x.gguf"), "IQ2_XXS"), Error);
    EXPECT_THROW(quantize_file(src, src, "Q8_0"), Error);
    EXPECT_THROW(quantize_file(temp_path("missing.gguf"), temp_path("x.gguf"), "Q8_0"), Error);
    EXPECT_FALSE(fs::exists(temp_path("x.gguf")));
}

// The shared tiny-k model (made by llama.cpp from f32 weights): quantized to Q8_0, every
// tensor dequantizes close to its original; Q4_K_M gives exactly llama.cpp's type per tensor.
TEST(Quantize, SharedModelTensorByTensor) {
    MINERVA_SHARED_FILE(src, "models/tiny-k-f32.gguf");
    auto in = gguf::File::open(src);
    const std::string out_path = temp_path("tiny-k-Q8_0.gguf");
    quantize_file(src, out_path, "Q8_0", 2);
    auto out = gguf::File::open(out_path);
    EXPECT_EQ(out.get_int("general.file_type"), 7);
    EXPECT_EQ(out.get_array("tokenizer.ggml.tokens").strings, in.get_array("tokenizer.ggml.tokens").strings);
    EXPECT_EQ(out.get_int("llama.block_count"), in.get_int("llama.block_count"));
    ASSERT_EQ(out.tensors().size(), in.tensors().size());
    double worst = 0;
    for (const auto& t : in.tensors()) {
        const auto* o = out.find_tensor(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(o->n_dims, t.n_dims);
        for (int d = 0; d < 4; ++d) EXPECT_EQ(o->ne[d], t.ne[d]) << t.name;
        auto x = tensor_f32(in, t), y = tensor_f32(out, *o);
        if (t.n_dims == 1) {
            EXPECT_EQ(o->type, DType::F32) << t.name;
            EXPECT_EQ(x, y) << t.name;
            continue;
        }
        EXPECT_EQ(o->type, DType::Q8_0) << t.name;
        double e = rel_rms(x, y);
        worst = std::max(worst, e);
        EXPECT_LT(e, 0.006) << t.name;
        // Element-wise: within half a quantization step of each block's scale (amax/127).
        for (size_t b = 0; b < x.size(); b += 32) {
            float amax = 0;
            for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
            for (size_t i = b; i < b + 32; ++i) ASSERT_LE(std::fabs(y[i] - x[i]), amax / 127 * 0.51f + 1e-6f) << t.name << " " << i;
        }
    }
    std::printf("  tiny-k-f32 -> Q8_0: worst tensor relative RMS error %.4f%%\n", 100 * worst);

    MINERVA_SHARED_FILE(llama_qkm, "models/tiny-k-Q4_K_M.gguf");
    auto ref = gguf::File::open(llama_qkm);
    const std::string qkm_path = temp_path("tiny-k-Q4_K_M.gguf");
    quantize_file(src, qkm_path, "Q4_K_M", 2);
    auto qkm = gguf::File::open(qkm_path);
    EXPECT_EQ(qkm.get_int("general.file_type"), ref.get_int("general.file_type"));
    for (const auto& t : ref.tensors()) {
        const auto* o = qkm.find_tensor(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(o->type, t.type) << t.name << ": llama.cpp chose " << dtype_name(t.type);
    }

    // Re-quantizing an already-quantized file works (with a log line) and stays close.
    MINERVA_SHARED_FILE(q8, "models/tiny-k-Q8_0.gguf");
    const std::string rq_path = temp_path("tiny-k-rq-Q4_0.gguf");
    quantize_file(q8, rq_path, "Q4_0", 2);
    auto rq = gguf::File::open(rq_path);
    const auto* t = in.find_tensor("blk.0.ffn_up.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(rq.find_tensor(t->name)->type, DType::Q4_0);
    EXPECT_LT(rel_rms(tensor_f32(in, *t), tensor_f32(rq, *rq.find_tensor(t->name))), 0.0948 * 1.1);
    fs::remove(out_path);
    fs::remove(qkm_path);
    fs::remove(rq_path);
}

}  // namespace
