// kernels/cpu/vec_dot_avx512.cpp: AVX-512 dot kernels, compiled with AVX-512 flags and only
// called when CPUID reports AVX-512 (cpu_features.h). With VNNI the integer dot products are
// vpdpbusd (u8 x s8 summed by fours into s32, accumulating); without it maddubs + madd on
// 512-bit registers. Two 32-element blocks share one register.
// GCC 12 reports its own _mm512_undefined_* helpers as uninitialized (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/prefetch.h"
#include "cpu/qact.h"
#include "cpu/vec_dot.h"

namespace minerva::cpu {
namespace {

template <bool Vnni>
inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
    if constexpr (Vnni) return _mm512_dpbusd_epi32(acc, u, s);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}
template <bool Vnni>
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
    if constexpr (Vnni) return _mm256_dpbusd_epi32(acc, u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline uint16_t half_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return h;
}

// ---- 32-element block types: one register = two blocks ----

// Unpack<...>::pair returns the two blocks' unsigned quants as 64 bytes in element order;
// ::one returns one block's as 32 bytes.
struct Q4_0U {
    static constexpr size_t bytes = sizeof(BlockQ4_0);
    static __m512i pair(const uint8_t* b) {
        const __m256i qa = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
        const __m256i qb = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + bytes + 2)));
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);  // [a a b b]
        return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
    }
    static __m256i one(const uint8_t* b) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
    }
};

struct Q5_0U {
    static constexpr size_t bytes = sizeof(BlockQ5_0);
    static __m256i one(const uint8_t* b) {
        uint32_t qh;
        std::memcpy(&qh, b + 2, 4);
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 6));
        const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
        return _mm256_mask_blend_epi8(qh, u, _mm256_or_si256(u, _mm256_set1_epi8(0x10)));
    }
    static __m512i pair(const uint8_t* b) {
        return _mm512_inserti64x4(_mm512_castsi256_si512(one(b)), one(b + bytes), 1);
    }
};

// Q8_0: signed quants made unsigned by flipping the top bit (+128); the activation bias
// carries -128 * sum(x).
struct Q8_0U {
    static constexpr size_t bytes = sizeof(BlockQ8_0);
    static __m512i pair(const uint8_t* b) {
        const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
        const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + bytes + 2));
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1), _mm512_set1_epi8(-128));
    }
    static __m256i one(const uint8_t* b) {
        return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), _mm256_set1_epi8(-128));
    }
};

// The fp16 scales of G consecutive blocks of a row (block size BS bytes, the scale first; n of
// them inside the row) as f32 lanes 0..G-1: two masked 64-byte loads and one word permute,
// instead of a load, broadcast and insert per block.
template <size_t BS, int G>
inline __m512 block_scales(const uint8_t* blk, int64_t n) {
    static_assert((G - 1) * BS + 2 <= 128 && BS % 2 == 0);
    const int64_t bytes = n * static_cast<int64_t>(BS);
    const __mmask64 m0 = bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
    const __mmask64 m1 = bytes >= 128 ? ~__mmask64{0} : bytes > 64 ? (__mmask64{1} << (bytes - 64)) - 1 : 0;
    const __m512i z0 = _mm512_maskz_loadu_epi8(m0, blk), z1 = _mm512_maskz_loadu_epi8(m1, blk + 64);
    alignas(64) static constexpr auto kIdx = [] {
        struct { int16_t v[32]; } t{};
        for (int i = 0; i < G; ++i) t.v[i] = static_cast<int16_t>(i * static_cast<int>(BS) / 2);
        return t;
    }();
    const __m512i w = _mm512_permutex2var_epi16(z0, _mm512_load_si512(kIdx.v), z1);
    return _mm512_castps256_ps512(_mm256_cvtph_ps(_mm512_castsi512_si128(w)));
}

