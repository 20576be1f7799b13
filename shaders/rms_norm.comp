#version 450
// rms_norm.comp: out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * w, one workgroup per row;
// the weight multiply is fused in. out may alias x (each invocation rewrites what it read).
#include "common.glsl"
#define WG 128
layout(local_size_x = WG) in;
layout(std430, set = 0, binding = 0) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer Wt { float ws[]; };
layout(std430, set = 0, binding = 2) buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n, rows;
    float eps;
} pc;
#include "reduce.glsl"

void main() {
    uint r = flat_group();
    if (r >= pc.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint xb = pc.off[0] + r * pc.n, ob = pc.off[2] + r * pc.n;
    float s = 0.0;
    for (uint i = tid; i < pc.n; i += WG) s += xs[xb + i] * xs[xb + i];
    float inv = 1.0 / sqrt(wg_sum(s) / float(pc.n) + pc.eps);
    for (uint i = tid; i < pc.n; i += WG) outs[ob + i] = xs[xb + i] * inv * ws[pc.off[1] + i];
}
