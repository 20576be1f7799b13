#version 450
// attention.comp: fused (flash-style) attention with GQA, softcap and per-token spans; softmax in
// f32, online over blocks of cache cells, so no score buffer of context size exists anywhere.
//
// Workgroup (x = KV head g * n_hchunk + head chunk, y = token tile, z = split s) owns R = nt * nh
// query rows: the nt tokens t0.. of its tile times the nh query heads h0.. of its chunk of the
// GQA group that reads KV head g. Row r is token t0 + r / nh, head h0 + r % nh.
// The rows' spans (token t attends to cells span[0,t] .. +span[1,t]-1) are unioned to [a, b);
// with n_split > 1 that range is cut into n_split pieces, each workgroup writes its partial
// (max, sum, unnormalised output) per row and attention_reduce.comp merges them.
// Per block of `block` cells (block * (head_dim + 1) floats of shared memory):
//   1. the K block is read from the cache once, converted to f32 into kv_sh, for all R rows;
//   2. scores S[r][c] = cap(q_r . k_c) (q pre-scaled), -BIG outside row r's span, into s_sh;
//   3. online softmax per row (subgroupMax/subgroupAdd with USE_SUBGROUP, else one invocation
//      per row): m_new = max(m, max_c S), P = exp(S - m_new), l = l * e^(m - m_new) + sum P;
//      meanwhile the V block replaces the K block in kv_sh;
//   4. acc[r][d] = acc[r][d] * e^(m - m_new) + sum_c P[r][c] V[c][d], acc in registers.
// A block that no row's span touches is skipped (causal prefill: a tile's union span ends at its
// last token, so the masked upper triangle beyond it is never visited). kv_sh rows are padded to
// head_dim + 1 floats so that invocations reading one column of different cells hit different
// banks. K and V are read in their cache types (K_<TYPE>, V_<TYPE>: F32, F16, Q8_0, Q4_0) by
// kv_cache.glsl. The shape constants are mirrored by k_attention_shape in kernels/vulkan/vk_push.h.
#include "common.glsl"
#define WG 128u
#define QSH 2048u   // rows * head_dim <= QSH
#define ACCN 16u    // accumulators per invocation
#define KVSH 4096u  // block * (head_dim + 1) <= KVSH
#define SSH 1024u   // rows * block <= SSH
#define RMAX 32u    // rows <= RMAX
layout(local_size_x = WG) in;
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
    float softcap;   // > 0: scores are softcapped
    uint nh, nt;     // query heads and tokens of a workgroup (rows = nh * nt)
    uint n_hchunk;   // workgroups per GQA group: ceil(group / nh)
    uint block;      // cells per block
    uint dl_shift;   // log2 of the invocations along head_dim (DL)
    uint k_shift;    // log2 of the head_dim elements each of them owns per row (pow2 >= head_dim / DL)
} pc;

#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif
#include "kv_cache.glsl"

shared float q_sh[QSH];           // [rows][head_dim], pre-scaled
shared float kv_sh[KVSH];         // [block][head_dim + 1]: the K block, then the V block
shared float s_sh[SSH];           // [rows][block]: scores, then probabilities
shared float m_sh[RMAX], l_sh[RMAX], c_sh[RMAX];  // running max, sum, this block's correction
shared int rf_sh[RMAX], re_sh[RMAX];              // each row's span [first, end)

const float NEG_BIG = -1.0e30;

float cap_score(float s) { return pc.softcap > 0.0 ? pc.softcap * tanh_safe(s / pc.softcap) : s; }

