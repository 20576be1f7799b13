// bench/bench_kernels.cpp: `minerva-bench kernels`: the CPU backend's ops timed one by one at
// TinyLlama-1.1B shapes, each as time, achieved GB/s (bytes the op must read) and GFLOP/s, next
// to the machine's memory bandwidth measured here by a multi-threaded streaming read and its f32
// FMA peak (independent FMA chains on every thread). Attention is timed at decode and for a
// 128-token causal prefill at 512, 2048 and 8192 cells of context.
// Decode (matvec) cycles through enough copies of each weight to defeat the caches, so its GB/s
// is comparable to the measured bandwidth; prefill (n = 128) reuses one copy.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend.h"
#include "cpu/cpu_features.h"
#include "cpu/fp16.h"
#include "cpu/gemm.h"
#include "cpu/gemm_amx.h"
#include "cpu/multi.h"
#include "cpu/vec_dot.h"
#include "cpu/thread_pool.h"
#include "minerva/error.h"
#include "tools/cli.h"

namespace {

using namespace minerva;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct AlignedBuf {
    explicit AlignedBuf(size_t n) : size((n + 63) / 64 * 64), p(static_cast<uint8_t*>(std::aligned_alloc(64, size))) {
        if (!p) throw Error("out of memory allocating " + std::to_string(n) + " bytes");
    }
    ~AlignedBuf() { std::free(p); }
    AlignedBuf(const AlignedBuf&) = delete;
    AlignedBuf& operator=(const AlignedBuf&) = delete;
    size_t size;
    uint8_t* p;
};

// Streaming read of a 1 GiB buffer split over the threads; best of 5 passes.
double measure_bandwidth(int n_threads) {
    const size_t n = size_t{1} << 30;
    AlignedBuf buf(n);
    std::memset(buf.p, 1, n);
    cpu::ThreadPool pool(n_threads);
    std::vector<long long> sink(static_cast<size_t>(pool.size()) * 8);
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = Clock::now();
        const int64_t chunk = int64_t{1} << 22;  // 4 MiB pieces claimed by the threads
        pool.parallel_for(static_cast<int64_t>(n) / chunk, 1, [&](int64_t c0, int64_t c1, int ith) {
            const int64_t b = c0 * chunk, e = c1 * chunk;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t o = b; o < e; o += 128) {
                a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf.p + o)));
                a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf.p + o + 32)));
                a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf.p + o + 64)));
                a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf.p + o + 96)));
            }
            a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
            sink[static_cast<size_t>(ith) * 8] += _mm256_extract_epi64(a0, 0);
        });
        best = std::max(best, static_cast<double>(n) / seconds_since(t0) / 1e9);
    }
    return best;
}

// Peak f32 multiply-add rate of n_threads threads (GFLOP/s): each thread runs 12 independent
// FMA chains on the widest vectors the CPU has for ~0.1 s; the best of 3.
#pragma GCC diagnostic push  // GCC 12's AVX-512 reduce intrinsics trip these (false positives)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iters) {
    __m512 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-3f);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; ++it)
        for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}
#pragma GCC diagnostic pop
float fma_chains_avx2(int64_t iters) {
    __m256 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(static_cast<float>(i) * 1e-3f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; ++it)
        for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0] + o[7];
}

double measure_flops(int n_threads) {
    const bool wide = cpu::features().avx512;
    const int64_t iters = int64_t{1} << 22;
    cpu::ThreadPool pool(n_threads);
    std::vector<float> sink(static_cast<size_t>(pool.size()) * 16);
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = Clock::now();
        pool.parallel_for(pool.size(), 1, [&](int64_t, int64_t, int ith) {
            sink[static_cast<size_t>(ith) * 16] += wide ? fma_chains_avx512(iters) : fma_chains_avx2(iters);
        });
        const double flops = 2.0 * 12 * (wide ? 16 : 8) * static_cast<double>(iters) * pool.size();
        best = std::max(best, flops / seconds_since(t0) / 1e9);
    }
    return best;
}

