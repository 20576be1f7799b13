// log/log.h: the library's internal logging. Messages are formatted with fmt only when their
// level is enabled, then go to the host's callback or to stderr (minerva/log.h). Never stdout.
#pragma once
#include <fmt/format.h>

#include <string>
#include <utility>

#include "minerva/log.h"

namespace minerva::logging {

bool enabled(LogLevel level);
void write(LogLevel level, const std::string& message);

template <class... A>
void log(LogLevel level, fmt::format_string<A...> f, A&&... args) {
    if (enabled(level)) write(level, fmt::format(f, std::forward<A>(args)...));
}
template <class... A>
void trace(fmt::format_string<A...> f, A&&... a) { log(LogLevel::Trace, f, std::forward<A>(a)...); }
template <class... A>
void debug(fmt::format_string<A...> f, A&&... a) { log(LogLevel::Debug, f, std::forward<A>(a)...); }
template <class... A>
void info(fmt::format_string<A...> f, A&&... a) { log(LogLevel::Info, f, std::forward<A>(a)...); }
template <class... A>
void warn(fmt::format_string<A...> f, A&&... a) { log(LogLevel::Warn, f, std::forward<A>(a)...); }
template <class... A>
void error(fmt::format_string<A...> f, A&&... a) { log(LogLevel::Error, f, std::forward<A>(a)...); }

}  // namespace minerva::logging
