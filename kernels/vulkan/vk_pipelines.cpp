// kernels/vulkan/vk_pipelines.cpp: SPIR-V reflection (bindings, push-constant size) and the
// pipeline table.
// Vulkan create-info structs are written {VK_STRUCTURE_TYPE_...} and zero-fill the rest on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "vulkan/vk_pipelines.h"

#include "log/log.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>
#include <unordered_map>

#include "minerva/error.h"
#include "shaders/embedded.h"
#include "vulkan/vk_push.h"

namespace minerva::vk {

// The C++ push-constant struct of each shader, by variant-name prefix (variants.cmake).
struct PushTableEntry {
    const char* prefix;
    uint32_t bytes;
};
// First match wins: longer names sharing a prefix come first.
static const PushTableEntry k_push_table[] = {
    {"matmul_id_", sizeof(PcMatmulId)},
    {"matvec_", sizeof(PcMatvec)},
    {"matmul_", sizeof(PcMatvec)},
    {"get_rows_", sizeof(PcGetRows)},
    {"rms_norm", sizeof(PcRmsNorm)},
    {"rope", sizeof(PcRope)},
    {"kv_store", sizeof(PcKvStore)},
    {"attention_reduce", sizeof(PcAttentionReduce)},
    {"attention_", sizeof(PcAttention)},
    {"swiglu", sizeof(PcElementwise)},
    {"geglu", sizeof(PcElementwise)},
    {"add_bias", sizeof(PcAddBias)},
    {"add", sizeof(PcElementwise)},
    {"scale", sizeof(PcScalarOp)},
    {"softcap", sizeof(PcScalarOp)},
    {"moe_route", sizeof(PcMoeRoute)},
    {"moe_sum", sizeof(PcMoeSum)},
    {"moe_group", sizeof(PcMoeGroup)},
    {"gather_rows", sizeof(PcGatherRows)},
};

Reflection reflect_spirv(const uint32_t* w, size_t n, const std::string& name) {
    if (n < 5 || w[0] != 0x07230203u) throw Error("embedded shader " + name + " is not SPIR-V");
    enum : uint32_t {
        OpTypeInt = 21, OpTypeFloat = 22, OpTypeArray = 28, OpTypeStruct = 30, OpTypePointer = 32,
        OpConstant = 43, OpVariable = 59, OpDecorate = 71, OpMemberDecorate = 72,
        DecArrayStride = 6, DecOffset = 35, DecBinding = 33, ScPushConstant = 9,
    };
    std::unordered_map<uint32_t, uint32_t> scalar_bytes, constants, array_len, array_stride, pointee;
    std::unordered_map<uint32_t, std::vector<uint32_t>> struct_members;
    std::unordered_map<uint32_t, std::unordered_map<uint32_t, uint32_t>> member_offset;
    std::unordered_map<uint32_t, uint32_t> binding_of;
    std::set<uint32_t> bound_vars;
    uint32_t push_ptr_type = 0;
    for (size_t i = 5; i < n;) {
        uint32_t count = w[i] >> 16, op = w[i] & 0xFFFFu;
        if (count == 0 || i + count > n) throw Error("embedded shader " + name + ": malformed SPIR-V");
        const uint32_t* a = w + i + 1;
        switch (op) {
            case OpTypeInt:
            case OpTypeFloat: scalar_bytes[a[0]] = a[1] / 8; break;
            case OpTypeArray: array_len[a[0]] = a[2]; pointee[a[0]] = a[1]; break;
            case OpTypeStruct: struct_members[a[0]].assign(a + 1, a + count - 1); break;
            case OpTypePointer: if (a[1] == ScPushConstant) pointee[a[0]] = a[2]; break;
            case OpConstant: if (count >= 4) constants[a[1]] = a[2]; break;
            case OpVariable: if (a[2] == ScPushConstant) push_ptr_type = a[0]; break;
            case OpDecorate:
                if (a[1] == DecBinding) binding_of[a[0]] = a[2];
                if (a[1] == DecArrayStride) array_stride[a[0]] = a[2];
                break;
            case OpMemberDecorate: if (a[2] == DecOffset) member_offset[a[0]][a[1]] = a[3]; break;
            default: break;
        }
        i += count;
    }
    Reflection r;
    std::set<uint32_t> bindings;
    for (auto& [var, b] : binding_of) bindings.insert(b);
    r.n_bindings = static_cast<uint32_t>(bindings.size());
    if (!bindings.empty() && *bindings.rbegin() + 1 != r.n_bindings)
        throw Error("embedded shader " + name + ": descriptor bindings are not 0..n-1");
    if (push_ptr_type) {
        uint32_t st = pointee[push_ptr_type];
        const auto& members = struct_members[st];
        for (uint32_t m = 0; m < members.size(); ++m) {
            uint32_t ty = members[m], bytes = 0;
            if (scalar_bytes.count(ty)) {
                bytes = scalar_bytes[ty];
            } else if (array_len.count(ty)) {
                bytes = constants[array_len[ty]] * array_stride[ty];
            } else {
                throw Error("embedded shader " + name + ": push-constant member " + std::to_string(m) +
                            " is neither a scalar nor an array");
            }
            r.push_bytes = std::max(r.push_bytes, member_offset[st][m] + bytes);
        }
    }
    return r;
}

Pipelines::Pipelines(Context& ctx) : ctx_(ctx) {
    for (size_t i = 0; i < shaders::k_module_count; ++i) {
        const auto& m = shaders::k_modules[i];
        Reflection refl = reflect_spirv(m.words, m.n_words, m.name);
        std::string name = m.name;
        const PushTableEntry* e = nullptr;
        for (const auto& t : k_push_table)
            if (name.rfind(t.prefix, 0) == 0) { e = &t; break; }
        if (!e) throw Error("embedded shader " + name + " has no push-constant struct in vk_pipelines.cpp");
        if (e->bytes != refl.push_bytes)
            throw Error("embedded shader " + name + ": GLSL push constants are " + std::to_string(refl.push_bytes) +
                        " bytes but the C++ struct is " + std::to_string(e->bytes) + " (vk_push.h out of date)");
        if (refl.n_bindings > k_max_bindings) throw Error("embedded shader " + name + " uses too many bindings");
        modules_[name] = {m.words, m.n_words, refl};
    }
    VkDescriptorSetLayoutBinding b[k_max_bindings];
    for (uint32_t i = 0; i < k_max_bindings; ++i)
        b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
    VkDescriptorSetLayoutCreateInfo li{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    li.bindingCount = k_max_bindings;
    li.pBindings = b;
    check(vkCreateDescriptorSetLayout(ctx_.device, &li, nullptr, &set_layout), "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr{VK_SHADER_STAGE_COMPUTE_BIT, 0, k_max_push_bytes};
    VkPipelineLayoutCreateInfo pl{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    pl.setLayoutCount = 1;
    pl.pSetLayouts = &set_layout;
    pl.pushConstantRangeCount = 1;
    pl.pPushConstantRanges = &pr;
    check(vkCreatePipelineLayout(ctx_.device, &pl, nullptr, &layout), "vkCreatePipelineLayout");
    VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    check(vkCreatePipelineCache(ctx_.device, &ci, nullptr, &cache_), "vkCreatePipelineCache");
}

Pipelines::~Pipelines() {
    for (auto& [name, p] : built_) vkDestroyPipeline(ctx_.device, p.pipeline, nullptr);
    if (cache_) vkDestroyPipelineCache(ctx_.device, cache_, nullptr);
    if (layout) vkDestroyPipelineLayout(ctx_.device, layout, nullptr);
    if (set_layout) vkDestroyDescriptorSetLayout(ctx_.device, set_layout, nullptr);
}

const Pipeline& Pipelines::get(const std::string& name) {
    if (auto it = built_.find(name); it != built_.end()) return it->second;
    auto mit = modules_.find(name);
    if (mit == modules_.end()) throw Error("vulkan: no shader variant named " + name);
    const Module& m = mit->second;
    VkShaderModuleCreateInfo si{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    si.codeSize = m.n_words * 4;
    si.pCode = m.words;
    VkShaderModule sm;
    check(vkCreateShaderModule(ctx_.device, &si, nullptr, &sm), "vkCreateShaderModule");
    VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
    ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    ci.stage.module = sm;
    ci.stage.pName = "main";
    ci.layout = layout;
    Pipeline p;
    p.name = name;
    p.n_bindings = m.refl.n_bindings;
    p.push_bytes = m.refl.push_bytes;
    auto t0 = std::chrono::steady_clock::now();
    VkResult r = vkCreateComputePipelines(ctx_.device, cache_, 1, &ci, nullptr, &p.pipeline);
    static const bool verbose = std::getenv("MINERVA_VK_VERBOSE") != nullptr;  // pipeline build times
    if (verbose)
        logging::info("vulkan: pipeline {} built in {:.0f} ms", name,
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    vkDestroyShaderModule(ctx_.device, sm, nullptr);
    check(r, ("vkCreateComputePipelines(" + name + ")").c_str());
    return built_.emplace(name, p).first->second;
}

}  // namespace minerva::vk
