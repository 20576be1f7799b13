// minerva/model.h: loading a model (LLaMA, Qwen2/3, Qwen3-MoE, Mixtral, Gemma 2/3, Phi-3/4),
// sessions with a KV cache, sampling, generation.
//
// Thread-safety: a Model is immutable after load() and may be shared by many Sessions, each used
// from its own thread. Sessions of one Model share its backend, so their forward passes take
// turns under a per-model lock: evaluating two Sessions from two threads is safe and gives each
// the same results as alone, but not faster; batch several sequences into one Session (n_seq,
// eval_batch) for throughput. One Session must not be used by two threads at once (it holds the
// KV cache and logits being written). Sampler: one per generation stream, not shared.
#pragma once
#include "minerva/export.h"
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "minerva/grammar.h"
#include "minerva/types.h"
#include "minerva/vocab.h"

namespace minerva {

// Element type of the KV cache. Q8_0 and Q4_0 store 32-element blocks with one f16 scale
// (34 and 18 bytes per 32 values: 1.9x and 3.6x smaller than F16), at some cost in accuracy.
enum class KvType { F16, F32, Q8_0, Q4_0 };
// "f16", "f32", "q8_0", "q4_0"; parse_kv_type throws Error naming the accepted values.
MINERVA_API const char* kv_type_name(KvType t);
MINERVA_API KvType parse_kv_type(std::string_view name);

struct MINERVA_API ModelOptions {
    std::string device = "auto";  // "auto", "cpu", "vulkan", "vulkan:N" (MINERVA_DEVICE overrides "auto")
    int n_threads = 0;            // CPU threads; 0 = physical cores
    // Called as the weights upload, with the fraction done (0..1; the last call has 1), from the
    // loading thread. Return false to cancel: load() then throws Error("... loading cancelled").
    ProgressCallback progress;
};

struct MINERVA_API ModelInfo {
    std::string arch;            // general.architecture
    std::string name;            // general.name (or the file name)
    std::string path;
    uint64_t file_size = 0;
    uint64_t n_params = 0;
    DType weight_type = DType::F32;  // the type of most weight bytes (e.g. Q4_K for a Q4_K_M file)
    int n_vocab = 0;
    int n_ctx_train = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;
    int n_ff = 0;
    int n_rot = 0;
    float rope_freq_base = 10000.f;
    float rope_freq_scale = 1.f;
    float rms_eps = 1e-5f;
    bool tied_output = false;
    bool has_rope_freqs = false;
    int n_expert = 0;            // mixture of experts: experts per layer (0: dense FFN)
    int n_expert_used = 0;       // experts each token uses
    int n_ff_exp = 0;            // hidden size of one expert
    int n_swa = 0;               // sliding window of the local layers (0: none)
    int n_swa_layers = 0;        // how many layers are local
    float attn_softcap = 0.f;    // attention-logit softcapping (0: off)
    float final_softcap = 0.f;   // final-logit softcapping (0: off)
};

class MINERVA_API Model {
public:
    // Maps the file, checks every tensor and hyperparameter, uploads weights to the backend.
    // Throws Error naming the missing tensor, wrong shape, unsupported type or bad key.
    static std::shared_ptr<Model> load(const std::string& path, const ModelOptions& opts = {});
    virtual ~Model() = default;

    virtual const ModelInfo& info() const = 0;
    virtual const std::shared_ptr<const Vocab>& vocab() const = 0;
    virtual std::string chat_template() const = 0;  // tokenizer.chat_template, "" if none
    virtual std::string backend_name() const = 0;
};

struct MINERVA_API SessionOptions {
    int n_ctx = 0;                 // cells per sequence; 0 = min(n_ctx_train, 4096)
    int n_seq = 1;                 // independent sequences (server slots), each with n_ctx cells
    int n_batch = 512;             // most tokens evaluated in one forward pass (larger evals are split)
    KvType kv_type_k = KvType::F16;  // K and V cache types, independently (llama.cpp's -ctk / -ctv)
    KvType kv_type_v = KvType::F16;
};

class MINERVA_API Session {
public:
    Session(std::shared_ptr<Model> model, const SessionOptions& opts = {});
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    const Model& model() const;
    int n_ctx() const;
    int n_seq() const;
    int n_vocab() const;
    int n_past(int seq = 0) const;  // tokens held in the cache of sequence seq
    std::span<const int32_t> tokens(int seq = 0) const;  // the tokens held for seq ([n_past(seq)])

