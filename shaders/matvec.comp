#version 450
// matvec.comp: out[m, c] = sum_k w[k, m] * x[k, c] for up to NMAX columns c (decode and small
// batches). Invocations stride over a row's 32-element units, dequantize each once and use it
// for every column, then reduce.
// USE_SUBGROUP: each subgroup owns rows (pc.rows_per_wg per workgroup, taken in turn by however
// many subgroups the device really made) and reduces with subgroupAdd: no barriers, and many
// rows per workgroup (what makes it fast on CPU devices, whose per-workgroup cost is high).
// Otherwise: one workgroup per row and a shared-memory reduction.
// MATMUL_ID (matmul_id, mixture of experts): w is [k, m, E]; workgroup z computes one (token,
// slot) pair, a single column: out[:, pair] = W_e x with e = ids[pair] and x the token's column
// (or the pair's own with x_per_slot). Only expert e's rows are read.
// MATMUL_ID GROUPED (prefill on CPU devices; ROW_PER_INVOCATION only): binding 3 is
// moe_group.comp's grouping instead of ids, and workgroup z is one tile of up to NMAX pairs of
// one expert (moe_tile.glsl): each dequantized weight unit serves all the tile's columns, so an
// expert's rows are read once per NMAX of its pairs instead of once per pair.
#include "common.glsl"
#define WG 64
#define NMAX 8
layout(local_size_x = WG) in;
layout(std430, set = 0, binding = 0) readonly buffer W { uint WBUF[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
#if defined(MATMUL_ID) && defined(GROUPED)
layout(std430, set = 0, binding = 3) readonly buffer G { int groups[]; };
#elif defined(MATMUL_ID)
layout(std430, set = 0, binding = 3) readonly buffer I { int ids[]; };
#endif
#if defined(GROUPED) && !(defined(MATMUL_ID) && defined(ROW_PER_INVOCATION))
#error GROUPED is a MATMUL_ID ROW_PER_INVOCATION variant
#endif
layout(push_constant) uniform PC {
    uint off[8];
    uint k, m, n;      // n <= NMAX (1 with MATMUL_ID)
    uint row_bytes;    // bytes per weight row
    uint rows_per_wg;  // USE_SUBGROUP: rows each workgroup computes
#ifdef MATMUL_ID
    uint n_slots;       // experts per token: ids is [n_slots, tokens]
    uint x_per_slot;    // 1: x is [k, n_slots, tokens]; 0: [k, tokens]
    uint n_expert;      // E: ids are clamped to [0, E)
    uint expert_bytes;  // bytes of one expert's [k, m] matrix
    uint pair0;         // the pair of workgroup z = 0 (long batches take several dispatches)
#endif
} pc;
#include "dequant.glsl"
#ifdef GROUPED
#include "moe_tile.glsl"
#endif

// Where the weight rows (bytes), x columns and outputs (words) of this workgroup start.
#ifdef GROUPED
uint g_x[NMAX], g_o[NMAX];  // x and out word offsets of the tile's columns
uint w_base() { return pc.off[0] * 4u + g_expert * pc.expert_bytes; }
uint x_col(uint c) { return g_x[c]; }
uint o_col(uint c) { return g_o[c]; }
#define N_COLS g_cols
#elif defined(MATMUL_ID)
uint pair_id() { return pc.pair0 + gl_WorkGroupID.z; }
uint w_base() {
    uint e = uint(clamp(ids[pc.off[3] + pair_id()], 0, int(pc.n_expert) - 1));
    return pc.off[0] * 4u + e * pc.expert_bytes;
}
uint x_base() { return pc.off[1] + (pc.x_per_slot != 0u ? pair_id() : pair_id() / pc.n_slots) * pc.k; }
uint o_base() { return pc.off[2] + pair_id() * pc.m; }
#else
uint w_base() { return pc.off[0] * 4u; }
uint x_base() { return pc.off[1]; }
uint o_base() { return pc.off[2]; }
#endif
#ifndef GROUPED
uint x_col(uint c) { return x_base() + c * pc.k; }
uint o_col(uint c) { return o_base() + c * pc.m; }
#define N_COLS pc.n
#endif

#if defined(ROW_PER_INVOCATION)
// Each invocation computes RPI whole rows on its own: no reduction, no shared memory, no
// barriers, and every x element it loads serves RPI rows. Chosen for CPU devices (lavapipe),
// where invocations are SIMD lanes, each buffer load costs a per-lane loop and barriers or
// subgroup reductions cost a lot; and for short rows anywhere (few 32-element units per row).
#define RPI 4
void main() {
    uint row0 = flat_invocation(WG) * RPI;
    if (row0 >= pc.m) return;
#ifdef GROUPED
    if (!moe_tile(NMAX)) return;
    [[unroll]] for (uint c = 0; c < NMAX; ++c) {
        uint p = uint(groups[g_first + min(c, g_cols - 1u)]);
        g_x[c] = pc.off[1] + (pc.x_per_slot != 0u ? p : p / pc.n_slots) * pc.k;
        g_o[c] = pc.off[2] + p * pc.m;
    }
#endif
    uint n_units = (pc.k + 31u) / 32u;
    uint row_off[RPI];
    [[unroll]] for (uint r = 0; r < RPI; ++r) row_off[r] = w_base() + min(row0 + r, pc.m - 1u) * pc.row_bytes;
    float acc[NMAX * RPI];
    [[unroll]] for (uint i = 0; i < NMAX * RPI; ++i) acc[i] = 0.0;
    for (uint u = 0; u < n_units; ++u) {
        float v0[32], v1[32], v2[32], v3[32];
        dq_unit(row_off[0], u, pc.k, v0);
        dq_unit(row_off[1], u, pc.k, v1);
        dq_unit(row_off[2], u, pc.k, v2);
        dq_unit(row_off[3], u, pc.k, v3);
        uint lim = min(32u, pc.k - 32u * u);  // 32 except in an odd-sized row's tail (plain types)
        [[unroll]] for (uint c = 0; c < NMAX; ++c) {
            if (c < N_COLS) {
                uint xb = x_col(c) + 32u * u;
                float s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
                [[unroll]] for (uint j = 0; j < 32u; ++j) {
                    float xv = j < lim ? xs[xb + j] : 0.0;
                    s0 += v0[j] * xv;
                    s1 += v1[j] * xv;
                    s2 += v2[j] * xv;
                    s3 += v3[j] * xv;
                }
                acc[c * RPI + 0u] += s0;
                acc[c * RPI + 1u] += s1;
                acc[c * RPI + 2u] += s2;
                acc[c * RPI + 3u] += s3;
            }
        }
    }
    [[unroll]] for (uint c = 0; c < NMAX; ++c)
        if (c < N_COLS)
            [[unroll]] for (uint r = 0; r < RPI; ++r)
                if (row0 + r < pc.m) outs[o_col(c) + row0 + r] = acc[c * RPI + r];
}
#else
#include "reduce.glsl"

#ifdef USE_SUBGROUP
void main() {
    uint n_units = (pc.k + 31u) / 32u;
    for (uint r = gl_SubgroupID; r < pc.rows_per_wg; r += gl_NumSubgroups) {
        uint row = flat_group() * pc.rows_per_wg + r;
        if (row >= pc.m) break;  // uniform in the subgroup
        uint row_off = w_base() + row * pc.row_bytes;
        float acc[NMAX];
        [[unroll]] for (uint c = 0; c < NMAX; ++c) acc[c] = 0.0;
        for (uint u = gl_SubgroupInvocationID; u < n_units; u += gl_SubgroupSize) {
            float v[32];
            dq_unit(row_off, u, pc.k, v);
            [[unroll]] for (uint c = 0; c < NMAX; ++c) {
                if (c < pc.n) {
                    uint xb = x_base() + c * pc.k + 32u * u;
                    float s = 0.0;
#ifdef W_PLAIN
                    uint lim = min(32u, pc.k - 32u * u);
                    for (uint j = 0; j < lim; ++j) s += v[j] * xs[xb + j];
#else
                    [[unroll]] for (uint j = 0; j < 32u; ++j) s += v[j] * xs[xb + j];
#endif
                    acc[c] += s;
                }
            }
        }
        [[unroll]] for (uint c = 0; c < NMAX; ++c) {
            if (c < pc.n) {
                float t = subgroupAdd(acc[c]);
                if (subgroupElect()) outs[o_base() + c * pc.m + row] = t;
            }
        }
    }
}
#else
void main() {
    uint row = flat_group();
    if (row >= pc.m) return;  // whole workgroup leaves together
    uint tid = gl_LocalInvocationID.x;
    uint row_off = w_base() + row * pc.row_bytes;
    uint n_units = (pc.k + 31u) / 32u;
    float acc[NMAX];
    [[unroll]] for (uint c = 0; c < NMAX; ++c) acc[c] = 0.0;
    for (uint u = tid; u < n_units; u += WG) {
        float v[32];
        dq_unit(row_off, u, pc.k, v);
        [[unroll]] for (uint c = 0; c < NMAX; ++c) {
            if (c < pc.n) {
                uint xb = x_base() + c * pc.k + 32u * u;
                float s = 0.0;
#ifdef W_PLAIN
                uint lim = min(32u, pc.k - 32u * u);
                for (uint j = 0; j < lim; ++j) s += v[j] * xs[xb + j];
#else
                [[unroll]] for (uint j = 0; j < 32u; ++j) s += v[j] * xs[xb + j];
#endif
                acc[c] += s;
            }
        }
    }
    [[unroll]] for (uint c = 0; c < NMAX; ++c) {
        if (c < pc.n) {
            float t = wg_sum(acc[c]);
            if (tid == 0u) outs[o_base() + c * pc.m + row] = t;
        }
    }
}
#endif
#endif
