#version 450
// rope.comp: in place on x [head_dim, n_heads, n_tokens]: rotates pairs (x[2i], x[2i+1]) of the
// first n_rot dims of each head (or (x[i], x[i + n_rot/2]) with neox) by the angle
// pos * freq_scale * base^(-2i/n_rot) / freq_factors[i], cos and sin scaled by attn_factor.
// One invocation per pair.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer P { int pos[]; };
layout(std430, set = 0, binding = 2) readonly buffer F { float ff[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint head_dim, n_heads, n_tokens, n_rot;
    float freq_base, freq_scale;
    uint has_ff;
    uint neox;
    float attn_factor;
} pc;

void main() {
    uint gid = flat_invocation(64u);
    uint half_rot = pc.n_rot / 2u;
    if (gid >= half_rot * pc.n_heads * pc.n_tokens) return;
    uint i = gid % half_rot, h = (gid / half_rot) % pc.n_heads, t = gid / (half_rot * pc.n_heads);
    float inv_freq = exp2(-float(2u * i) / float(pc.n_rot) * log2(pc.freq_base));
    float theta = float(pos[pc.off[1] + t]) * pc.freq_scale * inv_freq;
    if (pc.has_ff != 0u) theta /= ff[pc.off[2] + i];
    float c = cos(theta) * pc.attn_factor, s = sin(theta) * pc.attn_factor;
    uint hb = pc.off[0] + (t * pc.n_heads + h) * pc.head_dim;
    uint i0 = pc.neox != 0u ? hb + i : hb + 2u * i;
    uint i1 = pc.neox != 0u ? i0 + half_rot : i0 + 1u;
    float x0 = xs[i0], x1 = xs[i1];
    xs[i0] = x0 * c - x1 * s;
    xs[i1] = x0 * s + x1 * c;
}