template <int R, typename U, bool Vnni>
void q32_rows(int64_t k, const uint8_t* w, size_t ws, const Q8Pair* a, float* out) {
    const size_t near = R * ws, far = prefetch_far(near);
    constexpr int G = U::bytes <= 18 ? 8 : 4;  // blocks whose scales one block_scales call fetches
    const int64_t nb = k / 32, np = nb / 2;
    __m512 acc[R], sc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t p = 0; p < np; ++p) {
        if (p % (G / 2) == 0)
            for (int r = 0; r < R; ++r) sc[r] = block_scales<U::bytes, G>(w + r * ws + static_cast<size_t>(2 * p) * U::bytes, nb - 2 * p);
        const int sp = static_cast<int>(2 * (p % (G / 2)));
        const __m512i pick = _mm512_inserti64x4(_mm512_set1_epi32(sp), _mm256_set1_epi32(sp + 1), 1);  // lanes 8..15: next block
        const Q8Pair& ap = a[p];
        const __m512i x = _mm512_load_si512(ap.qs);
        const __m512i bias = _mm512_load_si512(ap.bias);
        const __m512 dx = _mm512_load_ps(ap.dx);
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(2 * p) * U::bytes;
            // The rows are short streams: see prefetch.h.
            prefetch_block<2 * U::bytes>(blk, near, far);
            const __m512i s = dpbusd<Vnni>(bias, U::pair(blk), x);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(_mm512_permutexvar_ps(pick, sc[r]), dx), acc[r]);
        }
    }
    float tail[R] = {};
    if (nb % 2) {
        const Q8Pair& ap = a[np];
        const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(ap.qs));
        const __m256i bias = _mm256_load_si256(reinterpret_cast<const __m256i*>(ap.bias));
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(nb - 1) * U::bytes;
            const __m256i s = dpbusd<Vnni>(bias, U::one(blk), x);
            tail[r] = hsum256(_mm256_cvtepi32_ps(s)) * fp16_to_f32_fast(half_at(blk)) * ap.dx[0];
        }
    }
    for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]) + tail[r];
}

template <typename U, bool Vnni>
void q32_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8Pair* a = static_cast<const Q8Pair*>(act);
    switch (nr) {
        case 4: q32_rows<4, U, Vnni>(k, w, ws, a, out); return;
        case 3: q32_rows<3, U, Vnni>(k, w, ws, a, out); return;
        case 2: q32_rows<2, U, Vnni>(k, w, ws, a, out); return;
        default: q32_rows<1, U, Vnni>(k, w, ws, a, out); return;
    }
}

// Q4_0 with byte permutes (AVX-512 VBMI + VNNI), eight blocks per step against Q8Oct
// activations (qact.h): two vpermt2b gather the 4 x 16 quant bytes of four blocks out of the
// 144-byte group, so one register holds the low nibbles (elements 0..15) and one the high
// nibbles (16..31) of four blocks, and int32 lanes 4b..4b+3 of both dot products belong to block
// b. The eight fp16 scales come out of the same loads with one word permute and are multiplied
// by the activation scales once per group. Per 256 weights and row that is about half the
// instructions of the pair kernel; a partial last group is read with masked loads.
constexpr size_t GB = 8 * sizeof(BlockQ4_0);  // one group of eight Q4_0 blocks: 144 bytes

struct Oct4Idx {
    uint8_t q0[64], q1[64];  // vpermt2b: the quant bytes of blocks 0..3 (from bytes 0..127), 4..7 (64..191)
    int16_t sc[32];          // vpermt2w: the eight fp16 scales
    int32_t e0[16], e1[16];  // block b's scale to int32 lanes 4b..4b+3 (blocks 0..3, 4..7)
};
inline const Oct4Idx& oct4_idx() {
    alignas(64) static constexpr Oct4Idx t = [] {
        Oct4Idx v{};
        for (int b = 0; b < 4; ++b)
            for (int j = 0; j < 16; ++j) {
                v.q0[16 * b + j] = static_cast<uint8_t>(18 * b + 2 + j);
                v.q1[16 * b + j] = static_cast<uint8_t>(18 * (b + 4) + 2 + j - 64);
            }
        for (int b = 0; b < 8; ++b) v.sc[b] = static_cast<int16_t>(9 * b);
        for (int l = 0; l < 16; ++l) v.e0[l] = l / 4, v.e1[l] = 4 + l / 4;
        return v;
    }();
    return t;
}

