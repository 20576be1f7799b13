#version 450
// softcap.comp: x = cap * tanh(x / cap), elementwise, in place (Gemma's final-logit softcapping).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) buffer X { float xs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n;
    float s;  // the cap
} pc;

void main() {
    uint i = flat_invocation(256u);
    if (i >= pc.n) return;
    xs[pc.off[0] + i] = pc.s * tanh_safe(xs[pc.off[0] + i] / pc.s);
}
