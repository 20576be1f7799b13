// kernels/cpu/dequant.cpp: scalar dequantization of every compute weight type.
#include "cpu/dequant.h"

#include <cassert>
#include <cstring>
#include <type_traits>

#include "cpu/fp16.h"

namespace minerva::cpu {
namespace {

void deq_f16(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}
void deq_bf16(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}

void deq_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = static_cast<float>((b[i].qs[j] & 0x0f) - 8) * d;
            y[j + QK / 2] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void deq_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK) {
        const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = static_cast<float>(b[i].qs[j] & 0x0f) * d + m;
            y[j + QK / 2] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
        }
    }
}

// Q5: bit j of the 32-bit qh is the fifth bit of element j.
void deq_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK) {
        const float d = fp16_to_f32(b[i].d);
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < QK / 2; ++j) {
            const int lo = (b[i].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4);
            const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
            y[j] = static_cast<float>(lo - 16) * d;
            y[j + QK / 2] = static_cast<float>(hi - 16) * d;
        }
    }
}

void deq_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK) {
        const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < QK / 2; ++j) {
            const int lo = (b[i].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4);
            const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
            y[j] = static_cast<float>(lo) * d + m;
            y[j + QK / 2] = static_cast<float>(hi) * d + m;
        }
    }
}

void deq_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
    }
}

// Q2_K: 16 sub-blocks of 16; scales byte = (min << 4) | scale; 2-bit quants packed so that
// byte l of a 32-byte group holds elements l, l+32, l+64, l+96 of its 128-element half.
void deq_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {
                    const uint8_t sc = b[i].scales[is++];
                    const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

}  // namespace

void q3k_scales(const uint8_t p[12], int8_t out[16]) {
    // Low 4 bits: bytes 0..7 (two nibbles each); high 2 bits: bytes 8..11 (four pairs each).
    for (int j = 0; j < 16; ++j) {
        const int lo = (j < 8) ? (p[j] & 0x0f) : (p[j - 8] >> 4);
        const int hi = (p[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        out[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
    }
}

namespace {

// Q3_K: 2 low bits in qs (packed like Q2_K), the third bit in hmask (bit k of byte l covers
// element l + 32k); a clear high bit means subtract 4.
void deq_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_f32(b[i].d);
        int8_t sc[16];
        q3k_scales(b[i].scales, sc);
        const uint8_t* q = b[i].qs;
        int is = 0;
        uint8_t m = 1;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d * static_cast<float>(sc[is++]);
                    for (int l = 0; l < 16; ++l) {
                        const int k = l + 16 * part;
                        const int v = ((q[k] >> shift) & 3) - ((b[i].hmask[k] & m) ? 0 : 4);
                        *y++ = dl * static_cast<float>(v);
                    }
                }
            }
        }
    }
}

// Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; element l of sub-block s is the
// low (s even) or high (s odd) nibble of qs[l] of its 64-element pair, and for Q5_K bit s of
// qh[l] above it (for Q4_K the fifth bit is 0 and folds away).
template <class Block>
void deq_q45_k(const Block* b, float* y, int64_t nb) {
    constexpr bool kHigh = std::is_same_v<Block, BlockQ5_K>;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        auto high = [&](int l, int s) -> int {
            if constexpr (kHigh) return ((b[i].qh[l] >> s) & 1) << 4;
            else return 0;
        };
        for (int j = 0; j < 4; ++j, q += 32) {
            uint8_t s0, m0, s1, m1;
            k4_scale_min(2 * j, b[i].scales, s0, m0);
            k4_scale_min(2 * j + 1, b[i].scales, s1, m1);
            const float d0 = d * s0, mm0 = dmin * m0, d1 = d * s1, mm1 = dmin * m1;
            for (int l = 0; l < 32; ++l) *y++ = d0 * static_cast<float>((q[l] & 0x0f) | high(l, 2 * j)) - mm0;
            for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((q[l] >> 4) | high(l, 2 * j + 1)) - mm1;
        }
    }
}

// Q6_K: per 128-element half, ql holds 64 bytes of low nibbles and qh 32 bytes of 2-bit pairs;
// element l + 32k takes ql[l + 32(k&1)] nibble (k>>1) and qh[l] bits 2k..2k+1.
void deq_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_f32(b[i].d);
        const uint8_t* ql = b[i].ql;
        const uint8_t* qh = b[i].qh;
        const int8_t* sc = b[i].scales;
        for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    switch (t) {
        case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
        case DType::F16: deq_f16(static_cast<const uint16_t*>(src), dst, n); return;
        case DType::BF16: deq_bf16(static_cast<const uint16_t*>(src), dst, n); return;
        case DType::Q4_0: deq_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / QK); return;
        case DType::Q4_1: deq_q4_1(static_cast<const BlockQ4_1*>(src), dst, n / QK); return;
        case DType::Q5_0: deq_q5_0(static_cast<const BlockQ5_0*>(src), dst, n / QK); return;
        case DType::Q5_1: deq_q5_1(static_cast<const BlockQ5_1*>(src), dst, n / QK); return;
        case DType::Q8_0: deq_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / QK); return;
        case DType::Q2_K: deq_q2_k(static_cast<const BlockQ2_K*>(src), dst, n / QK_K); return;
        case DType::Q3_K: deq_q3_k(static_cast<const BlockQ3_K*>(src), dst, n / QK_K); return;
        case DType::Q4_K: deq_q45_k(static_cast<const BlockQ4_K*>(src), dst, n / QK_K); return;
        case DType::Q5_K: deq_q45_k(static_cast<const BlockQ5_K*>(src), dst, n / QK_K); return;
        case DType::Q6_K: deq_q6_k(static_cast<const BlockQ6_K*>(src), dst, n / QK_K); return;
        default: assert(false && "dequantize_row: unsupported type"); return;
    }
}

}  // namespace minerva::cpu
