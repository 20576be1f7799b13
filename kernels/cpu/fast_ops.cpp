// kernels/cpu/fast_ops.cpp: the non-matmul ops, threaded over rows/tokens/heads and vectorised
// with AVX2 (they are memory-bound or tiny next to the matmuls; AVX-512 would not pay here).
// matmul lives in matmul.cpp.
#include "cpu/fast_ops.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/ref_ops.h"
#include "cpu/simd_math.h"
#include "cpu/vec_dot.h"

namespace minerva::cpu::fast {
namespace {

// Rows per scheduling unit so that one chunk is ~16K floats of work.
int64_t grain_for(int64_t row_len) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row_len)); }

inline void load_row_f32(const Tensor& cache, int64_t cell, int64_t off, int64_t n, float* dst) {
    const int64_t idx = cell * cache.ne[0] + off;
    if (cache.type == DType::F32) {
        std::memcpy(dst, cache.data<float>() + idx, static_cast<size_t>(n) * 4);
        return;
    }
    const uint16_t* s = cache.data<uint16_t>() + idx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    for (; i < n; ++i) dst[i] = fp16_to_f32_fast(s[i]);
}

inline void axpy(float a, const float* x, float* y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

void get_rows(Context& c, const Tensor& table, const Tensor& ids, const Tensor& out) {
    check_get_rows(table, ids, out);
    const int64_t dim = table.ne[0];
    const size_t rs = table.row_size();
    const int32_t* id = ids.data<int32_t>();
    c.pool.parallel_for(ids.n_elements(), grain_for(dim), [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i)
            dequantize_row(table.type, static_cast<const char*>(table.host) + rs * static_cast<size_t>(id[i]), out.data<float>() + i * dim, dim);
    });
}

void rms_norm(Context& c, const Tensor& x, const Tensor& w, const Tensor& out, float eps) {
    check_rms_norm(x, w, out);
    const int64_t n = x.ne[0];
    const float* g = w.data<float>();
    c.pool.parallel_for(x.n_rows(), grain_for(n), [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) {
            const float* xr = x.data<float>() + r * n;
            float* o = out.data<float>() + r * n;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            int64_t i = 0;
            for (; i + 16 <= n; i += 16) {
                const __m256 v0 = _mm256_loadu_ps(xr + i), v1 = _mm256_loadu_ps(xr + i + 8);
                a0 = _mm256_fmadd_ps(v0, v0, a0);
                a1 = _mm256_fmadd_ps(v1, v1, a1);
            }
            double ss = hsum8(_mm256_add_ps(a0, a1));
            for (; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
            const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
            const __m256 vs = _mm256_set1_ps(scale);
            for (i = 0; i + 8 <= n; i += 8)
                _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), vs), _mm256_loadu_ps(g + i)));
            for (; i < n; ++i) o[i] = xr[i] * scale * g[i];
        }
    });
}

void rope(Context& c, const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* ff) {
    check_rope(x, pos, p, ff);
    const int64_t hd = x.ne[0], n_heads = x.ne[1], n_tokens = x.ne[2] * x.ne[3];
    const int half = p.n_rot / 2;
    c.pool.parallel_for(n_tokens, 1, [&](int64_t b, int64_t e, int ith) {
        float* cs = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(static_cast<size_t>(half) * 8));
        float* sn = cs + half;
        for (int64_t t = b; t < e; ++t) {
            const double ps = static_cast<double>(pos.data<int32_t>()[t]) * p.freq_scale;
            for (int i = 0; i < half; ++i) {
                double theta = ps * std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot);
                if (ff) theta /= ff->data<float>()[i];
                cs[i] = static_cast<float>(std::cos(theta) * p.attn_factor);
                sn[i] = static_cast<float>(std::sin(theta) * p.attn_factor);
            }
            for (int64_t h = 0; h < n_heads; ++h) {
                float* v = x.data<float>() + (t * n_heads + h) * hd;
                if (p.neox) {
                    float* v1 = v + half;
                    for (int i = 0; i < half; ++i) {
                        const float a = v[i], bb = v1[i];
                        v[i] = a * cs[i] - bb * sn[i];
                        v1[i] = a * sn[i] + bb * cs[i];
                    }
                    continue;
                }
                for (int i = 0; i < half; ++i) {
                    const float a = v[2 * i], bb = v[2 * i + 1];
                    v[2 * i] = a * cs[i] - bb * sn[i];
                    v[2 * i + 1] = a * sn[i] + bb * cs[i];
                }
            }
        }
    });
}

