// kernels/cpu/matmul.cpp: out[m, n] = w[k, m]^T x[k, n] on the thread pool.
//
// The activations are quantized once per call to the 8-bit layout the weight type's kernel
// wants (qact.h); then the threads take chunks of weight rows, each starting on its own
// contiguous span of the rows and then helping with what is left of the others' (dynamic: a
// core slowed by another process does less, the rest pick up its share; spans: each core
// streams one long run of rows), and run the type's row kernel (vec_dot.h) four rows at a time.
// For n > 1 a chunk's rows stay in L1/L2 while every column streams past them, so the weights
// are read from memory once.
// Types without an integer kernel dequantize each row to f32 and use an f32 dot product.
//
// Prefill and batched decode (n >= 4 columns) go through the integer GEMM of gemm.h instead
// (tiles of 16 rows unpacked once into an interleaved form, 16 rows x up to 8 columns per
// register block on AVX-512 VNNI, 8 rows x 4 columns with vpmaddubsw on AVX2 CPUs, one float
// step per 32-block). It quantizes the activations in the
// same blocks and by the same function as the row kernels, so a prefill column agrees with its
// decode to float rounding (the order of the float sums differs). Types without a row kernel use
// the GEMM for every n on VNNI CPUs (on AVX2 ones they keep f32 dot products of dequantized rows). OpenBLAS sgemm on dequantized tiles is kept as an option
// (MINERVA_PREFILL=blas); it is much slower than the GEMM here (docs/performance.md), so it is
// not the default. MINERVA_PREFILL=int8 / MINERVA_NO_GEMM=1 force the per-column kernels.
// On CPUs with AMX the GEMM's tiles run on the tile unit (gemm_amx.h: same layout, same
// result bit for bit); MINERVA_CPU=avx512 keeps them on VNNI.
// Batches of 2-16 columns (batched decode) go to the family batch_kernel() names for the type and
// column count (multi.h): the multi-column row kernels (vec_dot.h: Q4_0 with VBMI, Q4_K and Q6_K
// on AVX-512, up to 8 columns; each row is unpacked once for all the columns, and each column
// gets exactly its decode arithmetic), the GEMM, or the column-lane kernels of multi.h.
#include <immintrin.h>

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fast_ops.h"
#include "cpu/gemm.h"
#include "cpu/gemm_amx.h"
#include "cpu/multi.h"
#include "cpu/prefetch.h"
#include "cpu/qact.h"
#include "cpu/ref_ops.h"
#include "cpu/vec_dot.h"

namespace minerva::cpu::fast {
namespace {

// Rows per scheduling unit (~18 KB of Q4_0 at k=2048): long enough runs of contiguous rows for
// the kernels' next-row-group prefetch; measured 16 vs 32 vs 64 on TinyLlama Q4_0 decode, 32 was
// best (noisy shared machine).
constexpr int64_t kChunkRows = 32;
constexpr int64_t kBlasMinColumns = int64_t{1} << 40;  // never by default: slower here (see above)

size_t act_bytes(ActKind kind, int64_t k) {
    switch (kind) {
        case ActKind::Q8Pair: return q8pair_count(k) * sizeof(Q8Pair);
        case ActKind::Q8Oct: return q8oct_count(k) * sizeof(Q8Oct);
        case ActKind::Q8K:
        case ActKind::Q8KNib: return q8k_count(k) * sizeof(Q8KBlock);
        default: return static_cast<size_t>(k) * 4;
    }
}

void quantize_column(const DotKernel& kern, const float* x, int64_t k, void* dst) {
    if (kern.act == ActKind::Q8Pair) quantize_q8pair(x, k, kern.bias_c, static_cast<Q8Pair*>(dst));
    else if (kern.act == ActKind::Q8Oct) quantize_q8oct(x, k, kern.bias_c, static_cast<Q8Oct*>(dst));
    else if (kern.act == ActKind::Q8KNib) quantize_q8k_nib(x, k, static_cast<Q8KBlock*>(dst));
    else quantize_q8k(x, k, static_cast<Q8KBlock*>(dst));
}

// Prefill through OpenBLAS: each thread dequantizes a tile of weight rows to f32 and multiplies
// it with all n columns by a single-threaded sgemm.
constexpr int64_t kBlasTileRows = 64;

void matmul_blas(Context& c, const Tensor& w, const Tensor& x, const Tensor& out) {
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    const size_t rs = w.row_size();
    const uint8_t* wp = static_cast<const uint8_t*>(w.host);
    c.pool.parallel_for(m, kBlasTileRows, [&](int64_t r0, int64_t r1, int ith) {
        const int64_t tr = r1 - r0;
        const float* a;
        if (w.type == DType::F32) {
            a = w.data<float>() + r0 * k;
        } else {
            float* tile = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(static_cast<size_t>(kBlasTileRows * k) * 4));
            for (int64_t r = 0; r < tr; ++r) dequantize_row(w.type, wp + rs * static_cast<size_t>(r0 + r), tile + r * k, k);
            a = tile;
        }
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, static_cast<int>(tr), static_cast<int>(n), static_cast<int>(k), 1.f, a,
                    static_cast<int>(k), x.data<float>(), static_cast<int>(k), 0.f, out.data<float>() + r0, static_cast<int>(m));
    });
}

