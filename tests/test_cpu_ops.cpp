// tests/test_cpu_ops.cpp: every fast CPU op (through make_cpu_backend) against the scalar
// reference (cpu/ref_ops.h) by normalised error, across weight types, shapes (odd sizes, block
// multiples and non-multiples, n = 1 and n > 1), thread counts and instruction-set paths
// (AVX2, AVX-512 without and with VNNI where the machine has them, the AMX GEMM on the tile
// emulator, and on AMX tiles where the machine has them).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/vec_dot.h"
#include "cpu/multi.h"
#include "cpu/qact.h"
#include "cpu/ref_ops.h"
#include "cpu/thread_pool.h"
#include "host_tensor.h"
#include "minerva/error.h"

using namespace minerva;
using namespace minerva::cpu;
using namespace minerva::test;

namespace {

// Random but valid weight rows (host_tensor.h).
void fill_weights(const Tensor& t, std::mt19937& rng) {
    ASSERT_TRUE(fill_random_weights(t.type, t.data<uint8_t>(), t.n_elements(), rng)) << "no random fill for " << dtype_name(t.type);
}

// Matmul error normalised by the magnitude of the products it sums: sqrt(sum_ij (got - want)^2 /
// sum_ij sum_l (w_il x_lj)^2). Unlike ||got - want|| / ||want|| it does not blow up when a random
// dot product happens to cancel; for 8-bit activations it is about the activation rounding.
double product_err(const Tensor& w, const Tensor& x, const Tensor& got, const Tensor& want) {
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    std::vector<float> row(static_cast<size_t>(k));
    double num = 0, den = 0;
    for (int64_t i = 0; i < m; ++i) {
        dequantize_row(w.type, w.data<uint8_t>() + w.row_size() * i, row.data(), k);
        for (int64_t j = 0; j < n; ++j) {
            for (int64_t l = 0; l < k; ++l) {
                const double p = static_cast<double>(row[l]) * x.data<float>()[j * k + l];
                den += p * p;
            }
            const double d = static_cast<double>(got.data<float>()[j * m + i]) - want.data<float>()[j * m + i];
            num += d * d;
        }
    }
    if (!std::isfinite(num)) return INFINITY;
    return std::sqrt(num / std::max(den, 1e-30));
}

bool is_k_type(DType t) {
    return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}
bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// The instruction-set paths this machine can run.
std::vector<std::pair<std::string, Features>> isa_paths() {
    const Features d = detected_features();
    std::vector<std::pair<std::string, Features>> v = {{"avx2", Features{true, false, false, false}}};
    if (d.avx512) v.push_back({"avx512", Features{true, true, false, d.avx512_bf16}});
    Features vnni = d;  // the VNNI GEMM even on AMX machines
    vnni.amx = false;
    if (d.avx512_vnni) {
        Features no_vbmi = vnni;
        no_vbmi.avx512_vbmi = false;
        v.push_back({"avx512-vnni", no_vbmi});
    }
    if (d.avx512_vnni && d.avx512_vbmi) v.push_back({"avx512-vnni-vbmi", vnni});
    if (d.avx512_vnni) {  // the AMX GEMM on the tile emulator (test_gemm_amx.cpp), and on the tiles where they exist
        Features emulated = vnni;
        emulated.amx_emulated = true;
        v.push_back({"amx-emulated", emulated});
    }
    if (d.amx) v.push_back({"amx", d});
    return v;
}

struct IsaGuard {
    ~IsaGuard() { set_features(detected_features()); }
};

}  // namespace

