// kernels/cpu/multi.cpp: which small-batch kernel (multi.h) serves how many columns.
#include "cpu/multi.h"

#include <cstdlib>

#include "cpu/cpu_features.h"

namespace minerva::cpu {

ColsKernel find_cols_kernel(DType t, int64_t k, int nc) {
    static const int min_nc = [] {  // TEMP A/B
        const char* e = std::getenv("MINERVA_COLS_MIN");
        return e ? std::atoi(e) : 2;
    }();
    if (nc < min_nc || nc > kColsMax || !features().avx512_vnni) return {};
    ColsKernel ck = cols_kernel_avx512(t, features().avx512_vbmi);
    if (!ck.rows || k % ck.block != 0) return {};
    return ck;
}

}  // namespace minerva::cpu