    // Appends tokens to sequence seq and evaluates them. Returns the logits of the last token
    // ([n_vocab]); with all_logits, logits() then holds [n_tokens * n_vocab]. Running past n_ctx
    // throws Error (the cache is left as before the call).
    std::span<const float> eval(std::span<const int32_t> tokens, int seq = 0, bool all_logits = false);

    // One forward pass over several sequences: the continuous-batching step of a server.
    struct BatchItem {
        int seq = 0;
        std::span<const int32_t> tokens;
    };
    // After it, last_logits(item.seq) holds the logits of each item's last token. Items with no
    // tokens are ignored; a sequence may appear once. Throws Error (nothing evaluated) when any
    // item would run past n_ctx or names a bad sequence or token.
    void eval_batch(std::span<const BatchItem> items);

    // Embeddings: clears sequence seq, evaluates the tokens into it and returns every token's
    // final hidden state (after the output norm, before the output projection) as
    // [n_tokens * n_embd]; the sequence is cleared again afterwards. Error when the tokens do
    // not fit in n_ctx.
    std::vector<float> hidden_states(std::span<const int32_t> tokens, int seq = 0);

    std::span<const float> logits() const;             // from the last eval()
    std::span<const float> last_logits(int seq) const;  // of the last token evaluated for seq

    void truncate(int seq, int n_keep);  // forget cells n_keep.. of seq (prefix reuse)
    // Context shift: forgets cells n_keep .. n_keep + n_discard - 1 of seq and moves the later
    // ones down in place (their keys re-rotated to the new positions), so the sequence goes on
    // with n_past(seq) - n_discard tokens and nothing is evaluated again. Throws Error for a
    // range outside the sequence.
    void shift(int seq, int n_keep, int n_discard);
    // Prepares seq to evaluate `prompt`: keeps the longest common prefix of the cache and the
    // prompt, and when the prompt goes on with tokens the cache holds further on (a conversation
    // whose oldest turns were dropped after the system prompt) shifts them down (shift()) instead
    // of dropping them. Drops the rest. Returns how many prompt tokens the cache then holds, at
    // most prompt.size() - 1 (the last one is always evaluated again, for its logits).
    int reuse_prefix(int seq, std::span<const int32_t> prompt);
    void clear(int seq);                 // one sequence
    void clear();                        // all sequences

    size_t kv_bytes() const;            // KV-cache size in bytes
    size_t kv_bytes_per_token() const;  // bytes one token takes in the cache (all layers, K and V)

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct MINERVA_API SamplerParams {
    float temperature = 0.8f;  // <= 0: greedy
    int top_k = 40;            // <= 0: off
    float top_p = 0.95f;       // >= 1: off
    float min_p = 0.05f;       // <= 0: off
    float repeat_penalty = 1.0f;     // 1: off (llama.cpp semantics: divide positive logits)
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    int penalty_last_n = 64;   // window of recent tokens the penalties look at; -1 = all
    uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // default: random
    std::vector<std::pair<int32_t, float>> logit_bias;
    // Grammar constraint (minerva/grammar.h): tokens the grammar cannot continue with are masked
    // before anything else; generate() stops with "stop" once the grammar is complete and admits
    // nothing more. Shared between streams (its mask cache too).
    std::shared_ptr<GrammarConstraint> grammar;
    std::string grammar_start_after;  // e.g. "</think>": the grammar applies after this text
    std::string grammar_open_tag;     // e.g. "<think>": wait for start_after only if the reply opens with it
};

class MINERVA_API Sampler {
public:
    Sampler(const SamplerParams& params, int n_vocab);
    // Picks the next token from raw logits (after the grammar mask and penalties over the
    // accepted history). Error when the grammar allows no token.
    int32_t sample(std::span<const float> logits);
    // A generated token: adds it to the penalty history and advances the grammar (Error when the
    // grammar does not allow it).
    void accept(int32_t token);
    // Prompt tokens: penalty history only.
    void accept_prompt(std::span<const int32_t> tokens);
    void reset();
    const SamplerParams& params() const { return params_; }
    GrammarMatcher* grammar() { return matcher_.get(); }  // null without a grammar

private:
    uint64_t next_u64();   // xoshiro256**
    double next_unit();    // uniform in [0, 1)

