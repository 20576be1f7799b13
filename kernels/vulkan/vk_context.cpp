// kernels/vulkan/vk_context.cpp: instance, device listing and choice, logical device.
// Vulkan create-info structs are written {VK_STRUCTURE_TYPE_...} and zero-fill the rest on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "vulkan/vk_context.h"

#include "log/log.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "minerva/error.h"

namespace minerva::vk {

void check(VkResult r, const char* what) {
    if (r == VK_SUCCESS) return;
    const char* name = "error";
    switch (r) {
        case VK_ERROR_OUT_OF_HOST_MEMORY: name = "VK_ERROR_OUT_OF_HOST_MEMORY"; break;
        case VK_ERROR_OUT_OF_DEVICE_MEMORY: name = "VK_ERROR_OUT_OF_DEVICE_MEMORY (the device ran out of memory)"; break;
        case VK_ERROR_INITIALIZATION_FAILED: name = "VK_ERROR_INITIALIZATION_FAILED"; break;
        case VK_ERROR_DEVICE_LOST: name = "VK_ERROR_DEVICE_LOST (the driver reset the device)"; break;
        case VK_ERROR_LAYER_NOT_PRESENT: name = "VK_ERROR_LAYER_NOT_PRESENT"; break;
        case VK_ERROR_EXTENSION_NOT_PRESENT: name = "VK_ERROR_EXTENSION_NOT_PRESENT"; break;
        case VK_ERROR_FEATURE_NOT_PRESENT: name = "VK_ERROR_FEATURE_NOT_PRESENT"; break;
        case VK_ERROR_INCOMPATIBLE_DRIVER: name = "VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan 1.2 driver)"; break;
        case VK_ERROR_OUT_OF_POOL_MEMORY: name = "VK_ERROR_OUT_OF_POOL_MEMORY"; break;
        default: break;
    }
    throw Error(std::string("vulkan: ") + what + " failed: " + name + " (VkResult " + std::to_string(static_cast<int>(r)) + ")");
}

// ---------------------------------------------------------------- instance

static const char* k_validation_layer = "VK_LAYER_KHRONOS_validation";

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                     VkDebugUtilsMessageTypeFlagsEXT,
                                                     const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
    if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)
        logging::error("vulkan validation: {}", data->pMessage);
    else
        logging::warn("vulkan validation: {}", data->pMessage);
    return VK_FALSE;
}

std::shared_ptr<Instance> Instance::create() {
    const char* env = std::getenv("MINERVA_VK_VALIDATION");
    bool want_validation = env && std::string(env) == "1";
    bool have_layer = false, have_debug_utils = false;
    if (want_validation) {
        uint32_t n = 0;
        if (vkEnumerateInstanceLayerProperties(&n, nullptr) == VK_SUCCESS) {
            std::vector<VkLayerProperties> layers(n);
            vkEnumerateInstanceLayerProperties(&n, layers.data());
            for (const auto& l : layers) have_layer |= std::strcmp(l.layerName, k_validation_layer) == 0;
        }
        uint32_t ne = 0;
        if (vkEnumerateInstanceExtensionProperties(nullptr, &ne, nullptr) == VK_SUCCESS) {
            std::vector<VkExtensionProperties> exts(ne);
            vkEnumerateInstanceExtensionProperties(nullptr, &ne, exts.data());
            for (const auto& e : exts) have_debug_utils |= std::strcmp(e.extensionName, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) == 0;
        }
        if (!have_layer)
            logging::warn("MINERVA_VK_VALIDATION=1 but {} is not installed (Debian: vulkan-validationlayers): running without validation",
                         k_validation_layer);
    }
    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "minerva";
    app.pEngineName = "minerva";
    app.apiVersion = VK_API_VERSION_1_2;
    VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ci.pApplicationInfo = &app;
    std::vector<const char*> layers, exts;
    if (want_validation && have_layer) {
        layers.push_back(k_validation_layer);
        if (have_debug_utils) exts.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    }
    ci.enabledLayerCount = static_cast<uint32_t>(layers.size());
    ci.ppEnabledLayerNames = layers.data();
    ci.enabledExtensionCount = static_cast<uint32_t>(exts.size());
    ci.ppEnabledExtensionNames = exts.data();
    auto inst = std::shared_ptr<Instance>(new Instance());
    VkResult r = vkCreateInstance(&ci, nullptr, &inst->instance_);
    if (r != VK_SUCCESS) {
        inst->instance_ = VK_NULL_HANDLE;
        logging::debug("vkCreateInstance failed ({}): no Vulkan driver", static_cast<int>(r));
        return nullptr;
    }
    inst->validation_ = !layers.empty();
    if (inst->validation_ && have_debug_utils) {
        auto fn = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
            vkGetInstanceProcAddr(inst->instance_, "vkCreateDebugUtilsMessengerEXT"));
        if (fn) {
            VkDebugUtilsMessengerCreateInfoEXT mi{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
            mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
            mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                             VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
            mi.pfnUserCallback = debug_callback;
            fn(inst->instance_, &mi, nullptr, &inst->messenger_);
        }
        logging::info("vulkan: validation layer enabled");
    }
    return inst;
}

