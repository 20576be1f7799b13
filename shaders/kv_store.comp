#version 450
// kv_store.comp: k and v [width, n_tokens] f32 -> the caches [width, n_cells] at cells rows[t],
// each in its own type (k_type, v_type: 0 F32, 1 F16, 2 Q8_0, 3 Q4_0; a uniform branch, as this
// op moves one row per token and layer). One invocation per 32-value unit of one token of k or
// of v (z = 0: k, 1: v). Quantized units are one block, quantized exactly as the CPU reference
// (cpu/quantize.cpp): Q8_0 d = absmax / 127, q = round(x / d); Q4_0 d = (the value of largest
// magnitude, first on ties) / -8, q = clamp(round(x / d + 8), 0, 15); d stored as f16 and the
// stored value used. A block of 34 or 18 bytes may share a word with its neighbour (whose
// invocation may run concurrently), so words a block covers only in part are written with
// atomicAnd/atomicOr of its own half.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) readonly buffer K { float ks[]; };
layout(std430, set = 0, binding = 1) readonly buffer V { float vs[]; };
layout(std430, set = 0, binding = 2) buffer KC { uint kc[]; };
layout(std430, set = 0, binding = 3) buffer VC { uint vc[]; };
layout(std430, set = 0, binding = 4) readonly buffer R { int rows[]; };
layout(push_constant) uniform PC {
    uint off[8];
    uint width;     // head_dim * n_head_kv (even; a multiple of 32 for quantized caches)
    uint n_tokens;
    uint n_cells;
    uint k_type, v_type;
} pc;

bool is_v;  // this invocation writes the v cache

float src_at(uint i) { return is_v ? vs[pc.off[1] + i] : ks[pc.off[0] + i]; }
void put_word(uint w, uint x) {
    if (is_v) vc[pc.off[3] + w] = x;
    else kc[pc.off[2] + w] = x;
}
// The 16 bits at byte offset o (even) of the cache's range, leaving the other half of the word.
void put_u16(uint o, uint x) {
    uint w = o >> 2, sh = (o & 2u) * 8u;
    if (is_v) {
        atomicAnd(vc[pc.off[3] + w], ~(0xFFFFu << sh));
        atomicOr(vc[pc.off[3] + w], (x & 0xFFFFu) << sh);
    } else {
        atomicAnd(kc[pc.off[2] + w], ~(0xFFFFu << sh));
        atomicOr(kc[pc.off[2] + w], (x & 0xFFFFu) << sh);
    }
}
// n_bytes (even) of packed bytes at byte offset o (even): whole words directly, a leading or
// trailing half word through put_u16.
void put_bytes(uint o, uint bytes[34], uint n_bytes) {
    uint i = 0;
    if ((o & 2u) != 0u) {
        put_u16(o, bytes[0] | (bytes[1] << 8));
        i = 2u;
    }
    for (; i + 4u <= n_bytes; i += 4u)
        put_word((o + i) >> 2, bytes[i] | (bytes[i + 1u] << 8) | (bytes[i + 2u] << 16) | (bytes[i + 3u] << 24));
    if (i < n_bytes) put_u16(o + i, bytes[i] | (bytes[i + 1u] << 8));
}

void main() {
    uint n_units = (pc.width + 31u) / 32u;
    uint gid = flat_invocation(64u);
    if (gid >= 2u * n_units * pc.n_tokens) return;
    is_v = gid >= n_units * pc.n_tokens;
    if (is_v) gid -= n_units * pc.n_tokens;
    uint u = gid % n_units, t = gid / n_units;
    uint type = is_v ? pc.v_type : pc.k_type;
    uint cell = uint(clamp(rows[pc.off[4] + t], 0, int(pc.n_cells) - 1));
    uint src = t * pc.width + 32u * u;
    uint n = min(32u, pc.width - 32u * u);  // < 32 only for plain types (width even)
    if (type == 0u) {
        for (uint j = 0; j < n; ++j) put_word(cell * pc.width + 32u * u + j, floatBitsToUint(src_at(src + j)));
    } else if (type == 1u) {
        for (uint j = 0; j < n; j += 2u)
            put_word((cell * pc.width + 32u * u + j) / 2u, packHalf2x16(vec2(src_at(src + j), src_at(src + j + 1u))));
    } else {
        float x[32];
        [[unroll]] for (uint j = 0; j < 32u; ++j) x[j] = src_at(src + j);
        uint bytes[34];
        uint blk = cell * (pc.width / 32u) + u;
        if (type == 2u) {
            float amax = 0.0;
            [[unroll]] for (uint j = 0; j < 32u; ++j) amax = max(amax, abs(x[j]));
            uint h = packHalf2x16(vec2(amax / 127.0, 0.0));
            float d = unpackHalf2x16(h).x;
            float id = d != 0.0 ? 1.0 / d : 0.0;
            bytes[0] = h & 0xFFu;
            bytes[1] = (h >> 8) & 0xFFu;
            [[unroll]] for (uint j = 0; j < 32u; ++j) bytes[2u + j] = uint(int(clamp(roundEven(x[j] * id), -127.0, 127.0))) & 0xFFu;
            put_bytes(blk * 34u, bytes, 34u);
        } else {
            float amax = 0.0, vmax = 0.0;
            [[unroll]] for (uint j = 0; j < 32u; ++j)
                if (abs(x[j]) > amax) {
                    amax = abs(x[j]);
                    vmax = x[j];
                }
            uint h = packHalf2x16(vec2(vmax / -8.0, 0.0));
            float d = unpackHalf2x16(h).x;
            float id = d != 0.0 ? 1.0 / d : 0.0;
            bytes[0] = h & 0xFFu;
            bytes[1] = (h >> 8) & 0xFFu;
            [[unroll]] for (uint j = 0; j < 16u; ++j) {
                uint q0 = uint(clamp(roundEven(x[j] * id + 8.0), 0.0, 15.0));
                uint q1 = uint(clamp(roundEven(x[j + 16u] * id + 8.0), 0.0, 15.0));
                bytes[2u + j] = q0 | (q1 << 4);
            }
            put_bytes(blk * 18u, bytes, 18u);
        }
    }
}
