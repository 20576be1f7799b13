// kernels/cpu/simd_avx512.h: Avx512, the 16-float vector type the templates over a vector width
// take (attention_impl.h, simd_exp.h); the AVX-512 counterpart of simd_math.h's Avx2.
// Include it only from TUs compiled with the AVX-512 flags (*_avx512.cpp).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/simd_exp.h"

namespace minerva::cpu {

struct Avx512 {
    using F = __m512;
    using M = __mmask16;
    static constexpr int W = 16;
    static constexpr int kAcc = 16;  // vectors of running sums a kernel may keep in registers

    static F zero() { return _mm512_setzero_ps(); }
    static F set1(float a) { return _mm512_set1_ps(a); }
    static F load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
    static F loadh(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
    static F max(F a, F b) { return _mm512_max_ps(a, b); }
    static F min(F a, F b) { return _mm512_min_ps(a, b); }
    static F round(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static F scale_pow2(F p, F n) { return _mm512_scalef_ps(p, n); }
    static float sum(F v) { return _mm512_reduce_add_ps(v); }
    static float max_of(F v) { return _mm512_reduce_max_ps(v); }

    static M span(int64_t cb, int64_t lo, int64_t hi) {
        const int64_t a = std::clamp<int64_t>(lo - cb, 0, 16), b = std::clamp<int64_t>(hi - cb, 0, 16);
        if (b <= a) return 0;
        const uint32_t upto = b == 16 ? 0xffffu : (1u << b) - 1, below = (1u << a) - 1;
        return static_cast<M>(upto & ~below);
    }
    static bool any(M m) { return m != 0; }
    static M live(F x) { return _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ); }
    static F select(M m, F a, F b) { return _mm512_mask_mov_ps(b, m, a); }
    static F zero_unless(M m, F a) { return _mm512_maskz_mov_ps(m, a); }

    // Lane L of fold(a) is the sum of a[slot(L)], slot(L) = 4 (L % 4) + L / 4 (its own inverse):
    // a 4-stage transpose-add tree.
    static constexpr int slot(int c) { return 4 * (c % 4) + c / 4; }
    static F fold(const F (&a)[W]) {
        F b[8], c[4];
        for (int i = 0; i < 8; ++i)
            b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
        for (int j = 0; j < 4; ++j)
            c[j] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], 0x88), _mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], 0xDD));
        const F d0 = _mm512_add_ps(_mm512_unpacklo_ps(c[0], c[1]), _mm512_unpackhi_ps(c[0], c[1]));
        const F d1 = _mm512_add_ps(_mm512_unpacklo_ps(c[2], c[3]), _mm512_unpackhi_ps(c[2], c[3]));
        return _mm512_add_ps(_mm512_shuffle_ps(d0, d1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(d0, d1, _MM_SHUFFLE(3, 2, 3, 2)));
    }

    static void q8_0(const BlockQ8_0* b, float* dst) {
        const F d = _mm512_set1_ps(fp16_to_f32_fast(b->d));
        const __m128i* q = reinterpret_cast<const __m128i*>(b->qs);
        _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q))), d));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q + 1))), d));
    }
    static void q4_0(const BlockQ4_0* b, float* dst) {
        const F d = _mm512_set1_ps(fp16_to_f32_fast(b->d));
        const __m512i u = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)));
        const __m512i eight = _mm512_set1_epi32(8), m4 = _mm512_set1_epi32(15);
        _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(u, m4), eight)), d));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(u, 4), eight)), d));
    }
};

}  // namespace minerva::cpu
