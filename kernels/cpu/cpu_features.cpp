// kernels/cpu/cpu_features.cpp: CPUID + XGETBV feature detection, and on Linux the request for
// the AMX tile state.
#include "cpu/cpu_features.h"

#include <cpuid.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "log/log.h"

namespace minerva::cpu {
namespace {

uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

std::string& amx_status_text() {
    static std::string s = "AMX not available on this CPU";
    return s;
}

// Linux keeps the 8 KB tile data state out of a process's signal frames and context switches
// until the process asks for it; without the permission the first tile instruction raises
// SIGILL even though CPUID and XCR0 report AMX. The permission is process-wide (every thread,
// present and future), so it is asked for once, here.
bool request_tile_permission() {
#if defined(__linux__)
    constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
        const int err = errno;
        amx_status_text() = std::string("the kernel refused the AMX tile state (arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA): ") +
                            std::strerror(err) + "; Linux 5.16 or later grants it)";
        logging::warn("cpu: {}; the prefill GEMM uses AVX-512 VNNI instead", amx_status_text());
        return false;
    }
    unsigned long perm = 0;
    if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &perm) != 0 || !((perm >> kXfeatureXtiledata) & 1)) {
        amx_status_text() = "the kernel did not grant the AMX tile state (ARCH_GET_XCOMP_PERM lacks XTILEDATA)";
        logging::warn("cpu: {}; the prefill GEMM uses AVX-512 VNNI instead", amx_status_text());
        return false;
    }
#endif
    return true;
}

// AMX-TILE (CPUID.7.0:EDX[24]) and AMX-INT8 (EDX[25]), the tile state enabled in XCR0
// (XTILECFG bit 17, XTILEDATA bit 18), palette 1 at least 8 tiles of 16 rows x 64 bytes
// (CPUID.1DH), then the process's permission.
bool detect_amx(unsigned edx7, uint64_t xcr0, bool vnni) {
    if (!((edx7 >> 24) & 1) || !((edx7 >> 25) & 1)) return false;
    if ((xcr0 & (3ull << 17)) != (3ull << 17)) {
        amx_status_text() = "the OS does not enable the AMX tile state (XCR0 bits 17/18)";
        return false;
    }
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, nullptr) < 0x1d) return false;
    __cpuid_count(0x1d, 0, a, b, c, d);
    if (a < 1) return false;  // highest palette
    __cpuid_count(0x1d, 1, a, b, c, d);
    const unsigned bytes_per_row = b & 0xffff, names = b >> 16, max_rows = c & 0xffff;
    if (bytes_per_row < 64 || names < 8 || max_rows < 16) {
        amx_status_text() = "AMX palette 1 is smaller than 8 tiles x 16 rows x 64 bytes";
        return false;
    }
    if (!vnni) {
        amx_status_text() = "AMX without AVX-512 VNNI (the AMX GEMM applies its scales with AVX-512)";
        return false;
    }
    if (!request_tile_permission()) return false;
    amx_status_text() = "available";
    return true;
}

Features detect() {
    Features f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1;
    if (!osxsave) return f;
    const uint64_t xcr0 = xgetbv0();
    const bool ymm_os = (xcr0 & 0x6) == 0x6;
    const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, nullptr) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = ymm_os && ((b >> 5) & 1);
    const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    f.avx512 = zmm_os && f512 && dq && bw && vl;
    f.avx512_vnni = f.avx512 && ((c >> 11) & 1);
    f.avx512_vbmi = f.avx512 && ((c >> 1) & 1);
    const unsigned edx7 = d;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1);
    f.amx = detect_amx(edx7, xcr0, f.avx512_vnni);
    return f;
}

Features restrict_to_detected(const Features& f) {
    const Features& d = detected_features();
    Features g;
    g.avx2 = f.avx2 && d.avx2;
    g.avx512 = f.avx512 && d.avx512;
    g.avx512_vnni = f.avx512_vnni && d.avx512_vnni;
    g.avx512_bf16 = f.avx512_bf16 && d.avx512_bf16;
    g.avx512_vbmi = f.avx512_vbmi && d.avx512_vbmi;
    g.amx = f.amx && d.amx;
    g.amx_emulated = f.amx_emulated && d.avx512_vnni;
    return g;
}

Features& current() {
    static Features f = [] {
        Features g = detected_features();
        const char* e = std::getenv("MINERVA_CPU");
        if (e && std::strcmp(e, "avx2") == 0) g = Features{g.avx2, false, false, false};
        if (e && std::strcmp(e, "avx512") == 0) g.amx = false;
        if (e && std::strcmp(e, "amx-emulated") == 0) {
            g.amx = false;
            g.amx_emulated = g.avx512_vnni;
            if (!g.amx_emulated) logging::warn("cpu: MINERVA_CPU=amx-emulated needs AVX-512 VNNI, which this CPU lacks; ignored");
        }
        if (e && *e && std::strcmp(e, "avx2") != 0 && std::strcmp(e, "avx512") != 0 && std::strcmp(e, "amx-emulated") != 0)
            logging::warn("cpu: MINERVA_CPU={} is not one of avx2, avx512, amx-emulated; ignored", e);
        return g;
    }();
    return f;
}

}  // namespace

const Features& detected_features() {
    static const Features f = detect();
    return f;
}

const Features& features() { return current(); }

void set_features(const Features& f) { current() = restrict_to_detected(f); }

const char* amx_status() {
    (void)detected_features();
    return amx_status_text().c_str();
}

}  // namespace minerva::cpu