// The 144 bytes of a group (z2: bytes 128..143); with left < 8 blocks, only those, masked.
inline void oct4_load(const uint8_t* blk, int64_t left, __m512i& z0, __m512i& z1, __m512i& z2) {
    if (left >= 8) {
        z0 = _mm512_loadu_si512(blk);
        z1 = _mm512_loadu_si512(blk + 64);
        z2 = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 128)));
    } else {
        const int64_t bytes = left * static_cast<int64_t>(sizeof(BlockQ4_0));  // < 128
        const __mmask64 m0 = bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
        const __mmask64 m1 = bytes > 64 ? (__mmask64{1} << (bytes - 64)) - 1 : 0;
        z0 = _mm512_maskz_loadu_epi8(m0, blk);
        z1 = _mm512_maskz_loadu_epi8(m1, blk + 64);
        z2 = _mm512_setzero_si512();
    }
}

// One group of one row, unpacked: the low/high nibbles of blocks 0..3 (l0, h0) and 4..7 (l1, h1)
// and the eight weight scales in f32 lanes 0..7.
struct Oct4Row {
    __m512i l0, h0, l1, h1;
    __m512 dw;
};
inline Oct4Row oct4_unpack(const uint8_t* blk, int64_t left, const Oct4Idx& ix) {
    __m512i z0, z1, z2;
    oct4_load(blk, left, z0, z1, z2);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m256i h = _mm512_castsi512_si256(_mm512_permutex2var_epi16(z0, _mm512_load_si512(ix.sc), z1));
    const __m512i q0 = _mm512_permutex2var_epi8(z0, _mm512_load_si512(ix.q0), z1);
    const __m512i q1 = _mm512_permutex2var_epi8(z1, _mm512_load_si512(ix.q1), z2);
    return {_mm512_and_si512(q0, m4), _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), _mm512_and_si512(q1, m4),
            _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), _mm512_castps256_ps512(_mm256_cvtph_ps(_mm256_castsi256_si128(h)))};
}
// One group of one row against one column's activations, added to acc. Every Q4_0 VBMI kernel
// (one column or several) runs exactly these steps, so their results are bit-identical.
inline __m512 oct4_column(const Oct4Row& w, const Q8Oct& ap, __m512i ie0, __m512i ie1, __m512 acc) {
    const __m512 d = _mm512_mul_ps(w.dw, _mm512_castps256_ps512(_mm256_load_ps(ap.dx)));
    __m512i s0 = _mm512_dpbusd_epi32(_mm512_load_si512(ap.bias), w.l0, _mm512_load_si512(ap.qs));
    s0 = _mm512_dpbusd_epi32(s0, w.h0, _mm512_load_si512(ap.qs + 64));
    __m512i s1 = _mm512_dpbusd_epi32(_mm512_load_si512(ap.bias + 16), w.l1, _mm512_load_si512(ap.qs + 128));
    s1 = _mm512_dpbusd_epi32(s1, w.h1, _mm512_load_si512(ap.qs + 192));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_permutexvar_ps(ie0, d), acc);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_permutexvar_ps(ie1, d), acc);
}

// NC activation columns (1 for decode), R rows at a time: each group of each row is unpacked
// once for all columns, and each column's activations are loaded once for the R rows (for 8
// columns they are 25x the weight bytes).
template <int NC, int R>
void q4_0_oct_block(int64_t k, const uint8_t* w, size_t ws, const Q8Oct* a, size_t a_stride, float* out, size_t out_stride) {
    const size_t near = R * ws, far = prefetch_far(near);
    const Oct4Idx& ix = oct4_idx();
    const __m512i ie0 = _mm512_load_si512(ix.e0), ie1 = _mm512_load_si512(ix.e1);
    const int64_t nb = k / 32, ng = (nb + 7) / 8;
    __m512 acc[R][NC];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NC; ++j) acc[r][j] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
        Oct4Row wr[R];
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(g) * GB;
            prefetch_block<GB>(blk, near, far);
            wr[r] = oct4_unpack(blk, nb - 8 * g, ix);
        }
        for (int j = 0; j < NC; ++j) {
            const Q8Oct& ap = a[static_cast<size_t>(j) * a_stride + static_cast<size_t>(g)];
            for (int r = 0; r < R; ++r) acc[r][j] = oct4_column(wr[r], ap, ie0, ie1, acc[r][j]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NC; ++j) out[static_cast<size_t>(j) * out_stride + static_cast<size_t>(r)] = _mm512_reduce_add_ps(acc[r][j]);
}

