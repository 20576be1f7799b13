// tests/test_gemm_amx.cpp: the AMX tile GEMM (kernels/cpu/gemm_amx.*).
//
// The kernel is written against tile ops with two implementations, so most of it is tested on
// any CPU with AVX-512 VNNI: the scalar tile emulator (checked here against the SDM's
// definitions, including the shapes it must refuse) runs the real kernel's packing, tile
// configurations, strides, block scales and edge handling, which must (1) equal the exact dot
// products of the dequantized weights with the 8-bit activations, and (2) equal the VNNI GEMM bit
// for bit (same integer sums, same float steps), on every weight type and on shapes that are not
// multiples of the tiles (rows and columns off 16, several column groups, one column). Through the
// backend the same holds with the dispatch in matmul.cpp and several threads.
//
// The tests of the real tile instructions report SKIPPED where the CPU or OS lacks AMX, and FAIL
// instead under MINERVA_REQUIRE_AMX=1 (for a CI machine that is known to have it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <tuple>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/amx_tiles.h"
#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/gemm.h"
#include "cpu/gemm_amx.h"
#include "cpu/gemm_layout.h"
#include "host_tensor.h"

using namespace minerva;
using namespace minerva::cpu;

namespace {

// ---- the tile emulator against the SDM --------------------------------------------------------

TileConfig config_of(std::initializer_list<std::tuple<int, int, int>> tiles) {  // (tile, rows, colsb)
    TileConfig c;
    c.palette_id = 1;
    for (auto [t, r, cb] : tiles) {
        c.rows[t] = static_cast<uint8_t>(r);
        c.colsb[t] = static_cast<uint16_t>(cb);
    }
    return c;
}

// Every TDPB variant on odd shapes (3 x 20-byte C, 7 x 3 dwords of K) with bytes covering the
// whole signed and unsigned ranges, accumulating onto a loaded C, against the SDM's formula
// written out here with explicit sign or zero extension.
TEST(TileEmulator, DotProductsFollowTheSdm) {
    std::mt19937 rng(5);
    const int M = 7, KD = 3, N = 5;  // C: M x 4N bytes; A: M x 4KD; B: KD x 4N
    std::vector<uint8_t> a(M * 4 * KD), b(KD * 4 * N);
    std::vector<int32_t> c0(M * N);
    for (auto& v : a) v = static_cast<uint8_t>(rng());
    for (auto& v : b) v = static_cast<uint8_t>(rng());
    a[0] = 0x80, b[0] = 0xff, a[1] = 0x7f, b[1] = 0x80;  // extremes of both interpretations
    for (auto& v : c0) v = static_cast<int32_t>(rng());
    c0[0] = INT32_MAX;  // wraps, as int32 arithmetic on the tile does
    for (int variant = 0; variant < 4; ++variant) {
        const bool sa = variant < 2, sb = variant % 2 == 0;
        TileEmulator e;
        e.load_config(config_of({{0, M, 4 * N}, {1, M, 4 * KD}, {2, KD, 4 * N}}));
        e.load(0, c0.data(), 4 * N);
        e.load(1, a.data(), 4 * KD);
        e.load(2, b.data(), 4 * N);
        if (variant == 0) e.dpbssd(0, 1, 2);
        if (variant == 1) e.dpbsud(0, 1, 2);
        if (variant == 2) e.dpbusd(0, 1, 2);
        if (variant == 3) e.dpbuud(0, 1, 2);
        std::vector<int32_t> got(M * N, -1);
        e.store(0, got.data(), 4 * N);
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
                int64_t want = c0[m * N + n];
                for (int k = 0; k < 4 * KD; ++k) {
                    const uint8_t x = a[m * 4 * KD + k], y = b[(k / 4) * 4 * N + 4 * n + k % 4];
                    want += (sa ? static_cast<int8_t>(x) : x) * static_cast<int64_t>(sb ? static_cast<int8_t>(y) : y);
                }
                EXPECT_EQ(got[m * N + n], static_cast<int32_t>(static_cast<uint32_t>(want)))
                    << "variant " << variant << " m=" << m << " n=" << n;
            }
    }
}

