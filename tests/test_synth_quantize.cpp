// minerva synth + quantize: files made, read back, checked for shapes, types, metadata and
// values; the shared tiny-k model quantized and compared tensor by tensor with its original.
#include <gtest/gtest.h>

#include <algorithm>
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
#include "minerva/model.h"
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

// synth_file(o) must throw an Error whose message holds every needle, and leave no output file.
void expect_synth_error(const SynthOptions& o, const std::vector<std::string>& needles) {
    try {
        synth_file(o);
        ADD_FAILURE() << "no error for " << needles[0];
    } catch (const Error& e) {
        for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(o.out_path)) << needles[0];
}

// The same for base changed by edit.
template <class Edit>
void expect_synth_error(const SynthOptions& base, Edit edit, const std::vector<std::string>& needles) {
    SynthOptions o = base;
    edit(o);
    expect_synth_error(o, needles);
}

// What synth_shape(name) must hold (head_dim 0: n_embd / n_head).
struct ShapeWant {
    const char* name;
    const char* arch;
    int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_expert, n_expert_used, n_ff_exp;
    bool tied;
};

void check_shape(const ShapeWant& w) {
    auto s = synth_shape(w.name);
    ASSERT_TRUE(s) << w.name;
    EXPECT_EQ(s->arch, w.arch) << w.name;
    EXPECT_EQ(s->n_embd, w.n_embd) << w.name;
    EXPECT_EQ(s->n_layer, w.n_layer) << w.name;
    EXPECT_EQ(s->n_head, w.n_head) << w.name;
    EXPECT_EQ(s->n_head_kv, w.n_head_kv) << w.name;
    EXPECT_EQ(s->head_dim, w.head_dim) << w.name;
    EXPECT_EQ(s->n_ff, w.n_ff) << w.name;
    EXPECT_EQ(s->n_vocab, w.n_vocab) << w.name;
    EXPECT_EQ(s->n_expert, w.n_expert) << w.name;
    EXPECT_EQ(s->n_expert_used, w.n_expert_used) << w.name;
    EXPECT_EQ(s->n_ff_exp, w.n_ff_exp) << w.name;
    EXPECT_EQ(s->tied_output, w.tied) << w.name;
    const auto names = synth_shape_names();
    EXPECT_NE(std::find(names.begin(), names.end(), w.name), names.end()) << w.name;
}

// The LLaMA shapes (the other families: FamilyShapesHaveTheRealHyperparameters).
TEST(Synth, KnownShapes) {
    const ShapeWant wants[] = {
        {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 0, 5632, 32000, 0, 0, 0, false},
        {"llama3.2-1b", "llama", 2048, 16, 32, 8, 0, 8192, 128256, 0, 0, 0, true},
        {"llama2-7b", "llama", 4096, 32, 32, 32, 0, 11008, 32000, 0, 0, 0, false},
    };
    for (const auto& w : wants) check_shape(w);
    auto t = synth_shape("tinyllama-1.1b");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->n_ctx, 2048);
    auto l3 = synth_shape("llama3.2-1b");
    ASSERT_TRUE(l3);
    EXPECT_EQ(l3->rope_freq_base, 500000.0f);
    EXPECT_EQ(l3->n_ctx, 131072);
    EXPECT_FALSE(synth_shape("gpt-5"));
}

