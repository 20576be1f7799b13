// kernels/cpu/fast_ops.cpp: the non-matmul ops, threaded over rows/tokens/heads and vectorised
// with AVX2 (they are memory-bound or tiny next to the matmuls; AVX-512 would not pay here).
// matmul lives in matmul.cpp.
#include "cpu/fast_ops.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/attention_impl.h"
#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/ref_ops.h"
#include "cpu/simd_math.h"
#include "cpu/vec_dot.h"

namespace minerva::cpu::fast {
namespace {

// Rows per scheduling unit so that one chunk is ~16K floats of work.
int64_t grain_for(int64_t row_len) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row_len)); }

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
        if (cache.type != DType::F16) return store_cache_row(cache, cell, s);
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

// Fused (flash-style) attention. Tokens are grouped into tiles of up to attn::kTileQ consecutive
// tokens with overlapping spans; one work item is a tile and one KV head (with the query heads
// that share it), so a K/V row is read once for all of them, and a causal prefill only visits
// the cells its tile can see. When there are fewer items than threads can keep busy (decode),
// each item's cells are split into parts whose partial softmaxes are merged at the end.
void attention(Context& c, const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span, const Tensor& out,
               const AttentionParams& p) {
    check_attention(q, kc, vc, span, out, p);
    const int64_t hd = p.head_dim, n_tokens = q.ne[2] * q.ne[3];
    const int group = p.n_head / p.n_head_kv;
    const int32_t* sp = span.data<int32_t>();

    std::vector<AttnTile>& tiles = c.attn_tiles;
    tiles.clear();
    for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t lo = sp[2 * t], hi = lo + sp[2 * t + 1];
        if (!tiles.empty()) {
            AttnTile& b = tiles.back();
            if (b.nt < attn::kTileQ && b.t0 + b.nt == t && lo < b.hi && hi > b.lo && lo >= b.lo) {
                ++b.nt;
                b.hi = std::max(b.hi, hi);
                continue;
            }
        }
        tiles.push_back({t, 1, lo, hi});
    }
    // Split the cells of each item when the items alone cannot keep the threads busy.
    const int64_t n_items = static_cast<int64_t>(tiles.size()) * p.n_head_kv;
    int64_t max_len = 0;
    for (const AttnTile& tl : tiles) max_len = std::max(max_len, tl.hi - tl.lo);
    int64_t n_split = 1;
    const int64_t want = 2 * static_cast<int64_t>(c.n_threads());
    if (n_items < want && c.n_threads() > 1)
        n_split = std::clamp<int64_t>((want + n_items - 1) / n_items, 1, std::max<int64_t>(1, max_len / attn::kMinSplit));

    const int64_t rows_max = static_cast<int64_t>(attn::kTileQ) * group;
    const size_t buf_floats = attn::buf_floats(hd, rows_max);
    const auto attend = features().avx512 ? attn::attend_avx512 : attn::attend<Avx2>;
    const size_t part_floats = static_cast<size_t>(rows_max * (hd + 2));
    const size_t per_thread = (buf_floats + part_floats) * 4;
    for (auto& s : c.per_thread) s.get(per_thread);  // grow before the parallel region
    float* parts = nullptr;
    if (n_split > 1) parts = static_cast<float*>(c.shared2.get(static_cast<size_t>(n_items * n_split) * part_floats * 4));

    c.pool.parallel_for(n_items * n_split, 1, [&](int64_t b, int64_t e, int ith) {
        float* buf = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(per_thread));
        for (int64_t w = b; w < e; ++w) {
            const int64_t item = w / n_split, part = w % n_split;
            const AttnTile& tl = tiles[static_cast<size_t>(item / p.n_head_kv)];
            const int64_t g = item % p.n_head_kv;
            const int64_t rows = tl.nt * group;
            const int64_t len = tl.hi - tl.lo, step = (len + n_split - 1) / n_split;
            const int64_t lo = std::min(tl.hi, tl.lo + part * step), hi = std::min(tl.hi, lo + step);
            float* pbuf = n_split > 1 ? parts + static_cast<size_t>(w) * part_floats : buf + buf_floats;
            attn::RowState* st = reinterpret_cast<attn::RowState*>(pbuf);
            float* acc = pbuf + 2 * rows_max;
            attend(q, kc, vc, sp, p, tl, g, lo, hi, buf, st, acc);
            if (n_split > 1) continue;
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t t = tl.t0 + r / group, h = g * group + r % group;
                float* o = out.data<float>() + (t * p.n_head + h) * hd;
                const float inv = st[r].l > 0 ? 1.f / st[r].l : 0.f;
                for (int64_t i = 0; i < hd; ++i) o[i] = acc[r * hd + i] * inv;
            }
        }
    });
    if (n_split == 1) return;
    // Merge the parts: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M), M = max_s m_s.
    c.pool.parallel_for(n_items, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t item = b; item < e; ++item) {
            const AttnTile& tl = tiles[static_cast<size_t>(item / p.n_head_kv)];
            const int64_t g = item % p.n_head_kv;
            for (int64_t r = 0; r < tl.nt * group; ++r) {
                const int64_t t = tl.t0 + r / group, h = g * group + r % group;
                float* o = out.data<float>() + (t * p.n_head + h) * hd;
                float M = -INFINITY;
                for (int64_t s = 0; s < n_split; ++s) {
                    const attn::RowState* st = reinterpret_cast<const attn::RowState*>(parts + static_cast<size_t>(item * n_split + s) * part_floats);
                    if (st[r].l > 0) M = std::max(M, st[r].m);
                }
                std::memset(o, 0, static_cast<size_t>(hd) * 4);
                float L = 0;
                for (int64_t s = 0; s < n_split; ++s) {
                    const float* pb = parts + static_cast<size_t>(item * n_split + s) * part_floats;
                    const attn::RowState* st = reinterpret_cast<const attn::RowState*>(pb);
                    if (!(st[r].l > 0)) continue;
                    const float wgt = std::exp(st[r].m - M);
                    L += st[r].l * wgt;
                    attn::axpy<Avx2>(wgt, pb + 2 * rows_max + r * hd, o, hd);
                }
                if (L > 0) attn::scale<Avx2>(o, 1.f / L, hd);
            }
        }
    });
}

