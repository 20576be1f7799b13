// kernels/cpu/gemm_amx.cpp: the AMX-INT8 GEMM micro-kernel (gemm_amx.h), written once against
// a tile-ops interface with two implementations: HwTiles (the AMX instructions; this file is
// built with -mamx-tile -mamx-int8 and the AVX-512 flags) and EmuTiles (amx_tiles.h's scalar
// emulation, for the tests on CPUs without AMX).
// GCC 12's AVX-512 intrinsics start from self-initialised "undefined" vectors, which its
// -Wmaybe-uninitialized flags once inlined (as in gemm_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "cpu/amx_tiles.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm_amx.h"
#include "cpu/gemm_layout.h"

#if defined(__AMX_TILE__) && defined(__AMX_INT8__)
#define MINERVA_AMX_INTRINSICS 1
#endif

namespace minerva::cpu {
namespace {

// ---- tile ops ------------------------------------------------------------------------------
// zero<T>, load<T>(base, stride), store<T>(base, stride), dot<C, A, B> (TDPBSUD: C += A signed
// x B unsigned), config(cfg), release(). Tile numbers are template arguments because the
// instructions encode them.

#if MINERVA_AMX_INTRINSICS
// The intrinsics paste their tile argument into the instruction text, so it must be a literal.
#define MINERVA_TILE_LITERAL(T, X)                                                                  \
    if constexpr ((T) == 0) { X(0); } else if constexpr ((T) == 1) { X(1); }                        \
    else if constexpr ((T) == 2) { X(2); } else if constexpr ((T) == 3) { X(3); }                   \
    else if constexpr ((T) == 4) { X(4); } else if constexpr ((T) == 5) { X(5); }                   \
    else if constexpr ((T) == 6) { X(6); } else { static_assert((T) == 7, "tmm0..tmm7"); X(7); }
#define MINERVA_TILEZERO(n) _tile_zero(n)
#define MINERVA_TILELOAD(n) _tile_loadd(n, base, static_cast<long>(stride))
#define MINERVA_TILESTORE(n) _tile_stored(n, base, static_cast<long>(stride))

struct HwTiles {
    // The intrinsics' asm statements name only part of the memory they read (ldtilecfg: 8 of
    // its 64 bytes; tileloadd: none), so a compiler barrier makes earlier stores land first.
    void config(const TileConfig& c) {
        __asm__ volatile("" ::: "memory");
        _tile_loadconfig(&c);
    }
    void release() { _tile_release(); }
    template <int T>
    void zero() {
        MINERVA_TILE_LITERAL(T, MINERVA_TILEZERO)
    }
    template <int T>
    void load(const void* base, size_t stride) {
        __asm__ volatile("" ::: "memory");
        MINERVA_TILE_LITERAL(T, MINERVA_TILELOAD)
    }
    template <int T>
    void store(void* base, size_t stride) {
        MINERVA_TILE_LITERAL(T, MINERVA_TILESTORE)
    }
    template <int C, int A, int B>
    void dot() {
        if constexpr (C == 0 && A == 1 && B == 2) _tile_dpbsud(0, 1, 2);
        else if constexpr (C == 3 && A == 4 && B == 5) _tile_dpbsud(3, 4, 5);
        else static_assert(C < 0, "add the tile triple here");
    }
};
#endif

struct EmuTiles {
    TileEmulator& e;
    void config(const TileConfig& c) { e.load_config(c); }
    void release() { e.release(); }
    template <int T>
    void zero() { e.zero(T); }
    template <int T>
    void load(const void* base, size_t stride) { e.load(T, base, stride); }
    template <int T>
    void store(void* base, size_t stride) { e.store(T, base, stride); }
    template <int C, int A, int B>
    void dot() { e.dpbsud(C, A, B); }
};

// ---- the kernel ----------------------------------------------------------------------------

// Two sets of (C, A, B) tiles; `buf` is the set's 16x16 int32 staging buffer for C.
struct Set0 { static constexpr int C = 0, A = 1, B = 2, buf = 0; };
struct Set1 { static constexpr int C = 3, A = 4, B = 5, buf = 1; };

// A group of g columns (A and C: g rows) against the 16 weight rows, kb bytes of K per dot
// product: A g x kb, B kb/4 x 64, C g x 64, in both sets.
TileConfig make_config(int g, int kb) {
    TileConfig c;
    c.palette_id = 1;
    for (int base : {0, 3}) {
        c.rows[base] = static_cast<uint8_t>(g);
        c.colsb[base] = 64;
        c.rows[base + 1] = static_cast<uint8_t>(g);
        c.colsb[base + 1] = static_cast<uint16_t>(kb);
        c.rows[base + 2] = static_cast<uint8_t>(kb / 4);
        c.colsb[base + 2] = 64;
    }
    return c;
}

// issue(set, i): the tile steps of unit i (a block or sub-block); finish(set, i): its vector
// steps. The sets alternate so that the dot product of unit i + 1 is issued before the results
// of unit i are read back.
template <class Issue, class Finish>
void pipeline(int64_t count, Issue&& issue, Finish&& finish) {
    issue(Set0{}, 0);
    for (int64_t i = 0; i < count; i += 2) {
        if (i + 1 < count) issue(Set1{}, i + 1);
        finish(Set0{}, i);
        if (i + 1 < count) {
            if (i + 2 < count) issue(Set0{}, i + 2);
            finish(Set1{}, i + 1);
        }
    }
}

// Per-column pointers into the quantized columns of a group; columns past g repeat the last
// (their results are computed on the vector side and never stored).
struct GroupCols {
    const float* dx[16];
    const float* dxs[16];
    const int32_t* bias[16];
    const int32_t* pair[16];
    GroupCols(const GemmLayout& L, const uint8_t* cols, size_t cs, int g) {
        for (int j = 0; j < 16; ++j) {
            const uint8_t* col = cols + cs * static_cast<size_t>(std::min(j, g - 1));
            dx[j] = reinterpret_cast<const float*>(col + L.cdx);
            dxs[j] = reinterpret_cast<const float*>(col + L.cdxs);
            bias[j] = reinterpret_cast<const int32_t*>(col + L.cbias);
            pair[j] = reinterpret_cast<const int32_t*>(col + L.cpair);
        }
    }
};

// Block32 types: per 32-block, C = TDPBSUD over 8 granules; then acc += float(C + bias) * (d * dx)
// (+ m * (dx * sum q) for the types with a min), exactly the VNNI kernel's float steps.
template <bool Min, class Tiles>
void group_block32(Tiles& tl, const GemmLayout& L, const uint8_t* tile, const uint8_t* cols, size_t cs, int g, float* out,
                   int64_t ldo, __mmask16 rm, int32_t (*cbuf)[256]) {
    const GroupCols gc(L, cols, cs, g);
    const float* D = reinterpret_cast<const float*>(tile + L.d);
    const float* M = reinterpret_cast<const float*>(tile + L.m);
    __m512 acc[16];
    for (auto& a : acc) a = _mm512_setzero_ps();
    auto issue = [&](auto set, int64_t b) {
        using S = decltype(set);
        tl.template zero<S::C>();
        tl.template load<S::A>(cols + 32 * b, cs);
        tl.template load<S::B>(tile + 512 * b, 64);
        tl.template dot<S::C, S::A, S::B>();
    };
    auto finish = [&](auto set, int64_t b) {
        using S = decltype(set);
        int32_t* cb = cbuf[S::buf];
        tl.template store<S::C>(cb, 64);
        const __m512 d = _mm512_load_ps(D + 16 * b);
        for (int j = 0; j < 16; ++j) {
            const __m512i ia = _mm512_add_epi32(_mm512_set1_epi32(gc.bias[j][b]), _mm512_load_si512(cb + 16 * j));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia), _mm512_mul_ps(d, _mm512_set1_ps(gc.dx[j][b])), acc[j]);
        }
        if constexpr (Min) {
            const __m512 m = _mm512_load_ps(M + 16 * b);
            for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(m, _mm512_set1_ps(gc.dxs[j][b]), acc[j]);
        }
    };
    pipeline(L.nblk, issue, finish);
    for (int j = 0; j < g; ++j) _mm512_mask_storeu_ps(out + ldo * j, rm, acc[j]);
}

