// kernels/cpu/cpu_features.h: which instruction sets the running CPU (and OS) support, read once
// by CPUID. MINERVA_CPU in the environment restricts the dispatched paths: `avx2` forces the AVX2
// paths (to test them on AVX-512 machines), `avx512` everything but AMX (the VNNI GEMM, for A/B
// runs on AMX machines), `amx-emulated` runs the AMX GEMM on the scalar tile emulator (slow; to
// check the AMX kernel end to end on CPUs without AMX). set_features() lets tests switch paths
// in-process.
#pragma once

namespace minerva::cpu {

struct Features {
    bool avx2 = false;
    bool avx512 = false;       // F, BW, VL, DQ with OS support for the ZMM state
    bool avx512_vnni = false;  // vpdpbusd
    bool avx512_bf16 = false;  // vdpbf16ps
    bool avx512_vbmi = false;  // vpermt2b / vpermb (byte permutes)
    // AMX-TILE + AMX-INT8 with the tile state enabled by the OS (XCR0 bits 17, 18), palette 1 of
    // 8 tiles x 16 rows x 64 bytes, and on Linux the process's permission to use it
    // (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), requested once, at detection).
    // Implies avx512_vnni here: the AMX GEMM applies its scales with AVX-512.
    bool amx = false;
    // Tests / MINERVA_CPU=amx-emulated only: the GEMM dispatches to the AMX kernel built on the
    // scalar emulation of the tile instructions (gemm_amx.h). Needs avx512_vnni, not AMX.
    bool amx_emulated = false;
};

const Features& features();
const Features& detected_features();      // what CPUID says, ignoring overrides
void set_features(const Features& f);     // for tests: restrict the dispatched paths

// Why detected_features().amx is false ("AMX not available on this CPU", the OS or the kernel
// refusing the tile state, ...), or "available" when it is true.
const char* amx_status();

}  // namespace minerva::cpu
