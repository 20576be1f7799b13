/* minerva.h: the C API of libminerva, for C programs and for bindings (Python ctypes/cffi, Go cgo,
 * Rust bindgen). The C++ API is <minerva/minerva.h>; this one wraps it.
 *
 * Conventions
 * - Every fallible function returns a minerva_status: MINERVA_OK (0) or an error code. The
 *   message of the last error on the calling thread is minerva_last_error() (valid until the
 *   thread's next failing call). No function throws or aborts on bad input.
 * - Objects are opaque handles created by *_create / *_load and released by *_free (NULL is
 *   accepted and ignored). A session keeps its model alive; the model may be freed first.
 * - Text is UTF-8 bytes with an explicit length; output text is written to caller buffers. When a
 *   buffer is too small the call returns MINERVA_ERR_BUFFER_TOO_SMALL and stores the size needed.
 * - Thread-safety as in the C++ API: a model may be shared by sessions on many threads; one
 *   session (and one sampler) is used by one thread at a time.
 *
 *   minerva_model* model = NULL;
 *   if (minerva_model_load("model.gguf", NULL, &model) != MINERVA_OK) {
 *       fprintf(stderr, "%s\n", minerva_last_error()); return 1;
 *   }
 */
#ifndef MINERVA_C_H
#define MINERVA_C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "minerva/export.h"
#include "minerva/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum minerva_status {
    MINERVA_OK = 0,
    MINERVA_ERR_INVALID_ARGUMENT = 1,  /* a NULL handle or pointer, a value out of range */
    MINERVA_ERR_FAILED = 2,            /* the library's error: bad file, unsupported model, no device, ... */
    MINERVA_ERR_BUFFER_TOO_SMALL = 3,  /* the size needed was stored; call again with a larger buffer */
    MINERVA_ERR_CONTEXT_FULL = 4,      /* the tokens do not fit in the session's context */
    MINERVA_ERR_OUT_OF_MEMORY = 5,
    MINERVA_ERR_INTERNAL = 6           /* a bug: please report the message */
} minerva_status;

typedef enum minerva_log_level {
    MINERVA_LOG_TRACE = 0, MINERVA_LOG_DEBUG = 1, MINERVA_LOG_INFO = 2,
    MINERVA_LOG_WARN = 3, MINERVA_LOG_ERROR = 4, MINERVA_LOG_OFF = 5
} minerva_log_level;

typedef enum minerva_finish_reason {
    MINERVA_FINISH_STOP = 0,      /* an end-of-generation token or a stop string */
    MINERVA_FINISH_LENGTH = 1,    /* max_tokens, or the context is full */
    MINERVA_FINISH_CANCELLED = 2  /* the token callback returned false */
} minerva_finish_reason;

typedef struct minerva_model minerva_model;
typedef struct minerva_session minerva_session;
typedef struct minerva_sampler minerva_sampler;

/* ---- library ---------------------------------------------------------------------------- */

MINERVA_API const char* minerva_version(void);  /* "0.1.0" */
/* The message of the last failed call on this thread ("" when none). */
MINERVA_API const char* minerva_last_error(void);
MINERVA_API const char* minerva_status_name(minerva_status status);  /* "MINERVA_ERR_FAILED" */

/* Diagnostics: by default one line per message on stderr, never stdout. The callback gets each
 * message (no newline) at or above the level; NULL restores stderr. Never called concurrently. */
typedef void (*minerva_log_fn)(minerva_log_level level, const char* message, void* user_data);
MINERVA_API void minerva_set_log_callback(minerva_log_fn fn, void* user_data);
MINERVA_API minerva_status minerva_set_log_level(minerva_log_level level);

/* ---- models ----------------------------------------------------------------------------- */

typedef struct minerva_model_params {
    const char* device;  /* "auto" (NULL = auto), "cpu", "vulkan", "vulkan:N" */
    int32_t n_threads;   /* CPU threads; 0 = physical cores */
    /* Called with the fraction loaded (0..1); return false to cancel. NULL: none. */
    bool (*progress)(float fraction, void* user_data);
    void* progress_user_data;
} minerva_model_params;

MINERVA_API minerva_model_params minerva_model_default_params(void);
/* params NULL: the defaults. On success *out is the model; on failure *out is NULL. */
MINERVA_API minerva_status minerva_model_load(const char* path, const minerva_model_params* params,
                                                minerva_model** out);
MINERVA_API void minerva_model_free(minerva_model* model);

MINERVA_API int32_t minerva_model_n_vocab(const minerva_model* model);
MINERVA_API int32_t minerva_model_n_embd(const minerva_model* model);
MINERVA_API int32_t minerva_model_n_ctx_train(const minerva_model* model);
/* general.architecture, general.name and the backend in use; valid while the model lives. */
MINERVA_API const char* minerva_model_arch(const minerva_model* model);
MINERVA_API const char* minerva_model_name(const minerva_model* model);
MINERVA_API const char* minerva_model_backend(const minerva_model* model);
/* The special tokens (-1 when the vocabulary has none) and the end-of-generation test. */
MINERVA_API int32_t minerva_token_bos(const minerva_model* model);
MINERVA_API int32_t minerva_token_eos(const minerva_model* model);
MINERVA_API bool minerva_token_is_eog(const minerva_model* model, int32_t token);

/* ---- tokens ----------------------------------------------------------------------------- */

