// kernels/cpu/multi_avx512.cpp: the small-batch kernels of multi.h (lanes = columns), AVX-512
// VNNI (+ VBMI for Q4_0's unpack). Compiled with AVX-512 flags; called only where CPUID reports
// them (multi.cpp).
//
// Packed activations of nc columns (act_layout): L lanes (16; 8 for the one-row-per-vector
// kernels up to 8 columns), lane l holding column l / P (P = 2 rows per vector for Q4_0 up to 8
// columns, else 1); lanes past the columns hold x = 0 with scale 0:
//   xu    u32[k/4][L]  the 4 quantized bytes of elements 4g..4g+3 at [g][l]: as they are where
//                      the weights are the unsigned side of vpdpbusd, + 128 where they are the
//                      signed side
//   dx    f32[nq][L]   the scale of quantization block q (32 or 256 elements)
//   bp    i32[k/64][L] Q4_K: int16 pairs (sum of sub-block 2p, sum of sub-block 2p+1), sub-blocks
//                      of 32
//   bias  i32[nq][L]   P = 2: -C * (sum of block q's quants) for the weights' offset C (Q4_0: 8)
// Each column's bytes are quantize_i8_block's (qact.h), in the blocks its decode uses.
// GCC 12 reports its own _mm512_undefined_* helpers as uninitialized (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/multi.h"
#include "cpu/prefetch.h"
#include "cpu/qact.h"