TEST(Synth, ClearErrors) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    auto o = tiny_options(vocab_path, "Q4_K_M", temp_path("err.gguf"));
    expect_synth_error(o, [](SynthOptions& b) { b.type = "Q9_9"; }, {"unknown type"});
    expect_synth_error(o, [](SynthOptions& b) { b.shape = "llama-99b"; }, {"unknown shape"});
    expect_synth_error(o, [](SynthOptions& b) { b.dims.n_head = 3; }, {"not a multiple of n_head"});
    expect_synth_error(o, [](SynthOptions& b) { b.dims.n_head_kv = 3; }, {"n_head_kv"});
    expect_synth_error(o, [](SynthOptions& b) { b.dims.n_layer = 0; }, {"n_layer"});
    expect_synth_error(o, [](SynthOptions& b) { b.vocab_from = temp_path("does-not-exist.gguf"); }, {"cannot open"});
    // A GGUF without a vocabulary.
    auto nov = o;
    nov.vocab_from = "";
    nov.dims.n_vocab = 32;
    nov.out_path = temp_path("novocab.gguf");
    synth_file(nov);
    expect_synth_error(o, [&](SynthOptions& b) { b.vocab_from = nov.out_path; }, {"tokenizer.ggml.tokens"});
    EXPECT_FALSE(fs::exists(o.out_path));
    EXPECT_FALSE(fs::exists(o.out_path + ".tmp"));
}

// ---- the other families -----------------------------------------------------------------

// A tiny model of one family, as architectures.md lays it out: n_embd 128, 2 layers (so layer 1
// shows the Q4_K_M promotions: 1 >= 7n/8), 4 heads / 2 kv heads, the vocabulary of stories260K.
struct FamilyCase {
    std::string arch;
    int64_t head_dim = 0;  // 0: n_embd / n_head
    int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;
    bool tied = false;
};

SynthOptions family_options(const std::string& vocab, const FamilyCase& c, const std::string& type) {
    SynthOptions o;
    o.dims.arch = c.arch;
    o.dims.n_embd = 128, o.dims.n_layer = 2, o.dims.n_head = 4, o.dims.n_head_kv = 2, o.dims.n_ff = 256;
    o.dims.head_dim = c.head_dim;
    o.dims.n_expert = c.n_expert, o.dims.n_expert_used = c.n_expert_used, o.dims.n_ff_exp = c.n_ff_exp;
    o.dims.tied_output = c.tied;
    if (c.arch == "gemma2" || c.arch == "gemma3") {
        o.dims.n_swa = 16;
        o.dims.rope_freq_base_swa = 10000.0f;
        o.dims.rope_freq_base = 1e6f;
    }
    if (c.arch == "gemma2") o.dims.attn_softcap = 50.0f, o.dims.final_softcap = 30.0f;
    if (c.arch == "gemma3") o.dims.rope_scale_linear = 8.0f;
    o.type = type;
    o.vocab_from = vocab;
    o.seed = 7;
    o.n_threads = 2;
    o.out_path = temp_path("family-" + c.arch + (c.n_expert ? "-moe" : "") + "-" + type + ".gguf");
    return o;
}

// The tensors architectures.md lists for a family (written out here, independently of synth).
std::map<std::string, std::vector<int64_t>> family_tensors(const FamilyCase& c) {
    const int64_t E = 128, F = 256, V = 512, hd = c.head_dim ? c.head_dim : 32, Q = 4 * hd, KV = 2 * hd;
    const int64_t FE = c.n_ff_exp ? c.n_ff_exp : F, X = c.n_expert;
    std::map<std::string, std::vector<int64_t>> t = {{"token_embd.weight", {E, V}}, {"output_norm.weight", {E}}};
    if (!c.tied) t["output.weight"] = {E, V};
    const bool gemma = c.arch == "gemma2" || c.arch == "gemma3";
    for (int l = 0; l < 2; ++l) {
        std::string p = "blk." + std::to_string(l) + ".";
        t[p + "attn_norm.weight"] = {E};
        t[p + "ffn_norm.weight"] = {E};
        t[p + "attn_output.weight"] = {Q, E};
        if (c.arch == "phi3") {
            t[p + "attn_qkv.weight"] = {E, Q + 2 * KV};
            t[p + "ffn_up.weight"] = {E, 2 * F};
            t[p + "ffn_down.weight"] = {F, E};
            continue;
        }
        t[p + "attn_q.weight"] = {E, Q};
        t[p + "attn_k.weight"] = {E, KV};
        t[p + "attn_v.weight"] = {E, KV};
        if (c.arch == "qwen2") t[p + "attn_q.bias"] = {Q}, t[p + "attn_k.bias"] = {KV}, t[p + "attn_v.bias"] = {KV};
        if (c.arch == "qwen3" || c.arch == "qwen3moe" || c.arch == "gemma3")
            t[p + "attn_q_norm.weight"] = {hd}, t[p + "attn_k_norm.weight"] = {hd};
        if (gemma) t[p + "post_attention_norm.weight"] = {E}, t[p + "post_ffw_norm.weight"] = {E};
        if (X > 0) {
            t[p + "ffn_gate_inp.weight"] = {E, X};
            t[p + "ffn_gate_exps.weight"] = {E, FE, X};
            t[p + "ffn_up_exps.weight"] = {E, FE, X};
            t[p + "ffn_down_exps.weight"] = {FE, E, X};
        } else {
            t[p + "ffn_gate.weight"] = {E, F};
            t[p + "ffn_up.weight"] = {E, F};
            t[p + "ffn_down.weight"] = {F, E};
        }
    }
    return t;
}

