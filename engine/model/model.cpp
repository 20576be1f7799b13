// engine/model/model.cpp: Model::load for GGUF architecture "llama": hyperparameters from metadata,
// every tensor checked by name, shape and type, weights handed to the backend in their file
// format (the CPU backend uses them in place in the mapping: nothing is expanded to f32).
#include "log/log.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "llama.h"
#include "minerva/error.h"

namespace minerva {

namespace {

std::string shape_str(const int64_t* ne, int n) {
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

}  // namespace

std::shared_ptr<Model> Model::load(const std::string& path, const ModelOptions& opts) {
    gguf::File file = gguf::File::open(path);
    return std::make_shared<LlamaModel>(std::move(file), opts);
}

LlamaModel::LlamaModel(gguf::File file, const ModelOptions& opts) : file_(std::move(file)) {
    read_hparams();
    vocab_ = Vocab::from_gguf(file_);
    if (vocab_->n_tokens() != info_.n_vocab)
        throw Error(file_.path() + ": the vocabulary has " + std::to_string(vocab_->n_tokens()) +
                    " tokens but the model has n_vocab = " + std::to_string(info_.n_vocab));
    chat_template_ = std::string(file_.get_string("tokenizer.chat_template", ""));
    load_weights(opts);
}

LlamaModel::~LlamaModel() = default;

void LlamaModel::read_hparams() {
    const gguf::File& f = file_;
    ModelInfo& h = info_;
    h.path = f.path();
    h.file_size = f.file_size();
    h.arch = std::string(f.get_string("general.architecture"));
    if (h.arch != "llama")
        throw Error(f.path() + ": unsupported architecture '" + h.arch +
                    "' (key general.architecture); Minerva runs GGUF architecture \"llama\"");
    h.name = std::string(f.get_string("general.name", ""));
    if (h.name.empty()) h.name = std::filesystem::path(f.path()).stem().string();

    const std::string a = h.arch + ".";
    auto get_int = [&](const std::string& key, int64_t def, bool required) -> int {
        int64_t v = required ? f.get_int(a + key) : f.get_int(a + key, def);
        if (v <= 0 || v > (int64_t(1) << 30))
            throw Error(f.path() + ": metadata key '" + a + key + "' = " + std::to_string(v) + " is out of range");
        return static_cast<int>(v);
    };
    h.n_ctx_train = get_int("context_length", 0, true);
    h.n_embd = get_int("embedding_length", 0, true);
    h.n_layer = get_int("block_count", 0, true);
    h.n_ff = get_int("feed_forward_length", 0, true);
    h.n_head = get_int("attention.head_count", 0, true);
    h.n_head_kv = get_int("attention.head_count_kv", h.n_head, false);
    if (h.n_embd % h.n_head != 0 && !f.has(a + "attention.key_length"))
        throw Error(f.path() + ": embedding_length " + std::to_string(h.n_embd) + " is not a multiple of " +
                    a + "attention.head_count " + std::to_string(h.n_head));
    h.head_dim = get_int("attention.key_length", h.n_embd / h.n_head, false);
    int v_len = get_int("attention.value_length", h.head_dim, false);
    if (v_len != h.head_dim)
        throw Error(f.path() + ": " + a + "attention.value_length " + std::to_string(v_len) +
                    " differs from attention.key_length " + std::to_string(h.head_dim) + " (unsupported)");
    if (h.n_head % h.n_head_kv != 0)
        throw Error(f.path() + ": " + a + "attention.head_count " + std::to_string(h.n_head) +
                    " is not a multiple of attention.head_count_kv " + std::to_string(h.n_head_kv));
    h.n_rot = get_int("rope.dimension_count", h.head_dim, false);
    if (h.n_rot > h.head_dim || h.n_rot % 2 != 0)
        throw Error(f.path() + ": " + a + "rope.dimension_count " + std::to_string(h.n_rot) +
                    " must be even and at most the head size " + std::to_string(h.head_dim));
    h.rope_freq_base = static_cast<float>(f.get_float(a + "rope.freq_base", 10000.0));
    if (!(h.rope_freq_base > 0) || !std::isfinite(h.rope_freq_base))
        throw Error(f.path() + ": " + a + "rope.freq_base must be a positive number");
    // Linear RoPE scaling: positions are divided by the factor.
    std::string scaling(f.get_string(a + "rope.scaling.type", ""));
    double factor = f.get_float(a + "rope.scaling.factor", 0.0);
    if (factor == 0.0 && f.has(a + "rope.scale_linear")) {
        scaling = "linear";
        factor = f.get_float(a + "rope.scale_linear");
    }
    h.rope_freq_scale = 1.f;
    if ((scaling == "linear" || (scaling.empty() && factor != 0.0)) && factor != 0.0) {
        if (!(factor > 0) || !std::isfinite(factor))
            throw Error(f.path() + ": " + a + "rope.scaling.factor must be a positive number");
        h.rope_freq_scale = static_cast<float>(1.0 / factor);
    } else if (!scaling.empty() && scaling != "none" && scaling != "linear") {
        // "yarn" and the like change more than the positions: refuse rather than run wrongly.
        throw Error(f.path() + ": " + a + "rope.scaling.type '" + scaling + "' is not supported (only linear)");
    }
    h.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
    if (!(h.rms_eps > 0) || !std::isfinite(h.rms_eps))
        throw Error(f.path() + ": " + a + "attention.layer_norm_rms_epsilon must be a positive number");

    if (f.has(a + "vocab_size")) {
        h.n_vocab = get_int("vocab_size", 0, true);
    } else if (f.has("tokenizer.ggml.tokens")) {
        h.n_vocab = static_cast<int>(f.get_array("tokenizer.ggml.tokens").size());
    } else if (const gguf::TensorInfo* t = f.find_tensor("token_embd.weight")) {
        h.n_vocab = static_cast<int>(t->ne[1]);
    }
    if (h.n_vocab <= 0) throw Error(f.path() + ": cannot tell the vocabulary size (no " + a + "vocab_size)");
}

void LlamaModel::load_weights(const ModelOptions& opts) {
    const gguf::File& f = file_;
    ModelInfo& h = info_;

    // The backend: "auto" may be overridden by MINERVA_DEVICE.
    BackendOptions bo;
    bo.device = opts.device;
    if (bo.device == "auto")
        if (const char* env = std::getenv("MINERVA_DEVICE"); env && *env) bo.device = env;
    bo.n_threads = opts.n_threads;
    backend_ = make_backend(bo);

    std::map<DType, uint64_t> bytes_by_type;
    size_t n_uploaded = 0, total_bytes = 0;
    for (const auto& t : f.tensors()) total_bytes += t.nbytes;
    backend_->plan_weights(total_bytes);  // a model too big for the device fails here, before any upload
    size_t done_bytes = 0;
    int last_pct = -1;

    // Finds a tensor, checks its shape and type, and hands it to the backend.
    auto take = [&](const std::string& name, std::initializer_list<int64_t> shape, bool required,
                    bool f32_only) -> std::optional<Tensor> {
        const gguf::TensorInfo* t = f.find_tensor(name);
        if (!t) {
            if (required) throw Error(f.path() + ": missing tensor '" + name + "'");
            return std::nullopt;
        }
        int64_t want[4] = {1, 1, 1, 1};
        int n = 0;
        for (int64_t d : shape) want[n++] = d;
        bool ok = true;
        for (int i = 0; i < 4; ++i) ok = ok && t->ne[i] == want[i];
        if (!ok)
            throw Error(f.path() + ": tensor '" + name + "' has shape " + shape_str(t->ne, static_cast<int>(t->n_dims)) +
                        ", expected " + shape_str(want, n));
        if (f32_only ? t->type != DType::F32 : !dtype_supported_for_compute(t->type))
            throw Error(f.path() + ": tensor '" + name + "' has type " + std::string(dtype_name(t->type)) +
                        (f32_only ? ", expected F32" : ", which Minerva cannot compute with"));
        if (t->ne[0] % dtype_info(t->type).block_elems != 0)
            throw Error(f.path() + ": tensor '" + name + "' row of " + std::to_string(t->ne[0]) +
                        " elements is not a whole number of " + std::string(dtype_name(t->type)) + " blocks");
        Tensor out = backend_->upload_weight(t->type, t->ne, f.tensor_data(*t), name);
        bytes_by_type[t->type] += t->nbytes;
        h.n_params += static_cast<uint64_t>(t->n_elements());
        ++n_uploaded;
        done_bytes += t->nbytes;
        if (opts.progress) {
            int pct = static_cast<int>(1000.0 * static_cast<double>(done_bytes) / static_cast<double>(total_bytes));
            if (pct != last_pct && !opts.progress(static_cast<float>(pct) / 1000.f))
                throw Error(f.path() + ": loading cancelled");
            last_pct = pct;
        }
        return out;
    };

    const int64_t n_embd = h.n_embd, n_vocab = h.n_vocab, n_ff = h.n_ff;
    const int64_t n_q = int64_t(h.n_head) * h.head_dim, n_kv = int64_t(h.n_head_kv) * h.head_dim;
    w_.token_embd = *take("token_embd.weight", {n_embd, n_vocab}, true, false);
    w_.output_norm = *take("output_norm.weight", {n_embd}, true, true);
    if (auto out = take("output.weight", {n_embd, n_vocab}, false, false)) {
        w_.output = *out;
    } else {
        w_.output = w_.token_embd;
        h.tied_output = true;
    }
    if (auto rf = take("rope_freqs.weight", {h.n_rot / 2}, false, true)) {
        w_.rope_freqs = *rf;
        w_.has_rope_freqs = true;
        h.has_rope_freqs = true;
    }
    w_.layers.resize(static_cast<size_t>(h.n_layer));
    for (int il = 0; il < h.n_layer; ++il) {
        LayerWeights& L = w_.layers[static_cast<size_t>(il)];
        const std::string p = "blk." + std::to_string(il) + ".";
        L.attn_norm = *take(p + "attn_norm.weight", {n_embd}, true, true);
        L.wq = *take(p + "attn_q.weight", {n_embd, n_q}, true, false);
        L.wk = *take(p + "attn_k.weight", {n_embd, n_kv}, true, false);
        L.wv = *take(p + "attn_v.weight", {n_embd, n_kv}, true, false);
        L.wo = *take(p + "attn_output.weight", {n_q, n_embd}, true, false);
        L.ffn_norm = *take(p + "ffn_norm.weight", {n_embd}, true, true);
        L.ffn_gate = *take(p + "ffn_gate.weight", {n_embd, n_ff}, true, false);
        L.ffn_up = *take(p + "ffn_up.weight", {n_embd, n_ff}, true, false);
        L.ffn_down = *take(p + "ffn_down.weight", {n_ff, n_embd}, true, false);
    }
    // A block beyond block_count means the file and its metadata disagree.
    if (f.find_tensor("blk." + std::to_string(h.n_layer) + ".attn_q.weight"))
        throw Error(f.path() + ": tensor 'blk." + std::to_string(h.n_layer) + ".attn_q.weight' exists but " + h.arch +
                    ".block_count is " + std::to_string(h.n_layer));

    uint64_t best = 0;
    for (auto& [type, bytes] : bytes_by_type)
        if (bytes > best) best = bytes, h.weight_type = type;
    logging::debug("loaded {}: {} tensors, {} params, {} on {}", h.name, n_uploaded, h.n_params,
                  dtype_name(h.weight_type), backend_->name());
}

}  // namespace minerva