// Random but valid weights: random quant bytes with small positive fp16 scales.
void fill_weights(DType t, uint8_t* p, size_t bytes, int64_t n_elems, std::mt19937& rng) {
    if (t == DType::F32) {
        for (int64_t i = 0; i < n_elems; ++i) reinterpret_cast<float*>(p)[i] = static_cast<float>(rng() % 2001) * 1e-5f - 0.01f;
        return;
    }
    for (size_t i = 0; i < bytes; i += 4) {
        const uint32_t r = static_cast<uint32_t>(rng());
        std::memcpy(p + i, &r, std::min<size_t>(4, bytes - i));
    }
    const uint16_t h = cpu::f32_to_fp16(0.01f);
    if (t == DType::F16 || t == DType::BF16) {
        const uint16_t v = t == DType::F16 ? h : cpu::f32_to_bf16(0.01f);
        for (int64_t i = 0; i < n_elems; ++i) std::memcpy(p + 2 * i, &v, 2);
        return;
    }
    const auto& info = dtype_info(t);
    int offs[2] = {0, -1};
    switch (t) {
        case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: offs[1] = 2; break;
        case DType::Q2_K: offs[0] = 80; offs[1] = 82; break;
        case DType::Q3_K: offs[0] = 108; break;
        case DType::Q6_K: offs[0] = 208; break;
        default: break;
    }
    for (int64_t b = 0; b < n_elems / info.block_elems; ++b)
        for (int o : offs)
            if (o >= 0) std::memcpy(p + b * info.block_bytes + o, &h, 2);
}

struct Row {
    std::string op, type, shape;
    double ms = 0, gbs = 0, gflops = 0;
};