namespace {

// Random weights of `type` (k x m) uploaded to `be`, random activations (k x n), and
// be.matmul's result in got (m x n); want (m x n) is for the caller's expected values.
struct MatmulCase {
    Buf w, x, got, want;
    Tensor wt;
};
MatmulCase run_matmul_case(Backend& be, DType type, int64_t k, int64_t m, int64_t n, std::mt19937& rng) {
    MatmulCase c{make_buf(type, {k, m}), make_buf(DType::F32, {k, n}), make_buf(DType::F32, {m, n}), make_buf(DType::F32, {m, n}), {}};
    fill_weights(c.w.t, rng);
    fill_normal(c.x.t, rng);
    c.wt = be.upload_weight(type, c.w.t.ne, c.w.t.host, "w");
    be.matmul(c.wt, c.x.t, c.got.t);
    return c;
}

}  // namespace

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesReferenceAcrossShapes) {
    const DType type = GetParam();
    IsaGuard guard;
    std::mt19937 rng(static_cast<unsigned>(type) * 7919u + 1);
    const std::vector<int64_t> ks = is_k_type(type) ? std::vector<int64_t>{256, 768, 2048}
                                    : is_float_type(type) ? std::vector<int64_t>{1, 7, 32, 100, 2048}
                                                          : std::vector<int64_t>{32, 96, 288, 2048};
    const std::vector<int64_t> ms = {1, 3, 29, 64};  // 29: a tile of 16 rows, then 13 (both 8-row halves, the second partial)
    const std::vector<int64_t> ns = {1, 2, 7, 8, 12};
    // Float weights keep f32 activations: near-exact. Quantized weights meet 8-bit activations:
    // the error is the activation rounding, about 0.5-0.7% of the product magnitude on average;
    // a shape with a single output may land at twice that by chance, so the bound is looser there.
    // Q2_K/Q4_K/Q5_K weights carry an offset per sub-block (the min), against which the rounding
    // errors of the activations (one 8-bit scale per 256 for the K types) do not average out:
    // measured up to 2.0% on these shapes, so their bound is looser.
    const bool mins = type == DType::Q2_K || type == DType::Q4_K || type == DType::Q5_K;
    const double tol_many = is_float_type(type) ? 1e-6 : mins ? 2.5e-2 : 1.5e-2;
    const double tol_few = is_float_type(type) ? 1e-6 : mins ? 4e-2 : 3e-2;
    for (const auto& [isa_name, feats] : isa_paths()) {
        set_features(feats);
        for (int threads : {1, 3}) {
            auto be = make_cpu_backend(threads);
            for (int64_t k : ks)
                for (int64_t m : ms)
                    for (int64_t n : ns) {
                        auto [w, x, got, want, wt] = run_matmul_case(*be, type, k, m, n, rng);
                        ref::matmul(w.t, x.t, want.t);
                        const double e = product_err(w.t, x.t, got.t, want.t);
                        ASSERT_LT(e, m * n >= 32 ? tol_many : tol_few) << dtype_name(type) << " " << isa_name << " threads=" << threads << " k=" << k
                                          << " m=" << m << " n=" << n;
                    }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                           DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                                           DType::Q6_K),
                         dtype_param_name);

// Prefill must agree with decode: a matmul over n columns gives, column by column, what n
// separate one-column matmuls give. Both paths quantize the activations to 8 bits in the same
// blocks (32 for the 32-element types, 256 for the K types) by the same function and sum the
// integer products exactly; only the order of the float steps differs (the GEMM applies the
// scales per block and row, the row kernels per lane), so the difference is float rounding:
// ~1e-7 relative. A wrong block, scale or activation would be orders of magnitude more. The
// types without a row kernel go through the GEMM for every n and must match exactly. n = 9
// covers a full column block and a remainder, m = 37 a partial 16-row tile, k = 96 an odd
// number of 32-blocks. n runs over every batch size of the small-batch kernels (2..16).
class PrefillDecodeTest : public ::testing::TestWithParam<DType> {};

TEST_P(PrefillDecodeTest, ColumnsEqualSingleColumnMatmuls) {
    const DType type = GetParam();
    IsaGuard guard;
    std::mt19937 rng(static_cast<unsigned>(type) * 104729u + 3);
    const std::vector<int64_t> ks = is_k_type(type) ? std::vector<int64_t>{256, 2048} : std::vector<int64_t>{32, 96, 2048};
    const int64_t m = 37;
    for (const auto& [isa_name, feats] : isa_paths()) {
        set_features(feats);
        for (int threads : {1, 3}) {
            auto be = make_cpu_backend(threads);
            // 2..16: the small-batch kernels (multi.h) or the multi-column row kernels where a type
            // has them; 17: the GEMM
            for (int64_t n = 2; n <= 17; ++n) {
                for (int64_t k : ks) {
                    auto [w, x, got, want, wt] = run_matmul_case(*be, type, k, m, n, rng);
                    for (int64_t j = 0; j < n; ++j) {
                        Tensor xj = x.t, oj = want.t;
                        xj.ne[1] = 1;
                        xj.host = x.t.data<float>() + j * k;
                        oj.ne[1] = 1;
                        oj.host = want.t.data<float>() + j * m;
                        be->matmul(wt, xj, oj);
                    }
                    double num = 0, den = 0;
                    for (int64_t i = 0; i < m * n; ++i) {
                        const double d = static_cast<double>(got.t.data<float>()[i]) - want.t.data<float>()[i];
                        num += d * d;
                        den += static_cast<double>(want.t.data<float>()[i]) * want.t.data<float>()[i];
                    }
                    const double rel = std::sqrt(num / std::max(den, 1e-30));
                    // Exact where both go through the same kernel: the GEMM for every n (types without a
                    // row kernel), or a multi-column row kernel (bit-identical per column by contract).
                    const DotKernel kern = find_dot_kernel(type);
                    const BatchKernel bk = batch_kernel(type, k, static_cast<int>(n));
                    const bool same_kernel = bk != BatchKernel::Cols &&
                                             (kern.fn == nullptr || (kern.multi && n <= kMultiColumns && bk != BatchKernel::Gemm));
                    EXPECT_LE(rel, same_kernel ? 0.0 : 1e-6) << dtype_name(type) << " " << isa_name << " threads=" << threads << " k=" << k << " n=" << n;
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(QuantTypes, PrefillDecodeTest,
                         ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,
                                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         dtype_param_name);

namespace {

// The exact dot product of a dequantized weight row with quantized activations, and how far a
// kernel's float sum of it may stray: 1e-5 of the products' magnitude (float rounding only).
struct ExactDot {
    double value, tolerance;
};
ExactDot exact_dot(const float* row, const float* xq, int64_t k) {
    double want = 0, mag = 0;
    for (int64_t i = 0; i < k; ++i) {
        const double p = static_cast<double>(row[i]) * xq[i];
        want += p;
        mag += std::fabs(p);
    }
    return {want, 1e-5 * mag + 1e-6};
}

}  // namespace

// The integer kernels must equal, to float rounding, the exact dot product of the dequantized
// weights with the *quantized* activations: this isolates kernel bugs from activation rounding.
class DotKernelTest : public ::testing::TestWithParam<DType> {};

TEST_P(DotKernelTest, ExactOnQuantizedActivations) {
    const DType type = GetParam();
    IsaGuard guard;
    std::mt19937 rng(static_cast<unsigned>(type) + 99u);
    for (const auto& [isa_name, feats] : isa_paths()) {
        set_features(feats);
        const DotKernel kern = find_dot_kernel(type);
        ASSERT_NE(kern.fn, nullptr) << isa_name;
        for (int64_t k : is_k_type(type) ? std::vector<int64_t>{256, 1280} : std::vector<int64_t>{32, 96, 224, 288, 480, 2048}) {
            Buf w = make_buf(type, {k, 4}), x = make_buf(DType::F32, {k});
            fill_weights(w.t, rng);
            fill_normal(x.t, rng);
            std::vector<Q8Pair> qp(q8pair_count(k));
            std::vector<Q8Oct> qo(q8oct_count(k));
            std::vector<Q8KBlock> qk(q8k_count(k) + 1);
            std::vector<float> xq(static_cast<size_t>(k));
            const void* act = x.t.host;
            if (kern.act == ActKind::Q8Pair) {
                quantize_q8pair(x.t.data<float>(), k, kern.bias_c, qp.data());
                for (int64_t i = 0; i < k; ++i) {
                    const Q8Pair& p = qp[static_cast<size_t>(i / 64)];
                    xq[static_cast<size_t>(i)] = p.qs[i % 64] * p.dx[8 * ((i / 32) % 2)];
                }
                act = qp.data();
            } else if (kern.act == ActKind::Q8Oct) {
                quantize_q8oct(x.t.data<float>(), k, kern.bias_c, qo.data());
                for (int64_t i = 0; i < k; ++i) {
                    const Q8Oct& o = qo[static_cast<size_t>(i / 256)];
                    const int64_t b = (i / 32) % 8, e = i % 32;
                    xq[static_cast<size_t>(i)] = o.qs[128 * (b / 4) + 64 * (e / 16) + 16 * (b % 4) + e % 16] * o.dx[b];
                }
                act = qo.data();
            } else if (kern.act == ActKind::Q8K || kern.act == ActKind::Q8KNib) {
                const bool nib = kern.act == ActKind::Q8KNib;
                if (nib) quantize_q8k_nib(x.t.data<float>(), k, qk.data());
                else quantize_q8k(x.t.data<float>(), k, qk.data());
                for (int64_t i = 0; i < k; ++i) {
                    int64_t sb = (i % 256) / 32;
                    if (nib && sb % 4 == 1) sb += 1;  // nibble order: 0 2 1 3 4 6 5 7
                    else if (nib && sb % 4 == 2) sb -= 1;
                    xq[static_cast<size_t>(i)] = qk[static_cast<size_t>(i / 256)].qs[32 * sb + i % 32] * qk[static_cast<size_t>(i / 256)].d;
                }
                act = qk.data();
            } else {
                std::memcpy(xq.data(), x.t.host, static_cast<size_t>(k) * 4);
            }
            for (int nr = 1; nr <= 4; ++nr) {
                float out[4];
                kern.fn(k, w.t.data<uint8_t>(), w.t.row_size(), nr, act, out);
                std::vector<float> row(static_cast<size_t>(k));
                for (int r = 0; r < nr; ++r) {
                    dequantize_row(type, w.t.data<uint8_t>() + r * w.t.row_size(), row.data(), k);
                    const ExactDot want = exact_dot(row.data(), xq.data(), k);
                    EXPECT_NEAR(out[r], want.value, want.tolerance)
                        << dtype_name(type) << " " << isa_name << " k=" << k << " nr=" << nr << " row " << r;
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(FastTypes, DotKernelTest,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q5_0, DType::Q8_0,
                                           DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         dtype_param_name);

// The small-batch kernels (multi.h), called directly for every column count 2..16 and row count
// 1..4, against the exact dot product of the dequantized weights with each column's quantized
// activations (the same blocks and quantizer as its decode: quantize_i8_block over 32 or 256).
// k covers a partial last group of eight 32-blocks (96, 224, 288) and several super-blocks.
class SmallBatchTest : public ::testing::TestWithParam<DType> {};

TEST_P(SmallBatchTest, ExactOnQuantizedActivations) {
    const DType type = GetParam();
    IsaGuard guard;
    std::mt19937 rng(static_cast<unsigned>(type) + 4242u);
    int tested = 0;
    for (const auto& [isa_name, feats] : isa_paths()) {
        set_features(feats);
        for (int64_t k : is_k_type(type) ? std::vector<int64_t>{256, 1280} : std::vector<int64_t>{32, 96, 224, 288, 2048}) {
            for (int nc = 2; nc <= kColsMax; ++nc) {
                const ColsKernel ck = find_cols_kernel(type, k, nc);
                if (!ck.rows) continue;
                Buf w = make_buf(type, {k, 4}), x = make_buf(DType::F32, {k, nc});
                fill_weights(w.t, rng);
                fill_normal(x.t, rng);
                // the quantized activations, column by column
                std::vector<float> xq(static_cast<size_t>(k * nc));
                std::vector<int8_t> q(static_cast<size_t>(ck.block));
                std::vector<int> sums(static_cast<size_t>(ck.block / 16));
                for (int j = 0; j < nc; ++j)
                    for (int64_t b = 0; b < k / ck.block; ++b) {
                        const float* xb = x.t.data<float>() + j * k + b * ck.block;
                        const float d = quantize_i8_block(xb, ck.block, q.data(), sums.data());
                        for (int i = 0; i < ck.block; ++i) xq[static_cast<size_t>(j * k + b * ck.block + i)] = q[static_cast<size_t>(i)] * d;
                    }
                std::vector<uint8_t> act_buf(ck.act_bytes(k, nc) + 64);
                void* act = act_buf.data() + (64 - reinterpret_cast<uintptr_t>(act_buf.data()) % 64) % 64;
                const int64_t nq = k / ck.block;
                ck.pack(x.t.data<float>(), k, nc, 0, nq / 2, act);  // two block ranges, as two threads would
                ck.pack(x.t.data<float>(), k, nc, nq / 2, nq, act);
                std::vector<float> row(static_cast<size_t>(k));
                for (int nr = 1; nr <= 4; ++nr) {
                    const size_t os = 5;  // out[j * os + r]
                    std::vector<float> out(os * static_cast<size_t>(nc), -1.f);
                    ck.rows(k, w.t.data<uint8_t>(), w.t.row_size(), nr, act, nc, out.data(), os);
                    for (int r = 0; r < 5; ++r) {
                        if (r >= nr) {  // rows past nr are not written
                            for (int j = 0; j < nc; ++j) EXPECT_EQ(out[static_cast<size_t>(j) * os + r], -1.f);
                            continue;
                        }
                        dequantize_row(type, w.t.data<uint8_t>() + r * w.t.row_size(), row.data(), k);
                        for (int j = 0; j < nc; ++j) {
                            const ExactDot want = exact_dot(row.data(), xq.data() + j * k, k);
                            EXPECT_NEAR(out[static_cast<size_t>(j) * os + r], want.value, want.tolerance)
                                << dtype_name(type) << " " << isa_name << " k=" << k << " nc=" << nc << " nr=" << nr << " row " << r
                                << " column " << j;
                        }
                    }
                }
                ++tested;
            }
        }
    }
    if (tested == 0) GTEST_SKIP() << "no small-batch kernel for " << dtype_name(type) << " on this CPU (needs AVX-512 VNNI)";
}

INSTANTIATE_TEST_SUITE_P(Types, SmallBatchTest, ::testing::Values(DType::Q4_0, DType::Q4_K),
                         dtype_param_name);

// Batches of 1..16 columns through be.matmul (the thread split of the small-batch path included)
// against the reference, with row counts that leave partial groups of four rows and partial
// spans: the same normalised error bound as MatmulTest.
TEST(SmallBatch, MatmulEveryColumnCountMatchesReference) {
    IsaGuard guard;
    std::mt19937 rng(777);
    for (const auto& [isa_name, feats] : isa_paths()) {
        set_features(feats);
        auto be = make_cpu_backend(2);
        for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
            const int64_t k = is_k_type(type) ? 512 : 288;
            for (int64_t m : {1, 6, 67})
                for (int64_t n = 1; n <= kColsMax; ++n) {
                    auto [w, x, got, want, wt] = run_matmul_case(*be, type, k, m, n, rng);
                    ref::matmul(w.t, x.t, want.t);
                    const double e = product_err(w.t, x.t, got.t, want.t);
                    const double tol = type == DType::Q4_K ? (m * n >= 32 ? 2.5e-2 : 4e-2) : (m * n >= 32 ? 1.5e-2 : 3e-2);
                    ASSERT_LT(e, tol) << dtype_name(type) << " " << isa_name << " m=" << m << " n=" << n;
                }
        }
    }
}

namespace {

Buf copy_of(const Buf& b) {
    Buf c = b;
    c.t.host = c.bytes.data();
    return c;
}

}  // namespace

// matmul_id's fast path (pairs grouped by expert, each group through the regular matmul: the
// decode kernels for one column, the GEMM for many) against the reference, for every weight type,
// batches of 1, 3, 8 and 40 tokens and both x layouts. The error is normalised by the magnitude
// of the products, as in MatmulTest, whose bounds it shares (8-bit activations).
class MatmulIdTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulIdTest, MatchesReference) {
    const DType type = GetParam();
    std::mt19937 rng(static_cast<unsigned>(type) * 31u + 7u);
    const int64_t n_in = is_k_type(type) ? 512 : 96, m = 37, n_expert = 8;
    const bool mins = type == DType::Q2_K || type == DType::Q4_K || type == DType::Q5_K;
    const double tol = is_float_type(type) ? 1e-6 : mins ? 2.5e-2 : 1.5e-2;
    for (int threads : {1, 3}) {
        auto be = make_cpu_backend(threads);
        for (int64_t k : {1, 2, 8})
            for (int64_t n : {1, 3, 8, 40})
                for (bool per_slot : {false, true}) {
                    Buf w = make_buf(type, {n_in, m, n_expert}), ids = make_buf(DType::I32, {k, n});
                    Buf x = per_slot ? make_buf(DType::F32, {n_in, k, n}) : make_buf(DType::F32, {n_in, n});
                    Buf got = make_buf(DType::F32, {m, k, n}), want = make_buf(DType::F32, {m, k, n});
                    fill_weights(w.t, rng);
                    fill_normal(x.t, rng);
                    for (int64_t i = 0; i < k * n; ++i) ids.t.data<int32_t>()[i] = static_cast<int32_t>(rng() % n_expert);
                    const Tensor wt = be->upload_weight(type, w.t.ne, w.t.host, "experts");
                    be->matmul_id(wt, x.t, ids.t, got.t);
                    ref::matmul_id(w.t, x.t, ids.t, want.t);
                    std::vector<float> row(static_cast<size_t>(n_in));
                    double num = 0, den = 0;
                    for (int64_t pair = 0; pair < k * n; ++pair) {
                        const Tensor we = expert_view(w.t, ids.t.data<int32_t>()[pair]);
                        const float* xc = x.t.data<float>() + (per_slot ? pair : pair / k) * n_in;
                        for (int64_t i = 0; i < m; ++i) {
                            dequantize_row(type, we.data<uint8_t>() + we.row_size() * i, row.data(), n_in);
                            for (int64_t l = 0; l < n_in; ++l) den += static_cast<double>(row[l]) * xc[l] * row[l] * xc[l];
                            const double d = static_cast<double>(got.t.data<float>()[pair * m + i]) - want.t.data<float>()[pair * m + i];
                            num += d * d;
                        }
                    }
                    ASSERT_TRUE(std::isfinite(num));
                    ASSERT_LT(std::sqrt(num / std::max(den, 1e-30)), tol)
                        << dtype_name(type) << " threads=" << threads << " k=" << k << " n=" << n
                        << (per_slot ? " x [n_in, k, n]" : " x [n_in, n]");
                }
        Buf w = make_buf(type, {n_in, m, n_expert}), ids = make_buf(DType::I32, {1, 1}), x = make_buf(DType::F32, {n_in, 1}),
            o = make_buf(DType::F32, {m, 1, 1});
        ids.t.data<int32_t>()[0] = static_cast<int32_t>(n_expert);  // one past the last expert
        EXPECT_THROW(be->matmul_id(w.t, x.t, ids.t, o.t), Error);
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulIdTest,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                           DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                                           DType::Q6_K),
                         dtype_param_name);

class OpsTest : public ::testing::TestWithParam<int> {};  // parameter: thread count

TEST_P(OpsTest, ElementwiseNormRope) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(5);
    for (int64_t dim : {1, 7, 64, 2048, 2051})
        for (int64_t rows : {1, 5, 33}) {
            Buf x = make_buf(DType::F32, {dim, rows}), w = make_buf(DType::F32, {dim});
            Buf got = make_buf(DType::F32, {dim, rows}), want = make_buf(DType::F32, {dim, rows});
            fill_normal(x.t, rng, 3.f);
            fill_normal(w.t, rng);
            be->rms_norm(x.t, w.t, got.t, 1e-5f);
            ref::rms_norm(x.t, w.t, want.t, 1e-5f);
            ASSERT_LT(rel_l2(got.t, want.t), 1e-6) << "rms_norm dim=" << dim << " rows=" << rows;
            Buf u = make_buf(DType::F32, {dim, rows});
            fill_normal(u.t, rng, 4.f);
            be->swiglu(x.t, u.t, got.t);
            ref::swiglu(x.t, u.t, want.t);
            ASSERT_LT(rel_l2(got.t, want.t), 1e-6) << "swiglu dim=" << dim << " rows=" << rows;
            Buf a = copy_of(x), b = copy_of(x);
            be->add(a.t, u.t);
            ref::add(b.t, u.t);
            ASSERT_EQ(a.bytes, b.bytes) << "add";
        }
    for (int64_t hd : {6, 64, 128})
        for (int n_rot : {2, 6, 32, 64, 128}) {
            if (n_rot > hd) continue;
            for (bool with_ff : {false, true}) {
                const int64_t nh = 3, nt = 4;
                Buf x = make_buf(DType::F32, {hd, nh, nt}), pos = make_buf(DType::I32, {nt}), ff = make_buf(DType::F32, {n_rot / 2});
                fill_normal(x.t, rng);
                for (int i = 0; i < n_rot / 2; ++i) ff.t.data<float>()[i] = 1.f + static_cast<float>(i % 5);
                for (int t = 0; t < nt; ++t) pos.t.data<int32_t>()[t] = static_cast<int32_t>(rng() % 5000);
                Buf y = copy_of(x);
                const RopeParams rp{n_rot, 10000.f + 490000.f * with_ff, with_ff ? 0.5f : 1.f};
                be->rope(x.t, pos.t, rp, with_ff ? &ff.t : nullptr);
                ref::rope(y.t, pos.t, rp, with_ff ? &ff.t : nullptr);
                ASSERT_LT(rel_l2(x.t, y.t), 2e-6) << "rope hd=" << hd << " n_rot=" << n_rot << " ff=" << with_ff;
            }
        }
}

TEST_P(OpsTest, GetRowsKvStoreGather) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(6);
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::Q3_K}) {
        const int64_t dim = is_k_type(t) ? 512 : 96, vocab = 50;
        Buf table = make_buf(t, {dim, vocab}), ids = make_buf(DType::I32, {5});
        fill_weights(table.t, rng);
        for (int i = 0; i < 5; ++i) ids.t.data<int32_t>()[i] = static_cast<int32_t>(rng() % vocab);
        Buf got = make_buf(DType::F32, {dim, 5}), want = make_buf(DType::F32, {dim, 5});
        be->get_rows(table.t, ids.t, got.t);
        ref::get_rows(table.t, ids.t, want.t);
        ASSERT_EQ(got.bytes, want.bytes) << "get_rows " << dtype_name(t);
    }
    for (DType ct : {DType::F16, DType::F32}) {
        const int64_t d = 72, cells = 16, n = 5;
        Buf k = make_buf(DType::F32, {d, n}), v = make_buf(DType::F32, {d, n}), rows = make_buf(DType::I32, {n});
        fill_normal(k.t, rng);
        fill_normal(v.t, rng);
        for (int i = 0; i < n; ++i) rows.t.data<int32_t>()[i] = (i * 7 + 3) % cells;
        Buf kc1 = make_buf(ct, {d, cells}), vc1 = make_buf(ct, {d, cells});
        Buf kc2 = copy_of(kc1), vc2 = copy_of(vc1);
        be->kv_store(k.t, v.t, kc1.t, vc1.t, rows.t);
        ref::kv_store(k.t, v.t, kc2.t, vc2.t, rows.t);
        ASSERT_EQ(kc1.bytes, kc2.bytes);
        ASSERT_EQ(vc1.bytes, vc2.bytes);
    }
    Buf x = make_buf(DType::F32, {33, 9}), rows = make_buf(DType::I32, {3}), o1 = make_buf(DType::F32, {33, 3}), o2 = make_buf(DType::F32, {33, 3});
    fill_normal(x.t, rng);
    for (int i = 0; i < 3; ++i) rows.t.data<int32_t>()[i] = 8 - 3 * i;
    be->gather_rows(x.t, rows.t, o1.t);
    ref::gather_rows(x.t, rows.t, o2.t);
    ASSERT_EQ(o1.bytes, o2.bytes);
}

namespace {

// A KV cache of `cells` cells of kv_dim values of type ct, written by the reference kv_store from
// random keys (N(0, 2)) and values (N(0, 1)).
struct KvCache {
    Buf k, v;
};
KvCache random_kv_cache(DType ct, int64_t kv_dim, int64_t cells, std::mt19937& rng) {
    KvCache c{make_buf(ct, {kv_dim, cells}), make_buf(ct, {kv_dim, cells})};
    Buf kf = make_buf(DType::F32, {kv_dim, cells}), vf = make_buf(DType::F32, {kv_dim, cells}), all = make_buf(DType::I32, {cells});
    fill_normal(kf.t, rng, 2.f);
    fill_normal(vf.t, rng);
    for (int i = 0; i < cells; ++i) all.t.data<int32_t>()[i] = i;
    ref::kv_store(kf.t, vf.t, c.k.t, c.v.t, all.t);
    return c;
}

}  // namespace

TEST_P(OpsTest, AttentionGqaSpans) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(8);
    struct Cfg { int n_head, n_head_kv, head_dim; };
    for (const Cfg cfg : {Cfg{4, 4, 64}, Cfg{8, 2, 64}, Cfg{8, 1, 32}, Cfg{6, 3, 6}, Cfg{32, 4, 64}, Cfg{4, 2, 128}})
        for (DType ct : {DType::F16, DType::F32})
            for (int64_t n_tokens : {1, 3, 17}) {
                const int64_t cells = 300, kv_dim = static_cast<int64_t>(cfg.head_dim) * cfg.n_head_kv;
                const KvCache kv = random_kv_cache(ct, kv_dim, cells, rng);
                Buf q = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens}), span = make_buf(DType::I32, {2, n_tokens});
                fill_normal(q.t, rng);
                // two sequences side by side: tokens alternate between cells [0, 150) and [150, 300),
                // each attending causally to its prefix; lengths from 1 (short) to 150 (long)
                for (int64_t t = 0; t < n_tokens; ++t) {
                    const int32_t seq = static_cast<int32_t>(t % 2);
                    span.t.data<int32_t>()[2 * t] = 150 * seq;
                    span.t.data<int32_t>()[2 * t + 1] = n_tokens == 1 ? 150 : static_cast<int32_t>(1 + (t * 37) % 150);
                }
                Buf got = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens}), want = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens});
                const AttentionParams ap{cfg.n_head, cfg.n_head_kv, cfg.head_dim, 1.f / std::sqrt(static_cast<float>(cfg.head_dim))};
                be->attention(q.t, kv.k.t, kv.v.t, span.t, got.t, ap);
                ref::attention(q.t, kv.k.t, kv.v.t, span.t, want.t, ap);
                ASSERT_LT(rel_l2(got.t, want.t), 2e-6) << "attention heads " << cfg.n_head << "/" << cfg.n_head_kv << " hd "
                                                       << cfg.head_dim << " " << dtype_name(ct) << " tokens " << n_tokens;
            }
}

