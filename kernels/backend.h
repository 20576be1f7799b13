// kernels/backend.h: the Backend interface. engine/ calls the LLaMA ops only through this;
// kernels/cpu and kernels/vulkan implement it. No SIMD or Vulkan types leak out of here.
//
// Conventions
// - A Tensor is a view of backend-owned memory (or, for CPU weights, of the mapped file).
//   ne[0] is the contiguous dimension; tensors are dense (row stride = row_bytes(type, ne[0])).
// - Activations are F32 unless said otherwise; weights keep their file type.
// - Ops are enqueued in order. On the CPU they run at once; on Vulkan they are recorded into
//   one command buffer, submitted by submit() and waited for by read()/sync().
// - "rows" below means ne[1]*ne[2]*ne[3]: the tokens of a batch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "minerva/types.h"

namespace minerva {

struct Tensor {
    DType type = DType::F32;
    int64_t ne[4] = {1, 1, 1, 1};
    void* host = nullptr;     // CPU-addressable data (CPU backend); nullptr on device-only memory
    uint64_t buffer = 0;      // backend buffer id (Vulkan); 0 for host memory
    uint64_t offset = 0;      // byte offset inside that buffer

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
    size_t row_size() const { return row_bytes(type, ne[0]); }
    size_t nbytes() const { return row_size() * static_cast<size_t>(n_rows()); }
    template <typename T> T* data() const { return static_cast<T*>(host); }
};

struct RopeParams {
    int n_rot = 0;             // rotated dimensions per head (rope.dimension_count), <= head_dim
    float freq_base = 10000.f;
    float freq_scale = 1.f;    // positions are multiplied by this (linear scaling)
    bool neox = false;         // pairs (x[i], x[i + n_rot/2]) (NEOX) instead of (x[2i], x[2i+1]) (NORM)
    float attn_factor = 1.f;   // cos and sin are multiplied by this (LongRoPE's attention factor)
};

struct AttentionParams {
    int n_head = 0;
    int n_head_kv = 0;         // GQA: query head h reads kv head h / (n_head / n_head_kv)
    int head_dim = 0;
    float scale = 0.f;         // usually 1/sqrt(head_dim)
    float softcap = 0.f;       // > 0: score s -> softcap * tanh(s / softcap) after scaling (Gemma 2)
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;  // "cpu (AVX-512, 2 threads)", "vulkan: NVIDIA H100"

    // ---- memory ----
    // Makes a weight available to ops. The CPU backend uses `data` in place (it must outlive the
    // backend: it is the model's mmap); Vulkan copies it to device-local memory.
    virtual Tensor upload_weight(DType type, const int64_t ne[4], const void* data, const std::string& name) = 0;
    // Called once before the first upload_weight with the total bytes to come, so a model that
    // cannot fit the device is an Error before any upload (and uploads can report progress).
    virtual void plan_weights(uint64_t total_bytes) { (void)total_bytes; }
    // Whether kv_store/attention take caches of this type (F16 and F32 everywhere; Q8_0, Q4_0 where
    // the backend implements them).
    virtual bool supports_kv_type(DType t) const { return t == DType::F16 || t == DType::F32; }
    // Scratch/activation/KV memory, zero-initialised, owned by the backend until it dies.
    virtual Tensor alloc(DType type, const int64_t ne[4]) = 0;
    // Copies between host memory and a tensor (byte offsets). read() waits for queued work.
    virtual void write(const Tensor& t, const void* src, size_t bytes, size_t offset = 0) = 0;
    virtual void read(const Tensor& t, void* dst, size_t bytes, size_t offset = 0) = 0;

