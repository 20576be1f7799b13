// kernels/cpu/fast_ops.h: the optimised CPU ops behind CpuBackend. Same contracts as ref_ops.h
// (and kernels/backend.h); they split work over the Context's thread pool and dispatch to
// AVX2 or AVX-512 kernels by CPUID. Tested against the reference in tests/test_cpu_ops.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "backend.h"
#include "cpu/thread_pool.h"

namespace minerva::cpu {

// A 64-byte aligned buffer that only ever grows (so steady-state ops allocate nothing).
class Scratch {
public:
    void* get(size_t bytes) {
        if (bytes > cap_) {
            cap_ = (bytes + 4095) / 4096 * 4096;
            ptr_.reset(static_cast<char*>(std::aligned_alloc(64, cap_)));
        }
        return ptr_.get();
    }

private:
    struct Free {
        void operator()(char* p) const { std::free(p); }
    };
    std::unique_ptr<char, Free> ptr_;
    size_t cap_ = 0;
};

}  // namespace minerva::cpu

namespace minerva::cpu::fast {

// Makes OpenBLAS single-threaded (our pool runs one sgemm per thread). Called once per backend.
void init_blas_threads();

// attention: consecutive tokens whose spans overlap (one sequence's prefill, or one decode token).
struct AttnTile {
    int64_t t0, nt;   // tokens t0 .. t0 + nt - 1
    int64_t lo, hi;   // the union of their spans: cells [lo, hi)
};

class Context {
public:
    explicit Context(int n_threads) : pool(n_threads), per_thread(static_cast<size_t>(pool.size())) { init_blas_threads(); }
    int n_threads() const { return pool.size(); }

    ThreadPool pool;
    Scratch shared;                   // quantized activations (written once per op, read by all)
    std::vector<Scratch> per_thread;  // dequantized weight tiles, attention scores, ...
    Scratch shared2;
    Scratch moe_x, moe_out;           // matmul_id: one expert's gathered columns and its outputs
    std::vector<int32_t> moe_pairs;   // matmul_id: (token, slot) pairs sorted by expert
    std::vector<AttnTile> attn_tiles; // attention: the tiles of the current call
};

void get_rows(Context& c, const Tensor& table, const Tensor& ids, const Tensor& out);
void rms_norm(Context& c, const Tensor& x, const Tensor& w, const Tensor& out, float eps);
void matmul(Context& c, const Tensor& w, const Tensor& x, const Tensor& out);
void rope(Context& c, const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* freq_factors);
void kv_store(Context& c, const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache, const Tensor& rows);
void attention(Context& c, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& span,
               const Tensor& out, const AttentionParams& p);
void swiglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out);
void geglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out);
void add(Context& c, const Tensor& x, const Tensor& y);
void add_bias(Context& c, const Tensor& x, const Tensor& b);
void scale(Context& c, const Tensor& x, float s);
void softcap(Context& c, const Tensor& x, float cap);
void moe_route(Context& c, const Tensor& logits, const Tensor& ids, const Tensor& weights);
void matmul_id(Context& c, const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out);
// matmul_id's decode path (matmul.cpp): out + p*m = W_expert[p] x[:, col[p]] for every pair in
// one pass of the threads; false when the weight type has no row kernel.
bool matvec_experts(Context& c, const Tensor& w, const float* x, const int64_t* col, const int32_t* expert, int64_t n_pairs,
                    float* out);
void moe_sum(Context& c, const Tensor& y, const Tensor& weights, const Tensor& out);
void gather_rows(Context& c, const Tensor& x, const Tensor& rows, const Tensor& out);

}  // namespace minerva::cpu::fast
