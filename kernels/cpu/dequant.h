// kernels/cpu/dequant.h: the GGUF/ggml weight block layouts and their scalar dequantization.
// The block layouts are format facts (the bytes in the file); the code is ours.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

constexpr int QK = 32;     // elements per block of the 32-element types
constexpr int QK_K = 256;  // elements per super-block of the K types

#pragma pack(push, 1)
struct BlockQ4_0 { uint16_t d; uint8_t qs[QK / 2]; };                 // x = (q - 8) * d
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[QK / 2]; };              // x = q * d + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; };  // x = (q5 - 16) * d
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[QK]; };                      // x = q * d
// K types: 256 elements in 16 or 8 sub-blocks with quantized per-sub-block scales.
struct BlockQ2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block (12 packed bytes).
inline void k4_scale_min(int j, const uint8_t* s, uint8_t& sc, uint8_t& mn) {
    if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
    } else {
        sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

// The 16 signed 6-bit scales (already minus 32) of a Q3_K block.
void q3k_scales(const uint8_t packed[12], int8_t out[16]);

// Converts n elements (a multiple of the type's block size) of a row of type t to f32.
// Supports every type dtype_supported_for_compute() accepts; asserts on others.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

}  // namespace minerva::cpu
