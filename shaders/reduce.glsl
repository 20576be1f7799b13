// reduce.glsl: workgroup sum of one float per invocation. With USE_SUBGROUP, subgroupAdd then
// one shared slot per subgroup; otherwise a shared-memory tree. WG (a power of two) is the
// workgroup size. Every invocation gets the total. Must be reached by the whole workgroup.
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
shared float red_sh[WG];
float wg_sum(float a) {
    float s = subgroupAdd(a);
    if (subgroupElect()) red_sh[gl_SubgroupID] = s;
    barrier();
    float t = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; ++i) t += red_sh[i];
    barrier();
    return t;
}
#else
shared float red_sh[WG];
float wg_sum(float a) {
    uint tid = gl_LocalInvocationID.x;
    red_sh[tid] = a;
    barrier();
    [[unroll]] for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red_sh[tid] += red_sh[tid + s];
        barrier();
    }
    float t = red_sh[0];
    barrier();
    return t;
}
#endif
