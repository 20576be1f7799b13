#version 450
// swiglu.comp: out = silu(gate) * up = gate / (1 + e^-gate) * up, elementwise.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer G { float gs[]; };
layout(std430, set = 0, binding = 1) readonly buffer U { float us[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n;
} pc;

void main() {
    uint i = flat_invocation(256u);
    if (i >= pc.n) return;
    float g = gs[pc.off[0] + i];
    outs[pc.off[2] + i] = g / (1.0 + exp(-g)) * us[pc.off[1] + i];
}
