// tests/test_vulkan_ops.cpp: every Vulkan op and weight type against the CPU scalar reference
// (cpu/ref_ops.h) by normalised error, across shapes: odd sizes, sizes that are not multiples of
// the workgroup, matrix-vector (n <= 8) and tiled matrix-matrix (n > 8) paths, subgroup and
// shared-memory reductions, kv_store of F32, F16, Q8_0 and Q4_0 KV caches (K and V
// independently), context shift; attention is in test_vulkan_attention.cpp. Without
// a Vulkan device the tests are SKIPPED; with MINERVA_REQUIRE_VULKAN=1 (CI) a missing device
// FAILS them.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "common.h"
#include "cpu/fp16.h"
#include "cpu/ref_ops.h"
#include "host_tensor.h"
#include "minerva/devices.h"
#include "minerva/error.h"
#include "minerva/minerva.h"
#include "vulkan/vk_backend.h"

#include "vulkan_test_util.h"

using namespace minerva;
using namespace vk_test;

namespace {

// Random valid weights: random quant bytes with sane fp16 scales (host_tensor.h).
void fill_weights(const Host& h, std::mt19937& rng) {
    if (!minerva::test::fill_random_weights(h.t.type, h.t.data<uint8_t>(), h.t.n_elements(), rng))
        FAIL() << "no random fill for " << dtype_name(h.t.type);
}

const DType k_weight_types[] = {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// A row length for the type: odd for plain types, odd numbers of blocks for quantized ones.
int64_t odd_k(DType t, int which) {
    int64_t be = dtype_info(t).block_elems;
    if (be == 1) return which == 0 ? 67 : 517;
    if (be == 32) return which == 0 ? 32 * 3 : 32 * 23;
    return which == 0 ? 256 : 256 * 3;
}

class VulkanWeightOps : public testing::TestWithParam<DType> {};

TEST_P(VulkanWeightOps, MatmulMatchesReference) {
    VK_OR_SKIP(vk);
    const DType type = GetParam();
    std::mt19937 rng(1234 + static_cast<int>(type));
    struct Shape { int which_k; int64_t m, n; };
    // n <= 8: matvec.comp (decode, small batches); n > 8: the tiled matmul.comp (prefill).
    const Shape shapes[] = {{0, 1, 1}, {0, 67, 1}, {1, 130, 1}, {1, 33, 3}, {0, 65, 8}, {1, 70, 9}, {0, 129, 70}};
    for (const Shape& s : shapes) {
        int64_t k = odd_k(type, s.which_k);
        Host w(type, {k, s.m}), x(DType::F32, {k, s.n}), ref(DType::F32, {s.m, s.n});
        fill_weights(w, rng);
        fill_normal(x, rng);
        cpu::ref::matmul(w.t, x.t, ref.t);
        Tensor dw = to_device(vk, w, true), dx = to_device(vk, x);
        Tensor dout = vk->alloc(DType::F32, ref.t.ne);
        // Both shape families (row-per-invocation for CPU devices; subgroup / shared-memory rows
        // and the tiled matmul for GPUs), whatever the device is.
        for (int cpu_shapes = 0; cpu_shapes < 2; ++cpu_shapes) {
            vk->set_cpu_shapes(cpu_shapes == 1);
            for (int sg = 0; sg < 2; ++sg) {
                vk->set_use_subgroups(sg == 0);
                vk->matmul(dw, dx, dout);
                auto got = from_device(vk, dout);
                EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-4)
                    << dtype_name(type) << " k=" << k << " m=" << s.m << " n=" << s.n
                    << (cpu_shapes ? " cpu-shapes" : (sg == 0 ? " subgroup" : " shared-memory"));
                if (s.n > 8 || cpu_shapes) break;  // the tiled and row paths have no subgroup variant
            }
            vk->set_use_subgroups(true);
        }
        vk->set_cpu_shapes(vk->is_cpu_device());
    }
}

TEST_P(VulkanWeightOps, GetRowsMatchesReference) {
    VK_OR_SKIP(vk);
    const DType type = GetParam();
    std::mt19937 rng(99 + static_cast<int>(type));
    int64_t k = odd_k(type, 1), n_vocab = 37;
    Host table(type, {k, n_vocab}), ids(DType::I32, {5}), ref(DType::F32, {k, 5});
    fill_weights(table, rng);
    const int32_t id_list[5] = {0, 36, 17, 17, 5};
    std::memcpy(ids.i32(), id_list, sizeof id_list);
    cpu::ref::get_rows(table.t, ids.t, ref.t);
    Tensor dt = to_device(vk, table, true), di = to_device(vk, ids), dout = vk->alloc(DType::F32, ref.t.ne);
    vk->get_rows(dt, di, dout);
    auto got = from_device(vk, dout);
    EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-6) << dtype_name(type);
}

// How matmul_id_case routes the pairs: uniformly at random, every pair to one expert, or only to
// the even experts (the odd ones get no pairs).
enum class Routing { random, one_expert, even_experts };