// The integer GEMM (gemm.h): threads take tiles of 16 weight rows, unpack each once into
// per-thread scratch and multiply it with every column.
constexpr int64_t kGemmMinColumns = 4;
constexpr int64_t kSmallBatchColumns = 16;  // up to this many columns the GEMM streams its weights (see matmul_gemm)

void matmul_gemm(Context& c, const Tensor& w, const Tensor& x, const Tensor& out) {
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    const size_t rs = w.row_size(), cs = gemm_col_bytes(w.type, k), ts = gemm_tile_bytes(w.type, k);
    const size_t scratch = ts + static_cast<size_t>(kGemmTileRows) * static_cast<size_t>(k);
    const uint8_t* wp = static_cast<const uint8_t*>(w.host);
    uint8_t* cols = static_cast<uint8_t*>(c.shared.get(cs * static_cast<size_t>(n)));
    if (n == 1) {
        gemm_quantize_col(w.type, x.data<float>(), k, cols);
    } else {
        c.pool.parallel_for(n, 4, [&](int64_t j0, int64_t j1, int) {
            for (int64_t j = j0; j < j1; ++j) gemm_quantize_col(w.type, x.data<float>() + j * k, k, cols + cs * static_cast<size_t>(j));
        });
    }
    for (auto& s : c.per_thread) s.get(scratch);  // grow before the parallel region
    // On AMX CPUs the tiles go through the tile unit (gemm_amx.h: same layout, same result).
    const GemmTileFn amx = n >= kGemmMinColumns ? gemm_amx_tile_fn() : nullptr;
    const GemmTileFn tile_fn = amx ? amx : gemm_tile;
    auto run = [&](int64_t r0, int64_t r1, int ith) {
        uint8_t* tile = static_cast<uint8_t*>(c.per_thread[static_cast<size_t>(ith)].get(scratch));
        for (int64_t r = r0; r < r1; r += kGemmTileRows) {
            const int nr = static_cast<int>(std::min<int64_t>(kGemmTileRows, r1 - r));
            gemm_unpack_tile(w.type, wp + rs * static_cast<size_t>(r), rs, nr, k, tile, tile + ts);
            tile_fn(w.type, k, tile, nr, cols, cs, static_cast<int>(n), out.data<float>() + r, m);
        }
    };
    // Batched decode (a few columns) streams the weights: each thread walks its own span of
    // tiles and fetches the next tile of its span into L2 while it works on this one (the far
    // prefetch of prefetch.h, one tile of 16 rows ahead). Prefill is compute-bound and takes
    // tiles in any order.
    if (n > kSmallBatchColumns || prefetch_ahead_bytes() == 0) return c.pool.parallel_for(m, kGemmTileRows, run);
    c.pool.parallel_for_spans(m, kGemmTileRows, [&](int64_t r0, int64_t r1, int ith) {
        for (int64_t r = r0; r < r1; r += kGemmTileRows) {
            const int64_t next = r + kGemmTileRows;
            if (next < r1) prefetch_l2(wp + rs * static_cast<size_t>(next), rs * static_cast<size_t>(std::min<int64_t>(kGemmTileRows, r1 - next)));
            run(r, std::min(r1, next), ith);
        }
    });
}