class SynthFamily : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(SynthFamily, TensorsKeysAndTypes) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    const FamilyCase c = GetParam();
    for (const std::string type : {"F32", "Q4_K_M"}) {
        auto o = family_options(vocab_path, c, type);
        synth_file(o);
        auto f = gguf::File::open(o.out_path);
        const std::string k = c.arch + ".";
        EXPECT_EQ(f.get_string("general.architecture"), c.arch);
        EXPECT_EQ(f.get_int(k + "embedding_length"), 128);
        EXPECT_EQ(f.get_int(k + "block_count"), 2);
        EXPECT_EQ(f.get_int(k + "attention.head_count"), 4);
        EXPECT_EQ(f.get_int(k + "attention.head_count_kv"), 2);
        EXPECT_EQ(f.get_int(k + "context_length"), 2048);
        EXPECT_EQ(f.get_int(k + "vocab_size"), 512);
        const int64_t hd = c.head_dim ? c.head_dim : 32;
        EXPECT_EQ(f.get_int(k + "rope.dimension_count"), hd);
        if (c.head_dim) {
            EXPECT_EQ(f.get_int(k + "attention.key_length"), hd);
            EXPECT_EQ(f.get_int(k + "attention.value_length"), hd);
        }
        // llama MoE: feed_forward_length is the expert width; qwen3moe has its own key.
        if (c.n_expert > 0) {
            EXPECT_EQ(f.get_int(k + "expert_count"), c.n_expert);
            EXPECT_EQ(f.get_int(k + "expert_used_count"), c.n_expert_used);
            if (c.arch == "llama") {
                EXPECT_EQ(f.get_int(k + "feed_forward_length"), c.n_ff_exp ? c.n_ff_exp : 256);
                EXPECT_EQ(f.find(k + "expert_feed_forward_length"), nullptr);
            } else {
                EXPECT_EQ(f.get_int(k + "expert_feed_forward_length"), c.n_ff_exp);
            }
        } else {
            EXPECT_EQ(f.get_int(k + "feed_forward_length"), 256);
            EXPECT_EQ(f.find(k + "expert_count"), nullptr);
        }
        if (c.arch == "gemma2" || c.arch == "gemma3") {
            EXPECT_EQ(f.get_int(k + "attention.sliding_window"), 16);
            EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(k + "rope.freq_base_swa")), 10000.0f);
            EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(k + "rope.freq_base")), 1e6f);
        }
        if (c.arch == "gemma2") {
            EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(k + "attn_logit_softcapping")), 50.0f);
            EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(k + "final_logit_softcapping")), 30.0f);
        }
        if (c.arch == "gemma3") {
            EXPECT_EQ(f.get_string(k + "rope.scaling.type"), "linear");
            EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(k + "rope.scaling.factor")), 8.0f);
            EXPECT_EQ(f.find(k + "final_logit_softcapping"), nullptr);
        }
        if (c.arch == "phi3") {
            EXPECT_EQ(f.get_int(k + "rope.scaling.original_context_length"), 2048);
        }
        EXPECT_EQ(f.get_array("tokenizer.ggml.tokens").size(), 512u);

        const auto want = family_tensors(c);
        ASSERT_EQ(f.tensors().size(), want.size()) << c.arch << " " << type;
        for (const auto& t : f.tensors()) {
            auto it = want.find(t.name);
            ASSERT_NE(it, want.end()) << c.arch << ": unexpected tensor " << t.name;
            ASSERT_EQ(t.n_dims, it->second.size()) << t.name;
            for (size_t d = 0; d < it->second.size(); ++d) EXPECT_EQ(t.ne[d], it->second[d]) << t.name;
            const bool is_f32 = t.n_dims == 1 || t.name.find("ffn_gate_inp") != std::string::npos;
            if (type == "F32" || is_f32) {
                EXPECT_EQ(t.type, DType::F32) << type << " " << t.name;
            } else {
                // Q4_K_M: rows of 128 do not fit the 256-element K blocks: Q4_K -> Q5_0, Q6_K -> Q8_0,
                // Q5_K (a fused qkv) -> Q5_1; rows of 256 keep the K type. Layer 1 of 2 is promoted.
                const bool promoted = t.name == "blk.1.attn_v.weight" || t.name.find("blk.1.ffn_down") == 0 ||
                                      (t.name == "token_embd.weight" && c.tied) || t.name == "output.weight";
                DType want_t = promoted ? DType::Q6_K : t.name.find("attn_qkv") != std::string::npos ? DType::Q5_K : DType::Q4_K;
                if (t.ne[0] % 256 != 0)
                    want_t = want_t == DType::Q6_K ? DType::Q8_0 : want_t == DType::Q5_K ? DType::Q5_1 : DType::Q5_0;
                EXPECT_EQ(t.type, want_t) << t.name << ": " << dtype_name(t.type);
            }
            auto x = tensor_f32(f, t);
            const bool ones = t.name.find("norm.weight") != std::string::npos;
            if (ones) {
                for (float v : x) ASSERT_EQ(v, 1.0f) << t.name;
            } else if (type == "F32") {
                // Weights, biases and the router are N(0, 0.02^2), every expert slice included.
                const int64_t slice = t.n_elements() / (t.n_dims == 3 ? t.ne[2] : 1);
                for (int64_t e = 0; e < t.n_elements(); e += slice) {
                    double s2 = 0;
                    for (int64_t i = e; i < e + slice; ++i) s2 += double(x[i]) * x[i];
                    EXPECT_NEAR(std::sqrt(s2 / slice), 0.02, 0.02 * (slice >= 4096 ? 0.05 : 0.25)) << t.name << " @" << e;
                }
            }
        }
        fs::remove(o.out_path);
    }
}