void q4_0_oct_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8Oct* a = static_cast<const Q8Oct*>(act);
    switch (nr) {
        case 4: q4_0_oct_block<1, 4>(k, w, ws, a, 0, out, 1); return;
        case 3: q4_0_oct_block<1, 3>(k, w, ws, a, 0, out, 1); return;
        case 2: q4_0_oct_block<1, 2>(k, w, ws, a, 0, out, 1); return;
        default: q4_0_oct_block<1, 1>(k, w, ws, a, 0, out, 1); return;
    }
}

template <int NC>
void q4_0_oct_cols(int64_t k, const uint8_t* w, size_t ws, int nr, const Q8Oct* a, size_t a_stride, float* out, size_t out_stride) {
    int r = 0;
    for (; r + 2 <= nr; r += 2) {
        if constexpr (NC > 4) {  // two runs of columns: 2 x 4 accumulators stay in registers
            q4_0_oct_block<4, 2>(k, w + r * ws, ws, a, a_stride, out + r, out_stride);
            q4_0_oct_block<NC - 4, 2>(k, w + r * ws, ws, a + 4 * a_stride, a_stride, out + r + 4 * out_stride, out_stride);
        } else {
            q4_0_oct_block<NC, 2>(k, w + r * ws, ws, a, a_stride, out + r, out_stride);
        }
    }
    if (r < nr) q4_0_oct_block<NC, 1>(k, w + r * ws, ws, a, a_stride, out + r, out_stride);
}

// Runs a multi-column kernel template over nc columns in runs of at most kMultiColumns.
template <typename A, template <int> class K>
void multi_columns(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, size_t act_stride, int nc, float* out,
                   size_t out_stride) {
    const A* a = static_cast<const A*>(act);
    const size_t as = act_stride / sizeof(A);
    for (int j0 = 0; j0 < nc; j0 += kMultiColumns) {
        const A* aj = a + static_cast<size_t>(j0) * as;
        float* oj = out + static_cast<size_t>(j0) * out_stride;
        switch (std::min(nc - j0, kMultiColumns)) {
            case 8: K<8>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            case 7: K<7>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            case 6: K<6>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            case 5: K<5>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            case 4: K<4>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            case 3: K<3>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            case 2: K<2>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
            default: K<1>::run(k, w, ws, nr, aj, as, oj, out_stride); break;
        }
    }
}

template <int NC>
struct Q40Cols {
    static void run(int64_t k, const uint8_t* w, size_t ws, int nr, const Q8Oct* a, size_t as, float* out, size_t os) {
        q4_0_oct_cols<NC>(k, w, ws, nr, a, as, out, os);
    }
};

// ---- K types ----

inline void k4_unpack(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t a, b, c;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + 4, 4);
    std::memcpy(&c, s + 8, 4);
    const uint32_t v[4] = {a & 0x3f3f3f3fu, (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u), b & 0x3f3f3f3fu,
                           ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)};
    std::memcpy(sc, v, 8);
    std::memcpy(mn, v + 2, 8);
}

template <bool Vnni>
inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
    if constexpr (Vnni) return _mm512_dpwssd_epi32(acc, a, b);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
}