namespace minerva::cpu {
namespace {

inline size_t align64(size_t b) { return (b + 63) / 64 * 64; }

struct ActLayout {
    int L = 8;  // lanes
    int P = 1;  // rows per vector: lane l holds column l / P
    size_t dx = 0, bp = 0, bias = 0, bytes = 0;
};
// P = 2 (pairs of rows in one 16-lane vector, each column in two neighbouring lanes) for up to
// 8 columns of the types with a paired kernel; otherwise 8 lanes up to 8 columns, 16 beyond.
inline ActLayout act_layout(int64_t k, int nc, int block, int P) {
    ActLayout a;
    a.P = P;
    a.L = P == 2 || nc > 8 ? 16 : 8;
    const size_t L = static_cast<size_t>(a.L), ku = static_cast<size_t>(k);
    a.dx = align64(ku * L);
    a.bp = a.dx + align64(ku / static_cast<size_t>(block) * L * 4);
    a.bias = a.bp + (block == 256 ? align64(ku / 64 * L * 4) : 0);
    a.bytes = a.bias + (P == 2 ? align64(ku / static_cast<size_t>(block) * L * 4) : 0);
    return a;
}

template <int B, int P>
size_t act_bytes(int64_t k, int nc) {
    return act_layout(k, nc, B, P).bytes;
}

// Signed = false: the quants + 128 (the unsigned side of vpdpbusd; the weights are broadcast as
// the signed side). Signed: the quants as they are (the signed side; the weights, broadcast into a
// register, are the unsigned side); with P = 2 also bias = -C * (sum of the block's quants) for
// the weights' offset C.
template <int B, int P, int C = 0, bool Signed = P == 2>
void pack(const float* x, int64_t k, int nc, int64_t b0, int64_t b1, void* act) {
    const ActLayout A = act_layout(k, nc, B, P);
    uint8_t* base = static_cast<uint8_t*>(act);
    uint32_t* xu = reinterpret_cast<uint32_t*>(base);
    float* dx = reinterpret_cast<float*>(base + A.dx);
    int32_t* bp = reinterpret_cast<int32_t*>(base + A.bp);
    int32_t* bias = reinterpret_cast<int32_t*>(base + A.bias);
    const size_t L = static_cast<size_t>(A.L);
    const uint32_t flip = Signed ? 0u : 0x80808080u;
    alignas(64) int8_t q[B];
    int sums[B / 16];
    for (int64_t b = b0; b < b1; ++b) {
        const size_t bu = static_cast<size_t>(b);
        for (size_t c = 0; c < L / P; ++c) {
            uint32_t* xo = xu + bu * (B / 4) * L + c * P;
            if (c < static_cast<size_t>(nc)) {
                const float d = quantize_i8_block(x + static_cast<int64_t>(c) * k + b * B, B, q, sums);
                for (size_t g = 0; g < B / 4; ++g) {
                    uint32_t v;
                    std::memcpy(&v, q + 4 * g, 4);
                    for (int i = 0; i < P; ++i) xo[g * L + i] = v ^ flip;
                }
                for (int i = 0; i < P; ++i) dx[bu * L + c * P + i] = d;
                if constexpr (P == 2) {
                    int sum = 0;
                    for (int i = 0; i < B / 16; ++i) sum += sums[i];
                    for (int i = 0; i < P; ++i) bias[bu * L + c * P + i] = -C * sum;
                }
                if constexpr (B == 256)
                    for (size_t p = 0; p < 4; ++p) {
                        const uint32_t lo = static_cast<uint16_t>(sums[4 * p] + sums[4 * p + 1]);
                        const uint32_t hi = static_cast<uint16_t>(sums[4 * p + 2] + sums[4 * p + 3]);
                        for (int i = 0; i < P; ++i) bp[(bu * 4 + p) * L + c * P + i] = static_cast<int32_t>(lo | (hi << 16));
                    }
            } else {
                for (size_t g = 0; g < B / 4; ++g)
                    for (int i = 0; i < P; ++i) xo[g * L + i] = flip;
                for (int i = 0; i < P; ++i) dx[bu * L + c * P + i] = 0.f;
                if constexpr (P == 2)
                    for (int i = 0; i < P; ++i) bias[bu * L + c * P + i] = 0;
                if constexpr (B == 256)
                    for (size_t p = 0; p < 4; ++p)
                        for (int i = 0; i < P; ++i) bp[(bu * 4 + p) * L + c * P + i] = 0;
            }
        }
    }
}

// The vector operations on L lanes of 32 bits.
template <int L>
struct V;
template <>
struct V<8> {
    using I = __m256i;
    using F = __m256;
    static I zero() { return _mm256_setzero_si256(); }
    static F zerof() { return _mm256_setzero_ps(); }
    static I load(const uint32_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
    static I load(const int32_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
    static F loadf(const float* p) { return _mm256_load_ps(p); }
    static I bc(const void* p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return _mm256_set1_epi32(v);
    }
    static F bcf(const float* p) { return _mm256_broadcast_ss(p); }
    static I dpbusd(I acc, I u, const void* s) {  // with the broadcast in the instruction (GCC does not fold it)
        asm("vpdpbusd %2%{1to8%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*static_cast<const int32_t*>(s)));
        return acc;
    }
    static I dpbusd_w(I acc, const void* w, I x) { return _mm256_dpbusd_epi32(acc, bc(w), x); }  // unsigned weights
    static I dpwssd(I acc, I a, const void* s) { return _mm256_dpwssd_epi32(acc, a, bc(s)); }
    static I add(I a, I b) { return _mm256_add_epi32(a, b); }
    static I mullo(I a, const int32_t* s) { return _mm256_mullo_epi32(a, bc(s)); }
    static F fma(I i, F s, F acc) { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), s, acc); }
    static F fnma(I i, F s, F acc) { return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(i), s, acc); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static void storef(float* p, F v) { _mm256_store_ps(p, v); }
};
template <>
struct V<16> {
    using I = __m512i;
    using F = __m512;
    static I zero() { return _mm512_setzero_si512(); }
    static F zerof() { return _mm512_setzero_ps(); }
    static I load(const uint32_t* p) { return _mm512_load_si512(p); }
    static I load(const int32_t* p) { return _mm512_load_si512(p); }
    static F loadf(const float* p) { return _mm512_load_ps(p); }
    static I bc(const void* p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return _mm512_set1_epi32(v);
    }
    static F bcf(const float* p) { return _mm512_set1_ps(*p); }
    static I dpbusd(I acc, I u, const void* s) {
        asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*static_cast<const int32_t*>(s)));
        return acc;
    }
    static I dpbusd_w(I acc, const void* w, I x) { return _mm512_dpbusd_epi32(acc, bc(w), x); }
    static I dpwssd(I acc, I a, const void* s) { return _mm512_dpwssd_epi32(acc, a, bc(s)); }
    static I add(I a, I b) { return _mm512_add_epi32(a, b); }
    static I mullo(I a, const int32_t* s) { return _mm512_mullo_epi32(a, bc(s)); }
    static F fma(I i, F s, F acc) { return _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), s, acc); }
    static F fnma(I i, F s, F acc) { return _mm512_fnmadd_ps(_mm512_cvtepi32_ps(i), s, acc); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static void storef(float* p, F v) { _mm512_store_ps(p, v); }
};