// K types: per sub-block s of SB elements, C = TDPBSUD over SB/4 granules and sa += C * sc_s
// (integer); at the end of each super-block the mins sum_s mn_s * bsum_s (vpdpwssd on int16
// pairs) and the float step acc += float(sa) * (d * dx) - float(mins) * (dmin * dx), exactly the
// VNNI kernel's steps.
template <int SB, class Tiles>
void group_super(Tiles& tl, const GemmLayout& L, const uint8_t* tile, const uint8_t* cols, size_t cs, int g, float* out,
                 int64_t ldo, __mmask16 rm, int32_t (*cbuf)[256]) {
    constexpr int NS = 256 / SB, NP = NS / 2, GS = SB / 4;
    const GroupCols gc(L, cols, cs, g);
    const __m512i* SC = reinterpret_cast<const __m512i*>(tile + L.sc);
    const __m512i* MN = reinterpret_cast<const __m512i*>(tile + L.mn);
    const float* D = reinterpret_cast<const float*>(tile + L.d);
    const float* DM = reinterpret_cast<const float*>(tile + L.m);
    __m512 acc[16];
    __m512i sa[16];
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_ps(), sa[j] = _mm512_setzero_si512();
    auto issue = [&](auto set, int64_t i) {  // i = NS * block + sub-block
        using S = decltype(set);
        tl.template zero<S::C>();
        tl.template load<S::A>(cols + SB * i, cs);
        tl.template load<S::B>(tile + 64 * GS * i, 64);
        tl.template dot<S::C, S::A, S::B>();
    };
    auto finish = [&](auto set, int64_t i) {
        using S = decltype(set);
        int32_t* cb = cbuf[S::buf];
        tl.template store<S::C>(cb, 64);
        const __m512i sc = _mm512_load_si512(SC + i);
        for (int j = 0; j < 16; ++j) sa[j] = _mm512_add_epi32(sa[j], _mm512_mullo_epi32(_mm512_load_si512(cb + 16 * j), sc));
        if (i % NS != NS - 1) return;
        const int64_t b = i / NS;
        __m512i mn[NP];
        for (int p = 0; p < NP; ++p) mn[p] = _mm512_load_si512(MN + NP * b + p);
        const __m512 d = _mm512_load_ps(D + 16 * b), dm = _mm512_load_ps(DM + 16 * b);
        for (int j = 0; j < 16; ++j) {
            __m512i t = _mm512_setzero_si512();
            for (int p = 0; p < NP; ++p) t = _mm512_dpwssd_epi32(t, mn[p], _mm512_set1_epi32(gc.pair[j][NP * b + p]));
            const __m512 x = _mm512_set1_ps(gc.dx[j][b]);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sa[j]), _mm512_mul_ps(d, x), acc[j]);
            acc[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dm, x), acc[j]);
            sa[j] = _mm512_setzero_si512();
        }
    };
    pipeline(L.nblk * NS, issue, finish);
    for (int j = 0; j < g; ++j) _mm512_mask_storeu_ps(out + ldo * j, rm, acc[j]);
}

