// kernels/cpu/simd_math.h: AVX2 vector helpers shared by the element-wise ops, the activation
// quantizers and attention: Avx2, the 8-float vector type the templates over a vector width
// take (attention_impl.h, simd_exp.h), and the horizontal sums and e^x built on it.
// Include it only from TUs compiled with the base (AVX2) flags: its inline bodies must never be
// compiled for another instruction set (simd_avx512.h is the AVX-512 counterpart).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/simd_exp.h"

namespace minerva::cpu {

struct Avx2 {
    using F = __m256;
    using M = __m256;  // a lane mask: all ones where set
    static constexpr int W = 8;
    static constexpr int kAcc = 12;  // vectors of running sums a kernel may keep in registers

    static F zero() { return _mm256_setzero_ps(); }
    static F set1(float a) { return _mm256_set1_ps(a); }
    static F load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
    static F loadh(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F div(F a, F b) { return _mm256_div_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }   // a b + c
    static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); } // c - a b
    static F max(F a, F b) { return _mm256_max_ps(a, b); }
    static F min(F a, F b) { return _mm256_min_ps(a, b); }
    static F round(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    // p 2^n for integral n in [-127, 128] (through the exponent bits)
    static F scale_pow2(F p, F n) {
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    }
    static float sum(F v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static float max_of(F v) {
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        return _mm_cvtss_f32(m);
    }

    // Lanes i with cb + i in [lo, hi).
    static M span(int64_t cb, int64_t lo, int64_t hi) {
        const int a = static_cast<int>(std::clamp<int64_t>(lo - cb, 0, W)), b = static_cast<int>(std::clamp<int64_t>(hi - cb, 0, W));
        const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(a), i), _mm256_cmpgt_epi32(_mm256_set1_epi32(b), i));
        return _mm256_castsi256_ps(in);
    }
    static bool any(M m) { return _mm256_movemask_ps(m) != 0; }
    static M live(F x) { return _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ); }  // x != -inf
    static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }                 // m ? a : b
    static F zero_unless(M m, F a) { return _mm256_and_ps(m, a); }

    // Lane c of fold(a) is the sum of the lanes of a[slot(c)].
    static constexpr int slot(int c) { return c; }
    static F fold(const F (&a)[W]) {
        const F t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
        const F t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
        const F u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
        return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    }

    // One block of 32 quantized values to floats.
    static void q8_0(const BlockQ8_0* b, float* dst) {
        const F d = _mm256_set1_ps(fp16_to_f32_fast(b->d));
        for (int k = 0; k < 4; ++k) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + 8 * k)));
            _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
    static void q4_0(const BlockQ4_0* b, float* dst) {
        const F d = _mm256_set1_ps(fp16_to_f32_fast(b->d));
        const __m256i m4 = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
        for (int k = 0; k < 2; ++k) {
            const __m256i u = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + 8 * k)));
            _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(u, m4), eight)), d));
            _mm256_storeu_ps(dst + 16 + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(u, 4), eight)), d));
        }
    }
};

inline float hsum8(__m256 v) { return Avx2::sum(v); }
inline float hmax8(__m256 v) { return Avx2::max_of(v); }
inline __m256 exp8(__m256 x) { return exp_poly<Avx2>(x); }

}  // namespace minerva::cpu
