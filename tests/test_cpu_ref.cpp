// tests/test_cpu_ref.cpp: the scalar reference itself: fp16/bf16 conversions (exhaustive against
// F16C), dequantization of hand-built blocks with known values for every type, and the
// reference ops on small cases worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/ref_ops.h"
#include "minerva/error.h"

using namespace minerva;
using namespace minerva::cpu;

TEST(Fp16, AllHalvesMatchF16C) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float a = fp16_to_f32(static_cast<uint16_t>(h));
        const float b = _cvtsh_ss(static_cast<uint16_t>(h));
        if (std::isnan(b)) {
            EXPECT_TRUE(std::isnan(a)) << h;
        } else {
            ASSERT_EQ(f32_bits(a), f32_bits(b)) << "half " << h;
            // and back: every non-NaN half round-trips
            ASSERT_EQ(f32_to_fp16(a), h);
        }
    }
}

TEST(Fp16, FloatToHalfMatchesF16C) {
    std::mt19937 rng(1);
    for (int i = 0; i < 2000000; ++i) {
        uint32_t bits = rng();
        float f = f32_from_bits(bits);
        if (std::isnan(f)) continue;
        ASSERT_EQ(f32_to_fp16(f), static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))) << std::hex << bits;
    }
    // edge cases: ties, overflow, smallest subnormals
    for (float f : {65504.f, 65519.f, 65520.f, 1e-8f, 2.98023224e-8f, 5.96046448e-8f, 6.1035156e-5f, 1.0009765625f, -0.f})
        EXPECT_EQ(f32_to_fp16(f), static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))) << f;
}

TEST(Bf16, RoundToNearestEven) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie -> even
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie -> even (up)
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808001u)), 0x3f81);
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
    EXPECT_EQ(bf16_to_f32(0xc0a0), -5.0f);
}

namespace {
uint16_t h(float f) { return f32_to_fp16(f); }
std::vector<float> deq(DType t, const void* p, int n) {
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, p, y.data(), n);
    return y;
}
}  // namespace

TEST(Dequant, Q4_0_Q4_1) {
    BlockQ4_0 b{};
    b.d = h(0.5f);
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    auto y = deq(DType::Q4_0, &b, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], (j - 8) * 0.5f);
        EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f);
    }
    BlockQ4_1 c{};
    c.d = h(2.f);
    c.m = h(-1.f);
    for (int j = 0; j < 16; ++j) c.qs[j] = static_cast<uint8_t>(j | (3 << 4));
    y = deq(DType::Q4_1, &c, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], j * 2.f - 1.f);
        EXPECT_EQ(y[j + 16], 5.f);
    }
}

TEST(Dequant, Q5_0_Q5_1_Q8_0) {
    BlockQ5_0 b{};
    b.d = h(1.f);
    const uint32_t qh = 0x80010003u;  // elements 0, 1, 16, 31 have the fifth bit
    std::memcpy(b.qh, &qh, 4);
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(1 | (2 << 4));
    auto y = deq(DType::Q5_0, &b, 32);
    for (int j = 0; j < 32; ++j) {
        const int hb = (qh >> j) & 1;
        const int q = (j < 16 ? 1 : 2) | (hb << 4);
        EXPECT_EQ(y[j], static_cast<float>(q - 16)) << j;
    }
    BlockQ5_1 c{};
    c.d = h(1.f);
    c.m = h(0.25f);
    std::memcpy(c.qh, &qh, 4);
    for (int j = 0; j < 16; ++j) c.qs[j] = static_cast<uint8_t>(j | (j << 4));
    y = deq(DType::Q5_1, &c, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>((j % 16) | (((qh >> j) & 1) << 4)) + 0.25f) << j;
    BlockQ8_0 e{};
    e.d = h(0.125f);
    for (int j = 0; j < 32; ++j) e.qs[j] = static_cast<int8_t>(j * 8 - 128);
    y = deq(DType::Q8_0, &e, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.125f);
}

