// tests/host_tensor.h: host tensors for the CPU kernel tests (test_cpu_ops, test_attention,
// test_gemm_amx, test_vulkan_ops): a tensor with its own bytes, random activations, random but
// valid weights of every type, and the normalised error ||a - b|| / ||b||.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/fp16.h"

namespace minerva::test {

// A tensor that owns its bytes (64 bytes of slack past the end, zeroed). Returned by value, the
// vector's buffer moves with it, so t.host stays valid; a copy must re-point t.host.
struct Buf {
    std::vector<uint8_t> bytes;
    Tensor t;
};

inline Buf make_buf(DType type, std::initializer_list<int64_t> ne) {
    Buf b;
    b.t.type = type;
    int i = 0;
    for (int64_t v : ne) b.t.ne[i++] = v;
    b.bytes.assign(b.t.nbytes() + 64, 0);
    b.t.host = b.bytes.data();
    return b;
}

inline void fill_normal(const Tensor& t, std::mt19937& rng, float sd = 1.f) {
    std::normal_distribution<float> nd(0.f, sd);
    for (int64_t i = 0; i < t.n_elements(); ++i) t.data<float>()[i] = nd(rng);
}

// Random but valid weights: n values of N(0, 0.5) for F32, F16 and BF16; for block types
// random quant bytes with sane positive fp16 scales written over each block's scale fields (a
// random fp16 could be inf or NaN). p holds row_bytes(type, n) bytes. Returns false for a type
// whose scale fields it does not know.
inline bool fill_random_weights(DType type, uint8_t* p, int64_t n, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 0.5f);
    std::uniform_real_distribution<float> scale(0.002f, 0.02f);
    auto* u16 = reinterpret_cast<uint16_t*>(p);
    switch (type) {
        case DType::F32: {
            auto* f = reinterpret_cast<float*>(p);
            for (int64_t i = 0; i < n; ++i) f[i] = nd(rng);
            return true;
        }
        case DType::F16:
            for (int64_t i = 0; i < n; ++i) u16[i] = cpu::f32_to_fp16(nd(rng));
            return true;
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) u16[i] = cpu::f32_to_bf16(nd(rng));
            return true;
        default: break;
    }
    const size_t nbytes = row_bytes(type, n);
    for (size_t i = 0; i < nbytes; ++i) p[i] = static_cast<uint8_t>(rng());
    const auto& info = dtype_info(type);
    auto put = [](uint8_t* blk, int off, float v) {
        const uint16_t h = cpu::f32_to_fp16(v);
        std::memcpy(blk + off, &h, 2);
    };
    for (int64_t b = 0; b < n / info.block_elems; ++b) {
        uint8_t* blk = p + b * info.block_bytes;
        switch (type) {
            case DType::Q4_0: case DType::Q5_0: case DType::Q8_0: put(blk, 0, scale(rng)); break;
            case DType::Q4_1: case DType::Q5_1: put(blk, 0, scale(rng)); put(blk, 2, -8 * scale(rng)); break;
            case DType::Q2_K: put(blk, 80, scale(rng) / 4); put(blk, 82, scale(rng) / 4); break;
            case DType::Q3_K: put(blk, 108, scale(rng) / 8); break;
            case DType::Q4_K: case DType::Q5_K: put(blk, 0, scale(rng) / 8); put(blk, 2, scale(rng) / 8); break;
            case DType::Q6_K: put(blk, 208, scale(rng) / 16); break;
            default: return false;
        }
    }
    return true;
}

// ||a - b|| / ||b|| over F32 tensors; INFINITY when a holds a non-finite value.
inline double rel_l2(const Tensor& a, const Tensor& b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.n_elements(); ++i) {
        const double d = static_cast<double>(a.data<float>()[i]) - b.data<float>()[i];
        num += d * d;
        den += static_cast<double>(b.data<float>()[i]) * b.data<float>()[i];
    }
    return std::isfinite(num) ? std::sqrt(num / std::max(den, 1e-30)) : INFINITY;
}

// The test-name suffix of a test parametrised by weight type: "Q4_K".
inline std::string dtype_param_name(const testing::TestParamInfo<DType>& info) { return std::string(dtype_name(info.param)); }

}  // namespace minerva::test