// Converts cells c0 .. c0 + nb - 1 of KV head kvh to f32 in kv_sh, two elements at a time.
void load_k_block(uint c0, uint nb, uint kvh, uint ks) {
    uint half_hd = pc.head_dim >> 1;
    for (uint i = gl_LocalInvocationID.x; i < nb * half_hd; i += WG) {
        uint c = i / half_hd, d = 2u * (i - c * half_hd);
        vec2 v = k_pair(((c0 + c) * pc.n_head_kv + kvh) * pc.head_dim + d);
        kv_sh[c * ks + d] = v.x;
        kv_sh[c * ks + d + 1u] = v.y;
    }
}
void load_v_block(uint c0, uint nb, uint kvh, uint ks) {
    uint half_hd = pc.head_dim >> 1;
    for (uint i = gl_LocalInvocationID.x; i < nb * half_hd; i += WG) {
        uint c = i / half_hd, d = 2u * (i - c * half_hd);
        vec2 v = v_pair(((c0 + c) * pc.n_head_kv + kvh) * pc.head_dim + d);
        kv_sh[c * ks + d] = v.x;
        kv_sh[c * ks + d + 1u] = v.y;
    }
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint hd = pc.head_dim, group = pc.n_head / pc.n_head_kv;
    const uint g = gl_WorkGroupID.x / pc.n_hchunk;
    const uint h0 = (gl_WorkGroupID.x - g * pc.n_hchunk) * pc.nh;
    const uint t0 = gl_WorkGroupID.y * pc.nt, s = gl_WorkGroupID.z;
    const uint rows = pc.nh * pc.nt;
    const uint ks = hd + 1u;  // kv_sh row stride

    // Rows: scaled queries and spans; rows past the last token or the group's last head are empty.
    for (uint i = tid; i < rows * hd; i += WG) {
        uint r = i / hd, d = i - r * hd;
        uint t = t0 + r / pc.nh, j = h0 + r % pc.nh;
        q_sh[i] = (t < pc.n_tokens && j < group) ? qs[pc.off[0] + (t * pc.n_head + g * group + j) * hd + d] * pc.scale : 0.0;
    }
    for (uint r = tid; r < rows; r += WG) {
        uint t = t0 + r / pc.nh, j = h0 + r % pc.nh;
        int first = 0, end = 0;
        if (t < pc.n_tokens && j < group) {
            first = max(span[pc.off[3] + 2u * t], 0);
            end = first + clamp(span[pc.off[3] + 2u * t + 1u], 0, max(int(pc.n_cells) - first, 0));
        }
        rf_sh[r] = first;
        re_sh[r] = end;
        m_sh[r] = NEG_BIG;
        l_sh[r] = 0.0;
    }
    barrier();

    // The union of the rows' spans, then this workgroup's piece of it.
    int ua = int(pc.n_cells), ub = 0;
    for (uint r = 0; r < rows; ++r)
        if (re_sh[r] > rf_sh[r]) {
            ua = min(ua, rf_sh[r]);
            ub = max(ub, re_sh[r]);
        }
    uint n = ub > ua ? uint(ub - ua) : 0u;
    uint per = (n + pc.n_split - 1u) / pc.n_split;
    uint a = uint(ua) + min(n, s * per), b = uint(ua) + min(n, (s + 1u) * per);

    // Accumulator a of this invocation: row rg + nrg * (a >> k_shift), element dl + DL * (a & kmask).
    const uint DL = 1u << pc.dl_shift, nrg = WG / DL;
    const uint dl = tid & (DL - 1u), rg = tid >> pc.dl_shift, kmask = (1u << pc.k_shift) - 1u;
    float acc[ACCN];
    [[unroll]] for (uint i = 0; i < ACCN; ++i) acc[i] = 0.0;

    for (uint c0 = a; c0 < b; c0 += pc.block) {
        const uint nb = min(pc.block, b - c0);
        bool any = false;
        for (uint r = 0; r < rows; ++r) any = any || (re_sh[r] > rf_sh[r] && rf_sh[r] < int(c0 + nb) && re_sh[r] > int(c0));
        if (!any) continue;  // uniform: every invocation sees the same spans

        // 1-2. K block, then scores.
        load_k_block(c0, nb, g, ks);
        barrier();
        for (uint i = tid; i < rows * nb; i += WG) {
            uint r = i / nb, c = i - r * nb;
            int cell = int(c0 + c);
            float sc = NEG_BIG;
            if (cell >= rf_sh[r] && cell < re_sh[r]) {
                float dot = 0.0;
                for (uint d = 0; d < hd; ++d) dot += q_sh[r * hd + d] * kv_sh[c * ks + d];
                sc = cap_score(dot);
            }
            s_sh[r * pc.block + c] = sc;
        }
        barrier();

        // 3. Online softmax per row; the V block replaces the K block meanwhile.
#ifdef USE_SUBGROUP
        // Lanes per subgroup (a device with subgroups wider than WG runs it as one partial subgroup).
        const uint sg_lanes = min(gl_SubgroupSize, WG);
        for (uint r = gl_SubgroupID; r < rows; r += gl_NumSubgroups) {
            float mx = NEG_BIG;
            for (uint c = gl_SubgroupInvocationID; c < nb; c += sg_lanes) mx = max(mx, s_sh[r * pc.block + c]);
            float m_old = m_sh[r];
            float m_new = max(m_old, subgroupMax(mx));
            float sum = 0.0;
            for (uint c = gl_SubgroupInvocationID; c < nb; c += sg_lanes) {
                float sc = s_sh[r * pc.block + c];
                float p = sc > 0.5 * NEG_BIG ? exp(sc - m_new) : 0.0;
                s_sh[r * pc.block + c] = p;
                sum += p;
            }
            sum = subgroupAdd(sum);
            if (subgroupElect()) {
                float corr = exp(m_old - m_new);
                c_sh[r] = corr;
                l_sh[r] = l_sh[r] * corr + sum;
                m_sh[r] = m_new;
            }
        }
#else
        for (uint r = tid; r < rows; r += WG) {
            float m_old = m_sh[r], m_new = m_old;
            for (uint c = 0; c < nb; ++c) m_new = max(m_new, s_sh[r * pc.block + c]);
            float sum = 0.0;
            for (uint c = 0; c < nb; ++c) {
                float sc = s_sh[r * pc.block + c];
                float p = sc > 0.5 * NEG_BIG ? exp(sc - m_new) : 0.0;
                s_sh[r * pc.block + c] = p;
                sum += p;
            }
            float corr = exp(m_old - m_new);
            c_sh[r] = corr;
            l_sh[r] = l_sh[r] * corr + sum;
            m_sh[r] = m_new;
        }
#endif
        load_v_block(c0, nb, g, ks);
        barrier();

        // 4. acc = acc * corr + P V.
        [[unroll]] for (uint i = 0; i < ACCN; ++i) {
            uint r = rg + nrg * (i >> pc.k_shift);
            if (r < rows) acc[i] *= c_sh[r];
        }
        for (uint c = 0; c < nb; ++c) {
            [[unroll]] for (uint i = 0; i < ACCN; ++i) {
                uint r = rg + nrg * (i >> pc.k_shift), d = dl + DL * (i & kmask);
                if (r < rows && d < hd) acc[i] += s_sh[r * pc.block + c] * kv_sh[c * ks + d];
            }
        }
        barrier();
    }

    // Rows out: normalised (one piece) or the partial (m, l, acc) for attention_reduce.comp.
    [[unroll]] for (uint i = 0; i < ACCN; ++i) {
        uint r = rg + nrg * (i >> pc.k_shift), d = dl + DL * (i & kmask);
        uint t = t0 + r / pc.nh, j = h0 + r % pc.nh;
        if (r >= rows || d >= hd || t >= pc.n_tokens || j >= group) continue;
        uint row = t * pc.n_head + g * group + j;
        if (pc.n_split == 1u) {
            float l = l_sh[r];
            outs[pc.off[4] + row * hd + d] = l > 0.0 ? acc[i] / l : 0.0;
        } else {
            uint pb = pc.off[5] + (row * pc.n_split + s) * (hd + 2u);
            if (d == 0u) {
                part[pb] = m_sh[r];
                part[pb + 1u] = l_sh[r];
            }
            part[pb + 2u + d] = acc[i];
        }
    }
}
