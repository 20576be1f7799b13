// Reference quantizers: f32 rows -> ggml block formats. See quantize.h for the contract.
//
// Notation: x are the input values of a (sub-)block, L the integer levels written to the file,
// d the scale and m the min, so that x ~ d*L (symmetric types) or x ~ d*L - m (affine types).
#include "cpu/quantize.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cpu/fp16.h"
#include "cpu/simd_math.h"
#include "minerva/error.h"

namespace minerva::cpu {
namespace {

// ---- scalar helpers ---------------------------------------------------------------------

inline uint16_t to_f16(float f) { return f32_to_fp16_fast(f); }
inline float from_f16(uint16_t h) { return fp16_to_f32_fast(h); }
inline uint16_t to_bf16(float f) { return f32_to_bf16(f); }

inline void put_f16(uint8_t* p, float f) {
    uint16_t h = to_f16(f);
    std::memcpy(p, &h, 2);
}

// Stores f as half and returns the value the file will actually hold.
inline float store_f16(uint8_t* p, float f) {
    uint16_t h = to_f16(f);
    std::memcpy(p, &h, 2);
    return from_f16(h);
}

// Round to nearest (even on ties, the default MXCSR mode) in one instruction: std::lrintf is an
// out-of-line call here, which made the scale search several times slower.
inline int round_clamp(float v, int lo, int hi) {
    int l = _mm_cvtss_si32(_mm_set_ss(v));
    return std::clamp(l, lo, hi);
}

// Rejects non-finite input: a NaN or inf would silently poison a whole block's scale.
void check_finite(const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i]))
            throw Error("quantize: input value at index " + std::to_string(i) + " is not finite");
}

// ---- legacy 32-element block types -------------------------------------------------------

constexpr int kQK = 32;

// Largest-magnitude value of a block, with its sign.
inline float signed_absmax(const float* x, int n) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    return vmax;
}

// Q4_0: x = d*(q-8). The largest-magnitude value maps to level 0 (q-8 = -8), using the full
// negative range; its opposite sign side reaches +7.
void q4_0_block(const float* x, uint8_t* b) {
    float d = store_f16(b, signed_absmax(x, kQK) / -8.0f);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        int q0 = round_clamp(x[j] * id + 8.0f, 0, 15);
        int q1 = round_clamp(x[j + 16] * id + 8.0f, 0, 15);
        qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
}

// Q4_1: x = d*q + m with m the block minimum.
void q4_1_block(const float* x, uint8_t* b) {
    float lo = *std::min_element(x, x + kQK), hi = *std::max_element(x, x + kQK);
    float d = store_f16(b, (hi - lo) / 15.0f);
    float m = store_f16(b + 2, lo);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        int q0 = round_clamp((x[j] - m) * id, 0, 15);
        int q1 = round_clamp((x[j + 16] - m) * id, 0, 15);
        qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
}

// Q5_0: x = d*(q-16), q in 0..31; bit 4 of each q lives in the 32-bit qh (bit j for element j).
void q5_0_block(const float* x, uint8_t* b) {
    float d = store_f16(b, signed_absmax(x, kQK) / -16.0f);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        int q0 = round_clamp(x[j] * id + 16.0f, 0, 31);
        int q1 = round_clamp(x[j + 16] * id + 16.0f, 0, 31);
        qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
        qh |= static_cast<uint32_t>(q0 >> 4) << j;
        qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    std::memcpy(b + 2, &qh, 4);
}

// Q5_1: x = d*q + m, q in 0..31.
void q5_1_block(const float* x, uint8_t* b) {
    float lo = *std::min_element(x, x + kQK), hi = *std::max_element(x, x + kQK);
    float d = store_f16(b, (hi - lo) / 31.0f);
    float m = store_f16(b + 2, lo);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        int q0 = round_clamp((x[j] - m) * id, 0, 31);
        int q1 = round_clamp((x[j + 16] - m) * id, 0, 31);
        qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
        qh |= static_cast<uint32_t>(q0 >> 4) << j;
        qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    std::memcpy(b + 4, &qh, 4);
}