// Q4_K/Q5_K: per sub-block pair j, the quants times the activations summed by pairs into int16
// (maddubs: at most 2 * 31 * 127), then multiplied by the sub-block scales and summed into int32
// (vpdpwssd); the mins term stays a vector and is folded in by one fma per super-block.
template <int R, bool Five, bool Vnni>
void q45k_rows(int64_t k, const uint8_t* w, size_t ws, const Q8KBlock* a, float* out) {
    const size_t near = R * ws, far = prefetch_far(near);
    const int64_t nb = k / 256;
    const size_t bb = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m512 acc[R];
    __m256 accm[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i nib_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    __m512i widx[4];  // int16 lanes 0..15: scale 2j, 16..31: scale 2j + 1
    for (int j = 0; j < 4; ++j)
        widx[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(2 * j))),
                                     _mm256_set1_epi16(static_cast<short>(2 * j + 1)), 1);
    for (int64_t b = 0; b < nb; ++b) {
        const Q8KBlock& x = a[b];
        const __m256i pair_sums =
            _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)), _mm256_set1_epi16(1));
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(b) * bb;
            prefetch_block<Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K)>(blk, near, far);
            uint8_t scm[16];
            k4_unpack(blk + 4, scm, scm + 8);
            const __m256i s16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scm)));  // sc[8], mn[8]
            const __m512i s16z = _mm512_castsi256_si512(s16);
            const uint8_t* qs = blk + (Five ? 48 : 16);
            __m512i qh = _mm512_setzero_si512();
            if constexpr (Five) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
            __m512i sumi = _mm512_setzero_si512();
            for (int j = 0; j < 4; ++j) {
                const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j)));
                __m512i u = _mm512_and_si512(_mm512_srlv_epi64(q, nib_shift), m4);  // [sub 2j | sub 2j+1]
                if constexpr (Five) {
                    // bit 2j of qh for the low half, bit 2j+1 for the high half, moved to bit 4
                    const __m512i hb = _mm512_srlv_epi64(qh, _mm512_setr_epi64(2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1,
                                                                               2 * j + 1, 2 * j + 1, 2 * j + 1));
                    u = _mm512_or_si512(u, _mm512_slli_epi64(_mm512_and_si512(hb, _mm512_set1_epi8(1)), 4));
                }
                const __m512i p16 = _mm512_maddubs_epi16(u, _mm512_load_si512(x.qs + 64 * j));
                sumi = dpwssd<Vnni>(sumi, p16, _mm512_permutexvar_epi16(widx[j], s16z));
            }
            const __m256i msum = _mm256_mullo_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(s16, 1)), pair_sums);
            uint32_t dd;
            std::memcpy(&dd, blk, 4);
            const __m128 dm = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd))), _mm_set1_ps(x.d));  // d*xd, dmin*xd
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_broadcastss_ps(dm), acc[r]);
            accm[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), _mm256_set1_epi32(1)),
                                      accm[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]) - hsum256(accm[r]);
}

// Q4_K against Q8KBlock activations in nibble order (quantize_q8k_nib): one 64-byte load of
// quants holds sub-blocks 4h (low nibbles of bytes 0..31), 4h+2 (low, 32..63), 4h+1 and 4h+3
// (high nibbles), and the activations come as [4h | 4h+2], [4h+1 | 4h+3], so each load feeds two
// maddubs with one mask, shift and mask, instead of a broadcast, shift and mask per sub-block
// pair. The 6-bit scales and mins are unpacked in a vector register (no trip through memory),
// and the mins term is one vpmaddwd of the activation sums with the duplicated mins.
struct Q4KIdx {
    int16_t s[4][32];  // int16 lanes 0..15 / 16..31: the scales of sub-blocks f / f+2, f = 0, 1, 4, 5
    int16_t mdup[16];  // mins m[j] to lanes 2j, 2j+1 (next to the activation sums of 16)
};
inline const Q4KIdx& q4k_idx() {
    alignas(64) static constexpr Q4KIdx t = [] {
        Q4KIdx v{};
        constexpr int first[4] = {0, 1, 4, 5};
        for (int i = 0; i < 4; ++i)
            for (int l = 0; l < 32; ++l) v.s[i][l] = static_cast<int16_t>(first[i] + (l < 16 ? 0 : 2));
        for (int l = 0; l < 16; ++l) v.mdup[l] = static_cast<int16_t>(8 + l / 2);
        return v;
    }();
    return t;
}