// The R rows' results (acc[r], lane j = column j) to out[j * os + r].
template <int L, int R>
inline void store_rows(const typename V<L>::F* acc, int nc, float* out, size_t os) {
    alignas(64) float t[R][L];
    for (int r = 0; r < R; ++r) V<L>::storef(t[r], acc[r]);
    for (int j = 0; j < nc; ++j)
        for (int r = 0; r < R; ++r) out[static_cast<size_t>(j) * os + static_cast<size_t>(r)] = t[r][j];
}

// ---- Q4_0: eight blocks (144 bytes) of a row at a time, unpacked with byte permutes ----

struct Q40Idx {
    uint8_t q0[64], q1[64];  // vpermt2b: the quant bytes of blocks 0..3 (from bytes 0..127), 4..7 (64..191)
    int16_t sc[32];          // vpermt2w: the eight fp16 scales
    int32_t s8[16];          // vpermt2d: the block sums (dwords 4b of two sad results) to lanes 0..7
};
inline const Q40Idx& q40_idx() {
    alignas(64) static constexpr Q40Idx t = [] {
        Q40Idx v{};
        for (int b = 0; b < 4; ++b)
            for (int j = 0; j < 16; ++j) {
                v.q0[16 * b + j] = static_cast<uint8_t>(18 * b + 2 + j);
                v.q1[16 * b + j] = static_cast<uint8_t>(18 * (b + 4) + 2 + j - 64);
            }
        for (int b = 0; b < 8; ++b) v.sc[b] = static_cast<int16_t>(9 * b);
        for (int b = 0; b < 8; ++b) v.s8[b] = 4 * b;  // 0, 4, 8, 12 of the first; 16.. of the second
        return v;
    }();
    return t;
}

// Eight blocks of one row: q[128h + 16b + i] = element i of block 4h+b minus 8, q[128h + 64 + 16b + i]
// = element 16+i minus 8 (signed); seed[b] = -128 * (sum of block b's weights); dw[b] its scale.
struct alignas(64) Q40Chunk {
    int8_t q[256];
    int32_t seed[8];
    float dw[8];
};
// Offset in Q40Chunk::q of the 4 weights (elements 4g..4g+3) of group g of block b.
constexpr int q40_off(int b, int g) { return 128 * (b / 4) + 16 * (b % 4) + (g < 4 ? 4 * g : 64 + 4 * (g - 4)); }

