// engine/capi/c_api.cpp: the C API (minerva.h) over the C++ API. Each entry point turns every
// exception into a status code and a per-thread message, so no exception crosses into C.
#include "minerva.h"

#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "minerva/minerva.h"

struct minerva_model {
    std::shared_ptr<minerva::Model> model;
};
struct minerva_session {
    std::unique_ptr<minerva::Session> session;
    std::shared_ptr<const minerva::Vocab> vocab;
};
struct minerva_sampler {
    std::unique_ptr<minerva::Sampler> sampler;
    int32_t n_vocab = 0;
};

namespace {

thread_local std::string t_last_error;

minerva_status fail(minerva_status status, std::string message) {
    t_last_error = std::move(message);
    return status;
}

// Runs f, mapping exceptions to status codes.
template <class F>
minerva_status guarded(F&& f) {
    try {
        t_last_error.clear();
        return f();
    } catch (const minerva::Error& e) {
        const std::string m = e.what();
        return fail(m.rfind("context overflow", 0) == 0 ? MINERVA_ERR_CONTEXT_FULL : MINERVA_ERR_FAILED, m);
    } catch (const std::bad_alloc&) {
        return fail(MINERVA_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(MINERVA_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(MINERVA_ERR_INTERNAL, "internal error: unknown exception");
    }
}

minerva_status null_arg(const char* fn, const char* what) {
    return fail(MINERVA_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + what + " is NULL");
}

minerva::SamplerParams sampler_params(const minerva_sampler_params& p) {
    minerva::SamplerParams sp;
    sp.temperature = p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.min_p = p.min_p;
    sp.repeat_penalty = p.repeat_penalty;
    sp.presence_penalty = p.presence_penalty;
    sp.frequency_penalty = p.frequency_penalty;
    sp.penalty_last_n = p.penalty_last_n;
    sp.seed = p.seed;
    return sp;
}

// The checks the CLI and server apply, so a C caller gets the same errors.
minerva_status check_sampler_params(const char* fn, const minerva_sampler_params& p) {
    auto bad = [&](const char* field, const char* range) {
        return fail(MINERVA_ERR_INVALID_ARGUMENT, std::string(fn) + ": sampling." + field + " must be " + range);
    };
    if (!(p.temperature >= 0 && p.temperature <= 100)) return bad("temperature", "in [0, 100]");
    if (p.top_k < 0) return bad("top_k", ">= 0");
    if (!(p.top_p >= 0 && p.top_p <= 1)) return bad("top_p", "in [0, 1]");
    if (!(p.min_p >= 0 && p.min_p <= 1)) return bad("min_p", "in [0, 1]");
    if (!(p.repeat_penalty > 0 && p.repeat_penalty <= 100)) return bad("repeat_penalty", "in (0, 100]");
    if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) return bad("presence_penalty", "in [-2, 2]");
    if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2)) return bad("frequency_penalty", "in [-2, 2]");
    if (p.penalty_last_n < -1) return bad("penalty_last_n", ">= -1");
    return MINERVA_OK;
}

}  // namespace