void kv_store(Context& c, const Tensor& k, const Tensor& v, const Tensor& kc, const Tensor& vc, const Tensor& rows) {
    check_kv_store(k, v, kc, vc, rows);
    auto store = [](const Tensor& src, const Tensor& cache, int64_t t, int64_t cell) {
        const int64_t d = cache.ne[0];
        const float* s = src.data<float>() + t * d;
        if (cache.type == DType::F32) {
            std::memcpy(cache.data<float>() + cell * d, s, static_cast<size_t>(d) * 4);
            return;
        }
        uint16_t* o = cache.data<uint16_t>() + cell * d;
        int64_t i = 0;
        for (; i + 8 <= d; i += 8)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
        for (; i < d; ++i) o[i] = f32_to_fp16_fast(s[i]);
    };
    c.pool.parallel_for(rows.n_elements(), grain_for(kc.ne[0]), [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) {
            store(k, kc, t, rows.data<int32_t>()[t]);
            store(v, vc, t, rows.data<int32_t>()[t]);
        }
    });
}

// One work item = one token and one KV head with the query heads that share it (GQA): each
// cached K/V row is converted to f32 once and used by every query head of the group.
void attention(Context& c, const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span, const Tensor& out,
               const AttentionParams& p) {
    check_attention(q, kc, vc, span, out, p);
    const int64_t hd = p.head_dim, n_tokens = q.ne[2] * q.ne[3];
    const int group = p.n_head / p.n_head_kv;
    int64_t max_len = 0;
    for (int64_t t = 0; t < n_tokens; ++t) max_len = std::max<int64_t>(max_len, span.data<int32_t>()[2 * t + 1]);
    const size_t scratch = (static_cast<size_t>(group) * static_cast<size_t>(max_len + 8) + static_cast<size_t>(hd) + 8) * 4;
    for (auto& s : c.per_thread) s.get(scratch);  // grow before the parallel region
    c.pool.parallel_for(n_tokens * p.n_head_kv, 1, [&](int64_t b, int64_t e, int ith) {
        float* buf = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(scratch));
        float* row = buf;            // [hd] one K or V row in f32
        float* scores = buf + hd + 8;  // [group][max_len + 8]
        const int64_t sstride = max_len + 8;
        for (int64_t item = b; item < e; ++item) {
            const int64_t t = item / p.n_head_kv, g = item % p.n_head_kv;
            const int64_t start = span.data<int32_t>()[2 * t], len = span.data<int32_t>()[2 * t + 1];
            const float* qg = q.data<float>() + (t * p.n_head + g * group) * hd;
            float* og = out.data<float>() + (t * p.n_head + g * group) * hd;
            if (len == 0) {
                std::memset(og, 0, static_cast<size_t>(group * hd) * 4);
                continue;
            }
            for (int64_t cc = 0; cc < len; ++cc) {
                load_row_f32(kc, start + cc, g * hd, hd, row);
                for (int i = 0; i < group; ++i) scores[i * sstride + cc] = dot_f32_avx2(qg + i * hd, row, hd) * p.scale;
            }
            if (p.softcap > 0)
                for (int i = 0; i < group; ++i)
                    for (int64_t cc = 0; cc < len; ++cc) {
                        float& sc = scores[i * sstride + cc];
                        sc = p.softcap * std::tanh(sc / p.softcap);
                    }
            for (int i = 0; i < group; ++i) {
                float* s = scores + i * sstride;
                __m256 vm = _mm256_set1_ps(-INFINITY);
                int64_t j = 0;
                for (; j + 8 <= len; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + j));
                float mx = hmax8(vm);
                for (; j < len; ++j) mx = std::max(mx, s[j]);
                const __m256 vmx = _mm256_set1_ps(mx);
                __m256 vsum = _mm256_setzero_ps();
                for (j = 0; j + 8 <= len; j += 8) {
                    const __m256 ev = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vmx));
                    _mm256_storeu_ps(s + j, ev);
                    vsum = _mm256_add_ps(vsum, ev);
                }
                float sum = hsum8(vsum);
                for (; j < len; ++j) {
                    s[j] = std::exp(s[j] - mx);
                    sum += s[j];
                }
                const float inv = 1.f / sum;
                for (j = 0; j < len; ++j) s[j] *= inv;
                std::memset(og + i * hd, 0, static_cast<size_t>(hd) * 4);
            }
            for (int64_t cc = 0; cc < len; ++cc) {
                load_row_f32(vc, start + cc, g * hd, hd, row);
                for (int i = 0; i < group; ++i) axpy(scores[i * sstride + cc], row, og + i * hd, hd);
            }
        }
    });
}

void swiglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out) {
    check_same_f32("swiglu", gate, up);
    check_same_f32("swiglu", gate, out);
    const int64_t n = gate.n_elements();
    const float* g = gate.data<float>();
    const float* u = up.data<float>();
    float* o = out.data<float>();
    c.pool.parallel_for(n, 1 << 14, [&](int64_t b, int64_t e, int) {
        int64_t i = b;
        const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
        for (; i + 8 <= e; i += 8) {
            const __m256 vg = _mm256_loadu_ps(g + i);
            const __m256 den = _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, vg)));
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(vg, den), _mm256_loadu_ps(u + i)));
        }
        for (; i < e; ++i) o[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
    });
}

void geglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out) {
    check_same_f32("geglu", gate, up);
    check_same_f32("geglu", gate, out);
    const int64_t n = gate.n_elements();
    const float* g = gate.data<float>();
    const float* u = up.data<float>();
    float* o = out.data<float>();
    // tanh(y) = 1 - 2 / (exp(2y) + 1), so gelu(z) = z - z / (exp(2y) + 1), y = sqrt(2/pi) (z + 0.044715 z^3)
    c.pool.parallel_for(n, 1 << 14, [&](int64_t b, int64_t e, int) {
        int64_t i = b;
        const __m256 one = _mm256_set1_ps(1.f), k0 = _mm256_set1_ps(2.f * 0.7978845608f), k1 = _mm256_set1_ps(0.044715f);
        const __m256 lo = _mm256_set1_ps(-40.f), hi = _mm256_set1_ps(40.f);
        for (; i + 8 <= e; i += 8) {
            const __m256 z = _mm256_loadu_ps(g + i);
            const __m256 z3 = _mm256_mul_ps(_mm256_mul_ps(z, z), z);
            __m256 y2 = _mm256_mul_ps(k0, _mm256_fmadd_ps(k1, z3, z));
            y2 = _mm256_min_ps(_mm256_max_ps(y2, lo), hi);
            const __m256 gl = _mm256_sub_ps(z, _mm256_div_ps(z, _mm256_add_ps(exp8(y2), one)));
            _mm256_storeu_ps(o + i, _mm256_mul_ps(gl, _mm256_loadu_ps(u + i)));
        }
        for (; i < e; ++i) o[i] = gelu_ref(g[i]) * u[i];
    });
}

void add_bias(Context& c, const Tensor& x, const Tensor& bias) {
    check_add_bias(x, bias);
    const int64_t d = x.ne[0];
    const float* bv = bias.data<float>();
    c.pool.parallel_for(x.n_rows(), grain_for(d), [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) {
            float* xr = x.data<float>() + r * d;
            int64_t i = 0;
            for (; i + 8 <= d; i += 8) _mm256_storeu_ps(xr + i, _mm256_add_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(bv + i)));
            for (; i < d; ++i) xr[i] += bv[i];
        }
    });
}

void scale(Context& c, const Tensor& x, float s) {
    ref::scale(x, s);  // one pass over the embeddings per forward: not worth threading
}

void softcap(Context& c, const Tensor& x, float cap) {
    check_softcap(x, cap);
    float* v = x.data<float>();
    c.pool.parallel_for(x.n_elements(), 1 << 14, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) v[i] = cap * std::tanh(v[i] / cap);
    });
}

