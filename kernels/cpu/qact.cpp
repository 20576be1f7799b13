// kernels/cpu/qact.cpp: activation quantization (AVX2; the layouts are described in qact.h).
#include "cpu/qact.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "cpu/simd_math.h"

namespace minerva::cpu {
namespace {

// Quantizes n (multiple of 32) floats with scale 1/id into int8 (round half away from zero),
// returning the element sums of each 16 in sums16 (n/16 entries).
inline void quant_block(const float* x, int n, float id, int8_t* q, int* sums16) {
    const __m256 vid = _mm256_set1_ps(id);
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    for (int i = 0; i < n; i += 32) {
        __m256i r[4];
        for (int j = 0; j < 4; ++j) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vid);
            // round half away from zero: trunc(v + copysign(0.5, v))
            v = _mm256_add_ps(v, _mm256_or_ps(_mm256_and_ps(v, sign), half));
            r[j] = _mm256_cvttps_epi32(v);
        }
        for (int j = 0; j < 2; ++j) {
            const __m256i s = _mm256_add_epi32(r[2 * j], r[2 * j + 1]);
            __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            t = _mm_hadd_epi32(t, t);
            t = _mm_hadd_epi32(t, t);
            sums16[i / 16 + j] = _mm_cvtsi128_si32(t);
        }
        // pack 32 int32 -> 32 int8 in order
        __m256i a = _mm256_packs_epi32(r[0], r[1]);  // lanes interleaved by 128 bits
        __m256i b = _mm256_packs_epi32(r[2], r[3]);
        __m256i c = _mm256_packs_epi16(a, b);
        c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), c);
    }
}

inline float amax_of(const float* x, int n) {
    const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), mask));
    return hmax8(m);
}

}  // namespace

float quantize_i8_block(const float* x, int n, int8_t* q, int* sums16) {
    const float d = amax_of(x, n) / 127.f;
    quant_block(x, n, d > 0 ? 1.f / d : 0.f, q, sums16);
    return d;
}

void quantize_q8pair(const float* x, int64_t k, int bias_c, Q8Pair* out) {
    const int64_t nb = k / 32;
    for (int64_t b = 0; b < nb; ++b) {
        Q8Pair& p = out[b / 2];
        const int h = static_cast<int>(b % 2);
        int sums[2];
        const float d = quantize_i8_block(x + 32 * b, 32, p.qs + 32 * h, sums);
        for (int l = 0; l < 8; ++l) {
            p.bias[8 * h + l] = 0;
            p.dx[8 * h + l] = d;
        }
        p.bias[8 * h] = -bias_c * (sums[0] + sums[1]);
    }
    if (nb % 2) {  // zero-pad the odd last block
        Q8Pair& p = out[nb / 2];
        std::memset(p.qs + 32, 0, 32);
        for (int l = 8; l < 16; ++l) p.bias[l] = 0, p.dx[l] = 0.f;
    }
}

void quantize_q8oct(const float* x, int64_t k, int bias_c, Q8Oct* out) {
    const int64_t nb = k / 32;
    for (int64_t g = 0; 8 * g < nb; ++g) {
        Q8Oct& o = out[g];
        std::memset(&o, 0, sizeof o);
        for (int b = 0; b < 8 && 8 * g + b < nb; ++b) {
            alignas(32) int8_t q[32];
            int sums[2];
            const int h = b / 4, i = b % 4;
            o.dx[b] = quantize_i8_block(x + 32 * (8 * g + b), 32, q, sums);
            std::memcpy(o.qs + 128 * h + 16 * i, q, 16);
            std::memcpy(o.qs + 128 * h + 64 + 16 * i, q + 16, 16);
            o.bias[16 * h + 4 * i] = -bias_c * (sums[0] + sums[1]);
        }
    }
}

void quantize_q8k(const float* x, int64_t k, Q8KBlock* out) {
    for (int64_t b = 0; b < k / 256; ++b) {
        Q8KBlock& q = out[b];
        int sums[16];
        q.d = quantize_i8_block(x + 256 * b, 256, q.qs, sums);
        for (int j = 0; j < 16; ++j) q.bsums[j] = static_cast<int16_t>(sums[j]);
    }
}

void quantize_q8k_nib(const float* x, int64_t k, Q8KBlock* out) {
    quantize_q8k(x, k, out);
    for (int64_t b = 0; b < k / 256; ++b)
        for (int h = 0; h < 2; ++h) {  // swap sub-blocks 4h+1 and 4h+2
            int8_t t[32];
            int8_t* s1 = out[b].qs + 32 * (4 * h + 1);
            std::memcpy(t, s1, 32);
            std::memcpy(s1, s1 + 32, 32);
            std::memcpy(s1 + 32, t, 32);
        }
}

}  // namespace minerva::cpu
