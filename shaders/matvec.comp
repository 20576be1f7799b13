#version 450
// matvec.comp: out[m, c] = sum_k w[k, m] * x[k, c] for up to NMAX columns c (decode and small
// batches). Invocations stride over a row's 32-element units, dequantize each once and use it
// for every column, then reduce.
// USE_SUBGROUP: each subgroup owns rows (pc.rows_per_wg per workgroup, taken in turn by however
// many subgroups the device really made) and reduces with subgroupAdd: no barriers, and many
// rows per workgroup (what makes it fast on CPU devices, whose per-workgroup cost is high).
// Otherwise: one workgroup per row and a shared-memory reduction.
#include "common.glsl"
#define WG 64
#define NMAX 8
layout(local_size_x = WG) in;
layout(std430, set = 0, binding = 0) readonly buffer W { uint WBUF[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint k, m, n;      // n <= NMAX
    uint row_bytes;    // bytes per weight row
    uint rows_per_wg;  // USE_SUBGROUP: rows each workgroup computes
} pc;
#include "dequant.glsl"

#if defined(ROW_PER_INVOCATION)
// Each invocation computes RPI whole rows on its own: no reduction, no shared memory, no
// barriers, and every x element it loads serves RPI rows. Chosen for CPU devices (lavapipe),
// where invocations are SIMD lanes, each buffer load costs a per-lane loop and barriers or
// subgroup reductions cost a lot; and for short rows anywhere (few 32-element units per row).
#define RPI 4
void main() {
    uint row0 = flat_invocation(WG) * RPI;
    if (row0 >= pc.m) return;
    uint n_units = (pc.k + 31u) / 32u;
    uint row_off[RPI];
    [[unroll]] for (uint r = 0; r < RPI; ++r) row_off[r] = pc.off[0] * 4u + min(row0 + r, pc.m - 1u) * pc.row_bytes;
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
            if (c < pc.n) {
                uint xb = pc.off[1] + c * pc.k + 32u * u;
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
        if (c < pc.n)
            [[unroll]] for (uint r = 0; r < RPI; ++r)
                if (row0 + r < pc.m) outs[pc.off[2] + c * pc.m + row0 + r] = acc[c * RPI + r];
}
#else
#include "reduce.glsl"

#ifdef USE_SUBGROUP
void main() {
    uint n_units = (pc.k + 31u) / 32u;
    for (uint r = gl_SubgroupID; r < pc.rows_per_wg; r += gl_NumSubgroups) {
        uint row = flat_group() * pc.rows_per_wg + r;
        if (row >= pc.m) break;  // uniform in the subgroup
        uint row_off = pc.off[0] * 4u + row * pc.row_bytes;
        float acc[NMAX];
        [[unroll]] for (uint c = 0; c < NMAX; ++c) acc[c] = 0.0;
        for (uint u = gl_SubgroupInvocationID; u < n_units; u += gl_SubgroupSize) {
            float v[32];
            dq_unit(row_off, u, pc.k, v);
            [[unroll]] for (uint c = 0; c < NMAX; ++c) {
                if (c < pc.n) {
                    uint xb = pc.off[1] + c * pc.k + 32u * u;
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
                if (subgroupElect()) outs[pc.off[2] + c * pc.m + row] = t;
            }
        }
    }
}
#else
void main() {
    uint row = flat_group();
    if (row >= pc.m) return;  // whole workgroup leaves together
    uint tid = gl_LocalInvocationID.x;
    uint row_off = pc.off[0] * 4u + row * pc.row_bytes;
    uint n_units = (pc.k + 31u) / 32u;
    float acc[NMAX];
    [[unroll]] for (uint c = 0; c < NMAX; ++c) acc[c] = 0.0;
    for (uint u = tid; u < n_units; u += WG) {
        float v[32];
        dq_unit(row_off, u, pc.k, v);
        [[unroll]] for (uint c = 0; c < NMAX; ++c) {
            if (c < pc.n) {
                uint xb = pc.off[1] + c * pc.k + 32u * u;
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
            if (tid == 0u) outs[pc.off[2] + c * pc.m + row] = t;
        }
    }
}
#endif
#endif
