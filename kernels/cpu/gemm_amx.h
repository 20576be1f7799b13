// kernels/cpu/gemm_amx.h: the integer GEMM of gemm.h on the AMX tile unit (Intel Sapphire Rapids
// and later), for prefill and batched decode of every type the VNNI GEMM takes (Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K).
//
// It reuses the VNNI GEMM's data as they are: the unpacked 16-row weight tile of gemm_unpack_tile
// (granule g = 16 rows x 4 unsigned quants, 64 bytes) is already the layout TDPB*D wants for
// its second source (K/4 rows of N = 16 output columns x 4 bytes), and the quantized columns of
// gemm_quantize_col (int8 quants first, then scales and sums) are rows of the first source with
// a stride of gemm_col_bytes. So per block of 32 elements (or per K sub-block of 16 / 32)
//   C[j][r] = sum_e x_q[j][e] * u[r][e]          (TDPBSUD: signed activations x unsigned quants)
// for 16 columns j x 16 weight rows r in one instruction, and the rest is the VNNI GEMM's:
// the offset of the unsigned quants (-c * sum(x_q), Q4_0 c = 8, Q8_0 c = 128) added to C, the
// K types' integer sub-block scales (vpmulld) and mins (vpdpwssd), then one float step per
// block with the block's scales. Integer sums are exact, and the float steps are the same
// instructions in the same order, so the result equals the VNNI GEMM's bit for bit.
//
// Tile use: C, A (columns), B (weights) in tmm0-2 and again in tmm3-5, alternating blocks, so
// the tile unit works on one block while the vector unit applies the scales of the previous
// one. Every call loads its tile configuration (ldtilecfg: the configuration is per thread) and
// releases the tile state when done (tilerelease), so any thread may call it at any time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

// gemm_tile's contract (gemm.h): out[j * ldo + r] = dot(row r, column j) for r < nr, j < nc.
using GemmTileFn = void (*)(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc,
                            float* out, int64_t ldo);

// The AMX kernel on the real tile instructions; only where features().amx (or detected_features().amx).
void gemm_tile_amx(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc, float* out,
                   int64_t ldo);
// The same kernel on TileEmulator (amx_tiles.h): exact, slow; needs AVX-512 VNNI only. Throws
// std::logic_error where the real instructions would fault.
void gemm_tile_amx_emulated(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc,
                            float* out, int64_t ldo);

// What the GEMM dispatches to under features(): gemm_tile_amx, gemm_tile_amx_emulated, or
// nullptr (the VNNI gemm_tile).
GemmTileFn gemm_amx_tile_fn();

// Whether this build has the AMX intrinsics (the compiler took -mamx-tile -mamx-int8).
bool amx_compiled();

// Int8 operations per second (2 per multiply-add) that the calling thread's tile unit sustains
// on back-to-back 16x16x64 TDPBSSD into four accumulator tiles, measured over about `seconds`:
// the AMX peak that minerva-bench compares the GEMM with. Needs detected_features().amx.
double amx_peak_ops_per_second(double seconds);

}  // namespace minerva::cpu
