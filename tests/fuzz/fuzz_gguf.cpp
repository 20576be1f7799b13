// libFuzzer target for the GGUF reader: parse arbitrary bytes and walk everything the File
// exposes. A minerva::Error is the expected outcome for junk, and its message must start with
// the file's name; any other exception, a crash, a sanitizer report, a hang (-timeout) or an
// allocation beyond -malloc_limit_mb is a finding.
#include <cstdint>
#include <cstring>
#include <string>

#include "minerva/gguf.h"

using namespace minerva;

namespace {
size_t walk_value(const gguf::Value& v) {
    size_t sum = v.to_string(16).size();
    if (v.is_number()) sum += static_cast<size_t>(v.as_float() != 0);
    if (v.type == gguf::ValueType::ARRAY) {
        const gguf::Array& a = v.as_array();
        sum += a.size();
        for (const auto& s : a.strings) sum += s.size() ? static_cast<unsigned char>(s.back()) : 0;
        for (const auto& n : a.nested) sum += walk_value(n);
    }
    return sum;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const char kName[] = "fuzz.gguf";
    try {
        gguf::File f = gguf::File::from_memory(data, size, kName);
        volatile size_t sink = f.version() + f.alignment() + f.data_offset();
        for (const auto& [k, v] : f.metadata()) {
            sink = sink + walk_value(v);
            if (f.find(k) != &v) __builtin_trap();  // keys are unique
        }
        for (const auto& t : f.tensors()) {
            if (f.find_tensor(t.name) != &t) __builtin_trap();  // names are unique
            if (t.n_elements() <= 0 || t.nbytes == 0) __builtin_trap();
            const uint8_t* p = f.tensor_data(t);
            if (p < data || p + t.nbytes > data + size) __builtin_trap();
            sink = sink + p[0] + p[t.nbytes - 1];  // ASan checks both ends are inside the input
        }
        (void)sink;
    } catch (const Error& e) {
        if (std::strncmp(e.what(), kName, sizeof kName - 1) != 0) __builtin_trap();  // must name the file
    }
    return 0;
}