// Once loaded, every synthesized family runs: a prompt longer than the sliding window,
// evaluated in one batch, gives the same logits as the same tokens one at a time (prefill and
// decode paths agree, windows included), the logits are finite and not all equal, and greedy
// generation continues it. Random weights: the numbers mean nothing, their agreement does.
TEST_P(SynthFamily, LoadsAndRuns) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    const FamilyCase c = GetParam();
    // F32 weights: batch and decode then differ by summation order only (quantized weights add
    // the 8-bit re-quantization of activations, see test_session).
    auto o = family_options(vocab_path, c, "F32");
    o.weight_std = 0.05f;
    synth_file(o);
    ModelOptions mo;
    mo.device = "cpu";
    mo.n_threads = 2;
    auto model = Model::load(o.out_path, mo);
    EXPECT_EQ(model->info().arch, c.arch);
    EXPECT_EQ(model->info().n_layer, 2);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 40; ++i) prompt.push_back(3 + (i * 37) % 500);  // 40 > the window of 16
    const int n_vocab = model->info().n_vocab;
    ASSERT_EQ(n_vocab, 512);

    Session batch(model, {.n_ctx = 64, .kv_type_k = KvType::F32, .kv_type_v = KvType::F32});
    batch.eval(prompt, 0, true);
    auto all = batch.logits();
    ASSERT_EQ(all.size(), prompt.size() * n_vocab);
    std::vector<float> batched(all.begin(), all.end());

    Session step(model, {.n_ctx = 64, .kv_type_k = KvType::F32, .kv_type_v = KvType::F32});
    double worst = 0;
    for (size_t t = 0; t < prompt.size(); ++t) {
        auto l = step.eval(std::span<const int32_t>(&prompt[t], 1));
        ASSERT_EQ(l.size(), static_cast<size_t>(n_vocab));
        double e2 = 0, x2 = 0;
        float lo = l[0], hi = l[0];
        for (int v = 0; v < n_vocab; ++v) {
            const float x = batched[t * n_vocab + v];
            ASSERT_TRUE(std::isfinite(l[v])) << c.arch << " token " << t;
            e2 += (double(l[v]) - x) * (double(l[v]) - x);
            x2 += double(x) * x;
            lo = std::min(lo, l[v]), hi = std::max(hi, l[v]);
        }
        EXPECT_GT(hi - lo, 0.0f) << c.arch << " token " << t << ": all logits equal";
        worst = std::max(worst, std::sqrt(e2 / std::max(x2, 1e-30)));
    }
    EXPECT_LT(worst, 2e-4) << c.arch << ": batched and one-at-a-time logits differ";

    GenerateParams gp;
    gp.max_tokens = 4;
    gp.ignore_eos = true;
    gp.sampling.temperature = 0;
    Session gen(model, {.n_ctx = 64});
    auto r = generate(gen, prompt, gp);
    EXPECT_EQ(r.tokens.size(), 4u) << c.arch;
    for (int32_t id : r.tokens) EXPECT_TRUE(id >= 0 && id < n_vocab);
    fs::remove(o.out_path);
}

