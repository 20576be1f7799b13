// shaders/embedded.h: the SPIR-V modules built from shaders/*.comp (see variants.cmake),
// embedded in the library by the generated embedded_shaders.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minerva::shaders {

struct Spirv {
    const char* name;       // variant name from variants.cmake, e.g. "matvec_q4_k_sg"
    const uint32_t* words;  // SPIR-V code
    size_t n_words;
};

extern const Spirv k_modules[];
extern const size_t k_module_count;

}  // namespace minerva::shaders