template <class Tiles>
void amx_tile(Tiles& tl, DType t, int64_t k, const void* tile_v, int nr, const uint8_t* cols, size_t cs, int nc, float* out,
              int64_t ldo) {
    const GemmLayout L = gemm_layout(t, k);
    const uint8_t* tile = static_cast<const uint8_t*>(tile_v);
    const __mmask16 rm = static_cast<__mmask16>((1u << nr) - 1);
    const int kb = L.k_mode ? L.sb : 32;  // bytes of K per dot product: one block or sub-block
    alignas(64) int32_t cbuf[2][256] = {};
    int configured = 0;  // rows of the loaded configuration
    for (int j0 = 0; j0 < nc; j0 += 16) {
        const int g = std::min(16, nc - j0);
        if (g != configured) {
            tl.config(make_config(g, kb));
            configured = g;
        }
        const uint8_t* gcols = cols + cs * static_cast<size_t>(j0);
        float* gout = out + ldo * j0;
        if (!L.k_mode) {
            if (L.has_min) group_block32<true>(tl, L, tile, gcols, cs, g, gout, ldo, rm, cbuf);
            else group_block32<false>(tl, L, tile, gcols, cs, g, gout, ldo, rm, cbuf);
        } else if (L.sb == 32) {
            group_super<32>(tl, L, tile, gcols, cs, g, gout, ldo, rm, cbuf);
        } else {
            group_super<16>(tl, L, tile, gcols, cs, g, gout, ldo, rm, cbuf);
        }
    }
    if (configured) tl.release();
}

}  // namespace