INSTANTIATE_TEST_SUITE_P(Families, SynthFamily,
                         ::testing::Values(FamilyCase{"llama"}, FamilyCase{"qwen2"}, FamilyCase{"qwen3", 64},
                                           FamilyCase{"qwen3moe", 64, 8, 2, 128, true}, FamilyCase{"llama", 0, 4, 2},
                                           FamilyCase{"gemma2", 64, 0, 0, 0, true}, FamilyCase{"gemma3", 64},
                                           FamilyCase{"phi3"}),
                         [](const auto& info) {
                             return info.param.arch + (info.param.arch == "llama" && info.param.n_expert ? "_moe" : "");
                         });

TEST(Synth, FamilyShapesHaveTheRealHyperparameters) {
    const ShapeWant wants[] = {
        {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 0, 4864, 151936, 0, 0, 0, true},
        {"qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936, 0, 0, 0, true},
        {"qwen3-30b-a3b", "qwen3moe", 2048, 48, 32, 4, 128, 6144, 151936, 128, 8, 768, false},
        {"olmoe-1b-7b", "qwen3moe", 2048, 16, 16, 16, 0, 1024, 50304, 64, 8, 1024, false},
        {"mixtral-8x7b", "llama", 4096, 32, 32, 8, 0, 14336, 32000, 8, 2, 0, false},
        {"gemma2-2b", "gemma2", 2304, 26, 8, 4, 256, 9216, 256000, 0, 0, 0, true},
        {"gemma3-1b", "gemma3", 1152, 26, 4, 1, 256, 6912, 262144, 0, 0, 0, true},
        {"phi3-mini", "phi3", 3072, 32, 32, 32, 0, 8192, 32064, 0, 0, 0, false},
    };
    for (const auto& w : wants) check_shape(w);
    auto g3 = synth_shape("gemma3-1b");
    EXPECT_EQ(g3->n_swa, 512);
    EXPECT_EQ(g3->rope_freq_base, 1e6f);
    EXPECT_EQ(g3->rope_freq_base_swa, 10000.0f);
    EXPECT_EQ(g3->rms_eps, 1e-6f);
    auto g2 = synth_shape("gemma2-2b");
    EXPECT_EQ(g2->n_swa, 4096);
    EXPECT_EQ(g2->attn_softcap, 50.0f);
    EXPECT_EQ(g2->final_softcap, 30.0f);
    EXPECT_EQ(synth_shape("qwen3-0.6b")->rope_freq_base, 1e6f);
    EXPECT_EQ(synth_shape("qwen2.5-0.5b")->rms_eps, 1e-6f);
    EXPECT_EQ(synth_shape("phi3-mini")->n_swa, 2047);
}

// A shape written as another architecture (olmoe-1b-7b in the Mixtral layout) keeps its sizes.
TEST(Synth, ShapeAsAnotherArchitecture) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    SynthOptions o;
    o.dims.arch = "llama";
    o.dims.n_embd = 64, o.dims.n_layer = 1, o.dims.n_head = 2, o.dims.n_head_kv = 1, o.dims.n_ff = 64;
    o.dims.n_expert = 4, o.dims.n_expert_used = 2, o.dims.n_ff_exp = 32;
    o.arch = "qwen3moe";
    o.type = "F16";
    o.vocab_from = vocab_path;
    o.out_path = temp_path("as-arch.gguf");
    synth_file(o);
    auto f = gguf::File::open(o.out_path);
    EXPECT_EQ(f.get_string("general.architecture"), "qwen3moe");
    EXPECT_EQ(f.get_int("qwen3moe.expert_feed_forward_length"), 32);
    EXPECT_NE(f.find_tensor("blk.0.attn_q_norm.weight"), nullptr);
    EXPECT_EQ(f.find_tensor("blk.0.ffn_down_exps.weight")->ne[2], 4);
    EXPECT_EQ(f.find_tensor("blk.0.ffn_down_exps.weight")->ne[0], 32);
}

