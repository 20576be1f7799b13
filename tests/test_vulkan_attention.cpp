// tests/test_vulkan_attention.cpp: the fused attention shader (shaders/attention.comp,
// attention_reduce.comp) against the CPU scalar reference (cpu::ref::attention) by normalised
// error, with subgroup reductions and with the shared-memory fallback: head_dim 32/64/96/128/256, GQA ratios 1 to 16
// (groups larger than a workgroup's rows, groups that do not divide them), decode and prefill,
// contexts up to 16k cells (auto and forced uneven splits), causal spans, sliding windows,
// batches of two interleaved sequences with disjoint spans, empty spans, softcap, and every pair
// of KV cache types (F32, F16, Q8_0, Q4_0). Without a Vulkan device the tests are SKIPPED; with
// MINERVA_REQUIRE_VULKAN=1 (CI) a missing device FAILS them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/ref_ops.h"
#include "minerva/error.h"
#include "vulkan/vk_backend.h"

#include "vulkan_test_util.h"

using namespace minerva;
using namespace vk_test;

namespace {

struct Case {
    int n_head, n_head_kv, head_dim;
    int n_tok;       // query tokens in the batch
    int n_past;      // cached positions before the batch (per sequence)
    int n_seq = 1;   // 2: tokens alternate between two sequences, each in its own half of the cache
    int window = 0;  // > 0: sliding window (a token sees its last `window` positions)
    uint32_t split = 0;  // 0: the backend's choice; else forced
    float softcap = 0.f;
    DType kt = DType::F16, vt = DType::F16;
    bool empty_first = false;  // the first token attends to nothing (its output must be 0)
};

std::string describe(const Case& c) {
    return std::string(dtype_name(c.kt)) + "/" + std::string(dtype_name(c.vt)) + " heads " + std::to_string(c.n_head) +
           "/" + std::to_string(c.n_head_kv) + " head_dim " + std::to_string(c.head_dim) + " n_tok " +
           std::to_string(c.n_tok) + " past " + std::to_string(c.n_past) + " seqs " + std::to_string(c.n_seq) +
           " window " + std::to_string(c.window) + " split " + std::to_string(c.split) + " softcap " +
           std::to_string(c.softcap);
}

// Random K/V in every cell (quantized by the reference kv_store, the same bytes on both sides),
// random queries; spans as forward() builds them. Compares both shader variants.
void run_case(vk::VulkanBackend* vk, const Case& c) {
    SCOPED_TRACE(describe(c));
    std::mt19937 rng(static_cast<uint32_t>(c.n_head * 131 + c.n_head_kv * 7 + c.head_dim + c.n_tok * 17 + c.n_past +
                                           c.window * 3 + c.n_seq));
    const int64_t width = int64_t(c.head_dim) * c.n_head_kv;
    const int per_seq_tok = (c.n_tok + c.n_seq - 1) / c.n_seq;
    const int seq_cells = c.n_past + per_seq_tok;
    const int n_cells = seq_cells * c.n_seq + 3;  // a few cells nobody attends to
    Host k(DType::F32, {width, n_cells}), v(DType::F32, {width, n_cells}), rows(DType::I32, {n_cells});
    fill_normal(k, rng);
    fill_normal(v, rng);
    for (int i = 0; i < n_cells; ++i) rows.i32()[i] = i;
    Host kc(c.kt, {width, n_cells}), vc(c.vt, {width, n_cells});
    cpu::ref::kv_store(k.t, v.t, kc.t, vc.t, rows.t);
    Tensor dkc = to_device(vk, kc), dvc = to_device(vk, vc);

    Host q(DType::F32, {c.head_dim, c.n_head, c.n_tok}), span(DType::I32, {2, c.n_tok});
    Host ref(DType::F32, {c.head_dim, c.n_head, c.n_tok});
    fill_normal(q, rng, c.softcap > 0 ? 4.f : 1.f);  // with a cap: scores that reach and pass it
    for (int t = 0; t < c.n_tok; ++t) {
        const int seq = t % c.n_seq, pos = c.n_past + t / c.n_seq;
        int first = 0, len = pos + 1;
        if (c.window > 0 && len > c.window) first = len - c.window, len = c.window;
        span.i32()[2 * t] = seq * seq_cells + first;
        span.i32()[2 * t + 1] = len;
    }
    if (c.empty_first) span.i32()[1] = 0;
    const AttentionParams p{c.n_head, c.n_head_kv, c.head_dim, 1.f / std::sqrt(float(c.head_dim)), c.softcap};
    cpu::ref::attention(q.t, kc.t, vc.t, span.t, ref.t, p);
    if (c.softcap > 0) {  // the cap must change the result, or this case could not catch it being ignored
        Host uncapped(DType::F32, {c.head_dim, c.n_head, c.n_tok});
        AttentionParams pu = p;
        pu.softcap = 0.f;
        cpu::ref::attention(q.t, kc.t, vc.t, span.t, uncapped.t, pu);
        EXPECT_GT(nerr(uncapped.f(), ref.f(), ref.t.n_elements()), 1e-2) << "softcap " << c.softcap << " changes nothing";
    }
    Tensor dq = to_device(vk, q), ds = to_device(vk, span), dout = vk->alloc(DType::F32, ref.t.ne);
    static const char* names[] = {"shared-memory reductions", "subgroup reductions"};
    for (int variant = 0; variant < 2; ++variant) {
        vk->set_use_subgroups(variant == 1);
        vk->set_attention_split(c.split);
        std::vector<float> poison(static_cast<size_t>(ref.t.n_elements()), NAN);
        vk->write(dout, poison.data(), poison.size() * 4);  // every output element must be written
        vk->attention(dq, dkc, dvc, ds, dout, p);
        vk->set_attention_split(0);
        auto got = from_device(vk, dout);
        EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-5) << "shader shape " << names[variant];
        if (c.empty_first) {
            for (int64_t i = 0; i < int64_t(c.head_dim) * c.n_head; ++i)
                ASSERT_EQ(got[static_cast<size_t>(i)], 0.f) << "a token with an empty span, " << names[variant];
        }
    }
    vk->set_use_subgroups(true);
}

