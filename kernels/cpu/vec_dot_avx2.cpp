// kernels/cpu/vec_dot_avx2.cpp: AVX2 + FMA + F16C dot kernels (the portable baseline).
// Quantized weights meet 8-bit activations (qact.h) in integer dot products: maddubs
// (u8 x s8 -> s16 pairs) then madd (-> s32), one float scale multiply per block.
#include <immintrin.h>

#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/qact.h"
#include "cpu/prefetch.h"
#include "cpu/simd_math.h"
#include "cpu/vec_dot.h"

namespace minerva::cpu {
namespace {

inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

// u8 (0..255 with pair sums that fit s16) x s8 -> 8 x s32
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The 32 bits of qh spread to 32 bytes: 0xff where set.
inline __m256i bits_to_bytes(uint32_t qh) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

template <int R, typename Unpack>
inline void q32_rows(int64_t k, const uint8_t* w, size_t ws, const Q8Pair* a, float* out, size_t block_bytes,
                     Unpack unpack) {
    const size_t near = R * ws, far = prefetch_far(near);
    const int64_t nb = k / 32;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const Q8Pair& p = a[b >> 1];
        const int h = static_cast<int>(b & 1);
        const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.qs + 32 * h));
        const __m256i bias = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.bias + 8 * h));
        const float dx = p.dx[8 * h];
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(b) * block_bytes;
            prefetch_block<1>(blk, near, far);  // short row streams: see prefetch.h
            uint16_t dh;
            std::memcpy(&dh, blk, 2);
            const __m256i s = _mm256_add_epi32(unpack(blk, x), bias);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(fp16_to_f32_fast(dh) * dx), acc[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

struct UnpackQ5_0 {
    __m256i operator()(const uint8_t* blk, __m256i x) const {
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 6));
        __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
        u = _mm256_or_si256(u, _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
        return dot_u8s8(u, x);
    }
};

struct UnpackQ8_0 {
    __m256i operator()(const uint8_t* blk, __m256i x) const {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        return dot_u8s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
    }
};

template <typename Unpack, size_t BlockBytes>
void q32_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8Pair* a = static_cast<const Q8Pair*>(act);
    switch (nr) {
        case 4: q32_rows<4>(k, w, ws, a, out, BlockBytes, Unpack{}); return;
        case 3: q32_rows<3>(k, w, ws, a, out, BlockBytes, Unpack{}); return;
        case 2: q32_rows<2>(k, w, ws, a, out, BlockBytes, Unpack{}); return;
        default: q32_rows<1>(k, w, ws, a, out, BlockBytes, Unpack{}); return;
    }
}

// Q4_0 against Q8Oct activations (qact.h), two blocks per 256-bit step: the 16 quant bytes of
// blocks b and b+1 share a register, so their low nibbles line up with Q8Oct's elements 0..15 of
// both blocks and the high nibbles with 16..31, and int32 lanes 0..3 / 4..7 of the products
// belong to block b / b+1 (as Q8Oct's bias lanes do). The eight fp16 scales of a group are
// converted together and multiplied by the activation scales once per group and row, and each
// pair's two scales reach their lanes by one permute: about two thirds of the instructions of
// the pair kernel above per block.
constexpr size_t kGroupQ4_0 = 8 * sizeof(BlockQ4_0);  // one group of eight blocks: 144 bytes

template <int R>
void q4_0_oct_rows(int64_t k, const uint8_t* w, size_t ws, const Q8Oct* a, float* out) {
    const size_t near = R * ws, far = prefetch_far(near);
    const int64_t nb = k / 32, ng = (nb + 7) / 8;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i pick[4];  // the scales of blocks 2j and 2j+1 to lanes 0..3 and 4..7
    for (int j = 0; j < 4; ++j) pick[j] = _mm256_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
        const Q8Oct& ap = a[g];
        const int left = static_cast<int>(std::min<int64_t>(8, nb - 8 * g));
        const __m256 dx = _mm256_load_ps(ap.dx);
        for (int r = 0; r < R; ++r) {
            const uint8_t* grp = w + r * ws + static_cast<size_t>(g) * kGroupQ4_0;
            prefetch_block<kGroupQ4_0>(grp, near, far);
            auto d16 = [&](int b) {
                int16_t v;
                std::memcpy(&v, grp + sizeof(BlockQ4_0) * b, 2);
                return v;
            };
            __m128i dh;
            if (left == 8) {
                dh = _mm_setr_epi16(d16(0), d16(1), d16(2), d16(3), d16(4), d16(5), d16(6), d16(7));
            } else {  // a partial last group: its missing blocks get scale 0 (and zero quants)
                alignas(16) int16_t h[8] = {};
                for (int b = 0; b < left; ++b) h[b] = d16(b);
                dh = _mm_load_si128(reinterpret_cast<const __m128i*>(h));
            }
            const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(dh), dx);
            for (int j = 0; 2 * j < left; ++j) {
                const int b = 2 * j, half = b / 4, bb = b % 4;
                const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(grp + sizeof(BlockQ4_0) * b + 2));
                const __m128i q1 = b + 1 < left ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(grp + sizeof(BlockQ4_0) * (b + 1) + 2))
                                                : _mm_setzero_si128();
                const __m256i q = _mm256_set_m128i(q1, q0);
                const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                const __m256i xlo = _mm256_load_si256(reinterpret_cast<const __m256i*>(ap.qs + 128 * half + 16 * bb));
                const __m256i xhi = _mm256_load_si256(reinterpret_cast<const __m256i*>(ap.qs + 128 * half + 64 + 16 * bb));
                const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
                const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)),
                                                   _mm256_load_si256(reinterpret_cast<const __m256i*>(ap.bias + 16 * half + 4 * bb)));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_permutevar8x32_ps(d, pick[j]), acc[r]);
            }
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