Instance::~Instance() {
    if (messenger_) {
        auto fn = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
            vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
        if (fn) fn(instance_, messenger_, nullptr);
    }
    if (instance_) vkDestroyInstance(instance_, nullptr);
}

std::vector<VkPhysicalDevice> Instance::physical_devices() const {
    uint32_t n = 0;
    if (vkEnumeratePhysicalDevices(instance_, &n, nullptr) != VK_SUCCESS || n == 0) return {};
    std::vector<VkPhysicalDevice> v(n);
    if (vkEnumeratePhysicalDevices(instance_, &n, v.data()) != VK_SUCCESS) return {};
    v.resize(n);
    return v;
}

// ---------------------------------------------------------------- physical devices

bool PhysicalInfo::has_ext(const char* name) const {
    return std::find(extensions.begin(), extensions.end(), name) != extensions.end();
}

int PhysicalInfo::rank() const {
    switch (props.deviceType) {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
        case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
        default: return 4;
    }
}

PhysicalInfo query_physical(VkPhysicalDevice pd) {
    PhysicalInfo p;
    p.handle = pd;
    vkGetPhysicalDeviceProperties(pd, &p.props);
    vkGetPhysicalDeviceMemoryProperties(pd, &p.mem);
    uint32_t ne = 0;
    vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, nullptr);
    std::vector<VkExtensionProperties> exts(ne);
    vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, exts.data());
    for (const auto& e : exts) p.extensions.emplace_back(e.extensionName);

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
    std::vector<VkQueueFamilyProperties> qf(nq);
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf.data());
    // Prefer a compute family without graphics (async compute on GPUs), else any with compute.
    for (int pass = 0; pass < 2 && p.compute_family == UINT32_MAX; ++pass)
        for (uint32_t i = 0; i < nq; ++i) {
            bool compute = qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT;
            bool graphics = qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT;
            if (compute && (pass == 1 || !graphics)) {
                p.compute_family = i;
                p.timestamps = qf[i].timestampValidBits > 0 && p.props.limits.timestampPeriod > 0;
                break;
            }
        }

    if (p.props.apiVersion >= VK_API_VERSION_1_1) {
        VkPhysicalDeviceSubgroupProperties sg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
        VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
        p2.pNext = &sg;
        vkGetPhysicalDeviceProperties2(pd, &p2);
        p.subgroup_size = sg.subgroupSize;
        p.subgroup_arithmetic = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                                (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) &&
                                (sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT);
        p.subgroup_ballot = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                            (sg.supportedOperations & VK_SUBGROUP_FEATURE_BALLOT_BIT);
        VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
        VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        if (p.props.apiVersion >= VK_API_VERSION_1_2) {
            f2.pNext = &f12;
            vkGetPhysicalDeviceFeatures2(pd, &f2);
            p.fp16 = f12.shaderFloat16;
        }
    }
    return p;
}

static std::string version_string(uint32_t v) {
    return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
           std::to_string(VK_API_VERSION_PATCH(v));
}

static uint64_t device_local_bytes(const VkPhysicalDeviceMemoryProperties& mem) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < mem.memoryHeapCount; ++i)
        if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) total += mem.memoryHeaps[i].size;
    return total;
}

static uint64_t budget_bytes(const PhysicalInfo& p) {
    if (!p.has_ext(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME)) return 0;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 m2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
    m2.pNext = &b;
    vkGetPhysicalDeviceMemoryProperties2(p.handle, &m2);
    uint64_t total = 0;
    for (uint32_t i = 0; i < m2.memoryProperties.memoryHeapCount; ++i)
        if (m2.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            total += b.heapBudget[i] > b.heapUsage[i] ? b.heapBudget[i] - b.heapUsage[i] : 0;
    return total;
}

DeviceInfo describe(const PhysicalInfo& p, int index) {
    DeviceInfo d;
    d.index = index;
    d.name = p.props.deviceName;
    static const char* types[] = {"other", "integrated", "discrete", "virtual", "cpu"};
    d.type = p.props.deviceType <= VK_PHYSICAL_DEVICE_TYPE_CPU ? types[p.props.deviceType] : "other";
    d.api_version = version_string(p.props.apiVersion);
    d.driver = "driver " + std::to_string(p.props.driverVersion);
    d.device_local_bytes = device_local_bytes(p.mem);
    d.budget_bytes = budget_bytes(p);
    d.subgroup_size = p.subgroup_size;
    d.subgroup_arithmetic = p.subgroup_arithmetic;
    d.fp16 = p.fp16;
    d.int8_dot = p.has_ext("VK_KHR_shader_integer_dot_product") || p.props.apiVersion >= VK_API_VERSION_1_3;
    d.cooperative_matrix = p.has_ext("VK_KHR_cooperative_matrix");
    d.usable = p.usable();
    return d;
}

// Index of the device "vulkan" picks: lowest rank among usable ones, first on ties; -1 if none.
static int best_device(const std::vector<PhysicalInfo>& infos) {
    int best = -1;
    for (size_t i = 0; i < infos.size(); ++i)
        if (infos[i].usable() && (best < 0 || infos[i].rank() < infos[best].rank())) best = static_cast<int>(i);
    return best;
}

}  // namespace minerva::vk