void moe_route(Context& c, const Tensor& logits, const Tensor& ids, const Tensor& weights) {
    ref::moe_route(logits, ids, weights);  // E values per token: negligible next to the experts
}

// Groups the (token, slot) pairs by expert so each chosen expert's weights are read once per
// call: its columns are gathered into one [n_in, count] block, multiplied by the regular matmul
// (the GEMM for several columns, the decode kernels for one) and scattered back.
void matmul_id(Context& c, const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) {
    check_matmul_id(w, x, ids, out);
    const int64_t k = ids.ne[0], n = ids.n_rows(), n_in = w.ne[0], m = w.ne[1], n_expert = w.ne[2];
    const bool per_slot = x.n_rows() == k * n && x.ne[1] == k;
    const int32_t* id = ids.data<int32_t>();
    std::vector<int32_t>& pairs = c.moe_pairs;
    pairs.resize(static_cast<size_t>(k * n));
    for (int64_t i = 0; i < k * n; ++i) pairs[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    std::stable_sort(pairs.begin(), pairs.end(), [&](int32_t a, int32_t b) { return id[a] < id[b]; });
    float* xs = static_cast<float*>(c.moe_x.get(static_cast<size_t>(n_in * k * n) * 4));
    float* os = static_cast<float*>(c.moe_out.get(static_cast<size_t>(m * k * n) * 4));
    for (size_t first = 0; first < pairs.size();) {
        const int32_t e = id[pairs[first]];
        size_t last = first;
        while (last < pairs.size() && id[pairs[last]] == e) ++last;
        const int64_t cnt = static_cast<int64_t>(last - first);
        for (int64_t j = 0; j < cnt; ++j) {
            const int64_t pair = pairs[first + static_cast<size_t>(j)];
            const int64_t col = per_slot ? pair : pair / k;
            std::memcpy(xs + j * n_in, x.data<float>() + col * n_in, static_cast<size_t>(n_in) * 4);
        }
        Tensor xv = x, ov = out;
        xv.ne[1] = cnt, xv.ne[2] = xv.ne[3] = 1, xv.host = xs;
        ov.ne[1] = cnt, ov.ne[2] = ov.ne[3] = 1, ov.host = os;
        matmul(c, expert_view(w, e), xv, ov);
        for (int64_t j = 0; j < cnt; ++j)
            std::memcpy(out.data<float>() + pairs[first + static_cast<size_t>(j)] * m, os + j * m, static_cast<size_t>(m) * 4);
        first = last;
    }
    (void)n_expert;
}

void moe_sum(Context& c, const Tensor& y, const Tensor& weights, const Tensor& out) {
    check_moe_sum(y, weights, out);
    const int64_t d = y.ne[0], k = weights.ne[0];
    c.pool.parallel_for(weights.n_rows(), 1, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) {
            float* o = out.data<float>() + t * d;
            std::memset(o, 0, static_cast<size_t>(d) * 4);
            for (int64_t j = 0; j < k; ++j) axpy(weights.data<float>()[t * k + j], y.data<float>() + (t * k + j) * d, o, d);
        }
    });
}

void add(Context& c, const Tensor& x, const Tensor& y) {
    check_same_f32("add", x, y);
    float* a = x.data<float>();
    const float* b = y.data<float>();
    c.pool.parallel_for(x.n_elements(), 1 << 15, [&](int64_t s, int64_t e, int) {
        int64_t i = s;
        for (; i + 8 <= e; i += 8) _mm256_storeu_ps(a + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
        for (; i < e; ++i) a[i] += b[i];
    });
}

void gather_rows(Context& c, const Tensor& x, const Tensor& rows, const Tensor& out) {
    check_gather_rows(x, rows, out);
    // memmove: out may alias x (gathering rows in place towards the front)
    const int64_t d = x.ne[0];
    for (int64_t i = 0; i < rows.n_elements(); ++i)
        std::memmove(out.data<float>() + i * d, x.data<float>() + rows.data<int32_t>()[i] * d, static_cast<size_t>(d) * 4);
}

}  // namespace minerva::cpu::fast
