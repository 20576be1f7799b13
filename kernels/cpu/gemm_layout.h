// kernels/cpu/gemm_layout.h: where things lie in an unpacked GEMM tile and a quantized column
// (gemm.h). Internal to the GEMM's two translation units.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

struct GemmLayout {
    bool k_mode = false;  // Super256 (K types) or Block32
    bool has_min = false; // Block32 with a per-block min (Q4_1, Q5_1)
    int bias_c = 0;       // Block32: w = d * (u - bias_c)
    int sb = 32;          // K: sub-block size (16 or 32)
    int64_t k = 0, nblk = 0, nsub = 0, npair = 0;
    // tile (16 rows, lane r = row r): q u8x4[k/4][16]; d f32[nblk][16]; m f32[nblk][16]
    // (Block32 min / K dmin); K: sc i32[nsub][16], mn (int16 pairs) i32[npair][16]
    size_t d = 0, m = 0, sc = 0, mn = 0, tile_bytes = 0;
    // column: q i8[k]; dx f32[nblk]; Block32: bias i32[nblk], dxs f32[nblk] (dx * sum q);
    // K: pair i32[npair] (int16 sums of sub-blocks 2p and 2p+1)
    size_t cdx = 0, cbias = 0, cdxs = 0, cpair = 0, col_bytes = 0;
};

inline size_t gemm_align64(size_t b) { return (b + 63) / 64 * 64; }

inline GemmLayout gemm_layout(DType t, int64_t k) {
    GemmLayout L;
    L.k = k;
    switch (t) {
        case DType::Q4_0: L.bias_c = 8; break;
        case DType::Q5_0: L.bias_c = 16; break;
        case DType::Q8_0: L.bias_c = 128; break;
        case DType::Q4_1: case DType::Q5_1: L.has_min = true; break;
        case DType::Q4_K: case DType::Q5_K: L.k_mode = true; L.sb = 32; break;
        default: L.k_mode = true; L.sb = 16; break;  // Q2_K, Q3_K, Q6_K
    }
    const size_t ku = static_cast<size_t>(k);
    L.nblk = L.k_mode ? k / 256 : k / 32;
    const size_t nb = static_cast<size_t>(L.nblk);
    L.d = ku * 16;
    L.m = L.d + nb * 64;
    size_t end = L.m + nb * 64;
    if (L.k_mode) {
        L.nsub = k / L.sb;
        L.npair = L.nsub / 2;
        L.sc = end;
        L.mn = L.sc + static_cast<size_t>(L.nsub) * 64;
        end = L.mn + static_cast<size_t>(L.npair) * 64;
    }
    L.tile_bytes = gemm_align64(end);
    L.cdx = gemm_align64(ku);
    if (L.k_mode) {
        L.cpair = gemm_align64(L.cdx + nb * 4);
        L.col_bytes = gemm_align64(L.cpair + static_cast<size_t>(L.npair) * 4);
    } else {
        L.cbias = gemm_align64(L.cdx + nb * 4);
        L.cdxs = gemm_align64(L.cbias + nb * 4);
        L.col_bytes = gemm_align64(L.cdxs + nb * 4);
    }
    return L;
}

// Scalar staging for the types without a direct SIMD unpack: row r's quants in element order
// into u (k bytes) and its scales into lane r of the tile's parameter arrays.
void gemm_stage_row(DType t, const GemmLayout& L, const uint8_t* src, uint8_t* u, int r, uint8_t* tile);

// The integer scales (sc) and min pairs (mn) of super-block b of the 16 rows into the tile:
// Q4_K's 6-bit scales and mins, Q6_K's int8 scales (mins 32 * scale). Shared by the unpackers.
void gemm_params_q4_k(const GemmLayout& L, const uint8_t* const* rows, int64_t b, uint8_t* tile);
void gemm_params_q6_k(const GemmLayout& L, const uint8_t* const* rows, int64_t b, uint8_t* tile);

// Where column c of NC quantized columns (gemm_quantize_col's layout, cs bytes apart) keeps its
// quants, scales and per-block terms (dxs and bias for Block32, pair for Super256). In an
// anonymous namespace: each GEMM TU, built for its own instruction set, has its own copy.
namespace {
template <int NC>
struct GemmCols {
    const int8_t* q[NC];
    const float* dx[NC];
    const float* dxs[NC];
    const int32_t* bias[NC];
    const int32_t* pair[NC];
    GemmCols(const GemmLayout& L, const uint8_t* cols, size_t cs) {
        for (int c = 0; c < NC; ++c) {
            const uint8_t* col = cols + cs * c;
            q[c] = reinterpret_cast<const int8_t*>(col);
            dx[c] = reinterpret_cast<const float*>(col + L.cdx);
            dxs[c] = reinterpret_cast<const float*>(col + L.cdxs);
            bias[c] = reinterpret_cast<const int32_t*>(col + L.cbias);
            pair[c] = reinterpret_cast<const int32_t*>(col + L.cpair);
        }
    }
};
}  // namespace

// gemm.h's gemm_unpack_tile and gemm_tile per instruction set (chosen by gemm_unpack.cpp).
void gemm_unpack_tile_avx512(DType t, const uint8_t* src, size_t row_stride, int nr, int64_t k, void* tile, uint8_t* stage);
void gemm_tile_avx512(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc, float* out,
                      int64_t ldo);
void gemm_unpack_tile_avx2(DType t, const uint8_t* src, size_t row_stride, int nr, int64_t k, void* tile, uint8_t* stage);
void gemm_tile_avx2(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc, float* out,
                    int64_t ldo);

}  // namespace minerva::cpu