// matmul_id against the reference, for a [n_in, m, E] weight of `type`: both x layouts, the
// row, subgroup and shared-memory shapes, decode and batches. ids are random (repeats allowed).
// A batch (n > 1) takes the grouped path (row shapes: matvec.comp GROUPED; GPU shapes: the tiled
// matmul.comp MATMUL_ID), and is also run pair by pair with the grouping off.
void matmul_id_case(vk::VulkanBackend* vk, DType type, int64_t n_in, int64_t m, int64_t n_expert, int64_t k,
                    int64_t n, bool per_slot, std::mt19937& rng, Routing routing = Routing::random) {
    Host w(type, {n_in, m, n_expert}), ids(DType::I32, {k, n}), ref(DType::F32, {m, k, n});
    Host x = per_slot ? Host(DType::F32, {n_in, k, n}) : Host(DType::F32, {n_in, n});
    fill_weights(w, rng);
    fill_normal(x, rng);
    std::uniform_int_distribution<int32_t> ed(0, static_cast<int32_t>(n_expert - 1));
    const int32_t one = ed(rng);
    for (int64_t i = 0; i < k * n; ++i) {
        int32_t e = ed(rng);
        if (routing == Routing::one_expert) e = one;
        if (routing == Routing::even_experts) e &= ~1;
        ids.i32()[i] = e;
    }
    if (routing == Routing::random) ids.i32()[0] = static_cast<int32_t>(n_expert - 1);  // the last expert's rows end the buffer
    cpu::ref::matmul_id(w.t, x.t, ids.t, ref.t);
    Tensor dw = to_device(vk, w, true), dx = to_device(vk, x), di = to_device(vk, ids);
    Tensor dout = vk->alloc(DType::F32, ref.t.ne);
    const char* names[] = {" row shapes", " subgroup", " shared-memory", " pair by pair"};
    for (int variant = 0; variant < (n > 1 ? 4 : 3); ++variant) {
        vk->set_cpu_shapes(variant == 0 || (variant == 3 && vk->is_cpu_device()));
        vk->set_use_subgroups(variant == 1 || variant == 3);
        vk->set_moe_grouping(variant != 3);
        std::vector<float> poison(static_cast<size_t>(ref.t.n_elements()), std::nanf(""));
        vk->write(dout, poison.data(), poison.size() * 4);  // every output must be written
        vk->matmul_id(dw, dx, di, dout);
        auto got = from_device(vk, dout);
        EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-4)
            << dtype_name(type) << " n_in=" << n_in << " m=" << m << " E=" << n_expert << " k=" << k << " n=" << n
            << (per_slot ? " x [n_in, k, n]" : " x [n_in, n]") << " routing " << static_cast<int>(routing)
            << names[variant];
    }
    vk->set_moe_grouping(true);
    vk->set_use_subgroups(true);
    vk->set_cpu_shapes(vk->is_cpu_device());
}

// Prefill sizes: each expert's pairs are grouped on the GPU (moe_group.comp) and multiplied in
// tiles; skewed routings put every pair on one expert (more pairs than a tile) or leave experts
// without pairs.
TEST(VulkanOps, MatmulIdGroupedMatchesReference) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(2027);
    struct Shape { int64_t n_expert, k; };
    const Shape shapes[] = {{4, 1}, {8, 2}, {16, 4}, {64, 8}, {32, 8}};
    const int64_t ns[] = {1, 2, 7, 33, 130};
    int i = 0;
    for (DType t : {DType::F32, DType::F16, DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K})
        for (int64_t n : ns)
            for (Routing r : {Routing::random, Routing::one_expert, Routing::even_experts}) {
                const Shape& s = shapes[i++ % 5];
                matmul_id_case(vk, t, odd_k(t, 0), 70, s.n_expert, s.k, n, i % 2 == 0, rng, r);
            }
}

TEST_P(VulkanWeightOps, MatmulIdMatchesReference) {
    VK_OR_SKIP(vk);
    const DType type = GetParam();
    std::mt19937 rng(4321 + static_cast<int>(type));
    // Short rows take the row shape on every device; long rows (> 8 units) the subgroup and
    // shared-memory shapes too.
    for (int which_k : {0, 1})
        for (bool per_slot : {false, true}) {
            matmul_id_case(vk, type, odd_k(type, which_k), 70, 8, 2, 1, per_slot, rng);
            matmul_id_case(vk, type, odd_k(type, which_k), 33, 8, 2, 5, per_slot, rng);
        }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, VulkanWeightOps, testing::ValuesIn(k_weight_types), minerva::test::dtype_param_name);

TEST(VulkanOps, RmsNorm) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(7);
    for (int64_t dim : {1, 63, 129, 2048}) {
        for (int64_t rows : {1, 5}) {
            Host x(DType::F32, {dim, rows}), w(DType::F32, {dim}), ref(DType::F32, {dim, rows});
            fill_normal(x, rng, 3.f);
            fill_normal(w, rng);
            cpu::ref::rms_norm(x.t, w.t, ref.t, 1e-5f);
            Tensor dx = to_device(vk, x), dw = to_device(vk, w, true), dout = vk->alloc(DType::F32, ref.t.ne);
            vk->rms_norm(dx, dw, dout, 1e-5f);
            auto got = from_device(vk, dout);
            EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-5) << dim << "x" << rows;
            vk->rms_norm(dx, dw, dx, 1e-5f);  // in place
            got = from_device(vk, dx);
            EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-5) << "in place " << dim << "x" << rows;
        }
    }
}