bool amx_compiled() {
#if MINERVA_AMX_INTRINSICS
    return true;
#else
    return false;
#endif
}

void gemm_tile_amx(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t cs, int nc, float* out, int64_t ldo) {
#if MINERVA_AMX_INTRINSICS
    HwTiles tl;
    amx_tile(tl, t, k, tile, nr, cols, cs, nc, out, ldo);
#else
    (void)t, (void)k, (void)tile, (void)nr, (void)cols, (void)cs, (void)nc, (void)out, (void)ldo;
    throw std::logic_error("gemm_tile_amx: this build has no AMX intrinsics (the compiler lacks -mamx-tile -mamx-int8)");
#endif
}

void gemm_tile_amx_emulated(DType t, int64_t k, const void* tile, int nr, const uint8_t* cols, size_t cs, int nc, float* out,
                            int64_t ldo) {
    // As on the CPU, the tile state belongs to the thread and outlives a call: each call must
    // find it released (by the previous call's tilerelease) and load its own configuration.
    thread_local TileEmulator emu;
    if (emu.configured()) {
        emu.release();
        throw std::logic_error("AMX emulation: a previous call on this thread left the tiles configured (no tilerelease)");
    }
    EmuTiles tl{emu};
    amx_tile(tl, t, k, tile, nr, cols, cs, nc, out, ldo);
}

GemmTileFn gemm_amx_tile_fn() {
    const Features& f = features();
    if (f.amx && amx_compiled()) return gemm_tile_amx;
    if (f.amx_emulated) return gemm_tile_amx_emulated;
    return nullptr;
}

double amx_peak_ops_per_second(double seconds) {
#if MINERVA_AMX_INTRINSICS
    if (!detected_features().amx) return 0;
    alignas(64) TileConfig c;
    c.palette_id = 1;
    for (int t = 0; t < 8; ++t) c.rows[t] = 16, c.colsb[t] = 64;
    alignas(64) int8_t src[16 * 64];
    for (int i = 0; i < 16 * 64; ++i) src[i] = static_cast<int8_t>(i % 7 - 3);
    HwTiles tl;
    tl.config(c);
    tl.load<4>(src, 64);
    tl.load<5>(src, 64);
    tl.load<6>(src, 64);
    tl.load<7>(src, 64);
    tl.zero<0>();
    tl.zero<1>();
    tl.zero<2>();
    tl.zero<3>();
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    int64_t rounds = 0;
    double elapsed = 0;
    do {
        for (int r = 0; r < 256; ++r) {  // four independent accumulators: throughput, not latency
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
        }
        rounds += 256;
        elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (elapsed < seconds);
    alignas(64) int32_t sink[256];
    tl.store<0>(sink, 64);
    tl.release();
    __asm__ volatile("" : : "r"(sink[0]) : "memory");
    return static_cast<double>(rounds) * 4.0 * (16.0 * 16.0 * 64.0 * 2.0) / elapsed;
#else
    (void)seconds;
    return 0;
#endif
}

}  // namespace minerva::cpu