// A load reads colsb bytes of `rows` rows at the given stride and nothing else; a store writes
// exactly that; tilezero clears.
TEST(TileEmulator, LoadStoreTouchOnlyTheConfiguredShape) {
    TileEmulator e;
    e.load_config(config_of({{5, 3, 12}}));
    std::vector<uint8_t> src(100);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i + 1);
    e.load(5, src.data(), 40);  // rows at 0, 40, 80
    std::vector<uint8_t> dst(60, 0xee);
    e.store(5, dst.data(), 20);
    for (int r = 0; r < 3; ++r)
        for (int i = 0; i < 20; ++i)
            EXPECT_EQ(dst[20 * r + i], i < 12 ? src[40 * r + i] : 0xee) << "row " << r << " byte " << i;
    e.zero(5);
    e.store(5, dst.data(), 20);
    EXPECT_EQ(dst[0], 0);
    EXPECT_EQ(dst[41], 0);
    EXPECT_EQ(dst[52], 0xee);
}

// What the CPU refuses (#GP on the configuration, #UD on an instruction), the emulator refuses,
// so a kernel with a wrong tile shape fails here instead of only on AMX hardware.
TEST(TileEmulator, RefusesWhatTheCpuRefuses) {
    TileEmulator e;
    uint8_t buf[1024] = {};
    EXPECT_THROW(e.zero(0), std::logic_error);  // no configuration loaded
    TileConfig bad = config_of({{0, 17, 64}});
    EXPECT_THROW(e.load_config(bad), std::logic_error);  // 17 rows
    bad = config_of({{0, 16, 68}});
    EXPECT_THROW(e.load_config(bad), std::logic_error);  // 68 bytes per row
    bad = config_of({{9, 1, 4}});
    EXPECT_THROW(e.load_config(bad), std::logic_error);  // tile 9 does not exist
    bad = config_of({{0, 4, 0}});
    EXPECT_THROW(e.load_config(bad), std::logic_error);  // rows without bytes
    bad = config_of({});
    bad.palette_id = 2;
    EXPECT_THROW(e.load_config(bad), std::logic_error);
    e.load_config(config_of({{0, 16, 64}, {1, 16, 32}, {2, 8, 64}, {3, 16, 64}, {4, 4, 64}, {6, 15, 32}}));
    EXPECT_NO_THROW(e.dpbsud(0, 1, 2));
    EXPECT_THROW(e.dpbsud(0, 1, 4), std::logic_error);  // a.colsb / 4 = 8 != b.rows = 4
    EXPECT_THROW(e.dpbsud(0, 6, 2), std::logic_error);  // a.rows 15 != dst.rows 16
    EXPECT_THROW(e.dpbsud(0, 0, 2), std::logic_error);  // the same tile twice
    EXPECT_THROW(e.dpbsud(0, 1, 7), std::logic_error);  // tmm7 not configured
    EXPECT_THROW(e.load(7, buf, 64), std::logic_error);
    e.release();
    EXPECT_THROW(e.load(0, buf, 64), std::logic_error);  // tilerelease drops the configuration
}

// ---- detection ---------------------------------------------------------------------------------

// CPUID's AMX bits, decoded by cpu_features.cpp, against what Linux decoded from the same CPUID
// (/proc/cpuinfo flags amx_tile, amx_int8); and a test cannot switch AMX on where it is absent
// (that would be SIGILL, not a failed test).
TEST(AmxDetection, AgreesWithTheKernelAndCannotBeForced) {
    FILE* f = std::fopen("/proc/cpuinfo", "r");
    if (f) {
        std::string flags;
        char line[8192];
        while (std::fgets(line, sizeof line, f))
            if (std::strncmp(line, "flags", 5) == 0) {
                flags = line;
                break;
            }
        std::fclose(f);
        const bool listed = flags.find(" amx_tile") != std::string::npos && flags.find(" amx_int8") != std::string::npos;
        const std::string status = amx_status();
        if (listed) {
            // Usable, or a reason other than the CPU (the kernel refusing the tile state).
            EXPECT_TRUE(detected_features().amx || status != "AMX not available on this CPU") << status;
        } else {
            EXPECT_FALSE(detected_features().amx);
            EXPECT_EQ(status, "AMX not available on this CPU");
        }
    }
    const Features before = features();
    Features want = detected_features();
    want.amx = true;
    set_features(want);
    EXPECT_EQ(features().amx, detected_features().amx);
    set_features(before);
}

// ---- the GEMM --------------------------------------------------------------------------------

struct Aligned {
    explicit Aligned(size_t n) : p(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64 + 64))) {}
    ~Aligned() { std::free(p); }
    Aligned(const Aligned&) = delete;
    Aligned& operator=(const Aligned&) = delete;
    uint8_t* p;
};

bool is_k_type(DType t) {
    return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}

