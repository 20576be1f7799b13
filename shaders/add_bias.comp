#version 450
// add_bias.comp: x[:, r] += b for every row r (the q/k/v biases of Qwen 2), in place.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float bs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n;    // elements of x
    uint dim;  // elements of b = the row length of x
} pc;

void main() {
    uint i = flat_invocation(256u);
    if (i >= pc.n) return;
    xs[pc.off[0] + i] += bs[pc.off[1] + i % pc.dim];
}
