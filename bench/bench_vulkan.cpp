// bench/bench_vulkan.cpp: `minerva-bench vulkan-kernels`: every Vulkan shader variant timed by
// GPU timestamp queries, with achieved GB/s (bytes the op must move) and GFLOP/s, next to the
// device's copy bandwidth measured the same way. Shapes default to TinyLlama-1.1B (dim 2048,
// ffn 5632, 32 heads / 4 KV heads of 64); --dim/--ffn scale them (7B: --dim 4096 --ffn 11008).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend.h"
#include "minerva/error.h"
#include "tools/cli.h"
#include "vulkan/vk_backend.h"

namespace minerva {
std::unique_ptr<Backend> make_vulkan_backend(const std::string& device, bool required);
}

namespace {

using namespace minerva;

struct Row {
    std::string op, variant, shape;
    double us = 0, gbs = 0, gflops = 0;
};

std::vector<uint8_t> random_weights(DType t, int64_t k, int64_t m, std::mt19937& rng) {
    Tensor probe;
    probe.type = t;
    probe.ne[0] = k;
    probe.ne[1] = m;
    std::vector<uint8_t> bytes(probe.nbytes());
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    // Keep every fp16 a small finite number: plain types get values in [-1, 1]; quantized
    // blocks get their scale fields overwritten (random bytes could be NaN/Inf halves).
    const auto& info = dtype_info(t);
    auto put_half = [&](size_t off) { bytes[off] = 0x00, bytes[off + 1] = 0x20; };  // 2^-7
    if (t == DType::F32) {
        auto* f = reinterpret_cast<float*>(bytes.data());
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        for (int64_t i = 0; i < k * m; ++i) f[i] = u(rng);
    } else if (t == DType::F16 || t == DType::BF16) {
        for (size_t i = 1; i < bytes.size(); i += 2) bytes[i] &= 0x3b;
    } else {
        std::vector<int> offs;
        switch (t) {
            case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: offs = {0, 2}; break;
            case DType::Q2_K: offs = {80, 82}; break;
            case DType::Q3_K: offs = {108}; break;
            case DType::Q6_K: offs = {208}; break;
            default: offs = {0}; break;
        }
        for (size_t b = 0; b + info.block_bytes <= bytes.size(); b += info.block_bytes)
            for (int o : offs) put_half(b + static_cast<size_t>(o));
    }
    return bytes;
}

int cmd_vulkan_kernels(int argc, char** argv) {
    cli::Args args(argc, argv, {"--device", "--dim", "--ffn", "--ctx", "--prefill", "--reps", "--types", "--attn-ctx"},
                   {"--json", "--attention-only", "-h|--help"});
    if (args.has("--help")) {
        std::printf("usage: minerva-bench vulkan-kernels [--device vulkan|vulkan:N] [--dim 2048] [--ffn 5632]\n"
                    "         [--ctx 512] [--prefill 128] [--reps 20] [--types F16,Q4_0,...] [--json]\n"
                    "         [--attn-ctx 512,4096,...] [--attention-only]\n"
                    "Times every Vulkan shader variant with GPU timestamps (lavapipe included). Attention is\n"
                    "timed at each --attn-ctx depth (default: --ctx), decode and --prefill tokens;\n"
                    "--attention-only skips the other ops.\n");
        return 0;
    }
    const std::string device = args.get("--device", "vulkan");
    auto owned = make_vulkan_backend(device, true);
    auto* vk = static_cast<vk::VulkanBackend*>(owned.get());
    if (!vk->can_profile()) throw Error(vk->name() + " has no timestamp queries: cannot time kernels");
    const int64_t dim = args.get_int("--dim", 2048), ffn = args.get_int("--ffn", 5632);
    const int64_t ctx = args.get_int("--ctx", 512), n_pp = args.get_int("--prefill", 128);
    const int reps = static_cast<int>(args.get_int("--reps", 20));
    const int head_dim = 64, n_head = static_cast<int>(dim / head_dim), n_head_kv = std::max(1, n_head / 8);
    std::vector<DType> types = {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
    if (auto list = args.get("--types")) {
        types.clear();
        size_t p = 0;
        while (p <= list->size()) {
            size_t q = list->find(',', p);
            std::string name = list->substr(p, q == std::string::npos ? std::string::npos : q - p);
            auto t = dtype_from_name(name);
            if (!t) throw Error("--types: unknown type '" + name + "'");
            types.push_back(*t);
            if (q == std::string::npos) break;
            p = q + 1;
        }
    }
    if (dim % 256 || ffn % 256) throw Error("--dim and --ffn must be multiples of 256 (K-quant blocks)");
    if (ctx < 1 || n_pp < 1 || reps < 1) throw Error("--ctx, --prefill and --reps must be at least 1");
    std::vector<int64_t> attn_ctx = {ctx};
    if (auto list = args.get("--attn-ctx")) {
        attn_ctx.clear();
        size_t p = 0;
        while (p <= list->size()) {
            size_t q = list->find(',', p);
            const std::string item = list->substr(p, q == std::string::npos ? std::string::npos : q - p);
            char* end = nullptr;
            const long long v = std::strtoll(item.c_str(), &end, 10);
            if (item.empty() || *end || v < 1 || v > (1 << 20))
                throw Error("--attn-ctx: '" + item + "' is not a context length in 1..1048576");
            attn_ctx.push_back(v);
            if (q == std::string::npos) break;
            p = q + 1;
        }
    }
    const bool attention_only = args.has("--attention-only");

    const double bw = vk->measure_copy_bandwidth(256ull << 20, 5);
    std::fprintf(stderr, "device: %s\ncopy bandwidth (read+write, timestamps): %.1f GB/s\n", vk->name().c_str(), bw / 1e9);

    std::mt19937 rng(42);
    std::vector<Row> rows;
    // Runs `record` reps times in one submission with profiling on and returns the mean GPU
    // time per dispatch of each variant it used.
    auto timed = [&](auto&& record) {
        record();  // warm-up: builds the pipelines
        vk->sync();
        vk->clear_timings();
        vk->set_profiling(true);
        for (int r = 0; r < reps; ++r) record();
        vk->sync();
        vk->set_profiling(false);
        return vk->timings();
    };
    auto add_rows = [&](const std::map<std::string, vk::KernelTiming>& t, const std::string& op, const std::string& shape,
                        double bytes_per_dispatch, double flops_per_dispatch, const std::string& only = "") {
        for (const auto& [variant, k] : t) {
            if (!only.empty() && variant.rfind(only, 0) != 0) continue;
            Row r{op, variant, shape};
            r.us = k.total_ns / reps / 1e3;  // per op call (CPU devices split a matmul into several dispatches)
            r.gbs = bytes_per_dispatch / (r.us * 1e3);
            r.gflops = flops_per_dispatch / (r.us * 1e3);
            rows.push_back(r);
        }
    };
    auto f32 = [&](std::initializer_list<int64_t> ne) {
        int64_t n4[4] = {1, 1, 1, 1};
        int i = 0;
        for (int64_t v : ne) n4[i++] = v;
        return vk->alloc(DType::F32, n4);
    };

    // ---- matrix-vector (decode) and matrix-matrix (prefill) per weight type: the FFN up shape
    if (attention_only) types.clear();
    Tensor x1 = f32({dim, 1}), xp = f32({dim, n_pp}), y1 = f32({ffn, 1}), yp = f32({ffn, n_pp});
    Tensor y_moe = f32({ffn / 4, 2, 1}), ids_moe = vk->alloc(DType::I32, std::array<int64_t, 4>{2, 1, 1, 1}.data());
    const int32_t chosen[2] = {3, 1};
    vk->write(ids_moe, chosen, sizeof chosen);
    // Prefill through the experts: every token picks 2 of the 4 at random.
    Tensor y_moe_pp = f32({ffn / 4, 2, n_pp}), ids_moe_pp = vk->alloc(DType::I32, std::array<int64_t, 4>{2, n_pp, 1, 1}.data());
    {
        std::vector<int32_t> picks(static_cast<size_t>(2 * n_pp));
        for (int64_t t = 0; t < n_pp; ++t) {
            picks[2 * t] = static_cast<int32_t>(rng() % 4);
            picks[2 * t + 1] = static_cast<int32_t>((picks[2 * t] + 1 + rng() % 3) % 4);
        }
        vk->write(ids_moe_pp, picks.data(), picks.size() * 4);
    }
    for (DType t : types) {
        auto bytes = random_weights(t, dim, ffn, rng);
        const int64_t ne[4] = {dim, ffn, 1, 1};
        Tensor w = vk->upload_weight(t, ne, bytes.data(), "bench");
        std::string shape = std::to_string(dim) + "x" + std::to_string(ffn);
        double wbytes = static_cast<double>(bytes.size());
        add_rows(timed([&] { vk->matmul(w, x1, y1); }), "matvec", shape + " n=1", wbytes + 4.0 * (dim + ffn),
                 2.0 * dim * ffn);
        add_rows(timed([&] { vk->matmul(w, xp, yp); }), "matmul", shape + " n=" + std::to_string(n_pp),
                 wbytes + 4.0 * n_pp * (dim + ffn), 2.0 * dim * ffn * n_pp);
        // Mixture of experts at decode: the same bytes as 4 experts of [dim, ffn/4], 2 chosen.
        const int64_t ne_moe[4] = {dim, ffn / 4, 4, 1};
        Tensor we = vk->upload_weight(t, ne_moe, bytes.data(), "bench_experts");
        add_rows(timed([&] { vk->matmul_id(we, x1, ids_moe, y_moe); }), "matmul_id",
                 std::to_string(dim) + "x" + std::to_string(ffn / 4) + " 2 of 4 n=1", wbytes / 2 + 4.0 * (dim + ffn / 2),
                 2.0 * dim * (ffn / 2));
        // ... and at prefill: grouped by expert (moe_group, then the _grouped variant: each
        // expert's rows read once per tile of its pairs) and, to compare, pair by pair (the
        // decode variant once per (token, expert) pair). Bytes: all 4 experts once, x, out.
        const std::string moe_pp = std::to_string(dim) + "x" + std::to_string(ffn / 4) + " 2 of 4 n=" + std::to_string(n_pp);
        for (bool grouped : {true, false}) {
            vk->set_moe_grouping(grouped);
            auto t_pp = timed([&] { vk->matmul_id(we, xp, ids_moe_pp, y_moe_pp); });
            add_rows(t_pp, "matmul_id", moe_pp, wbytes + 4.0 * n_pp * (dim + ffn / 2), 2.0 * dim * (ffn / 2) * n_pp,
                     "matmul_id_");
            // moe_group moves the ids and its grouping (counts, starts, tile starts, pair list).
            add_rows(t_pp, "moe_group", moe_pp, 4.0 * (2 * n_pp) + 4.0 * (3 * 4 + 1 + 2 * n_pp), 0, "moe_group");
        }
        vk->set_moe_grouping(true);
    }

    // ---- the other ops at decode (1 token) and prefill shapes
    for (int64_t n : {int64_t{1}, n_pp}) {
        if (attention_only) break;
        const std::string ns = " n=" + std::to_string(n);
        Tensor x = f32({dim, n}), w = f32({dim}), out = f32({dim, n});
        add_rows(timed([&] { vk->rms_norm(x, w, out, 1e-5f); }), "rms_norm", std::to_string(dim) + ns,
                 4.0 * (2 * dim * n + dim), 4.0 * dim * n);
        Tensor g = f32({ffn, n}), u = f32({ffn, n}), a = f32({ffn, n});
        add_rows(timed([&] { vk->swiglu(g, u, a); }), "swiglu", std::to_string(ffn) + ns, 12.0 * ffn * n, 5.0 * ffn * n);
        add_rows(timed([&] { vk->geglu(g, u, a); }), "geglu", std::to_string(ffn) + ns, 12.0 * ffn * n, 10.0 * ffn * n);
        add_rows(timed([&] { vk->add(x, out); }), "add", std::to_string(dim) + ns, 12.0 * dim * n, 1.0 * dim * n);
        Tensor q = f32({head_dim, n_head, n}), pos = vk->alloc(DType::I32, std::array<int64_t, 4>{n, 1, 1, 1}.data());
        RopeParams rp{head_dim, 10000.f, 1.f};
        add_rows(timed([&] { vk->rope(q, pos, rp, nullptr); }), "rope", "64x" + std::to_string(n_head) + ns,
                 8.0 * dim * n, 6.0 * dim * n);
        const int64_t width = int64_t(head_dim) * n_head_kv;
        const int64_t cache_ne[4] = {width, ctx + n, 1, 1};
        Tensor k = f32({width, n}), v = f32({width, n});
        std::vector<int32_t> cells(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) cells[i] = static_cast<int32_t>(ctx + i);
        Tensor dcells = vk->alloc(DType::I32, std::array<int64_t, 4>{n, 1, 1, 1}.data());
        vk->write(dcells, cells.data(), cells.size() * 4);
        // The default F16 cache and the 8-bit one (-ctk q8_0 -ctv q8_0): bytes per cached value.
        for (DType ct : {DType::F16, DType::Q8_0}) {
            const double cb = ct == DType::F16 ? 2.0 : 34.0 / 32.0;
            const std::string cs = ct == DType::F16 ? "" : " q8_0";
            Tensor kc = vk->alloc(ct, cache_ne), vc = vk->alloc(ct, cache_ne);
            add_rows(timed([&] { vk->kv_store(k, v, kc, vc, dcells); }), "kv_store", std::to_string(width) + ns + cs,
                     (8.0 + 2 * cb) * width * n, 0);
        }
    }

    // ---- fused attention (attention.comp + attention_reduce.comp) at each --attn-ctx depth:
    // decode (1 token after ctx cells) and prefill (n_pp tokens after ctx cells, causal), F16
    // and Q8_0 caches. GB/s counts the K/V bytes the op must read at least once (every cached
    // cell of each KV head, once per batch) plus q and out; GFLOP/s counts QK^T and PV over the
    // cells each query sees. "total" adds the split decode's reduce pass.
    for (int64_t actx : attn_ctx) {
        for (int64_t n : {int64_t{1}, n_pp}) {
            const int64_t width = int64_t(head_dim) * n_head_kv, cells = actx + n;
            const int64_t cache_ne[4] = {width, cells, 1, 1};
            std::vector<int32_t> span(static_cast<size_t>(2 * n));
            for (int64_t i = 0; i < n; ++i) span[2 * i] = 0, span[2 * i + 1] = static_cast<int32_t>(actx + i + 1);
            Tensor dspan = vk->alloc(DType::I32, std::array<int64_t, 4>{2, n, 1, 1}.data());
            vk->write(dspan, span.data(), span.size() * 4);
            Tensor q = f32({head_dim, n_head, n}), ao = f32({head_dim, n_head, n});
            const double cells_seen = double(n) * double(actx) + double(n) * double(n + 1) / 2;  // sum over queries
            for (DType ct : {DType::F16, DType::Q8_0}) {
                const double cb = ct == DType::F16 ? 2.0 : 34.0 / 32.0;  // bytes per cached value
                Tensor kc = vk->alloc(ct, cache_ne), vc = vk->alloc(ct, cache_ne);
                const AttentionParams ap{n_head, n_head_kv, head_dim, 0.125f};
                const std::string shape = "ctx " + std::to_string(actx) + " n=" + std::to_string(n) +
                                          (ct == DType::F16 ? "" : " q8_0");
                const double bytes = 2.0 * cb * double(width) * double(cells) + 8.0 * double(head_dim) * n_head * n;
                const double flops = 4.0 * head_dim * n_head * cells_seen;
                auto t = timed([&] { vk->attention(q, kc, vc, dspan, ao, ap); });
                vk::KernelTiming total;
                for (const auto& [variant, k] : t) {
                    Row r{"attention", variant, shape};
                    r.us = k.total_ns / reps / 1e3;
                    if (variant.rfind("attention_reduce", 0) != 0) {
                        r.gbs = bytes / (r.us * 1e3);
                        r.gflops = flops / (r.us * 1e3);
                    }
                    rows.push_back(r);
                    total.total_ns += k.total_ns;
                }
                if (t.size() > 1) {
                    Row r{"attention", "total", shape};
                    r.us = total.total_ns / reps / 1e3;
                    r.gbs = bytes / (r.us * 1e3);
                    r.gflops = flops / (r.us * 1e3);
                    rows.push_back(r);
                }
            }
        }
    }

    // ---- embedding lookup
    if (!attention_only) {
        auto bytes = random_weights(DType::Q4_0, dim, 4096, rng);
        const int64_t ne[4] = {dim, 4096, 1, 1};
        Tensor table = vk->upload_weight(DType::Q4_0, ne, bytes.data(), "bench_embd");
        Tensor ids = vk->alloc(DType::I32, std::array<int64_t, 4>{n_pp, 1, 1, 1}.data()), out = f32({dim, n_pp});
        add_rows(timed([&] { vk->get_rows(table, ids, out); }), "get_rows", std::to_string(dim) + " n=" + std::to_string(n_pp),
                 (18.0 / 32 + 4.0) * dim * n_pp, 0);
    }

    if (args.has("--json")) {
        nlohmann::json j;
        j["device"] = vk->name();
        j["copy_bandwidth_gbs"] = bw / 1e9;
        for (const Row& r : rows)
            j["kernels"].push_back({{"op", r.op}, {"variant", r.variant}, {"shape", r.shape}, {"us", r.us},
                                    {"gbs", r.gbs}, {"gflops", r.gflops}});
        std::printf("%s\n", j.dump().c_str());
        return 0;
    }
    std::printf("%-10s %-30s %-22s %12s %10s %10s %8s\n", "op", "variant", "shape", "time (us)", "GB/s", "GFLOP/s", "% bw");
    for (const Row& r : rows)
        std::printf("%-10s %-30s %-22s %12.1f %10.2f %10.2f %7.1f%%\n", r.op.c_str(), r.variant.c_str(), r.shape.c_str(),
                    r.us, r.gbs, r.gflops, bw > 0 ? 100.0 * r.gbs * 1e9 / bw : 0.0);
    std::printf("device copy bandwidth: %.1f GB/s (%s)\n", bw / 1e9, vk->name().c_str());
    return 0;
}

cli::Registrar reg("vulkan-kernels", "per-kernel GPU time, GB/s and GFLOP/s of every Vulkan shader variant",
                   cmd_vulkan_kernels);

}  // namespace
