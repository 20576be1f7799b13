// tests/test_model_load.cpp: Model::load on good files (hyperparameters read right, weights used
// in place) and on files altered one defect at a time, each of which must be an Error naming the
// tensor or key at fault. The altered files are stories260K-f32 rewritten by gguf::Writer.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include "common.h"
#include "gguf/gguf_writer.h"
#include "minerva/minerva.h"

using namespace minerva;
namespace fs = std::filesystem;

namespace {

struct Edit {
    std::map<std::string, std::optional<gguf::Value>> meta;  // key -> new value (nullopt: drop)
    std::string drop_tensor;
    std::string reshape_tensor;  // swaps ne[0] and ne[1] (or halves ne[0] of a vector)
    std::string retype_tensor;   // stored as I32 instead of its type (same bytes per element as F32)
};

// Copies src to dst with the edit applied.
void rewrite(const std::string& src, const std::string& dst, const Edit& e) {
    gguf::File f = gguf::File::open(src);
    gguf::Writer w(dst);
    for (const auto& [k, v] : f.metadata()) {
        auto it = e.meta.find(k);
        if (it == e.meta.end()) w.add_value(k, v);
        else if (it->second) w.add_value(k, *it->second);
    }
    for (const auto& [k, v] : e.meta)
        if (v && !f.has(k)) w.add_value(k, *v);
    std::vector<const gguf::TensorInfo*> kept;
    for (const auto& t : f.tensors()) {
        if (t.name == e.drop_tensor) continue;
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        DType type = t.type;
        if (t.name == e.reshape_tensor) {
            if (ne.size() >= 2) std::swap(ne[0], ne[1]);
            else ne[0] /= 2;
        }
        if (t.name == e.retype_tensor) type = DType::I32;
        w.add_tensor(t.name, type, ne);
        kept.push_back(&t);
    }
    w.begin_data();
    for (const gguf::TensorInfo* t : kept) {
        size_t n = t->nbytes;
        if (t->name == e.reshape_tensor && t->n_dims == 1) n /= 2;
        w.write_data(f.tensor_data(*t), n);
    }
    w.finish();
}

Edit drop(std::string t) { Edit e; e.drop_tensor = std::move(t); return e; }
Edit reshape(std::string t) { Edit e; e.reshape_tensor = std::move(t); return e; }
Edit retype(std::string t) { Edit e; e.retype_tensor = std::move(t); return e; }
Edit meta(const std::string& key, std::optional<gguf::Value> v) { Edit e; e.meta[key] = std::move(v); return e; }

gguf::Value u32(uint64_t v) {
    gguf::Value x;
    x.type = gguf::ValueType::UINT32;
    x.data = v;
    return x;
}
gguf::Value str(std::string_view s) {
    gguf::Value x;
    x.type = gguf::ValueType::STRING;
    x.data = s;
    return x;
}

class ModelLoad : public testing::Test {
protected:
    void SetUp() override {
        src_ = test::shared_file("models/stories260K-f32.gguf");
        if (src_.empty()) {
            if (test::require_shared()) GTEST_FAIL() << "missing stories260K-f32";
            GTEST_SKIP() << "shared data not available (set MINERVA_SHARED)";
        }
        dir_ = fs::temp_directory_path() / ("minerva_model_load_" + std::to_string(::getpid()));
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }
    // Loading the edited file throws an Error whose message contains every one of `words`.
    void expect_error(const Edit& e, std::initializer_list<std::string> words, const std::string& model = "") {
        const std::string path = (dir_ / ("m" + std::to_string(n_++) + ".gguf")).string();
        rewrite(model.empty() ? src_ : shared(model), path, e);
        ModelOptions mo;
        mo.device = "cpu";
        try {
            Model::load(path, mo);
            ADD_FAILURE() << "loaded without error; expected one mentioning " << *words.begin();
        } catch (const Error& err) {
            const std::string msg = err.what();
            for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "message: " << msg;
        }
    }
    // A shared model by name; fails (or skips without the data) when missing.
    std::string shared(const std::string& name) {
        std::string p = test::shared_file("models/" + name + ".gguf");
        if (p.empty()) ADD_FAILURE() << "missing shared model " << name;
        return p;
    }
    std::shared_ptr<Model> load_edited(const std::string& model, const Edit& e) {
        const std::string path = (dir_ / ("m" + std::to_string(n_++) + ".gguf")).string();
        rewrite(shared(model), path, e);
        ModelOptions mo;
        mo.device = "cpu";
        return Model::load(path, mo);
    }
    std::string src_;
    fs::path dir_;
    int n_ = 0;
};

TEST_F(ModelLoad, ReadsTheHyperparameters) {
    ModelOptions mo;
    mo.device = "cpu";
    auto m = Model::load(src_, mo);
    const ModelInfo& h = m->info();
    EXPECT_EQ(h.arch, "llama");
    EXPECT_EQ(h.n_vocab, 512);
    EXPECT_EQ(h.n_embd, 64);
    EXPECT_EQ(h.n_layer, 5);
    EXPECT_EQ(h.n_head, 8);
    EXPECT_EQ(h.n_head_kv, 4);
    EXPECT_EQ(h.head_dim, 8);
    EXPECT_EQ(h.n_rot, 8);
    EXPECT_EQ(h.weight_type, DType::F32);
    EXPECT_GT(h.n_params, 200000u);
    EXPECT_EQ(m->vocab()->n_tokens(), 512);
    // A rewritten copy (same content) loads and computes the same logits.
    const std::string copy = (dir_ / "copy.gguf").string();
    rewrite(src_, copy, Edit{});
    auto m2 = Model::load(copy, mo);
    Session a(m, {}), b(m2, {});
    const std::vector<int32_t> toks = {1, 403, 407, 261};
    auto la = a.eval(toks);
    auto lb = b.eval(toks);
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); ++i) ASSERT_EQ(la[i], lb[i]);
}

