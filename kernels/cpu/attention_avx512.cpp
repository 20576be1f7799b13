// kernels/cpu/attention_avx512.cpp: the fused attention's work item (attention_impl.h) for
// AVX-512: a register-blocked kernel for head sizes that are multiples of 16 up to 256
// (attend_blocked below), the generic one with 16-float vectors for the rest. Compiled with
// AVX-512 flags; called only where CPUID reports AVX-512.
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

// ---- The register-blocked work item (head_dim a multiple of 16, at most 256) ----
//
// Per block of up to kBlock cells: the block's K rows are converted to f32 once into an L1
// buffer; each query row's scores for 16 cells come from 16 accumulators (head_dim / 16 FMAs
// each, the query vector loaded once per 16 dims for all 16 cells) folded into one vector by a
// 4-stage transpose-add tree, so no score costs a horizontal sum of its own. The online softmax
// runs on those vectors (masked lanes are exactly 0 after the exp). Then the V rows replace the
// K rows in the buffer and P V accumulates into registers: RB query rows x head_dim / 16 vectors
// stay in registers across the block, each probability is one broadcast, each V vector one
// memory operand.

// Lane L of the result is the sum of a[S(L)] with S(L) = 4 (L % 4) + L / 4, so callers put
// cell c's accumulator in slot 4 (c % 4) + c / 4 (the map is its own inverse).
inline __m512 fold16(const __m512 (&a)[16]) {
    __m512 b[8], c[4];
    for (int i = 0; i < 8; ++i)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int j = 0; j < 4; ++j)
        c[j] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], 0x88), _mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], 0xDD));
    const __m512 d0 = _mm512_add_ps(_mm512_unpacklo_ps(c[0], c[1]), _mm512_unpackhi_ps(c[0], c[1]));
    const __m512 d1 = _mm512_add_ps(_mm512_unpacklo_ps(c[2], c[3]), _mm512_unpackhi_ps(c[2], c[3]));
    return _mm512_add_ps(_mm512_shuffle_ps(d0, d1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(d0, d1, _MM_SHUFFLE(3, 2, 3, 2)));
}

// Cells [c0, c0 + n) of the cache's slice at element off (NV * 16 floats) into dst[n][NV * 16].
template <int NV>
inline void load_block(const Tensor& cache, int64_t c0, int64_t n, int64_t off, float* dst) {
    constexpr int64_t hd = NV * 16;
    if (cache.type == DType::F16) {
        const uint16_t* src = cache.data<uint16_t>() + c0 * cache.ne[0] + off;
        for (int64_t c = 0; c < n; ++c, src += cache.ne[0], dst += hd)
            for (int v = 0; v < NV; ++v)
                _mm512_storeu_ps(dst + 16 * v, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 16 * v))));
        return;
    }
    if (cache.type == DType::F32) {
        const float* src = cache.data<float>() + c0 * cache.ne[0] + off;
        for (int64_t c = 0; c < n; ++c, src += cache.ne[0], dst += hd)
            for (int v = 0; v < NV; ++v) _mm512_storeu_ps(dst + 16 * v, _mm512_loadu_ps(src + 16 * v));
        return;
    }
    if ((cache.type == DType::Q8_0 || cache.type == DType::Q4_0) && NV % 2 == 0 && off % 32 == 0) {  // whole blocks of 32
        const size_t rs = cache.row_size(), bo = static_cast<size_t>(off / 32);
        const uint8_t* row = static_cast<const uint8_t*>(cache.host) + static_cast<size_t>(c0) * rs;
        for (int64_t c = 0; c < n; ++c, row += rs, dst += hd) {
            for (int v = 0; v < NV / 2; ++v) {
                __m512 lo, hi;
                if (cache.type == DType::Q8_0) {
                    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + bo + v;
                    const __m512 d = _mm512_set1_ps(fp16_to_f32_fast(b->d));
                    const __m128i* q = reinterpret_cast<const __m128i*>(b->qs);
                    lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q))), d);
                    hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q + 1))), d);
                } else {
                    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(row) + bo + v;
                    const __m512 d = _mm512_set1_ps(fp16_to_f32_fast(b->d));
                    const __m512i u = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)));
                    const __m512i eight = _mm512_set1_epi32(8), m4 = _mm512_set1_epi32(15);
                    lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(u, m4), eight)), d);
                    hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(u, 4), eight)), d);
                }
                _mm512_storeu_ps(dst + 32 * v, lo);
                _mm512_storeu_ps(dst + 32 * v + 16, hi);
            }
        }
        return;
    }
    for (int64_t c = 0; c < n; ++c) load_row<Avx512>(cache, c0 + c, off, hd, dst + c * hd);
}

