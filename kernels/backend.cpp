// Backend selection: "auto" prefers a Vulkan device and falls back to the CPU.
#include "backend.h"

#include "log/log.h"

#include <cstdlib>

#include "minerva/devices.h"
#include "minerva/error.h"

namespace minerva {

#ifdef MINERVA_HAVE_VULKAN
std::unique_ptr<Backend> make_vulkan_backend(const std::string& device, bool required);
#else
std::vector<DeviceInfo> list_devices() { return {}; }  // built without the Vulkan backend
#endif

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
    std::string dev = opts.device.empty() ? "auto" : opts.device;
    if (dev == "auto")
        if (const char* env = std::getenv("MINERVA_DEVICE"); env && *env) dev = env;
    if (dev == "cpu") return make_cpu_backend(opts.n_threads);
    if (dev == "auto" || dev == "vulkan" || dev.rfind("vulkan:", 0) == 0) {
#ifdef MINERVA_HAVE_VULKAN
        if (auto b = make_vulkan_backend(dev == "auto" ? "vulkan" : dev, dev != "auto")) return b;
#else
        if (dev != "auto") throw Error("this build of minerva has no Vulkan backend (device '" + dev + "')");
#endif
        logging::info("no Vulkan GPU found: using the CPU backend (--device vulkan forces a CPU Vulkan driver such as lavapipe)");
        return make_cpu_backend(opts.n_threads);
    }
    throw Error("unknown device '" + dev + "' (expected cpu, vulkan or vulkan:N)");
}

}  // namespace minerva