// The families' elementwise ops: geglu (tanh GELU gate), add_bias, scale, softcap.
TEST_P(OpsTest, FamilyElementwise) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(15);
    for (int64_t dim : {1, 7, 64, 2051})
        for (int64_t rows : {1, 5, 33}) {
            Buf g = make_buf(DType::F32, {dim, rows}), u = make_buf(DType::F32, {dim, rows});
            Buf got = make_buf(DType::F32, {dim, rows}), want = make_buf(DType::F32, {dim, rows});
            fill_normal(g.t, rng, 4.f);
            fill_normal(u.t, rng);
            g.t.data<float>()[0] = rows > 1 ? -30.f : 30.f;  // the far tails of the tanh
            be->geglu(g.t, u.t, got.t);
            ref::geglu(g.t, u.t, want.t);
            ASSERT_LT(rel_l2(got.t, want.t), 1e-6) << "geglu dim=" << dim << " rows=" << rows;

            Buf b = make_buf(DType::F32, {dim});
            fill_normal(b.t, rng);
            Buf x1 = copy_of(g), x2 = copy_of(g);
            be->add_bias(x1.t, b.t);
            ref::add_bias(x2.t, b.t);
            ASSERT_LT(rel_l2(x1.t, x2.t), 1e-7) << "add_bias dim=" << dim << " rows=" << rows;

            be->scale(x1.t, 0.125f);
            ref::scale(x2.t, 0.125f);
            ASSERT_EQ(x1.bytes, x2.bytes) << "scale";

            for (float cap : {30.f, 0.5f}) {
                Buf c1 = copy_of(g), c2 = copy_of(g);
                be->softcap(c1.t, cap);
                ref::softcap(c2.t, cap);
                ASSERT_LT(rel_l2(c1.t, c2.t), 1e-6) << "softcap " << cap << " dim=" << dim << " rows=" << rows;
            }
        }
    Buf x = make_buf(DType::F32, {8, 2}), b = make_buf(DType::F32, {7});
    EXPECT_THROW(be->add_bias(x.t, b.t), Error);
    EXPECT_THROW(be->softcap(x.t, 0.f), Error);
}

