// kernels/vulkan/vk_pipelines.h: compute pipelines built from the embedded SPIR-V table, one
// descriptor-set layout (k_max_bindings storage buffers) and one pipeline layout shared by all.
#pragma once
#include <vulkan/vulkan.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "vulkan/vk_context.h"

namespace minerva::vk {

// What a SPIR-V module declares: descriptor bindings (0..n_bindings-1), push-constant bytes.
struct Reflection {
    uint32_t n_bindings = 0;
    uint32_t push_bytes = 0;
};
Reflection reflect_spirv(const uint32_t* words, size_t n_words, const std::string& name);

struct Pipeline {
    std::string name;
    VkPipeline pipeline = VK_NULL_HANDLE;
    uint32_t n_bindings = 0;
    uint32_t push_bytes = 0;  // what the C++ struct and the GLSL block both are
};

class Pipelines {
public:
    // Checks every embedded module against the push-constant table (sizes must match).
    explicit Pipelines(Context& ctx);
    ~Pipelines();
    // The pipeline for a variant name; compiled on first use (driver compilation is slow on
    // lavapipe, and a model needs only its own weight types), then kept.
    const Pipeline& get(const std::string& name);
    bool has(const std::string& name) const { return modules_.count(name) != 0; }

    VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;

private:
    struct Module {
        const uint32_t* words;
        size_t n_words;
        Reflection refl;
    };
    Context& ctx_;
    VkPipelineCache cache_ = VK_NULL_HANDLE;
    std::map<std::string, Module> modules_;
    std::map<std::string, Pipeline> built_;
};

}  // namespace minerva::vk