// head_dim 64/128/256 x GQA 1/4/8, decode (auto split) and causal prefill (from empty and after
// a past), F16 caches.
TEST(VulkanAttention, HeadDimsAndGqaRatios) {
    VK_OR_SKIP(vk);
    for (int hd : {64, 128, 256})
        for (int group : {1, 4, 8}) {
            const int n_kv = group == 8 ? 1 : 2;
            run_case(vk, {group * n_kv, n_kv, hd, 1, 300});     // decode
            run_case(vk, {group * n_kv, n_kv, hd, 37, 0});      // causal prefill from empty
            run_case(vk, {group * n_kv, n_kv, hd, 20, 180});    // prefill after a past
        }
}

// Shapes whose rows do not tile evenly: head_dim 32 and 96, groups of 6 (not a power of two) and
// 16 (more heads than a workgroup takes at head_dim 256), a batch of 1-3 tokens.
TEST(VulkanAttention, UnevenShapes) {
    VK_OR_SKIP(vk);
    run_case(vk, {4, 2, 32, 9, 3});
    run_case(vk, {4, 2, 96, 3, 150, 1, 0, 7});  // forced uneven split
    run_case(vk, {6, 1, 128, 5, 60});
    run_case(vk, {16, 1, 256, 1, 90});
    run_case(vk, {16, 1, 256, 7, 40, 1, 0, 3});
    run_case(vk, {32, 2, 64, 2, 100});
    run_case(vk, {2, 2, 64, 1, 0});  // first token: a span of one cell
}

// Long contexts: decode at 4k and 16k cells (auto split, forced uneven split), and a short
// prefill after 16k cells of past.
TEST(VulkanAttention, LongContext) {
    VK_OR_SKIP(vk);
    run_case(vk, {8, 2, 128, 1, 4095});
    run_case(vk, {8, 1, 64, 1, 16383, 1, 0, 0, 0.f, DType::Q8_0, DType::Q8_0});
    run_case(vk, {4, 4, 128, 1, 16000, 1, 0, 13});
    run_case(vk, {8, 2, 128, 4, 16380});
}