// NEOX pairing and attn_factor, with and without freq_factors, full and partial rotation.
TEST_P(OpsTest, RopeNeoxAttnFactor) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(16);
    for (int64_t hd : {64, 128, 256})
        for (int n_rot : {static_cast<int>(hd), static_cast<int>(hd / 2), 6})
            for (bool neox : {true, false})
                for (float attn_factor : {1.f, 1.19f})
                    for (bool with_ff : {false, true}) {
                        const int64_t nh = 3, nt = 5;
                        Buf x = make_buf(DType::F32, {hd, nh, nt}), pos = make_buf(DType::I32, {nt}), ff = make_buf(DType::F32, {n_rot / 2});
                        fill_normal(x.t, rng);
                        for (int i = 0; i < n_rot / 2; ++i) ff.t.data<float>()[i] = 1.f + static_cast<float>(i % 7);
                        for (int t = 0; t < nt; ++t) pos.t.data<int32_t>()[t] = static_cast<int32_t>(rng() % 5000);
                        Buf y = copy_of(x);
                        const RopeParams rp{n_rot, 1000000.f, 1.f, neox, attn_factor};
                        be->rope(x.t, pos.t, rp, with_ff ? &ff.t : nullptr);
                        ref::rope(y.t, pos.t, rp, with_ff ? &ff.t : nullptr);
                        ASSERT_LT(rel_l2(x.t, y.t), 2e-6) << "rope hd=" << hd << " n_rot=" << n_rot << (neox ? " neox" : " norm")
                                                         << " attn_factor=" << attn_factor << " ff=" << with_ff;
                    }
}

