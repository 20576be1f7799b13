// kernels/cpu/cpu_features.cpp: CPUID + XGETBV feature detection.
#include "cpu/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace minerva::cpu {
namespace {

uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
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
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1);
    return f;
}

Features& current() {
    static Features f = [] {
        Features g = detected_features();
        if (const char* e = std::getenv("MINERVA_CPU"); e && std::strcmp(e, "avx2") == 0) g = Features{g.avx2, false, false, false};
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

void set_features(const Features& f) {
    const Features& d = detected_features();
    current() = Features{f.avx2 && d.avx2, f.avx512 && d.avx512, f.avx512_vnni && d.avx512_vnni, f.avx512_bf16 && d.avx512_bf16,
                         f.avx512_vbmi && d.avx512_vbmi};
}

}  // namespace minerva::cpu
