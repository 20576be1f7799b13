// kv_cache.glsl: reading K and V cache rows of every KV cache type (F32, F16, Q8_0, Q4_0) from
// the 32-bit word buffers kc[] and vc[], which the including shader declares. K_<TYPE> and
// V_<TYPE> select the types independently. A cache row is [n_head_kv * head_dim] values of one
// cell; quantized rows are 32-value blocks (f16 scale, then 32 int8 or 16 bytes of nibbles) in
// the GGUF layout, which head boundaries never split (head_dim % 32 == 0 for those types). Byte
// offsets are relative to the bound range (off[] words * 4); blocks are 2-byte aligned.
// k_pair(e) / v_pair(e): elements e and e + 1 (e even, an index into the whole cache) as f32;
// an even element's pair always lies in one f16 word, one 16-bit half of a Q8_0 block's int8s,
// or one 16-bit half of a Q4_0 block's nibble bytes.

#define KV_U16(buf, o) ((buf[(o) >> 2] >> (((o) & 2u) * 8u)) & 0xFFFFu)

#define PAIR_F32(buf, w0, e) vec2(uintBitsToFloat(buf[(w0) + (e)]), uintBitsToFloat(buf[(w0) + (e) + 1u]))
#define PAIR_F16(buf, w0, e) unpackHalf2x16(buf[(w0) + ((e) >> 1)])

vec2 q8_0_pair(uint scale_bits, uint q16) {
    return unpackHalf2x16(scale_bits).x * vec2(float(int(q16 << 24) >> 24), float(int(q16 << 16) >> 24));
}
vec2 q4_0_pair(uint scale_bits, uint q16, uint j) {
    uint sh = j < 16u ? 0u : 4u;  // elements 0-15: low nibbles of bytes 0-15; 16-31: high nibbles
    return unpackHalf2x16(scale_bits).x * (vec2(float((q16 >> sh) & 0xFu), float((q16 >> (8u + sh)) & 0xFu)) - 8.0);
}

// The pair at element e in buffer buf of a cache that starts at word w0, per cache type; a
// quantized pair is read from e's 32-value block (KV_BLOCK: its byte offset).
#define KV_BLOCK(w0, e, block_bytes) ((w0) * 4u + ((e) >> 5) * (block_bytes))
#define PAIR_Q8_0(buf, w0, e) \
    q8_0_pair(KV_U16(buf, KV_BLOCK(w0, e, 34u)), KV_U16(buf, KV_BLOCK(w0, e, 34u) + 2u + ((e) & 31u)))
#define PAIR_Q4_0(buf, w0, e) \
    q4_0_pair(KV_U16(buf, KV_BLOCK(w0, e, 18u)), KV_U16(buf, KV_BLOCK(w0, e, 18u) + 2u + ((e) & 15u)), (e) & 31u)

#if defined(K_F32)
#define K_PAIR PAIR_F32
#elif defined(K_F16)
#define K_PAIR PAIR_F16
#elif defined(K_Q8_0)
#define K_PAIR PAIR_Q8_0
#elif defined(K_Q4_0)
#define K_PAIR PAIR_Q4_0
#else
#error "kv_cache.glsl: define one K_<TYPE>"
#endif

#if defined(V_F32)
#define V_PAIR PAIR_F32
#elif defined(V_F16)
#define V_PAIR PAIR_F16
#elif defined(V_Q8_0)
#define V_PAIR PAIR_Q8_0
#elif defined(V_Q4_0)
#define V_PAIR PAIR_Q4_0
#else
#error "kv_cache.glsl: define one V_<TYPE>"
#endif

vec2 k_pair(uint e) { return K_PAIR(kc, pc.off[1], e); }
vec2 v_pair(uint e) { return V_PAIR(vc, pc.off[2], e); }
