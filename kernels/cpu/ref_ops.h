// kernels/cpu/ref_ops.h: the scalar reference of every Backend op (plain C++, no SIMD, no
// threads). The fast CPU paths and the Vulkan shaders are tested against these by normalised
// error. Arguments follow kernels/backend.h exactly; every tensor must have host memory.
// Each function validates its shapes and types first (check_* below) and throws minerva::Error
// on a mismatch, an out-of-range id/row/cell, or an unsupported type.
#pragma once
#include "backend.h"

namespace minerva::cpu::ref {

void get_rows(const Tensor& table, const Tensor& ids, const Tensor& out);
void rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps);
void matmul(const Tensor& w, const Tensor& x, const Tensor& out);
void rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* freq_factors);
void kv_store(const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache, const Tensor& rows);
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& span,
               const Tensor& out, const AttentionParams& p);
void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out);
void geglu(const Tensor& gate, const Tensor& up, const Tensor& out);
void add(const Tensor& x, const Tensor& y);
void add_bias(const Tensor& x, const Tensor& b);
void scale(const Tensor& x, float s);
void softcap(const Tensor& x, float cap);
void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out);
void moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights);
void matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out);
void moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out);

}  // namespace minerva::cpu::ref

namespace minerva::cpu {

// Shape/type/index validation shared by the reference and the fast paths.
void check_get_rows(const Tensor& table, const Tensor& ids, const Tensor& out);
void check_rms_norm(const Tensor& x, const Tensor& w, const Tensor& out);
void check_matmul(const Tensor& w, const Tensor& x, const Tensor& out);
void check_rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* freq_factors);
void check_kv_store(const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache, const Tensor& rows);
void check_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& span,
                     const Tensor& out, const AttentionParams& p);
void check_same_f32(const char* op, const Tensor& a, const Tensor& b);
void check_gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out);
void check_add_bias(const Tensor& x, const Tensor& b);
void check_softcap(const Tensor& x, float cap);
void check_moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights);
void check_matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out);
void check_moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out);

// tanh-form GELU, as the reference computes it (double precision).
float gelu_ref(float z);
// The expert matrix e of a [n_in, m, E] weight, as a 2-D tensor view.
Tensor expert_view(const Tensor& w, int64_t e);

// The K/V cache types: F16, F32, and the 8- and 4-bit block types Q8_0 and Q4_0.
bool kv_cache_type_supported(DType t);
// Reads element i of a K/V cache row.
float cache_at(const Tensor& cache, int64_t cell, int64_t i);
// Writes one cache row (cache.ne[0] floats), converting or quantizing to the cache type.
void store_cache_row(const Tensor& cache, int64_t cell, const float* src);

}  // namespace minerva::cpu