// One row's eight blocks, unpacked: the signed quants (Q40Chunk::q's four 64-byte parts), the
// seeds and the scales.
struct Q40Row {
    __m512i v[4];
    __m256i seed;
    __m256 dw;
};
inline Q40Row q40_row(const uint8_t* blk, int64_t left, const Q40Idx& ix) {
    __m512i z0, z1, z2;
    if (left >= 8) {
        z0 = _mm512_loadu_si512(blk);
        z1 = _mm512_loadu_si512(blk + 64);
        z2 = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 128)));
    } else {  // the row's last blocks: read only those
        const int64_t bytes = left * static_cast<int64_t>(sizeof(BlockQ4_0));  // < 144
        const __mmask64 m0 = bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
        const __mmask64 m1 = bytes >= 128 ? ~__mmask64{0} : bytes > 64 ? (__mmask64{1} << (bytes - 64)) - 1 : 0;
        const __mmask16 m2 = bytes > 128 ? static_cast<__mmask16>((1u << (bytes - 128)) - 1) : 0;
        z0 = _mm512_maskz_loadu_epi8(m0, blk);
        z1 = _mm512_maskz_loadu_epi8(m1, blk + 64);
        z2 = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(m2, blk + 128));
    }
    Q40Row o;
    const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    const __m256i h = _mm512_castsi512_si256(_mm512_permutex2var_epi16(z0, _mm512_load_si512(ix.sc), z1));
    o.dw = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    const __m512i q0 = _mm512_permutex2var_epi8(z0, _mm512_load_si512(ix.q0), z1);
    const __m512i q1 = _mm512_permutex2var_epi8(z1, _mm512_load_si512(ix.q1), z2);
    const __m512i l0 = _mm512_and_si512(q0, m4), h0 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
    const __m512i l1 = _mm512_and_si512(q1, m4), h1 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
    // sum of block b's nibbles: the 128-bit lane b of l + h, summed by vpsadbw into qwords 2b, 2b+1
    __m512i s0 = _mm512_sad_epu8(_mm512_add_epi8(l0, h0), _mm512_setzero_si512());
    __m512i s1 = _mm512_sad_epu8(_mm512_add_epi8(l1, h1), _mm512_setzero_si512());
    s0 = _mm512_add_epi64(s0, _mm512_shuffle_epi32(s0, _MM_PERM_BADC));
    s1 = _mm512_add_epi64(s1, _mm512_shuffle_epi32(s1, _MM_PERM_BADC));
    const __m256i sq = _mm512_castsi512_si256(_mm512_permutex2var_epi32(s0, _mm512_load_si512(ix.s8), s1));
    o.seed = _mm256_sub_epi32(_mm256_set1_epi32(32768), _mm256_slli_epi32(sq, 7));  // -128 * (sum q - 8 * 32)
    o.v[0] = _mm512_sub_epi8(l0, eight);
    o.v[1] = _mm512_sub_epi8(h0, eight);
    o.v[2] = _mm512_sub_epi8(l1, eight);
    o.v[3] = _mm512_sub_epi8(h1, eight);
    return o;
}

inline void q40_unpack(const uint8_t* blk, int64_t left, const Q40Idx& ix, Q40Chunk& o) {
    const Q40Row w = q40_row(blk, left, ix);
    for (int i = 0; i < 4; ++i) _mm512_store_si512(o.q + 64 * i, w.v[i]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(o.seed), w.seed);
    _mm256_store_ps(o.dw, w.dw);
}

template <int L, int R>
inline void q40_block(int b, const Q40Chunk* ch, const uint32_t* xg, const float* dxb, typename V<L>::F* acc) {
    using T = V<L>;
    typename T::I ia[2][R];  // two chains per row (even and odd groups): vpdpbusd's latency
    for (int r = 0; r < R; ++r) ia[0][r] = T::bc(&ch[r].seed[b]), ia[1][r] = T::zero();
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
        const typename T::I xv = T::load(xg + g * L);
        for (int r = 0; r < R; ++r) ia[g % 2][r] = T::dpbusd(ia[g % 2][r], xv, ch[r].q + q40_off(b, g));
    }
    const typename T::F d = T::loadf(dxb);
    for (int r = 0; r < R; ++r) acc[r] = T::fma(T::add(ia[0][r], ia[1][r]), T::mul(T::bcf(&ch[r].dw[b]), d), acc[r]);
}

template <int L, int R>
void q40_rows(int64_t k, const uint8_t* w, size_t ws, const void* act, int nc, float* out, size_t os) {
    using T = V<L>;
    constexpr size_t GB = 8 * sizeof(BlockQ4_0);
    const ActLayout A = act_layout(k, nc, 32, 1);
    const uint32_t* xu = static_cast<const uint32_t*>(act);
    const float* dx = reinterpret_cast<const float*>(static_cast<const uint8_t*>(act) + A.dx);
    const Q40Idx& ix = q40_idx();
    const int64_t nb = k / 32;
    typename T::F acc[R];
    for (int r = 0; r < R; ++r) acc[r] = T::zerof();
    // Two buffers: chunk c + 1 is unpacked before chunk c is used, so the loads of a chunk never
    // wait for its just-issued stores.
    Q40Chunk buf[2][R];
    const size_t far = prefetch_far(static_cast<size_t>(R) * ws);
    auto unpack = [&](int64_t c) {
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + static_cast<size_t>(r) * ws + static_cast<size_t>(c) * GB;
            prefetch_block<GB>(blk, static_cast<size_t>(R) * ws, far);  // the next rows, and further on (prefetch.h)
            q40_unpack(blk, nb - 8 * c, ix, buf[c % 2][r]);
        }
    };
    unpack(0);
    for (int64_t c = 0; 8 * c < nb; ++c) {
        const int64_t left = nb - 8 * c;
        if (8 * (c + 1) < nb) unpack(c + 1);
        const Q40Chunk* ch = buf[c % 2];
        const uint32_t* xc = xu + static_cast<size_t>(c) * 64 * L;
        const float* dc = dx + static_cast<size_t>(c) * 8 * L;
        if (left >= 8) {
#pragma GCC unroll 8
            for (int b = 0; b < 8; ++b) q40_block<L, R>(b, ch, xc + b * 8 * L, dc + b * L, acc);
        } else {
            for (int b = 0; b < left; ++b) q40_block<L, R>(b, ch, xc + b * 8 * L, dc + b * L, acc);
        }
    }
    store_rows<L, R>(acc, nc, out, os);
}

