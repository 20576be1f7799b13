// kernels/cpu/gemm_unpack.cpp: the GEMM's column quantization and the scalar staging of weight
// rows (gemm.h, gemm_layout.h), and the choice between the VNNI and AVX2 kernels. Built with
// the baseline flags: nothing here needs AVX-512.
#include <immintrin.h>

#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/gemm.h"
#include "cpu/gemm_layout.h"
#include "cpu/qact.h"

namespace minerva::cpu {
namespace {

inline float* lane_f(uint8_t* tile, size_t off, int64_t i, int r) { return reinterpret_cast<float*>(tile + off) + 16 * i + r; }
inline int32_t* lane_i(uint8_t* tile, size_t off, int64_t i, int r) {
    return reinterpret_cast<int32_t*>(tile + off) + 16 * i + r;
}
inline int32_t pack16(int a, int b) {
    return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(a)) | (static_cast<uint32_t>(static_cast<uint16_t>(b)) << 16));
}

}  // namespace

bool gemm_supported(DType t) {
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q2_K:
        case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
            return true;
        default:
            return false;
    }
}

void gemm_unpack_tile(DType t, const uint8_t* src, size_t row_stride, int nr, int64_t k, void* tile, uint8_t* stage) {
    if (features().avx512_vnni) return gemm_unpack_tile_avx512(t, src, row_stride, nr, k, tile, stage);
    gemm_unpack_tile_avx2(t, src, row_stride, nr, k, tile, stage);
}

void gemm_tile(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t col_stride, int nc, float* out, int64_t ldo) {
    if (features().avx512_vnni) return gemm_tile_avx512(t, k, tile, nr, cols, col_stride, nc, out, ldo);
    gemm_tile_avx2(t, k, tile, nr, cols, col_stride, nc, out, ldo);
}

size_t gemm_tile_bytes(DType t, int64_t k) { return gemm_layout(t, k).tile_bytes; }
size_t gemm_col_bytes(DType t, int64_t k) { return gemm_layout(t, k).col_bytes; }

void gemm_quantize_col(DType t, const float* x, int64_t k, void* dst) {
    const GemmLayout L = gemm_layout(t, k);
    uint8_t* base = static_cast<uint8_t*>(dst);
    int8_t* q = reinterpret_cast<int8_t*>(base);
    float* dx = reinterpret_cast<float*>(base + L.cdx);
    int sums[16];
    if (L.k_mode) {
        int32_t* pair = reinterpret_cast<int32_t*>(base + L.cpair);
        for (int64_t b = 0; b < L.nblk; ++b) {
            dx[b] = quantize_i8_block(x + 256 * b, 256, q + 256 * b, sums);
            if (L.sb == 16) {
                for (int p = 0; p < 8; ++p) pair[8 * b + p] = pack16(sums[2 * p], sums[2 * p + 1]);
            } else {
                for (int p = 0; p < 4; ++p)
                    pair[4 * b + p] = pack16(sums[4 * p] + sums[4 * p + 1], sums[4 * p + 2] + sums[4 * p + 3]);
            }
        }
        return;
    }
    int32_t* bias = reinterpret_cast<int32_t*>(base + L.cbias);
    float* dxs = reinterpret_cast<float*>(base + L.cdxs);
    for (int64_t b = 0; b < L.nblk; ++b) {
        dx[b] = quantize_i8_block(x + 32 * b, 32, q + 32 * b, sums);
        const int s = sums[0] + sums[1];
        bias[b] = -L.bias_c * s;
        dxs[b] = dx[b] * static_cast<float>(s);
    }
}

void gemm_params_q4_k(const GemmLayout& L, const uint8_t* const* rows, int64_t b, uint8_t* tile) {
    int32_t* sc = reinterpret_cast<int32_t*>(tile + L.sc) + 8 * 16 * b;
    int32_t* mn = reinterpret_cast<int32_t*>(tile + L.mn) + 4 * 16 * b;
    for (int r = 0; r < 16; ++r) {
        const uint8_t* blk = rows[r] + 144 * b;
        uint8_t s8[8], m8[8];
        for (int s = 0; s < 8; ++s) k4_scale_min(s, blk + 4, s8[s], m8[s]);
        for (int s = 0; s < 8; ++s) sc[16 * s + r] = s8[s];
        for (int q = 0; q < 4; ++q) mn[16 * q + r] = static_cast<int32_t>(m8[2 * q] | (static_cast<uint32_t>(m8[2 * q + 1]) << 16));
    }
}

