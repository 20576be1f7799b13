// kernels/cpu/gemm_avx2.cpp: the GEMM's tile unpacking and micro-kernels for CPUs without
// AVX-512 VNNI (gemm.h): the same tile layout (gemm_layout.h), worked as two halves of 8 rows.
// A granule's 4 unsigned quants per row meet the column's 4 signed activations in vpmaddubsw
// (pairs summed to int16), several granules are summed in int16 while that cannot overflow
// (G16 below: 8 for quants up to 15, 4 up to 31, 2 up to 63), then vpmaddwd widens to int32.
// Q8_0's quants (up to 255) would saturate vpmaddubsw, so they go signed: |q| against x with q's
// sign (at most 128 * 127 per product), one granule at a time. The float steps per block are
// those of the VNNI kernels, so the result agrees with them to float rounding. Q4_0, Q8_0, Q4_K
// and Q6_K tiles are transposed straight from the blocks, the other types through a staging row.
// Built with the baseline (AVX2) flags.
#include <immintrin.h>

#include <cstring>

#include "cpu/dequant.h"
#include "cpu/gemm.h"
#include "cpu/gemm_layout.h"

namespace minerva::cpu {
namespace {

// 8 rows x 16 bytes (row i at p[i]) -> out[j] = dword j of every row (lane i = row i): the
// 32-byte half of a granule. Rows i and i + 4 share a vector, one per 128-bit lane.
inline void transpose8x16(const uint8_t* const* p, __m256i out[4]) {
    auto rows = [&](int i) {
        return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[i]))),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[i + 4])), 1);
    };
    const __m256i a = rows(0), b = rows(1), c = rows(2), d = rows(3);
    const __m256i ab0 = _mm256_unpacklo_epi32(a, b), ab1 = _mm256_unpackhi_epi32(a, b);
    const __m256i cd0 = _mm256_unpacklo_epi32(c, d), cd1 = _mm256_unpackhi_epi32(c, d);
    out[0] = _mm256_unpacklo_epi64(ab0, cd0);
    out[1] = _mm256_unpackhi_epi64(ab0, cd0);
    out[2] = _mm256_unpacklo_epi64(ab1, cd1);
    out[3] = _mm256_unpackhi_epi64(ab1, cd1);
}

// Half h (rows 8h .. 8h+7) of granule g.
inline __m256i* half_granule(uint8_t* tile, int64_t g, int h) { return reinterpret_cast<__m256i*>(tile + 64 * g + 32 * h); }

// The 16 fp16 values at rows[r] + off -> f32 lanes r of dst.
inline void halves16(const uint8_t* const* rows, size_t off, float* dst) {
    alignas(32) uint16_t h[16];
    for (int r = 0; r < 16; ++r) std::memcpy(&h[r], rows[r] + off, 2);
    _mm256_store_ps(dst, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h))));
    _mm256_store_ps(dst + 8, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h + 8))));
}

// Fetches bytes [off, off + len) of every row a few blocks ahead (16 short streams).
inline void prefetch_rows(const uint8_t* const* rows, size_t off, size_t len) {
    for (int r = 0; r < 16; ++r)
        for (size_t o = 0; o < len; o += 64) _mm_prefetch(reinterpret_cast<const char*>(rows[r] + off + o), _MM_HINT_T0);
}

// Q4_0 and Q8_0 straight from the blocks: a block's 16 bytes of nibbles (Q4_0: element l low,
// l + 16 high) or 2 x 16 bytes of quants (Q8_0) per row, transposed 8 rows at a time.
void unpack_q4_0(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t* p[8];
    for (int64_t b = 0; b < L.nblk; ++b) {
        if (b % 4 == 0) prefetch_rows(rows, 18 * static_cast<size_t>(b + 16), 72);
        for (int h = 0; h < 2; ++h) {
            for (int i = 0; i < 8; ++i) p[i] = rows[8 * h + i] + 18 * b + 2;
            __m256i t[4];
            transpose8x16(p, t);
            for (int j = 0; j < 4; ++j) {
                _mm256_store_si256(half_granule(tile, 8 * b + j, h), _mm256_and_si256(t[j], m4));
                _mm256_store_si256(half_granule(tile, 8 * b + 4 + j, h), _mm256_and_si256(_mm256_srli_epi16(t[j], 4), m4));
            }
        }
        halves16(rows, 18 * static_cast<size_t>(b), reinterpret_cast<float*>(tile + L.d) + 16 * b);
    }
}

