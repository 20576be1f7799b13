#version 450
// attention_reduce.comp: combines the n_split partials (max, sum, unnormalised output) of
// attention.comp for each (head, token): out = sum_s acc_s e^(m_s - m) / sum_s l_s e^(m_s - m).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) readonly buffer P { float part[]; };
layout(std430, set = 0, binding = 1) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint head_dim, n_head, n_tokens, n_split;
} pc;

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    uint stride = pc.head_dim + 2u;
    uint pb = pc.off[0] + (t * pc.n_head + h) * pc.n_split * stride;
    float m = -1.0e30;
    for (uint s = 0; s < pc.n_split; ++s) m = max(m, part[pb + s * stride]);
    float l = 0.0;
    for (uint s = 0; s < pc.n_split; ++s) l += part[pb + s * stride + 1u] * exp(part[pb + s * stride] - m);
    float inv = l > 0.0 ? 1.0 / l : 0.0;
    for (uint d = gl_LocalInvocationID.x; d < pc.head_dim; d += 64u) {
        float o = 0.0;
        for (uint s = 0; s < pc.n_split; ++s) o += part[pb + s * stride + 2u + d] * exp(part[pb + s * stride] - m);
        outs[pc.off[1] + (t * pc.n_head + h) * pc.head_dim + d] = o * inv;
    }
}