// Q8_0: x = d*q, q in -127..127.
void q8_0_block(const float* x, uint8_t* b) {
    float amax = 0.0f;
    for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
    float d = store_f16(b, amax / 127.0f);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    auto* qs = reinterpret_cast<int8_t*>(b + 2);
    for (int i = 0; i < kQK; ++i) qs[i] = static_cast<int8_t>(round_clamp(x[i] * id, -127, 127));
}

// ---- level sums for the scale search (AVX2, part of the x86-64 baseline of this project) --

// For L_i = clamp(round(iscale * (x_i - off)), lo, hi): s[0] = sum w L, s[1] = sum w L^2,
// s[2] = sum w L x. n is a multiple of 8. Rounding is to nearest even, as round_clamp does.
inline void level_sums(const float* x, const float* w, int n, float iscale, float off, float lo, float hi, float s[3]) {
    const __m256 vs = _mm256_set1_ps(iscale), vo = _mm256_set1_ps(off);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0;
    for (int i = 0; i < n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        __m256 l = _mm256_round_ps(_mm256_mul_ps(vs, _mm256_sub_ps(xv, vo)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        l = _mm256_min_ps(_mm256_max_ps(l, vlo), vhi);
        __m256 wl = _mm256_mul_ps(_mm256_loadu_ps(w + i), l);
        a0 = _mm256_add_ps(a0, wl);
        a1 = _mm256_fmadd_ps(wl, l, a1);
        a2 = _mm256_fmadd_ps(wl, xv, a2);
    }
    s[0] = hsum8(a0);
    s[1] = hsum8(a1);
    s[2] = hsum8(a2);
}

// ---- K-quant scale search ------------------------------------------------------------------

constexpr int kQK_K = 256;

// Importance weights of a sub-block: every value counts, larger ones somewhat more (their error
// moves a dot product more), without letting one outlier decide the scale.
void make_weights(const float* x, int n, float* w) {
    float s2 = 0.0f;
    for (int i = 0; i < n; ++i) s2 += x[i] * x[i];
    float av = std::sqrt(s2 / static_cast<float>(n));
    for (int i = 0; i < n; ++i) w[i] = av + std::fabs(x[i]);
}

// Affine fit x ~ d*L - m with L in 0..nmax, d >= 0, m >= 0 (the stored min is subtracted, so
// an offset above zero is not representable and is clamped to zero).
// Candidates: the levels from a set of inverse scales around nmax/(max-min); for each, the
// weighted least-squares (d, m) for those levels; keep the one with the smallest weighted error,
// then re-round with it and refit once more. Returns the weighted error; writes d, m.
float fit_affine(const float* x, const float* w, int n, int nmax, float& d_out, float& m_out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    if (lo > 0.0f) lo = 0.0f;
    if (hi <= lo) {  // constant block (or all zero): d = 0, everything is -m
        d_out = 0.0f;
        m_out = -lo;
        return 0.0f;
    }
    float best_err = INFINITY, best_d = (hi - lo) / static_cast<float>(nmax), best_b = lo;

    float sw = 0, sx = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
        sw += w[i];
        sx += w[i] * x[i];
        sxx += w[i] * x[i] * x[i];
    }
    auto evaluate = [&](float iscale, float off) {
        float sums[3];
        level_sums(x, w, n, iscale, off, 0.0f, static_cast<float>(nmax), sums);
        const float sl = sums[0], sll = sums[1], slx = sums[2];
        float det = sw * sll - sl * sl;
        if (det <= 0.0f) return;
        float d = (sw * slx - sl * sx) / det;
        float b = (sll * sx - sl * slx) / det;
        if (b > 0.0f) {  // min must be <= 0
            b = 0.0f;
            d = slx / sll;
        }
        if (d <= 0.0f) return;
        // sum w (d*L + b - x)^2 expanded in the sums already at hand.
        float err = sxx + d * d * sll + b * b * sw + 2.0f * (d * b * sl - d * slx - b * sx);
        if (err < best_err) {
            best_err = err;
            best_d = d;
            best_b = b;
        }
    };

    const float range = hi - lo;
    for (int k = -10; k <= 10; ++k) evaluate((static_cast<float>(nmax) + 0.1f * k) / range, lo);
    // Refine: the levels the best (d, b) itself gives, refit.
    evaluate(1.0f / best_d, best_b);
    if (!std::isfinite(best_err)) {  // no candidate had two distinct levels: plain min/max
        best_d = range / static_cast<float>(nmax);
        best_b = lo;
        best_err = 0.0f;
    }
    d_out = best_d;
    m_out = -best_b;
    return best_err;
}

// Symmetric fit x ~ d*L with L in -nneg..nneg-1 (one more level on the negative side, like the
// file formats). The largest-magnitude value is mapped near -nneg (so it uses the extra level),
// candidates vary that mapping; the least-squares d for the levels of each candidate is kept when
// it explains most of the weighted energy (sum w*x*L)^2 / sum w*L^2.
float fit_symmetric(const float* x, const float* w, int n, int nneg) {
    float vmax = signed_absmax(x, n);
    if (vmax == 0.0f) return 0.0f;
    float best_score = -1.0f, best_d = vmax / -static_cast<float>(nneg);
    auto evaluate = [&](float iscale) {
        float sums[3];
        level_sums(x, w, n, iscale, 0.0f, -static_cast<float>(nneg), static_cast<float>(nneg - 1), sums);
        const float sll = sums[1], slx = sums[2];
        if (sll <= 0.0f) return;
        float score = slx * slx / sll;
        if (score > best_score) {
            best_score = score;
            best_d = slx / sll;
        }
    };
    for (int k = -10; k <= 10; ++k) evaluate(-(static_cast<float>(nneg) + 0.1f * k) / vmax);
    if (best_d != 0.0f) evaluate(1.0f / best_d);
    return best_d;
}

// Sub-block scales/mins -> k-bit integers with one float super-scale: s ~ D * ls, ls in 0..qmax.
float quantize_positive_scales(const float* s, int n, int qmax, uint8_t* q) {
    float smax = *std::max_element(s, s + n);
    if (smax <= 0.0f) {
        std::fill(q, q + n, 0);
        return 0.0f;
    }
    float D = smax / static_cast<float>(qmax);
    for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(round_clamp(s[i] / D, 0, qmax));
    return D;
}

// With the super-block scales fixed, the rounded sub-block scale and min need not be the best
// integers: try each one +-1 and keep the pair with the smallest weighted error after
// re-rounding the levels (the same rounding the block writer then uses).
void refine_affine_ints(const float* x, const float* w, int n, int nmax, float D, float M, int qmax, uint8_t& ls,
                        uint8_t& lm) {
    float best = INFINITY;
    int best_a = ls, best_c = lm;
    for (int a = ls - 1; a <= ls + 1; ++a) {
        if (a < 0 || a > qmax) continue;
        for (int c = lm - 1; c <= lm + 1; ++c) {
            if (c < 0 || c > qmax) continue;
            const float ds = D * a, ms = M * c, id = ds != 0.0f ? 1.0f / ds : 0.0f;
            float err = 0.0f;
            for (int i = 0; i < n; ++i) {
                int l = ds != 0.0f ? round_clamp((x[i] + ms) * id, 0, nmax) : 0;
                float e = ds * l - ms - x[i];
                err += w[i] * e * e;
            }
            if (err < best) {
                best = err;
                best_a = a;
                best_c = c;
            }
        }
    }
    ls = static_cast<uint8_t>(best_a);
    lm = static_cast<uint8_t>(best_c);
}

// The symmetric counterpart: the rounded signed sub-block scale +-1, levels in -nneg..nneg-1.
int refine_symmetric_int(const float* x, const float* w, int n, int nneg, float D, int lo, int hi, int ls) {
    float best = INFINITY;
    int best_a = ls;
    for (int a = ls - 1; a <= ls + 1; ++a) {
        if (a < lo || a > hi) continue;
        const float ds = D * a, id = ds != 0.0f ? 1.0f / ds : 0.0f;
        float err = 0.0f;
        for (int i = 0; i < n; ++i) {
            int l = ds != 0.0f ? round_clamp(x[i] * id, -nneg, nneg - 1) : 0;
            float e = ds * l - x[i];
            err += w[i] * e * e;
        }
        if (err < best) {
            best = err;
            best_a = a;
        }
    }
    return best_a;
}

// ---- K-quant blocks --------------------------------------------------------------------------

// Q2_K: 16 sub-blocks of 16, levels 0..3, 4-bit scale and 4-bit min per sub-block.
// Layout: scales[16] (scale low nibble, min high nibble), qs[64], d, dmin.
void q2_k_block(const float* x, uint8_t* b) {
    float w[256], d[16], m[16];
    for (int s = 0; s < 16; ++s) {
        make_weights(x + 16 * s, 16, w + 16 * s);
        fit_affine(x + 16 * s, w + 16 * s, 16, 3, d[s], m[s]);
    }
    uint8_t ls[16], lm[16];
    float D = quantize_positive_scales(d, 16, 15, ls);
    float M = quantize_positive_scales(m, 16, 15, lm);
    uint8_t* scales = b;
    uint8_t* qs = b + 16;
    D = store_f16(b + 80, D);
    M = store_f16(b + 82, M);
    for (int s = 0; s < 16; ++s) refine_affine_ints(x + 16 * s, w + 16 * s, 16, 3, D, M, 15, ls[s], lm[s]);
    std::memset(qs, 0, 64);
    for (int s = 0; s < 16; ++s) {
        scales[s] = static_cast<uint8_t>(ls[s] | (lm[s] << 4));
        float ds = D * ls[s], ms = M * lm[s];
        float id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 16; ++i) {
            int e = 16 * s + i;
            int l = ds != 0.0f ? round_clamp((x[e] + ms) * id, 0, 3) : 0;
            int h = e / 128, j = (e % 128) / 32, k = e % 32;
            qs[h * 32 + k] |= static_cast<uint8_t>(l << (2 * j));
        }
    }
}

