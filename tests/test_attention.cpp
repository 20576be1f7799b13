// tests/test_attention.cpp: the fused CPU attention against the scalar reference across head
// sizes 32-256 (the register-blocked AVX-512 sizes and one it does not block, 48), GQA ratios,
// F16, F32, Q8_0 and Q4_0 caches, causal prefill tiles, decode at contexts up to 16k (split over
// threads and merged), sliding-window spans and softcapping.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend.h"
#include "cpu/cpu_features.h"
#include "cpu/ref_ops.h"
#include "host_tensor.h"
#include "minerva/error.h"

using namespace minerva;
using minerva::test::Buf;
using minerva::test::fill_normal;
using minerva::test::make_buf;
using minerva::test::rel_l2;

namespace {

struct Case {
    int n_head, n_head_kv, head_dim;
    DType cache;
    int64_t n_past;    // cells already in the sequence before the batch
    int64_t n_tokens;  // tokens of the batch (consecutive positions, causal)
    int window;        // sliding window (0: none)
    float softcap;
};

std::string describe(const Case& c) {
    return "heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " hd " + std::to_string(c.head_dim) +
           " " + std::string(dtype_name(c.cache)) + " past " + std::to_string(c.n_past) + " tokens " +
           std::to_string(c.n_tokens) + " window " + std::to_string(c.window) + " softcap " + std::to_string(c.softcap);
}

// Runs one case on a CPU backend with `threads` threads and on the reference; returns the
// relative L2 error. The batch sits in the second of two sequences (cells offset by n_ctx) so
// spans never start at 0.
double run_case(const Case& c, int threads, std::mt19937& rng) {
    auto be = make_cpu_backend(threads);
    const int64_t n_ctx = c.n_past + c.n_tokens, cells = 2 * n_ctx;
    const int64_t kv_dim = static_cast<int64_t>(c.head_dim) * c.n_head_kv;
    Buf kf = make_buf(DType::F32, {kv_dim, cells}), vf = make_buf(DType::F32, {kv_dim, cells}), rows = make_buf(DType::I32, {cells});
    fill_normal(kf.t, rng, 1.5f);
    fill_normal(vf.t, rng, 1.f);
    for (int64_t i = 0; i < cells; ++i) rows.t.data<int32_t>()[i] = static_cast<int32_t>(i);
    Buf kc = make_buf(c.cache, {kv_dim, cells}), vc = make_buf(c.cache, {kv_dim, cells});
    cpu::ref::kv_store(kf.t, vf.t, kc.t, vc.t, rows.t);
    Buf q = make_buf(DType::F32, {c.head_dim, c.n_head, c.n_tokens}), span = make_buf(DType::I32, {2, c.n_tokens});
    fill_normal(q.t, rng, 1.f);
    for (int64_t t = 0; t < c.n_tokens; ++t) {
        const int64_t pos = c.n_past + t;
        int64_t first = n_ctx, len = pos + 1;
        if (c.window > 0 && len > c.window) first += len - c.window, len = c.window;
        span.t.data<int32_t>()[2 * t] = static_cast<int32_t>(first);
        span.t.data<int32_t>()[2 * t + 1] = static_cast<int32_t>(len);
    }
    Buf got = make_buf(DType::F32, {c.head_dim, c.n_head, c.n_tokens}), want = make_buf(DType::F32, {c.head_dim, c.n_head, c.n_tokens});
    AttentionParams ap{c.n_head, c.n_head_kv, c.head_dim, 1.f / std::sqrt(static_cast<float>(c.head_dim)), c.softcap};
    be->attention(q.t, kc.t, vc.t, span.t, got.t, ap);
    cpu::ref::attention(q.t, kc.t, vc.t, span.t, want.t, ap);
    return rel_l2(got.t, want.t);
}

// Each test runs on every instruction set the machine has (AVX-512 where CPUID reports it, and
// AVX2 always); a machine without AVX-512 runs the AVX2 path only.
class FusedAttention : public testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        const cpu::Features& d = cpu::detected_features();
        if (GetParam() && !d.avx512) GTEST_SKIP() << "this CPU has no AVX-512";
        cpu::Features f = d;
        f.avx512 = f.avx512_vnni = f.avx512_bf16 = f.avx512_vbmi = GetParam();
        cpu::set_features(f);
    }
    void TearDown() override { cpu::set_features(cpu::detected_features()); }
};

TEST_P(FusedAttention, PrefillAndDecodeAcrossShapes) {
    std::mt19937 rng(11);
    struct Shape { int n_head, n_head_kv, head_dim; };
    for (const Shape s : {Shape{4, 4, 64}, Shape{8, 2, 64}, Shape{16, 1, 64}, Shape{8, 4, 128}, Shape{8, 1, 128}, Shape{4, 2, 256},
                          Shape{4, 4, 32}, Shape{6, 3, 80}, Shape{4, 2, 96}, Shape{2, 1, 112}, Shape{2, 2, 48}})
        for (DType ct : {DType::F16, DType::F32})
            for (auto [past, tokens] : {std::pair<int64_t, int64_t>{0, 1}, {0, 19}, {37, 8}, {500, 1}, {300, 33}})
                for (int threads : {1, 2}) {
                    const Case c{s.n_head, s.n_head_kv, s.head_dim, ct, past, tokens, 0, 0.f};
                    EXPECT_LT(run_case(c, threads, rng), 3e-6) << describe(c) << " threads " << threads;
                }
}

