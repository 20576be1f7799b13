// kernels/cpu/multi.cpp: which small-batch kernel (multi.h) serves how many columns.
#include "cpu/multi.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/cpu_features.h"

namespace minerva::cpu {

ColsKernel find_cols_kernel(DType t, int64_t k, int nc) {
    if (nc < 2 || nc > kColsMax || !features().avx512_vnni) return {};
    ColsKernel ck = cols_kernel_avx512(t, features().avx512_vbmi, nc);
    if (!ck.rows || k % ck.block != 0) return {};
    return ck;
}

// The fastest family per type and column count, measured by `minerva-bench smallbatch` (one
// thread, weights in cache) on the 2-core Zen 4 of docs/performance.md: the row kernels' cost
// grows with every column (each column redoes the float steps on its own lanes), the GEMM's and
// the column-lane kernels' is mostly the unpack, shared by all columns; where two were within
// noise, the row kernels (bit-identical to decode) or the GEMM stay. Q8_0 and Q6_K have no
// entry: matmul's own rule (Q8_0: the row kernel per column below 4 columns, the GEMM from 4;
// Q6_K: its row kernels up to 8 columns, the GEMM beyond) was the fastest or tied throughout.
namespace {

std::atomic<BatchKernel> g_forced{[] {
    const char* e = std::getenv("MINERVA_BATCH");
    if (e && std::strcmp(e, "rows") == 0) return BatchKernel::Rows;
    if (e && std::strcmp(e, "gemm") == 0) return BatchKernel::Gemm;
    if (e && std::strcmp(e, "cols") == 0) return BatchKernel::Cols;
    return BatchKernel::Default;
}()};

}  // namespace

void force_batch_kernel(BatchKernel b) { g_forced.store(b, std::memory_order_relaxed); }

BatchKernel batch_kernel(DType t, int64_t k, int n) {
    const BatchKernel forced = g_forced.load(std::memory_order_relaxed);
    if (n < 2 || n > kColsMax || !features().avx512_vnni) return BatchKernel::Default;
    const bool cols = find_cols_kernel(t, k, n).rows != nullptr;
    if (forced != BatchKernel::Default) return forced == BatchKernel::Cols && !cols ? BatchKernel::Default : forced;
    if (!cols) return BatchKernel::Default;
    switch (t) {
        case DType::Q4_0: return n <= 4 ? BatchKernel::Rows : n == 8 || n >= 15 ? BatchKernel::Cols : BatchKernel::Gemm;
        case DType::Q4_K: return n <= 6 ? BatchKernel::Rows : n <= 8 || n >= 13 ? BatchKernel::Cols : BatchKernel::Gemm;
        default: return BatchKernel::Default;
    }
}

}  // namespace minerva::cpu
