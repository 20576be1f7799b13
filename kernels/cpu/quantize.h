// kernels/cpu/quantize.h: reference quantizers, f32 -> every compute type's block format.
//
// Block layouts are ggml's (they are what GGUF files hold); the dequantizers live in
// kernels/cpu/dequant.h. The legacy types (Q4_0 .. Q8_0) use the usual closed-form block scale;
// the K-quants search their sub-block scales (and mins) by weighted least squares over a set of
// candidate scales, then quantize the sub-block scales themselves and re-round the values with
// the final scales, so the error is what the stored numbers give, not what the search hoped for.
//
// quantize_row is deterministic (same input, same bytes) and allocation-free; quantize_rows
// splits whole tensors by rows over threads, which does not change the result.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

// True for the types quantize_row can produce (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K .. Q6_K).
bool can_quantize(DType t);

// Encodes n floats (n a multiple of the type's block size) into dst, which must hold
// row_bytes(t, n) bytes. Throws minerva::Error for a type it cannot produce or a bad n.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// n_rows rows of n_per_row floats (contiguous) into contiguous encoded rows, n_threads threads
// (<= 0: hardware concurrency).
void quantize_rows(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row, int n_threads);

}  // namespace minerva::cpu
