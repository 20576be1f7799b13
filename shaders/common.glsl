// common.glsl: shared by every shader. Push constants of every shader start with off[8]: the
// offset, in 32-bit words, of each binding's tensor inside the range bound to it (the host binds
// ranges at the device's minimum alignment). Large dispatches are folded into x and y
// (x <= 65535), so a flat workgroup id is x + y * num_x.
#extension GL_EXT_control_flow_attributes : enable

uint flat_group() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
uint flat_invocation(uint wg_size) { return flat_group() * wg_size + gl_LocalInvocationID.x; }

// tanh without the overflow of (e^2x - 1) / (e^2x + 1) for large |x| (inf / inf on some drivers).
float tanh_safe(float x) {
    float e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}