// The scales of Q3_K and Q6_K: 16 sub-blocks of 16 values, each fitted symmetrically with levels
// -nneg..nneg-1, its scale then an integer ls[s] in -nscale..nscale-1 of one super-scale D,
// which is stored as f16 at d_out (the rounded D is what the integers are refined against and
// what is returned).
float fit_scales_16x16(const float* x, int nneg, int nscale, uint8_t* d_out, int* ls) {
    float w[256], d[16];
    for (int s = 0; s < 16; ++s) {
        make_weights(x + 16 * s, 16, w + 16 * s);
        d[s] = fit_symmetric(x + 16 * s, w + 16 * s, 16, nneg);
    }
    float vmax = signed_absmax(d, 16);
    float D = vmax != 0.0f ? vmax / -static_cast<float>(nscale) : 0.0f;
    for (int s = 0; s < 16; ++s) ls[s] = D != 0.0f ? round_clamp(d[s] / D, -nscale, nscale - 1) : 0;
    D = store_f16(d_out, D);
    for (int s = 0; s < 16; ++s)
        ls[s] = refine_symmetric_int(x + 16 * s, w + 16 * s, 16, nneg, D, -nscale, nscale - 1, ls[s]);
    return D;
}

// Q3_K: 16 sub-blocks of 16, levels -4..3 (2 low bits in qs, the third in hmask: set means
// "no -4"), signed 6-bit sub-block scales packed in 12 bytes. Layout: hmask[32], qs[64],
// scales[12], d.
void q3_k_block(const float* x, uint8_t* b) {
    uint8_t* hmask = b;
    uint8_t* qs = b + 32;
    uint8_t* sc = b + 96;
    std::memset(b, 0, 110);
    int ls[16];
    const float D = fit_scales_16x16(x, 4, 32, b + 108, ls);
    for (int s = 0; s < 16; ++s) {
        int l = ls[s] + 32;  // 0..63
        if (s < 8) sc[s] = static_cast<uint8_t>(l & 15);
        else sc[s - 8] |= static_cast<uint8_t>((l & 15) << 4);
        sc[8 + s % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (s / 4)));
        float ds = D * ls[s];
        float id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 16; ++i) {
            int e = 16 * s + i;
            int q = (ds != 0.0f ? round_clamp(x[e] * id, -4, 3) : 0) + 4;  // 0..7
            int h = e / 128, j = (e % 128) / 32, k = e % 32;
            qs[h * 32 + k] |= static_cast<uint8_t>((q & 3) << (2 * j));
            if (q > 3) hmask[k] |= static_cast<uint8_t>(1 << (h * 4 + j));
        }
    }
}