    // ---- ops ----
    // out[:, i] = table[:, ids[i]] converted to f32. table: [dim, n_vocab] any type; ids: I32 [n].
    virtual void get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) = 0;
    // out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * w. w: F32 [dim]. out may be x itself
    // (the per-head q/k norms run in place on [head_dim, heads * tokens]).
    virtual void rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps) = 0;
    // out[m, n] = sum_k w[k, m] * x[k, n]: w is [k, m] (m rows of k, any weight type),
    // x is F32 [k, n], out is F32 [m, n]. n = 1 is decode (matrix-vector); n > 1 is prefill.
    virtual void matmul(const Tensor& w, const Tensor& x, const Tensor& out) = 0;
    // In place on x: [head_dim, n_heads, n_tokens]; rotates the pairs of the first n_rot dims of
    // every head (adjacent (x[2i], x[2i+1]), or (x[i], x[i + n_rot/2]) with p.neox) by the angle
    // pos[t] * freq_scale * base^(-2i/n_rot) / freq_factors[i], cos and sin scaled by attn_factor.
    // pos: I32 [n_tokens]; freq_factors: F32 [n_rot/2] or nullptr.
    virtual void rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* freq_factors) = 0;
    // Stores k and v ([head_dim * n_head_kv, n_tokens], F32) into the caches ([head_dim * n_head_kv,
    // n_cells], of a type supports_kv_type() accepts) at cells rows[t] (I32 [n_tokens]), converting
    // (or quantizing to blocks of 32) to the cache type.
    virtual void kv_store(const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache,
                          const Tensor& rows) = 0;
    // Causal attention with GQA. q: [head_dim, n_head, n_tokens] F32; out: same shape.
    // span: I32 [2, n_tokens]: token t attends to cache cells span[0,t] .. span[0,t]+span[1,t]-1
    // (its sequence's cells up to and including its own position; a sliding-window layer passes
    // shorter spans). Scores are q.k * scale, then softcapped when p.softcap > 0. Softmax in f32.
    virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& span,
                           const Tensor& out, const AttentionParams& p) = 0;
    // out = silu(gate) * up, elementwise. All F32 of the same shape.
    virtual void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) = 0;
    // out = gelu(gate) * up, elementwise, gelu in its tanh form
    // 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))). All F32 of the same shape.
    virtual void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) = 0;
    // x += y, elementwise (the residual).
    virtual void add(const Tensor& x, const Tensor& y) = 0;
    // x[:, r] += b for every row r: a bias. x: F32 [dim, rows...]; b: F32 [dim].
    virtual void add_bias(const Tensor& x, const Tensor& b) = 0;
    // x *= s, elementwise, in place.
    virtual void scale(const Tensor& x, float s) = 0;
    // x = cap * tanh(x / cap), elementwise, in place (Gemma's final-logit softcapping).
    virtual void softcap(const Tensor& x, float cap) = 0;
    // out[:, i] = x[:, rows[i]]: gathers F32 rows (e.g. the last token of each sequence before
    // the output projection). rows: I32 [n].
    virtual void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) = 0;

    // Context shift: moves cells [src, src + n) of both caches to [dst, dst + n) (dst < src) and
    // rotates the moved K rows by `delta` positions (RoPE with p's pairing, base and scaling and
    // the freq_factors; attn_factor is not applied again), so that a sequence whose cells
    // dst .. src-1 were dropped continues at shifted positions without evaluating anything again.
    // The caches are [head_dim * n_head_kv, n_cells]. The default reads the range to the host,
    // shifts it there and writes it back (a rare operation, one per context overflow).
    virtual void kv_shift(const Tensor& k_cache, const Tensor& v_cache, int64_t dst, int64_t src, int64_t n, int delta,
                          int head_dim, const RopeParams& p, const Tensor* freq_factors);

    // ---- mixture of experts ----
    // Routing: for each token t, p = softmax(logits[:, t]) over all E experts; ids[:, t] = the
    // k = ids.ne[0] experts of largest p (best first, ties to the lower index); weights[:, t] =
    // their p divided by the sum of the k chosen p (the sum clamped below at 6.1e-5).
    // logits: F32 [E, n]; ids: I32 [k, n]; weights: F32 [k, n].
    virtual void moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights) = 0;
    // out[:, j, t] = W_e x_jt with e = ids[j, t]: w is [n_in, m, E] (E matrices [n_in, m], any
    // weight type), x is F32 [n_in, n] (every slot j of token t reads x[:, t]) or [n_in, k, n]
    // (slot j reads x[:, j, t]), out is F32 [m, k, n]. Only the chosen experts' rows are read.
    virtual void matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) = 0;
    // out[:, t] = sum_j weights[j, t] * y[:, j, t]. y: F32 [d, k, n]; weights: F32 [k, n]; out: F32 [d, n].
    virtual void moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out) = 0;

    // ---- execution ----
    virtual void submit() = 0;  // start executing what was enqueued (no-op on CPU)
    virtual void sync() = 0;    // wait until everything enqueued has finished
};

struct BackendOptions {
    std::string device = "auto";  // "auto", "cpu", "vulkan", "vulkan:N"
    int n_threads = 0;            // CPU threads; 0 = number of physical cores
};

// Creates the backend for opts.device. "auto" picks the best Vulkan device and falls back to
// the CPU with one log line; an explicit "vulkan" without a device is an Error.
std::unique_ptr<Backend> make_backend(const BackendOptions& opts);

// Per-backend factories (kernels/cpu, kernels/vulkan).
std::unique_ptr<Backend> make_cpu_backend(int n_threads);

}  // namespace minerva