// Gemma 2's attention softcap across head sizes, GQA ratios, decode and batches; the cap must
// change the result (else the comparison could not catch it being ignored).
TEST_P(OpsTest, AttentionSoftcap) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(18);
    struct Cfg { int n_head, n_head_kv, head_dim; float cap; };
    for (const Cfg cfg : {Cfg{4, 4, 64, 5.f}, Cfg{8, 2, 128, 5.f}, Cfg{8, 1, 256, 8.f}, Cfg{16, 2, 64, 50.f}})
        for (DType ct : {DType::F16, DType::F32})
            for (int64_t n_tokens : {1, 3, 17}) {
                const int64_t cells = 200, kv_dim = static_cast<int64_t>(cfg.head_dim) * cfg.n_head_kv;
                const KvCache kv = random_kv_cache(ct, kv_dim, cells, rng);
                Buf q = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens}), span = make_buf(DType::I32, {2, n_tokens});
                fill_normal(q.t, rng, 4.f);
                for (int64_t t = 0; t < n_tokens; ++t) {
                    span.t.data<int32_t>()[2 * t] = 0;
                    span.t.data<int32_t>()[2 * t + 1] = static_cast<int32_t>(cells - n_tokens + t + 1);
                }
                Buf got = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens}), want = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens});
                Buf uncapped = make_buf(DType::F32, {cfg.head_dim, cfg.n_head, n_tokens});
                AttentionParams ap{cfg.n_head, cfg.n_head_kv, cfg.head_dim, 1.f / std::sqrt(static_cast<float>(cfg.head_dim)), cfg.cap};
                be->attention(q.t, kv.k.t, kv.v.t, span.t, got.t, ap);
                ref::attention(q.t, kv.k.t, kv.v.t, span.t, want.t, ap);
                ASSERT_LT(rel_l2(got.t, want.t), 2e-6) << "attention softcap " << cfg.cap << " heads " << cfg.n_head << "/"
                                                       << cfg.n_head_kv << " hd " << cfg.head_dim << " " << dtype_name(ct)
                                                       << " tokens " << n_tokens;
                ap.softcap = 0.f;
                ref::attention(q.t, kv.k.t, kv.v.t, span.t, uncapped.t, ap);
                ASSERT_GT(rel_l2(uncapped.t, want.t), 1e-2) << "softcap " << cfg.cap << " changes nothing";
            }
}

