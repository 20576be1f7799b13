// minerva/devices.h: the compute devices Minerva can use (for `minerva devices` and for
// programs that want to choose one). Listing never throws for a missing driver: no Vulkan
// loader or no device gives an empty list.
#pragma once
#include "minerva/export.h"
#include <cstdint>
#include <string>
#include <vector>

namespace minerva {

struct MINERVA_API DeviceInfo {
    int index = 0;                  // N of --device vulkan:N
    std::string name;               // "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
    std::string type;               // "discrete", "integrated", "virtual", "cpu", "other"
    std::string api_version;        // Vulkan version the driver supports, "1.3.230"
    std::string driver;             // driver name and info
    uint64_t device_local_bytes = 0;   // size of the device-local heaps
    uint64_t budget_bytes = 0;         // what VK_EXT_memory_budget says is available (0 = unknown)
    uint32_t subgroup_size = 0;
    bool subgroup_arithmetic = false;  // compute shaders can use subgroupAdd
    bool fp16 = false;                 // shaderFloat16
    bool int8_dot = false;             // VK_KHR_shader_integer_dot_product
    bool cooperative_matrix = false;   // VK_KHR_cooperative_matrix
    bool usable = false;               // Vulkan 1.2+ with a compute queue
    bool is_default = false;           // what --device vulkan picks
};

// Every Vulkan device in the order vulkan:N numbers them.
MINERVA_API std::vector<DeviceInfo> list_devices();

}  // namespace minerva