void gemm_params_q6_k(const GemmLayout& L, const uint8_t* const* rows, int64_t b, uint8_t* tile) {
    int32_t* sc = reinterpret_cast<int32_t*>(tile + L.sc) + 16 * 16 * b;
    int32_t* mn = reinterpret_cast<int32_t*>(tile + L.mn) + 8 * 16 * b;
    for (int r = 0; r < 16; ++r) {
        const int8_t* s8 = reinterpret_cast<const int8_t*>(rows[r] + 210 * b + 192);
        for (int s = 0; s < 16; ++s) sc[16 * s + r] = s8[s];
        for (int q = 0; q < 8; ++q)
            mn[16 * q + r] = static_cast<int32_t>(static_cast<uint16_t>(32 * s8[2 * q]) |
                                                  (static_cast<uint32_t>(static_cast<uint16_t>(32 * s8[2 * q + 1])) << 16));
    }
}

void gemm_stage_row(DType t, const GemmLayout& L, const uint8_t* src, uint8_t* u, int r, uint8_t* tile) {
    const int64_t k = L.k;
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: {
            const bool has_min = L.has_min, five = t == DType::Q5_0 || t == DType::Q5_1;
            const size_t bb = dtype_info(t).block_bytes;
            for (int64_t b = 0; b < k / 32; ++b) {
                const uint8_t* blk = src + b * bb;
                uint16_t dh, mh = 0;
                std::memcpy(&dh, blk, 2);
                if (has_min) std::memcpy(&mh, blk + 2, 2);
                uint32_t qh = 0;
                if (five) std::memcpy(&qh, blk + (has_min ? 4 : 2), 4);
                const uint8_t* qs = blk + (has_min ? 4 : 2) + (five ? 4 : 0);
                // Elements 0..15 are the low nibbles, 16..31 the high ones; Q5's bit j of qh is
                // bit 4 of element j (spread to bytes by a shuffle, tested by a per-byte mask).
                const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)), m4 = _mm_set1_epi8(15);
                __m256i v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
                if (five) {
                    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(qh)),
                                                               _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
                    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
                    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
                    v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
                }
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 32 * b), v);
                *lane_f(tile, L.d, b, r) = fp16_to_f32(dh);
                *lane_f(tile, L.m, b, r) = has_min ? fp16_to_f32(mh) : 0.f;
            }
            return;
        }
        case DType::Q8_0:
            for (int64_t b = 0; b < k / 32; ++b) {
                const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(src) + b;
                for (int j = 0; j < 32; ++j) u[32 * b + j] = static_cast<uint8_t>(blk->qs[j] + 128);
                *lane_f(tile, L.d, b, r) = fp16_to_f32(blk->d);
                *lane_f(tile, L.m, b, r) = 0.f;
            }
            return;
        case DType::Q2_K:
            for (int64_t b = 0; b < k / 256; ++b) {
                const BlockQ2_K* blk = reinterpret_cast<const BlockQ2_K*>(src) + b;
                uint8_t* ub = u + 256 * b;
                int is = 0;
                for (int half = 0; half < 2; ++half)
                    for (int shift = 0, e = 128 * half; shift < 8; shift += 2)
                        for (int part = 0; part < 2; ++part, e += 16, ++is) {
                            for (int l = 0; l < 16; ++l) ub[e + l] = (blk->qs[32 * half + l + 16 * part] >> shift) & 3;
                            *lane_i(tile, L.sc, 16 * b + is, r) = blk->scales[is] & 15;
                        }
                for (int p = 0; p < 8; ++p) *lane_i(tile, L.mn, 8 * b + p, r) = pack16(blk->scales[2 * p] >> 4, blk->scales[2 * p + 1] >> 4);
                *lane_f(tile, L.d, b, r) = fp16_to_f32(blk->d);
                *lane_f(tile, L.m, b, r) = fp16_to_f32(blk->dmin);
            }
            return;
        case DType::Q3_K:
            for (int64_t b = 0; b < k / 256; ++b) {
                const BlockQ3_K* blk = reinterpret_cast<const BlockQ3_K*>(src) + b;
                int8_t sc[16];
                q3k_scales(blk->scales, sc);
                uint8_t* ub = u + 256 * b;
                int bit = 0;
                for (int half = 0; half < 2; ++half)
                    for (int shift = 0, e = 128 * half; shift < 8; shift += 2, ++bit)
                        for (int part = 0; part < 2; ++part, e += 16)
                            for (int l = 0; l < 16; ++l) {
                                const int kk = l + 16 * part;
                                // value = low2 - (hbit ? 0 : 4), stored as value + 4 in 0..7
                                ub[e + l] = static_cast<uint8_t>(((blk->qs[32 * half + kk] >> shift) & 3) + ((blk->hmask[kk] >> bit) & 1) * 4);
                            }
                for (int s = 0; s < 16; ++s) *lane_i(tile, L.sc, 16 * b + s, r) = sc[s];
                for (int p = 0; p < 8; ++p) *lane_i(tile, L.mn, 8 * b + p, r) = pack16(4 * sc[2 * p], 4 * sc[2 * p + 1]);
                const float d = fp16_to_f32(blk->d);
                *lane_f(tile, L.d, b, r) = d;
                *lane_f(tile, L.m, b, r) = d;
            }
            return;
        case DType::Q4_K: case DType::Q5_K: {
            const bool five = t == DType::Q5_K;
            const size_t bb = dtype_info(t).block_bytes;
            for (int64_t b = 0; b < k / 256; ++b) {
                const uint8_t* blk = src + b * bb;
                uint16_t dh, mh;
                std::memcpy(&dh, blk, 2);
                std::memcpy(&mh, blk + 2, 2);
                const uint8_t* qh = blk + 16;
                const uint8_t* qs = blk + (five ? 48 : 16);
                uint8_t* ub = u + 256 * b;
                uint8_t sc[8], mn[8];
                for (int j = 0; j < 4; ++j) {
                    for (int l = 0; l < 32; ++l) {
                        ub[64 * j + l] = static_cast<uint8_t>((qs[32 * j + l] & 15) | (five ? ((qh[l] >> (2 * j)) & 1) << 4 : 0));
                        ub[64 * j + 32 + l] = static_cast<uint8_t>((qs[32 * j + l] >> 4) | (five ? ((qh[l] >> (2 * j + 1)) & 1) << 4 : 0));
                    }
                }
                for (int s = 0; s < 8; ++s) {
                    k4_scale_min(s, blk + 4, sc[s], mn[s]);
                    *lane_i(tile, L.sc, 8 * b + s, r) = sc[s];
                }
                for (int p = 0; p < 4; ++p) *lane_i(tile, L.mn, 4 * b + p, r) = pack16(mn[2 * p], mn[2 * p + 1]);
                *lane_f(tile, L.d, b, r) = fp16_to_f32(dh);
                *lane_f(tile, L.m, b, r) = fp16_to_f32(mh);
            }
            return;
        }
        case DType::Q6_K:
            for (int64_t b = 0; b < k / 256; ++b) {
                const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(src) + b;
                uint8_t* ub = u + 256 * b;
                for (int half = 0; half < 2; ++half) {
                    const uint8_t* ql = blk->ql + 64 * half;
                    const uint8_t* qh = blk->qh + 32 * half;
                    for (int l = 0; l < 32; ++l) {
                        ub[128 * half + l] = static_cast<uint8_t>((ql[l] & 15) | ((qh[l] & 3) << 4));
                        ub[128 * half + l + 32] = static_cast<uint8_t>((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
                        ub[128 * half + l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                        ub[128 * half + l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                    }
                }
                for (int s = 0; s < 16; ++s) *lane_i(tile, L.sc, 16 * b + s, r) = blk->scales[s];
                for (int p = 0; p < 8; ++p) *lane_i(tile, L.mn, 8 * b + p, r) = pack16(32 * blk->scales[2 * p], 32 * blk->scales[2 * p + 1]);
                const float d = fp16_to_f32(blk->d);
                *lane_f(tile, L.d, b, r) = d;
                *lane_f(tile, L.m, b, r) = d;
            }
            return;
        default:
            return;
    }
}

}  // namespace minerva::cpu