namespace minerva {

std::vector<DeviceInfo> list_devices() {
    std::vector<DeviceInfo> out;
    auto inst = vk::Instance::create();
    if (!inst) return out;
    std::vector<vk::PhysicalInfo> infos;
    for (VkPhysicalDevice pd : inst->physical_devices()) infos.push_back(vk::query_physical(pd));
    int best = vk::best_device(infos);
    for (size_t i = 0; i < infos.size(); ++i) {
        out.push_back(vk::describe(infos[i], static_cast<int>(i)));
        if (infos[i].has_ext("VK_KHR_driver_properties") || infos[i].props.apiVersion >= VK_API_VERSION_1_2) {
            VkPhysicalDeviceDriverProperties dp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
            VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
            p2.pNext = &dp;
            vkGetPhysicalDeviceProperties2(infos[i].handle, &p2);
            out.back().driver = std::string(dp.driverName) + " (" + dp.driverInfo + ")";
        }
        out.back().is_default = static_cast<int>(i) == best;
    }
    return out;
}

}  // namespace minerva

namespace minerva::vk {

std::unique_ptr<Context> Context::create(int index, bool required) {
    auto inst = Instance::create();
    if (!inst) {
        if (required)
            throw Error("no Vulkan driver found: cannot use --device vulkan (install a Vulkan driver; on Debian "
                        "mesa-vulkan-drivers provides the lavapipe CPU device) or use --device cpu");
        return nullptr;
    }
    std::vector<PhysicalInfo> infos;
    for (VkPhysicalDevice pd : inst->physical_devices()) infos.push_back(query_physical(pd));
    int chosen = -1;
    if (index >= 0) {
        if (index >= static_cast<int>(infos.size()))
            throw Error("no Vulkan device " + std::to_string(index) + ": there are " + std::to_string(infos.size()) +
                        " (see `minerva devices`)");
        if (!infos[index].usable())
            throw Error("Vulkan device " + std::to_string(index) + " (" + infos[index].props.deviceName +
                        ") cannot be used: it needs Vulkan 1.2 and a compute queue");
        chosen = index;
    } else {
        chosen = best_device(infos);
        if (chosen < 0) {
            if (required)
                throw Error("no usable Vulkan device (Vulkan 1.2 with a compute queue) found: use --device cpu, or "
                            "install a driver (mesa-vulkan-drivers provides lavapipe)");
            return nullptr;
        }
        if (!required && infos[chosen].rank() >= 3) {
            logging::debug("vulkan: only a CPU Vulkan device ({}) is present; the CPU backend is faster",
                         infos[chosen].props.deviceName);
            return nullptr;
        }
    }

    std::unique_ptr<Context> ctx(new Context());
    ctx->instance = inst;
    ctx->phys = infos[chosen];
    float prio = 1.f;
    VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qi.queueFamilyIndex = ctx->phys.compute_family;
    qi.queueCount = 1;
    qi.pQueuePriorities = &prio;
    std::vector<const char*> exts;
    if (ctx->phys.has_ext(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME)) {
        exts.push_back(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
        ctx->memory_budget = true;
    }
    VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    di.queueCreateInfoCount = 1;
    di.pQueueCreateInfos = &qi;
    di.enabledExtensionCount = static_cast<uint32_t>(exts.size());
    di.ppEnabledExtensionNames = exts.data();
    check(vkCreateDevice(ctx->phys.handle, &di, nullptr, &ctx->device), "vkCreateDevice");
    vkGetDeviceQueue(ctx->device, ctx->phys.compute_family, 0, &ctx->queue);
    return ctx;
}

Context::~Context() {
    if (device) vkDestroyDevice(device, nullptr);
}

uint64_t Context::device_local_available() const {
    if (memory_budget) return budget_bytes(phys);
    return device_local_bytes(phys.mem);
}

uint32_t Context::find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const {
    for (uint32_t i = 0; i < phys.mem.memoryTypeCount; ++i) {
        VkMemoryPropertyFlags f = phys.mem.memoryTypes[i].propertyFlags;
        if ((type_bits & (1u << i)) && (f & want) == want && (f & avoid) == 0) return i;
    }
    return UINT32_MAX;
}

}  // namespace minerva::vk