void unpack_q8_0(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m256i flip = _mm256_set1_epi8(-128);
    const uint8_t* p[8];
    for (int64_t b = 0; b < L.nblk; ++b) {
        if (b % 2 == 0) prefetch_rows(rows, 34 * static_cast<size_t>(b + 8), 68);
        for (int hb = 0; hb < 2; ++hb)
            for (int h = 0; h < 2; ++h) {
                for (int i = 0; i < 8; ++i) p[i] = rows[8 * h + i] + 34 * b + 2 + 16 * hb;
                __m256i t[4];
                transpose8x16(p, t);
                for (int j = 0; j < 4; ++j) _mm256_store_si256(half_granule(tile, 8 * b + 4 * hb + j, h), _mm256_xor_si256(t[j], flip));
            }
        halves16(rows, 34 * static_cast<size_t>(b), reinterpret_cast<float*>(tile + L.d) + 16 * b);
    }
}

inline __m256i bcast32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Stores the first nr of 8 floats.
inline void store_rows(float* out, __m256 v, int nr) {
    if (nr >= 8) return _mm256_storeu_ps(out, v);
    if (nr <= 0) return;
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(out, _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), idx), v);
}

// Block32 micro-kernel: rows 8h .. 8h+7 of the tile x NC columns. G16 granules summed in int16
// (Q8: the signed form, one granule).
template <int NC, int G16, bool Q8, bool Min>
void kernel_block32(const GemmLayout& L, const uint8_t* tile, int h, const uint8_t* cols, size_t cs, float* out, int64_t ldo, int nr) {
    static_assert(8 % G16 == 0);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    const GemmCols<NC> C(L, cols, cs);
    const auto& q = C.q;
    const auto& dx = C.dx;
    const auto& dxs = C.dxs;
    const auto& bias = C.bias;
    const uint8_t* W = tile + 32 * h;
    const float* D = reinterpret_cast<const float*>(tile + L.d) + 8 * h;
    const float* M = reinterpret_cast<const float*>(tile + L.m) + 8 * h;
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(-128);
    for (int64_t b = 0; b < L.nblk; ++b) {
        __m256i ia[NC];
        for (int c = 0; c < NC; ++c) ia[c] = Q8 ? _mm256_setzero_si256() : _mm256_set1_epi32(bias[c][b]);
        for (int g0 = 0; g0 < 8; g0 += G16) {
            __m256i s16[NC];
            for (int c = 0; c < NC; ++c) s16[c] = _mm256_setzero_si256();
            for (int g = g0; g < g0 + G16; ++g) {
                const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(W + 64 * (8 * b + g)));
                if constexpr (Q8) {
                    const __m256i sq = _mm256_xor_si256(w, flip), aq = _mm256_sign_epi8(sq, sq);
                    for (int c = 0; c < NC; ++c)
                        s16[c] = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(bcast32(q[c] + 32 * b + 4 * g), sq));
                } else {
                    for (int c = 0; c < NC; ++c)
                        s16[c] = _mm256_add_epi16(s16[c], _mm256_maddubs_epi16(w, bcast32(q[c] + 32 * b + 4 * g)));
                }
            }
            for (int c = 0; c < NC; ++c) ia[c] = _mm256_add_epi32(ia[c], _mm256_madd_epi16(s16[c], ones));
        }
        const __m256 d = _mm256_load_ps(D + 16 * b);
        for (int c = 0; c < NC; ++c) acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[c]), _mm256_mul_ps(d, _mm256_set1_ps(dx[c][b])), acc[c]);
        if constexpr (Min) {
            const __m256 m = _mm256_load_ps(M + 16 * b);
            for (int c = 0; c < NC; ++c) acc[c] = _mm256_fmadd_ps(m, _mm256_set1_ps(dxs[c][b]), acc[c]);
        }
    }
    for (int c = 0; c < NC; ++c) store_rows(out + ldo * c + 8 * h, acc[c], nr - 8 * h);
}

