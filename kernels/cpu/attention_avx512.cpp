// kernels/cpu/attention_avx512.cpp: the fused attention's work item (attention_impl.h) with
// 16-float vectors, F16 cache rows converted 16 at a time. Compiled with AVX-512 flags; called
// only where CPUID reports AVX-512.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() and trip these at -O3 (false positives).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/attention_impl.h"
#include "cpu/fp16.h"

namespace minerva::cpu::attn {
namespace {

struct Avx512 {
    static constexpr int W = 16;
    static float dot(const float* a, const float* b, int64_t n) {
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        }
        for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        if (i < n) {
            const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
        }
        return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
    static void axpy(float a, const float* x, float* y, int64_t n) {
        const __m512 va = _mm512_set1_ps(a);
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
        if (i < n) {
            const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
            _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
        }
    }
    static void scale(float* y, float a, int64_t n) {
        const __m512 va = _mm512_set1_ps(a);
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(va, _mm512_loadu_ps(y + i)));
        for (; i < n; ++i) y[i] *= a;
    }
    // e^x as exp8 (simd_math.h) does it, 16 lanes: x = n ln2 + r, e^r by a degree-6 polynomial.
    static __m512 exp16(__m512 x) {
        x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
        const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
        __m512 p = _mm512_set1_ps(1.f / 720);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
        return _mm512_scalef_ps(p, n);
    }
    static float exp_sum(float* s, int64_t n, float m) {
        const __m512 vm = _mm512_set1_ps(m), ninf = _mm512_set1_ps(-INFINITY);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) {
            const __m512 x = _mm512_loadu_ps(s + i);
            const __mmask16 live = _mm512_cmp_ps_mask(x, ninf, _CMP_NEQ_OQ);
            const __m512 e = _mm512_maskz_mov_ps(live, exp16(_mm512_sub_ps(x, vm)));
            _mm512_storeu_ps(s + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        return _mm512_reduce_add_ps(sum);
    }
    static void load_f16(const uint16_t* s, float* dst, int64_t n) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
        for (; i < n; ++i) dst[i] = fp16_to_f32_fast(s[i]);
    }
};

}  // namespace

void attend_part_avx512(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                        const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    attend_part<Avx512>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
}

}  // namespace minerva::cpu::attn