TEST(VulkanOps, Rope) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(11);
    struct Case { int64_t head_dim, n_heads, n_tok; int n_rot; float base, scale; bool ff; int max_pos; };
    const Case cases[] = {{64, 4, 3, 64, 10000.f, 1.f, false, 20},     {128, 3, 5, 128, 500000.f, 1.f, true, 4000},
                          {96, 2, 7, 64, 10000.f, 0.5f, false, 2000}, {8, 1, 1, 8, 10000.f, 1.f, true, 100000}};
    for (const Case& c : cases) {
        Host x(DType::F32, {c.head_dim, c.n_heads, c.n_tok}), pos(DType::I32, {c.n_tok}), ff(DType::F32, {c.n_rot / 2});
        fill_normal(x, rng);
        std::uniform_int_distribution<int> pd(0, c.max_pos);
        for (int64_t t = 0; t < c.n_tok; ++t) pos.i32()[t] = pd(rng);
        std::uniform_real_distribution<float> fd(1.f, 8.f);
        for (int i = 0; i < c.n_rot / 2; ++i) ff.f()[i] = fd(rng);
        Tensor dx = to_device(vk, x), dp = to_device(vk, pos), dff = to_device(vk, ff, true);
        RopeParams p{c.n_rot, c.base, c.scale};
        cpu::ref::rope(x.t, pos.t, p, c.ff ? &ff.t : nullptr);
        vk->rope(dx, dp, p, c.ff ? &dff : nullptr);
        auto got = from_device(vk, dx);
        // sin/cos of angles up to ~1e5 rad in f32 on the device vs double on the host.
        EXPECT_LT(nerr(got.data(), x.f(), x.t.n_elements()), c.max_pos > 10000 ? 2e-2 : 2e-3)
            << "head_dim " << c.head_dim << " n_rot " << c.n_rot << " max_pos " << c.max_pos;
    }
}

// NEOX pairing (Qwen, Gemma, Phi) and LongRoPE's attn_factor, with and without freq_factors,
// full and partial rotation, for the head sizes of the families.
TEST(VulkanOps, RopeNeoxAttnFactor) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(12);
    for (int64_t hd : {64, 128, 256})
        for (int n_rot : {int(hd), int(hd / 2)})
            for (bool neox : {true, false})
                for (float attn_factor : {1.f, 1.19f})
                    for (bool with_ff : {false, true}) {
                        const int64_t n_heads = 3, n_tok = 5;
                        Host x(DType::F32, {hd, n_heads, n_tok}), pos(DType::I32, {n_tok}), ff(DType::F32, {n_rot / 2});
                        fill_normal(x, rng);
                        for (int64_t t = 0; t < n_tok; ++t) pos.i32()[t] = static_cast<int32_t>(rng() % 3000);
                        for (int i = 0; i < n_rot / 2; ++i) ff.f()[i] = 1.f + static_cast<float>(i % 7);
                        Tensor dx = to_device(vk, x), dp = to_device(vk, pos), dff = to_device(vk, ff, true);
                        RopeParams p{n_rot, 1000000.f, 1.f, neox, attn_factor};
                        cpu::ref::rope(x.t, pos.t, p, with_ff ? &ff.t : nullptr);
                        vk->rope(dx, dp, p, with_ff ? &dff : nullptr);
                        auto got = from_device(vk, dx);
                        EXPECT_LT(nerr(got.data(), x.f(), x.t.n_elements()), 2e-3)
                            << "head_dim " << hd << " n_rot " << n_rot << (neox ? " neox" : " norm") << " attn_factor "
                            << attn_factor << (with_ff ? " freq_factors" : "");
                    }
}

// A Vulkan cache after kv_store against the reference's: F16/F32 byte for byte; quantized caches
// block by block, each value within one quantization step of the reference's (the scale is
// rounded to f16 and x / d rounded to an integer on both sides, so a value on a rounding boundary
// may land one step away), with nearly every block byte-identical.
void expect_cache_matches(vk::VulkanBackend* vk, const Tensor& dev, const Host& ref, const std::string& what) {
    std::vector<uint8_t> got(ref.t.nbytes());
    vk->read(dev, got.data(), got.size());
    if (ref.t.type == DType::F16 || ref.t.type == DType::F32) {
        EXPECT_EQ(0, std::memcmp(got.data(), ref.t.host, got.size())) << what;
        return;
    }
    const auto& info = dtype_info(ref.t.type);
    const int64_t n_blocks = ref.t.n_elements() / info.block_elems;
    Tensor g = ref.t;
    g.host = got.data();
    int64_t same = 0;
    double worst = 0;  // largest difference in steps of the reference block's scale
    for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* rb = static_cast<const uint8_t*>(ref.t.host) + b * info.block_bytes;
        same += std::memcmp(got.data() + b * info.block_bytes, rb, info.block_bytes) == 0;
        uint16_t dh;
        std::memcpy(&dh, rb, 2);
        const double d = std::fabs(cpu::fp16_to_f32(dh));
        for (int64_t j = 0; j < info.block_elems; ++j) {
            const int64_t e = b * info.block_elems + j, cell = e / ref.t.ne[0], i = e % ref.t.ne[0];
            const double diff = std::fabs(cpu::cache_at(g, cell, i) - cpu::cache_at(ref.t, cell, i));
            worst = std::max(worst, d > 0 ? diff / d : diff * 1e30);
        }
    }
    EXPECT_LE(worst, 1.0 + 1e-3) << what << ": a value more than one quantization step from the reference";
    EXPECT_GE(static_cast<double>(same), 0.99 * static_cast<double>(n_blocks))
        << what << ": " << n_blocks - same << " of " << n_blocks << " blocks differ from the reference";
}

