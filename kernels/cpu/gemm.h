// kernels/cpu/gemm.h: the integer GEMM for every quantized weight type (prefill, batched decode,
// and decode of the types without a row kernel). AVX-512 VNNI (gemm_avx512.cpp), or on other
// CPUs AVX2 (gemm_avx2.cpp: vpmaddubsw/vpmaddwd on the same tiles; there it serves prefill and
// batched decode of the types with a row kernel, whose activations it quantizes alike).
//
// Weights are unpacked one tile of 16 rows at a time into an interleaved form: for every group
// of 4 consecutive elements (a "granule"), one 64-byte vector holds the 4 unsigned 8-bit quants
// of each of the 16 rows, so one vpdpbusd against the column's 4 activations (a 32-bit
// broadcast) advances all 16 rows by 4 products: lane r of the accumulator is row r. The sums
// stay integer over a block (32 elements) or a K super-block (256), then one float step per
// block applies the scales, again 16 rows per instruction. So the float work is 1/8 (1/64 for
// the K types) of what a per-lane scheme pays, and the output of a tile is one vector store per
// column. A tile (16 x k bytes of quants plus the scales) stays in L1/L2 while every column
// streams past it; each weight is unpacked once per call.
//
// The activations are quantized per column by the row kernels' quantizer (qact.h), in blocks of
// 32 (the 32-element types) or 256 (the K types), so a column sees the same 8-bit activations
// as its decode; the float rounding order differs from the row kernels (they keep per-lane
// partial sums), so prefill and decode agree to float rounding, not bit for bit.
//
// Two modes:
// - Block32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): w = d * (u - c) or w = d * u + m. Per block and
//   column: iacc = -c * sum(q) (exact), 8 vpdpbusd, then acc += float(iacc) * (d * dx)
//   (+ m * (dx * sum(q)) for the types with a min).
// - Super256 (Q2_K .. Q6_K): w = d * sc_s * u - dmin * mn_s over sub-blocks s of SB = 16 or 32
//   elements (Q3_K and Q6_K fold their offsets into mn: 4 * sc, 32 * sc, with dmin = d). Per
//   super-block and column: sum_s sc_s * dot_s (integer, vpmulld per sub-block) and
//   sum_s mn_s * bsum_s (vpdpwssd on int16 pairs), then two float steps.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

constexpr int kGemmTileRows = 16;

bool gemm_supported(DType t);  // the quantized types it serves

// Bytes of one unpacked 16-row tile / one quantized column of length k (k a multiple of the
// type's block size), each a multiple of 64.
size_t gemm_tile_bytes(DType t, int64_t k);
size_t gemm_col_bytes(DType t, int64_t k);

// Quantizes a column of k floats for weight type t (blocks of 256 for the K types, 32 otherwise,
// by qact.h's quantizer). dst: gemm_col_bytes, 64-byte aligned.
void gemm_quantize_col(DType t, const float* x, int64_t k, void* dst);

// Unpacks rows [0, nr) (1 <= nr <= 16; row r at src + r * row_stride) into a tile (64-byte
// aligned). stage: scratch of 16 * k bytes for the types unpacked through a row-major staging.
void gemm_unpack_tile(DType t, const uint8_t* src, size_t row_stride, int nr, int64_t k, void* tile, uint8_t* stage);

// out[j * ldo + r] = dot(row r, column j) for r < nr, j < nc: every column against one tile.
void gemm_tile(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc, float* out,
               int64_t ldo);

}  // namespace minerva::cpu
