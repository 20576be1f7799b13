// kernels/cpu/gemm_unpack.cpp: unpacking of every quantized type into the GEMM form (gemm.h),
// and the activation quantization for it. Scalar: paid once per tile row, reused by n columns.
#include <cmath>
#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/gemm.h"
#include "cpu/qact.h"

namespace minerva::cpu {
namespace {

// Writes u for elements [i, i+n) and sets f for their lanes and o for their 16-groups.
struct Out {
    GemmRow p;
    void group(int64_t i, int n, float f, float o) {
        for (int64_t l = i / 4; l < (i + n) / 4; ++l) p.s[l] = f;
        for (int64_t g = i / 16; g < (i + n) / 16; ++g) p.o[g] = o;
    }
};

}  // namespace

bool gemm_supported(DType t) {
    if (!features().avx512_vnni) return false;
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q2_K:
        case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
            return true;
        default:
            return false;
    }
}

void gemm_unpack_row(DType t, const void* src, int64_t k, void* dst) {
    const int64_t kp = gemm_kpad(k);
    Out out{gemm_parts(dst, k)};
    uint8_t* u = out.p.q;
    const uint8_t* s = static_cast<const uint8_t*>(src);
    // zero padding: u = 0 and f = o = 0 beyond k
    std::memset(u + k, 0, static_cast<size_t>(kp - k));
    for (int64_t l = k / 4; l < kp / 4; ++l) out.p.s[l] = 0;
    for (int64_t g = k / 16; g < gemm_n_off(k); ++g) out.p.o[g] = 0;
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: {
            const bool has_min = t == DType::Q4_1 || t == DType::Q5_1, five = t == DType::Q5_0 || t == DType::Q5_1;
            const size_t bb = dtype_info(t).block_bytes;
            for (int64_t b = 0; b < k / 32; ++b) {
                const uint8_t* blk = s + b * bb;
                uint16_t dh, mh = 0;
                std::memcpy(&dh, blk, 2);
                if (has_min) std::memcpy(&mh, blk + 2, 2);
                uint32_t qh = 0;
                if (five) std::memcpy(&qh, blk + (has_min ? 4 : 2), 4);
                const uint8_t* qs = blk + (has_min ? 4 : 2) + (five ? 4 : 0);
                for (int j = 0; j < 16; ++j) {
                    u[32 * b + j] = static_cast<uint8_t>((qs[j] & 15) | (five ? ((qh >> j) & 1) << 4 : 0));
                    u[32 * b + j + 16] = static_cast<uint8_t>((qs[j] >> 4) | (five ? ((qh >> (j + 16)) & 1) << 4 : 0));
                }
                const float d = fp16_to_f32(dh);
                const float o = has_min ? fp16_to_f32(mh) : 0.f;  // Q4_0/Q5_0: in the column bias
                out.group(32 * b, 32, d, o);
            }
            return;
        }
        case DType::Q8_0:
            for (int64_t b = 0; b < k / 32; ++b) {
                const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(s) + b;
                for (int j = 0; j < 32; ++j) u[32 * b + j] = static_cast<uint8_t>(blk->qs[j] + 128);
                const float d = fp16_to_f32(blk->d);
                out.group(32 * b, 32, d, 0.f);  // -128 * d: in the column bias
            }
            return;
        case DType::Q2_K:
            for (int64_t b = 0; b < k / 256; ++b) {
                const BlockQ2_K* blk = reinterpret_cast<const BlockQ2_K*>(s) + b;
                const float d = fp16_to_f32(blk->d), dmin = fp16_to_f32(blk->dmin);
                uint8_t* ub = u + 256 * b;
                int is = 0;
                for (int half = 0; half < 2; ++half)
                    for (int shift = 0, e = 128 * half; shift < 8; shift += 2)
                        for (int part = 0; part < 2; ++part, e += 16) {
                            const uint8_t sc = blk->scales[is++];
                            for (int l = 0; l < 16; ++l) ub[e + l] = (blk->qs[32 * half + l + 16 * part] >> shift) & 3;
                            out.group(256 * b + e, 16, d * static_cast<float>(sc & 15), -dmin * static_cast<float>(sc >> 4));
                        }
            }
            return;
        case DType::Q3_K:
            for (int64_t b = 0; b < k / 256; ++b) {
                const BlockQ3_K* blk = reinterpret_cast<const BlockQ3_K*>(s) + b;
                const float d = fp16_to_f32(blk->d);
                int8_t sc[16];
                q3k_scales(blk->scales, sc);
                uint8_t* ub = u + 256 * b;
                int is = 0, bit = 0;
                for (int half = 0; half < 2; ++half)
                    for (int shift = 0, e = 128 * half; shift < 8; shift += 2, ++bit)
                        for (int part = 0; part < 2; ++part, e += 16) {
                            for (int l = 0; l < 16; ++l) {
                                const int kk = l + 16 * part;
                                // value = low2 - (hbit ? 0 : 4), stored as value + 4 in 0..7
                                ub[e + l] = static_cast<uint8_t>(((blk->qs[32 * half + kk] >> shift) & 3) + ((blk->hmask[kk] >> bit) & 1) * 4);
                            }
                            const float f = d * static_cast<float>(sc[is++]);
                            out.group(256 * b + e, 16, f, -4.f * f);
                        }
            }
            return;
        case DType::Q4_K: case DType::Q5_K: {
            const bool five = t == DType::Q5_K;
            const size_t bb = dtype_info(t).block_bytes;
            for (int64_t b = 0; b < k / 256; ++b) {
                const uint8_t* blk = s + b * bb;
                uint16_t dh, mh;
                std::memcpy(&dh, blk, 2);
                std::memcpy(&mh, blk + 2, 2);
                const float d = fp16_to_f32(dh), dmin = fp16_to_f32(mh);
                const uint8_t* qh = blk + 16;
                const uint8_t* qs = blk + (five ? 48 : 16);
                uint8_t* ub = u + 256 * b;
                for (int j = 0; j < 4; ++j) {
                    for (int l = 0; l < 32; ++l) {
                        ub[64 * j + l] = static_cast<uint8_t>((qs[32 * j + l] & 15) | (five ? ((qh[l] >> (2 * j)) & 1) << 4 : 0));
                        ub[64 * j + 32 + l] = static_cast<uint8_t>((qs[32 * j + l] >> 4) | (five ? ((qh[l] >> (2 * j + 1)) & 1) << 4 : 0));
                    }
                    for (int h = 0; h < 2; ++h) {
                        uint8_t sc, mn;
                        k4_scale_min(2 * j + h, blk + 4, sc, mn);
                        int32_t* sl = reinterpret_cast<int32_t*>(out.p.s) + (256 * b + 64 * j + 32 * h) / 4;
                        for (int l = 0; l < 8; ++l) sl[l] = sc;
                        reinterpret_cast<int32_t*>(out.p.o + 16 * b)[2 + 2 * j + h] = mn;
                    }
                }
                out.p.o[16 * b] = d;
                out.p.o[16 * b + 1] = dmin;
            }
            return;
        }
        case DType::Q6_K:
            for (int64_t b = 0; b < k / 256; ++b) {
                const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(s) + b;
                const float d = fp16_to_f32(blk->d);
                uint8_t* ub = u + 256 * b;
                for (int half = 0; half < 2; ++half) {
                    const uint8_t* ql = blk->ql + 64 * half;
                    const uint8_t* qh = blk->qh + 32 * half;
                    for (int l = 0; l < 32; ++l) {
                        ub[128 * half + l] = static_cast<uint8_t>((ql[l] & 15) | ((qh[l] & 3) << 4));
                        ub[128 * half + l + 32] = static_cast<uint8_t>((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
                        ub[128 * half + l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                        ub[128 * half + l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                    }
                }
                int32_t* sl = reinterpret_cast<int32_t*>(out.p.s) + 64 * b;
                for (int l = 0; l < 64; ++l) sl[l] = blk->scales[l / 4];
                out.p.o[16 * b] = d;
                std::memcpy(reinterpret_cast<uint8_t*>(out.p.o + 16 * b) + 8, blk->scales, 16);
            }
            return;
        default:
            return;
    }
}

GemmMode gemm_mode(DType t) {
    switch (t) {
        case DType::Q4_K: case DType::Q5_K: return GemmMode::K45;
        case DType::Q6_K: return GemmMode::K6;
        default: return GemmMode::Float;
    }
}

void gemm_quantize_col(DType t, const float* x, int64_t k, void* dst) {
    const int64_t kp = gemm_kpad(k);
    GemmRow p = gemm_parts(dst, k);
    int8_t* q = reinterpret_cast<int8_t*>(p.q);
    std::memset(q + k, 0, static_cast<size_t>(kp - k));
    int sums[16];
    if (gemm_mode(t) != GemmMode::Float) {
        for (int64_t b = 0; b < k / 256; ++b) {
            p.o[16 * b] = quantize_i8_block(x + 256 * b, 256, q + 256 * b, sums);
            int16_t* bs = reinterpret_cast<int16_t*>(p.o + 16 * b + 8);
            for (int g = 0; g < 16; ++g) bs[g] = static_cast<int16_t>(sums[g]);
        }
        return;
    }
    // the offset the row kernels fold into the integer sum (qact.h): none for the types with mins
    const int c = t == DType::Q4_0 ? 8 : t == DType::Q5_0 ? 16 : t == DType::Q8_0 ? 128 : 0;
    for (int64_t l = k / 4; l < kp / 4; ++l) p.s[l] = 0, p.b[l] = 0;
    for (int64_t g = k / 16; g < gemm_n_off(k); ++g) p.o[g] = 0;
    for (int64_t b = 0; b < k / 32; ++b) {
        const int64_t e = 32 * b;
        const float d = quantize_i8_block(x + e, 32, q + e, sums);
        for (int l = 0; l < 8; ++l) p.s[e / 4 + l] = d, p.b[e / 4 + l] = 0;
        p.b[e / 4] = -c * (sums[0] + sums[1]);
        p.o[e / 16] = d * static_cast<float>(sums[0]);
        p.o[e / 16 + 1] = d * static_cast<float>(sums[1]);
    }
}

}  // namespace minerva::cpu
