// kernels/cpu/multi.h: matmul kernels for small batches (2..16 activation columns: the batched
// decode of the server's concurrent streams), AVX-512 VNNI; Q4_0, Q8_0, Q4_K and Q6_K.
//
// Lanes hold columns. The activations of all columns are quantized (by the row kernels'
// quantizer, qact.h, so every column sees the bytes its decode sees) and packed once per call:
// for each group of 4 consecutive elements one vector holds the 4 bytes of every column (lane j
// = column j; 8 lanes up to 8 columns, 16 lanes up to 16), stored as x + 128 (unsigned). A group
// of 4 signed weight bytes, broadcast to all lanes, then advances every column of the row by 4
// products in one vpdpbusd. The +128 adds 128 * (sum of the block's weights) to every lane: a
// per-row constant that the row's unpack computes once and that seeds the accumulator. So:
// - a weight row is unpacked once per call (Q8_0 not at all: its bytes are broadcast in place),
//   into a few hundred bytes of L1 scratch, whatever the number of columns;
// - per 32 weights of a row and all columns: 8 vpdpbusd, and one float step (cvt, mul, fma) per
//   32-block for Q4_0/Q8_0 or per super-block for the K types (their sub-block scales are
//   integer multiplies; Q4_K's mins one vpdpwssd per pair of sub-blocks against the columns'
//   sub-block sums);
// - no weight transposes (the GEMM's 16-row tiles, gemm.h) and no per-lane partial sums reduced
//   per column (the multi-column row kernels, vec_dot.h).
// The integer sums are exact, so a column agrees with its decode to float rounding (the order of
// the float steps differs), not bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

constexpr int kColsMax = 16;

struct ColsKernel {
    int block = 0;  // elements per activation quantization block (32 or 256); k % block == 0
    // Bytes of the packed activations of nc columns of length k (a multiple of 64).
    size_t (*act_bytes)(int64_t k, int nc) = nullptr;
    // Quantizes and packs quantization blocks [b0, b1) of every column (column j at x + j * k)
    // into act (act_bytes(k, nc) bytes, 64-byte aligned). Disjoint block ranges may be packed by
    // different threads at once.
    void (*pack)(const float* x, int64_t k, int nc, int64_t b0, int64_t b1, void* act) = nullptr;
    // out[j * out_stride + r] = dot(row r, column j) for r < nr (1..4; row r at w + r * row_stride)
    // and j < nc, against the packed activations.
    void (*rows)(int64_t k, const uint8_t* w, size_t row_stride, int nr, const void* act, int nc, float* out,
                 size_t out_stride) = nullptr;
};

// The kernel for nc columns of weight type t (rows k long) on the running CPU (cpu_features.h);
// rows == nullptr where there is none or where another path is faster for that nc.
ColsKernel find_cols_kernel(DType t, int64_t k, int nc);

// The AVX-512 kernels (multi_avx512.cpp; call only on a CPU with AVX-512 VNNI). Q4_0 needs VBMI.
ColsKernel cols_kernel_avx512(DType t, bool vbmi);

}  // namespace minerva::cpu
