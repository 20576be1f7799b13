// minerva/types.h: tensor element types as stored in GGUF files (the ggml type ids).
#pragma once
#include "minerva/export.h"
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace minerva {

enum class DType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35,
};

struct MINERVA_API DTypeInfo {
    DType type;
    std::string_view name;
    uint32_t block_elems;  // elements per block (1 for plain types)
    uint32_t block_bytes;  // bytes per block
};

// Layout facts for a type id read from a file; nullopt for ids no known format uses.
MINERVA_API std::optional<DTypeInfo> dtype_info(uint32_t id);
MINERVA_API const DTypeInfo& dtype_info(DType t);
MINERVA_API std::string_view dtype_name(DType t);
MINERVA_API std::optional<DType> dtype_from_name(std::string_view name);  // "Q4_K", "f16", ... (case-insensitive)

// Bytes of a row of n elements (n must be a multiple of the block size).
inline size_t row_bytes(DType t, int64_t n) {
    const DTypeInfo& i = dtype_info(t);
    return static_cast<size_t>(n / i.block_elems) * i.block_bytes;
}

// Reports the fraction (0..1) of long work done (loading, quantizing); return false to cancel it.
using ProgressCallback = std::function<bool(float fraction)>;

// Types the LLaMA forward pass can compute with (CPU and Vulkan backends).
MINERVA_API bool dtype_supported_for_compute(DType t);

}  // namespace minerva