TEST(Synth, FamilyErrorsNameTheProblem) {
    MINERVA_SHARED_FILE(vocab_path, "models/stories260K-f32.gguf");
    auto base = family_options(vocab_path, FamilyCase{"qwen3", 64}, "Q8_0");
    expect_synth_error(base, [](SynthOptions& b) { b.arch = "mamba"; },
                       {"unknown architecture 'mamba'", "llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3"});
    expect_synth_error(base, [](SynthOptions& b) { b.arch = "qwen3moe"; }, {"qwen3moe: needs experts"});
    expect_synth_error(base, [](SynthOptions& b) { b.dims.n_expert = 4, b.dims.n_expert_used = 2; },
                       {"qwen3: has no mixture-of-experts layout"});
    expect_synth_error(base, [](SynthOptions& b) { b.arch = "qwen2"; },
                       {"qwen2: head_dim must be n_embd / n_head = 32, got 64"});
    expect_synth_error(base, [](SynthOptions& b) { b.arch = "gemma2"; }, {"gemma2: ties the output"});
    expect_synth_error(family_options(vocab_path, FamilyCase{"qwen3moe", 64, 8, 9, 0, true}, "Q8_0"),
                       {"n_expert_used = 9 must be in 1..n_expert (8)"});
    expect_synth_error(base, [](SynthOptions& b) { b.dims.head_dim = 7; }, {"must be even"});
    expect_synth_error(base, [](SynthOptions& b) { b.dims.llama3_rope_scale = 8.0f; }, {"rope_freqs.weight"});
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
