#version 450
// matmul.comp: out[m, n] = sum_k w[k, m] * x[k, n] for prefill. 64x64 output tiles per
// workgroup of 256 invocations (4x4 outputs each), K in steps of one 32-element unit through
// shared memory: 64 invocations dequantize the weight tile while the rest load x.
// MATMUL_ID (grouped matmul_id, mixture-of-experts prefill): w is [k, m, E] and workgroup
// (x, z) multiplies row tile x of one expert with a tile of up to BN of that expert's (token,
// slot) pairs (moe_tile.glsl, from moe_group.comp's grouping in binding 3): x is gathered by the
// pair list and each result goes to out[:, slot, token], so each expert's weights are read once
// per BN of its pairs.
#include "common.glsl"
#define BM 64u
#define BN 64u
#define BK 32u
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer W { uint WBUF[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
#ifdef MATMUL_ID
layout(std430, set = 0, binding = 3) readonly buffer G { int groups[]; };
#endif
layout(push_constant) uniform PC {
    uint off[8];
    uint k, m, n;
    uint row_bytes;
    uint rows_per_wg;  // unused here: the struct is shared with matvec.comp
#ifdef MATMUL_ID
    uint n_slots;       // experts per token: a pair p is token p / n_slots
    uint x_per_slot;    // 1: x is [k, n_slots, tokens]; 0: [k, tokens]
    uint n_expert;      // E
    uint expert_bytes;  // bytes of one expert's [k, m] matrix
    uint pair0;         // unused here (matvec.comp's per-pair dispatches)
#endif
} pc;
#include "dequant.glsl"

shared float w_sh[BK * BM];  // [kk][row]
shared float x_sh[BK * BN];  // [kk][col]

#ifdef MATMUL_ID
#include "moe_tile.glsl"
shared uint col_x[BN], col_o[BN];  // word offsets of each column's x and out
uint w_base() { return pc.off[0] * 4u + g_expert * pc.expert_bytes; }
uint x_at(uint c) { return col_x[c]; }
uint o_at(uint c) { return col_o[c]; }
bool col_ok(uint c) { return c < g_cols; }
#else
uint w_base() { return pc.off[0] * 4u; }
uint x_at(uint c) { return pc.off[1] + c * pc.k; }
uint o_at(uint c) { return pc.off[2] + c * pc.m; }
bool col_ok(uint c) { return c < pc.n; }
#endif

void main() {
    uint tid = gl_LocalInvocationID.x;
#ifdef MATMUL_ID
    // Local column c is the tile's c-th pair; n0 = 0.
    if (!moe_tile(BN)) return;  // the whole workgroup leaves together
    uint m0 = gl_WorkGroupID.x * BM, n0 = 0u;
    if (tid < BN && tid < g_cols) {
        uint p = uint(groups[g_first + tid]);
        col_x[tid] = pc.off[1] + (pc.x_per_slot != 0u ? p : p / pc.n_slots) * pc.k;
        col_o[tid] = pc.off[2] + p * pc.m;
    }
    barrier();
#else
    uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
#endif
    uint tx = tid & 15u, ty = tid >> 4;
    float acc[4][4];
    [[unroll]] for (uint i = 0; i < 4u; ++i) [[unroll]] for (uint j = 0; j < 4u; ++j) acc[i][j] = 0.0;
    uint n_units = (pc.k + 31u) / 32u;
    for (uint u = 0; u < n_units; ++u) {
        if (tid < BM) {
            uint r = m0 + tid;
            float v[32];
            if (r < pc.m) {
                dq_unit(w_base() + r * pc.row_bytes, u, pc.k, v);
            } else {
                [[unroll]] for (uint j = 0; j < 32u; ++j) v[j] = 0.0;
            }
            [[unroll]] for (uint j = 0; j < 32u; ++j) w_sh[j * BM + tid] = v[j];
        } else {
            for (uint idx = tid - BM; idx < BK * BN; idx += 256u - BM) {
                uint kk = idx & (BK - 1u), c = idx / BK;
                uint col = n0 + c, kidx = 32u * u + kk;
                x_sh[kk * BN + c] = (col_ok(col) && kidx < pc.k) ? xs[x_at(col) + kidx] : 0.0;
            }
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
            float a[4], b[4];
            [[unroll]] for (uint i = 0; i < 4u; ++i) a[i] = w_sh[kk * BM + tx + 16u * i];
            [[unroll]] for (uint j = 0; j < 4u; ++j) b[j] = x_sh[kk * BN + ty + 16u * j];
            [[unroll]] for (uint i = 0; i < 4u; ++i) [[unroll]] for (uint j = 0; j < 4u; ++j) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        uint r = m0 + tx + 16u * i;
        [[unroll]] for (uint j = 0; j < 4u; ++j) {
            uint c = n0 + ty + 16u * j;
            if (r < pc.m && col_ok(c)) outs[o_at(c) + r] = acc[i][j];
        }
    }
}