TEST(VulkanOps, KvStoreScatteredRows) {
    VK_OR_SKIP(vk);
    EXPECT_TRUE(vk->supports_kv_type(DType::Q8_0) && vk->supports_kv_type(DType::Q4_0) &&
                vk->supports_kv_type(DType::F16) && vk->supports_kv_type(DType::F32));
    EXPECT_FALSE(vk->supports_kv_type(DType::Q4_K));
    std::mt19937 rng(5);
    const DType types[] = {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0};
    // Width 96: three 32-value blocks a row, so Q8_0/Q4_0 blocks (34/18 bytes) start at odd half
    // words and share 32-bit words with their neighbours, of the same row and of the next.
    for (DType kt : types)
        for (DType vt : types)
            for (int64_t width : {96, 256}) {
                Host k(DType::F32, {width, 5}), v(DType::F32, {width, 5}), rows(DType::I32, {5}), kc(kt, {width, 10}),
                    vc(vt, {width, 10});
                fill_normal(k, rng);
                fill_normal(v, rng, 3.f);
                for (int64_t i = 0; i < 32; ++i) k.f()[width + i] = 0.f;  // an all-zero block: scale 0
                for (int64_t i = 0; i < 32; ++i) v.f()[2 * width + 32 + i] = (i % 2 ? -1.f : 1.f) * 0.5f;  // ties
                rows.i32()[0] = 9, rows.i32()[1] = 0, rows.i32()[2] = 4, rows.i32()[3] = 5, rows.i32()[4] = 3;
                cpu::ref::kv_store(k.t, v.t, kc.t, vc.t, rows.t);
                // Cells kv_store does not write keep what they held.
                std::vector<uint8_t> kc0(kc.t.nbytes()), vc0(vc.t.nbytes());
                for (auto& b : kc0) b = static_cast<uint8_t>(rng());
                for (auto& b : vc0) b = static_cast<uint8_t>(rng());
                const int untouched[] = {1, 2, 6, 7, 8};
                for (int c : untouched) {
                    std::memcpy(kc.t.data<uint8_t>() + c * kc.t.row_size(), kc0.data() + c * kc.t.row_size(), kc.t.row_size());
                    std::memcpy(vc.t.data<uint8_t>() + c * vc.t.row_size(), vc0.data() + c * vc.t.row_size(), vc.t.row_size());
                }
                Tensor dkc = vk->alloc(kt, kc.t.ne), dvc = vk->alloc(vt, vc.t.ne);
                vk->write(dkc, kc0.data(), kc0.size());
                vk->write(dvc, vc0.data(), vc0.size());
                vk->kv_store(to_device(vk, k), to_device(vk, v), dkc, dvc, to_device(vk, rows));
                const std::string what = std::string(dtype_name(kt)) + "/" + std::string(dtype_name(vt)) + " width " + std::to_string(width);
                expect_cache_matches(vk, dkc, kc, "k " + what);
                expect_cache_matches(vk, dvc, vc, "v " + what);
            }
    // A quantized row must be whole blocks.
    Host k(DType::F32, {48, 1}), rows(DType::I32, {1});
    const int64_t ne[4] = {48, 4, 1, 1};
    Tensor dk = to_device(vk, k), dr = to_device(vk, rows), dkc = vk->alloc(DType::Q8_0, ne), dvc = vk->alloc(DType::F16, ne);
    EXPECT_THROW(vk->kv_store(dk, dk, dkc, dvc, dr), Error);
}

// Context shift on Vulkan (Backend's default kv_shift: through the host) gives what it gives on
// the CPU backend: F16, Q8_0 and Q4_0 caches, NORM and NEOX pairings, with frequency factors.
TEST(VulkanOps, KvShiftMatchesCpu) {
    VK_OR_SKIP(vk);
    auto cpu_be = make_cpu_backend(2);
    std::mt19937 rng(21);
    const int hd = 64, nkv = 2;
    const int64_t cells = 70, width = int64_t(hd) * nkv, dst = 4, src = 19, n = 45;
    for (bool neox : {false, true})
        for (DType ct : {DType::F16, DType::Q8_0, DType::Q4_0}) {
            const RopeParams rp{64, 10000.f, 1.f, neox, 1.f};
            Host ff(DType::F32, {32});
            for (int i = 0; i < 32; ++i) ff.f()[i] = 1.f + 0.5f * static_cast<float>(i % 3);
            Host k(DType::F32, {width, cells}), v(DType::F32, {width, cells}), rows(DType::I32, {cells});
            fill_normal(k, rng);
            fill_normal(v, rng);
            for (int64_t i = 0; i < cells; ++i) rows.i32()[i] = static_cast<int32_t>(i);
            Host kc(ct, {width, cells}), vc(ct, {width, cells});
            cpu::ref::kv_store(k.t, v.t, kc.t, vc.t, rows.t);
            Tensor dkc = to_device(vk, kc), dvc = to_device(vk, vc), dff = to_device(vk, ff);
            const std::vector<uint8_t> k_before = kc.bytes;
            cpu_be->kv_shift(kc.t, vc.t, dst, src, n, static_cast<int>(dst - src), hd, rp, &ff.t);
            vk->kv_shift(dkc, dvc, dst, src, n, static_cast<int>(dst - src), hd, rp, &dff);
            const std::string what = std::string(dtype_name(ct)) + (neox ? " neox" : " norm");
            EXPECT_NE(0, std::memcmp(k_before.data(), kc.t.host, kc.t.nbytes())) << what << ": the shift moved nothing";
            std::vector<uint8_t> gk(kc.t.nbytes()), gv(vc.t.nbytes());
            vk->read(dkc, gk.data(), gk.size());
            vk->read(dvc, gv.data(), gv.size());
            EXPECT_EQ(0, std::memcmp(gk.data(), kc.t.host, gk.size())) << what << ": k cache";
            EXPECT_EQ(0, std::memcmp(gv.data(), vc.t.host, gv.size())) << what << ": v cache";
        }
}

