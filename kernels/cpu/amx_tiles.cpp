// kernels/cpu/amx_tiles.cpp: the scalar emulation of the AMX tile instructions (amx_tiles.h),
// following the pseudocode of the Intel SDM (LDTILECFG, TILELOADD, TILESTORED, TILEZERO,
// TDPBSSD/TDPBSUD/TDPBUSD/TDPBUUD, TILERELEASE). Built with the baseline flags.
#include "cpu/amx_tiles.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace minerva::cpu {
namespace {

[[noreturn]] void fault(const std::string& what) { throw std::logic_error("AMX emulation: " + what); }

std::string tmm(int t) { return "tmm" + std::to_string(t); }

}  // namespace

void TileEmulator::load_config(const TileConfig& c) {
    if (c.palette_id > 1) fault("ldtilecfg: palette " + std::to_string(c.palette_id) + " does not exist (#GP)");
    if (c.start_row != 0) fault("ldtilecfg: start_row must be 0 (#GP)");
    for (uint8_t r : c.reserved)
        if (r) fault("ldtilecfg: reserved bytes must be 0 (#GP)");
    if (c.palette_id == 0) {  // the init state
        release();
        return;
    }
    for (int t = 0; t < 16; ++t) {
        if (t >= kTiles) {
            if (c.rows[t] || c.colsb[t]) fault("ldtilecfg: tile " + std::to_string(t) + " does not exist in palette 1 (#GP)");
            continue;
        }
        if (c.rows[t] > kMaxRows || c.colsb[t] > kMaxColsb)
            fault("ldtilecfg: " + tmm(t) + " of " + std::to_string(c.rows[t]) + " rows x " + std::to_string(c.colsb[t]) +
                  " bytes exceeds 16 x 64 (#GP)");
        if ((c.rows[t] == 0) != (c.colsb[t] == 0)) fault("ldtilecfg: " + tmm(t) + " has rows or bytes per row but not both (#GP)");
    }
    configured_ = true;
    for (int t = 0; t < kTiles; ++t) {
        tiles_[t].rows = c.rows[t];
        tiles_[t].colsb = c.colsb[t];
        std::memset(tiles_[t].b, 0, sizeof tiles_[t].b);  // ldtilecfg zeroes the tile data
    }
}

void TileEmulator::release() {
    configured_ = false;
    for (Tile& t : tiles_) t = Tile{};
}

void TileEmulator::check(int t, const char* op) const {
    if (!configured_) fault(std::string(op) + ": no tile configuration loaded (#UD)");
    if (t < 0 || t >= kTiles) fault(std::string(op) + ": " + tmm(t) + " does not exist (#UD)");
    if (tiles_[t].rows == 0) fault(std::string(op) + ": " + tmm(t) + " is not configured (#UD)");
}

void TileEmulator::zero(int t) {
    check(t, "tilezero");
    std::memset(tiles_[t].b, 0, sizeof tiles_[t].b);
}

void TileEmulator::load(int t, const void* base, size_t stride) {
    check(t, "tileloadd");
    Tile& T = tiles_[t];
    std::memset(T.b, 0, sizeof T.b);
    const auto* p = static_cast<const uint8_t*>(base);
    for (int r = 0; r < T.rows; ++r) std::memcpy(T.b[r], p + static_cast<size_t>(r) * stride, static_cast<size_t>(T.colsb));
}

void TileEmulator::store(int t, void* base, size_t stride) const {
    check(t, "tilestored");
    const Tile& T = tiles_[t];
    auto* p = static_cast<uint8_t*>(base);
    for (int r = 0; r < T.rows; ++r) std::memcpy(p + static_cast<size_t>(r) * stride, T.b[r], static_cast<size_t>(T.colsb));
}

void TileEmulator::dot(int dst, int a, int b, bool a_signed, bool b_signed, const char* op) {
    check(dst, op);
    check(a, op);
    check(b, op);
    if (dst == a || dst == b || a == b) fault(std::string(op) + ": the three tiles must differ (#UD)");
    Tile& C = tiles_[dst];
    const Tile &A = tiles_[a], &B = tiles_[b];
    const auto shape = [&] {
        return " (" + tmm(dst) + " " + std::to_string(C.rows) + "x" + std::to_string(C.colsb) + ", " + tmm(a) + " " +
               std::to_string(A.rows) + "x" + std::to_string(A.colsb) + ", " + tmm(b) + " " + std::to_string(B.rows) + "x" +
               std::to_string(B.colsb) + ") (#UD)";
    };
    if (C.colsb % 4 || A.colsb % 4) fault(std::string(op) + ": bytes per row must be a multiple of 4" + shape());
    if (A.colsb / 4 != B.rows) fault(std::string(op) + ": a.colsb / 4 != b.rows" + shape());
    if (B.colsb != C.colsb) fault(std::string(op) + ": b.colsb != dst.colsb" + shape());
    if (A.rows != C.rows) fault(std::string(op) + ": a.rows != dst.rows" + shape());
    const auto ext = [](uint8_t v, bool s) { return s ? static_cast<int32_t>(static_cast<int8_t>(v)) : static_cast<int32_t>(v); };
    for (int m = 0; m < C.rows; ++m) {
        for (int n = 0; n < C.colsb / 4; ++n) {
            int32_t acc;
            std::memcpy(&acc, C.b[m] + 4 * n, 4);
            uint32_t u = static_cast<uint32_t>(acc);  // wrapping int32 arithmetic
            for (int k = 0; k < A.colsb / 4; ++k)
                for (int i = 0; i < 4; ++i)
                    u += static_cast<uint32_t>(ext(A.b[m][4 * k + i], a_signed) * ext(B.b[k][4 * n + i], b_signed));
            std::memcpy(C.b[m] + 4 * n, &u, 4);
        }
        std::memset(C.b[m] + C.colsb, 0, static_cast<size_t>(kMaxColsb - C.colsb));
    }
    for (int m = C.rows; m < kMaxRows; ++m) std::memset(C.b[m], 0, kMaxColsb);
}

}  // namespace minerva::cpu