// Routing (E in {8, 64, 128}, k in {1, 2, 8}, with tied logits) and the weighted sum.
TEST_P(OpsTest, MoeRouteAndSum) {
    auto be = make_cpu_backend(GetParam());
    std::mt19937 rng(19);
    for (int64_t n_expert : {8, 64, 128})
        for (int64_t k : {1, 2, 8})
            for (int64_t n : {1, 5, 40}) {
                Buf logits = make_buf(DType::F32, {n_expert, n});
                fill_normal(logits.t, rng, 2.f);
                for (int64_t t = 0; t < n; t += 2) {  // ties: copies of the token's largest logit
                    float* l = logits.t.data<float>() + t * n_expert;
                    const int64_t top = std::max_element(l, l + n_expert) - l;
                    l[(top + 3) % n_expert] = l[top];
                    l[(top + n_expert - 1) % n_expert] = l[top];
                }
                Buf ids1 = make_buf(DType::I32, {k, n}), ids2 = make_buf(DType::I32, {k, n});
                Buf w1 = make_buf(DType::F32, {k, n}), w2 = make_buf(DType::F32, {k, n});
                be->moe_route(logits.t, ids1.t, w1.t);
                ref::moe_route(logits.t, ids2.t, w2.t);
                ASSERT_EQ(ids1.bytes, ids2.bytes) << "moe_route ids E=" << n_expert << " k=" << k << " n=" << n;
                ASSERT_LT(rel_l2(w1.t, w2.t), 1e-6) << "moe_route weights E=" << n_expert << " k=" << k << " n=" << n;
                for (int64_t t = 0; k >= 2 && t < n; t += 2) {  // a tie resolves to the lower index, best first
                    ASSERT_LT(ids2.t.data<int32_t>()[t * k], ids2.t.data<int32_t>()[t * k + 1]);
                }
                for (int64_t d : {1, 64, 2051}) {
                    Buf y = make_buf(DType::F32, {d, k, n}), o1 = make_buf(DType::F32, {d, n}), o2 = make_buf(DType::F32, {d, n});
                    fill_normal(y.t, rng);
                    be->moe_sum(y.t, w2.t, o1.t);
                    ref::moe_sum(y.t, w2.t, o2.t);
                    ASSERT_LT(rel_l2(o1.t, o2.t), 1e-6) << "moe_sum d=" << d << " k=" << k << " n=" << n;
                }
            }
    Buf logits = make_buf(DType::F32, {4, 2}), ids = make_buf(DType::I32, {5, 2}), w = make_buf(DType::F32, {5, 2});
    EXPECT_THROW(be->moe_route(logits.t, ids.t, w.t), Error);  // k > E
}