// A Vulkan Session::shift followed by eval equals the CPU backend's after the same shift, with
// F16 and Q8_0 caches: the shifted cells, the re-rotated keys and the eval after them.
TEST(VulkanSession, ShiftThenEvalMatchesCpu) {
    VK_OR_SKIP(vk);
    MINERVA_SHARED_FILE(path, "models/tiny-k-F16.gguf");  // small enough for bench/gpu-check.sh to carry
    std::vector<std::shared_ptr<Model>> models;
    for (const char* dev : {"cpu", "vulkan"}) {
        ModelOptions mo;
        mo.device = dev;
        mo.n_threads = 2;
        models.push_back(Model::load(path, mo));
    }
    ASSERT_EQ(models[1]->info().head_dim % 32, 0);
    const int n_vocab = models[0]->info().n_vocab;
    std::vector<int32_t> abc;
    for (int i = 0; i < 40; ++i) abc.push_back(static_cast<int32_t>(3 + (i * 37) % (n_vocab - 3)));
    const int32_t next = 11;
    const int n_keep = 6, n_discard = 21;
    for (KvType kv : {KvType::F16, KvType::Q8_0}) {
        std::vector<std::vector<float>> logits;
        for (auto& model : models) {
            SessionOptions so;
            so.n_ctx = 64;
            so.kv_type_k = so.kv_type_v = kv;
            Session s(model, so);
            s.eval(abc);
            s.shift(0, n_keep, n_discard);
            ASSERT_EQ(s.n_past(), static_cast<int>(abc.size()) - n_discard);
            auto l = s.eval(std::span<const int32_t>(&next, 1));
            logits.emplace_back(l.begin(), l.end());
        }
        double d = 0, scale = 1;
        for (size_t i = 0; i < logits[0].size(); ++i) {
            scale = std::max(scale, static_cast<double>(std::fabs(logits[0][i])));
            d = std::max(d, static_cast<double>(std::fabs(logits[1][i] - logits[0][i])));
        }
        EXPECT_LT(d / scale, 2e-3) << (kv == KvType::F16 ? "f16" : "q8_0") << " cache: vulkan vs cpu after the shift";
        // The shift matters at that tolerance: without it the next token's logits are far off.
        SessionOptions so;
        so.n_ctx = 64;
        so.kv_type_k = so.kv_type_v = kv;
        Session unshifted(models[1], so);
        unshifted.eval(abc);
        auto l = unshifted.eval(std::span<const int32_t>(&next, 1));
        double u = 0;
        for (size_t i = 0; i < logits[0].size(); ++i) u = std::max(u, static_cast<double>(std::fabs(l[i] - logits[0][i])));
        EXPECT_GT(u / scale, 2e-2) << "the shift changed nothing";
    }
}

TEST(VulkanOps, ElementwiseAndGather) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(3);
    for (int64_t n : {1, 255, 257, 70001}) {
        Host g(DType::F32, {n}), u(DType::F32, {n}), ref(DType::F32, {n});
        fill_normal(g, rng, 4.f);
        fill_normal(u, rng);
        cpu::ref::swiglu(g.t, u.t, ref.t);
        Tensor dg = to_device(vk, g), du = to_device(vk, u), dout = vk->alloc(DType::F32, ref.t.ne);
        vk->swiglu(dg, du, dout);
        auto got = from_device(vk, dout);
        EXPECT_LT(nerr(got.data(), ref.f(), n), 1e-6) << "swiglu " << n;
        cpu::ref::add(g.t, u.t);
        vk->add(dg, du);
        got = from_device(vk, dg);
        EXPECT_LT(nerr(got.data(), g.f(), n), 1e-7) << "add " << n;
    }
    Host x(DType::F32, {77, 9}), rows(DType::I32, {4}), ref(DType::F32, {77, 4});
    fill_normal(x, rng);
    const int32_t r[4] = {8, 0, 3, 8};
    std::memcpy(rows.i32(), r, sizeof r);
    cpu::ref::gather_rows(x.t, rows.t, ref.t);
    Tensor dout = vk->alloc(DType::F32, ref.t.ne);
    vk->gather_rows(to_device(vk, x), to_device(vk, rows), dout);
    auto got = from_device(vk, dout);
    EXPECT_EQ(0, std::memcmp(got.data(), ref.f(), ref.t.nbytes()));
}

