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
};

struct AttentionParams {
    int n_head = 0;
    int n_head_kv = 0;         // GQA: query head h reads kv head h / (n_head / n_head_kv)
    int head_dim = 0;
    float scale = 0.f;         // usually 1/sqrt(head_dim)
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
    // Scratch/activation/KV memory, zero-initialised, owned by the backend until it dies.
    virtual Tensor alloc(DType type, const int64_t ne[4]) = 0;
    // Copies between host memory and a tensor (byte offsets). read() waits for queued work.
    virtual void write(const Tensor& t, const void* src, size_t bytes, size_t offset = 0) = 0;
    virtual void read(const Tensor& t, void* dst, size_t bytes, size_t offset = 0) = 0;

    // ---- ops ----
    // out[:, i] = table[:, ids[i]] converted to f32. table: [dim, n_vocab] any type; ids: I32 [n].
    virtual void get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) = 0;
    // out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * w. w: F32 [dim].
    virtual void rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps) = 0;
    // out[m, n] = sum_k w[k, m] * x[k, n]: w is [k, m] (m rows of k, any weight type),
    // x is F32 [k, n], out is F32 [m, n]. n = 1 is decode (matrix-vector); n > 1 is prefill.
    virtual void matmul(const Tensor& w, const Tensor& x, const Tensor& out) = 0;
    // In place on x: [head_dim, n_heads, n_tokens]; rotates adjacent pairs (x[2i], x[2i+1]) of
    // the first n_rot dims of every head by pos[t] * freq_scale * base^(-2i/n_rot) / freq_factors[i].
    // pos: I32 [n_tokens]; freq_factors: F32 [n_rot/2] or nullptr.
    virtual void rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* freq_factors) = 0;
    // Stores k and v ([head_dim * n_head_kv, n_tokens], F32) into the caches ([head_dim * n_head_kv,
    // n_cells], F16 or F32) at cells rows[t] (I32 [n_tokens]), converting to the cache type.
    virtual void kv_store(const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache,
                          const Tensor& rows) = 0;
    // Causal attention with GQA. q: [head_dim, n_head, n_tokens] F32; out: same shape.
    // span: I32 [2, n_tokens]: token t attends to cache cells span[0,t] .. span[0,t]+span[1,t]-1
    // (its sequence's cells up to and including its own position). Softmax in f32.
    virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& span,
                           const Tensor& out, const AttentionParams& p) = 0;
    // out = silu(gate) * up, elementwise. All F32 of the same shape.
    virtual void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) = 0;
    // x += y, elementwise (the residual).
    virtual void add(const Tensor& x, const Tensor& y) = 0;
    // out[:, i] = x[:, rows[i]]: gathers F32 rows (e.g. the last token of each sequence before
    // the output projection). rows: I32 [n].
    virtual void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) = 0;

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
