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

struct DotKernel {
    DotFn fn = nullptr;       // nullptr: no fast kernel (dequantize + f32 dot instead)
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