// Super256 micro-kernel: rows 8h .. 8h+7 x NC columns, sub-blocks of SB elements, G16 granules
// summed in int16.
template <int NC, int SB, int G16>
void kernel_super(const GemmLayout& L, const uint8_t* tile, int h, const uint8_t* cols, size_t cs, float* out, int64_t ldo, int nr) {
    constexpr int NS = 256 / SB, NP = NS / 2, GS = SB / 4;
    static_assert(GS % G16 == 0);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    const GemmCols<NC> C(L, cols, cs);
    const auto& q = C.q;
    const auto& dx = C.dx;
    const auto& pair = C.pair;
    const uint8_t* W = tile + 32 * h;
    const uint8_t* SC = tile + L.sc + 32 * h;
    const uint8_t* MN = tile + L.mn + 32 * h;
    const float* D = reinterpret_cast<const float*>(tile + L.d) + 8 * h;
    const float* DM = reinterpret_cast<const float*>(tile + L.m) + 8 * h;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < L.nblk; ++b) {
        __m256i sa[NC], t[NC];
        for (int c = 0; c < NC; ++c) sa[c] = _mm256_setzero_si256();
        for (int s = 0; s < NS; ++s) {
            for (int c = 0; c < NC; ++c) t[c] = _mm256_setzero_si256();
            for (int g0 = 0; g0 < GS; g0 += G16) {
                __m256i s16[NC];
                for (int c = 0; c < NC; ++c) s16[c] = _mm256_setzero_si256();
                for (int g = g0; g < g0 + G16; ++g) {
                    const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(W + 64 * (64 * b + GS * s + g)));
                    for (int c = 0; c < NC; ++c)
                        s16[c] = _mm256_add_epi16(s16[c], _mm256_maddubs_epi16(w, bcast32(q[c] + 256 * b + SB * s + 4 * g)));
                }
                for (int c = 0; c < NC; ++c) t[c] = _mm256_add_epi32(t[c], _mm256_madd_epi16(s16[c], ones));
            }
            const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(SC + 64 * (NS * b + s)));
            for (int c = 0; c < NC; ++c) sa[c] = _mm256_add_epi32(sa[c], _mm256_mullo_epi32(t[c], sc));
        }
        for (int c = 0; c < NC; ++c) t[c] = _mm256_setzero_si256();
        for (int p = 0; p < NP; ++p) {
            const __m256i mn = _mm256_load_si256(reinterpret_cast<const __m256i*>(MN + 64 * (NP * b + p)));
            for (int c = 0; c < NC; ++c) t[c] = _mm256_add_epi32(t[c], _mm256_madd_epi16(mn, _mm256_set1_epi32(pair[c][NP * b + p])));
        }
        const __m256 d = _mm256_load_ps(D + 16 * b), dm = _mm256_load_ps(DM + 16 * b);
        for (int c = 0; c < NC; ++c) {
            const __m256 x = _mm256_set1_ps(dx[c][b]);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sa[c]), _mm256_mul_ps(d, x), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(t[c]), _mm256_mul_ps(dm, x), acc[c]);
        }
    }
    for (int c = 0; c < NC; ++c) store_rows(out + ldo * c + 8 * h, acc[c], nr - 8 * h);
}

using KernelFn = void (*)(const GemmLayout&, const uint8_t*, int, const uint8_t*, size_t, float*, int64_t, int);