// ---- Pairs of rows in one 16-lane vector (up to 8 columns; P = 2 of act_layout) ----
//
// On CPUs that split 512-bit operations in two (Zen 4), 8 columns in 8 lanes and 16 in 16 run
// at the same vpdpbusd rate, so 8 lanes would waste half the machine's multiply rate on load
// and float overhead; instead lanes 2j and 2j+1 hold column j against rows A and B. The two
// rows' unpacked weights are interleaved by dwords, so one 64-bit broadcast feeds both.

// dwords [a0 b0 a1 b1 ... a7 b7] and [a8 b8 ... a15 b15] of two vectors
struct PairIdx {
    int32_t lo[16], hi[16];
};
inline const PairIdx& pair_idx() {
    alignas(64) static constexpr PairIdx t = [] {
        PairIdx v{};
        for (int i = 0; i < 8; ++i) v.lo[2 * i] = i, v.lo[2 * i + 1] = 16 + i, v.hi[2 * i] = 8 + i, v.hi[2 * i + 1] = 24 + i;
        return v;
    }();
    return t;
}
inline __m512i bcast64(const void* p) {
    long long v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
}
inline __m512 bcast64f(const void* p) {
    double v;
    std::memcpy(&v, p, 8);
    return _mm512_castpd_ps(_mm512_set1_pd(v));
}
// The results of row pairs (acc[i]: lane 2j = row 2i column j, lane 2j+1 = row 2i+1) for nr rows.
template <int NP>
inline void store_pairs(const __m512* acc, int nr, int nc, float* out, size_t os) {
    alignas(64) float t[NP][16];
    for (int i = 0; i < NP; ++i) _mm512_store_ps(t[i], acc[i]);
    for (int j = 0; j < nc; ++j)
        for (int r = 0; r < nr; ++r) out[static_cast<size_t>(j) * os + static_cast<size_t>(r)] = t[r / 2][2 * j + r % 2];
}

// Q4_0, two rows interleaved: q[8p + 4i] = dword p of row i's quants (unsigned, 0..15; the -8 is
// the activations' bias) in Q40Chunk::q's order; dw likewise.
struct alignas(64) Q40Pair {
    uint8_t q[512];
    float dw[16];
};
inline void q40_unpack_pair(const uint8_t* a, const uint8_t* b, int64_t left, const Q40Idx& ix, const PairIdx& px, Q40Pair& o) {
    const __m512i lo = _mm512_load_si512(px.lo), hi = _mm512_load_si512(px.hi), m4 = _mm512_set1_epi8(0x0f);
    __m512i u[2][4];
    __m256 dw[2];
    const uint8_t* src[2] = {a, b};
    for (int r = 0; r < 2; ++r) {
        __m512i z0, z1, z2;
        const uint8_t* blk = src[r];
        if (left >= 8) {
            z0 = _mm512_loadu_si512(blk);
            z1 = _mm512_loadu_si512(blk + 64);
            z2 = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 128)));
        } else {  // the row's last blocks: read only those (fewer than 128 bytes)
            const int64_t bytes = left * static_cast<int64_t>(sizeof(BlockQ4_0));
            const __mmask64 m0 = bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
            const __mmask64 m1 = bytes > 64 ? (__mmask64{1} << (bytes - 64)) - 1 : 0;
            z0 = _mm512_maskz_loadu_epi8(m0, blk);
            z1 = _mm512_maskz_loadu_epi8(m1, blk + 64);
            z2 = _mm512_setzero_si512();
        }
        dw[r] = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm512_castsi512_si256(_mm512_permutex2var_epi16(z0, _mm512_load_si512(ix.sc), z1))));
        const __m512i q0 = _mm512_permutex2var_epi8(z0, _mm512_load_si512(ix.q0), z1);
        const __m512i q1 = _mm512_permutex2var_epi8(z1, _mm512_load_si512(ix.q1), z2);
        u[r][0] = _mm512_and_si512(q0, m4);
        u[r][1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
        u[r][2] = _mm512_and_si512(q1, m4);
        u[r][3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
    }
    for (int i = 0; i < 4; ++i) {
        _mm512_store_si512(o.q + 128 * i, _mm512_permutex2var_epi32(u[0][i], lo, u[1][i]));
        _mm512_store_si512(o.q + 128 * i + 64, _mm512_permutex2var_epi32(u[0][i], hi, u[1][i]));
    }
    _mm512_store_ps(o.dw, _mm512_permutex2var_ps(_mm512_castps256_ps512(dw[0]), lo, _mm512_castps256_ps512(dw[1])));
}