// The 12-byte packing of eight 6-bit scales and eight 6-bit mins shared by Q4_K and Q5_K.
void pack_scales_mins_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
    std::memset(q, 0, 12);
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            q[j] |= ls[j];
            q[j + 4] |= lm[j];
        } else {
            q[j + 4] = static_cast<uint8_t>((ls[j] & 15) | ((lm[j] & 15) << 4));
            q[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
            q[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
        }
    }
}

// Q4_K (nbits 4) and Q5_K (nbits 5): 8 sub-blocks of 32, affine with 6-bit scales and mins.
// Q4_K layout: d, dmin, scales[12], qs[128]; Q5_K adds qh[32] (bit s of qh[i] is the 5th bit of
// element 32*s + i) before qs.
void q45_k_block(const float* x, uint8_t* b, int nbits) {
    const int nmax = (1 << nbits) - 1;
    float w[256], d[8], m[8];
    for (int s = 0; s < 8; ++s) {
        make_weights(x + 32 * s, 32, w + 32 * s);
        fit_affine(x + 32 * s, w + 32 * s, 32, nmax, d[s], m[s]);
    }
    uint8_t ls[8], lm[8];
    float D = quantize_positive_scales(d, 8, 63, ls);
    float M = quantize_positive_scales(m, 8, 63, lm);
    D = store_f16(b, D);
    M = store_f16(b + 2, M);
    for (int s = 0; s < 8; ++s) refine_affine_ints(x + 32 * s, w + 32 * s, 32, nmax, D, M, 63, ls[s], lm[s]);
    pack_scales_mins_k4(ls, lm, b + 4);
    uint8_t* qh = nbits == 5 ? b + 16 : nullptr;
    uint8_t* qs = nbits == 5 ? b + 48 : b + 16;
    std::memset(qs, 0, 128);
    if (qh) std::memset(qh, 0, 32);
    for (int s = 0; s < 8; ++s) {
        float ds = D * ls[s], ms = M * lm[s];
        float id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 32; ++i) {
            int e = 32 * s + i;
            int l = ds != 0.0f ? round_clamp((x[e] + ms) * id, 0, nmax) : 0;
            int c = e / 64, r = e % 64;
            qs[c * 32 + r % 32] |= static_cast<uint8_t>((l & 15) << (4 * (r / 32)));
            if (qh) qh[i] |= static_cast<uint8_t>((l >> 4) << s);
        }
    }
}