// Random quant bytes with sane fp16 scales (host_tensor.h), m rows of k.
std::vector<uint8_t> random_weights(DType t, int64_t k, int64_t m, std::mt19937& rng) {
    std::vector<uint8_t> w(row_bytes(t, k) * static_cast<size_t>(m));
    if (!minerva::test::fill_random_weights(t, w.data(), k * m, rng)) ADD_FAILURE() << "no random fill for " << dtype_name(t);
    return w;
}

// The GEMM driven the way matmul.cpp drives it: activations quantized per column, weights
// unpacked 16 rows at a time, every column against each tile through `fn`. out has ldo >= m
// floats per column; what lies past m must stay untouched.
void run_gemm(GemmTileFn fn, DType t, const std::vector<uint8_t>& w, int64_t k, int64_t m, const uint8_t* cols, size_t cs,
              int64_t n, float* out, int64_t ldo) {
    const size_t rs = row_bytes(t, k), ts = gemm_tile_bytes(t, k);
    Aligned tile(ts + 16 * static_cast<size_t>(k));
    for (int64_t r = 0; r < m; r += 16) {
        const int nr = static_cast<int>(std::min<int64_t>(16, m - r));
        gemm_unpack_tile(t, w.data() + rs * static_cast<size_t>(r), rs, nr, k, tile.p, tile.p + ts);
        fn(t, k, tile.p, nr, cols, cs, static_cast<int>(n), out + r, ldo);
    }
}

bool skip_without_vnni() { return !detected_features().avx512_vnni; }
constexpr const char* kNoVnni = "the GEMM's scale steps use AVX-512 VNNI, which this CPU lacks";

// Checks `fn` on one weight type across awkward shapes: against the exact dot products on the
// quantized activations (relative to the products' magnitude, 1e-5: float rounding only) and
// bit for bit against the VNNI kernel.
void check_tile_kernel(GemmTileFn fn, const char* name, DType t) {
    std::mt19937 rng(static_cast<unsigned>(t) * 31u + 7u);
    const std::vector<int64_t> ks = is_k_type(t) ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{32, 96, 288};
    for (int64_t k : ks)
        for (int64_t m : {1, 7, 16, 37})
            for (int64_t n : {1, 5, 16, 17, 40}) {
                const std::vector<uint8_t> w = random_weights(t, k, m, rng);
                const GemmLayout L = gemm_layout(t, k);
                const size_t cs = gemm_col_bytes(t, k);
                Aligned cols(cs * static_cast<size_t>(n));
                std::normal_distribution<float> nd(0.f, 1.f);
                std::vector<float> x(static_cast<size_t>(k));
                for (int64_t j = 0; j < n; ++j) {
                    for (auto& v : x) v = nd(rng);
                    gemm_quantize_col(t, x.data(), k, cols.p + cs * static_cast<size_t>(j));
                }
                const int64_t ldo = m + 5;
                std::vector<float> got(static_cast<size_t>(ldo * n), NAN), vnni(got.size(), NAN);
                run_gemm(fn, t, w, k, m, cols.p, cs, n, got.data(), ldo);
                run_gemm(gemm_tile, t, w, k, m, cols.p, cs, n, vnni.data(), ldo);
                const std::string at = std::string(name) + " " + std::string(dtype_name(t)) + " k=" + std::to_string(k) +
                                       " m=" + std::to_string(m) + " n=" + std::to_string(n);
                // The activations the kernel saw: q * dx per block of 32 (256 for the K types).
                const int64_t bs = L.k_mode ? 256 : 32;
                std::vector<float> row(static_cast<size_t>(k));
                int mismatches = 0;
                for (int64_t r = 0; r < m; ++r) {
                    dequantize_row(t, w.data() + row_bytes(t, k) * static_cast<size_t>(r), row.data(), k);
                    for (int64_t j = 0; j < n; ++j) {
                        const uint8_t* col = cols.p + cs * static_cast<size_t>(j);
                        const auto* q = reinterpret_cast<const int8_t*>(col);
                        const auto* dx = reinterpret_cast<const float*>(col + L.cdx);
                        double want = 0, mag = 0;
                        for (int64_t e = 0; e < k; ++e) {
                            const double p = static_cast<double>(row[static_cast<size_t>(e)]) * q[e] * dx[e / bs];
                            want += p;
                            mag += std::fabs(p);
                        }
                        const float g = got[static_cast<size_t>(j * ldo + r)], v = vnni[static_cast<size_t>(j * ldo + r)];
                        if (!(std::fabs(g - want) <= 1e-5 * mag + 1e-6) || std::memcmp(&g, &v, 4) != 0) {
                            if (++mismatches <= 5)
                                ADD_FAILURE() << at << " row " << r << " col " << j << ": got " << g << ", exact " << want
                                              << ", VNNI " << v;
                        }
                    }
                }
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t r = m; r < ldo; ++r)
                        if (!std::isnan(got[static_cast<size_t>(j * ldo + r)])) {
                            ADD_FAILURE() << at << ": wrote past the last row (col " << j << ", row " << r << ")";
                            return;
                        }
                if (mismatches) return;
            }
}

