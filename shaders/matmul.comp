#version 450
// matmul.comp: out[m, n] = sum_k w[k, m] * x[k, n] for prefill. 64x64 output tiles per
// workgroup of 256 invocations (4x4 outputs each), K in steps of one 32-element unit through
// shared memory: 64 invocations dequantize the weight tile while the rest load x.
#include "common.glsl"
#define BM 64u
#define BN 64u
#define BK 32u
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer W { uint WBUF[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint k, m, n;
    uint row_bytes;
    uint rows_per_wg;  // unused here: the struct is shared with matvec.comp
} pc;
#include "dequant.glsl"

shared float w_sh[BK * BM];  // [kk][row]
shared float x_sh[BK * BN];  // [kk][col]

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    uint tx = tid & 15u, ty = tid >> 4;
    float acc[4][4];
    [[unroll]] for (uint i = 0; i < 4u; ++i) [[unroll]] for (uint j = 0; j < 4u; ++j) acc[i][j] = 0.0;
    uint n_units = (pc.k + 31u) / 32u;
    for (uint u = 0; u < n_units; ++u) {
        if (tid < BM) {
            uint r = m0 + tid;
            float v[32];
            if (r < pc.m) {
                dq_unit(pc.off[0] * 4u + r * pc.row_bytes, u, pc.k, v);
            } else {
                [[unroll]] for (uint j = 0; j < 32u; ++j) v[j] = 0.0;
            }
            [[unroll]] for (uint j = 0; j < 32u; ++j) w_sh[j * BM + tid] = v[j];
        } else {
            for (uint idx = tid - BM; idx < BK * BN; idx += 256u - BM) {
                uint kk = idx & (BK - 1u), c = idx / BK;
                uint col = n0 + c, kidx = 32u * u + kk;
                x_sh[kk * BN + c] = (col < pc.n && kidx < pc.k) ? xs[pc.off[1] + col * pc.k + kidx] : 0.0;
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
            if (r < pc.m && c < pc.n) outs[pc.off[2] + c * pc.m + r] = acc[i][j];
        }
    }
}
