// engine/model/model.cpp: Model::load for every family of families.h: hyperparameters from
// metadata, every tensor checked by name, shape and type, weights handed to the backend in their
// file format (the CPU backend uses them in place in the mapping: nothing is expanded to f32).
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
    family_ = find_family(h.arch);
    if (!family_)
        throw Error(f.path() + ": unsupported architecture '" + h.arch + "' (key general.architecture); Minerva runs " +
                    family_names());
    const Family& fam = *family_;
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
    } else if (scaling == "longrope" && family_->longrope) {
        // LongRoPE: per-dimension factors in rope_factors_long/short (load_weights), no position scale.
    } else if (!scaling.empty() && scaling != "none" && scaling != "linear") {
        // "yarn" and the like change more than the positions: refuse rather than run wrongly.
        throw Error(f.path() + ": " + a + "rope.scaling.type '" + scaling + "' is not supported (only linear)");
    }
    h.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
    if (!(h.rms_eps > 0) || !std::isfinite(h.rms_eps))
        throw Error(f.path() + ": " + a + "attention.layer_norm_rms_epsilon must be a positive number");

    // Mixture of experts.
    const bool has_experts = f.has(a + "expert_count") && f.get_int(a + "expert_count") > 0;
    if (fam.moe == Need::Required && !has_experts)
        throw Error(f.path() + ": " + a + "expert_count is missing: " + h.arch + " is a mixture-of-experts architecture");
    if (fam.moe == Need::Never && has_experts)
        throw Error(f.path() + ": " + a + "expert_count is set but " + h.arch + " has no mixture-of-experts variant");
    if (has_experts) {
        h.n_expert = get_int("expert_count", 0, true);
        h.n_expert_used = get_int("expert_used_count", 0, true);
        if (h.n_expert_used > h.n_expert)
            throw Error(f.path() + ": " + a + "expert_used_count " + std::to_string(h.n_expert_used) +
                        " exceeds expert_count " + std::to_string(h.n_expert));
        // llama (Mixtral) stores the expert size as feed_forward_length; qwen3moe as its own key,
        // with feed_forward_length / k as the fallback.
        h.n_ff_exp = fam.moe == Need::Optional ? h.n_ff
                                                : get_int("expert_feed_forward_length", h.n_ff / h.n_expert_used, false);
    }

    // Softcapping: the family's default, or the key.
    auto softcap = [&](const char* key, float def) {
        const double v = f.get_float(a + key, def);
        if (!(v >= 0) || !std::isfinite(v)) throw Error(f.path() + ": " + a + key + " must be a non-negative number");
        return static_cast<float>(v);
    };
    h.attn_softcap = softcap("attn_logit_softcapping", fam.attn_softcap);
    h.final_softcap = softcap("final_logit_softcapping", fam.final_softcap);

    // Sliding-window layers: the window, then which layers are local (a u32 pattern n: layer il
    // is local when il mod n < n - 1; or one bool per layer).
    const bool window_key = f.has(a + "attention.sliding_window");
    const int64_t window = window_key ? f.get_int(a + "attention.sliding_window") : fam.swa_window;
    if (window < 0 || window > (int64_t(1) << 30))
        throw Error(f.path() + ": " + a + "attention.sliding_window = " + std::to_string(window) + " is out of range");
    swa_layers_.assign(static_cast<size_t>(h.n_layer), false);
    const bool use_swa = fam.swa_pattern > 0 && window > 0 && (!fam.swa_needs_key || window_key);
    if (use_swa) {
        h.n_swa = static_cast<int>(window);
        const std::string pk = a + "attention.sliding_window_pattern";
        const gguf::Value* pv = f.find(pk);
        if (pv && pv->type == gguf::ValueType::ARRAY) {
            const gguf::Array& arr = pv->as_array();
            if (arr.elem_type != gguf::ValueType::BOOL || arr.size() != static_cast<size_t>(h.n_layer))
                throw Error(f.path() + ": " + pk + " must be a u32 or one bool per layer (" + std::to_string(h.n_layer) + ")");
            for (int il = 0; il < h.n_layer; ++il) swa_layers_[static_cast<size_t>(il)] = arr.ints[static_cast<size_t>(il)] != 0;
        } else {
            const int64_t n = pv ? pv->as_int() : fam.swa_pattern;
            if (n < 1 || n > (1 << 20)) throw Error(f.path() + ": " + pk + " = " + std::to_string(n) + " is out of range");
            for (int il = 0; il < h.n_layer; ++il) swa_layers_[static_cast<size_t>(il)] = il % n < n - 1;
        }
        for (bool local : swa_layers_) h.n_swa_layers += local;
    }

    // RoPE of the local layers, the query scale, LongRoPE.
    fp_.rope_style = fam.rope;
    fp_.act = fam.act;
    fp_.embd_scale = fam.embd_scale;
    const double swa_base_def = fam.swa_rope_base > 0 ? fam.swa_rope_base : h.rope_freq_base;
    fp_.swa_rope_base = static_cast<float>(f.get_float(a + "rope.freq_base_swa", swa_base_def));
    if (!(fp_.swa_rope_base > 0) || !std::isfinite(fp_.swa_rope_base))
        throw Error(f.path() + ": " + a + "rope.freq_base_swa must be a positive number");
    fp_.swa_rope_scale = fam.swa_rope_unscaled ? 1.f : h.rope_freq_scale;
    const bool embd_scaled_query = fam.query_scale_embd_layers > 0 && h.n_layer == fam.query_scale_embd_layers;
    fp_.query_scale = 1.f / std::sqrt(static_cast<float>(embd_scaled_query ? h.n_embd / h.n_head : h.head_dim));
    if (fam.longrope) {
        fp_.rope_attn_factor = static_cast<float>(f.get_float(a + "rope.scaling.attn_factor", 1.0));
        if (!(fp_.rope_attn_factor > 0) || !std::isfinite(fp_.rope_attn_factor))
            throw Error(f.path() + ": " + a + "rope.scaling.attn_factor must be a positive number");
        fp_.n_ctx_orig = get_int("rope.scaling.original_context_length", h.n_ctx_train, false);
    }

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

    // Checks a file tensor's shape (want[0..n)) and type.
    auto check = [&](const gguf::TensorInfo& t, const std::string& name, const int64_t* want, int n, bool f32_only) {
        bool ok = true;
        for (int i = 0; i < 4; ++i) ok = ok && t.ne[i] == (i < n ? want[i] : 1);
        if (!ok)
            throw Error(f.path() + ": tensor '" + name + "' has shape " + shape_str(t.ne, static_cast<int>(t.n_dims)) +
                        ", expected " + shape_str(want, n));
        if (f32_only ? t.type != DType::F32 : !dtype_supported_for_compute(t.type))
            throw Error(f.path() + ": tensor '" + name + "' has type " + std::string(dtype_name(t.type)) +
                        (f32_only ? ", expected F32" : ", which Minerva cannot compute with"));
        if (t.ne[0] % dtype_info(t.type).block_elems != 0)
            throw Error(f.path() + ": tensor '" + name + "' row of " + std::to_string(t.ne[0]) +
                        " elements is not a whole number of " + std::string(dtype_name(t.type)) + " blocks");
    };
    // Counts an uploaded file tensor and reports progress.
    auto account = [&](const gguf::TensorInfo& t) {
        bytes_by_type[t.type] += t.nbytes;
        h.n_params += static_cast<uint64_t>(t.n_elements());
        ++n_uploaded;
        done_bytes += t.nbytes;
        if (opts.progress) {
            int pct = static_cast<int>(1000.0 * static_cast<double>(done_bytes) / static_cast<double>(total_bytes));
            if (pct != last_pct && !opts.progress(static_cast<float>(pct) / 1000.f))
                throw Error(f.path() + ": loading cancelled");
            last_pct = pct;
        }
    };

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
        check(*t, name, want, n, f32_only);
        Tensor out = backend_->upload_weight(t->type, t->ne, f.tensor_data(*t), name);
        account(*t);
        return out;
    };

    // A fused file tensor ([n_in, sum of parts]) handed to the backend as one weight per part: row
    // views into the mapping, so the CPU reads them in place and Vulkan uploads each part.
    auto take_split = [&](const std::string& name, int64_t n_in, std::initializer_list<int64_t> parts,
                          bool f32_only) -> std::vector<Tensor> {
        int64_t total = 0;
        for (int64_t p : parts) total += p;
        const gguf::TensorInfo* t = f.find_tensor(name);
        const bool is_bias = n_in == 0;  // a 1-D bias split along its only dimension
        if (!t) throw Error(f.path() + ": missing tensor '" + name + "'");
        const int64_t want[2] = {is_bias ? total : n_in, total};
        check(*t, name, want, is_bias ? 1 : 2, f32_only);
        std::vector<Tensor> out;
        const char* base = reinterpret_cast<const char*>(f.tensor_data(*t));
        const size_t unit = is_bias ? sizeof(float) : row_bytes(t->type, t->ne[0]);
        int64_t first = 0;
        for (int64_t p : parts) {
            const int64_t ne[4] = {is_bias ? p : t->ne[0], is_bias ? 1 : p, 1, 1};
            out.push_back(backend_->upload_weight(t->type, ne, base + static_cast<size_t>(first) * unit,
                                                  name + "[" + std::to_string(first) + ":" + std::to_string(first + p) + "]"));
            first += p;
        }
        account(*t);
        return out;
    };
    auto optional_if = [&](Need need, const std::string& name, std::initializer_list<int64_t> shape, bool f32_only,
                           const char* why) -> std::optional<Tensor> {
        if (need == Need::Never) {
            if (f.find_tensor(name))
                throw Error(f.path() + ": tensor '" + name + "' is not part of architecture " + h.arch + " (" + why + ")");
            return std::nullopt;
        }
        return take(name, shape, need == Need::Required, f32_only);
    };

    const Family& fam = *family_;
    const int64_t n_embd = h.n_embd, n_vocab = h.n_vocab, n_ff = h.n_ff;
    const int64_t n_q = int64_t(h.n_head) * h.head_dim, n_kv = int64_t(h.n_head_kv) * h.head_dim;
    w_.token_embd = *take("token_embd.weight", {n_embd, n_vocab}, true, false);
    w_.output_norm = *take("output_norm.weight", {n_embd}, true, true);
    if (fam.tied_only && f.find_tensor("output.weight"))
        throw Error(f.path() + ": tensor 'output.weight' is present, but " + h.arch +
                    " always ties the output projection to token_embd");
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
    if (fam.longrope) {
        w_.rope_long = take("rope_factors_long.weight", {h.n_rot / 2}, false, true);
        w_.rope_short = take("rope_factors_short.weight", {h.n_rot / 2}, false, true);
        if (w_.rope_long.has_value() != w_.rope_short.has_value())
            throw Error(f.path() + ": rope_factors_long.weight and rope_factors_short.weight must come together");
        if (w_.rope_long && w_.has_rope_freqs)
            throw Error(f.path() + ": rope_freqs.weight and LongRoPE factors cannot both be present");
    }
    w_.layers.resize(static_cast<size_t>(h.n_layer));
    for (int il = 0; il < h.n_layer; ++il) {
        LayerWeights& L = w_.layers[static_cast<size_t>(il)];
        const std::string p = "blk." + std::to_string(il) + ".";
        L.swa = swa_layers_[static_cast<size_t>(il)];
        L.attn_norm = *take(p + "attn_norm.weight", {n_embd}, true, true);
        if (fam.fused_qkv && f.find_tensor(p + "attn_qkv.weight")) {
            auto qkv = take_split(p + "attn_qkv.weight", n_embd, {n_q, n_kv, n_kv}, false);
            L.wq = qkv[0], L.wk = qkv[1], L.wv = qkv[2];
            if (f.find_tensor(p + "attn_qkv.bias")) {
                auto b = take_split(p + "attn_qkv.bias", 0, {n_q, n_kv, n_kv}, true);
                L.bq = b[0], L.bk = b[1], L.bv = b[2];
            }
        } else {
            L.wq = *take(p + "attn_q.weight", {n_embd, n_q}, true, false);
            L.wk = *take(p + "attn_k.weight", {n_embd, n_kv}, true, false);
            L.wv = *take(p + "attn_v.weight", {n_embd, n_kv}, true, false);
            L.bq = optional_if(fam.qkv_bias, p + "attn_q.bias", {n_q}, true, "no attention biases");
            L.bk = optional_if(fam.qkv_bias, p + "attn_k.bias", {n_kv}, true, "no attention biases");
            L.bv = optional_if(fam.qkv_bias, p + "attn_v.bias", {n_kv}, true, "no attention biases");
        }
        L.q_norm = optional_if(fam.qk_norm, p + "attn_q_norm.weight", {h.head_dim}, true, "no q/k norms");
        L.k_norm = optional_if(fam.qk_norm, p + "attn_k_norm.weight", {h.head_dim}, true, "no q/k norms");
        if (L.q_norm.has_value() != L.k_norm.has_value())
            throw Error(f.path() + ": block " + std::to_string(il) + " has only one of attn_q_norm and attn_k_norm");
        L.wo = *take(p + "attn_output.weight", {n_q, n_embd}, true, false);
        L.bo = optional_if(fam.out_bias, p + "attn_output.bias", {n_embd}, true, "no output bias");
        const Need post = fam.post_norms ? Need::Required : Need::Never;
        L.post_attn_norm = optional_if(post, p + "post_attention_norm.weight", {n_embd}, true, "no post-norms");
        L.ffn_norm = *take(p + "ffn_norm.weight", {n_embd}, true, true);
        if (h.n_expert > 0) {
            const int64_t E = h.n_expert, n_ff_exp = h.n_ff_exp;
            L.ffn_router = take(p + "ffn_gate_inp.weight", {n_embd, E}, true, false);
            L.gate_exps = *take(p + "ffn_gate_exps.weight", {n_embd, n_ff_exp, E}, true, false);
            L.up_exps = *take(p + "ffn_up_exps.weight", {n_embd, n_ff_exp, E}, true, false);
            L.down_exps = *take(p + "ffn_down_exps.weight", {n_ff_exp, n_embd, E}, true, false);
        } else if (fam.fused_gate_up && !f.find_tensor(p + "ffn_gate.weight")) {
            auto gu = take_split(p + "ffn_up.weight", n_embd, {n_ff, n_ff}, false);
            L.ffn_gate = gu[0], L.ffn_up = gu[1];
            L.ffn_down = *take(p + "ffn_down.weight", {n_ff, n_embd}, true, false);
        } else {
            L.ffn_gate = *take(p + "ffn_gate.weight", {n_embd, n_ff}, true, false);
            L.ffn_up = *take(p + "ffn_up.weight", {n_embd, n_ff}, true, false);
            L.ffn_down = *take(p + "ffn_down.weight", {n_ff, n_embd}, true, false);
        }
        L.post_ffn_norm = optional_if(post, p + "post_ffw_norm.weight", {n_embd}, true, "no post-norms");
    }
    // A block beyond block_count means the file and its metadata disagree.
    if (f.find_tensor("blk." + std::to_string(h.n_layer) + ".attn_norm.weight"))
        throw Error(f.path() + ": tensor 'blk." + std::to_string(h.n_layer) + ".attn_norm.weight' exists but " + h.arch +
                    ".block_count is " + std::to_string(h.n_layer));

    uint64_t best = 0;
    for (auto& [type, bytes] : bytes_by_type)
        if (bytes > best) best = bytes, h.weight_type = type;
    logging::debug("loaded {}: {} tensors, {} params, {} on {}", h.name, n_uploaded, h.n_params,
                  dtype_name(h.weight_type), backend_->name());
}

}  // namespace minerva