// One super-block of one row, unpacked: the quants of the four 64-byte registers (u), the int16
// sub-block scales for each (sc), the mins in pairs (mn) and d, dmin in f32 lanes 0, 1.
struct Q4KRow {
    __m512i u[4], sc[4];
    __m256i mn;
    __m128 dmw;
};
inline Q4KRow q4k_unpack(const uint8_t* blk, const Q4KIdx& ix) {
    // scales[12] = words a, b, c -> sc[0..3] = a & 0x3f.., sc[4..7] = (c & 0x0f..) | ((a >> 2) & 0x30..),
    // mn[0..3] = b & 0x3f.., mn[4..7] = ((c >> 4) & 0x0f..) | ((b >> 2) & 0x30..)
    const __m128i X = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 4));
    const __m128i P = _mm_shuffle_epi32(X, _MM_SHUFFLE(2, 1, 2, 0));  // a c b c
    const __m128i Q = _mm_shuffle_epi32(X, _MM_SHUFFLE(1, 1, 0, 0));  // a a b b
    const __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srlv_epi32(P, _mm_setr_epi32(0, 0, 0, 4)), _mm_set1_epi8(0x0f)),
                                    _mm_and_si128(_mm_srli_epi32(Q, 2), _mm_set1_epi8(0x30)));
    const __m256i s16 = _mm256_cvtepu8_epi16(_mm_blend_epi32(_mm_and_si128(P, _mm_set1_epi8(0x3f)), hi, 0b1010));  // sc[8], mn[8]
    const __m512i s16z = _mm512_castsi256_si512(s16), m4 = _mm512_set1_epi8(0x0f);
    const __m512i q0 = _mm512_loadu_si512(blk + 16), q1 = _mm512_loadu_si512(blk + 80);
    Q4KRow o;
    o.u[0] = _mm512_and_si512(q0, m4);
    o.u[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
    o.u[2] = _mm512_and_si512(q1, m4);
    o.u[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
    for (int i = 0; i < 4; ++i) o.sc[i] = _mm512_permutexvar_epi16(_mm512_load_si512(ix.s[i]), s16z);
    o.mn = _mm256_permutexvar_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(ix.mdup)), s16);
    uint32_t dd;
    std::memcpy(&dd, blk, 4);
    o.dmw = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));
    return o;
}
// One super-block of one row against one column: the scaled sums into acc, the mins term into
// accm. Every Q4_K AVX-512 kernel runs exactly these steps (bit-identical results).
template <bool Vnni>
inline void q4k_column(const Q4KRow& w, const Q8KBlock& x, __m512& acc, __m256& accm) {
    __m512i sumi = _mm512_madd_epi16(_mm512_maddubs_epi16(w.u[0], _mm512_load_si512(x.qs)), w.sc[0]);
    for (int i = 1; i < 4; ++i) sumi = dpwssd<Vnni>(sumi, _mm512_maddubs_epi16(w.u[i], _mm512_load_si512(x.qs + 64 * i)), w.sc[i]);
    const __m256i msum = _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)), w.mn);  // mn[j] * (sum 2j + sum 2j+1)
    const __m128 dm = _mm_mul_ps(w.dmw, _mm_set1_ps(x.d));  // d*xd, dmin*xd
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_broadcastss_ps(dm), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), _mm256_set1_epi32(1)), accm);
}

// NC columns (1 for decode), R rows at a time.
template <int NC, int R, bool Vnni>
void q4k_nib_block(int64_t k, const uint8_t* w, size_t ws, const Q8KBlock* a, size_t a_stride, float* out, size_t out_stride) {
    const size_t near = R * ws, far = prefetch_far(near);
    const Q4KIdx& ix = q4k_idx();
    const int64_t nb = k / 256;
    __m512 acc[R][NC];
    __m256 accm[R][NC];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NC; ++j) acc[r][j] = _mm512_setzero_ps(), accm[r][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(b) * sizeof(BlockQ4_K);
            prefetch_block<sizeof(BlockQ4_K)>(blk, near, far);
            const Q4KRow wr = q4k_unpack(blk, ix);
            for (int j = 0; j < NC; ++j) q4k_column<Vnni>(wr, a[static_cast<size_t>(j) * a_stride + static_cast<size_t>(b)], acc[r][j], accm[r][j]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NC; ++j)
            out[static_cast<size_t>(j) * out_stride + static_cast<size_t>(r)] = _mm512_reduce_add_ps(acc[r][j]) - hsum256(accm[r][j]);
}

template <bool Vnni>
void q4k_nib_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8KBlock* a = static_cast<const Q8KBlock*>(act);
    switch (nr) {
        case 4: q4k_nib_block<1, 4, Vnni>(k, w, ws, a, 0, out, 1); return;
        case 3: q4k_nib_block<1, 3, Vnni>(k, w, ws, a, 0, out, 1); return;
        case 2: q4k_nib_block<1, 2, Vnni>(k, w, ws, a, 0, out, 1); return;
        default: q4k_nib_block<1, 1, Vnni>(k, w, ws, a, 0, out, 1); return;
    }
}

template <bool Vnni>
struct Q4KCols {
    template <int NC>
    struct K {
        static void run(int64_t k, const uint8_t* w, size_t ws, int nr, const Q8KBlock* a, size_t as, float* out, size_t os) {
            for (int r = 0; r < nr; ++r) q4k_nib_block<NC, 1, Vnni>(k, w + r * ws, ws, a, as, out + r, os);
        }
    };
};