TEST_F(ModelLoad, TiedAndRopeFreqsFiles) {
    MINERVA_SHARED_FILE(k3, "models/tiny-k3-Q8_0.gguf");
    ModelOptions mo;
    mo.device = "cpu";
    auto m = Model::load(k3, mo);
    EXPECT_TRUE(m->info().tied_output);
    EXPECT_TRUE(m->info().has_rope_freqs);
    EXPECT_EQ(m->info().n_head_kv, 1);
    EXPECT_FLOAT_EQ(m->info().rope_freq_base, 500000.f);
}

TEST_F(ModelLoad, DefectsAreErrorsNamingTheCulprit) {
    expect_error(drop("blk.2.ffn_up.weight"), {"blk.2.ffn_up.weight", "missing"});
    expect_error(drop("output_norm.weight"), {"output_norm.weight"});
    expect_error(drop("token_embd.weight"), {"token_embd.weight"});
    expect_error(reshape("blk.0.attn_k.weight"), {"blk.0.attn_k.weight", "shape"});
    expect_error(reshape("blk.4.attn_norm.weight"), {"blk.4.attn_norm.weight", "shape"});
    expect_error(retype("blk.1.attn_q.weight"), {"blk.1.attn_q.weight", "I32"});
    expect_error(retype("blk.1.ffn_norm.weight"), {"blk.1.ffn_norm.weight", "I32"});
    expect_error(meta("general.architecture", str("gpt2")), {"gpt2", "general.architecture"});
    expect_error(meta("llama.embedding_length", std::nullopt), {"llama.embedding_length"});
    expect_error(meta("llama.embedding_length", u32(96)), {"shape"});
    expect_error(meta("llama.block_count", u32(4)), {"blk.4", "block_count"});
    expect_error(meta("llama.block_count", u32(6)), {"blk.5", "missing"});
    expect_error(meta("llama.attention.head_count_kv", u32(3)), {"head_count_kv"});
    expect_error(meta("llama.attention.head_count", u32(7)), {"head_count"});
    expect_error(meta("llama.rope.dimension_count", u32(16)), {"rope.dimension_count"});
    expect_error(meta("llama.feed_forward_length", u32(0)), {"feed_forward_length"});
    expect_error(meta("llama.vocab_size", u32(500)), {"500"});
    expect_error(meta("llama.rope.scaling.type", str("yarn")), {"yarn"});
}

