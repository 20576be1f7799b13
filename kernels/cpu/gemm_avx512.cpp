// kernels/cpu/gemm_avx512.cpp: the register-blocked VNNI micro-kernel of the prefill GEMM
// (gemm.h): up to 4 rows x 4 columns, 16 zmm accumulators.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm.h"

namespace minerva::cpu {
namespace {

template <int NR, int NC>
void block(int64_t k, const uint8_t* rows, size_t rstr, const uint8_t* cols, size_t cstr, float* out, int64_t ldo) {
    const int64_t kp = gemm_kpad(k);
    GemmRow R[NR], C[NC];
    for (int r = 0; r < NR; ++r) R[r] = gemm_parts(const_cast<uint8_t*>(rows + r * rstr), k);
    for (int c = 0; c < NC; ++c) C[c] = gemm_parts(const_cast<uint8_t*>(cols + c * cstr), k);
    __m512 acc[NR][NC];
    for (int r = 0; r < NR; ++r)
        for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < kp; i += 64) {
        __m512i u[NR];
        __m512 f[NR];
        for (int r = 0; r < NR; ++r) {
            u[r] = _mm512_load_si512(R[r].q + i);
            f[r] = _mm512_load_ps(R[r].s + i / 4);
        }
        for (int c = 0; c < NC; ++c) {
            const __m512i x = _mm512_load_si512(C[c].q + i);
            const __m512 dx = _mm512_load_ps(C[c].s + i / 4);
            for (int r = 0; r < NR; ++r) {
                const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], x);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(f[r], dx), acc[r][c]);
            }
        }
    }
    // offsets: sum over 16-groups of o_w * (dx * sum q)
    for (int r = 0; r < NR; ++r)
        for (int c = 0; c < NC; ++c) {
            __m512 a = acc[r][c];
            for (int64_t g = 0; g < gemm_n_off(k); g += 16)
                a = _mm512_fmadd_ps(_mm512_load_ps(R[r].o + g), _mm512_load_ps(C[c].o + g), a);
            out[c * ldo + r] = _mm512_reduce_add_ps(a);
        }
}

template <int NR>
void block_nc(int64_t k, const uint8_t* rows, size_t rstr, const uint8_t* cols, size_t cstr, int nc, float* out, int64_t ldo) {
    switch (nc) {
        case 4: block<NR, 4>(k, rows, rstr, cols, cstr, out, ldo); return;
        case 3: block<NR, 3>(k, rows, rstr, cols, cstr, out, ldo); return;
        case 2: block<NR, 2>(k, rows, rstr, cols, cstr, out, ldo); return;
        default: block<NR, 1>(k, rows, rstr, cols, cstr, out, ldo); return;
    }
}

}  // namespace

void gemm_block_vnni(int64_t k, const uint8_t* rows, size_t rstr, int nr, const uint8_t* cols, size_t cstr, int nc, float* out,
                     int64_t ldo) {
    switch (nr) {
        case 4: block_nc<4>(k, rows, rstr, cols, cstr, nc, out, ldo); return;
        case 3: block_nc<3>(k, rows, rstr, cols, cstr, nc, out, ldo); return;
        case 2: block_nc<2>(k, rows, rstr, cols, cstr, nc, out, ldo); return;
        default: block_nc<1>(k, rows, rstr, cols, cstr, nc, out, ldo); return;
    }
}

}  // namespace minerva::cpu