// The elementwise ops of the families: geglu, add_bias, scale, softcap (in place).
TEST(VulkanOps, FamilyElementwise) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(31);
    for (int64_t n : {1, 255, 257, 70001}) {
        Host g(DType::F32, {n}), u(DType::F32, {n}), ref(DType::F32, {n});
        fill_normal(g, rng, 4.f);
        fill_normal(u, rng);
        g.f()[0] = n > 1 ? -30.f : 30.f;  // far tails of the tanh
        cpu::ref::geglu(g.t, u.t, ref.t);
        Tensor dg = to_device(vk, g), dout = vk->alloc(DType::F32, ref.t.ne);
        vk->geglu(dg, to_device(vk, u), dout);
        auto got = from_device(vk, dout);
        EXPECT_LT(nerr(got.data(), ref.f(), n), 1e-5) << "geglu " << n;

        vk->scale(dg, -0.37f);
        cpu::ref::scale(g.t, -0.37f);
        got = from_device(vk, dg);
        EXPECT_LT(nerr(got.data(), g.f(), n), 1e-7) << "scale " << n;

        for (float cap : {30.f, 0.5f}) {  // Gemma's logit cap; a cap most values pass
            Host c = g;
            c.t.host = c.bytes.data();
            Tensor dc = to_device(vk, c);
            vk->softcap(dc, cap);
            cpu::ref::softcap(c.t, cap);
            got = from_device(vk, dc);
            EXPECT_LT(nerr(got.data(), c.f(), n), 1e-6) << "softcap " << cap << " " << n;
        }
    }
    for (int64_t dim : {1, 64, 896, 1027})
        for (int64_t rows : {1, 7}) {
            Host x(DType::F32, {dim, rows}), b(DType::F32, {dim});
            fill_normal(x, rng);
            fill_normal(b, rng);
            Tensor dx = to_device(vk, x);
            vk->add_bias(dx, to_device(vk, b, true));
            cpu::ref::add_bias(x.t, b.t);
            auto got = from_device(vk, dx);
            EXPECT_LT(nerr(got.data(), x.f(), x.t.n_elements()), 1e-7) << "add_bias " << dim << "x" << rows;
        }
    Host x(DType::F32, {8, 2}), b(DType::F32, {7});
    Tensor dx = to_device(vk, x), db = to_device(vk, b);
    EXPECT_THROW(vk->add_bias(dx, db), Error);  // bias of the wrong length
    EXPECT_THROW(vk->softcap(dx, 0.f), Error);
    EXPECT_THROW(vk->softcap(dx, -1.f), Error);
}

// The per-head q/k norms of Qwen 3 and Gemma 3 run rms_norm in place on [head_dim, heads * tokens].
TEST(VulkanOps, RmsNormPerHeadInPlace) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(37);
    for (int64_t hd : {64, 128, 256})
        for (int64_t rows : {8 * 1, 8 * 7, 2 * 40}) {
            Host x(DType::F32, {hd, rows}), w(DType::F32, {hd}), ref(DType::F32, {hd, rows});
            fill_normal(x, rng, 2.f);
            fill_normal(w, rng);
            cpu::ref::rms_norm(x.t, w.t, ref.t, 1e-6f);
            Tensor dx = to_device(vk, x);
            vk->rms_norm(dx, to_device(vk, w, true), dx, 1e-6f);
            auto got = from_device(vk, dx);
            EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-5) << "head_dim " << hd << " rows " << rows;
        }
}

// Routing: E in {8, 64, 128}, k in {1, 2, 8}, with ties (equal logits go to the lower index).
TEST(VulkanOps, MoeRoute) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(41);
    for (int64_t n_expert : {8, 64, 128})
        for (int64_t k : {1, 2, 8})
            for (int64_t n : {1, 5, 70}) {
                Host logits(DType::F32, {n_expert, n}), ids(DType::I32, {k, n}), w(DType::F32, {k, n});
                fill_normal(logits, rng, 2.f);
                for (int64_t t = 0; t < n; t += 2) {  // ties: copies of the token's largest logit
                    float* l = logits.f() + t * n_expert;
                    int64_t top = std::max_element(l, l + n_expert) - l;
                    l[(top + 3) % n_expert] = l[top];
                    l[(top + n_expert - 1) % n_expert] = l[top];
                }
                cpu::ref::moe_route(logits.t, ids.t, w.t);
                Tensor dl = to_device(vk, logits), di = vk->alloc(DType::I32, ids.t.ne), dw = vk->alloc(DType::F32, w.t.ne);
                vk->moe_route(dl, di, dw);
                std::vector<int32_t> got_ids(static_cast<size_t>(k * n));
                vk->read(di, got_ids.data(), got_ids.size() * 4);
                auto got_w = from_device(vk, dw);
                EXPECT_EQ(0, std::memcmp(got_ids.data(), ids.i32(), got_ids.size() * 4))
                    << "ids E=" << n_expert << " k=" << k << " n=" << n;
                EXPECT_LT(nerr(got_w.data(), w.f(), k * n), 1e-5) << "weights E=" << n_expert << " k=" << k << " n=" << n;
            }
    Host logits(DType::F32, {4, 2}), ids(DType::I32, {5, 2}), w(DType::F32, {5, 2});
    EXPECT_THROW(vk->moe_route(to_device(vk, logits), to_device(vk, ids), to_device(vk, w)), Error);  // k > E
}

TEST(VulkanOps, MatmulIdManyExperts) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(43);
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::F16})
        for (int64_t n_expert : {64, 128, 300})  // 300: more than moe_group.comp takes, pair by pair
            for (int64_t k : {1, 8}) {
                matmul_id_case(vk, t, 64, 24, n_expert, k, 3, false, rng);
                matmul_id_case(vk, t, 64, 24, n_expert, k, 3, true, rng);
            }
}