// Softcap on 16 lanes: cap * tanh(s / cap), tanh(x) = 1 - 2 / (e^{2x} + 1).
inline __m512 softcap16(__m512 s, float cap) {
    const __m512 x = _mm512_mul_ps(s, _mm512_set1_ps(2.f / cap));
    const __m512 e = Avx512::exp16(x);
    const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.f), _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(e, _mm512_set1_ps(1.f))));
    return _mm512_mul_ps(t, _mm512_set1_ps(cap));
}

// Lanes of the 16 cells from cell cb that lie in [lo, hi).
inline __mmask16 span_mask(int64_t cb, int64_t lo, int64_t hi) {
    const int64_t a = std::clamp<int64_t>(lo - cb, 0, 16), b = std::clamp<int64_t>(hi - cb, 0, 16);
    if (b <= a) return 0;
    const uint32_t upto = b == 16 ? 0xffffu : (1u << b) - 1, below = (1u << a) - 1;
    return static_cast<__mmask16>(upto & ~below);
}

template <int NV>
void attend_blocked(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                    const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    constexpr int64_t hd = NV * 16;
    constexpr int RB = NV >= 16 ? 1 : 16 / NV;  // query rows whose P V sums stay in registers
    constexpr int64_t B = kBlock;
    static_assert(B % 16 == 0);
    const int group = p.n_head / p.n_head_kv;
    const int64_t rows = tile.nt * group;
    float* kv = buf;               // [B][hd]: the block's K rows, then its V rows
    float* pr = buf + B * hd;      // [rows][B]: scores, then probabilities
    float* corr = pr + rows * B;   // [rows]: the factor the row's sums are rescaled by in this block
    for (int64_t r = 0; r < rows; ++r) st[r] = {-INFINITY, 0.f};
    std::memset(acc, 0, static_cast<size_t>(rows * hd) * 4);
    const __m512 vscale = _mm512_set1_ps(p.scale);
    for (int64_t b0 = lo; b0 < hi; b0 += B) {
        const int64_t nb = std::min<int64_t>(B, hi - b0);
        const int64_t nsub = (nb + 15) / 16;
        load_block<NV>(kc, b0, nb, g * hd, kv);
        // scores and the online softmax, one query row at a time
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t t = tile.t0 + r / group;
            const float* qr = q.data<float>() + (t * p.n_head + g * group + r % group) * hd;
            const int64_t slo = span[2 * t], shi = slo + span[2 * t + 1];
            __m512 s[B / 16];
            __mmask16 live[B / 16];
            __m512 vmax = _mm512_set1_ps(-INFINITY);
            for (int64_t j = 0; j < nsub; ++j) {
                live[j] = span_mask(b0 + 16 * j, slo, std::min(shi, b0 + nb));
                if (!live[j]) {
                    s[j] = _mm512_set1_ps(-INFINITY);
                    continue;
                }
                __m512 a[16];
                for (int i = 0; i < 16; ++i) a[i] = _mm512_setzero_ps();
                const float* kb = kv + 16 * j * hd;
                for (int v = 0; v < NV; ++v) {
                    const __m512 qv = _mm512_loadu_ps(qr + 16 * v);
                    for (int c = 0; c < 16; ++c)
                        a[4 * (c % 4) + c / 4] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kb + c * hd + 16 * v), a[4 * (c % 4) + c / 4]);
                }
                __m512 sc = _mm512_mul_ps(fold16(a), vscale);
                if (p.softcap > 0) sc = softcap16(sc, p.softcap);
                s[j] = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), live[j], sc);
                vmax = _mm512_max_ps(vmax, s[j]);
            }
            const float mb = _mm512_reduce_max_ps(vmax);
            float* prow = pr + r * B;
            if (mb == -INFINITY) {  // nothing of this block is visible to the row
                for (int64_t j = 0; j < nsub; ++j) _mm512_storeu_ps(prow + 16 * j, _mm512_setzero_ps());
                corr[r] = 1.f;
                continue;
            }
            const float m_new = std::max(st[r].m, mb);
            corr[r] = st[r].m == -INFINITY ? 0.f : std::exp(st[r].m - m_new);
            const __m512 vm = _mm512_set1_ps(m_new);
            __m512 sum = _mm512_setzero_ps();
            for (int64_t j = 0; j < nsub; ++j) {
                const __m512 e = _mm512_maskz_mov_ps(live[j], Avx512::exp16(_mm512_sub_ps(s[j], vm)));
                _mm512_storeu_ps(prow + 16 * j, e);
                sum = _mm512_add_ps(sum, e);
            }
            st[r].m = m_new;
            st[r].l = st[r].l * corr[r] + _mm512_reduce_add_ps(sum);
        }
        // acc = acc * corr + P V, RB rows at a time in registers
        load_block<NV>(vc, b0, nb, g * hd, kv);
        for (int64_t r0 = 0; r0 < rows; r0 += RB) {
            const int nr = static_cast<int>(std::min<int64_t>(RB, rows - r0));
            __m512 o[RB][NV];
            for (int i = 0; i < RB; ++i) {
                if (i >= nr) break;
                const __m512 cr = _mm512_set1_ps(corr[r0 + i]);
                for (int v = 0; v < NV; ++v) o[i][v] = _mm512_mul_ps(_mm512_loadu_ps(acc + (r0 + i) * hd + 16 * v), cr);
            }
            if (nr == RB) {
                for (int64_t c = 0; c < nb; ++c) {
                    const float* vr = kv + c * hd;
                    for (int i = 0; i < RB; ++i) {
                        const __m512 pb = _mm512_set1_ps(pr[(r0 + i) * B + c]);
                        for (int v = 0; v < NV; ++v) o[i][v] = _mm512_fmadd_ps(pb, _mm512_loadu_ps(vr + 16 * v), o[i][v]);
                    }
                }
            } else {
                for (int64_t c = 0; c < nb; ++c) {
                    const float* vr = kv + c * hd;
                    for (int i = 0; i < RB; ++i) {
                        if (i >= nr) break;
                        const __m512 pb = _mm512_set1_ps(pr[(r0 + i) * B + c]);
                        for (int v = 0; v < NV; ++v) o[i][v] = _mm512_fmadd_ps(pb, _mm512_loadu_ps(vr + 16 * v), o[i][v]);
                    }
                }
            }
            for (int i = 0; i < RB; ++i) {
                if (i >= nr) break;
                for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + (r0 + i) * hd + 16 * v, o[i][v]);
            }
        }
    }
}

}  // namespace

void attend_part_avx512(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                        const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    switch (p.head_dim) {
        case 32: return attend_blocked<2>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 64: return attend_blocked<4>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 80: return attend_blocked<5>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 96: return attend_blocked<6>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 112: return attend_blocked<7>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 128: return attend_blocked<8>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 256: return attend_blocked<16>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        default: return attend_part<Avx512>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
    }
}

}  // namespace minerva::cpu::attn
