// kernels/cpu/fp16.h: IEEE half and bfloat16 conversions.
// The scalar bit-twiddling versions are the reference (exact, portable, constexpr-friendly);
// hot loops use F16C (part of the x86-64 baseline this project builds for) via the *_fast forms.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace minerva::cpu {

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// Half -> float, exact for every input (normals, subnormals, inf, NaN).
inline float fp16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13));  // inf / NaN
    if (exp == 0) {
        if (man == 0) return f32_from_bits(sign);
        // subnormal: value = man * 2^-24
        float v = static_cast<float>(man) * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

// Float -> half with round-to-nearest-even; overflow gives inf, NaN stays NaN.
inline uint16_t f32_to_fp16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00);
    if (ax >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65536: inf
    if (ax < 0x38800000u) {                         // below the smallest normal half: subnormal
        if (ax < 0x33000000u) return sign;          // < 2^-25: rounds to zero
        const uint32_t e = ax >> 23;
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // 14..24: value = m * 2^(e-150) = hm * 2^-24
        uint32_t hm = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1))) ++hm;
        return sign | static_cast<uint16_t>(hm);
    }
    uint32_t r = ax - 0x38000000u;  // rebias exponent (127 -> 15)
    const uint32_t rem = r & 0x1fffu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) ++r;  // carry may bump the exponent: fine
    return sign | static_cast<uint16_t>(r);
}

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

// Float -> bfloat16 with round-to-nearest-even; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// F16C forms for hot loops (identical results to the scalar ones).
inline float fp16_to_f32_fast(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t f32_to_fp16_fast(float f) { return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

}  // namespace minerva::cpu
