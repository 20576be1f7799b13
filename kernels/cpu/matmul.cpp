// kernels/cpu/matmul.cpp: out[m, n] = w[k, m]^T x[k, n] on the thread pool.
#include <immintrin.h>

#include "cpu/dequant.h"
#include "cpu/fast_ops.h"
#include "cpu/ref_ops.h"

namespace minerva::cpu::fast {
namespace {

float dot_f32(const float* a, const float* b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
}

}  // namespace

void matmul(Context& c, const Tensor& w, const Tensor& x, const Tensor& out) {
    check_matmul(w, x, out);
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    const size_t rs = w.row_size();
    c.pool.run([&](int ith, int nth) {
        long r0, r1;
        split_range(static_cast<long>(m), ith, nth, 1, r0, r1);
        float* row = static_cast<float*>(c.per_thread[static_cast<size_t>(ith)].get(static_cast<size_t>(k) * 4));
        for (long i = r0; i < r1; ++i) {
            const float* wr;
            if (w.type == DType::F32) {
                wr = w.data<float>() + i * k;
            } else {
                dequantize_row(w.type, static_cast<const char*>(w.host) + rs * static_cast<size_t>(i), row, k);
                wr = row;
            }
            for (int64_t j = 0; j < n; ++j) out.data<float>()[j * m + i] = dot_f32(wr, x.data<float>() + j * k, k);
        }
    });
}

}  // namespace minerva::cpu::fast
