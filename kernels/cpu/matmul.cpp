// kernels/cpu/matmul.cpp: out[m, n] = w[k, m]^T x[k, n] on the thread pool.
//
// The activations are quantized once per call to the 8-bit layout the weight type's kernel
// wants (qact.h); then the threads take chunks of weight rows from a shared counter (dynamic
// scheduling: a core slowed by another process does less, the rest pick up its share) and run
// the type's row kernel (vec_dot.h) four rows at a time. For n > 1 (prefill) a chunk's rows stay
// in L1/L2 while every column streams past them, so the weights are read from memory once.
// Types without an integer kernel dequantize each row to f32 and use an f32 dot product.
//
// Prefill (n >= 4 columns) on AVX-512 VNNI CPUs goes through the integer GEMM of gemm.h instead
// (weights unpacked once per tile, 4x4 register blocks); it quantizes the activations in the same
// blocks and by the same function as the row kernels and repeats their integer and float steps,
// so a prefill column is bit-identical to the decode of that column (the small test models turn
// a 3e-7 difference into 1e-2 in the logits through re-rounded 8-bit activations). Types without
// a row kernel use the GEMM for every n, for the same reason. OpenBLAS sgemm on dequantized tiles is
// kept as an option (MINERVA_PREFILL=blas); measured on the 2-core Zen 5 machine it was ~1.6x
// slower than the GEMM and ~1.2x slower than the per-column kernels (docs/performance.md), so
// it is not the default. MINERVA_PREFILL=int8 / MINERVA_NO_GEMM=1 force the per-column kernels.
#include <immintrin.h>

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/dequant.h"
#include "cpu/fast_ops.h"
#include "cpu/gemm.h"
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
        case ActKind::Q8K: return q8k_count(k) * sizeof(Q8KBlock);
        default: return static_cast<size_t>(k) * 4;
    }
}

void quantize_column(const DotKernel& kern, const float* x, int64_t k, void* dst) {
    if (kern.act == ActKind::Q8Pair) quantize_q8pair(x, k, kern.bias_c, static_cast<Q8Pair*>(dst));
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

// Prefill through the integer GEMM (gemm.h): tiles of kGemmTileRows weight rows are unpacked
// into per-thread scratch and multiplied with all columns in 4x4 register blocks.
constexpr int64_t kGemmTileRows = 32;
constexpr int64_t kGemmMinColumns = 4;

void matmul_gemm(Context& c, const Tensor& w, const Tensor& x, const Tensor& out) {
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    const size_t rs = w.row_size(), gs = gemm_row_bytes(k);
    const uint8_t* wp = static_cast<const uint8_t*>(w.host);
    const GemmMode mode = gemm_mode(w.type);
    uint8_t* cols = static_cast<uint8_t*>(c.shared.get(gs * static_cast<size_t>(n)));
    c.pool.parallel_for(n, 4, [&](int64_t j0, int64_t j1, int) {
        for (int64_t j = j0; j < j1; ++j) gemm_quantize_col(w.type, x.data<float>() + j * k, k, cols + gs * static_cast<size_t>(j));
    });
    for (auto& s : c.per_thread) s.get(gs * kGemmTileRows);  // grow before the parallel region
    c.pool.parallel_for(m, kGemmTileRows, [&](int64_t r0, int64_t r1, int ith) {
        uint8_t* tile = static_cast<uint8_t*>(c.per_thread[static_cast<size_t>(ith)].get(gs * kGemmTileRows));
        for (int64_t r = r0; r < r1; ++r) gemm_unpack_row(w.type, wp + rs * static_cast<size_t>(r), k, tile + gs * static_cast<size_t>(r - r0));
        for (int64_t j = 0; j < n; j += 4) {
            const int nc = static_cast<int>(std::min<int64_t>(4, n - j));
            for (int64_t r = r0; r < r1; r += 4) {
                const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
                gemm_block_vnni(mode, k, tile + gs * static_cast<size_t>(r - r0), gs, nr, cols + gs * static_cast<size_t>(j), gs, nc,
                                out.data<float>() + j * m + r, m);
            }
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
    DotKernel kern = find_dot_kernel(w.type);
    if (kern.act == ActKind::Q8K && k % 256 != 0) kern = {};  // K types always have k % 256 == 0
    // The GEMM serves prefill, and also decode of the types without a row kernel (Q4_1, Q5_1,
    // Q2_K, Q3_K), so that every n sees the same 8-bit activations: prefill == decode.
    // With a row kernel, the GEMM is bit-identical to it where k % 64 == 0 (it has no odd tail block).
    if ((n >= kGemmMinColumns || !kern.fn) && (!kern.fn || k % 64 == 0) && gemm_supported(w.type) && !per_column_forced())
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

    c.pool.parallel_for(m, kChunkRows, [&](int64_t r0, int64_t r1, int ith) {
        if (!kern.fn) {
            float* row = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(static_cast<size_t>(k) * 4));
            for (int64_t r = r0; r < r1; ++r) {
                dequantize_row(w.type, wp + rs * static_cast<size_t>(r), row, k);
                for (int64_t j = 0; j < n; ++j) op[j * m + r] = dot_f32_avx2(row, xp + j * k, k);
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

}  // namespace minerva::cpu::fast
