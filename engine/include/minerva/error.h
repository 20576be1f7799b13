// minerva/error.h: the one error type of the library.
#pragma once
#include "minerva/export.h"
#include <stdexcept>
#include <string>

namespace minerva {

// Thrown for everything that is the caller's or the input's fault: a bad file, a bad request,
// a missing device, an unsupported type. The message says what was wrong and, where it helps,
// what to do. Invariant violations inside the library are asserts, not Errors.
class MINERVA_API Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace minerva
