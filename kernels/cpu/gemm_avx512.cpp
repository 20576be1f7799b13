// kernels/cpu/gemm_avx512.cpp: the GEMM's tile unpacking and its VNNI micro-kernels (gemm.h),
// for CPUs with AVX-512 VNNI (gemm_avx2.cpp serves the others).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/gemm.h"
#include "cpu/gemm_layout.h"

namespace minerva::cpu {
namespace {

// 16 rows x 16 bytes (row r at p[r]) -> out[j] = dword j of every row (lane r = row r).
inline void transpose16(const uint8_t* const* p, __m512i out[4]) {
    __m512i z[4];
    for (int q = 0; q < 4; ++q) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[4 * q])));
        v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[4 * q + 1])), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[4 * q + 2])), 2);
        z[q] = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[4 * q + 3])), 3);
    }
    // z[q] holds rows 4q..4q+3, one per 128-bit lane: dword j of row 4q + L is at 4L + j.
    for (int j = 0; j < 4; ++j) {
        const __m512i idx = _mm512_setr_epi32(j, 4 + j, 8 + j, 12 + j, 16 + j, 20 + j, 24 + j, 28 + j, j, 4 + j, 8 + j, 12 + j, 16 + j,
                                              20 + j, 24 + j, 28 + j);
        const __m512i a = _mm512_permutex2var_epi32(z[0], idx, z[1]);
        const __m512i b = _mm512_permutex2var_epi32(z[2], idx, z[3]);
        out[j] = _mm512_inserti64x4(a, _mm512_castsi512_si256(b), 1);
    }
}

// Prefetches bytes [off, off + len) of every row: the 16 rows are 16 short streams that the
// hardware prefetcher does not follow well, so the unpackers fetch a few blocks ahead.
inline void prefetch_rows(const uint8_t* const* rows, size_t off, size_t len) {
    for (int r = 0; r < 16; ++r)
        for (size_t o = 0; o < len; o += 64) _mm_prefetch(reinterpret_cast<const char*>(rows[r] + off + o), _MM_HINT_T0);
}

inline __m512i* granule(uint8_t* tile, int64_t g) { return reinterpret_cast<__m512i*>(tile + 64 * g); }

// The 16 fp16 values at p[r] + off -> f32 lanes.
inline __m512 halves16(const uint8_t* const* p, size_t off) {
    alignas(32) uint16_t h[16];
    for (int r = 0; r < 16; ++r) std::memcpy(&h[r], p[r] + off, 2);
    return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(h)));
}

void unpack_q4_0(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const uint8_t* p[16];
    for (int64_t b = 0; b < L.nblk; ++b) {
        if (b % 4 == 0) prefetch_rows(rows, 18 * static_cast<size_t>(b + 16), 72);
        for (int r = 0; r < 16; ++r) p[r] = rows[r] + 18 * b + 2;
        __m512i t[4];
        transpose16(p, t);
        for (int j = 0; j < 4; ++j) {
            _mm512_store_si512(granule(tile, 8 * b + j), _mm512_and_si512(t[j], m4));
            _mm512_store_si512(granule(tile, 8 * b + 4 + j), _mm512_and_si512(_mm512_srli_epi32(t[j], 4), m4));
        }
        for (int r = 0; r < 16; ++r) p[r] = rows[r] + 18 * b;
        _mm512_store_ps(reinterpret_cast<float*>(tile + L.d) + 16 * b, halves16(p, 0));
    }
}

void unpack_q8_0(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m512i flip = _mm512_set1_epi8(-128);
    const uint8_t* p[16];
    for (int64_t b = 0; b < L.nblk; ++b) {
        if (b % 2 == 0) prefetch_rows(rows, 34 * static_cast<size_t>(b + 8), 68);
        for (int h = 0; h < 2; ++h) {
            for (int r = 0; r < 16; ++r) p[r] = rows[r] + 34 * b + 2 + 16 * h;
            __m512i t[4];
            transpose16(p, t);
            for (int j = 0; j < 4; ++j) _mm512_store_si512(granule(tile, 8 * b + 4 * h + j), _mm512_xor_si512(t[j], flip));
        }
        for (int r = 0; r < 16; ++r) p[r] = rows[r] + 34 * b;
        _mm512_store_ps(reinterpret_cast<float*>(tile + L.d) + 16 * b, halves16(p, 0));
    }
}

