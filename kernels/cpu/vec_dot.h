// kernels/cpu/vec_dot.h: row-times-vector kernels of the fast matmul, one per weight type and
// instruction set. A kernel computes out[r] = dot(w row r, x) for nr (1..4) consecutive weight
// rows (row r at w + r * row_stride) against one activation vector: 2-4 rows share each
// activation load and give the core independent dependency chains.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

enum class ActKind { F32, Q8Pair, Q8Oct, Q8K, Q8KNib };

using DotFn = void (*)(int64_t k, const uint8_t* w, size_t row_stride, int nr, const void* act, float* out);

// The same dot products for nc (1..kMultiColumns) activation columns at once: column j at
// act + j * act_stride, its results at out + j * out_stride. The weights of each row are unpacked
// once for all the columns, and every column gets exactly the arithmetic of the DotFn (so the
// results are bit-identical to nc single-column calls). For small batches (batched decode).
constexpr int kMultiColumns = 8;
using MultiDotFn = void (*)(int64_t k, const uint8_t* w, size_t row_stride, int nr, const void* act, size_t act_stride, int nc,
                            float* out, size_t out_stride);

struct DotKernel {
    DotFn fn = nullptr;       // nullptr: no fast kernel (dequantize + f32 dot instead)
    MultiDotFn multi = nullptr;  // optional (see MultiDotFn)
    ActKind act = ActKind::F32;
    int bias_c = 0;           // for Q8Pair/Q8Oct activations: the offset the kernel's unsigned quants carry
};

// Picks the kernel for a weight type on the running CPU (cpu_features.h).
DotKernel find_dot_kernel(DType t);

// f32 . f32 (AVX2), for the generic path and attention.
float dot_f32_avx2(const float* a, const float* b, int64_t n);

// Per-ISA tables (vec_dot_avx2.cpp, vec_dot_avx512.cpp).
DotKernel dot_kernel_avx2(DType t);
DotKernel dot_kernel_avx512(DType t);

}  // namespace minerva::cpu
