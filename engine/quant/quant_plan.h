// engine/quant/quant_plan.h (internal): what quantize_file and synth_file share: per-tensor type
// choice with the block-size fallback, and parallel row conversion.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "minerva/quantize.h"

namespace minerva::detail {

// The N of a "blk.N." tensor name, or -1.
int layer_of(std::string_view tensor_name);

// The type a tensor of row length ne0 is written in: tensor_type_for(), then, when ne0 is not a
// multiple of that type's block, the fallback chain (logged with the tensor's name).
DType plan_tensor_type(const QuantTarget& target, std::string_view tensor_name, int n_dims, int64_t ne0,
                       int n_layer, bool has_output);

// Calls fn(begin, end) over [0, n) split in up to n_threads contiguous ranges on threads
// (inline when one suffices); rethrows the first exception.
void parallel_ranges(int64_t n, int n_threads, const std::function<void(int64_t, int64_t)>& fn);

int resolve_threads(int n_threads);

}  // namespace minerva::detail