TEST_F(ModelLoad, FamilyHyperparameters) {
    ModelOptions mo;
    mo.device = "cpu";
    auto g2 = Model::load(shared("arch-gemma2-F16"), mo)->info();
    EXPECT_EQ(g2.arch, "gemma2");
    EXPECT_EQ(g2.n_swa, 16);
    EXPECT_EQ(g2.n_swa_layers, 2);  // pattern 2: layers 0 and 2 of 4
    EXPECT_FLOAT_EQ(g2.attn_softcap, 5.f);
    EXPECT_FLOAT_EQ(g2.final_softcap, 30.f);
    EXPECT_TRUE(g2.tied_output);
    auto g3 = Model::load(shared("arch-gemma3-F16"), mo)->info();
    EXPECT_EQ(g3.n_swa_layers, 5);  // pattern 6: every sixth layer is global
    EXPECT_EQ(g3.head_dim, 128);
    EXPECT_FLOAT_EQ(g3.final_softcap, 0.f);
    EXPECT_FLOAT_EQ(g3.rope_freq_scale, 1.f / 8);
    auto moe = Model::load(shared("arch-qwen3moe-Q4_0"), mo)->info();
    EXPECT_EQ(moe.n_expert, 8);
    EXPECT_EQ(moe.n_expert_used, 2);
    EXPECT_EQ(moe.n_ff_exp, 256);
    auto mix = Model::load(shared("arch-llama-moe-Q4_K_M"), mo)->info();
    EXPECT_EQ(mix.arch, "llama");
    EXPECT_EQ(mix.n_expert, 8);
    EXPECT_EQ(mix.n_ff_exp, 256);  // Mixtral: the expert size is feed_forward_length
    auto phi = Model::load(shared("arch-phi3-Q8_0"), mo)->info();
    EXPECT_EQ(phi.n_expert, 0);
    EXPECT_FALSE(phi.tied_output);
    // A u32 sliding_window_pattern overrides the family's default: 4 makes layers 0-2 local.
    auto g2p = load_edited("arch-gemma2-F16", meta("gemma2.attention.sliding_window_pattern", u32(4)))->info();
    EXPECT_EQ(g2p.n_swa_layers, 3);
    // Without the window key Gemma 3 has no local layers; Gemma 2 falls back to 4096.
    EXPECT_EQ(load_edited("arch-gemma3-F16", meta("gemma3.attention.sliding_window", std::nullopt))->info().n_swa_layers, 0);
    EXPECT_EQ(load_edited("arch-gemma2-F16", meta("gemma2.attention.sliding_window", std::nullopt))->info().n_swa, 4096);
}

TEST_F(ModelLoad, FamilyDefectsAreErrorsNamingTheCulprit) {
    // An unknown architecture names itself and the supported ones.
    expect_error(meta("general.architecture", str("mamba")), {"mamba", "llama", "qwen2", "qwen3moe", "gemma3", "phi3"});
    expect_error(drop("blk.0.attn_q.bias"), {"blk.0.attn_q.bias", "missing"}, "arch-qwen2-Q4_K_M");
    expect_error(drop("blk.1.attn_q_norm.weight"), {"blk.1.attn_q_norm.weight", "missing"}, "arch-gemma3-F16");
    expect_error(drop("blk.2.post_ffw_norm.weight"), {"blk.2.post_ffw_norm.weight"}, "arch-gemma2-F16");
    expect_error(reshape("blk.0.attn_qkv.weight"), {"blk.0.attn_qkv.weight", "shape"}, "arch-phi3-Q8_0");
    expect_error(reshape("blk.1.ffn_up.weight"), {"blk.1.ffn_up.weight", "shape"}, "arch-phi3-Q8_0");
    expect_error(meta("qwen3moe.expert_count", std::nullopt), {"qwen3moe.expert_count"}, "arch-qwen3moe-Q4_0");
    expect_error(meta("llama.expert_used_count", u32(9)), {"expert_used_count"}, "arch-llama-moe-Q4_K_M");
    expect_error(drop("blk.1.ffn_gate_inp.weight"), {"blk.1.ffn_gate_inp.weight"}, "arch-llama-moe-Q4_K_M");
    expect_error(meta("qwen2.expert_count", u32(4)), {"expert_count", "qwen2"}, "arch-qwen2-Q4_K_M");
    expect_error(meta("gemma2.attention.sliding_window_pattern", u32(0)), {"sliding_window_pattern"}, "arch-gemma2-F16");
}

}  // namespace
