// kv_cache.glsl: reading K and V cache rows of every KV cache type (F32, F16, Q8_0, Q4_0) from
// the 32-bit word buffers kc[] and vc[], which the including shader declares. K_<TYPE> and
// V_<TYPE> select the types independently. A cache row is [n_head_kv * head_dim] values of one
// cell; quantized rows are 32-value blocks (f16 scale, then 32 int8 or 16 bytes of nibbles) in
// the GGUF layout, which head boundaries never split (head_dim % 32 == 0 for those types). Byte
// offsets are relative to the bound range (off[] words * 4); blocks are 2-byte aligned.

uint kc_u16(uint o) { return (kc[o >> 2] >> ((o & 2u) * 8u)) & 0xFFFFu; }
uint kc_u32(uint o) { uint w = o >> 2; return (o & 2u) == 0u ? kc[w] : (kc[w] >> 16) | (kc[w + 1u] << 16); }
uint vc_u8(uint o) { return (vc[o >> 2] >> ((o & 3u) * 8u)) & 0xFFu; }
uint vc_u16(uint o) { return (vc[o >> 2] >> ((o & 2u) * 8u)) & 0xFFFFu; }

// q . k[cell, head kvh] over head_dim; Q_AT(d) is the scaled query element d.
float k_dot(uint cell, uint kvh) {
    float s = 0.0;
    uint e0 = cell * pc.n_head_kv * pc.head_dim + kvh * pc.head_dim;  // first element of the head
#if defined(K_F32)
    uint base = pc.off[1] + e0;
    for (uint d = 0; d < pc.head_dim; ++d) s += Q_AT(d) * uintBitsToFloat(kc[base + d]);
#elif defined(K_F16)
    uint base = pc.off[1] + e0 / 2u;
    for (uint d = 0; d < pc.head_dim; d += 2u) {
        vec2 kk = unpackHalf2x16(kc[base + d / 2u]);
        s += Q_AT(d) * kk.x + Q_AT(d + 1u) * kk.y;
    }
#elif defined(K_Q8_0)
    uint b = pc.off[1] * 4u + (e0 / 32u) * 34u;
    for (uint d0 = 0; d0 < pc.head_dim; d0 += 32u, b += 34u) {
        float sb = 0.0;
        [[unroll]] for (uint i = 0; i < 8u; ++i) {
            int q = int(kc_u32(b + 2u + 4u * i));
            [[unroll]] for (uint j = 0; j < 4u; ++j) sb += Q_AT(d0 + 4u * i + j) * float(bitfieldExtract(q, int(8u * j), 8));
        }
        s += unpackHalf2x16(kc_u16(b)).x * sb;
    }
#elif defined(K_Q4_0)
    uint b = pc.off[1] * 4u + (e0 / 32u) * 18u;
    for (uint d0 = 0; d0 < pc.head_dim; d0 += 32u, b += 18u) {
        float sb = 0.0;
        [[unroll]] for (uint i = 0; i < 4u; ++i) {
            uint q = kc_u32(b + 2u + 4u * i);
            [[unroll]] for (uint j = 0; j < 4u; ++j) {
                uint by = (q >> (8u * j)) & 0xFFu;
                sb += Q_AT(d0 + 4u * i + j) * (float(by & 0xFu) - 8.0) + Q_AT(d0 + 4u * i + j + 16u) * (float(by >> 4) - 8.0);
            }
        }
        s += unpackHalf2x16(kc_u16(b)).x * sb;
    }
#else
#error "kv_cache.glsl: define one K_<TYPE>"
#endif
    return s;
}

// v[cell, head kvh, element d].
float v_at(uint cell, uint kvh, uint d) {
    uint e = cell * pc.n_head_kv * pc.head_dim + kvh * pc.head_dim + d;
#if defined(V_F32)
    return uintBitsToFloat(vc[pc.off[2] + e]);
#elif defined(V_F16)
    vec2 vv = unpackHalf2x16(vc[pc.off[2] + e / 2u]);
    return (d & 1u) == 0u ? vv.x : vv.y;
#elif defined(V_Q8_0)
    uint b = pc.off[2] * 4u + (e / 32u) * 34u;
    return unpackHalf2x16(vc_u16(b)).x * float(bitfieldExtract(int(vc_u8(b + 2u + (e & 31u))), 0, 8));
#elif defined(V_Q4_0)
    uint b = pc.off[2] * 4u + (e / 32u) * 18u, j = e & 31u;
    uint by = vc_u8(b + 2u + (j & 15u));
    return unpackHalf2x16(vc_u16(b)).x * (float(j < 16u ? by & 0xFu : by >> 4) - 8.0);
#else
#error "kv_cache.glsl: define one V_<TYPE>"
#endif
}