TEST(VulkanOps, MatmulIdAndMoeSumBadArguments) {
    VK_OR_SKIP(vk);
    Host w(DType::F32, {32, 16, 4}), x(DType::F32, {32, 3}), ids(DType::I32, {2, 3}), out(DType::F32, {16, 2, 3});
    Tensor dw = to_device(vk, w, true), dx = to_device(vk, x), di = to_device(vk, ids), dout = to_device(vk, out);
    Host xbad(DType::F32, {31, 3}), obad(DType::F32, {16, 3, 3});
    EXPECT_THROW(vk->matmul_id(dw, to_device(vk, xbad), di, dout), Error);  // n_in mismatch
    EXPECT_THROW(vk->matmul_id(dw, dx, di, to_device(vk, obad)), Error);    // out not [m, k, n]
    Host y(DType::F32, {16, 2, 3}), wt(DType::F32, {3, 3}), o(DType::F32, {16, 3});
    EXPECT_THROW(vk->moe_sum(to_device(vk, y), to_device(vk, wt), to_device(vk, o)), Error);  // k mismatch
}

TEST(VulkanOps, MoeSum) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(47);
    for (int64_t d : {1, 64, 2051})
        for (int64_t k : {1, 2, 8})
            for (int64_t n : {1, 9}) {
                Host y(DType::F32, {d, k, n}), w(DType::F32, {k, n}), ref(DType::F32, {d, n});
                fill_normal(y, rng);
                fill_normal(w, rng);
                cpu::ref::moe_sum(y.t, w.t, ref.t);
                Tensor dout = vk->alloc(DType::F32, ref.t.ne);
                vk->moe_sum(to_device(vk, y), to_device(vk, w), dout);
                auto got = from_device(vk, dout);
                EXPECT_LT(nerr(got.data(), ref.f(), ref.t.n_elements()), 1e-6) << "d=" << d << " k=" << k << " n=" << n;
            }
}

// A whole MoE feed-forward in one submission (route, gate/up experts, swiglu, down experts on
// the per-slot activations, weighted sum): the barriers between ops that share buffers.
TEST(VulkanOps, MoeBlockInOneSubmission) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(53);
    const int64_t dim = 64, hid = 256, n_expert = 8, k = 2, n = 5;  // hid: a Q4_K row
    Host x(DType::F32, {dim, n}), router(DType::F32, {dim, n_expert}), wg2(DType::Q8_0, {dim, hid, n_expert}),
        wu2(DType::Q4_0, {dim, hid, n_expert}), wd(DType::Q4_K, {hid, dim, n_expert});
    fill_normal(x, rng);
    fill_normal(router, rng);
    fill_weights(wg2, rng);
    fill_weights(wu2, rng);
    fill_weights(wd, rng);
    Host logits(DType::F32, {n_expert, n}), ids(DType::I32, {k, n}), rw(DType::F32, {k, n});
    Host g(DType::F32, {hid, k, n}), u(DType::F32, {hid, k, n}), a(DType::F32, {hid, k, n}), y(DType::F32, {dim, k, n}),
        out(DType::F32, {dim, n});
    cpu::ref::matmul(router.t, x.t, logits.t);
    cpu::ref::moe_route(logits.t, ids.t, rw.t);
    cpu::ref::matmul_id(wg2.t, x.t, ids.t, g.t);
    cpu::ref::matmul_id(wu2.t, x.t, ids.t, u.t);
    cpu::ref::swiglu(g.t, u.t, a.t);
    cpu::ref::matmul_id(wd.t, a.t, ids.t, y.t);
    cpu::ref::moe_sum(y.t, rw.t, out.t);

    Tensor dx = to_device(vk, x), drouter = to_device(vk, router, true), dwg = to_device(vk, wg2, true),
           dwu = to_device(vk, wu2, true), dwd = to_device(vk, wd, true);
    Tensor dl = vk->alloc(DType::F32, logits.t.ne), di = vk->alloc(DType::I32, ids.t.ne), drw = vk->alloc(DType::F32, rw.t.ne);
    Tensor dg = vk->alloc(DType::F32, g.t.ne), du = vk->alloc(DType::F32, u.t.ne), da = vk->alloc(DType::F32, a.t.ne),
           dy = vk->alloc(DType::F32, y.t.ne), dout = vk->alloc(DType::F32, out.t.ne);
    vk->matmul(drouter, dx, dl);
    vk->moe_route(dl, di, drw);
    vk->matmul_id(dwg, dx, di, dg);
    vk->matmul_id(dwu, dx, di, du);
    vk->swiglu(dg, du, da);
    vk->matmul_id(dwd, da, di, dy);
    vk->moe_sum(dy, drw, dout);
    vk->submit();
    auto got = from_device(vk, dout);
    EXPECT_LT(nerr(got.data(), out.f(), out.t.n_elements()), 1e-4);
}