template <bool Five, bool Vnni>
void q45k_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8KBlock* a = static_cast<const Q8KBlock*>(act);
    switch (nr) {
        case 4: q45k_rows<4, Five, Vnni>(k, w, ws, a, out); return;
        case 3: q45k_rows<3, Five, Vnni>(k, w, ws, a, out); return;
        case 2: q45k_rows<2, Five, Vnni>(k, w, ws, a, out); return;
        default: q45k_rows<1, Five, Vnni>(k, w, ws, a, out); return;
    }
}

// Q6_K: the 6-bit quants (low 4 bits from ql, high 2 from qh) of a super-block as four 64-byte
// registers of unsigned values; the -32 offset is folded in by a bias of 32 * scale * the
// activation sums; per-lane products with the int8 sub-block scales by vpmulld.
struct Q6KRow {
    __m512i wq[4], sc[4];
    __m256i s16;  // the 16 scales as int16, for the bias
    float d;
};
inline Q6KRow q6k_unpack(const BlockQ6_K* blk) {
    alignas(16) static constexpr auto kPat = [] {  // sub-blocks 4q..4q+3, each scale repeated for its 4 lanes of 4 elements
        struct { int8_t p[4][16]; } t{};
        for (int q = 0; q < 4; ++q)
            for (int i = 0; i < 16; ++i) t.p[q][i] = static_cast<int8_t>(4 * q + i / 4);
        return t;
    }();
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i sh01 = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2);  // left: bits 0-1 / 2-3 -> 4-5
    const __m512i sh23 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);  // right: bits 4-5 / 6-7 -> 4-5
    const __m128i S = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales));
    Q6KRow o;
    for (int hf = 0; hf < 2; ++hf) {
        const __m512i ql = _mm512_loadu_si512(blk->ql + 64 * hf);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * hf)));
        o.wq[2 * hf] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi64(qh, sh01), m30));
        o.wq[2 * hf + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(_mm512_srlv_epi64(qh, sh23), m30));
        for (int i = 0; i < 2; ++i)
            o.sc[2 * hf + i] = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(S, _mm_load_si128(reinterpret_cast<const __m128i*>(kPat.p[2 * hf + i]))));
    }
    o.s16 = _mm256_cvtepi8_epi16(S);
    o.d = fp16_to_f32_fast(blk->d);
    return o;
}
template <bool Vnni>
inline __m512 q6k_column(const Q6KRow& w, const Q8KBlock& x, __m512 acc) {
    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(w.s16, _mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums))), 5);
    __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(bias));
    for (int hf = 0; hf < 2; ++hf) {
        const __m512i d01 = dpbusd<Vnni>(_mm512_setzero_si512(), w.wq[2 * hf], _mm512_load_si512(x.qs + 128 * hf));
        const __m512i d23 = dpbusd<Vnni>(_mm512_setzero_si512(), w.wq[2 * hf + 1], _mm512_load_si512(x.qs + 128 * hf + 64));
        sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(_mm512_mullo_epi32(d01, w.sc[2 * hf]), _mm512_mullo_epi32(d23, w.sc[2 * hf + 1])));
    }
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(w.d * x.d), acc);
}

// NC columns (1 for decode), R rows at a time.
template <int NC, int R, bool Vnni>
void q6k_block(int64_t k, const uint8_t* w, size_t ws, const Q8KBlock* a, size_t a_stride, float* out, size_t out_stride) {
    const size_t near = R * ws, far = prefetch_far(near);
    const int64_t nb = k / 256;
    __m512 acc[R][NC];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NC; ++j) acc[r][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        for (int r = 0; r < R; ++r) {
            const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(w + r * ws) + b;
            prefetch_block<sizeof(BlockQ6_K)>(reinterpret_cast<const uint8_t*>(blk), near, far);
            const Q6KRow wr = q6k_unpack(blk);
            for (int j = 0; j < NC; ++j) acc[r][j] = q6k_column<Vnni>(wr, a[static_cast<size_t>(j) * a_stride + static_cast<size_t>(b)], acc[r][j]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < NC; ++j) out[static_cast<size_t>(j) * out_stride + static_cast<size_t>(r)] = _mm512_reduce_add_ps(acc[r][j]);
}

template <bool Vnni>
struct Q6KCols {
    template <int NC>
    struct K {
        static void run(int64_t k, const uint8_t* w, size_t ws, int nr, const Q8KBlock* a, size_t as, float* out, size_t os) {
            for (int r = 0; r < nr; ++r) q6k_block<NC, 1, Vnni>(k, w + r * ws, ws, a, as, out + r, os);
        }
    };
};

template <bool Vnni>
void q6k_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8KBlock* a = static_cast<const Q8KBlock*>(act);
    switch (nr) {
        case 4: q6k_block<1, 4, Vnni>(k, w, ws, a, 0, out, 1); return;
        case 3: q6k_block<1, 3, Vnni>(k, w, ws, a, 0, out, 1); return;
        case 2: q6k_block<1, 2, Vnni>(k, w, ws, a, 0, out, 1); return;
        default: q6k_block<1, 1, Vnni>(k, w, ws, a, 0, out, 1); return;
    }
}