template <int NP>
inline void q40p_block(int b, const Q40Pair* ch, const uint32_t* xg, const int32_t* biasb, const float* dxb, __m512* acc) {
    __m512i ia[2][NP];  // two chains per pair, as in q40_block
    const __m512i bias = _mm512_load_si512(biasb);
    for (int i = 0; i < NP; ++i) ia[0][i] = bias, ia[1][i] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
        __m512i xv = _mm512_load_si512(xg + 16 * g);
        asm("" : "+v"(xv));  // one load for all pairs (GCC would fold it into every vpdpbusd)
        for (int i = 0; i < NP; ++i) ia[g % 2][i] = _mm512_dpbusd_epi32(ia[g % 2][i], bcast64(ch[i].q + 2 * q40_off(b, g)), xv);
    }
    const __m512 d = _mm512_load_ps(dxb);
    for (int i = 0; i < NP; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(ia[0][i], ia[1][i])), _mm512_mul_ps(bcast64f(&ch[i].dw[2 * b]), d), acc[i]);
}

template <int NP>
void q40p_rows(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, int nc, float* out, size_t os) {
    constexpr size_t GB = 8 * sizeof(BlockQ4_0);
    const ActLayout A = act_layout(k, nc, 32, 2);
    const uint32_t* xu = static_cast<const uint32_t*>(act);
    const float* dx = reinterpret_cast<const float*>(static_cast<const uint8_t*>(act) + A.dx);
    const int32_t* bias = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(act) + A.bias);
    const Q40Idx& ix = q40_idx();
    const PairIdx& px = pair_idx();
    const int64_t nb = k / 32;
    const uint8_t* row[2 * NP];
    for (int r = 0; r < 2 * NP; ++r) row[r] = w + static_cast<size_t>(std::min(r, nr - 1)) * ws;  // a missing row repeats the last
    __m512 acc[NP];
    for (int i = 0; i < NP; ++i) acc[i] = _mm512_setzero_ps();
    Q40Pair buf[2][NP];  // as in q40_rows
    const size_t far = prefetch_far(static_cast<size_t>(2 * NP) * ws);
    auto unpack = [&](int64_t c) {
        for (int i = 0; i < NP; ++i) {
            const size_t off = static_cast<size_t>(c) * GB;
            prefetch_block<GB>(row[2 * i] + off, static_cast<size_t>(2 * NP) * ws, far);
            prefetch_block<GB>(row[2 * i + 1] + off, static_cast<size_t>(2 * NP) * ws, far);
            q40_unpack_pair(row[2 * i] + off, row[2 * i + 1] + off, nb - 8 * c, ix, px, buf[c % 2][i]);
        }
    };
    unpack(0);
    for (int64_t c = 0; 8 * c < nb; ++c) {
        const int64_t left = nb - 8 * c;
        if (8 * (c + 1) < nb) unpack(c + 1);
        const Q40Pair* ch = buf[c % 2];
        const uint32_t* xc = xu + static_cast<size_t>(c) * 64 * 16;
        const float* dc = dx + static_cast<size_t>(c) * 8 * 16;
        const int32_t* bc = bias + static_cast<size_t>(c) * 8 * 16;
        if (left >= 8) {
#pragma GCC unroll 8
            for (int b = 0; b < 8; ++b) q40p_block<NP>(b, ch, xc + b * 8 * 16, bc + b * 16, dc + b * 16, acc);
        } else {
            for (int b = 0; b < left; ++b) q40p_block<NP>(b, ch, xc + b * 8 * 16, bc + b * 16, dc + b * 16, acc);
        }
    }
    store_pairs<NP>(acc, nr, nc, out, os);
}

