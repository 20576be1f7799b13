#version 450
// matvec.comp: out[m, c] = sum_k w[k, m] * x[k, c] for up to NMAX columns c (decode and small
// batches). One workgroup per weight row; its invocations stride over the row's 32-element
// units, dequantize each once and use it for every column; then a workgroup reduction.
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
} pc;
#include "dequant.glsl"
#include "reduce.glsl"

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