// Columns in blocks of NC, the rest by the kernel for fewer; both halves of the tile (the second
// only when it holds rows).
template <int NC, template <int> class K>
void run_columns(const GemmLayout& L, const uint8_t* tile, const uint8_t* cols, size_t cs, int nc, float* out, int64_t ldo, int nr) {
    static constexpr KernelFn fns[4] = {K<1>::fn, K<2>::fn, K<3>::fn, K<4>::fn};
    static_assert(NC <= 4);
    for (int h = 0; h < (nr > 8 ? 2 : 1); ++h) {
        int c = 0;
        for (; c + NC <= nc; c += NC) fns[NC - 1](L, tile, h, cols + cs * c, cs, out + ldo * c, ldo, nr);
        if (c < nc) fns[nc - c - 1](L, tile, h, cols + cs * c, cs, out + ldo * c, ldo, nr);
    }
}

template <int G16, bool Q8, bool Min>
struct Block32 {
    template <int NC>
    struct K {
        static constexpr KernelFn fn = kernel_block32<NC, G16, Q8, Min>;
    };
};
template <int SB, int G16>
struct Super {
    template <int NC>
    struct K {
        static constexpr KernelFn fn = kernel_super<NC, SB, G16>;
    };
};

// Q4_K: chunk j (64 elements) of a super-block has qs[32j + l]: low nibble element 64j + l,
// high nibble element 64j + 32 + l.
void unpack_q4_k(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t* p[8];
    for (int64_t b = 0; b < L.nblk; ++b) {
        prefetch_rows(rows, 144 * static_cast<size_t>(b + 2), 144);
        for (int s = 0; s < 8; ++s) {  // 16-byte slabs of qs
            const int j = s / 2, l0 = 16 * (s % 2);
            const int64_t g_lo = 64 * b + (64 * j + l0) / 4, g_hi = g_lo + 8;
            for (int h = 0; h < 2; ++h) {
                for (int i = 0; i < 8; ++i) p[i] = rows[8 * h + i] + 144 * b + 16 + 32 * j + l0;
                __m256i t[4];
                transpose8x16(p, t);
                for (int i = 0; i < 4; ++i) {
                    _mm256_store_si256(half_granule(tile, g_lo + i, h), _mm256_and_si256(t[i], m4));
                    _mm256_store_si256(half_granule(tile, g_hi + i, h), _mm256_and_si256(_mm256_srli_epi32(t[i], 4), m4));
                }
            }
        }
        gemm_params_q4_k(L, rows, b, tile);
        halves16(rows, 144 * static_cast<size_t>(b), reinterpret_cast<float*>(tile + L.d) + 16 * b);
        halves16(rows, 144 * static_cast<size_t>(b) + 2, reinterpret_cast<float*>(tile + L.m) + 16 * b);
    }
}