// Q6_K: 16 sub-blocks of 16, levels -32..31 (low 4 bits in ql, high 2 in qh), int8 scales.
// Layout: ql[128], qh[64], scales[16], d.
void q6_k_block(const float* x, uint8_t* b) {
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    auto* sc = reinterpret_cast<int8_t*>(b + 192);
    std::memset(b, 0, 210);
    int ls[16];
    const float D = fit_scales_16x16(x, 32, 128, b + 208, ls);
    for (int s = 0; s < 16; ++s) sc[s] = static_cast<int8_t>(ls[s]);
    for (int s = 0; s < 16; ++s) {
        float ds = D * sc[s];
        float id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 16; ++i) {
            int e = 16 * s + i;
            int q = (ds != 0.0f ? round_clamp(x[e] * id, -32, 31) : 0) + 32;  // 0..63
            int h = e / 128, g = (e % 128) / 32, k = e % 32;
            int li = h * 64 + k + (g & 1) * 32;
            ql[li] |= static_cast<uint8_t>((q & 15) << (4 * (g >> 1)));
            qh[h * 32 + k] |= static_cast<uint8_t>((q >> 4) << (2 * g));
        }
    }
}

using BlockFn = void (*)(const float*, uint8_t*);

void q4_k_block(const float* x, uint8_t* b) { q45_k_block(x, b, 4); }
void q5_k_block(const float* x, uint8_t* b) { q45_k_block(x, b, 5); }

