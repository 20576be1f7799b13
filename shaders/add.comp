#version 450
// add.comp: x += y, elementwise (the residual).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer Y { float ys[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n;
} pc;

void main() {
    uint i = flat_invocation(256u);
    if (i >= pc.n) return;
    xs[pc.off[0] + i] += ys[pc.off[1] + i];
}
