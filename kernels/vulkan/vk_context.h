// kernels/vulkan/vk_context.h: the Vulkan instance, the choice of physical device and the
// logical device with its compute queue. Everything that talks to the driver about *which*
// device lives here; memory, pipelines and ops live in vk_backend / vk_pipelines.
#pragma once
#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "minerva/devices.h"

namespace minerva::vk {

// Throws minerva::Error naming the call when r is not VK_SUCCESS.
void check(VkResult r, const char* what);

// One VkInstance (with the validation layer when MINERVA_VK_VALIDATION=1 and it is installed).
class Instance {
public:
    // nullptr when there is no Vulkan loader/driver at all.
    static std::shared_ptr<Instance> create();
    ~Instance();
    VkInstance get() const { return instance_; }
    bool validation() const { return validation_; }
    std::vector<VkPhysicalDevice> physical_devices() const;

private:
    VkInstance instance_ = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
    bool validation_ = false;
};

// What we need to know about a physical device, read once.
struct PhysicalInfo {
    VkPhysicalDevice handle = VK_NULL_HANDLE;
    VkPhysicalDeviceProperties props{};
    VkPhysicalDeviceMemoryProperties mem{};
    std::vector<std::string> extensions;
    uint32_t compute_family = UINT32_MAX;
    bool timestamps = false;            // the compute family has valid timestamp bits
    uint32_t subgroup_size = 0;
    bool subgroup_arithmetic = false;   // in compute shaders
    bool subgroup_ballot = false;       // in compute shaders
    bool fp16 = false;
    bool has_ext(const char* name) const;
    int rank() const;                   // 0 discrete, 1 integrated, 2 virtual, 3 cpu, 4 other
    bool usable() const { return compute_family != UINT32_MAX && props.apiVersion >= VK_API_VERSION_1_2; }
};

PhysicalInfo query_physical(VkPhysicalDevice pd);
DeviceInfo describe(const PhysicalInfo& p, int index);

// The logical device. Picks the physical device for a "vulkan" / "vulkan:N" request.
class Context {
public:
    // index < 0: best usable device (discrete, integrated, virtual, cpu). With allow_cpu false
    // and only CPU-type devices, returns nullptr (the CPU backend is faster than lavapipe).
    // No device at all: nullptr unless required, then an Error.
    static std::unique_ptr<Context> create(int index, bool required);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    std::shared_ptr<Instance> instance;
    PhysicalInfo phys;
    VkDevice device = VK_NULL_HANDLE;
    VkQueue queue = VK_NULL_HANDLE;
    bool memory_budget = false;  // VK_EXT_memory_budget enabled

    // Bytes the device-local heaps can still take (budget - usage, or heap sizes without the extension).
    uint64_t device_local_available() const;
    uint32_t find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid = 0) const;

private:
    Context() = default;
};

}  // namespace minerva::vk