// Quantized caches: the fast path decodes the same blocks the reference reads.
TEST_P(FusedAttention, QuantizedCaches) {
    std::mt19937 rng(15);
    for (DType ct : {DType::Q8_0, DType::Q4_0})
        for (auto [nh, nkv, hd] : {std::tuple<int, int, int>{8, 2, 64}, {4, 1, 128}, {4, 4, 256}, {4, 2, 96}, {2, 2, 32}})
            for (auto [past, tokens] : {std::pair<int64_t, int64_t>{0, 17}, {700, 1}})
                for (int threads : {1, 2}) {
                    const Case c{nh, nkv, hd, ct, past, tokens, 0, 0.f};
                    EXPECT_LT(run_case(c, threads, rng), 3e-6) << describe(c) << " threads " << threads;
                }
}

TEST_P(FusedAttention, SlidingWindowAndSoftcap) {
    std::mt19937 rng(12);
    for (int window : {1, 16, 100})
        for (float cap : {0.f, 5.f, 50.f})
            for (auto [past, tokens] : {std::pair<int64_t, int64_t>{0, 40}, {200, 1}, {120, 9}})
                for (int threads : {1, 3}) {
                    const Case c{8, 2, 64, DType::F16, past, tokens, window, cap};
                    EXPECT_LT(run_case(c, threads, rng), 3e-6) << describe(c) << " threads " << threads;
                }
}

// Long contexts: decode splits the cells over threads and merges partial softmaxes; the merge
// must equal one pass. Single-KV-head (MQA) is the case that needs the split to use every core.
// f32 sums over 16k cells round more than over hundreds (the reference sums in double): the
// bound is 1e-5 here, still far below what a wrong mask or merge gives (~1e-1).
TEST_P(FusedAttention, LongContextDecodeSplits) {
    std::mt19937 rng(13);
    for (int64_t past : {4095, 16383})
        for (auto [nh, nkv, hd] : {std::tuple<int, int, int>{8, 1, 128}, {4, 2, 64}, {2, 1, 256}})
            for (int threads : {1, 2, 4}) {
                const Case c{nh, nkv, hd, DType::F16, past, 1, 0, 0.f};
                EXPECT_LT(run_case(c, threads, rng), 1e-5) << describe(c) << " threads " << threads;
            }
    // A long prefill tile at depth, with a window shorter than the context.
    const Case c{8, 2, 128, DType::F16, 3000, 24, 1024, 0.f};
    EXPECT_LT(run_case(c, 2, rng), 1e-5) << describe(c);
}

// Tokens of two sequences interleaved in one batch (continuous batching): tiles must not merge
// tokens whose spans do not overlap.
TEST_P(FusedAttention, InterleavedSequences) {
    std::mt19937 rng(14);
    auto be = make_cpu_backend(2);
    const int n_head = 4, n_kv = 2, hd = 64, n_ctx = 200;
    const int64_t kv_dim = int64_t(hd) * n_kv, cells = 2 * n_ctx, n_tokens = 12;
    Buf kf = make_buf(DType::F32, {kv_dim, cells}), vf = make_buf(DType::F32, {kv_dim, cells}), rows = make_buf(DType::I32, {cells});
    fill_normal(kf.t, rng, 1.f);
    fill_normal(vf.t, rng, 1.f);
    for (int64_t i = 0; i < cells; ++i) rows.t.data<int32_t>()[i] = static_cast<int32_t>(i);
    Buf kc = make_buf(DType::F16, {kv_dim, cells}), vc = make_buf(DType::F16, {kv_dim, cells});
    cpu::ref::kv_store(kf.t, vf.t, kc.t, vc.t, rows.t);
    Buf q = make_buf(DType::F32, {hd, n_head, n_tokens}), span = make_buf(DType::I32, {2, n_tokens});
    fill_normal(q.t, rng, 1.f);
    for (int64_t t = 0; t < n_tokens; ++t) {
        span.t.data<int32_t>()[2 * t] = static_cast<int32_t>((t % 2) * n_ctx);
        span.t.data<int32_t>()[2 * t + 1] = static_cast<int32_t>(50 + t * 7);
    }
    Buf got = make_buf(DType::F32, {hd, n_head, n_tokens}), want = make_buf(DType::F32, {hd, n_head, n_tokens});
    const AttentionParams ap{n_head, n_kv, hd, 0.125f};
    be->attention(q.t, kc.t, vc.t, span.t, got.t, ap);
    cpu::ref::attention(q.t, kc.t, vc.t, span.t, want.t, ap);
    EXPECT_LT(rel_l2(got.t, want.t), 3e-6);
}

