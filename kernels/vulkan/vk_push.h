// kernels/vulkan/vk_push.h: one push-constant struct per shader, field for field the
// `layout(push_constant) uniform PC` block of its .comp file (std430: 4-byte scalars, no
// padding). Every struct starts with off[8], the word offset of each binding's tensor inside the
// bound range, which the dispatch helper fills in. Sizes are also checked at start-up against the
// size reflected from the SPIR-V (vk_pipelines.cpp), so a struct and its GLSL twin cannot drift.
#pragma once
#include <cstdint>

namespace minerva::vk {

constexpr uint32_t k_max_bindings = 8;
constexpr uint32_t k_max_push_bytes = 128;  // the minimum every Vulkan device guarantees

struct PcMatvec {  // matvec.comp, matmul.comp
    uint32_t off[8];
    uint32_t k, m, n;
    uint32_t row_bytes;
    uint32_t rows_per_wg;  // matvec.comp with subgroups: rows per workgroup
};
struct PcGetRows {  // get_rows.comp
    uint32_t off[8];
    uint32_t k, n, n_table, row_bytes;
};
struct PcRmsNorm {  // rms_norm.comp
    uint32_t off[8];
    uint32_t n, rows;
    float eps;
};
struct PcRope {  // rope.comp
    uint32_t off[8];
    uint32_t head_dim, n_heads, n_tokens, n_rot;
    float freq_base, freq_scale;
    uint32_t has_ff;
};
struct PcKvStore {  // kv_store.comp
    uint32_t off[8];
    uint32_t width, n_tokens, n_cells;
};
struct PcAttention {  // attention.comp
    uint32_t off[8];
    uint32_t head_dim, n_head, n_head_kv, n_tokens;
    uint32_t n_cells;
    uint32_t n_split;
    float scale;
};
struct PcAttentionReduce {  // attention_reduce.comp
    uint32_t off[8];
    uint32_t head_dim, n_head, n_tokens, n_split;
};
struct PcElementwise {  // swiglu.comp, add.comp
    uint32_t off[8];
    uint32_t n;
};
struct PcGatherRows {  // gather_rows.comp
    uint32_t off[8];
    uint32_t width, n, n_src;
};

static_assert(sizeof(PcMatvec) <= k_max_push_bytes);
static_assert(sizeof(PcGetRows) <= k_max_push_bytes);
static_assert(sizeof(PcRmsNorm) <= k_max_push_bytes);
static_assert(sizeof(PcRope) <= k_max_push_bytes);
static_assert(sizeof(PcKvStore) <= k_max_push_bytes);
static_assert(sizeof(PcAttention) <= k_max_push_bytes);
static_assert(sizeof(PcAttentionReduce) <= k_max_push_bytes);
static_assert(sizeof(PcElementwise) <= k_max_push_bytes);
static_assert(sizeof(PcGatherRows) <= k_max_push_bytes);

}  // namespace minerva::vk