// K types: encode known per-element quants and sub-block scales with a straightforward packer
// written from the layout description, then check dequantize_row gives scale * q - min.
TEST(Dequant, Q4_K_Q5_K) {
    std::mt19937 rng(7);
    uint8_t sc[8], mn[8], q[256];
    for (int j = 0; j < 8; ++j) sc[j] = rng() % 64, mn[j] = rng() % 64;
    for (int i = 0; i < 256; ++i) q[i] = rng() % 32;
    uint8_t packed[12] = {};
    for (int j = 0; j < 4; ++j) {
        packed[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
        packed[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
        packed[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    BlockQ4_K b4{};
    BlockQ5_K b5{};
    b4.d = b5.d = h(0.5f);
    b4.dmin = b5.dmin = h(0.25f);
    std::memcpy(b4.scales, packed, 12);
    std::memcpy(b5.scales, packed, 12);
    for (int i = 0; i < 256; ++i) {
        const int chunk = i / 64, l = i % 32, hi = (i / 32) % 2;
        uint8_t& byte4 = b4.qs[chunk * 32 + l];
        byte4 = static_cast<uint8_t>(byte4 | ((q[i] & 15) << (hi * 4)));
        uint8_t& byte5 = b5.qs[chunk * 32 + l];
        byte5 = static_cast<uint8_t>(byte5 | ((q[i] & 15) << (hi * 4)));
        if (q[i] & 16) b5.qh[l] = static_cast<uint8_t>(b5.qh[l] | (1 << (i / 32)));
    }
    auto y4 = deq(DType::Q4_K, &b4, 256);
    auto y5 = deq(DType::Q5_K, &b5, 256);
    for (int i = 0; i < 256; ++i) {
        const int s = i / 32;
        EXPECT_FLOAT_EQ(y4[i], 0.5f * sc[s] * (q[i] & 15) - 0.25f * mn[s]) << i;
        EXPECT_FLOAT_EQ(y5[i], 0.5f * sc[s] * q[i] - 0.25f * mn[s]) << i;
    }
}

TEST(Dequant, Q2_K_Q3_K_Q6_K) {
    std::mt19937 rng(9);
    // Q2_K: element i of half hf, group g = (i%128)/32, position l = i%32 -> qs[32hf + l] bits 2g.
    BlockQ2_K b2{};
    b2.d = h(1.f);
    b2.dmin = h(0.5f);
    uint8_t q2[256];
    for (int s = 0; s < 16; ++s) b2.scales[s] = static_cast<uint8_t>(rng());
    for (int i = 0; i < 256; ++i) {
        q2[i] = rng() % 4;
        b2.qs[32 * (i / 128) + i % 32] |= static_cast<uint8_t>(q2[i] << (2 * ((i % 128) / 32)));
    }
    auto y = deq(DType::Q2_K, &b2, 256);
    for (int i = 0; i < 256; ++i) {
        const int s = i / 16;
        EXPECT_FLOAT_EQ(y[i], 1.f * (b2.scales[s] & 15) * q2[i] - 0.5f * (b2.scales[s] >> 4)) << i;
    }
    // Q3_K: 3-bit q = low2 | hbit<<2, value q - 4; scales 6-bit, value s - 32.
    BlockQ3_K b3{};
    b3.d = h(0.25f);
    uint8_t q3[256], s3[16];
    for (int s = 0; s < 16; ++s) {
        s3[s] = rng() % 64;
        if (s < 8) b3.scales[s] |= s3[s] & 15; else b3.scales[s - 8] |= static_cast<uint8_t>((s3[s] & 15) << 4);
        b3.scales[8 + s % 4] |= static_cast<uint8_t>((s3[s] >> 4) << (2 * (s / 4)));
    }
    for (int i = 0; i < 256; ++i) {
        q3[i] = rng() % 8;
        b3.qs[32 * (i / 128) + i % 32] |= static_cast<uint8_t>((q3[i] & 3) << (2 * ((i % 128) / 32)));
        if (q3[i] & 4) b3.hmask[i % 32] |= static_cast<uint8_t>(1 << (i / 32));
    }
    y = deq(DType::Q3_K, &b3, 256);
    for (int i = 0; i < 256; ++i) EXPECT_FLOAT_EQ(y[i], 0.25f * (s3[i / 16] - 32) * (q3[i] - 4)) << i;
    // Q6_K: 6-bit q (value q - 32), int8 scales per 16.
    BlockQ6_K b6{};
    b6.d = h(0.125f);
    uint8_t q6[256];
    for (int s = 0; s < 16; ++s) b6.scales[s] = static_cast<int8_t>(rng() % 256 - 128);
    for (int i = 0; i < 256; ++i) {
        q6[i] = rng() % 64;
        const int hf = i / 128, r = i % 128, g = r / 32, l = r % 32;
        b6.ql[64 * hf + l + 32 * (g & 1)] |= static_cast<uint8_t>((q6[i] & 15) << (4 * (g >> 1)));
        b6.qh[32 * hf + l] |= static_cast<uint8_t>((q6[i] >> 4) << (2 * g));
    }
    y = deq(DType::Q6_K, &b6, 256);
    for (int i = 0; i < 256; ++i) EXPECT_FLOAT_EQ(y[i], 0.125f * b6.scales[i / 16] * (q6[i] - 32)) << i;
}

namespace {
Tensor view(DType t, std::initializer_list<int64_t> ne, void* p) {
    Tensor x;
    x.type = t;
    int i = 0;
    for (int64_t v : ne) x.ne[i++] = v;
    x.host = p;
    return x;
}
}  // namespace

TEST(RefOps, SmallCasesByHand) {
    // matmul: w [3, 2] rows (1,2,3) and (0,-1,1); x [3, 2] columns (1,1,1), (2,0,-1)
    std::vector<float> w = {1, 2, 3, 0, -1, 1}, x = {1, 1, 1, 2, 0, -1}, o(4);
    ref::matmul(view(DType::F32, {3, 2}, w.data()), view(DType::F32, {3, 2}, x.data()), view(DType::F32, {2, 2}, o.data()));
    EXPECT_EQ(o, (std::vector<float>{6, 0, -1, -1}));
    // rms_norm of (3, 4): rms = sqrt(12.5)
    std::vector<float> v = {3, 4}, g = {1, 2}, r(2);
    ref::rms_norm(view(DType::F32, {2}, v.data()), view(DType::F32, {2}, g.data()), view(DType::F32, {2}, r.data()), 0.f);
    EXPECT_NEAR(r[0], 3 / std::sqrt(12.5f), 1e-6);
    EXPECT_NEAR(r[1], 8 / std::sqrt(12.5f), 1e-6);
    // rope: pos 1, n_rot 2, base 10000: pair rotated by 1 radian
    std::vector<float> q = {1, 0, 5, 6};
    int32_t pos = 1;
    ref::rope(view(DType::F32, {4, 1, 1}, q.data()), view(DType::I32, {1}, &pos), RopeParams{2, 10000.f, 1.f}, nullptr);
    EXPECT_NEAR(q[0], std::cos(1.0), 1e-6);
    EXPECT_NEAR(q[1], std::sin(1.0), 1e-6);
    EXPECT_EQ(q[2], 5);
    EXPECT_EQ(q[3], 6);
    // attention over two cells with equal keys: the output is the mean of the values
    std::vector<float> kc = {1, 0, 1, 0}, vc = {2, 4, 6, 8}, qq = {3, 3}, out(2);
    int32_t span[2] = {0, 2};
    ref::attention(view(DType::F32, {2, 1, 1}, qq.data()), view(DType::F32, {2, 2}, kc.data()),
                   view(DType::F32, {2, 2}, vc.data()), view(DType::I32, {2, 1}, span), view(DType::F32, {2, 1, 1}, out.data()),
                   AttentionParams{1, 1, 2, 0.5f});
    EXPECT_FLOAT_EQ(out[0], 4);
    EXPECT_FLOAT_EQ(out[1], 6);
}

TEST(RefOps, BadInputThrows) {
    std::vector<float> t(8), o(4);
    int32_t id = 5;
    EXPECT_THROW(ref::get_rows(view(DType::F32, {4, 2}, t.data()), view(DType::I32, {1}, &id), view(DType::F32, {4, 1}, o.data())),
                 Error);
    EXPECT_THROW(ref::matmul(view(DType::F32, {4, 2}, t.data()), view(DType::F32, {3, 1}, o.data()), view(DType::F32, {2, 1}, o.data())),
                 Error);
    int32_t span[2] = {1, 2};
    EXPECT_THROW(ref::attention(view(DType::F32, {4, 1, 1}, o.data()), view(DType::F32, {4, 2}, t.data()),
                                view(DType::F32, {4, 2}, t.data()), view(DType::I32, {2, 1}, span),
                                view(DType::F32, {4, 1, 1}, o.data()), AttentionParams{1, 1, 4, 0.5f}),
                 Error);
}
