// kernels/cpu/qact.h: activations quantized to 8 bits for the integer dot products.
//
// Two layouts, chosen by the weight type:
// - Q8Pair: two 32-element blocks (64 activations) with one scale per block. qs holds the 64
//   int8 values in order; bias[8b] = -c * sum(qs of block b) (other lanes 0), where c is the
//   offset the weight kernel adds to make its quants unsigned (8 for Q4_0, 16 for Q5_0, 128 for
//   Q8_0 on VNNI, 0 where no offset is used); dx[8b .. 8b+7] = the scale of block b, repeated so
//   a 512-bit kernel loads the per-lane scales of two blocks at once. A row of k activations
//   takes ceil(k/64) pairs; an odd last block is zero-padded.
// - Q8Oct: eight 32-element blocks (256 activations) arranged for weights whose low nibbles hold
//   elements 0..15 of a block and high nibbles 16..31 (Q4_0): qs[128h + 16b + i] = element i of
//   block 4h+b and qs[128h + 64 + 16b + i] = element 16+i; bias[16h + 4b] = -c * sum(block 4h+b)
//   (other lanes 0); dx[b] = the scale of block b. A row takes ceil(k/256); blocks past the end
//   of the row are zero (quants, bias and scale).
// - Q8KBlock: 256 activations with one scale and the sums of each 16 (for the K types' mins).
//   In "nibble order" (quantize_q8k_nib, for the AVX-512 Q4_K kernel) the 32-element sub-blocks
//   of qs are stored in the order 0 2 1 3 4 6 5 7, the order in which one 64-byte load of Q4_K
//   quants holds them as low/high nibbles; bsums stay in element order.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minerva::cpu {

struct alignas(64) Q8Pair {
    int8_t qs[64];
    int32_t bias[16];
    float dx[16];
};
static_assert(sizeof(Q8Pair) == 192);

struct alignas(64) Q8Oct {
    int8_t qs[256];
    int32_t bias[32];
    float dx[8];
    float pad[8];
};
static_assert(sizeof(Q8Oct) == 448);

struct alignas(64) Q8KBlock {
    int8_t qs[256];
    int16_t bsums[16];
    float d;
};
static_assert(sizeof(Q8KBlock) == 320);

inline size_t q8pair_count(int64_t k) { return static_cast<size_t>((k + 63) / 64); }
inline size_t q8oct_count(int64_t k) { return static_cast<size_t>((k + 255) / 256); }
inline size_t q8k_count(int64_t k) { return static_cast<size_t>(k / 256); }

// Quantizes k floats (k a multiple of 32, resp. 256). The scalar and AVX2 forms give identical
// bytes (round half away from zero on x/d with d = amax/127).
void quantize_q8pair(const float* x, int64_t k, int bias_c, Q8Pair* out);
void quantize_q8oct(const float* x, int64_t k, int bias_c, Q8Oct* out);
void quantize_q8k(const float* x, int64_t k, Q8KBlock* out);
void quantize_q8k_nib(const float* x, int64_t k, Q8KBlock* out);

// The block quantizer both layouts (and the prefill GEMM, gemm.h) are built on, so that every
// path turns the same activations into the same bytes: n floats (a multiple of 32, at most 256)
// get one scale d = amax/127 (returned) and int8 quants q (round half away from zero on x/d);
// sums16[i] is the sum of the quants of elements [16i, 16i+16).
float quantize_i8_block(const float* x, int n, int8_t* q, int* sums16);

}  // namespace minerva::cpu