BlockFn block_fn(DType t) {
    switch (t) {
        case DType::Q4_0: return q4_0_block;
        case DType::Q4_1: return q4_1_block;
        case DType::Q5_0: return q5_0_block;
        case DType::Q5_1: return q5_1_block;
        case DType::Q8_0: return q8_0_block;
        case DType::Q2_K: return q2_k_block;
        case DType::Q3_K: return q3_k_block;
        case DType::Q4_K: return q4_k_block;
        case DType::Q5_K: return q5_k_block;
        case DType::Q6_K: return q6_k_block;
        default: return nullptr;
    }
}

}  // namespace

bool can_quantize(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || block_fn(t) != nullptr;
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
    if (!can_quantize(t)) throw Error("quantize: cannot produce type " + std::string(dtype_name(t)));
    const DTypeInfo& info = dtype_info(t);
    if (n < 0 || n % info.block_elems != 0)
        throw Error("quantize: row of " + std::to_string(n) + " elements is not a multiple of the " +
                    std::string(info.name) + " block size " + std::to_string(info.block_elems));
    auto* out = static_cast<uint8_t*>(dst);
    switch (t) {
        case DType::F32: std::memcpy(out, src, static_cast<size_t>(n) * 4); return;
        case DType::F16:
            for (int64_t i = 0; i < n; ++i) put_f16(out + 2 * i, src[i]);
            return;
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h = to_bf16(src[i]);
                std::memcpy(out + 2 * i, &h, 2);
            }
            return;
        default: break;
    }
    check_finite(src, n);
    BlockFn fn = block_fn(t);
    const int64_t nb = n / info.block_elems;
    for (int64_t i = 0; i < nb; ++i) fn(src + i * info.block_elems, out + i * info.block_bytes);
}

void quantize_rows(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row, int n_threads) {
    if (!can_quantize(t)) throw Error("quantize: cannot produce type " + std::string(dtype_name(t)));
    if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const size_t rb = row_bytes(t, n_per_row);
    auto* out = static_cast<uint8_t*>(dst);
    auto work = [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) quantize_row(t, src + r * n_per_row, out + r * rb, n_per_row);
    };
    // Small jobs are not worth a thread; the split is by whole rows, so the bytes are identical.
    int64_t per_thread_min = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, n_per_row));
    int nt = static_cast<int>(std::min<int64_t>(n_threads, (n_rows + per_thread_min - 1) / per_thread_min));
    if (nt <= 1) {
        work(0, n_rows);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(nt);
    for (int k = 0; k < nt; ++k) {
        int64_t r0 = n_rows * k / nt, r1 = n_rows * (k + 1) / nt;
        pool.emplace_back([&, k, r0, r1] {
            try {
                work(r0, r1);
            } catch (...) {
                errors[k] = std::current_exception();
            }
        });
    }
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace minerva::cpu