// Q4_K: chunk j (64 elements) of a super-block has qs[32j + l]: low nibble element 64j + l,
// high nibble element 64j + 32 + l.
void unpack_q4_k(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const uint8_t* p[16];
    for (int64_t b = 0; b < L.nblk; ++b) {
        prefetch_rows(rows, 144 * static_cast<size_t>(b + 2), 144);
        for (int s = 0; s < 8; ++s) {  // 16-byte slabs of qs
            const int j = s / 2, l0 = 16 * (s % 2);
            for (int r = 0; r < 16; ++r) p[r] = rows[r] + 144 * b + 16 + 32 * j + l0;
            __m512i t[4];
            transpose16(p, t);
            const int64_t g_lo = 64 * b + (64 * j + l0) / 4, g_hi = g_lo + 8;
            for (int i = 0; i < 4; ++i) {
                _mm512_store_si512(granule(tile, g_lo + i), _mm512_and_si512(t[i], m4));
                _mm512_store_si512(granule(tile, g_hi + i), _mm512_and_si512(_mm512_srli_epi32(t[i], 4), m4));
            }
        }
        gemm_params_q4_k(L, rows, b, tile);
        for (int r = 0; r < 16; ++r) p[r] = rows[r] + 144 * b;
        _mm512_store_ps(reinterpret_cast<float*>(tile + L.d) + 16 * b, halves16(p, 0));
        _mm512_store_ps(reinterpret_cast<float*>(tile + L.m) + 16 * b, halves16(p, 2));
    }
}

// Q6_K: half h, byte l of ql[64h + l] (low nibble: element 128h + l, high: 128h + 64 + l),
// ql[64h + 32 + l] (elements +32, +96), qh[32h + l] (2 bits for each of the four).
void unpack_q6_k(const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const uint8_t* p[16];
    for (int64_t b = 0; b < L.nblk; ++b) {
        prefetch_rows(rows, 210 * static_cast<size_t>(b + 2), 210);
        for (int h = 0; h < 2; ++h)
            for (int s = 0; s < 2; ++s) {
                const int l0 = 16 * s;
                __m512i A[4], B[4], H[4];
                for (int r = 0; r < 16; ++r) p[r] = rows[r] + 210 * b + 64 * h + l0;
                transpose16(p, A);
                for (int r = 0; r < 16; ++r) p[r] = rows[r] + 210 * b + 64 * h + 32 + l0;
                transpose16(p, B);
                for (int r = 0; r < 16; ++r) p[r] = rows[r] + 210 * b + 128 + 32 * h + l0;
                transpose16(p, H);
                const int64_t g0 = 64 * b + 32 * h + l0 / 4;
                for (int i = 0; i < 4; ++i) {
                    const __m512i hb = H[i];
                    _mm512_store_si512(granule(tile, g0 + i),
                                       _mm512_or_si512(_mm512_and_si512(A[i], m4), _mm512_and_si512(_mm512_slli_epi32(hb, 4), m30)));
                    _mm512_store_si512(granule(tile, g0 + 8 + i),
                                       _mm512_or_si512(_mm512_and_si512(B[i], m4), _mm512_and_si512(_mm512_slli_epi32(hb, 2), m30)));
                    _mm512_store_si512(granule(tile, g0 + 16 + i), _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(A[i], 4), m4),
                                                                                   _mm512_and_si512(hb, m30)));
                    _mm512_store_si512(granule(tile, g0 + 24 + i), _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(B[i], 4), m4),
                                                                                   _mm512_and_si512(_mm512_srli_epi32(hb, 2), m30)));
                }
            }
        gemm_params_q6_k(L, rows, b, tile);
        for (int r = 0; r < 16; ++r) p[r] = rows[r] + 210 * b;
        const __m512 d = halves16(p, 208);
        _mm512_store_ps(reinterpret_cast<float*>(tile + L.d) + 16 * b, d);
        _mm512_store_ps(reinterpret_cast<float*>(tile + L.m) + 16 * b, d);
    }
}

