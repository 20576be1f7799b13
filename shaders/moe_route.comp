#version 450
// moe_route.comp: for each token t, p = softmax(logits[:, t]) over the E experts; ids[:, t] =
// the k experts of largest p, best first, ties to the lower index; weights[:, t] = their p over
// the sum of the k chosen p (clamped below at 6.1e-5). One invocation per token: E and k are
// small (E <= a few hundred, k <= 8), so k passes over E values cost less than any sort.
// The j-th pick is the best expert strictly after the (j-1)-th in the order (p desc, index asc),
// so nothing needs to remember which experts are taken. The order compares logits, which is
// the order of p without the rounding of exp.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) readonly buffer L { float logits[]; };
layout(std430, set = 0, binding = 1) writeonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Wt { float ws[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint n_expert, k, n;
} pc;

void main() {
    uint t = flat_invocation(64u);
    if (t >= pc.n) return;
    uint lb = pc.off[0] + t * pc.n_expert;
    float mx = logits[lb];
    for (uint e = 1u; e < pc.n_expert; ++e) mx = max(mx, logits[lb + e]);
    float sum = 0.0;
    for (uint e = 0u; e < pc.n_expert; ++e) sum += exp(logits[lb + e] - mx);
    float prev_l = 0.0, chosen = 0.0;
    int prev_e = -1;
    for (uint j = 0u; j < pc.k; ++j) {
        int best = -1;
        float best_l = 0.0;
        for (uint e = 0u; e < pc.n_expert; ++e) {
            float l = logits[lb + e];
            bool after = prev_e < 0 || l < prev_l || (l == prev_l && int(e) > prev_e);
            if (after && (best < 0 || l > best_l)) {
                best = int(e);
                best_l = l;
            }
        }
        ids[pc.off[1] + t * pc.k + j] = best;
        float p = exp(best_l - mx) / sum;
        ws[pc.off[2] + t * pc.k + j] = p;
        chosen += p;
        prev_e = best;
        prev_l = best_l;
    }
    float inv = 1.0 / max(chosen, 6.1e-5);
    for (uint j = 0u; j < pc.k; ++j) ws[pc.off[2] + t * pc.k + j] *= inv;
}