INSTANTIATE_TEST_SUITE_P(Isa, FusedAttention, testing::Values(true, false),
                         [](const auto& info) { return std::string(info.param ? "avx512" : "avx2"); });

// kv_shift: moved keys equal keys rotated at their new positions from the start; values move
// byte for byte; cells before dst are untouched. NORM and NEOX pairings, partial rotation,
// frequency factors and linear scaling; F32, F16 and Q8_0 caches.
TEST(KvShift, MovedKeysAreRotatedToTheirNewPositions) {
    std::mt19937 rng(16);
    auto be = make_cpu_backend(2);
    const int hd = 64, nkv = 2;
    const int64_t cells = 80, width = int64_t(hd) * nkv, dst = 5, src = 20, n = 50, delta = dst - src;
    for (bool neox : {false, true})
        for (bool factors : {false, true})
            for (DType ct : {DType::F32, DType::F16, DType::Q8_0}) {
                const RopeParams rp{48, 10000.f, 0.5f, neox, 1.f};
                Buf ff = make_buf(DType::F32, {24});
                for (int i = 0; i < 24; ++i) ff.t.data<float>()[i] = 1.f + 0.25f * static_cast<float>(i % 5);
                const Tensor* fp = factors ? &ff.t : nullptr;
                Buf raw = make_buf(DType::F32, {width, cells}), v = make_buf(DType::F32, {width, cells});
                fill_normal(raw.t, rng, 1.f);
                fill_normal(v.t, rng, 1.f);
                Buf pos = make_buf(DType::I32, {cells}), rows = make_buf(DType::I32, {cells});
                for (int64_t i = 0; i < cells; ++i) pos.t.data<int32_t>()[i] = rows.t.data<int32_t>()[i] = static_cast<int32_t>(i);
                // The cache as the forward pass leaves it: keys rotated at their cell's position.
                Buf k = make_buf(DType::F32, {width, cells});
                k.bytes = raw.bytes;
                k.t.host = k.bytes.data();
                Tensor k_heads = k.t;
                k_heads.ne[0] = hd, k_heads.ne[1] = nkv, k_heads.ne[2] = cells;
                cpu::ref::rope(k_heads, pos.t, rp, fp);
                Buf kc = make_buf(ct, {width, cells}), vc = make_buf(ct, {width, cells});
                cpu::ref::kv_store(k.t, v.t, kc.t, vc.t, rows.t);
                const std::vector<uint8_t> v_before = vc.bytes, k_before = kc.bytes;
                be->kv_shift(kc.t, vc.t, dst, src, n, static_cast<int>(delta), hd, rp, fp);
                // Expected: the raw keys of cells src.. rotated at positions dst..
                Buf want = make_buf(DType::F32, {width, n});
                std::memcpy(want.t.host, raw.t.data<float>() + src * width, static_cast<size_t>(n * width) * 4);
                Buf wpos = make_buf(DType::I32, {n});
                for (int64_t i = 0; i < n; ++i) wpos.t.data<int32_t>()[i] = static_cast<int32_t>(dst + i);
                Tensor w_heads = want.t;
                w_heads.ne[0] = hd, w_heads.ne[1] = nkv, w_heads.ne[2] = n;
                cpu::ref::rope(w_heads, wpos.t, rp, fp);
                double err = 0, scale = 0;
                for (int64_t c = 0; c < n; ++c)
                    for (int64_t i = 0; i < width; ++i) {
                        const double e = want.t.data<float>()[c * width + i];
                        err = std::max(err, std::fabs(cpu::cache_at(kc.t, dst + c, i) - e));
                        scale = std::max(scale, std::fabs(e));
                    }
                const double tol = ct == DType::F32 ? 1e-5 : ct == DType::F16 ? 2e-3 : 3e-2;
                EXPECT_LT(err / scale, tol) << (neox ? "neox " : "norm ") << (factors ? "factors " : "") << dtype_name(ct);
                const size_t vr = vc.t.row_size(), kr = kc.t.row_size();
                EXPECT_EQ(0, std::memcmp(vc.bytes.data() + dst * vr, v_before.data() + src * vr, static_cast<size_t>(n) * vr));
                EXPECT_EQ(0, std::memcmp(vc.bytes.data(), v_before.data(), static_cast<size_t>(dst) * vr)) << "cells before dst";
                EXPECT_EQ(0, std::memcmp(kc.bytes.data(), k_before.data(), static_cast<size_t>(dst) * kr)) << "cells before dst";
            }
    Buf kc = make_buf(DType::F16, {128, 10}), vc = make_buf(DType::F16, {128, 10});
    EXPECT_THROW(be->kv_shift(kc.t, vc.t, 5, 3, 2, -2, 64, RopeParams{64}, nullptr), Error);  // dst after src
    EXPECT_THROW(be->kv_shift(kc.t, vc.t, 1, 5, 6, -4, 64, RopeParams{64}, nullptr), Error);  // past the cache
}

}  // namespace
