#version 450
// moe_group.comp: groups the (token, slot) pairs of a batch by expert, for the grouped matmul_id
// (matmul.comp / matvec.comp with MATMUL_ID GROUPED), on the GPU so the host never reads ids.
// Pair p = t * k + j uses expert ids[p] (clamped to [0, E)). One workgroup: count per expert
// (shared atomics), prefix sums by one invocation (E <= 256), then scatter every pair into its
// expert's range of the list. groups[] (int) is, with P = n * k pairs and tile the columns per
// workgroup of the matmul:
//   [0, E)          count[e]      pairs using expert e
//   [E, 2E)         start[e]      where e's pairs begin in the list
//   [2E, 3E + 1)    tile_start[e] first column tile of e (sum of ceil(count / tile) before e);
//                                 tile_start[E] = the number of tiles
//   [3E + 1, +P)    list          pair indices, expert by expert (order inside one expert varies
//                                 from run to run; every pair's column is computed on its own, so
//                                 the results do not)
#include "common.glsl"
#define WG 256u
#define EMAX 256u
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 1) writeonly buffer G { int groups[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n_expert, n_pairs, tile;
} pc;

shared uint cnt[EMAX];
shared uint cursor[EMAX];

uint expert_of(uint p) { return uint(clamp(ids[pc.off[0] + p], 0, int(pc.n_expert) - 1)); }

void main() {
    uint tid = gl_LocalInvocationID.x, E = pc.n_expert, g = pc.off[1];
    for (uint e = tid; e < E; e += WG) cnt[e] = 0u;
    barrier();
    for (uint p = tid; p < pc.n_pairs; p += WG) atomicAdd(cnt[expert_of(p)], 1u);
    barrier();
    if (tid == 0u) {
        uint s = 0u, t = 0u;
        for (uint e = 0u; e < E; ++e) {
            uint c = cnt[e];
            groups[g + e] = int(c);
            groups[g + E + e] = int(s);
            groups[g + 2u * E + e] = int(t);
            cursor[e] = s;
            s += c;
            t += (c + pc.tile - 1u) / pc.tile;
        }
        groups[g + 3u * E] = int(t);
    }
    barrier();
    uint list = g + 3u * E + 1u;
    for (uint p = tid; p < pc.n_pairs; p += WG) groups[list + atomicAdd(cursor[expert_of(p)], 1u)] = int(p);
}