template <typename F>
double median_time(int reps, F&& f) {
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = Clock::now();
        f(i);
        t.push_back(seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

Tensor host_tensor(DType type, std::initializer_list<int64_t> ne, void* p) {
    Tensor t;
    t.type = type;
    int i = 0;
    for (int64_t v : ne) t.ne[i++] = v;
    t.host = p;
    return t;
}

// The AMX GEMM against the VNNI GEMM (the same matmul, features switched in-process, rounds
// alternating) at n columns, with int8 TOPS (2 ops per multiply-add) against the tile unit's
// peak measured here: back-to-back TDPBSSD on every thread at once. Where AMX is missing the
// reason is reported instead.
struct AmxReport {
    std::string skipped;  // why there are no rows
    double peak_tops = 0;
    struct Line {
        std::string type, shape;
        double vnni_ms = 0, amx_ms = 0, tops = 0;
    };
    std::vector<Line> lines;
};

AmxReport amx_vs_vnni(Backend& be, const std::vector<DType>& types, int n_threads, int64_t n, const float* xv, float* ov,
                      std::mt19937& rng) {
    AmxReport rep;
    const cpu::Features detected = cpu::detected_features();
    if (!cpu::amx_compiled()) rep.skipped = "this build has no AMX intrinsics";
    else if (!detected.amx) rep.skipped = cpu::amx_status();
    if (!rep.skipped.empty()) return rep;
    {
        const int threads = cpu::ThreadPool(n_threads).size();
        std::vector<double> per(static_cast<size_t>(threads));
        std::vector<std::thread> ts;
        for (int i = 0; i < threads; ++i) ts.emplace_back([&per, i] { per[static_cast<size_t>(i)] = cpu::amx_peak_ops_per_second(0.3); });
        for (auto& t : ts) t.join();
        for (double p : per) rep.peak_tops += p / 1e12;
    }
    cpu::Features vnni = detected;
    vnni.amx = false;
    const cpu::Features saved = cpu::features();
    const int64_t shapes[][2] = {{2048, 2048}, {2048, 5632}, {5632, 2048}, {2048, 32000}};
    for (DType t : types) {
        if (!cpu::gemm_supported(t)) continue;
        for (const auto& s : shapes) {
            const int64_t k = s[0], m = s[1];
            const size_t wbytes = row_bytes(t, k) * static_cast<size_t>(m);
            AlignedBuf buf(wbytes);
            fill_weights(t, buf.p, wbytes, k * m, rng);
            const int64_t ne[4] = {k, m, 1, 1};
            const Tensor w = be.upload_weight(t, ne, buf.p, "w");
            const Tensor x = host_tensor(DType::F32, {k, n}, const_cast<float*>(xv));
            const Tensor o = host_tensor(DType::F32, {m, n}, ov);
            std::vector<double> tv, ta;
            for (int round = 0; round < 4; ++round) {  // round 0 warms up (scratch growth)
                for (int which = 0; which < 2; ++which) {
                    cpu::set_features(which ? detected : vnni);
                    const auto t0 = Clock::now();
                    be.matmul(w, x, o);
                    if (round) (which ? ta : tv).push_back(seconds_since(t0));
                }
            }
            std::sort(tv.begin(), tv.end());
            std::sort(ta.begin(), ta.end());
            const double ops = 2.0 * static_cast<double>(k) * static_cast<double>(m) * static_cast<double>(n);
            rep.lines.push_back({std::string(dtype_name(t)), std::to_string(k) + "x" + std::to_string(m), tv[1] * 1e3, ta[1] * 1e3,
                                 ops / ta[1] / 1e12});
        }
    }
    cpu::set_features(saved);
    return rep;
}

int cmd_kernels(int argc, char** argv) {
    cli::Args args(argc, argv, {"-t|--threads", "--types", "--reps", "-n|--prefill", "--shapes"},
                   {"--json", "--matvec-only", "--hot", "-h|--help"});
    if (args.has("--help")) {
        std::printf(
            "usage: minerva-bench kernels [-t N] [--types Q4_0,Q8_0,...] [--reps R] [-n PREFILL_TOKENS]\n"
            "                             [--shapes KxM,...] [--matvec-only] [--hot] [--json]\n"
            "Times the CPU backend's matvec (decode) and matmul (prefill) per weight type at TinyLlama-1.1B\n"
            "shapes (or the given KxM shapes: K the row length, M the rows), and the other ops, next to the\n"
            "measured memory bandwidth. --matvec-only times the matvecs alone; --hot reuses one copy of\n"
            "each matrix (it stays in cache when small: the kernels' compute speed). On CPUs with AMX, the\n"
            "AMX GEMM against the VNNI GEMM at n = PREFILL_TOKENS, in TOPS against the measured tile-unit\n"
            "peak (MINERVA_CPU=avx512 keeps every matmul on VNNI).\n");
        return 0;
    }
    const int n_threads = static_cast<int>(args.get_int("-t", 0));
    const int reps = static_cast<int>(std::max(3LL, args.get_int("--reps", 15)));
    const int64_t n_prefill = std::max(2LL, args.get_int("-n", 128));
    std::vector<DType> types;
    {
        std::string list = args.get("--types", "F16,Q4_0,Q8_0,Q4_K,Q5_K,Q6_K");
        size_t s = 0;
        while (s <= list.size()) {
            size_t e = list.find(',', s);
            std::string name = list.substr(s, e == std::string::npos ? std::string::npos : e - s);
            auto t = dtype_from_name(name);
            if (!t || !dtype_supported_for_compute(*t)) throw Error("unknown or unsupported weight type '" + name + "'");
            types.push_back(*t);
            if (e == std::string::npos) break;
            s = e + 1;
        }
    }
    const bool json = args.has("--json");

    auto be = make_cpu_backend(n_threads);
    const double bw = measure_bandwidth(n_threads), peak_flops = measure_flops(n_threads);
    std::fprintf(stderr, "%s; memory bandwidth (streaming read): %.1f GB/s; f32 FMA peak %.1f GFLOP/s\n", be->name().c_str(), bw,
                 peak_flops);

    struct Shape { int64_t k, m; };
    std::vector<Shape> shapes = {{2048, 2048}, {2048, 5632}, {5632, 2048}, {2048, 32000}};  // attn_q/o, gate/up, down, output
    if (args.has("--shapes")) {
        shapes.clear();
        const std::string list = args.get("--shapes", "");
        size_t s = 0;
        while (s <= list.size()) {
            const size_t e = list.find(',', s);
            const std::string one = list.substr(s, e == std::string::npos ? std::string::npos : e - s);
            long long k = 0, m = 0;
            char x = 0, extra = 0;
            if (std::sscanf(one.c_str(), "%lld%c%lld%c", &k, &x, &m, &extra) != 3 || x != 'x' || k <= 0 || m <= 0 || k > (1 << 20) || m > (1 << 24))
                throw Error("--shapes: '" + one + "' is not KxM (e.g. 1024x3072)");
            shapes.push_back({k, m});
            if (e == std::string::npos) break;
            s = e + 1;
        }
    }
    const bool matvec_only = args.has("--matvec-only"), hot = args.has("--hot");
    std::vector<int64_t> attn_ctx = {512, 2048, 8192};
    std::vector<DType> kv_types = {DType::F16, DType::Q8_0};
    int64_t max_k = 1, max_m = 1;
    for (const Shape& s : shapes) max_k = std::max(max_k, s.k), max_m = std::max(max_m, s.m);
    std::vector<Row> rows;
    std::mt19937 rng(42);
    std::vector<float> xv(static_cast<size_t>(std::max<int64_t>(max_k, 5632) * n_prefill));  // also the other ops' inputs
    for (auto& v : xv) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
    std::vector<float> ov(static_cast<size_t>(max_m * n_prefill));

    for (DType t : types) {
        for (const Shape& s : shapes) {
            const size_t wbytes = row_bytes(t, s.k) * static_cast<size_t>(s.m);
            // enough copies that one pass over them (>= 256 MB) cannot stay in any cache
            const int copies = hot ? 1 : static_cast<int>(std::max<size_t>(1, (size_t{256} << 20) / wbytes + 1));
            AlignedBuf buf(wbytes * static_cast<size_t>(copies));
            fill_weights(t, buf.p, wbytes, s.k * s.m, rng);
            for (int c = 1; c < copies; ++c) std::memcpy(buf.p + c * wbytes, buf.p, wbytes);
            std::vector<Tensor> w;
            const int64_t ne[4] = {s.k, s.m, 1, 1};
            for (int c = 0; c < copies; ++c) w.push_back(be->upload_weight(t, ne, buf.p + c * wbytes, "w"));
            const std::string shape = std::to_string(s.k) + "x" + std::to_string(s.m);
            const double flops1 = 2.0 * static_cast<double>(s.k) * static_cast<double>(s.m);

            const Tensor x1 = host_tensor(DType::F32, {s.k, 1}, xv.data());
            const Tensor o1 = host_tensor(DType::F32, {s.m, 1}, ov.data());
            be->matmul(w[0], x1, o1);  // warm-up (scratch growth)
            const int r1 = std::max(reps, copies);
            const double t1 = median_time(r1, [&](int i) { be->matmul(w[static_cast<size_t>(i % copies)], x1, o1); });
            rows.push_back({"matvec", std::string(dtype_name(t)), shape, t1 * 1e3, static_cast<double>(wbytes) / t1 / 1e9, flops1 / t1 / 1e9});
            if (matvec_only) continue;

            const Tensor xn = host_tensor(DType::F32, {s.k, n_prefill}, xv.data());
            const Tensor on = host_tensor(DType::F32, {s.m, n_prefill}, ov.data());
            be->matmul(w[0], xn, on);
            const double tn = median_time(3, [&](int) { be->matmul(w[0], xn, on); });
            rows.push_back({"matmul n=" + std::to_string(n_prefill), std::string(dtype_name(t)), shape, tn * 1e3,
                            static_cast<double>(wbytes) / tn / 1e9, flops1 * static_cast<double>(n_prefill) / tn / 1e9});
        }
    }

    AmxReport amx;
    if (matvec_only) amx.skipped = "not timed with --matvec-only";
    else amx = amx_vs_vnni(*be, types, n_threads, n_prefill, xv.data(), ov.data(), rng);

    // The other ops of a TinyLlama layer (dim 2048, 32 heads, 4 KV heads, head_dim 64, ffn 5632).
    if (!matvec_only) {
        const int64_t dim = 2048, hd = 64, nh = 32, ff = 5632;
        auto alloc = [&](DType t, std::initializer_list<int64_t> ne) {
            int64_t a[4] = {1, 1, 1, 1};
            int i = 0;
            for (int64_t v : ne) a[i++] = v;
            return be->alloc(t, a);
        };
        Tensor x = alloc(DType::F32, {dim}), y = alloc(DType::F32, {dim}), g = alloc(DType::F32, {dim});
        std::vector<float> ones(static_cast<size_t>(ff), 0.5f);
        be->write(g, ones.data(), static_cast<size_t>(dim) * 4);
        be->write(x, xv.data(), static_cast<size_t>(dim) * 4);
        double t = median_time(reps * 10, [&](int) { be->rms_norm(x, g, y, 1e-5f); });
        rows.push_back({"rms_norm", "F32", std::to_string(dim), t * 1e3, 3.0 * dim * 4 / t / 1e9, 4.0 * dim / t / 1e9});
        Tensor gate = alloc(DType::F32, {ff}), up = alloc(DType::F32, {ff}), out = alloc(DType::F32, {ff});
        be->write(gate, xv.data(), static_cast<size_t>(ff) * 4);
        be->write(up, xv.data() + ff, static_cast<size_t>(ff) * 4);
        t = median_time(reps * 10, [&](int) { be->swiglu(gate, up, out); });
        rows.push_back({"swiglu", "F32", std::to_string(ff), t * 1e3, 3.0 * ff * 4 / t / 1e9, 6.0 * ff / t / 1e9});
        Tensor q = alloc(DType::F32, {hd, nh, 1}), pos = alloc(DType::I32, {1});
        const int32_t p0 = 100;
        be->write(pos, &p0, 4);
        be->write(q, xv.data(), static_cast<size_t>(hd * nh) * 4);
        t = median_time(reps * 10, [&](int) { be->rope(q, pos, RopeParams{static_cast<int>(hd), 10000.f, 1.f}, nullptr); });
        rows.push_back({"rope", "F32", "64x32", t * 1e3, 2.0 * hd * nh * 4 / t / 1e9, 6.0 * hd * nh / t / 1e9});
    }
    // Attention of the same layer shape: decode (one token) at several context lengths, and a
    // causal prefill of 128 tokens on top of the rest of the context, per cache type. The cache
    // holds random values; its bytes are what the op must read.
    if (!matvec_only) {
        const int64_t hd = 64, nh = 32, nkv = 4, ctx_max = attn_ctx.back(), n_pf = 128;
        auto alloc = [&](DType t, std::initializer_list<int64_t> ne) {
            int64_t a[4] = {1, 1, 1, 1};
            int i = 0;
            for (int64_t v : ne) a[i++] = v;
            return be->alloc(t, a);
        };
        Tensor q = alloc(DType::F32, {hd, nh, n_pf}), o = alloc(DType::F32, {hd, nh, n_pf});
        std::vector<float> qv(static_cast<size_t>(hd * nh * n_pf));
        for (auto& v : qv) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
        be->write(q, qv.data(), qv.size() * 4);
        std::vector<float> kv(static_cast<size_t>(hd * nkv * ctx_max));
        for (auto& v : kv) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
        for (DType kvt : kv_types) {
            Tensor kc = alloc(kvt, {hd * nkv, ctx_max}), vc = alloc(kvt, {hd * nkv, ctx_max});
            {
                Tensor src = alloc(DType::F32, {hd * nkv, ctx_max}), cells = alloc(DType::I32, {ctx_max});
                std::vector<int32_t> idx(static_cast<size_t>(ctx_max));
                for (int64_t i = 0; i < ctx_max; ++i) idx[static_cast<size_t>(i)] = static_cast<int32_t>(i);
                be->write(src, kv.data(), kv.size() * 4);
                be->write(cells, idx.data(), idx.size() * 4);
                be->kv_store(src, src, kc, vc, cells);
            }
            const double row_bytes = static_cast<double>(kc.row_size()) * 2;  // K and V of one cell
            const AttentionParams ap{static_cast<int>(nh), static_cast<int>(nkv), static_cast<int>(hd), 0.125f};
            for (int64_t len : attn_ctx) {
                for (int64_t n_tok : {int64_t{1}, n_pf}) {
                    if (n_tok > len) continue;
                    Tensor span = alloc(DType::I32, {2, n_tok});
                    std::vector<int32_t> sp(static_cast<size_t>(2 * n_tok));
                    for (int64_t t = 0; t < n_tok; ++t) sp[2 * t] = 0, sp[2 * t + 1] = static_cast<int32_t>(len - n_tok + t + 1);  // causal
                    be->write(span, sp.data(), sp.size() * 4);
                    Tensor qn = q, on = o;
                    qn.ne[2] = on.ne[2] = n_tok;
                    const int r = n_tok == 1 ? reps * 4 : std::max(3, reps / 3);
                    const double t = median_time(r, [&](int) { be->attention(qn, kc, vc, span, on, ap); });
                    double pairs = 0;  // (token, cell) pairs attended
                    for (int64_t i = 0; i < n_tok; ++i) pairs += static_cast<double>(sp[2 * i + 1]);
                    rows.push_back({(n_tok == 1 ? "attn decode ctx=" : "attn pp128 ctx=") + std::to_string(len), std::string(dtype_name(kvt)),
                                    "32/4x64", t * 1e3, static_cast<double>(len) * row_bytes / t / 1e9, 4.0 * pairs * hd * nh / t / 1e9});
                }
            }
        }
    }

    if (json) {
        nlohmann::json j;
        j["backend"] = be->name();
        j["bandwidth_gbs"] = bw;
        j["peak_gflops_f32"] = peak_flops;
        j["threads"] = n_threads;
        for (const Row& r : rows)
            j["ops"].push_back({{"op", r.op}, {"type", r.type}, {"shape", r.shape}, {"ms", r.ms}, {"gbs", r.gbs}, {"gflops", r.gflops}});
        if (!amx.skipped.empty()) j["amx"] = {{"skipped", amx.skipped}};
        else {
            j["amx"]["peak_tops"] = amx.peak_tops;
            for (const auto& l : amx.lines)
                j["amx"]["gemm"].push_back({{"type", l.type}, {"shape", l.shape}, {"n", n_prefill}, {"vnni_ms", l.vnni_ms},
                                            {"amx_ms", l.amx_ms}, {"amx_tops", l.tops}});
        }
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s, memory bandwidth %.1f GB/s, f32 FMA peak %.1f GFLOP/s\n", be->name().c_str(), bw, peak_flops);
        std::printf("%-20s %-5s %-11s %10s %9s %7s %9s %7s\n", "op", "type", "shape (kxm)", "time ms", "GB/s", "%bw", "GFLOP/s", "%f32pk");
        for (const Row& r : rows)
            std::printf("%-20s %-5s %-11s %10.4f %9.1f %6.0f%% %9.1f %6.0f%%\n", r.op.c_str(), r.type.c_str(), r.shape.c_str(), r.ms, r.gbs,
                        100.0 * r.gbs / bw, r.gflops, 100.0 * r.gflops / peak_flops);
        if (!amx.skipped.empty()) {
            std::printf("AMX GEMM: skipped (%s)\n", amx.skipped.c_str());
        } else {
            std::printf("AMX GEMM, n=%lld, against the VNNI GEMM; tile-unit peak %.1f TOPS (int8, TDPBSSD on every thread)\n",
                        static_cast<long long>(n_prefill), amx.peak_tops);
            std::printf("%-5s %-11s %10s %10s %9s %7s %9s\n", "type", "shape (kxm)", "VNNI ms", "AMX ms", "AMX TOPS", "%peak", "AMX/VNNI");
            for (const auto& l : amx.lines)
                std::printf("%-5s %-11s %10.3f %10.3f %9.2f %6.1f%% %8.2fx\n", l.type.c_str(), l.shape.c_str(), l.vnni_ms, l.amx_ms,
                            l.tops, 100.0 * l.tops / amx.peak_tops, l.vnni_ms / l.amx_ms);
        }
    }
    return 0;
}

const cli::Registrar reg("kernels", "time the CPU kernels (GB/s, GFLOP/s) against the measured memory bandwidth", cmd_kernels);

// The int8 multiply rate of one core: 12 independent chains of 512-bit vpdpbusd (64 products
// each), best of 200 short runs. Only called where CPUID reports AVX-512 VNNI.
__attribute__((target("avx512f,avx512vnni"))) double vnni_peak_gops() {
    double best = 1e30;
    const long iters = 2000;
    for (int rep = 0; rep < 200; ++rep) {
        const auto t0 = Clock::now();
        for (long i = 0; i < iters; ++i)
            asm volatile(
                ".irp r, 0,1,2,3,4,5,6,7,8,9,10,11\n"
                "vpdpbusd %%zmm12, %%zmm13, %%zmm\\r\n"
                ".endr\n" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11");
        best = std::min(best, seconds_since(t0));
    }
    return 12.0 * iters * 64 * 2 / best / 1e9;
}

// minerva-bench smallbatch: the matmul of 2..16 columns (batched decode) through each kernel
// family that can serve it (the multi-column row kernels, the GEMM, the column-lane kernels of
// cpu/multi.h) and through the measured choice (auto), with the weights in cache so that the
// kernels' arithmetic is what is timed: the data behind cpu::batch_kernel(). Best of --reps.
int cmd_smallbatch(int argc, char** argv) {
    cli::Args args(argc, argv, {"-t|--threads", "--types", "--reps", "-k", "-m"}, {"-h|--help"});
    if (args.has("--help")) {
        std::printf(
            "usage: minerva-bench smallbatch [-t 1] [--types Q4_0,Q8_0,Q4_K,Q6_K] [--reps 100] [-k 2048] [-m 512]\n"
            "GOP/s of a k x m matmul of 2..16 columns per kernel family (rows, gemm, cols) and the chosen one.\n");
        return 0;
    }
    const int n_threads = static_cast<int>(args.get_int("-t", 1, 1, 1024));
    const int reps = static_cast<int>(args.get_int("--reps", 100, 1, 1 << 20));
    const int64_t k = args.get_int("-k", 2048, 256, 1 << 20), m = args.get_int("-m", 512, 1, 1 << 20);
    if (k % 256 != 0) throw Error("-k must be a multiple of 256");
    std::vector<DType> types;
    {
        std::string list = args.get("--types", "Q4_0,Q8_0,Q4_K,Q6_K");
        size_t s = 0;
        while (s <= list.size()) {
            const size_t e = list.find(',', s);
            const std::string name = list.substr(s, e == std::string::npos ? std::string::npos : e - s);
            auto t = dtype_from_name(name);
            if (!t || !dtype_supported_for_compute(*t)) throw Error("unknown or unsupported weight type '" + name + "'");
            types.push_back(*t);
            if (e == std::string::npos) break;
            s = e + 1;
        }
    }
    auto be = make_cpu_backend(n_threads);
    if (cpu::features().avx512_vnni)
        std::printf("int8 peak of one core (independent 512-bit vpdpbusd): %.0f GOP/s\n", vnni_peak_gops());
    std::printf("%s, k=%lld m=%lld, GOP/s (2 k m n / best time of %d); '-': the family cannot serve that n\n", be->name().c_str(),
                static_cast<long long>(k), static_cast<long long>(m), reps);
    std::printf("%-5s %3s %8s %8s %8s %8s  %s\n", "type", "n", "rows", "gemm", "cols", "auto", "auto is");
    std::mt19937 rng(7);
    std::vector<float> xv(static_cast<size_t>(k * cpu::kColsMax)), ov(static_cast<size_t>(m * cpu::kColsMax));
    for (auto& v : xv) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
    const char* names[] = {"default", "rows", "gemm", "cols"};
    for (DType t : types) {
        const size_t wbytes = row_bytes(t, k) * static_cast<size_t>(m);
        AlignedBuf buf(wbytes);
        fill_weights(t, buf.p, wbytes, k * m, rng);
        const int64_t ne[4] = {k, m, 1, 1};
        const Tensor w = be->upload_weight(t, ne, buf.p, "w");
        const cpu::DotKernel kern = cpu::find_dot_kernel(t);
        for (int n = 2; n <= cpu::kColsMax; ++n) {
            const Tensor x = host_tensor(DType::F32, {k, n}, xv.data()), o = host_tensor(DType::F32, {m, n}, ov.data());
            const bool can[4] = {true, kern.multi != nullptr && n <= cpu::kMultiColumns, cpu::gemm_supported(t) && n >= 4,
                                 cpu::find_cols_kernel(t, k, n).rows != nullptr};
            double gops[4] = {0, 0, 0, 0};
            for (int f : {1, 2, 3, 0}) {
                if (!can[f]) continue;
                cpu::force_batch_kernel(static_cast<cpu::BatchKernel>(f));
                be->matmul(w, x, o);  // warm-up
                double best = 1e30;
                for (int r = 0; r < reps; ++r) {
                    const auto t0 = Clock::now();
                    be->matmul(w, x, o);
                    best = std::min(best, seconds_since(t0));
                }
                gops[f] = 2.0 * static_cast<double>(k) * static_cast<double>(m) * n / best / 1e9;
            }
            cpu::force_batch_kernel(cpu::BatchKernel::Default);
            const cpu::BatchKernel chosen = cpu::batch_kernel(t, k, n);
            auto cell = [&](int f) { return can[f] ? std::to_string(static_cast<int>(gops[f] + 0.5)) : std::string("-"); };
            std::printf("%-5s %3d %8s %8s %8s %8s  %s\n", std::string(dtype_name(t)).c_str(), n, cell(1).c_str(), cell(2).c_str(),
                        cell(3).c_str(), cell(0).c_str(), names[static_cast<int>(chosen)]);
        }
    }
    return 0;
}

const cli::Registrar reg_smallbatch("smallbatch", "matmul of 2..16 columns per kernel family (batched decode)", cmd_smallbatch);

}  // namespace