void q4_0_oct_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8Oct* a = static_cast<const Q8Oct*>(act);
    switch (nr) {
        case 4: q4_0_oct_rows<4>(k, w, ws, a, out); return;
        case 3: q4_0_oct_rows<3>(k, w, ws, a, out); return;
        case 2: q4_0_oct_rows<2>(k, w, ws, a, out); return;
        default: q4_0_oct_rows<1>(k, w, ws, a, out); return;
    }
}

// ---- K types ----

// The 8 six-bit scales and mins of a Q4_K/Q5_K block.
inline void k4_unpack(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t a, b, c;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + 4, 4);
    std::memcpy(&c, s + 8, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    std::memcpy(sc, &sc_lo, 4);
    std::memcpy(sc + 4, &sc_hi, 4);
    std::memcpy(mn, &mn_lo, 4);
    std::memcpy(mn + 4, &mn_hi, 4);
}

// Sum over the 8 sub-blocks of mins[j] * (sum of the activations of sub-block j).
inline int min_dot(const uint8_t mn[8], __m256i pair_sums) {
    __m128i m8;
    std::memcpy(&m8, mn, 8);  // low 8 bytes used
    const __m256i m = _mm256_cvtepu8_epi32(m8);
    return hsum_i32(_mm256_mullo_epi32(m, pair_sums));
}

template <int R, bool Five>
void q45k_rows(int64_t k, const uint8_t* w, size_t ws, const Q8KBlock* a, float* out) {
    const size_t near = R * ws, far = prefetch_far(near);
    const int64_t nb = k / 256;
    const size_t bb = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m256 acc[R];
    float accm[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), accm[r] = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < nb; ++b) {
        const Q8KBlock& x = a[b];
        const __m256i pair_sums =
            _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)), _mm256_set1_epi16(1));
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + r * ws + static_cast<size_t>(b) * bb;
            prefetch_block(blk, bb, near, far);
            uint16_t dh, mh;
            std::memcpy(&dh, blk, 2);
            std::memcpy(&mh, blk + 2, 2);
            uint8_t sc[8], mn[8];
            k4_unpack(blk + 4, sc, mn);
            const uint8_t* qs = blk + (Five ? 16 + 32 : 16);
            __m256i qh = _mm256_setzero_si256();
            if constexpr (Five) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 4; ++j) {
                const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j));
                __m256i lo = _mm256_and_si256(q, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if constexpr (Five) {
                    const __m256i one = _mm256_set1_epi8(1);
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4));
                }
                const __m256i xl = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs + 64 * j));
                const __m256i xh = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs + 64 * j + 32));
                const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_set1_epi16(sc[2 * j]));
                const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), _mm256_set1_epi16(sc[2 * j + 1]));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
            }
            const float dd = fp16_to_f32_fast(dh) * x.d;
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(dd), acc[r]);
            accm[r] += fp16_to_f32_fast(mh) * x.d * static_cast<float>(min_dot(mn, pair_sums));
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]) - accm[r];
}

template <bool Five>
void q45k_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8KBlock* a = static_cast<const Q8KBlock*>(act);
    switch (nr) {
        case 4: q45k_rows<4, Five>(k, w, ws, a, out); return;
        case 3: q45k_rows<3, Five>(k, w, ws, a, out); return;
        case 2: q45k_rows<2, Five>(k, w, ws, a, out); return;
        default: q45k_rows<1, Five>(k, w, ws, a, out); return;
    }
}