/* Text -> ids. add_special: BOS/EOS as the model's file asks; parse_special: control-token text
 * becomes those tokens. Writes up to capacity ids to tokens and the count to *n_tokens; when
 * capacity is too small, returns MINERVA_ERR_BUFFER_TOO_SMALL with *n_tokens = the count needed. */
MINERVA_API minerva_status minerva_tokenize(const minerva_model* model, const char* text, size_t text_len,
                                              bool add_special, bool parse_special, int32_t* tokens,
                                              size_t capacity, size_t* n_tokens);
/* Ids -> text (not NUL-terminated; *text_len bytes). remove_special drops BOS/EOS/control text. */
MINERVA_API minerva_status minerva_detokenize(const minerva_model* model, const int32_t* tokens, size_t n_tokens,
                                                bool remove_special, char* text, size_t capacity, size_t* text_len);

/* ---- sessions --------------------------------------------------------------------------- */

/* KV cache element types (minerva::KvType). */
typedef enum minerva_kv_type {
    MINERVA_KV_F16 = 0,
    MINERVA_KV_F32 = 1,
    MINERVA_KV_Q8_0 = 2,
    MINERVA_KV_Q4_0 = 3
} minerva_kv_type;

typedef struct minerva_session_params {
    int32_t n_ctx;               /* context cells; 0 = min(n_ctx_train, 4096) */
    int32_t n_batch;             /* most tokens per forward pass; 0 = 512 */
    minerva_kv_type type_k;      /* K cache type (default MINERVA_KV_F16) */
    minerva_kv_type type_v;      /* V cache type (default MINERVA_KV_F16) */
} minerva_session_params;

MINERVA_API minerva_session_params minerva_session_default_params(void);
MINERVA_API minerva_status minerva_session_create(minerva_model* model, const minerva_session_params* params,
                                                    minerva_session** out);
MINERVA_API void minerva_session_free(minerva_session* session);
MINERVA_API int32_t minerva_session_n_ctx(const minerva_session* session);
MINERVA_API int32_t minerva_session_n_past(const minerva_session* session);  /* tokens in the cache */
MINERVA_API void minerva_session_clear(minerva_session* session);

/* Appends tokens to the context and evaluates them. *logits (optional) then points at the logits
 * of the last token ([n_vocab] floats, valid until the session's next call). A context overflow
 * is MINERVA_ERR_CONTEXT_FULL and leaves the session as it was. */
MINERVA_API minerva_status minerva_session_eval(minerva_session* session, const int32_t* tokens, size_t n_tokens,
                                                  const float** logits);

/* A text embedding: evaluates tokens (the session's context is cleared before and after) and
 * writes their final hidden states pooled as the model file asks (<arch>.pooling_type: mean,
 * first or last token; mean when absent), scaled to unit length, to embedding ([n_embd];
 * capacity >= n_embd). */
MINERVA_API minerva_status minerva_session_embed(minerva_session* session, const int32_t* tokens, size_t n_tokens,
                                                   float* embedding, size_t capacity);

/* ---- sampling --------------------------------------------------------------------------- */

typedef struct minerva_sampler_params {
    float temperature;        /* 0.8; <= 0: greedy */
    int32_t top_k;            /* 40; 0: off */
    float top_p;              /* 0.95; 1: off */
    float min_p;              /* 0.05; 0: off */
    float repeat_penalty;     /* 1.0: off */
    float presence_penalty;   /* 0 */
    float frequency_penalty;  /* 0 */
    int32_t penalty_last_n;   /* 64; -1: all */
    uint64_t seed;            /* UINT64_MAX: random */
} minerva_sampler_params;

MINERVA_API minerva_sampler_params minerva_sampler_default_params(void);
MINERVA_API minerva_status minerva_sampler_create(const minerva_sampler_params* params, int32_t n_vocab,
                                                    minerva_sampler** out);
MINERVA_API void minerva_sampler_free(minerva_sampler* sampler);
/* Picks a token from n_vocab raw logits and adds it to the penalty history. */
MINERVA_API minerva_status minerva_sampler_sample(minerva_sampler* sampler, const float* logits, size_t n_vocab,
                                                    int32_t* token);

/* ---- generation ------------------------------------------------------------------------- */

/* Called with each new token and the text it completes (len may be 0 while text is held back;
 * token -1 for the last held-back text). Return false to stop. */
typedef bool (*minerva_token_fn)(int32_t token, const char* text, size_t len, void* user_data);

typedef struct minerva_generate_params {
    int32_t max_tokens;             /* 128; < 0: until the context is full */
    minerva_sampler_params sampling;
    const char* const* stop;        /* n_stop NUL-terminated stop strings (not in the output) */
    size_t n_stop;
    bool ignore_eos;
} minerva_generate_params;

typedef struct minerva_generate_result {
    int32_t n_prompt;     /* prompt tokens */
    int32_t n_cached;     /* of those, reused from the session's cache */
    int32_t n_generated;  /* tokens generated */
    minerva_finish_reason finish_reason;
    double prompt_seconds, gen_seconds;
} minerva_generate_result;

MINERVA_API minerva_generate_params minerva_generate_default_params(void);
/* Evaluates the prompt (reusing the cached common prefix) and samples up to max_tokens more,
 * streaming them to on_token (optional). result (optional) receives the counts and timings. */
MINERVA_API minerva_status minerva_generate(minerva_session* session, const int32_t* prompt, size_t n_prompt,
                                              const minerva_generate_params* params, minerva_token_fn on_token,
                                              void* user_data, minerva_generate_result* result);

#ifdef __cplusplus
}
#endif

#endif /* MINERVA_C_H */
