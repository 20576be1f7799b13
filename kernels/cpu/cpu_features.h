// kernels/cpu/cpu_features.h: which instruction sets the running CPU (and OS) support, read once
// by CPUID. MINERVA_CPU=avx2 in the environment forces the AVX2 paths (to test them on AVX-512
// machines); set_features() lets tests switch paths in-process.
#pragma once

namespace minerva::cpu {

struct Features {
    bool avx2 = false;
    bool avx512 = false;       // F, BW, VL, DQ with OS support for the ZMM state
    bool avx512_vnni = false;  // vpdpbusd
    bool avx512_bf16 = false;  // vdpbf16ps
    bool avx512_vbmi = false;  // vpermt2b / vpermb (byte permutes)
};

const Features& features();
const Features& detected_features();      // what CPUID says, ignoring overrides
void set_features(const Features& f);     // for tests: restrict the dispatched paths

}  // namespace minerva::cpu
