// kernels/cpu/attention_impl.h (internal): the fused attention's work item, written once over a
// vector type V and compiled per instruction set: fast_ops.cpp instantiates it with simd_math.h's
// Avx2, attention_avx512.cpp with simd_avx512.h's Avx512. V supplies W (floats per vector), the
// vector type F, its lane mask M and the primitives (load/store, loadh for halves, fmadd, max,
// span masks, select, the fold of W accumulators, q8_0/q4_0 block decode; see Avx2). Everything
// here is a template over V, so no function body is shared by TUs built for different
// instruction sets.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend.h"
#include "cpu/dequant.h"
#include "cpu/fast_ops.h"
#include "cpu/fp16.h"
#include "cpu/simd_exp.h"

namespace minerva::cpu::attn {

constexpr int kTileQ = 8;       // query tokens per tile (prefill): K/V rows are read once for all of them
constexpr int kBlock = 64;      // cache cells per online-softmax step (scores stay in L1)
constexpr int64_t kMinSplit = 256;  // fewest cells one part of a split decode takes

// Scratch floats one work item needs (either implementation): a block of K or V rows as f32,
// the rows' scores of a block and their rescale factors.
constexpr size_t buf_floats(int64_t head_dim, int64_t rows) {
    return static_cast<size_t>(kBlock * head_dim + rows * (kBlock + 1) + 16);
}

// The running state of one query row: max score and sum of exp (the output sums are beside it).
struct RowState {
    float m, l;
};

// ---- Loops over arrays: the generic work item and the merge of split parts ----

template <class V>
inline float dot(const float* a, const float* b, int64_t n) {
    typename V::F s0 = V::zero(), s1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * V::W <= n; i += 2 * V::W) {
        s0 = V::fmadd(V::load(a + i), V::load(b + i), s0);
        s1 = V::fmadd(V::load(a + i + V::W), V::load(b + i + V::W), s1);
    }
    for (; i + V::W <= n; i += V::W) s0 = V::fmadd(V::load(a + i), V::load(b + i), s0);
    float s = V::sum(V::add(s0, s1));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

template <class V>
inline void axpy(float a, const float* x, float* y, int64_t n) {
    const typename V::F va = V::set1(a);
    int64_t i = 0;
    for (; i + V::W <= n; i += V::W) V::store(y + i, V::fmadd(va, V::load(x + i), V::load(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

template <class V>
inline void scale(float* y, float a, int64_t n) {
    const typename V::F va = V::set1(a);
    int64_t i = 0;
    for (; i + V::W <= n; i += V::W) V::store(y + i, V::mul(va, V::load(y + i)));
    for (; i < n; ++i) y[i] *= a;
}

// s[i] = exp(s[i] - m), exactly 0 where s[i] is -inf, for n a multiple of W; returns the sum.
template <class V>
inline float exp_sum(float* s, int64_t n, float m) {
    const typename V::F vm = V::set1(m);
    typename V::F sum = V::zero();
    for (int64_t i = 0; i < n; i += V::W) {
        const typename V::F x = V::load(s + i);
        const typename V::F e = V::zero_unless(V::live(x), exp_poly<V>(V::sub(x, vm)));
        V::store(s + i, e);
        sum = V::add(sum, e);
    }
    return V::sum(sum);
}

// Elements off .. off+n-1 of one cache row as f32. Quantized rows (Q8_0, Q4_0) decode the
// blocks that hold them (a head's slice is whole blocks whenever head_dim is a multiple of 32).
template <class V>
inline void load_row(const Tensor& cache, int64_t cell, int64_t off, int64_t n, float* dst) {
    const int64_t idx = cell * cache.ne[0] + off;
    if (cache.type == DType::F32) {
        std::memcpy(dst, cache.data<float>() + idx, static_cast<size_t>(n) * 4);
        return;
    }
    if (cache.type == DType::F16) {
        const uint16_t* s = cache.data<uint16_t>() + idx;
        const int64_t nv = n / V::W * V::W;
        for (int64_t i = 0; i < nv; i += V::W) V::store(dst + i, V::loadh(s + i));
        for (int64_t i = nv; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
        return;
    }
    const DTypeInfo& ti = dtype_info(cache.type);
    const char* row = static_cast<const char*>(cache.host) + static_cast<size_t>(cell) * cache.row_size();
    const int64_t b0 = off / ti.block_elems, b1 = (off + n + ti.block_elems - 1) / ti.block_elems;
    if (off % ti.block_elems == 0 && n % ti.block_elems == 0) {
        dequantize_row(cache.type, row + static_cast<size_t>(b0) * ti.block_bytes, dst, n);
        return;
    }
    float tmp[256];
    for (int64_t bb = b0; bb < b1; ++bb) {  // unaligned slices (tiny heads): block by block
        dequantize_row(cache.type, row + static_cast<size_t>(bb) * ti.block_bytes, tmp, ti.block_elems);
        for (int64_t j = 0; j < ti.block_elems; ++j) {
            const int64_t e = bb * ti.block_elems + j;
            if (e >= off && e < off + n) dst[e - off] = tmp[j];
        }
    }
}

// ---- The generic work item (any head size) ----
//
// The query rows (tile tokens x group heads) of KV head g over cells [lo, hi) of the tile's
// union span, as an online softmax over blocks of kBlock cells: scores live in a block-sized
// buffer, never a context-sized one. Each K/V row is converted to f32 once and used by every
// query row of the tile (GQA heads and tokens alike). Writes (m, l) per row and acc [rows][hd]
// (unnormalised). buf holds buf_floats(hd, rows) floats.
template <class V>
void attend_part(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                 const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    static_assert(kBlock % V::W == 0);
    const int64_t hd = p.head_dim;
    const int group = p.n_head / p.n_head_kv;
    const int64_t rows = tile.nt * group;
    float* krow = buf;                                   // [hd]
    float* sc = buf + hd + 16;                           // [rows][kBlock]
    for (int64_t r = 0; r < rows; ++r) st[r] = {-INFINITY, 0.f};
    std::memset(acc, 0, static_cast<size_t>(rows * hd) * 4);
    for (int64_t b0 = lo; b0 < hi; b0 += kBlock) {
        const int64_t nb = std::min<int64_t>(kBlock, hi - b0);
        const int64_t nbv = (nb + V::W - 1) / V::W * V::W;  // whole vectors: the tail is -inf
        // scores = q.k * scale (softcapped), -inf outside a token's span
        for (int64_t cc = 0; cc < nb; ++cc) {
            const int64_t cell = b0 + cc;
            load_row<V>(kc, cell, g * hd, hd, krow);
            for (int64_t i = 0; i < tile.nt; ++i) {
                const int64_t t = tile.t0 + i;
                const bool in = cell >= span[2 * t] && cell < span[2 * t] + span[2 * t + 1];
                const float* qi = q.data<float>() + (t * p.n_head + g * group) * hd;
                for (int h = 0; h < group; ++h) {
                    float s = -INFINITY;
                    if (in) {
                        s = dot<V>(qi + h * hd, krow, hd) * p.scale;
                        if (p.softcap > 0) s = p.softcap * std::tanh(s / p.softcap);
                    }
                    sc[(i * group + h) * kBlock + cc] = s;
                }
            }
        }
        // online softmax: rescale what was accumulated when the max grows, p = exp(s - m).
        // Whole vectors only, so a token's result does not depend on which other tokens share
        // its tile (they move where the block's tail starts).
        for (int64_t r = 0; r < rows; ++r) {
            float* s = sc + r * kBlock;
            float mb = -INFINITY;
            for (int64_t cc = 0; cc < nb; ++cc) mb = std::max(mb, s[cc]);
            if (mb == -INFINITY) {
                for (int64_t cc = 0; cc < nb; ++cc) s[cc] = 0.f;
                continue;
            }
            const float m_new = std::max(st[r].m, mb);
            if (m_new > st[r].m && st[r].l > 0) {
                const float corr = std::exp(st[r].m - m_new);
                st[r].l *= corr;
                scale<V>(acc + r * hd, corr, hd);
            }
            st[r].m = m_new;
            for (int64_t cc = nb; cc < nbv; ++cc) s[cc] = -INFINITY;
            st[r].l += exp_sum<V>(s, nbv, m_new);
        }
        // acc += P V
        for (int64_t cc = 0; cc < nb; ++cc) {
            load_row<V>(vc, b0 + cc, g * hd, hd, krow);
            for (int64_t r = 0; r < rows; ++r) {
                const float pr = sc[r * kBlock + cc];
                if (pr != 0.f) axpy<V>(pr, krow, acc + r * hd, hd);
            }
        }
    }
}

// ---- The register-blocked work item (head_dim = NV vectors) ----
//
// Per block of up to kBlock cells: the block's K rows are converted to f32 once into an L1
// buffer; each query row's scores for W cells come from W accumulators (NV FMAs each, the
// query vector loaded once per W dims for all W cells) folded into one vector by V::fold, so no
// score costs a horizontal sum of its own. The online softmax runs on those vectors (masked
// lanes are exactly 0 after the exp). Then the V rows replace the K rows in the buffer and P V
// accumulates into registers: RB query rows x CH vectors of one column chunk stay in registers
// across the block (CH = NV when NV fits V::kAcc), each probability is one broadcast, each V
// vector one memory operand.

// Cells [c0, c0 + n) of the cache's slice at element off (NV vectors) into dst[n][NV * W].
template <class V, int NV>
inline void load_block(const Tensor& cache, int64_t c0, int64_t n, int64_t off, float* dst) {
    constexpr int64_t hd = NV * V::W;
    if (cache.type == DType::F16) {
        const uint16_t* src = cache.data<uint16_t>() + c0 * cache.ne[0] + off;
        for (int64_t c = 0; c < n; ++c, src += cache.ne[0], dst += hd)
            for (int v = 0; v < NV; ++v) V::store(dst + V::W * v, V::loadh(src + V::W * v));
        return;
    }
    if (cache.type == DType::F32) {
        const float* src = cache.data<float>() + c0 * cache.ne[0] + off;
        for (int64_t c = 0; c < n; ++c, src += cache.ne[0], dst += hd)
            for (int v = 0; v < NV; ++v) V::store(dst + V::W * v, V::load(src + V::W * v));
        return;
    }
    if ((cache.type == DType::Q8_0 || cache.type == DType::Q4_0) && hd % 32 == 0 && off % 32 == 0) {  // whole blocks
        const size_t rs = cache.row_size(), bo = static_cast<size_t>(off / 32);
        const uint8_t* row = static_cast<const uint8_t*>(cache.host) + static_cast<size_t>(c0) * rs;
        for (int64_t c = 0; c < n; ++c, row += rs, dst += hd) {
            for (int64_t b = 0; b < hd / 32; ++b) {
                if (cache.type == DType::Q8_0)
                    V::q8_0(reinterpret_cast<const BlockQ8_0*>(row) + bo + b, dst + 32 * b);
                else
                    V::q4_0(reinterpret_cast<const BlockQ4_0*>(row) + bo + b, dst + 32 * b);
            }
        }
        return;
    }
    for (int64_t c = 0; c < n; ++c) load_row<V>(cache, c0 + c, off, hd, dst + c * hd);
}

// cap * tanh(s / cap) on a vector, tanh(x) = 1 - 2 / (e^{2x} + 1).
template <class V>
inline typename V::F softcap(typename V::F s, float cap) {
    const typename V::F e = exp_poly<V>(V::mul(s, V::set1(2.f / cap)));
    const typename V::F t = V::sub(V::set1(1.f), V::div(V::set1(2.f), V::add(e, V::set1(1.f))));
    return V::mul(t, V::set1(cap));
}

// The P V column chunks of a head of NV vectors: the fewest equal chunks of at most V::kAcc.
template <class V>
constexpr int pv_chunks(int nv) {
    int n = (nv + V::kAcc - 1) / V::kAcc;
    while (nv % n != 0) ++n;
    return n;
}

template <class V, int NV>
void attend_blocked(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                    const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    using F = typename V::F;
    using M = typename V::M;
    constexpr int W = V::W;
    constexpr int64_t hd = NV * W;
    constexpr int NCH = pv_chunks<V>(NV), CH = NV / NCH;  // P V column chunks of CH vectors
    constexpr int RB = std::max(1, V::kAcc / CH);          // query rows whose sums stay in registers
    constexpr int64_t B = kBlock;
    static_assert(B % W == 0);
    const int group = p.n_head / p.n_head_kv;
    const int64_t rows = tile.nt * group;
    float* kv = buf;               // [B][hd]: the block's K rows, then its V rows
    float* pr = buf + B * hd;      // [rows][B]: scores, then probabilities
    float* corr = pr + rows * B;   // [rows]: the factor the row's sums are rescaled by in this block
    for (int64_t r = 0; r < rows; ++r) st[r] = {-INFINITY, 0.f};
    std::memset(acc, 0, static_cast<size_t>(rows * hd) * 4);
    const F vscale = V::set1(p.scale), ninf = V::set1(-INFINITY);
    for (int64_t b0 = lo; b0 < hi; b0 += B) {
        const int64_t nb = std::min<int64_t>(B, hi - b0);
        const int64_t nsub = (nb + W - 1) / W;
        load_block<V, NV>(kc, b0, nb, g * hd, kv);
        // scores and the online softmax, one query row at a time
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t t = tile.t0 + r / group;
            const float* qr = q.data<float>() + (t * p.n_head + g * group + r % group) * hd;
            const int64_t slo = span[2 * t], shi = slo + span[2 * t + 1];
            F s[B / W];
            M live[B / W];
            F vmax = ninf;
            for (int64_t j = 0; j < nsub; ++j) {
                live[j] = V::span(b0 + W * j, slo, std::min(shi, b0 + nb));
                if (!V::any(live[j])) {
                    s[j] = ninf;
                    continue;
                }
                F a[W];
                for (int i = 0; i < W; ++i) a[i] = V::zero();
                const float* kb = kv + W * j * hd;
                for (int v = 0; v < NV; ++v) {
                    const F qv = V::load(qr + W * v);
                    for (int c = 0; c < W; ++c) a[V::slot(c)] = V::fmadd(qv, V::load(kb + c * hd + W * v), a[V::slot(c)]);
                }
                F sc = V::mul(V::fold(a), vscale);
                if (p.softcap > 0) sc = softcap<V>(sc, p.softcap);
                s[j] = V::select(live[j], sc, ninf);
                vmax = V::max(vmax, s[j]);
            }
            const float mb = V::max_of(vmax);
            float* prow = pr + r * B;
            if (mb == -INFINITY) {  // nothing of this block is visible to the row
                for (int64_t j = 0; j < nsub; ++j) V::store(prow + W * j, V::zero());
                corr[r] = 1.f;
                continue;
            }
            const float m_new = std::max(st[r].m, mb);
            corr[r] = st[r].m == -INFINITY ? 0.f : std::exp(st[r].m - m_new);
            const F vm = V::set1(m_new);
            F sum = V::zero();
            for (int64_t j = 0; j < nsub; ++j) {
                const F e = V::zero_unless(live[j], exp_poly<V>(V::sub(s[j], vm)));
                V::store(prow + W * j, e);
                sum = V::add(sum, e);
            }
            st[r].m = m_new;
            st[r].l = st[r].l * corr[r] + V::sum(sum);
        }
        // acc = acc * corr + P V, RB rows x one chunk of CH vectors at a time in registers
        load_block<V, NV>(vc, b0, nb, g * hd, kv);
        for (int64_t r0 = 0; r0 < rows; r0 += RB) {
            const int nr = static_cast<int>(std::min<int64_t>(RB, rows - r0));
            for (int ch = 0; ch < NCH; ++ch) {
                const int64_t col = static_cast<int64_t>(ch) * CH * W;
                F o[RB][CH];
                for (int i = 0; i < RB; ++i) {
                    if (i >= nr) break;
                    const F cr = V::set1(corr[r0 + i]);
                    for (int v = 0; v < CH; ++v) o[i][v] = V::mul(V::load(acc + (r0 + i) * hd + col + W * v), cr);
                }
                if (nr == RB) {
                    for (int64_t c = 0; c < nb; ++c) {
                        const float* vr = kv + c * hd + col;
                        for (int i = 0; i < RB; ++i) {
                            const F pb = V::set1(pr[(r0 + i) * B + c]);
                            for (int v = 0; v < CH; ++v) o[i][v] = V::fmadd(pb, V::load(vr + W * v), o[i][v]);
                        }
                    }
                } else {
                    for (int64_t c = 0; c < nb; ++c) {
                        const float* vr = kv + c * hd + col;
                        for (int i = 0; i < RB; ++i) {
                            if (i >= nr) break;
                            const F pb = V::set1(pr[(r0 + i) * B + c]);
                            for (int v = 0; v < CH; ++v) o[i][v] = V::fmadd(pb, V::load(vr + W * v), o[i][v]);
                        }
                    }
                }
                for (int i = 0; i < RB; ++i) {
                    if (i >= nr) break;
                    for (int v = 0; v < CH; ++v) V::store(acc + (r0 + i) * hd + col + W * v, o[i][v]);
                }
            }
        }
    }
}

// The work item for this instruction set: register-blocked for the common head sizes, the
// generic one for the rest.
template <class V>
void attend(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
            const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    static_assert(32 % V::W == 0 && 80 % V::W == 0 && 112 % V::W == 0);
    switch (p.head_dim) {
        case 32: return attend_blocked<V, 32 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 64: return attend_blocked<V, 64 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 80: return attend_blocked<V, 80 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 96: return attend_blocked<V, 96 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 112: return attend_blocked<V, 112 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 128: return attend_blocked<V, 128 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        case 256: return attend_blocked<V, 256 / V::W>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
        default: return attend_part<V>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
    }
}

// The work item compiled for AVX-512 (attention_avx512.cpp); chosen at run time by CPUID.
void attend_avx512(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                   const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc);

}  // namespace minerva::cpu::attn
