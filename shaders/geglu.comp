#version 450
// geglu.comp: out = gelu(gate) * up, elementwise, gelu in its tanh form
// 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) (Gemma's feed-forward gate).
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
    float z = gs[pc.off[0] + i];
    float gelu = 0.5 * z * (1.0 + tanh_safe(0.7978845608028654 * (z + 0.044715 * z * z * z)));
    outs[pc.off[2] + i] = gelu * us[pc.off[1] + i];
}
