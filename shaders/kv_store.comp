#version 450
// kv_store.comp: k and v [width, n_tokens] f32 -> the caches [width, n_cells] (f16 with KV_F16,
// else f32) at cells rows[t]. One invocation per pair of elements of both k and v.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) readonly buffer K { float ks[]; };
layout(std430, set = 0, binding = 1) readonly buffer V { float vs[]; };
#ifdef KV_F16
layout(std430, set = 0, binding = 2) writeonly buffer KC { uint kc[]; };
layout(std430, set = 0, binding = 3) writeonly buffer VC { uint vc[]; };
#else
layout(std430, set = 0, binding = 2) writeonly buffer KC { float kc[]; };
layout(std430, set = 0, binding = 3) writeonly buffer VC { float vc[]; };
#endif
layout(std430, set = 0, binding = 4) readonly buffer R { int rows[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint width;     // head_dim * n_head_kv (even)
    uint n_tokens;
    uint n_cells;
} pc;

void main() {
    uint gid = flat_invocation(64u);
    uint half_w = pc.width / 2u;
    if (gid >= half_w * pc.n_tokens) return;
    uint p = gid % half_w, t = gid / half_w;
    uint cell = uint(clamp(rows[pc.off[4] + t], 0, int(pc.n_cells) - 1));
    uint src = t * pc.width + 2u * p;
    vec2 k2 = vec2(ks[pc.off[0] + src], ks[pc.off[0] + src + 1u]);
    vec2 v2 = vec2(vs[pc.off[1] + src], vs[pc.off[1] + src + 1u]);
#ifdef KV_F16
    uint dst = cell * half_w + p;
    kc[pc.off[2] + dst] = packHalf2x16(k2);
    vc[pc.off[3] + dst] = packHalf2x16(v2);
#else
    uint dst = cell * pc.width + 2u * p;
    kc[pc.off[2] + dst] = k2.x;
    kc[pc.off[2] + dst + 1u] = k2.y;
    vc[pc.off[3] + dst] = v2.x;
    vc[pc.off[3] + dst + 1u] = v2.y;
#endif
}
