#include "minerva/minerva.h"

#include <spdlog/spdlog.h>

namespace minerva {

const char* version() { return "0.1.0"; }

void set_log_level(const std::string& level) {
    auto l = spdlog::level::from_str(level);
    if (level != "off" && l == spdlog::level::off) throw Error("unknown log level '" + level + "'");
    spdlog::set_level(l);
}

}  // namespace minerva
