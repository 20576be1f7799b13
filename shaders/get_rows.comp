#version 450
// get_rows.comp: out[:, i] = table[:, ids[i]] as f32 (the embedding lookup). One workgroup per
// id; ids outside the table are clamped (the engine rejects them before they get here).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) readonly buffer W { uint WBUF[]; };
layout(std430, set = 0, binding = 1) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float outs[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint k;          // row length (embedding size)
    uint n;          // number of ids
    uint n_table;    // rows in the table
    uint row_bytes;
} pc;
#include "dequant.glsl"

void main() {
    uint i = flat_group();
    if (i >= pc.n) return;
    uint id = uint(clamp(ids[pc.off[1] + i], 0, int(pc.n_table) - 1));
    uint row_off = pc.off[0] * 4u + id * pc.row_bytes;
    uint n_units = (pc.k + 31u) / 32u;
    for (uint u = gl_LocalInvocationID.x; u < n_units; u += 64u) {
        float v[32];
        dq_unit(row_off, u, pc.k, v);
        uint lim = min(32u, pc.k - 32u * u);
        for (uint j = 0; j < lim; ++j) outs[pc.off[2] + i * pc.k + 32u * u + j] = v[j];
    }
}
