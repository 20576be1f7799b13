// kernels/cpu/attention_impl.h (internal): the fused attention's inner work item, written once
// and compiled per instruction set: fast_ops.cpp instantiates it with AVX2 vectors,
// attention_avx512.cpp with AVX-512 ones. V supplies the vector primitives:
//   V::W (floats per vector), dot(a, b, n), axpy(a, x, y, n), scale(y, a, n),
//   exp_sum(s, n, m): s[i] = exp(s[i] - m) (0 where s[i] is -inf) for n a multiple of W, returns the sum,
//   load_f16(src, dst, n): n halves to floats.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend.h"
#include "cpu/dequant.h"
#include "cpu/fast_ops.h"

namespace minerva::cpu::attn {

constexpr int kTileQ = 8;       // query tokens per tile (prefill): K/V rows are read once for all of them
constexpr int kBlock = 64;      // cache cells per online-softmax step (scores stay in L1)
constexpr int64_t kMinSplit = 256;  // fewest cells one part of a split decode takes

// Scratch floats one work item needs (either implementation): a block of K or V rows as f32,
// the rows' scores of a block and their rescale factors.
inline size_t buf_floats(int64_t head_dim, int64_t rows) {
    return static_cast<size_t>(kBlock * head_dim + rows * (kBlock + 1) + 16);
}

// The running state of one query row: max score and sum of exp (the output sums are beside it).
struct RowState {
    float m, l;
};

// Elements off .. off+n-1 of one cache row as f32. Quantized rows (Q8_0, Q4_0) decode the
// blocks that hold them (a head's slice is whole blocks whenever head_dim is a multiple of 32).
template <class V>
inline void load_row(const Tensor& cache, int64_t cell, int64_t off, int64_t n, float* dst) {
    const int64_t idx = cell * cache.ne[0] + off;
    if (cache.type == DType::F32) {
        std::memcpy(dst, cache.data<float>() + idx, static_cast<size_t>(n) * 4);
        return;
    }
    if (cache.type == DType::F16) return V::load_f16(cache.data<uint16_t>() + idx, dst, n);
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

// One work item of the fused attention: the query rows (tile tokens x group heads) of KV head g
// over cells [lo, hi) of the tile's union span, as an online softmax over blocks of kBlock
// cells: scores live in a block-sized buffer, never a context-sized one. Each K/V row is
// converted to f32 once and used by every query row of the tile (GQA heads and tokens alike).
// Writes (m, l) per row and acc [rows][hd] (unnormalised). buf holds buf_floats(hd, rows) floats.
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
                        s = V::dot(qi + h * hd, krow, hd) * p.scale;
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
                V::scale(acc + r * hd, corr, hd);
            }
            st[r].m = m_new;
            for (int64_t cc = nb; cc < nbv; ++cc) s[cc] = -INFINITY;
            st[r].l += V::exp_sum(s, nbv, m_new);
        }
        // acc += P V
        for (int64_t cc = 0; cc < nb; ++cc) {
            load_row<V>(vc, b0 + cc, g * hd, hd, krow);
            for (int64_t r = 0; r < rows; ++r) {
                const float pr = sc[r * kBlock + cc];
                if (pr != 0.f) V::axpy(pr, krow, acc + r * hd, hd);
            }
        }
    }
}

// The work item compiled for AVX-512 (attention_avx512.cpp); chosen at run time by CPUID.
void attend_part_avx512(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                        const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc);

}  // namespace minerva::cpu::attn