// Sliding-window spans (Gemma 2/3 local layers, Mistral): decode and prefill with the window
// smaller than the context, with and without softcap.
TEST(VulkanAttention, SlidingWindow) {
    VK_OR_SKIP(vk);
    run_case(vk, {8, 2, 128, 1, 500, 1, 16});
    run_case(vk, {8, 2, 128, 40, 10, 1, 16});          // prefill: windows slide through the tile
    run_case(vk, {4, 1, 256, 30, 200, 1, 100, 0, 5.f});
    run_case(vk, {8, 4, 64, 1, 5000, 1, 4096});        // window 4096, split
}

// Two sequences interleaved in one batch (the server's continuous batching): disjoint spans in
// one tile, blocks between them that no row sees; a token with an empty span outputs zeros.
TEST(VulkanAttention, MixedBatch) {
    VK_OR_SKIP(vk);
    run_case(vk, {8, 2, 64, 12, 300, 2});
    run_case(vk, {8, 1, 128, 2, 700, 2});  // two decodes
    Case c{4, 2, 64, 6, 20, 2};
    c.empty_first = true;
    run_case(vk, c);
}

// Gemma 2's attention softcap at every head size of the families, GQA 1 to 8.
TEST(VulkanAttention, Softcap) {
    VK_OR_SKIP(vk);
    run_case(vk, {4, 4, 64, 1, 30, 1, 0, 0, 5.f});
    run_case(vk, {8, 2, 128, 1, 520, 1, 0, 0, 5.f});
    run_case(vk, {8, 1, 256, 1, 200, 1, 0, 3, 8.f});
    run_case(vk, {8, 4, 128, 37, 0, 1, 0, 0, 3.f});
    run_case(vk, {16, 2, 64, 20, 60, 1, 0, 0, 50.f});
}

// Every pair of KV cache types (llama.cpp's -ctk/-ctv), K and V independently: decode (auto
// split), causal prefill, and head_dim 256 with a softcap and a forced split.
TEST(VulkanAttention, KvCacheTypes) {
    VK_OR_SKIP(vk);
    const DType types[] = {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0};
    for (DType kt : types)
        for (DType vt : types) {
            Case c{8, 2, 128, 1, 600};
            c.kt = kt, c.vt = vt;
            run_case(vk, c);
            Case pre{4, 2, 64, 37, 0};
            pre.kt = kt, pre.vt = vt;
            run_case(vk, pre);
            Case big{8, 1, 256, 5, 60, 1, 0, 3, 8.f};
            big.kt = kt, big.vt = vt;
            run_case(vk, big);
        }
    Case one_block{4, 4, 32, 9, 3};  // head_dim 32: one quantized block a head
    one_block.kt = one_block.vt = DType::Q4_0;
    run_case(vk, one_block);
}

TEST(VulkanAttention, BadShapesAreErrors) {
    VK_OR_SKIP(vk);
    Host q(DType::F32, {48, 2, 1}), span(DType::I32, {2, 1});
    Tensor dq = to_device(vk, q), ds = to_device(vk, span), dout = vk->alloc(DType::F32, q.t.ne);
    const int64_t ne[4] = {96, 4, 1, 1};
    // Quantized caches need whole 32-value blocks per head.
    Tensor q8 = vk->alloc(DType::Q8_0, ne), f16 = vk->alloc(DType::F16, ne);
    EXPECT_THROW(vk->attention(dq, q8, f16, ds, dout, AttentionParams{2, 2, 48, 0.1f, 0.f}), Error);
    // head_dim above 256, and n_head not a multiple of n_head_kv.
    Host q2(DType::F32, {288, 1, 1});
    Tensor dq2 = to_device(vk, q2), dout2 = vk->alloc(DType::F32, q2.t.ne);
    const int64_t ne2[4] = {288, 4, 1, 1};
    Tensor big = vk->alloc(DType::F16, ne2);
    EXPECT_THROW(vk->attention(dq2, big, big, ds, dout2, AttentionParams{1, 1, 288, 0.1f, 0.f}), Error);
    Host q3(DType::F32, {48, 3, 1});
    Tensor dq3 = to_device(vk, q3), dout3 = vk->alloc(DType::F32, q3.t.ne);
    EXPECT_THROW(vk->attention(dq3, f16, f16, ds, dout3, AttentionParams{3, 2, 48, 0.1f, 0.f}), Error);
}

}  // namespace
