// dequant.glsl: reading weights of every type from a buffer of 32-bit words, WBUF, which the
// including shader declares. Exactly one W_<TYPE> define selects the type. Rows are a byte offset;
// dq_unit() dequantizes the u-th 32-element unit of a row (all block sizes are 32 or 256, so a
// unit never straddles blocks; plain types use k to zero the tail of an odd-sized row).
// Block layouts are the GGUF ones (little-endian, fp16 scales at 2-byte aligned offsets).

uint ld_u8(uint o) { return (WBUF[o >> 2] >> ((o & 3u) * 8u)) & 0xFFu; }
uint ld_u16(uint o) { return (WBUF[o >> 2] >> ((o & 2u) * 8u)) & 0xFFFFu; }  // o even
uint ld_u32(uint o) {                                                        // o even
    uint w = o >> 2;
    if ((o & 2u) == 0u) return WBUF[w];
    return (WBUF[w] >> 16) | (WBUF[w + 1u] << 16);
}
float ld_f16(uint o) { return unpackHalf2x16(ld_u16(o)).x; }
uint byte_of(uint word, uint j) { return (word >> (8u * j)) & 0xFFu; }

#if defined(W_F32)
#define W_PLAIN 1
void dq_unit(uint row, uint u, uint k, out float v[32]) {
    uint base = (row >> 2) + 32u * u;
    [[unroll]] for (uint j = 0; j < 32u; ++j) v[j] = (32u * u + j < k) ? uintBitsToFloat(WBUF[base + j]) : 0.0;
}
#elif defined(W_F16)
#define W_PLAIN 1
void dq_unit(uint row, uint u, uint k, out float v[32]) {
    [[unroll]] for (uint j = 0; j < 32u; ++j) {
        uint e = 32u * u + j;
        v[j] = e < k ? ld_f16(row + 2u * e) : 0.0;
    }
}
#elif defined(W_BF16)
#define W_PLAIN 1
void dq_unit(uint row, uint u, uint k, out float v[32]) {
    [[unroll]] for (uint j = 0; j < 32u; ++j) {
        uint e = 32u * u + j;
        v[j] = e < k ? uintBitsToFloat(ld_u16(row + 2u * e) << 16) : 0.0;
    }
}
#elif defined(W_Q4_0)
void dq_unit(uint row, uint u, uint k, out float v[32]) {  // d, qs[16]: (nibble - 8) * d
    uint b = row + u * 18u;
    float d = ld_f16(b);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        uint q = ld_u32(b + 2u + 4u * i);
        [[unroll]] for (uint j = 0; j < 4u; ++j) {
            uint by = byte_of(q, j);
            v[4u * i + j] = d * (float(by & 0xFu) - 8.0);
            v[4u * i + j + 16u] = d * (float(by >> 4) - 8.0);
        }
    }
}
#elif defined(W_Q4_1)
void dq_unit(uint row, uint u, uint k, out float v[32]) {  // d, m, qs[16]: nibble * d + m
    uint b = row + u * 20u;
    float d = ld_f16(b), m = ld_f16(b + 2u);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        uint q = ld_u32(b + 4u + 4u * i);
        [[unroll]] for (uint j = 0; j < 4u; ++j) {
            uint by = byte_of(q, j);
            v[4u * i + j] = d * float(by & 0xFu) + m;
            v[4u * i + j + 16u] = d * float(by >> 4) + m;
        }
    }
}
#elif defined(W_Q5_0)
void dq_unit(uint row, uint u, uint k, out float v[32]) {  // d, qh (32 high bits), qs[16]: (q5 - 16) * d
    uint b = row + u * 22u;
    float d = ld_f16(b);
    uint qh = ld_u32(b + 2u);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        uint q = ld_u32(b + 6u + 4u * i);
        [[unroll]] for (uint j = 0; j < 4u; ++j) {
            uint by = byte_of(q, j), e = 4u * i + j;
            v[e] = d * (float((by & 0xFu) | (((qh >> e) & 1u) << 4)) - 16.0);
            v[e + 16u] = d * (float((by >> 4) | (((qh >> (e + 16u)) & 1u) << 4)) - 16.0);
        }
    }
}
#elif defined(W_Q5_1)
void dq_unit(uint row, uint u, uint k, out float v[32]) {  // d, m, qh, qs[16]: q5 * d + m
    uint b = row + u * 24u;
    float d = ld_f16(b), m = ld_f16(b + 2u);
    uint qh = ld_u32(b + 4u);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        uint q = ld_u32(b + 8u + 4u * i);
        [[unroll]] for (uint j = 0; j < 4u; ++j) {
            uint by = byte_of(q, j), e = 4u * i + j;
            v[e] = d * float((by & 0xFu) | (((qh >> e) & 1u) << 4)) + m;
            v[e + 16u] = d * float((by >> 4) | (((qh >> (e + 16u)) & 1u) << 4)) + m;
        }
    }
}
#elif defined(W_Q8_0)
void dq_unit(uint row, uint u, uint k, out float v[32]) {  // d, qs[32] int8: q * d
    uint b = row + u * 34u;
    float d = ld_f16(b);
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
        int q = int(ld_u32(b + 2u + 4u * i));
        [[unroll]] for (uint j = 0; j < 4u; ++j) v[4u * i + j] = d * float(bitfieldExtract(q, int(8u * j), 8));
    }
}
#elif defined(W_Q2_K)
// 256-element block: scales[16] (4-bit scale | 4-bit min), qs[64] (2-bit), d, dmin.
// Element l of unit sub: half h = sub/4, shift 2*(sub%4), byte qs[32h + l], scale 8h + 2(sub%4) + l/16.
void dq_unit(uint row, uint u, uint k, out float v[32]) {
    uint b = row + (u >> 3) * 84u, sub = u & 7u, h = sub >> 2, sh = 2u * (sub & 3u);
    float d = ld_f16(b + 80u), dmin = ld_f16(b + 82u);
    uint si = 8u * h + 2u * (sub & 3u);
    [[unroll]] for (uint half16 = 0; half16 < 2u; ++half16) {
        uint sc = ld_u8(b + si + half16);
        float dl = d * float(sc & 0xFu), ml = dmin * float(sc >> 4);
        [[unroll]] for (uint i = 0; i < 4u; ++i) {
            uint q = ld_u32(b + 16u + 32u * h + 16u * half16 + 4u * i);
            [[unroll]] for (uint j = 0; j < 4u; ++j) v[16u * half16 + 4u * i + j] = dl * float((byte_of(q, j) >> sh) & 3u) - ml;
        }
    }
}
#elif defined(W_Q3_K)
// hmask[32], qs[64] (2-bit), scales[12] (16 6-bit scales, offset 32), d. value = 2-bit - (hbit ? 0 : 4).
int q3_scale(uint b, uint idx) {
    uint lo = idx < 8u ? (ld_u8(b + 96u + idx) & 0xFu) : (ld_u8(b + 96u + idx - 8u) >> 4);
    uint hi = (ld_u8(b + 104u + (idx & 3u)) >> (2u * (idx >> 2))) & 3u;
    return int(lo | (hi << 4)) - 32;
}
void dq_unit(uint row, uint u, uint k, out float v[32]) {
    uint b = row + (u >> 3) * 110u, sub = u & 7u, h = sub >> 2, j4 = sub & 3u, sh = 2u * j4;
    float d = ld_f16(b + 108u);
    uint hbit = 4u * h + j4;
    [[unroll]] for (uint half16 = 0; half16 < 2u; ++half16) {
        float dl = d * float(q3_scale(b, 8u * h + 2u * j4 + half16));
        [[unroll]] for (uint i = 0; i < 4u; ++i) {
            uint l0 = 16u * half16 + 4u * i;
            uint q = ld_u32(b + 32u + 32u * h + l0);
            uint hm = ld_u32(b + l0);
            [[unroll]] for (uint j = 0; j < 4u; ++j) {
                int val = int((byte_of(q, j) >> sh) & 3u) - (((byte_of(hm, j) >> hbit) & 1u) != 0u ? 0 : 4);
                v[l0 + j] = dl * float(val);
            }
        }
    }
}
#elif defined(W_Q4_K) || defined(W_Q5_K)
// d, dmin, scales[12] (8 6-bit scales and 8 6-bit mins), [qh[32] for Q5_K], qs[128].
// Unit sub uses scale/min sub; its nibbles are the low (even sub) or high (odd sub) halves of
// qs[32*(sub/2) + l]; Q5_K adds bit sub of qh[l] as bit 4.
void k4_scale_min(uint b, uint j, out float sc, out float mn) {
    if (j < 4u) {
        sc = float(ld_u8(b + 4u + j) & 63u);
        mn = float(ld_u8(b + 8u + j) & 63u);
    } else {
        sc = float((ld_u8(b + 8u + j) & 0xFu) | ((ld_u8(b + j) >> 6) << 4));
        mn = float((ld_u8(b + 8u + j) >> 4) | ((ld_u8(b + 4u + j) >> 6) << 4));
    }
}
void dq_unit(uint row, uint u, uint k, out float v[32]) {
#if defined(W_Q4_K)
    const uint bytes = 144u, qs_off = 16u;
#else
    const uint bytes = 176u, qs_off = 48u;
#endif
    uint b = row + (u >> 3) * bytes, sub = u & 7u;
    float d = ld_f16(b), dmin = ld_f16(b + 2u), sc, mn;
    k4_scale_min(b, sub, sc, mn);
    float dl = d * sc, ml = dmin * mn;
    uint sh = 4u * (sub & 1u);
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
        uint q = ld_u32(b + qs_off + 32u * (sub >> 1) + 4u * i);
#if defined(W_Q5_K)
        uint qh = ld_u32(b + 16u + 4u * i);
#endif
        [[unroll]] for (uint j = 0; j < 4u; ++j) {
            uint val = (byte_of(q, j) >> sh) & 0xFu;
#if defined(W_Q5_K)
            val |= ((byte_of(qh, j) >> sub) & 1u) << 4;
#endif
            v[4u * i + j] = dl * float(val) - ml;
        }
    }
}
#elif defined(W_Q6_K)
// ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d. value = 6-bit - 32.
// Unit sub: half h = sub/4, quarter g = sub%4: ql[64h + 32(g&1) + l] (high nibble when g >= 2),
// bits 2g of qh[32h + l], scale 8h + 2g + l/16.
void dq_unit(uint row, uint u, uint k, out float v[32]) {
    uint b = row + (u >> 3) * 210u, sub = u & 7u, h = sub >> 2, g = sub & 3u;
    float d = ld_f16(b + 208u);
    uint nsh = g >= 2u ? 4u : 0u, hsh = 2u * g;
    [[unroll]] for (uint half16 = 0; half16 < 2u; ++half16) {
        float dl = d * float(bitfieldExtract(int(ld_u8(b + 192u + 8u * h + 2u * g + half16)), 0, 8));
        [[unroll]] for (uint i = 0; i < 4u; ++i) {
            uint l0 = 16u * half16 + 4u * i;
            uint ql = ld_u32(b + 64u * h + 32u * (g & 1u) + l0);
            uint qh = ld_u32(b + 128u + 32u * h + l0);
            [[unroll]] for (uint j = 0; j < 4u; ++j) {
                int val = int(((byte_of(ql, j) >> nsh) & 0xFu) | (((byte_of(qh, j) >> hsh) & 3u) << 4)) - 32;
                v[l0 + j] = dl * float(val);
            }
        }
    }
}
#else
#error "dequant.glsl: define one W_<TYPE>"
#endif
