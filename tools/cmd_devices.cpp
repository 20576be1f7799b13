// `minerva devices`: the Vulkan devices Minerva can use, with memory and features. Public API
// only (minerva/devices.h).
#include <cstdio>
#include <string>

#include "cli.h"
#include "minerva/devices.h"

namespace {

std::string gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
    return buf;
}

int cmd_devices(int argc, char** argv) {
    minerva::cli::Args args(argc, argv, {}, {"-h|--help"});
    if (args.has("--help")) {
        std::printf("usage: minerva devices\n\nLists the Vulkan devices; N in --device vulkan:N is the index shown.\n"
                    "--device vulkan picks the one marked default (discrete, then integrated, virtual, CPU);\n"
                    "the default device (--device auto) uses the CPU backend when only CPU-type Vulkan devices exist.\n");
        return 0;
    }
    auto devs = minerva::list_devices();
    if (devs.empty()) {
        std::printf("no Vulkan devices (no Vulkan driver installed, or none reports a device); the CPU backend is used\n");
        return 0;
    }
    for (const auto& d : devs) {
        std::printf("vulkan:%d  %s%s\n", d.index, d.name.c_str(), d.is_default ? "  (default for --device vulkan)" : "");
        std::printf("    type:      %s%s\n", d.type.c_str(), d.usable ? "" : "  (not usable: needs Vulkan 1.2 and a compute queue)");
        std::printf("    api:       Vulkan %s, %s\n", d.api_version.c_str(), d.driver.c_str());
        std::printf("    memory:    %s device-local", gib(d.device_local_bytes).c_str());
        if (d.budget_bytes) std::printf(", %s available (VK_EXT_memory_budget)", gib(d.budget_bytes).c_str());
        std::printf("\n");
        std::printf("    subgroup:  %u lanes, arithmetic %s\n", d.subgroup_size, d.subgroup_arithmetic ? "yes" : "no");
        std::printf("    features:  fp16 %s, int8 dot product %s, cooperative matrix %s\n", d.fp16 ? "yes" : "no",
                    d.int8_dot ? "yes" : "no", d.cooperative_matrix ? "yes" : "no");
    }
    return 0;
}

minerva::cli::Registrar reg("devices", "list Vulkan devices with memory and features", cmd_devices);

}  // namespace
