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
struct PcMatmulId {  // matvec.comp and matmul.comp with MATMUL_ID: PcMatvec, then the expert fields
    uint32_t off[8];
    uint32_t k, m, n;  // n = 1: each workgroup z computes one (token, slot) pair
    uint32_t row_bytes;
    uint32_t rows_per_wg;
    uint32_t n_slots;       // experts per token
    uint32_t x_per_slot;    // 1: x is [k, n_slots, tokens]; 0: [k, tokens]
    uint32_t n_expert;      // E
    uint32_t expert_bytes;  // bytes of one expert's matrix
    uint32_t pair0;         // the pair of workgroup z = 0 (per-pair dispatches only)
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
    uint32_t neox;      // pairs (x[i], x[i + n_rot/2]) instead of (x[2i], x[2i+1])
    float attn_factor;  // cos and sin are multiplied by this
};
struct PcKvStore {  // kv_store.comp
    uint32_t off[8];
    uint32_t width, n_tokens, n_cells;
    uint32_t k_type, v_type;  // 0 F32, 1 F16, 2 Q8_0, 3 Q4_0
};
struct PcAttention {  // attention.comp
    uint32_t off[8];
    uint32_t head_dim, n_head, n_head_kv, n_tokens;
    uint32_t n_cells;
    uint32_t n_split;
    float scale;
    float softcap;      // > 0: score s -> softcap * tanh(s / softcap) after scaling
    uint32_t nh, nt;    // query heads (of one GQA group) and tokens per workgroup
    uint32_t n_hchunk;  // workgroups per GQA group: ceil(group / nh)
    uint32_t block;     // cache cells per block
    uint32_t dl_shift;  // log2 of the invocations along head_dim
    uint32_t k_shift;   // log2 of the elements of a row each of them owns
};
// The compile-time sizes of attention.comp (its WG, QSH, ACCN, KVSH, SSH, RMAX).
struct AttentionShape {
    uint32_t wg;    // invocations per workgroup
    uint32_t qsh;   // rows * head_dim <= qsh (shared query tile)
    uint32_t accn;  // accumulators per invocation
    uint32_t kvsh;  // block * (head_dim + 1) <= kvsh (shared K/V tile)
    uint32_t ssh;   // rows * block <= ssh (shared scores)
    uint32_t rmax;  // rows per workgroup
    uint32_t bmax;  // cells per block (a choice, not a buffer size)
};
constexpr AttentionShape k_attention_shape{128, 2048, 16, 4096, 1024, 32, 64};
struct PcAttentionReduce {  // attention_reduce.comp
    uint32_t off[8];
    uint32_t head_dim, n_head, n_tokens, n_split;
};
struct PcElementwise {  // swiglu.comp, geglu.comp, add.comp
    uint32_t off[8];
    uint32_t n;
};
struct PcAddBias {  // add_bias.comp
    uint32_t off[8];
    uint32_t n;    // elements of x
    uint32_t dim;  // elements of the bias (row length of x)
};
struct PcScalarOp {  // scale.comp, softcap.comp
    uint32_t off[8];
    uint32_t n;
    float s;  // the factor, or the cap
};
struct PcMoeRoute {  // moe_route.comp
    uint32_t off[8];
    uint32_t n_expert, k, n;
};
struct PcMoeSum {  // moe_sum.comp
    uint32_t off[8];
    uint32_t d, k, n;
};
struct PcMoeGroup {  // moe_group.comp
    uint32_t off[8];
    uint32_t n_expert, n_pairs, tile;
};
struct PcGatherRows {  // gather_rows.comp
    uint32_t off[8];
    uint32_t width, n, n_src;
};

static_assert(sizeof(PcMatvec) <= k_max_push_bytes);
static_assert(sizeof(PcMatmulId) <= k_max_push_bytes);
static_assert(sizeof(PcGetRows) <= k_max_push_bytes);
static_assert(sizeof(PcRmsNorm) <= k_max_push_bytes);
static_assert(sizeof(PcRope) <= k_max_push_bytes);
static_assert(sizeof(PcKvStore) <= k_max_push_bytes);
static_assert(sizeof(PcAttention) <= k_max_push_bytes);
static_assert(sizeof(PcAttentionReduce) <= k_max_push_bytes);
static_assert(sizeof(PcElementwise) <= k_max_push_bytes);
static_assert(sizeof(PcGatherRows) <= k_max_push_bytes);
static_assert(sizeof(PcAddBias) <= k_max_push_bytes);
static_assert(sizeof(PcScalarOp) <= k_max_push_bytes);
static_assert(sizeof(PcMoeRoute) <= k_max_push_bytes);
static_assert(sizeof(PcMoeSum) <= k_max_push_bytes);
static_assert(sizeof(PcMoeGroup) <= k_max_push_bytes);

}  // namespace minerva::vk
