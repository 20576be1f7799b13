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
            const __m512i bias = _mm512_load_si512(C[c].b + i / 4);
            for (int r = 0; r < NR; ++r) {
                const __m512i d = _mm512_dpbusd_epi32(bias, u[r], x);
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

// K mode (gemm.h): per (row, column) the very operations of the K row kernels
// (vec_dot_avx512.cpp), so a prefill column is bit-identical to its decode.
template <int NR, int NC, bool Six>
void block_k(int64_t k, const uint8_t* rows, size_t rstr, const uint8_t* cols, size_t cstr, float* out, int64_t ldo) {
    GemmRow R[NR], C[NC];
    for (int r = 0; r < NR; ++r) R[r] = gemm_parts(const_cast<uint8_t*>(rows + r * rstr), k);
    for (int c = 0; c < NC; ++c) C[c] = gemm_parts(const_cast<uint8_t*>(cols + c * cstr), k);
    __m512 acc[NR][NC];
    float accm[NR][NC];
    for (int r = 0; r < NR; ++r)
        for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps(), accm[r][c] = 0;
    for (int64_t b = 0; b < k / 256; ++b) {
        __m512i sumi[NR][NC];
        for (int r = 0; r < NR; ++r)
            for (int c = 0; c < NC; ++c) {
                sumi[r][c] = _mm512_setzero_si512();
                if constexpr (Six) {
                    const __m128i S = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint8_t*>(R[r].o + 16 * b) + 8));
                    const __m256i bs = _mm256_load_si256(reinterpret_cast<const __m256i*>(C[c].o + 16 * b + 8));
                    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(S), bs), 5);
                    sumi[r][c] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(bias));
                }
            }
        for (int64_t i = 256 * b; i < 256 * b + 256; i += 64) {
            __m512i u[NR], sc[NR];
            for (int r = 0; r < NR; ++r) {
                u[r] = _mm512_load_si512(R[r].q + i);
                sc[r] = _mm512_load_si512(R[r].s + i / 4);
            }
            for (int c = 0; c < NC; ++c) {
                const __m512i x = _mm512_load_si512(C[c].q + i);
                for (int r = 0; r < NR; ++r)
                    sumi[r][c] = _mm512_add_epi32(sumi[r][c], _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], x), sc[r]));
            }
        }
        for (int r = 0; r < NR; ++r)
            for (int c = 0; c < NC; ++c) {
                const float dw = R[r].o[16 * b], dx = C[c].o[16 * b];
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r][c]), _mm512_set1_ps(dw * dx), acc[r][c]);
                if constexpr (!Six) {
                    const __m256i mins = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(R[r].o + 16 * b + 2));
                    const __m256i pair_sums = _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(C[c].o + 16 * b + 8)),
                                                                _mm256_set1_epi16(1));
                    const int msum = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(_mm256_mullo_epi32(mins, pair_sums)));
                    accm[r][c] += R[r].o[16 * b + 1] * dx * static_cast<float>(msum);
                }
            }
    }
    for (int r = 0; r < NR; ++r)
        for (int c = 0; c < NC; ++c) out[c * ldo + r] = Six ? _mm512_reduce_add_ps(acc[r][c]) : _mm512_reduce_add_ps(acc[r][c]) - accm[r][c];
}

template <int NR, bool Six>
void block_k_nc(int64_t k, const uint8_t* rows, size_t rstr, const uint8_t* cols, size_t cstr, int nc, float* out, int64_t ldo) {
    for (int c = 0; c < nc; c += 2) {
        if (nc - c >= 2) block_k<NR, 2, Six>(k, rows, rstr, cols + c * cstr, cstr, out + c * ldo, ldo);
        else block_k<NR, 1, Six>(k, rows, rstr, cols + c * cstr, cstr, out + c * ldo, ldo);
    }
}

template <int NR>
void block_nc(GemmMode mode, int64_t k, const uint8_t* rows, size_t rstr, const uint8_t* cols, size_t cstr, int nc, float* out,
              int64_t ldo) {
    if (mode == GemmMode::K45) return block_k_nc<NR, false>(k, rows, rstr, cols, cstr, nc, out, ldo);
    if (mode == GemmMode::K6) return block_k_nc<NR, true>(k, rows, rstr, cols, cstr, nc, out, ldo);
    switch (nc) {
        case 4: block<NR, 4>(k, rows, rstr, cols, cstr, out, ldo); return;
        case 3: block<NR, 3>(k, rows, rstr, cols, cstr, out, ldo); return;
        case 2: block<NR, 2>(k, rows, rstr, cols, cstr, out, ldo); return;
        default: block<NR, 1>(k, rows, rstr, cols, cstr, out, ldo); return;
    }
}

}  // namespace

void gemm_block_vnni(GemmMode mode, int64_t k, const uint8_t* rows, size_t rstr, int nr, const uint8_t* cols, size_t cstr, int nc,
                     float* out, int64_t ldo) {
    switch (nr) {
        case 4: block_nc<4>(mode, k, rows, rstr, cols, cstr, nc, out, ldo); return;
        case 3: block_nc<3>(mode, k, rows, rstr, cols, cstr, nc, out, ldo); return;
        case 2: block_nc<2>(mode, k, rows, rstr, cols, cstr, nc, out, ldo); return;
        default: block_nc<1>(mode, k, rows, rstr, cols, cstr, nc, out, ldo); return;
    }
}

}  // namespace minerva::cpu
