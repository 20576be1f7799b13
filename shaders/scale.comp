#version 450
// scale.comp: x *= s, elementwise, in place.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) buffer X { float xs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n;
    float s;
} pc;

void main() {
    uint i = flat_invocation(256u);
    if (i >= pc.n) return;
    xs[pc.off[0] + i] *= pc.s;
}