namespace {

// out = act(gate) * up, elementwise: 8 lanes through vec_act, the tail through act.
template <class VecAct, class Act>
void gated(Context& c, const char* op, const Tensor& gate, const Tensor& up, const Tensor& out, VecAct vec_act, Act act) {
    check_same_f32(op, gate, up);
    check_same_f32(op, gate, out);
    const int64_t n = gate.n_elements();
    const float* g = gate.data<float>();
    const float* u = up.data<float>();
    float* o = out.data<float>();
    c.pool.parallel_for(n, 1 << 14, [&](int64_t b, int64_t e, int) {
        int64_t i = b;
        for (; i + 8 <= e; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(vec_act(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
        for (; i < e; ++i) o[i] = act(g[i]) * u[i];
    });
}

}  // namespace

void swiglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out) {
    // silu(z) = z / (1 + e^-z)
    gated(
        c, "swiglu", gate, up, out,
        [](__m256 z) { return _mm256_div_ps(z, _mm256_add_ps(_mm256_set1_ps(1.f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), z)))); },
        [](float z) { return z / (1.f + std::exp(-z)); });
}

void geglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out) {
    // tanh(y) = 1 - 2 / (exp(2y) + 1), so gelu(z) = z - z / (exp(2y) + 1), y = sqrt(2/pi) (z + 0.044715 z^3)
    gated(
        c, "geglu", gate, up, out,
        [](__m256 z) {
            const __m256 z3 = _mm256_mul_ps(_mm256_mul_ps(z, z), z);
            __m256 y2 = _mm256_mul_ps(_mm256_set1_ps(2.f * 0.7978845608f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), z3, z));
            y2 = _mm256_min_ps(_mm256_max_ps(y2, _mm256_set1_ps(-40.f)), _mm256_set1_ps(40.f));
            return _mm256_sub_ps(z, _mm256_div_ps(z, _mm256_add_ps(exp8(y2), _mm256_set1_ps(1.f))));
        },
        [](float z) { return gelu_ref(z); });
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
    // One token (decode): every chosen expert's rows in one pass of the threads.
    if (n == 1) {
        int64_t cols[64];
        if (k <= 64) {
            for (int64_t j = 0; j < k; ++j) cols[j] = per_slot ? j : 0;
            if (matvec_experts(c, w, x.data<float>(), cols, id, k, out.data<float>())) return;
        }
    }
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
            for (int64_t j = 0; j < k; ++j) attn::axpy<Avx2>(weights.data<float>()[t * k + j], y.data<float>() + (t * k + j) * d, o, d);
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