void unpack_staged(DType t, const GemmLayout& L, const uint8_t* const* rows, uint8_t* tile, uint8_t* stage) {
    const size_t k = static_cast<size_t>(L.k);
    for (int r = 0; r < 16; ++r) gemm_stage_row(t, L, rows[r], stage + k * r, r, tile);
    const uint8_t* p[16];
    for (int64_t s = 0; s < L.k / 16; ++s) {
        for (int r = 0; r < 16; ++r) p[r] = stage + k * r + 16 * s;
        __m512i v[4];
        transpose16(p, v);
        for (int i = 0; i < 4; ++i) _mm512_store_si512(granule(tile, 4 * s + i), v[i]);
    }
}

inline __m512i bcast32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// Block32 micro-kernel: 16 rows x NC columns.
template <int NC, bool Min>
void kernel_block32(const GemmLayout& L, const uint8_t* tile, const uint8_t* cols, size_t cs, float* out, int64_t ldo, __mmask16 rm) {
    __m512 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
    const GemmCols<NC> C(L, cols, cs);
    const auto& q = C.q;
    const auto& dx = C.dx;
    const auto& dxs = C.dxs;
    const auto& bias = C.bias;
    const __m512i* W = reinterpret_cast<const __m512i*>(tile);
    const float* D = reinterpret_cast<const float*>(tile + L.d);
    const float* M = reinterpret_cast<const float*>(tile + L.m);
    for (int64_t b = 0; b < L.nblk; ++b) {
        __m512i ia[NC];
        for (int c = 0; c < NC; ++c) ia[c] = _mm512_set1_epi32(bias[c][b]);
        for (int g = 0; g < 8; ++g) {
            const __m512i w = _mm512_load_si512(W + 8 * b + g);
            for (int c = 0; c < NC; ++c) ia[c] = _mm512_dpbusd_epi32(ia[c], w, bcast32(q[c] + 32 * b + 4 * g));
        }
        const __m512 d = _mm512_load_ps(D + 16 * b);
        for (int c = 0; c < NC; ++c) acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[c]), _mm512_mul_ps(d, _mm512_set1_ps(dx[c][b])), acc[c]);
        if constexpr (Min) {
            const __m512 m = _mm512_load_ps(M + 16 * b);
            for (int c = 0; c < NC; ++c) acc[c] = _mm512_fmadd_ps(m, _mm512_set1_ps(dxs[c][b]), acc[c]);
        }
    }
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(out + ldo * c, rm, acc[c]);
}

// Super256 micro-kernel: 16 rows x NC columns, sub-blocks of SB elements.
template <int NC, int SB>
void kernel_super(const GemmLayout& L, const uint8_t* tile, const uint8_t* cols, size_t cs, float* out, int64_t ldo, __mmask16 rm) {
    constexpr int NS = 256 / SB, NP = NS / 2, GS = SB / 4;
    __m512 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
    const GemmCols<NC> C(L, cols, cs);
    const auto& q = C.q;
    const auto& dx = C.dx;
    const auto& pair = C.pair;
    const __m512i* W = reinterpret_cast<const __m512i*>(tile);
    const __m512i* SC = reinterpret_cast<const __m512i*>(tile + L.sc);
    const __m512i* MN = reinterpret_cast<const __m512i*>(tile + L.mn);
    const float* D = reinterpret_cast<const float*>(tile + L.d);
    const float* DM = reinterpret_cast<const float*>(tile + L.m);
    for (int64_t b = 0; b < L.nblk; ++b) {
        __m512i sa[NC], t[NC];
        for (int c = 0; c < NC; ++c) sa[c] = _mm512_setzero_si512();
        for (int s = 0; s < NS; ++s) {
            for (int c = 0; c < NC; ++c) t[c] = _mm512_setzero_si512();
            for (int g = 0; g < GS; ++g) {
                const __m512i w = _mm512_load_si512(W + 64 * b + GS * s + g);
                for (int c = 0; c < NC; ++c) t[c] = _mm512_dpbusd_epi32(t[c], w, bcast32(q[c] + 256 * b + SB * s + 4 * g));
            }
            const __m512i sc = _mm512_load_si512(SC + NS * b + s);
            for (int c = 0; c < NC; ++c) sa[c] = _mm512_add_epi32(sa[c], _mm512_mullo_epi32(t[c], sc));
        }
        for (int c = 0; c < NC; ++c) t[c] = _mm512_setzero_si512();
        for (int p = 0; p < NP; ++p) {
            const __m512i mn = _mm512_load_si512(MN + NP * b + p);
            for (int c = 0; c < NC; ++c) t[c] = _mm512_dpwssd_epi32(t[c], mn, _mm512_set1_epi32(pair[c][NP * b + p]));
        }
        const __m512 d = _mm512_load_ps(D + 16 * b), dm = _mm512_load_ps(DM + 16 * b);
        for (int c = 0; c < NC; ++c) {
            const __m512 x = _mm512_set1_ps(dx[c][b]);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sa[c]), _mm512_mul_ps(d, x), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(t[c]), _mm512_mul_ps(dm, x), acc[c]);
        }
    }
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(out + ldo * c, rm, acc[c]);
}

