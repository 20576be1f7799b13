#version 450
// attention.comp: causal attention with GQA, softmax in f32, online (one pass over K and V).
// Workgroup (head h, token t, split s): token t attends to cells span[0,t] .. +span[1,t]-1;
// with n_split > 1 (decode) the span is cut into n_split pieces, each workgroup writes its
// partial (max, sum, unnormalised output) and attention_reduce.comp combines them.
// Per chunk of WG cells: invocation j scores cell j (q.k over head_dim), then every invocation
// updates the dims it owns (d = tid + WG*i) with the chunk's probabilities. With softcap > 0 a
// score s becomes softcap * tanh(s / softcap) before the softmax (Gemma 2). K and V rows are
// read in their cache types (K_<TYPE>, V_<TYPE>: F32, F16, Q8_0, Q4_0) by kv_cache.glsl.
#include "common.glsl"
#ifdef NARROW
// CPU devices (lavapipe): one SIMD vector per workgroup, so barriers are cheap and each chunk's
// max/probability loops run over 8 cells instead of 64.
#define WG 8u
#define DMAX 32u  // head_dim <= WG * DMAX = 256
layout(local_size_x = 8) in;
#else
#define WG 64u
#define DMAX 4u   // head_dim <= WG * DMAX = 256
layout(local_size_x = 64) in;
#endif
layout(std430, set = 0, binding = 0) readonly buffer Q { float qs[]; };
layout(std430, set = 0, binding = 1) readonly buffer KC { uint kc[]; };  // K_<TYPE> rows
layout(std430, set = 0, binding = 2) readonly buffer VC { uint vc[]; };  // V_<TYPE> rows
layout(std430, set = 0, binding = 3) readonly buffer S { int span[]; };
layout(std430, set = 0, binding = 4) writeonly buffer O { float outs[]; };
layout(std430, set = 0, binding = 5) writeonly buffer P { float part[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint head_dim, n_head, n_head_kv, n_tokens;
    uint n_cells;
    uint n_split;
    float scale;
    float softcap;  // > 0: scores are softcapped
} pc;

shared float q_sh[WG * DMAX];
shared float p_sh[WG];

const float NEG_BIG = -1.0e30;

float cap_score(float s) { return pc.softcap > 0.0 ? pc.softcap * tanh_safe(s / pc.softcap) : s; }

#ifdef NARROW_SG
uint g_qb;  // the query row, read from global memory (no shared copy, so no barrier)
#define Q_AT(d) (qs[g_qb + (d)] * pc.scale)
#else
#define Q_AT(d) q_sh[d]
#endif
#include "kv_cache.glsl"

#ifdef NARROW_SG
// CPU devices with subgroups: the workgroup is one subgroup, so the chunk's max, sum and each
// cell's probability travel by subgroup operations: no shared memory and no barriers at all.
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_KHR_shader_subgroup_ballot : enable
void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, s = gl_WorkGroupID.z;
    uint tid = gl_LocalInvocationID.x;
    uint kvh = h / (pc.n_head / pc.n_head_kv);
    g_qb = pc.off[0] + (t * pc.n_head + h) * pc.head_dim;

    int first = span[pc.off[3] + 2u * t], len = span[pc.off[3] + 2u * t + 1u];
    uint cell0 = uint(max(first, 0));
    uint n = uint(clamp(len, 0, int(pc.n_cells) - int(cell0)));
    uint per = (n + pc.n_split - 1u) / pc.n_split;
    uint a = cell0 + min(n, s * per), b = cell0 + min(n, (s + 1u) * per);

    float m_run = NEG_BIG, l_run = 0.0;
    float acc[DMAX];
    [[unroll]] for (uint i = 0; i < DMAX; ++i) acc[i] = 0.0;
    for (uint c0 = a; c0 < b; c0 += WG) {
        uint cnt = min(WG, b - c0);
        float sc = NEG_BIG;
        if (tid < cnt) {
            uint cell = c0 + tid;
            sc = k_dot(cell, kvh);
            sc = cap_score(sc);
        }
        float m_new = max(m_run, subgroupMax(sc));
        float p = tid < cnt ? exp(sc - m_new) : 0.0;
        float corr = exp(m_run - m_new);
        l_run = l_run * corr + subgroupAdd(p);
        [[unroll]] for (uint i = 0; i < DMAX; ++i) acc[i] *= corr;
        [[unroll]] for (uint j = 0; j < WG; ++j) {
            float pj = subgroupBroadcast(p, j);
            if (j < cnt) {
                [[unroll]] for (uint i = 0; i < DMAX; ++i) {
                    uint d = tid + WG * i;
                    if (d < pc.head_dim) acc[i] += pj * v_at(c0 + j, kvh, d);
                }
            }
        }
        m_run = m_new;
    }
#else
void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, s = gl_WorkGroupID.z;
    uint tid = gl_LocalInvocationID.x;
    uint kvh = h / (pc.n_head / pc.n_head_kv);
    uint qb = pc.off[0] + (t * pc.n_head + h) * pc.head_dim;
    for (uint d = tid; d < pc.head_dim; d += WG) q_sh[d] = qs[qb + d] * pc.scale;

    int first = span[pc.off[3] + 2u * t], len = span[pc.off[3] + 2u * t + 1u];
    uint cell0 = uint(max(first, 0));
    uint n = uint(clamp(len, 0, int(pc.n_cells) - int(cell0)));
    uint per = (n + pc.n_split - 1u) / pc.n_split;
    uint a = cell0 + min(n, s * per), b = cell0 + min(n, (s + 1u) * per);
    barrier();

    float m_run = NEG_BIG, l_run = 0.0;
    float acc[DMAX];
    [[unroll]] for (uint i = 0; i < DMAX; ++i) acc[i] = 0.0;
    for (uint c0 = a; c0 < b; c0 += WG) {
        uint cnt = min(WG, b - c0);
        float sc = tid < cnt ? cap_score(k_dot(c0 + tid, kvh)) : NEG_BIG;
        p_sh[tid] = sc;
        barrier();
        float m_chunk = NEG_BIG;
        for (uint j = 0; j < cnt; ++j) m_chunk = max(m_chunk, p_sh[j]);
        float m_new = max(m_run, m_chunk);
        barrier();
        p_sh[tid] = tid < cnt ? exp(sc - m_new) : 0.0;
        barrier();
        float corr = exp(m_run - m_new);
        l_run *= corr;
        [[unroll]] for (uint i = 0; i < DMAX; ++i) acc[i] *= corr;
        for (uint j = 0; j < cnt; ++j) {
            float p = p_sh[j];
            l_run += p;
            [[unroll]] for (uint i = 0; i < DMAX; ++i) {
                uint d = tid + WG * i;
                if (d < pc.head_dim) acc[i] += p * v_at(c0 + j, kvh, d);
            }
        }
        m_run = m_new;
        barrier();
    }
#endif

    if (pc.n_split == 1u) {
        float inv = l_run > 0.0 ? 1.0 / l_run : 0.0;
        [[unroll]] for (uint i = 0; i < DMAX; ++i) {
            uint d = tid + WG * i;
            if (d < pc.head_dim) outs[pc.off[4] + (t * pc.n_head + h) * pc.head_dim + d] = acc[i] * inv;
        }
    } else {
        uint pb = pc.off[5] + ((t * pc.n_head + h) * pc.n_split + s) * (pc.head_dim + 2u);
        if (tid == 0u) {
            part[pb] = m_run;
            part[pb + 1u] = l_run;
        }
        [[unroll]] for (uint i = 0; i < DMAX; ++i) {
            uint d = tid + WG * i;
            if (d < pc.head_dim) part[pb + 2u + d] = acc[i];
        }
    }
}
