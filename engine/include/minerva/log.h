// minerva/log.h: where libminerva's diagnostics go. The library never writes to stdout: by
// default each message is one line on stderr ("minerva: warn: ..."); a host application can
// install a callback to redirect the messages (into its own logger, a GUI, nowhere) and set the
// level below which they are dropped.
//
//   minerva::set_log_level(minerva::LogLevel::Warn);
//   minerva::set_log_callback([](minerva::LogLevel l, std::string_view msg) { my_log(l, msg); });
//
// Thread-safety: all functions may be called from any thread. The callback is called with one
// complete message (no trailing newline), never from two threads at once, on the thread that
// logged; it must not call back into set_log_callback.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "minerva/export.h"

namespace minerva {

enum class LogLevel : int { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Off = 5 };

using LogCallback = std::function<void(LogLevel level, std::string_view message)>;

// Installs the callback that receives every message at or above the log level; an empty
// callback restores the default (stderr).
MINERVA_API void set_log_callback(LogCallback callback);

// Messages below level are dropped before they are formatted (default: Info).
MINERVA_API void set_log_level(LogLevel level);
// By name: "trace", "debug", "info", "warn", "error", "off". Throws minerva::Error for others.
MINERVA_API void set_log_level(const std::string& level);
MINERVA_API LogLevel log_level();

// "trace" ... "off"; nullopt for any other name.
MINERVA_API std::optional<LogLevel> parse_log_level(std::string_view name);
MINERVA_API std::string_view log_level_name(LogLevel level);

}  // namespace minerva