// A chain of dependent ops recorded into one command buffer: checks the barriers.
TEST(VulkanOps, DependentChainInOneSubmission) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(17);
    const int64_t dim = 256, hidden = 512;
    Host x(DType::F32, {dim}), nw(DType::F32, {dim}), wg(DType::Q4_0, {dim, hidden}), wu(DType::Q8_0, {dim, hidden}),
        wd(DType::Q4_K, {hidden, dim});
    fill_normal(x, rng);
    fill_normal(nw, rng);
    fill_weights(wg, rng);
    fill_weights(wu, rng);
    fill_weights(wd, rng);
    Host h(DType::F32, {dim}), g(DType::F32, {hidden}), u(DType::F32, {hidden}), a(DType::F32, {hidden}), d(DType::F32, {dim});
    Host xr = x;
    xr.t.host = xr.bytes.data();
    for (int rep = 0; rep < 3; ++rep) {
        cpu::ref::rms_norm(xr.t, nw.t, h.t, 1e-6f);
        cpu::ref::matmul(wg.t, h.t, g.t);
        cpu::ref::matmul(wu.t, h.t, u.t);
        cpu::ref::swiglu(g.t, u.t, a.t);
        cpu::ref::matmul(wd.t, a.t, d.t);
        cpu::ref::add(xr.t, d.t);
    }
    Tensor dx = to_device(vk, x), dnw = to_device(vk, nw, true), dwg = to_device(vk, wg, true),
           dwu = to_device(vk, wu, true), dwd = to_device(vk, wd, true);
    Tensor dh = vk->alloc(DType::F32, h.t.ne), dg = vk->alloc(DType::F32, g.t.ne), du = vk->alloc(DType::F32, u.t.ne),
           da = vk->alloc(DType::F32, a.t.ne), dd = vk->alloc(DType::F32, d.t.ne);
    for (int rep = 0; rep < 3; ++rep) {
        vk->rms_norm(dx, dnw, dh, 1e-6f);
        vk->matmul(dwg, dh, dg);
        vk->matmul(dwu, dh, du);
        vk->swiglu(dg, du, da);
        vk->matmul(dwd, da, dd);
        vk->add(dx, dd);
    }
    vk->submit();
    auto got = from_device(vk, dx);
    EXPECT_LT(nerr(got.data(), xr.f(), dim), 1e-5);
}

// More workgroups than maxComputeWorkGroupCount[0] (65535 on most devices) fold into a 2-D grid.
TEST(VulkanOps, LargeGridFolds) {
    VK_OR_SKIP(vk);
    std::mt19937 rng(23);
    const int64_t k = 32, m = 70001;
    Host w(DType::Q8_0, {k, m}), x(DType::F32, {k, 1}), ref(DType::F32, {m, 1});
    fill_weights(w, rng);
    fill_normal(x, rng);
    cpu::ref::matmul(w.t, x.t, ref.t);
    Tensor dw = to_device(vk, w, true), dx = to_device(vk, x), dout = vk->alloc(DType::F32, ref.t.ne);
    for (int sg = 0; sg < 2; ++sg) {
        vk->set_use_subgroups(sg == 0);
        vk->matmul(dw, dx, dout);
        auto got = from_device(vk, dout);
        EXPECT_LT(nerr(got.data(), ref.f(), m), 1e-5) << (sg == 0 ? "subgroup" : "one workgroup per row");
        EXPECT_NEAR(got[m - 1], ref.f()[m - 1], 1e-4 + 1e-4 * std::fabs(ref.f()[m - 1])) << "last row";
    }
    vk->set_use_subgroups(true);
}

TEST(VulkanOps, BadArgumentsAreErrors) {
    VK_OR_SKIP(vk);
    Host w(DType::F32, {64, 8}), x(DType::F32, {32, 1});
    Tensor dw = to_device(vk, w, true), dx = to_device(vk, x), dout = vk->alloc(DType::F32, x.t.ne);
    EXPECT_THROW(vk->matmul(dw, dx, dout), Error);                  // k mismatch
    EXPECT_THROW(vk->matmul(dw, x.t, dout), Error);                 // host tensor
    EXPECT_THROW(vk->write(dx, x.t.host, x.t.nbytes() + 4), Error); // past the end
    EXPECT_THROW(vk->plan_weights(uint64_t{1} << 52), Error);       // a model larger than the device
    const int64_t ne[4] = {64, 1, 1, 1};
    EXPECT_THROW(vk->upload_weight(DType::IQ2_XXS, ne, w.t.host, "blk.0.attn_q.weight"), Error);
    EXPECT_THROW(vk->upload_weight(DType::Q4_0, std::array<int64_t, 4>{33, 1, 1, 1}.data(), w.t.host, "odd"), Error);
}

TEST(VulkanDevices, ListingAndChoice) {
    VK_OR_SKIP(vk);
    auto devs = list_devices();
    ASSERT_FALSE(devs.empty());
    int defaults = 0;
    bool only_cpu = true;
    for (const auto& d : devs) {
        EXPECT_FALSE(d.name.empty());
        defaults += d.is_default;
        if (d.usable && d.type != "cpu") only_cpu = false;
    }
    EXPECT_EQ(defaults, 1);
    EXPECT_NE(vk->name().find("vulkan: "), std::string::npos);
    EXPECT_THROW(make_vulkan_backend("vulkan:99", true), Error);
    EXPECT_THROW(make_vulkan_backend("vulkan:x", true), Error);
    // "auto" declines a CPU-only device (lavapipe): the CPU backend is faster there.
    auto automatic = make_vulkan_backend("vulkan", false);
    EXPECT_EQ(automatic == nullptr, only_cpu);
}

}  // namespace
