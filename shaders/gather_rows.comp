#version 450
// gather_rows.comp: out[:, i] = x[:, rows[i]] for f32 rows. One invocation per output element.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint width, n, n_src;
} pc;

void main() {
    uint gid = flat_invocation(256u);
    if (gid >= pc.width * pc.n) return;
    uint i = gid / pc.width, e = gid % pc.width;
    uint r = uint(clamp(rows[pc.off[1] + i], 0, int(pc.n_src) - 1));
    outs[pc.off[2] + i * pc.width + e] = xs[pc.off[0] + r * pc.width + e];
}
