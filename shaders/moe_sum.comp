#version 450
// moe_sum.comp: out[:, t] = sum_j weights[j, t] * y[:, j, t]: the experts' outputs of token t
// mixed by their routing weights. One invocation per output element.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer Y { float ys[]; };
layout(std430, set = 0, binding = 1) readonly buffer Wt { float ws[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint d, k, n;
} pc;

void main() {
    uint gid = flat_invocation(256u);
    if (gid >= pc.d * pc.n) return;
    uint t = gid / pc.d, i = gid % pc.d;
    float acc = 0.0;
    for (uint j = 0u; j < pc.k; ++j) acc += ws[pc.off[1] + t * pc.k + j] * ys[pc.off[0] + (t * pc.k + j) * pc.d + i];
    outs[pc.off[2] + t * pc.d + i] = acc;
}