// ---- float weights ----

template <DType T>
inline __m512 load16(const uint8_t* p) {
    if constexpr (T == DType::F32) return _mm512_loadu_ps(p);
    if constexpr (T == DType::F16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    if constexpr (T == DType::BF16)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

template <DType T>
inline float scalar_at(const uint8_t* p, int64_t i) {
    if constexpr (T == DType::F32) return reinterpret_cast<const float*>(p)[i];
    if constexpr (T == DType::F16) return fp16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    if constexpr (T == DType::BF16) return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
}

template <DType T, int R>
void float_rows(int64_t k, const uint8_t* w, size_t ws, const float* x, float* out) {
    const size_t near = R * ws, far = prefetch_far(near);
    constexpr size_t es = T == DType::F32 ? 4 : 2;
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        for (int r = 0; r < R; ++r) {
            const uint8_t* p = w + r * ws + i * es;
            prefetch_block<32 * es>(p, near, far);
            acc[r][0] = _mm512_fmadd_ps(load16<T>(p), x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(load16<T>(p + 16 * es), x1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; ++r) {
        float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
        for (int64_t j = i; j < k; ++j) s += scalar_at<T>(w + r * ws, j) * x[j];
        out[r] = s;
    }
}

template <DType T>
void float_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const float* x = static_cast<const float*>(act);
    switch (nr) {
        case 4: float_rows<T, 4>(k, w, ws, x, out); return;
        case 3: float_rows<T, 3>(k, w, ws, x, out); return;
        case 2: float_rows<T, 2>(k, w, ws, x, out); return;
        default: float_rows<T, 1>(k, w, ws, x, out); return;
    }
}

template <bool Vnni>
DotKernel table(DType t) {
    switch (t) {
        case DType::F32: return {float_kernel<DType::F32>, nullptr, ActKind::F32, 0};
        case DType::F16: return {float_kernel<DType::F16>, nullptr, ActKind::F32, 0};
        case DType::BF16: return {float_kernel<DType::BF16>, nullptr, ActKind::F32, 0};
        case DType::Q4_0: return {q32_kernel<Q4_0U, Vnni>, nullptr, ActKind::Q8Pair, 8};
        case DType::Q5_0: return {q32_kernel<Q5_0U, Vnni>, nullptr, ActKind::Q8Pair, 16};
        case DType::Q8_0: return {q32_kernel<Q8_0U, Vnni>, nullptr, ActKind::Q8Pair, 128};
        case DType::Q4_K: return {q4k_nib_kernel<Vnni>, multi_columns<Q8KBlock, Q4KCols<Vnni>::template K>, ActKind::Q8KNib, 0};
        case DType::Q5_K: return {q45k_kernel<true, Vnni>, nullptr, ActKind::Q8K, 0};
        case DType::Q6_K: return {q6k_kernel<Vnni>, multi_columns<Q8KBlock, Q6KCols<Vnni>::template K>, ActKind::Q8K, 0};
        default: return {};
    }
}

}  // namespace

DotKernel dot_kernel_avx512(DType t) {
    if (t == DType::Q4_0 && features().avx512_vnni && features().avx512_vbmi) return {q4_0_oct_kernel, multi_columns<Q8Oct, Q40Cols>, ActKind::Q8Oct, 8};
    if (features().avx512_vnni) return table<true>(t);
    // Without VNNI the 512-bit maddubs path cannot take Q8_0's +128 offset (s16 saturation).
    if (t == DType::Q8_0) return {};
    return table<false>(t);
}

}  // namespace minerva::cpu
