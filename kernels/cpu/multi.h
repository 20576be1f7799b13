// kernels/cpu/multi.h: matmul kernels for small batches (2..16 activation columns: the batched
// decode of the server's concurrent streams), AVX-512 VNNI; Q4_0 and Q4_K.
//
// Lanes hold columns. The activations of all columns are quantized (by the row kernels'
// quantizer, qact.h, in the blocks their decode uses, so every column sees the bytes its decode
// sees) and packed once per call: for each group of 4 consecutive elements one vector (16 lanes;
// 8 for Q4_K up to 8 columns) holds the 4 bytes of every column. A group of 4 weight bytes broadcast to the lanes then
// advances every column by 4 products in one vpdpbusd, and the float step (cvt, mul, fma: one
// per 32-block for Q4_0, one per super-block for Q4_K, whose sub-block scales are integer
// multiplies) serves all columns at once. A weight row is unpacked once per call into a few
// hundred bytes of L1 scratch, whatever the number of columns; there are no weight transposes
// (the GEMM's 16-row tiles, gemm.h) and no per-lane partial sums to reduce per column (the
// multi-column row kernels, vec_dot.h).
//
// vpdpbusd multiplies unsigned bytes (a register) by signed bytes (a register or a broadcast in
// the instruction), so one side must be unsigned:
// - Q4_0 up to 8 columns: lanes 2j and 2j+1 hold column j against two rows whose unpacked quants
//   are interleaved by dwords, so one 64-bit broadcast feeds both rows and no lane idles. The
//   quants (0..15) are the unsigned side, the activations the signed side; Q4_0's -8 offset is a
//   per-column bias (-8 * the sum of the block's activations) that seeds the sums.
// - Q4_K (8 lanes up to 8 columns, 16 beyond): the same sides (quants 0..15 broadcast into a
//   register, activations signed); its mins are one vpdpwssd per pair of sub-blocks against the
//   columns' sub-block sums.
// - Q4_0 beyond 8 columns: the weights minus 8 are the signed side (a broadcast inside the
//   instruction), the activations + 128 the unsigned side; the +128 adds 128 * (sum of the
//   block's weights) to every lane, a per-row constant that the row's unpack computes once and
//   seeds the sums with.
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
// rows == nullptr where there is none.
ColsKernel find_cols_kernel(DType t, int64_t k, int nc);

// Which kernel family serves a batch of n columns (2..16) of type t in matmul (matmul.cpp):
// Rows = the multi-column row kernels (vec_dot.h), Gemm = the integer GEMM (gemm.h), Cols = the
// kernels above, Default = matmul's own rule (types without an entry here). Chosen per type and
// column count by measurement (docs/performance.md, "Small batches"). MINERVA_BATCH=rows, gemm
// or cols in the environment forces one family where the type has it (for A/B measurements).
enum class BatchKernel { Default, Rows, Gemm, Cols };
BatchKernel batch_kernel(DType t, int64_t k, int n);
// Forces a family from now on (Default: back to the measured choice); for benchmarks.
void force_batch_kernel(BatchKernel b);

// The AVX-512 kernels (multi_avx512.cpp; call only on a CPU with AVX-512 VNNI). Q4_0 needs VBMI.
ColsKernel cols_kernel_avx512(DType t, bool vbmi, int nc);

}  // namespace minerva::cpu