// Batched decode of 2..16 columns through the small-batch kernels (multi.h): the columns are
// packed once (threads split the quantization blocks), then the threads take spans of rows.
void matmul_cols(Context& c, const ColsKernel& ck, const Tensor& w, const Tensor& x, const Tensor& out) {
    const int64_t k = w.ne[0], m = w.ne[1];
    const int n = static_cast<int>(x.n_rows());
    const size_t rs = w.row_size();
    const uint8_t* wp = static_cast<const uint8_t*>(w.host);
    void* act = c.shared.get(ck.act_bytes(k, n));
    const int64_t nq = k / ck.block;
    c.pool.parallel_for(nq, std::max<int64_t>(1, 1024 / ck.block), [&](int64_t b0, int64_t b1, int) {
        ck.pack(x.data<float>(), k, n, b0, b1, act);
    });
    float* op = out.data<float>();
    c.pool.parallel_for_spans(m, kChunkRows, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; r += 4) {
            const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
            ck.rows(k, wp + rs * static_cast<size_t>(r), rs, nr, act, n, op + r, static_cast<size_t>(m));
        }
    });
}

bool use_blas(int64_t n) {
    static const int mode = [] {
        const char* e = std::getenv("MINERVA_PREFILL");
        if (e && std::strcmp(e, "blas") == 0) return 1;
        if (e && std::strcmp(e, "int8") == 0) return 2;
        return 0;
    }();
    if (mode == 1) return n > 1;
    if (mode == 2) return false;
    return n >= kBlasMinColumns;
}

bool per_column_forced() {
    static const bool forced = [] {
        const char* e = std::getenv("MINERVA_PREFILL");
        const char* g = std::getenv("MINERVA_NO_GEMM");
        return (e && std::strcmp(e, "int8") == 0) || (g && *g && std::strcmp(g, "0") != 0);
    }();
    return forced;
}

}  // namespace

void init_blas_threads() { openblas_set_num_threads(1); }

void matmul(Context& c, const Tensor& w, const Tensor& x, const Tensor& out) {
    check_matmul(w, x, out);
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    const size_t rs = w.row_size();
    const uint8_t* wp = static_cast<const uint8_t*>(w.host);
    const float* xp = x.data<float>();
    float* op = out.data<float>();
    if (use_blas(n)) return matmul_blas(c, w, x, out);
    const BatchKernel bk = per_column_forced() ? BatchKernel::Default : batch_kernel(w.type, k, static_cast<int>(n));
    if (bk == BatchKernel::Cols) return matmul_cols(c, find_cols_kernel(w.type, k, static_cast<int>(n)), w, x, out);
    DotKernel kern = find_dot_kernel(w.type);
    if ((kern.act == ActKind::Q8K || kern.act == ActKind::Q8KNib) && k % 256 != 0) kern = {};  // K types always have k % 256 == 0
    // The GEMM serves prefill and batched decode, and on VNNI CPUs also decode of the types
    // without a row kernel (Q4_1, Q5_1, Q2_K, Q3_K).
    // Batches up to kMultiColumns go through the type's multi-column row kernel where it has one
    // (the weights are read and unpacked once per row for all columns, with no tile staging),
    // unless batch_kernel() measured the GEMM faster for that type and column count.
    const bool multi = kern.multi && n > 1 && n <= kMultiColumns && bk != BatchKernel::Gemm;
    const bool gemm = kern.fn ? n >= kGemmMinColumns : features().avx512_vnni;
    if (gemm && !multi && gemm_supported(w.type) && !per_column_forced())
        return matmul_gemm(c, w, x, out);

    const void* act = xp;
    size_t act_stride = static_cast<size_t>(k) * 4;
    if (kern.fn && kern.act != ActKind::F32) {
        act_stride = act_bytes(kern.act, k);
        void* buf = c.shared.get(act_stride * static_cast<size_t>(n));
        act = buf;
        if (n == 1) {
            quantize_column(kern, xp, k, buf);
        } else {
            c.pool.parallel_for(n, 1, [&](int64_t j0, int64_t j1, int) {
                for (int64_t j = j0; j < j1; ++j) quantize_column(kern, xp + j * k, k, static_cast<char*>(buf) + j * act_stride);
            });
        }
    }

    // Spans: each thread streams one contiguous run of rows (thread_pool.h).
    c.pool.parallel_for_spans(m, kChunkRows, [&](int64_t r0, int64_t r1, int ith) {
        if (!kern.fn) {
            float* row = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(static_cast<size_t>(k) * 4));
            for (int64_t r = r0; r < r1; ++r) {
                dequantize_row(w.type, wp + rs * static_cast<size_t>(r), row, k);
                for (int64_t j = 0; j < n; ++j) op[j * m + r] = dot_f32_avx2(row, xp + j * k, k);
            }
            return;
        }
        if (multi) {
            for (int64_t r = r0; r < r1; r += 4) {
                const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
                kern.multi(k, wp + rs * static_cast<size_t>(r), rs, nr, act, act_stride, static_cast<int>(n), op + r, static_cast<size_t>(m));
            }
            return;
        }
        for (int64_t j = 0; j < n; ++j) {
            const void* aj = static_cast<const char*>(act) + static_cast<size_t>(j) * act_stride;
            for (int64_t r = r0; r < r1; r += 4) {
                const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
                kern.fn(k, wp + rs * static_cast<size_t>(r), rs, nr, aj, op + j * m + r);
            }
        }
    });
}

