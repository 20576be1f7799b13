// kernels/cpu/attention_avx512.cpp: the fused attention's work item (attention_impl.h) compiled
// for AVX-512: 16-float vectors, 16 accumulators per score fold and up to 16 vectors of P V sums
// in registers. Called only where CPUID reports AVX-512.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() and trip these at -O3 (false positives).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "cpu/attention_impl.h"
#include "cpu/simd_avx512.h"

namespace minerva::cpu::attn {

void attend_avx512(const Tensor& q, const Tensor& kc, const Tensor& vc, const int32_t* span, const AttentionParams& p,
                   const fast::AttnTile& tile, int64_t g, int64_t lo, int64_t hi, float* buf, RowState* st, float* acc) {
    attend<Avx512>(q, kc, vc, span, p, tile, g, lo, hi, buf, st, acc);
}

}  // namespace minerva::cpu::attn