extern "C" {

const char* minerva_version(void) { return minerva::version(); }
const char* minerva_last_error(void) { return t_last_error.c_str(); }

const char* minerva_status_name(minerva_status status) {
    switch (status) {
        case MINERVA_OK: return "MINERVA_OK";
        case MINERVA_ERR_INVALID_ARGUMENT: return "MINERVA_ERR_INVALID_ARGUMENT";
        case MINERVA_ERR_FAILED: return "MINERVA_ERR_FAILED";
        case MINERVA_ERR_BUFFER_TOO_SMALL: return "MINERVA_ERR_BUFFER_TOO_SMALL";
        case MINERVA_ERR_CONTEXT_FULL: return "MINERVA_ERR_CONTEXT_FULL";
        case MINERVA_ERR_OUT_OF_MEMORY: return "MINERVA_ERR_OUT_OF_MEMORY";
        case MINERVA_ERR_INTERNAL: return "MINERVA_ERR_INTERNAL";
    }
    return "unknown status";
}

void minerva_set_log_callback(minerva_log_fn fn, void* user_data) {
    if (!fn) {
        minerva::set_log_callback({});
        return;
    }
    minerva::set_log_callback([fn, user_data](minerva::LogLevel level, std::string_view message) {
        const std::string m(message);  // NUL-terminated for C
        fn(static_cast<minerva_log_level>(level), m.c_str(), user_data);
    });
}

minerva_status minerva_set_log_level(minerva_log_level level) {
    if (level < MINERVA_LOG_TRACE || level > MINERVA_LOG_OFF)
        return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_set_log_level: level " + std::to_string(level) + " is not 0..5");
    minerva::set_log_level(static_cast<minerva::LogLevel>(level));
    return MINERVA_OK;
}

// ---- models ----

minerva_model_params minerva_model_default_params(void) { return {"auto", 0, nullptr, nullptr}; }

minerva_status minerva_model_load(const char* path, const minerva_model_params* params, minerva_model** out) {
    if (!out) return null_arg("minerva_model_load", "out");
    *out = nullptr;
    if (!path) return null_arg("minerva_model_load", "path");
    return guarded([&] {
        const minerva_model_params p = params ? *params : minerva_model_default_params();
        if (p.n_threads < 0 || p.n_threads > 1024)
            return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_model_load: n_threads must be 0..1024");
        minerva::ModelOptions mo;
        mo.device = p.device ? p.device : "auto";
        mo.n_threads = p.n_threads;
        if (p.progress) {
            auto fn = p.progress;
            void* ud = p.progress_user_data;
            mo.progress = [fn, ud](float f) { return fn(f, ud); };
        }
        auto m = std::make_unique<minerva_model>();
        m->model = minerva::Model::load(path, mo);
        *out = m.release();
        return MINERVA_OK;
    });
}

void minerva_model_free(minerva_model* model) { delete model; }

int32_t minerva_model_n_vocab(const minerva_model* m) { return m ? m->model->info().n_vocab : 0; }
int32_t minerva_model_n_embd(const minerva_model* m) { return m ? m->model->info().n_embd : 0; }
int32_t minerva_model_n_ctx_train(const minerva_model* m) { return m ? m->model->info().n_ctx_train : 0; }
const char* minerva_model_arch(const minerva_model* m) { return m ? m->model->info().arch.c_str() : ""; }
const char* minerva_model_name(const minerva_model* m) { return m ? m->model->info().name.c_str() : ""; }
const char* minerva_model_backend(const minerva_model* m) {
    if (!m) return "";
    static thread_local std::string name;  // backend_name() returns by value
    name = m->model->backend_name();
    return name.c_str();
}
int32_t minerva_token_bos(const minerva_model* m) { return m ? m->model->vocab()->bos() : -1; }
int32_t minerva_token_eos(const minerva_model* m) { return m ? m->model->vocab()->eos() : -1; }
bool minerva_token_is_eog(const minerva_model* m, int32_t token) {
    return m && m->model->vocab()->valid(token) && m->model->vocab()->is_eog(token);
}

// ---- tokens ----

minerva_status minerva_tokenize(const minerva_model* model, const char* text, size_t text_len, bool add_special,
                                bool parse_special, int32_t* tokens, size_t capacity, size_t* n_tokens) {
    if (!model) return null_arg("minerva_tokenize", "model");
    if (!text && text_len) return null_arg("minerva_tokenize", "text");
    if (!n_tokens) return null_arg("minerva_tokenize", "n_tokens");
    if (!tokens && capacity) return null_arg("minerva_tokenize", "tokens");
    return guarded([&] {
        auto ids = model->model->vocab()->tokenize(std::string_view(text ? text : "", text_len), add_special, parse_special);
        *n_tokens = ids.size();
        if (ids.size() > capacity)
            return fail(MINERVA_ERR_BUFFER_TOO_SMALL, "minerva_tokenize: " + std::to_string(ids.size()) +
                                                          " tokens do not fit in a buffer of " + std::to_string(capacity));
        if (!ids.empty()) std::memcpy(tokens, ids.data(), ids.size() * sizeof(int32_t));
        return MINERVA_OK;
    });
}

minerva_status minerva_detokenize(const minerva_model* model, const int32_t* tokens, size_t n_tokens,
                                  bool remove_special, char* text, size_t capacity, size_t* text_len) {
    if (!model) return null_arg("minerva_detokenize", "model");
    if (!tokens && n_tokens) return null_arg("minerva_detokenize", "tokens");
    if (!text_len) return null_arg("minerva_detokenize", "text_len");
    if (!text && capacity) return null_arg("minerva_detokenize", "text");
    return guarded([&] {
        std::string s = model->model->vocab()->detokenize(std::span<const int32_t>(tokens, n_tokens), remove_special);
        *text_len = s.size();
        if (s.size() > capacity)
            return fail(MINERVA_ERR_BUFFER_TOO_SMALL, "minerva_detokenize: " + std::to_string(s.size()) +
                                                          " bytes do not fit in a buffer of " + std::to_string(capacity));
        if (!s.empty()) std::memcpy(text, s.data(), s.size());
        return MINERVA_OK;
    });
}

// ---- sessions ----

minerva_session_params minerva_session_default_params(void) { return {0, 0, MINERVA_KV_F16, MINERVA_KV_F16}; }

minerva_status minerva_session_create(minerva_model* model, const minerva_session_params* params,
                                      minerva_session** out) {
    if (!out) return null_arg("minerva_session_create", "out");
    *out = nullptr;
    if (!model) return null_arg("minerva_session_create", "model");
    return guarded([&] {
        const minerva_session_params p = params ? *params : minerva_session_default_params();
        if (p.n_ctx < 0) return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_session_create: n_ctx must be >= 0");
        if (p.n_batch < 0) return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_session_create: n_batch must be >= 0");
        minerva::SessionOptions so;
        so.n_ctx = p.n_ctx;
        if (p.n_batch > 0) so.n_batch = p.n_batch;
        auto kv_type = [](minerva_kv_type t, const char* which) {
            switch (t) {
                case MINERVA_KV_F16: return minerva::KvType::F16;
                case MINERVA_KV_F32: return minerva::KvType::F32;
                case MINERVA_KV_Q8_0: return minerva::KvType::Q8_0;
                case MINERVA_KV_Q4_0: return minerva::KvType::Q4_0;
            }
            throw minerva::Error(std::string("minerva_session_create: ") + which + " is not a minerva_kv_type");
        };
        so.kv_type_k = kv_type(p.type_k, "type_k");
        so.kv_type_v = kv_type(p.type_v, "type_v");
        auto s = std::make_unique<minerva_session>();
        s->session = std::make_unique<minerva::Session>(model->model, so);
        s->vocab = model->model->vocab();
        *out = s.release();
        return MINERVA_OK;
    });
}

void minerva_session_free(minerva_session* session) { delete session; }
int32_t minerva_session_n_ctx(const minerva_session* s) { return s ? s->session->n_ctx() : 0; }
int32_t minerva_session_n_past(const minerva_session* s) { return s ? s->session->n_past() : 0; }
void minerva_session_clear(minerva_session* s) {
    if (s) s->session->clear();
}

minerva_status minerva_session_eval(minerva_session* session, const int32_t* tokens, size_t n_tokens,
                                    const float** logits) {
    if (!session) return null_arg("minerva_session_eval", "session");
    if (!tokens) return null_arg("minerva_session_eval", "tokens");
    return guarded([&] {
        auto l = session->session->eval(std::span<const int32_t>(tokens, n_tokens));
        if (logits) *logits = l.data();
        return MINERVA_OK;
    });
}

minerva_status minerva_session_embed(minerva_session* session, const int32_t* tokens, size_t n_tokens,
                                     float* embedding, size_t capacity) {
    if (!session) return null_arg("minerva_session_embed", "session");
    if (!tokens) return null_arg("minerva_session_embed", "tokens");
    if (!embedding) return null_arg("minerva_session_embed", "embedding");
    return guarded([&] {
        const size_t n_embd = static_cast<size_t>(session->session->model().info().n_embd);
        if (capacity < n_embd)
            return fail(MINERVA_ERR_BUFFER_TOO_SMALL, "minerva_session_embed: the embedding has " + std::to_string(n_embd) +
                                                          " floats, the buffer " + std::to_string(capacity));
        minerva::Session& cs = *session->session;
        const auto e = minerva::embed(cs, std::span<const int32_t>(tokens, n_tokens), minerva::model_pooling(cs.model()));
        std::memcpy(embedding, e.pooled.data(), e.pooled.size() * sizeof(float));
        return MINERVA_OK;
    });
}

// ---- sampling ----

minerva_sampler_params minerva_sampler_default_params(void) {
    const minerva::SamplerParams d;
    return {d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.presence_penalty, d.frequency_penalty,
            d.penalty_last_n, d.seed};
}

minerva_status minerva_sampler_create(const minerva_sampler_params* params, int32_t n_vocab, minerva_sampler** out) {
    if (!out) return null_arg("minerva_sampler_create", "out");
    *out = nullptr;
    if (n_vocab <= 0) return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_sampler_create: n_vocab must be positive");
    const minerva_sampler_params p = params ? *params : minerva_sampler_default_params();
    if (auto st = check_sampler_params("minerva_sampler_create", p); st != MINERVA_OK) return st;
    return guarded([&] {
        auto s = std::make_unique<minerva_sampler>();
        s->sampler = std::make_unique<minerva::Sampler>(sampler_params(p), n_vocab);
        s->n_vocab = n_vocab;
        *out = s.release();
        return MINERVA_OK;
    });
}

void minerva_sampler_free(minerva_sampler* sampler) { delete sampler; }

minerva_status minerva_sampler_sample(minerva_sampler* sampler, const float* logits, size_t n_vocab, int32_t* token) {
    if (!sampler) return null_arg("minerva_sampler_sample", "sampler");
    if (!logits) return null_arg("minerva_sampler_sample", "logits");
    if (!token) return null_arg("minerva_sampler_sample", "token");
    if (n_vocab != static_cast<size_t>(sampler->n_vocab))
        return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_sampler_sample: n_vocab " + std::to_string(n_vocab) +
                                                      " differs from the sampler's " + std::to_string(sampler->n_vocab));
    return guarded([&] {
        *token = sampler->sampler->sample(std::span<const float>(logits, n_vocab));
        sampler->sampler->accept(*token);
        return MINERVA_OK;
    });
}