template <void (*F1)(int64_t, const uint8_t*, size_t, int, const void*, int, float*, size_t),
          void (*F2)(int64_t, const uint8_t*, size_t, int, const void*, int, float*, size_t)>
void pairs_dispatch(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, int nc, float* out, size_t os) {
    if (nr <= 2) F1(k, w, ws, nr, act, nc, out, os);
    else F2(k, w, ws, nr, act, nc, out, os);
}

// ---- Q4_K: one super-block (256 elements, eight sub-blocks of 32) of a row at a time ----

// One super-block of one row: the quants (unsigned, 0..15: the unsigned side of vpdpbusd against
// the signed activations, so no offset to correct) in the order one 64-byte load holds them as
// low/high nibbles (sub-blocks 0 2 | 1 3 | 4 6 | 5 7, 32 bytes each; sub-block s at
// 32 * kPos[s]); the 6-bit scales sc[s] and mins in int16 pairs mnp[p] = mn[2p] | mn[2p+1] << 16.
constexpr int kQ4KPos[8] = {0, 2, 1, 3, 4, 6, 5, 7};
struct alignas(64) Q4KSuper {
    uint8_t q[256];
    int32_t sc[8];
    int32_t mnp[4];
    float d, dmin;
};

inline void q4k_unpack(const uint8_t* blk, Q4KSuper& o) {
    uint32_t a, b, c;
    std::memcpy(&a, blk + 4, 4);
    std::memcpy(&b, blk + 8, 4);
    std::memcpy(&c, blk + 12, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t mn_lo = b & 0x3f3f3f3fu, mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    _mm256_store_si256(reinterpret_cast<__m256i*>(o.sc), _mm256_cvtepu8_epi32(_mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi), 0, 0)));
    const __m128i mnw = _mm_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(mn_lo), static_cast<int>(mn_hi), 0, 0));
    _mm_store_si128(reinterpret_cast<__m128i*>(o.mnp), mnw);  // words mn[0..7] = pairs (mn[2p], mn[2p+1])
    o.d = fp16_to_f32_fast(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
    o.dmin = fp16_to_f32_fast(static_cast<uint16_t>(blk[2] | (blk[3] << 8)));
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i q0 = _mm512_loadu_si512(blk + 16), q1 = _mm512_loadu_si512(blk + 80);
    _mm512_store_si512(o.q, _mm512_and_si512(q0, m4));
    _mm512_store_si512(o.q + 64, _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4));
    _mm512_store_si512(o.q + 128, _mm512_and_si512(q1, m4));
    _mm512_store_si512(o.q + 192, _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4));
}

