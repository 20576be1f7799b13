// tests/common.h: helpers shared by the tests.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace minerva::test {

// ../shared, found through MINERVA_SHARED (set by the README's test command). When the variable
// is unset the test is skipped with a message; when MINERVA_REQUIRE_SHARED=1 (CI) a missing
// directory or file is a failure, never a skip.
inline bool require_shared() {
    const char* r = std::getenv("MINERVA_REQUIRE_SHARED");
    return r && std::string(r) == "1";
}

inline std::string shared_dir() {
    const char* s = std::getenv("MINERVA_SHARED");
    return s ? std::string(s) : std::string();
}

// Returns the full path of a file under ../shared, or "" after recording a skip/failure.
// Use as:  std::string p = shared_file("models/x.gguf"); if (p.empty()) return;
inline std::string shared_file(const std::string& rel) {
    std::string dir = shared_dir();
    if (dir.empty()) {
        if (require_shared()) {
            ADD_FAILURE() << "MINERVA_SHARED is not set but MINERVA_REQUIRE_SHARED=1";
        } else {
            GTEST_LOG_(INFO) << "MINERVA_SHARED not set: skipping (set it to the ../shared directory)";
        }
        return "";
    }
    std::string p = dir + "/" + rel;
    if (!std::filesystem::exists(p)) {
        if (require_shared()) ADD_FAILURE() << "missing shared data file " << p;
        return "";
    }
    return p;
}

}  // namespace minerva::test

// Skips the current test (or fails it under MINERVA_REQUIRE_SHARED=1) when the file is missing.
#define MINERVA_SHARED_FILE(var, rel)                                                       \
    std::string var = ::minerva::test::shared_file(rel);                                   \
    if (var.empty()) {                                                                     \
        if (::minerva::test::require_shared()) return;                                     \
        GTEST_SKIP() << "shared data not available: " << rel << " (set MINERVA_SHARED)";   \
    }