// ---- generation ----

minerva_generate_params minerva_generate_default_params(void) {
    const minerva::GenerateParams d;
    return {d.max_tokens, minerva_sampler_default_params(), nullptr, 0, d.ignore_eos};
}

minerva_status minerva_generate(minerva_session* session, const int32_t* prompt, size_t n_prompt,
                                const minerva_generate_params* params, minerva_token_fn on_token, void* user_data,
                                minerva_generate_result* result) {
    if (!session) return null_arg("minerva_generate", "session");
    if (!prompt) return null_arg("minerva_generate", "prompt");
    const minerva_generate_params p = params ? *params : minerva_generate_default_params();
    if (p.n_stop && !p.stop) return null_arg("minerva_generate", "stop");
    if (auto st = check_sampler_params("minerva_generate", p.sampling); st != MINERVA_OK) return st;
    return guarded([&] {
        minerva::GenerateParams gp;
        gp.max_tokens = p.max_tokens;
        gp.sampling = sampler_params(p.sampling);
        gp.ignore_eos = p.ignore_eos;
        for (size_t i = 0; i < p.n_stop; ++i) {
            if (!p.stop[i]) return fail(MINERVA_ERR_INVALID_ARGUMENT, "minerva_generate: stop[" + std::to_string(i) + "] is NULL");
            gp.stop.emplace_back(p.stop[i]);
        }
        minerva::TokenCallback cb;
        if (on_token)
            cb = [&](int32_t tok, std::string_view text) { return on_token(tok, text.data(), text.size(), user_data); };
        minerva::GenerateResult r = minerva::generate(*session->session, std::span<const int32_t>(prompt, n_prompt), gp, cb);
        if (result) {
            result->n_prompt = r.n_prompt;
            result->n_cached = r.n_cached;
            result->n_generated = static_cast<int32_t>(r.tokens.size());
            result->finish_reason = r.finish_reason == "length"      ? MINERVA_FINISH_LENGTH
                                    : r.finish_reason == "cancelled" ? MINERVA_FINISH_CANCELLED
                                                                     : MINERVA_FINISH_STOP;
            result->prompt_seconds = r.prompt_seconds;
            result->gen_seconds = r.gen_seconds;
        }
        return MINERVA_OK;
    });
}

}  // extern "C"