template <int R>
void q6k_rows(int64_t k, const uint8_t* w, size_t ws, const Q8KBlock* a, float* out) {
    const size_t near = R * ws, far = prefetch_far(near);
    const int64_t nb = k / 256;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
    // scale byte pattern for the 32 elements of sub-blocks (2i, 2i+1): [2i x8, 2i+1 x8]
    __m128i pat[8];
    for (int i = 0; i < 8; ++i)
        pat[i] = _mm_setr_epi8(static_cast<char>(2 * i), static_cast<char>(2 * i), static_cast<char>(2 * i),
                               static_cast<char>(2 * i), static_cast<char>(2 * i), static_cast<char>(2 * i),
                               static_cast<char>(2 * i), static_cast<char>(2 * i), static_cast<char>(2 * i + 1),
                               static_cast<char>(2 * i + 1), static_cast<char>(2 * i + 1), static_cast<char>(2 * i + 1),
                               static_cast<char>(2 * i + 1), static_cast<char>(2 * i + 1), static_cast<char>(2 * i + 1),
                               static_cast<char>(2 * i + 1));
    for (int64_t b = 0; b < nb; ++b) {
        const Q8KBlock& x = a[b];
        const __m256i bs = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums));
        for (int r = 0; r < R; ++r) {
            const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(w + r * ws) + b;
            prefetch_block<sizeof(BlockQ6_K)>(reinterpret_cast<const uint8_t*>(blk), near, far);
            const __m128i S = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales));
            // -32 * sum_s sc_s * bsum_s: the offset of the unsigned 6-bit quants
            __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(S), bs), 5);
            sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
            for (int hf = 0; hf < 2; ++hf) {
                const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * hf));
                const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * hf + 32));
                const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * hf));
                __m256i g[4];
                g[0] = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
                g[1] = _mm256_or_si256(_mm256_and_si256(qb, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
                g[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
                g[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
                for (int i = 0; i < 4; ++i) {
                    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs + 128 * hf + 32 * i));
                    const __m256i sv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(S, pat[4 * hf + i]));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(g[i], xv), sv));
                }
            }
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(fp16_to_f32_fast(blk->d) * x.d), acc[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]);
}

void q6k_kernel(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, float* out) {
    const Q8KBlock* a = static_cast<const Q8KBlock*>(act);
    switch (nr) {
        case 4: q6k_rows<4>(k, w, ws, a, out); return;
        case 3: q6k_rows<3>(k, w, ws, a, out); return;
        case 2: q6k_rows<2>(k, w, ws, a, out); return;
        default: q6k_rows<1>(k, w, ws, a, out); return;
    }
}

// ---- float weights (activations stay f32) ----

template <DType T>
inline __m256 load8(const uint8_t* p) {
    if constexpr (T == DType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    if constexpr (T == DType::F16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if constexpr (T == DType::BF16)
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

template <DType T>
inline float scalar_at(const uint8_t* p, int64_t i) {
    if constexpr (T == DType::F32) return reinterpret_cast<const float*>(p)[i];
    if constexpr (T == DType::F16) return fp16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    if constexpr (T == DType::BF16) return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
}

template <DType T, int R>
void float_rows(int64_t k, const uint8_t* w, size_t ws, const float* x, float* out) {
    constexpr size_t es = T == DType::F32 ? 4 : 2;
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        for (int r = 0; r < R; ++r) {
            const uint8_t* p = w + r * ws + i * es;
            acc[r][0] = _mm256_fmadd_ps(load8<T>(p), x0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(load8<T>(p + 8 * es), x1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; ++r) {
        float s = hsum8(_mm256_add_ps(acc[r][0], acc[r][1]));
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

}  // namespace

float dot_f32_avx2(const float* a, const float* b, int64_t n) {
    float r;
    float_rows<DType::F32, 1>(n, reinterpret_cast<const uint8_t*>(a), 0, b, &r);
    return r;
}

DotKernel dot_kernel_avx2(DType t) {
    switch (t) {
        case DType::F32: return {float_kernel<DType::F32>, nullptr, ActKind::F32, 0};
        case DType::F16: return {float_kernel<DType::F16>, nullptr, ActKind::F32, 0};
        case DType::BF16: return {float_kernel<DType::BF16>, nullptr, ActKind::F32, 0};
        case DType::Q4_0: return {q4_0_oct_kernel, nullptr, ActKind::Q8Oct, 8};
        case DType::Q5_0: return {q32_kernel<UnpackQ5_0, sizeof(BlockQ5_0)>, nullptr, ActKind::Q8Pair, 16};
        case DType::Q8_0: return {q32_kernel<UnpackQ8_0, sizeof(BlockQ8_0)>, nullptr, ActKind::Q8Pair, 0};
        case DType::Q4_K: return {q45k_kernel<false>, nullptr, ActKind::Q8K, 0};
        case DType::Q5_K: return {q45k_kernel<true>, nullptr, ActKind::Q8K, 0};
        case DType::Q6_K: return {q6k_kernel, nullptr, ActKind::Q8K, 0};
        default: return {};
    }
}

DotKernel find_dot_kernel(DType t) {
    if (features().avx512) {
        DotKernel k = dot_kernel_avx512(t);
        if (k.fn) return k;
    }
    return dot_kernel_avx2(t);
}

}  // namespace minerva::cpu