template <int L, int R>
void q4k_rows(int64_t k, const uint8_t* w, size_t ws, const void* act, int nc, float* out, size_t os) {
    using T = V<L>;
    const ActLayout A = act_layout(k, nc, 256, 1);
    const uint32_t* xu = static_cast<const uint32_t*>(act);
    const float* dx = reinterpret_cast<const float*>(static_cast<const uint8_t*>(act) + A.dx);
    const int32_t* bp = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(act) + A.bp);
    const int64_t nsb = k / 256;
    typename T::F acc[R];
    for (int r = 0; r < R; ++r) acc[r] = T::zerof();
    Q4KSuper buf[2][R];  // as in q40_rows
    const size_t far = prefetch_far(static_cast<size_t>(R) * ws);
    auto unpack = [&](int64_t sb) {
        for (int r = 0; r < R; ++r) {
            const uint8_t* blk = w + static_cast<size_t>(r) * ws + static_cast<size_t>(sb) * sizeof(BlockQ4_K);
            prefetch_block<sizeof(BlockQ4_K)>(blk, static_cast<size_t>(R) * ws, far);
            q4k_unpack(blk, buf[sb % 2][r]);
        }
    };
    unpack(0);
    for (int64_t sb = 0; sb < nsb; ++sb) {
        if (sb + 1 < nsb) unpack(sb + 1);
        const Q4KSuper* ch = buf[sb % 2];
        const uint32_t* xs = xu + static_cast<size_t>(sb) * 64 * L;
        typename T::I sa[R];
        for (int r = 0; r < R; ++r) sa[r] = T::zero();
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
            typename T::I t[2][R];  // two chains per row, as in q40_block
            for (int r = 0; r < R; ++r) t[0][r] = t[1][r] = T::zero();
#pragma GCC unroll 8
            for (int g = 0; g < 8; ++g) {
                typename T::I xv = T::load(xs + (8 * s + g) * L);
                asm("" : "+v"(xv));  // one load for all rows (GCC would fold it into every vpdpbusd)
                for (int r = 0; r < R; ++r) t[g % 2][r] = T::dpbusd_w(t[g % 2][r], ch[r].q + 32 * kQ4KPos[s] + 4 * g, xv);
            }
            for (int r = 0; r < R; ++r) sa[r] = T::add(sa[r], T::mullo(T::add(t[0][r], t[1][r]), &ch[r].sc[s]));
        }
        typename T::I mm[R];
        for (int r = 0; r < R; ++r) mm[r] = T::zero();
        for (int p = 0; p < 4; ++p) {
            const typename T::I bv = T::load(bp + (static_cast<size_t>(sb) * 4 + static_cast<size_t>(p)) * L);
            for (int r = 0; r < R; ++r) mm[r] = T::dpwssd(mm[r], bv, &ch[r].mnp[p]);
        }
        const typename T::F d = T::loadf(dx + static_cast<size_t>(sb) * L);
        for (int r = 0; r < R; ++r) {
            acc[r] = T::fma(sa[r], T::mul(T::bcf(&ch[r].d), d), acc[r]);
            acc[r] = T::fnma(mm[r], T::mul(T::bcf(&ch[r].dmin), d), acc[r]);
        }
    }
    store_rows<L, R>(acc, nc, out, os);
}

// ---- dispatch by rows (1..4) and lanes (8 or 16) ----

using RowsFn = void (*)(int64_t, const uint8_t*, size_t, const void*, int, float*, size_t);

template <template <int, int> class K>
void rows_dispatch(int64_t k, const uint8_t* w, size_t ws, int nr, const void* act, int nc, float* out, size_t os) {
    static constexpr RowsFn fns[2][4] = {{K<8, 1>::run, K<8, 2>::run, K<8, 3>::run, K<8, 4>::run},
                                         {K<16, 1>::run, K<16, 2>::run, K<16, 3>::run, K<16, 4>::run}};
    fns[nc > 8 ? 1 : 0][std::clamp(nr, 1, 4) - 1](k, w, ws, act, nc, out, os);
}

template <int L, int R>
struct Q40K {
    static void run(int64_t k, const uint8_t* w, size_t ws, const void* a, int nc, float* o, size_t os) { q40_rows<L, R>(k, w, ws, a, nc, o, os); }
};
template <int L, int R>
struct Q4KK {
    static void run(int64_t k, const uint8_t* w, size_t ws, const void* a, int nc, float* o, size_t os) { q4k_rows<L, R>(k, w, ws, a, nc, o, os); }
};

}  // namespace

ColsKernel cols_kernel_avx512(DType t, bool vbmi, int nc) {
    const bool pairs = nc <= 8;
    switch (t) {
        case DType::Q4_0:
            if (!vbmi) return {};
            if (pairs) return {32, act_bytes<32, 2>, pack<32, 2, 8>, pairs_dispatch<q40p_rows<1>, q40p_rows<2>>};
            return {32, act_bytes<32, 1>, pack<32, 1>, rows_dispatch<Q40K>};
        case DType::Q4_K: return {256, act_bytes<256, 1>, pack<256, 1, 0, true>, rows_dispatch<Q4KK>};
        default: return {};
    }
}

}  // namespace minerva::cpu