using KernelFn = void (*)(const GemmLayout&, const uint8_t*, const uint8_t*, size_t, float*, int64_t, __mmask16);

template <int MaxNC, typename Pick>
void run_columns(const GemmLayout& L, const uint8_t* tile, const uint8_t* cols, size_t cs, int nc, float* out, int64_t ldo,
                 __mmask16 rm, Pick pick) {
    int c = 0;
    for (; c + MaxNC <= nc; c += MaxNC) pick(MaxNC)(L, tile, cols + cs * c, cs, out + ldo * c, ldo, rm);
    if (c < nc) pick(nc - c)(L, tile, cols + cs * c, cs, out + ldo * c, ldo, rm);
}

template <bool Min>
KernelFn block32_fn(int nc) {
    switch (nc) {
        case 8: return kernel_block32<8, Min>;
        case 7: return kernel_block32<7, Min>;
        case 6: return kernel_block32<6, Min>;
        case 5: return kernel_block32<5, Min>;
        case 4: return kernel_block32<4, Min>;
        case 3: return kernel_block32<3, Min>;
        case 2: return kernel_block32<2, Min>;
        default: return kernel_block32<1, Min>;
    }
}

template <int SB>
KernelFn super_fn(int nc) {
    switch (nc) {
        case 4: return kernel_super<4, SB>;
        case 3: return kernel_super<3, SB>;
        case 2: return kernel_super<2, SB>;
        default: return kernel_super<1, SB>;
    }
}

}  // namespace

void gemm_unpack_tile_avx512(DType t, const uint8_t* src, size_t row_stride, int nr, int64_t k, void* tile_v, uint8_t* stage) {
    const GemmLayout L = gemm_layout(t, k);
    uint8_t* tile = static_cast<uint8_t*>(tile_v);
    const uint8_t* rows[16];
    for (int r = 0; r < 16; ++r) rows[r] = src + row_stride * static_cast<size_t>(r < nr ? r : nr - 1);  // pad: repeat the last row
    switch (t) {
        case DType::Q4_0: unpack_q4_0(L, rows, tile); return;
        case DType::Q8_0: unpack_q8_0(L, rows, tile); return;
        case DType::Q4_K: unpack_q4_k(L, rows, tile); return;
        case DType::Q6_K: unpack_q6_k(L, rows, tile); return;
        default: unpack_staged(t, L, rows, tile, stage); return;
    }
}

void gemm_tile_avx512(DType t, int64_t k, const void* tile_v, int nr, const uint8_t* cols, size_t cs, int nc, float* out, int64_t ldo) {
    const GemmLayout L = gemm_layout(t, k);
    const uint8_t* tile = static_cast<const uint8_t*>(tile_v);
    const __mmask16 rm = static_cast<__mmask16>((1u << nr) - 1);
    if (!L.k_mode) {
        if (L.has_min) run_columns<8>(L, tile, cols, cs, nc, out, ldo, rm, block32_fn<true>);
        else run_columns<8>(L, tile, cols, cs, nc, out, ldo, rm, block32_fn<false>);
    } else if (L.sb == 32) {
        run_columns<4>(L, tile, cols, cs, nc, out, ldo, rm, super_fn<32>);
    } else {
        run_columns<4>(L, tile, cols, cs, nc, out, ldo, rm, super_fn<16>);
    }
}

}  // namespace minerva::cpu