// Decode of a mixture of experts: n_pairs matrix-vector products out_p = W_{expert[p]} x_{col[p]}
// (W [k, m, E]) as ONE pass over the concatenated rows of the chosen experts, so the threads
// split all of them at once instead of synchronising once per expert. Returns false for types
// without a row kernel (the caller then groups the pairs through matmul()).
bool matvec_experts(Context& c, const Tensor& w, const float* x, const int64_t* col, const int32_t* expert, int64_t n_pairs,
                    float* out) {
    const int64_t k = w.ne[0], m = w.ne[1];
    DotKernel kern = find_dot_kernel(w.type);
    if ((kern.act == ActKind::Q8K || kern.act == ActKind::Q8KNib) && k % 256 != 0) kern = {};
    if (!kern.fn) return false;
    const size_t rs = w.row_size(), expert_bytes = rs * static_cast<size_t>(m);
    const uint8_t* wp = static_cast<const uint8_t*>(w.host);
    // One activation per distinct column (the gate and up projections share one per token).
    const size_t act_stride = kern.act == ActKind::F32 ? static_cast<size_t>(k) * 4 : act_bytes(kern.act, k);
    char* acts = static_cast<char*>(c.shared.get(act_stride * static_cast<size_t>(n_pairs)));
    for (int64_t p = 0; p < n_pairs; ++p) {
        const float* xp = x + col[p] * k;
        if (kern.act == ActKind::F32) std::memcpy(acts + static_cast<size_t>(p) * act_stride, xp, static_cast<size_t>(k) * 4);
        else quantize_column(kern, xp, k, acts + static_cast<size_t>(p) * act_stride);
    }
    c.pool.parallel_for_spans(n_pairs * m, kChunkRows, [&](int64_t r0, int64_t r1, int) {
        while (r0 < r1) {
            const int64_t p = r0 / m, r = r0 % m, end = std::min(r1, (p + 1) * m);
            const uint8_t* wexp = wp + expert_bytes * static_cast<size_t>(expert[p]);
            const void* act = acts + static_cast<size_t>(p) * act_stride;
            for (int64_t i = r; i < end - p * m; i += 4) {
                const int nr = static_cast<int>(std::min<int64_t>(4, end - p * m - i));
                kern.fn(k, wexp + rs * static_cast<size_t>(i), rs, nr, act, out + p * m + i);
            }
            r0 = end;
        }
    });
    return true;
}

}  // namespace minerva::cpu::fast