const DType kAllTypes[] = {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::Q4_1,
                           DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q5_K};

class AmxGemmTest : public ::testing::TestWithParam<DType> {};

TEST_P(AmxGemmTest, EmulatedTilesExactAndEqualToVnni) {
    if (skip_without_vnni()) GTEST_SKIP() << kNoVnni;
    check_tile_kernel(gemm_tile_amx_emulated, "amx-emulated", GetParam());
}

TEST_P(AmxGemmTest, HardwareTilesExactAndEqualToVnni) {
    const bool require = [] {
        const char* e = std::getenv("MINERVA_REQUIRE_AMX");
        return e && std::string(e) == "1";
    }();
    if (!detected_features().amx || !amx_compiled()) {
        const std::string why = amx_compiled() ? amx_status() : "this build has no AMX intrinsics";
        if (require) FAIL() << "MINERVA_REQUIRE_AMX=1 but " << why;
        GTEST_SKIP() << why;
    }
    check_tile_kernel(gemm_tile_amx, "amx", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Types, AmxGemmTest, ::testing::ValuesIn(kAllTypes),
                         minerva::test::dtype_param_name);

// ---- through the backend: the dispatch in matmul.cpp, 3 threads ------------------------------

struct FeatureGuard {
    ~FeatureGuard() { set_features(detected_features()); }
};

std::vector<float> backend_matmul(Backend& be, DType t, const std::vector<uint8_t>& w, int64_t k, int64_t m,
                                  std::vector<float>& x, int64_t n) {
    const int64_t ne[4] = {k, m, 1, 1};
    const Tensor wt = be.upload_weight(t, ne, w.data(), "w");
    std::vector<float> out(static_cast<size_t>(m * n));
    Tensor xt, ot;
    xt.type = ot.type = DType::F32;
    xt.ne[0] = k, xt.ne[1] = n, xt.host = x.data();
    ot.ne[0] = m, ot.ne[1] = n, ot.host = out.data();
    be.matmul(wt, xt, ot);
    return out;
}

void check_backend(const Features& amx_features, const char* name) {
    FeatureGuard guard;
    Features vnni = detected_features();
    vnni.amx = vnni.amx_emulated = false;
    auto be = make_cpu_backend(3);
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (DType t : kAllTypes)
        for (int64_t n : {12, 33}) {
            const int64_t k = 512, m = 50;
            const std::vector<uint8_t> w = random_weights(t, k, m, rng);
            std::vector<float> x(static_cast<size_t>(k * n));
            for (auto& v : x) v = nd(rng);
            set_features(vnni);
            ASSERT_EQ(gemm_amx_tile_fn(), nullptr);
            const std::vector<float> want = backend_matmul(*be, t, w, k, m, x, n);
            set_features(amx_features);
            ASSERT_NE(gemm_amx_tile_fn(), nullptr) << name;
            const std::vector<float> got = backend_matmul(*be, t, w, k, m, x, n);
            ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << name << " " << dtype_name(t) << " n=" << n;
        }
}

TEST(AmxBackend, EmulatedDispatchEqualsVnni) {
    if (skip_without_vnni()) GTEST_SKIP() << kNoVnni;
    Features f = detected_features();
    f.amx = false;
    f.amx_emulated = true;
    check_backend(f, "amx-emulated");
}

TEST(AmxBackend, HardwareDispatchEqualsVnni) {
    if (!detected_features().amx || !amx_compiled()) {
        const char* e = std::getenv("MINERVA_REQUIRE_AMX");
        const std::string why = amx_compiled() ? amx_status() : "this build has no AMX intrinsics";
        if (e && std::string(e) == "1") FAIL() << "MINERVA_REQUIRE_AMX=1 but " << why;
        GTEST_SKIP() << why;
    }
    check_backend(detected_features(), "amx");
    EXPECT_GT(amx_peak_ops_per_second(0.02), 1e9);
}

}  // namespace
