// kernels/cpu/gemm.h: the prefill (n > 1) integer GEMM for every quantized weight type.
//
// Weights of any quantized type are unpacked, one tile of rows at a time, into a common form:
// unsigned 8-bit quants u, a float scale per group of 4 (one 32-bit lane of vpdpbusd) and a
// float offset per 16, so that w = f * u + o. The activations are quantized once per call to
// signed 8-bit blocks with a float scale per block (repeated per lane) and the scaled sums of
// each 16. The blocks are those of the decode (n = 1) kernels' activations (qact.h), made by the
// same quantizer: 32 elements for the 32-element weight types (Q8Pair), 256 for the K types
// (Q8KBlock). For the float mode (below) then
//     dot(w, x) = sum_lanes f * dx * dpbusd(u, q)  +  sum_16 o * dx * sum(q)
// The unpacking is paid once per tile and reused by every column, and a 4x4 register block of
// rows x columns shares each load; the inner loop is vpdpbusd, cvt, mul, fma per 64 products.
// The K mode follows the K row kernels instead (integer sub-block scales, one float step per 256),
// and the float mode folds the -c * sum(q) offset of Q4_0/Q5_0/Q8_0 into the integer sum as the
// row kernels do: for the types with a row kernel, prefill is bit-identical to decode.
#pragma once
#include <cstddef>
#include <cstdint>

#include "minerva/types.h"

namespace minerva::cpu {

// k rounded up to a multiple of 64 (the unpacked rows and columns are zero-padded).
inline int64_t gemm_kpad(int64_t k) { return (k + 63) / 64 * 64; }

// Entries of the per-16 offset array, padded to whole 64-byte vectors.
inline int64_t gemm_n_off(int64_t k) { return (gemm_kpad(k) / 16 + 15) / 16 * 16; }

// Bytes of one unpacked weight row / quantized activation column of length k (a multiple of 64).
inline size_t gemm_row_bytes(int64_t k) {
    const int64_t kp = gemm_kpad(k);
    // u8 q[kp], f32 s[kp/4], f32 o[n_off], s32 b[kp/4]
    return static_cast<size_t>(kp + kp + 4 * gemm_n_off(k) + kp);
}

// The parts of an unpacked row / column at p (64-byte aligned if p is). Two modes:
// - Float (Q4_0 .. Q3_K): s = per lane of 4 the weight scale f / activation scale dx; o = per 16
//   the weight offset / dx * sum(q); b (columns only) = the integer bias -c * sum(q) of each
//   32-block in its first lane, for the types whose offset is -c * f (Q4_0, Q5_0, Q8_0: their o
//   is then 0), exactly as the row kernels fold it in (qact.h Q8Pair).
// - K (Q4_K, Q5_K, Q6_K): the arithmetic of the K row kernels, integer within each 256-block:
//   rows: s = int32 sub-block scale per lane; o + 16 * b (64 bytes per 256-block b) = float d,
//   then float dmin and int32 mins[8] (Q4_K/Q5_K) or int8 scales[16] at byte 8 (Q6_K).
//   columns: o + 16 * b = float d, int16 sums of each 16 at byte 32.
struct GemmRow {
    uint8_t* q;  // weights: u8 quants; activations: int8 quants
    float* s;
    float* o;
    int32_t* b;
};
inline GemmRow gemm_parts(void* p, int64_t k) {
    const int64_t kp = gemm_kpad(k);
    uint8_t* b = static_cast<uint8_t*>(p);
    return {b, reinterpret_cast<float*>(b + kp), reinterpret_cast<float*>(b + kp + kp),
            reinterpret_cast<int32_t*>(b + kp + kp + 4 * gemm_n_off(k))};
}

enum class GemmMode { Float, K45, K6 };
GemmMode gemm_mode(DType t);

bool gemm_supported(DType t);  // quantized types with an unpacker (all of them) on a VNNI CPU
void gemm_unpack_row(DType t, const void* src, int64_t k, void* dst);
// Quantizes a column of k floats for weight type t: blocks of 256 for the K types, 32 otherwise,
// by the row kernels' quantizer (qact.h), so the quants are those decode uses.
void gemm_quantize_col(DType t, const float* x, int64_t k, void* dst);

// out[j * ldo + r] = dot(row r, col j) for r < nr (<= 4), j < nc (<= 4). AVX-512 VNNI.
void gemm_block_vnni(GemmMode mode, int64_t k, const uint8_t* rows, size_t row_stride, int nr, const uint8_t* cols, size_t col_stride,
                     int nc, float* out, int64_t ldo);

}  // namespace minerva::cpu