// Q6_K: half hh, byte l of ql[64hh + l] (low nibble: element 128hh + l, high: 128hh + 64 + l),
// ql[64hh + 32 + l] (elements +32, +96), qh[32hh + l] (2 bits for each of the four).
void unpack_q6_k(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const uint8_t* p[8];
    for (int64_t b = 0; b < L.nblk; ++b) {
        prefetch_rows(rows, 210 * static_cast<size_t>(b + 2), 210);
        for (int hh = 0; hh < 2; ++hh)
            for (int s = 0; s < 2; ++s) {
                const int l0 = 16 * s;
                const int64_t g0 = 64 * b + 32 * hh + l0 / 4;
                for (int h = 0; h < 2; ++h) {
                    __m256i A[4], B[4], H[4];
                    for (int i = 0; i < 8; ++i) p[i] = rows[8 * h + i] + 210 * b + 64 * hh + l0;
                    transpose8x16(p, A);
                    for (int i = 0; i < 8; ++i) p[i] = rows[8 * h + i] + 210 * b + 64 * hh + 32 + l0;
                    transpose8x16(p, B);
                    for (int i = 0; i < 8; ++i) p[i] = rows[8 * h + i] + 210 * b + 128 + 32 * hh + l0;
                    transpose8x16(p, H);
                    for (int i = 0; i < 4; ++i) {
                        const __m256i hb = H[i];
                        _mm256_store_si256(half_granule(tile, g0 + i, h),
                                           _mm256_or_si256(_mm256_and_si256(A[i], m4), _mm256_and_si256(_mm256_slli_epi32(hb, 4), m30)));
                        _mm256_store_si256(half_granule(tile, g0 + 8 + i, h),
                                           _mm256_or_si256(_mm256_and_si256(B[i], m4), _mm256_and_si256(_mm256_slli_epi32(hb, 2), m30)));
                        _mm256_store_si256(half_granule(tile, g0 + 16 + i, h),
                                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(A[i], 4), m4), _mm256_and_si256(hb, m30)));
                        _mm256_store_si256(half_granule(tile, g0 + 24 + i, h),
                                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(B[i], 4), m4),
                                                           _mm256_and_si256(_mm256_srli_epi32(hb, 2), m30)));
                    }
                }
            }
        gemm_params_q6_k(L, rows, b, tile);
        const size_t off = 210 * static_cast<size_t>(b) + 208;
        halves16(rows, off, reinterpret_cast<float*>(tile + L.d) + 16 * b);
        halves16(rows, off, reinterpret_cast<float*>(tile + L.m) + 16 * b);
    }
}

}  // namespace

void gemm_unpack_tile_avx2(DType t, const uint8_t* src, size_t row_stride, int nr, int64_t k, void* tile_v, uint8_t* stage) {
    const GemmLayout L = gemm_layout(t, k);
    uint8_t* tile = static_cast<uint8_t*>(tile_v);
    const uint8_t* rows[16];
    for (int r = 0; r < 16; ++r) rows[r] = src + row_stride * static_cast<size_t>(r < nr ? r : nr - 1);  // pad: repeat the last row
    if (t == DType::Q4_0) return unpack_q4_0(L, rows, tile);
    if (t == DType::Q8_0) return unpack_q8_0(L, rows, tile);
    if (t == DType::Q4_K) return unpack_q4_k(L, rows, tile);
    if (t == DType::Q6_K) return unpack_q6_k(L, rows, tile);
    // The other types through a row-major staging of their quants.
    const size_t ku = static_cast<size_t>(k);
    for (int r = 0; r < 16; ++r) gemm_stage_row(t, L, rows[r], stage + ku * r, r, tile);
    const uint8_t* p[8];
    for (int64_t s = 0; s < k / 16; ++s)
        for (int h = 0; h < 2; ++h) {
            for (int i = 0; i < 8; ++i) p[i] = stage + ku * static_cast<size_t>(8 * h + i) + 16 * s;
            __m256i v[4];
            transpose8x16(p, v);
            for (int j = 0; j < 4; ++j) _mm256_store_si256(half_granule(tile, 4 * s + j, h), v[j]);
        }
}

void gemm_tile_avx2(DType t, int64_t k, const void* tile_v, int nr, const uint8_t* cols, size_t cs, int nc, float* out, int64_t ldo) {
    const GemmLayout L = gemm_layout(t, k);
    const uint8_t* tile = static_cast<const uint8_t*>(tile_v);
    switch (t) {
        case DType::Q4_0: return run_columns<4, Block32<8, false, false>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q4_1: return run_columns<4, Block32<8, false, true>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q5_0: return run_columns<4, Block32<4, false, false>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q5_1: return run_columns<4, Block32<4, false, true>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q8_0: return run_columns<4, Block32<1, true, false>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q2_K: case DType::Q3_K: return run_columns<4, Super<16, 4>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q6_K: return run_columns<4, Super<16, 2>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q4_K: return run_columns<4, Super<32, 8>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        case DType::Q5_K: return run_columns<4, Super<32, 4>::K>(L, tile, cols, cs, nc, out, ldo, nr);
        default: return;
    }
}

}  // namespace minerva::cpu
