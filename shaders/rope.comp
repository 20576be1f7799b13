#version 450
// rope.comp: in place on x [head_dim, n_heads, n_tokens]: rotates pairs (x[2i], x[2i+1]) of the
// first n_rot dims of each head by pos * freq_scale * base^(-2i/n_rot) / freq_factors[i].
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
} pc;

void main() {
    uint gid = flat_invocation(64u);
    uint half_rot = pc.n_rot / 2u;
    if (gid >= half_rot * pc.n_heads * pc.n_tokens) return;
    uint i = gid % half_rot, h = (gid / half_rot) % pc.n_heads, t = gid / (half_rot * pc.n_heads);
    float inv_freq = exp2(-float(2u * i) / float(pc.n_rot) * log2(pc.freq_base));
    float theta = float(pos[pc.off[1] + t]) * pc.freq_scale * inv_freq;
    if (pc.has_ff != 0u) theta /= ff[pc.off[2] + i];
    float c = cos(theta), s = sin(theta);
    uint b = pc.off[0] + (t * pc.n_heads + h) * pc.head_dim + 2u * i;
    float x0 = xs[b], x1 = xs[b + 1u];
    xs[b] = x0 * c - x1 * s;
    xs[b + 1u] = x0 * s + x1 * c;
}