TEST_P(OpsTest, BadArgumentsThrow) {
    auto be = make_cpu_backend(GetParam());
    Buf w = make_buf(DType::Q4_0, {64, 4}), x = make_buf(DType::F32, {32, 1}), o = make_buf(DType::F32, {4, 1});
    EXPECT_THROW(be->matmul(w.t, x.t, o.t), Error);
    Buf ids = make_buf(DType::I32, {1});
    ids.t.data<int32_t>()[0] = 4;
    Buf r = make_buf(DType::F32, {64, 1});
    EXPECT_THROW(be->get_rows(w.t, ids.t, r.t), Error);
    Buf iq2 = make_buf(DType::F32, {64, 4});
    iq2.t.type = DType::IQ2_XXS;
    EXPECT_THROW(be->matmul(iq2.t, x.t, o.t), Error);
    const int64_t bad[4] = {33, 1, 1, 1};
    EXPECT_THROW(be->alloc(DType::Q4_0, bad), Error);
    Tensor t = be->alloc(DType::F32, bad);
    float buf[40];
    EXPECT_THROW(be->write(t, buf, 33 * 4, 4), Error);
    EXPECT_NO_THROW(be->write(t, buf, 33 * 4, 0));
}

INSTANTIATE_TEST_SUITE_P(Threads, OpsTest, ::testing::Values(1, 2, 3));

