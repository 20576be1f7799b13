// kernels/cpu/amx_tiles.h: the AMX tile state as the Intel SDM defines it (palette 1: 8 tiles
// tmm0..tmm7 of up to 16 rows x 64 bytes), emulated in scalar code.
//
// The AMX GEMM (gemm_amx.cpp) is written once against a small "tile ops" interface (config,
// release, zero, load, store, dot-product-accumulate); one implementation issues the real
// instructions, the other drives this emulator. So on CPUs without AMX the tests still run the
// kernel's packing, tile shapes, strides, scales and edge handling, and the emulator refuses
// what the CPU would refuse (a bad configuration: #GP; mismatched tile shapes or an
// unconfigured tile: #UD) by throwing std::logic_error.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minerva::cpu {

// ldtilecfg's 64-byte memory operand.
struct TileConfig {
    uint8_t palette_id = 0;  // 1: the 8 x 16 x 64 palette; 0: no tiles (the state after tilerelease)
    uint8_t start_row = 0;   // restart point of an interrupted load/store; 0 here
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};  // bytes per row of tile i (tiles 8..15 reserved, 0)
    uint8_t rows[16] = {};    // rows of tile i
};
static_assert(sizeof(TileConfig) == 64);

class TileEmulator {
public:
    static constexpr int kTiles = 8, kMaxRows = 16, kMaxColsb = 64;

    void load_config(const TileConfig& c);  // ldtilecfg
    void release();                         // tilerelease: back to the init state, no tiles configured
    void zero(int t);                       // tilezero: the whole tile
    // tileloadd: row r of t from base + r * stride, colsb bytes; the rest of each row and the
    // rows past `rows` become zero.
    void load(int t, const void* base, size_t stride);
    void store(int t, void* base, size_t stride) const;  // tilestored: rows x colsb bytes
    // tdpb{s,u}{s,u}d dst, a, b: for m < dst.rows and n < dst.colsb / 4,
    //   dst[m][n] += sum over k < a.colsb / 4 of sum_i a.byte[m][4k + i] * b.byte[k][4n + i]
    // (int32, wrapping; a's bytes signed for the first S/U, b's for the second). Needs
    // a.colsb / 4 == b.rows, b.colsb == dst.colsb, a.rows == dst.rows, three distinct tiles.
    void dpbssd(int dst, int a, int b) { dot(dst, a, b, true, true, "tdpbssd"); }
    void dpbsud(int dst, int a, int b) { dot(dst, a, b, true, false, "tdpbsud"); }
    void dpbusd(int dst, int a, int b) { dot(dst, a, b, false, true, "tdpbusd"); }
    void dpbuud(int dst, int a, int b) { dot(dst, a, b, false, false, "tdpbuud"); }

    bool configured() const { return configured_; }
    int rows(int t) const { return tiles_[t].rows; }
    int colsb(int t) const { return tiles_[t].colsb; }

private:
    struct Tile {
        int rows = 0, colsb = 0;
        alignas(64) uint8_t b[kMaxRows][kMaxColsb] = {};
    };
    void check(int t, const char* op) const;
    void dot(int dst, int a, int b, bool a_signed, bool b_signed, const char* op);
    bool configured_ = false;
    Tile tiles_[kTiles];
};

}  // namespace minerva::cpu