    SamplerParams params_;
    int n_vocab_;
    uint64_t rng_[4];
    std::vector<int32_t> history_;
    std::vector<std::pair<float, int32_t>> work_;
    std::vector<float> scratch_;
    std::vector<double> probs_;
    std::vector<int32_t> window_;
    std::unique_ptr<GrammarMatcher> matcher_;
};

// log-softmax of raw logits; the k most likely tokens as (id, logprob), best first.
MINERVA_API std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int k);
MINERVA_API float token_logprob(std::span<const float> logits, int32_t id);

struct MINERVA_API GenerateParams {
    int max_tokens = 128;              // < 0: until the context is full (or, with context_shift, without end)
    SamplerParams sampling;
    std::vector<std::string> stop;     // stop strings (not included in the output)
    bool ignore_eos = false;
    // When the sequence fills its context while generating, drop the oldest half of the tokens
    // after the first n_keep (llama.cpp's --keep) and go on; otherwise stop with "length".
    bool context_shift = false;
    int n_keep = 0;
};

struct MINERVA_API GenerateResult {
    std::vector<int32_t> tokens;  // generated tokens (the EOS/EOT that ended generation excluded)
    std::string text;             // their text, cut before a stop string
    std::string finish_reason;    // "stop" (EOS/EOT or stop string), "length", "cancelled"
    int n_prompt = 0;             // prompt tokens
    int n_cached = 0;             // of those, reused from the cache (not evaluated again)
    double prompt_seconds = 0, gen_seconds = 0;
};

// Called with each new token and the text it completes (never half a UTF-8 character, never
// text that might still become a stop string; "" while text is held back). When generation
// ends with text still held back (an incomplete UTF-8 character, or the start of a stop string
// that never completed), it comes in one last call with token -1. Return false to cancel.
using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

// Evaluates the prompt into sequence seq of the session (reusing any cached common prefix, and
// after a shift what follows a dropped middle part: a conversation whose oldest turns were
// removed is not evaluated again) and samples up to max_tokens more.
MINERVA_API GenerateResult generate(Session& session, std::span<const int32_t> prompt, const GenerateParams& params,
                        const TokenCallback& on_token = {}, int seq = 0);

// ---- Embeddings
// How token states become one vector: GGUF `<arch>.pooling_type` 0 none, 1 mean, 2 cls (the
// first token), 3 last (the last token).
enum class Pooling { None, Mean, Cls, Last };
// The pooling the model file asks for (`<arch>.pooling_type`), Mean when it names none. Error for
// a pooling type Minerva does not implement (4, rank).
MINERVA_API Pooling model_pooling(const Model& model);
struct MINERVA_API Embedding {
    int n_embd = 0;
    int n_tokens = 0;
    std::vector<float> pooled;     // [n_embd], L2-normalised when asked (empty with Pooling::None)
    std::vector<float> per_token;  // [n_tokens * n_embd] (filled when asked or with Pooling::None)
};
// Evaluates the tokens in sequence seq of the session (see Session::hidden_states) and pools them.
MINERVA_API Embedding embed(Session& session, std::span<const int32_t> tokens, Pooling pooling, bool normalize = true,
                bool keep_per_token = false, int seq = 0);

// Perplexity as llama.cpp's llama-perplexity defines it: the tokens (already with BOS) are cut
// into tokens.size() / n_ctx chunks of n_ctx (n_ctx = session.n_ctx()); each chunk starts with
// BOS, is evaluated alone, and scores the predictions of its tokens n_ctx/2+1 .. n_ctx-1.
// on_chunk (optional) sees each chunk's running estimate. Error when there is not one chunk.
struct MINERVA_API PerplexityResult {
    double ppl = 0;
    double nll = 0;   // mean negative log-likelihood
    int n_chunks = 0;
    int n_scored = 0;
};
MINERVA_API PerplexityResult perplexity(Session& session, std::span<const int32_t> tokens, int32_t bos,
                            const std::function<void(int chunk, double ppl)>& on_chunk = {});

}  // namespace minerva