// Both orders of the thread pool hand out every index exactly once, in chunks of at most
// `grain`, and tell each call which thread runs it.
TEST(ThreadPoolTest, EveryIndexOnceInBothOrders) {
    for (int threads : {1, 2, 3, 5}) {
        ThreadPool pool(threads);
        for (int64_t n : {0, 1, 7, 100, 1001}) {
            for (int64_t grain : {1, 4, 32}) {
                for (bool spans : {false, true}) {
                    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                    std::atomic<bool> bad{false};
                    auto f = [&](int64_t b, int64_t e, int ith) {
                        if (b < 0 || e > n || e <= b || e - b > grain || ith < 0 || ith >= threads) bad = true;
                        for (int64_t i = b; i < e && i < n; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
                    };
                    if (spans) pool.parallel_for_spans(n, grain, f);
                    else pool.parallel_for(n, grain, f);
                    EXPECT_FALSE(bad) << threads << " " << n << " " << grain << " " << spans;
                    for (int64_t i = 0; i < n; ++i)
                        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i << " threads " << threads << " n " << n << " grain " << grain << " spans " << spans;
                }
            }
        }
    }
}

// Many tiny jobs on more threads than cores: workers often arrive after their job closed and
// overlap the opening of the next one. Every job must still complete (this once hung).
TEST(ThreadPoolTest, ManyTinyJobsWithLateWorkers) {
    ThreadPool pool(4);
    int64_t total = 0;
    for (int i = 0; i < 1000000; ++i) {
        std::atomic<int64_t> sum{0};
        auto f = [&](int64_t b, int64_t e, int) { sum.fetch_add(e - b); };
        if (i % 2) pool.parallel_for_spans(3, 1, f);
        else pool.parallel_for(3, 1, f);
        total += sum.load();
    }
    EXPECT_EQ(total, 3 * 1000000);
}
