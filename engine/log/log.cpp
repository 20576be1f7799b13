#include "log/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "minerva/error.h"

namespace minerva {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};

// The callback and the lock that keeps two threads from calling it (or stderr) at once.
struct Sink {
    std::mutex mu;
    LogCallback callback;
};
Sink& sink() {
    static Sink* s = new Sink;  // never destroyed: static destructors of other objects may still log
    return *s;
}

constexpr std::string_view kNames[] = {"trace", "debug", "info", "warn", "error", "off"};

}  // namespace

namespace logging {

bool enabled(LogLevel level) {
    return level != LogLevel::Off && static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void write(LogLevel level, const std::string& message) {
    Sink& s = sink();
    std::lock_guard lock(s.mu);
    if (s.callback) {
        s.callback(level, message);
        return;
    }
    std::fprintf(stderr, "minerva: %s: %s\n", kNames[static_cast<int>(level)].data(), message.c_str());
}

}  // namespace logging

void set_log_callback(LogCallback callback) {
    Sink& s = sink();
    std::lock_guard lock(s.mu);
    s.callback = std::move(callback);
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

void set_log_level(const std::string& level) {
    auto l = parse_log_level(level);
    if (!l) throw Error("unknown log level '" + level + "' (expected trace, debug, info, warn, error or off)");
    set_log_level(*l);
}

LogLevel log_level() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

std::optional<LogLevel> parse_log_level(std::string_view name) {
    for (int i = 0; i < 6; ++i)
        if (name == kNames[i]) return static_cast<LogLevel>(i);
    if (name == "warning") return LogLevel::Warn;
    return std::nullopt;
}

std::string_view log_level_name(LogLevel level) {
    int i = static_cast<int>(level);
    return i >= 0 && i < 6 ? kNames[i] : "unknown";
}

}  // namespace minerva
