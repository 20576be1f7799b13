// minerva inspect -m FILE: what a GGUF file holds. Header facts, the metadata (long arrays
// summarised), then the tensor table and totals. A malformed file is the reader's Error, which
// main() prints on stderr with exit status 1.
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli.h"
#include "minerva/gguf.h"

namespace {

using namespace minerva;

std::string type_label(const gguf::Value& v) {
    if (v.type != gguf::ValueType::ARRAY) return std::string(gguf::value_type_name(v.type));
    const gguf::Array& a = v.as_array();
    std::string inner = a.elem_type == gguf::ValueType::ARRAY && !a.nested.empty() ? type_label(a.nested[0])
                                                                                   : std::string(gguf::value_type_name(a.elem_type));
    return "array<" + inner + ">[" + std::to_string(a.size()) + "]";
}

std::string shape_string(const gguf::TensorInfo& t) {
    std::string s = "[";
    for (uint32_t d = 0; d < t.n_dims; ++d) {
        if (d) s += ", ";
        s += std::to_string(t.ne[d]);
    }
    return s + "]";
}

nlohmann::json value_json(const gguf::Value& v, size_t max_items) {
    using gguf::ValueType;
    if (auto* u = std::get_if<uint64_t>(&v.data)) return *u;
    if (auto* i = std::get_if<int64_t>(&v.data)) return *i;
    if (auto* d = std::get_if<double>(&v.data)) return *d;
    if (auto* b = std::get_if<bool>(&v.data)) return *b;
    if (auto* s = std::get_if<std::string_view>(&v.data)) return std::string(*s);
    const gguf::Array& a = v.as_array();
    nlohmann::json items = nlohmann::json::array();
    for (size_t k = 0; k < a.size() && k < max_items; ++k) {
        switch (a.elem_type) {
            case ValueType::STRING: items.push_back(std::string(a.strings[k])); break;
            case ValueType::ARRAY: items.push_back(value_json(a.nested[k], max_items)); break;
            case ValueType::FLOAT32: case ValueType::FLOAT64: items.push_back(a.floats[k]); break;
            case ValueType::BOOL: items.push_back(a.ints[k] != 0); break;
            case ValueType::UINT64: items.push_back(static_cast<uint64_t>(a.ints[k])); break;
            default: items.push_back(a.ints[k]);
        }
    }
    return {{"elem_type", gguf::value_type_name(a.elem_type)}, {"count", a.size()}, {"items", items}};
}

int cmd_inspect(int argc, char** argv) {
    cli::Args args(argc, argv, {"-m|--model", "--items"}, {"--no-tensors", "--no-metadata", "--json", "-h|--help"}, 1);
    if (args.has("--help")) {
        std::printf(
            "usage: minerva inspect -m FILE [--no-metadata] [--no-tensors] [--items N] [--json]\n"
            "  Prints the GGUF header, metadata (arrays: the first N items, default 8, and the count)\n"
            "  and the tensor table (name, type, shape, offset, bytes). Exit status 1 on a bad file.\n");
        return 0;
    }
    if (args.has("-m") && !args.positional().empty())
        throw Error("give the file once: -m FILE or FILE, not both");
    std::string path = args.has("-m") ? args.require("-m")
                       : args.positional().size() == 1 ? args.positional()[0]
                                                       : args.require("-m");
    size_t items = static_cast<size_t>(args.get_int("--items", 8, 0, 1 << 30));
    bool show_meta = !args.has("--no-metadata");
    bool show_tensors = !args.has("--no-tensors");

    gguf::File f = gguf::File::open(path);

    uint64_t total_bytes = 0;
    int64_t total_elems = 0;
    for (const auto& t : f.tensors()) {
        total_bytes += t.nbytes;
        total_elems += t.n_elements();
    }

    if (args.has("--json")) {
        nlohmann::json j = {{"file", f.path()},           {"version", f.version()},
                            {"alignment", f.alignment()}, {"file_size", f.file_size()},
                            {"data_offset", f.data_offset()}, {"n_metadata", f.metadata().size()},
                            {"n_tensors", f.tensors().size()}, {"tensor_bytes", total_bytes},
                            {"tensor_elements", total_elems}};
        if (show_meta) {
            nlohmann::json meta = nlohmann::json::array();
            for (const auto& [k, v] : f.metadata())
                meta.push_back({{"key", k}, {"type", type_label(v)}, {"value", value_json(v, items)}});
            j["metadata"] = meta;
        }
        if (show_tensors) {
            nlohmann::json ts = nlohmann::json::array();
            for (const auto& t : f.tensors()) {
                nlohmann::json shape = nlohmann::json::array();
                for (uint32_t d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
                ts.push_back({{"name", t.name}, {"type", dtype_name(t.type)}, {"shape", shape},
                              {"offset", f.data_offset() + t.offset}, {"bytes", t.nbytes}});
            }
            j["tensors"] = ts;
        }
        // Metadata strings need not be UTF-8: invalid bytes become U+FFFD rather than an exception.
        std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        return 0;
    }

    std::printf("file:        %s\n", f.path().c_str());
    std::printf("version:     %u\n", f.version());
    std::printf("alignment:   %" PRIu64 "\n", f.alignment());
    std::printf("file size:   %zu bytes\n", f.file_size());
    std::printf("data offset: %" PRIu64 "\n", f.data_offset());
    std::printf("metadata:    %zu keys\n", f.metadata().size());
    std::printf("tensors:     %zu\n", f.tensors().size());
    if (show_meta) {
        size_t kw = 0, tw = 0;
        for (const auto& [k, v] : f.metadata()) {
            kw = std::max(kw, k.size());
            tw = std::max(tw, type_label(v).size());
        }
        kw = std::min<size_t>(kw, 48);
        std::printf("\nmetadata:\n");
        for (const auto& [k, v] : f.metadata())
            std::printf("  %-*s  %-*s  %s\n", static_cast<int>(kw), k.c_str(), static_cast<int>(tw),
                        type_label(v).c_str(), v.to_string(items).c_str());
    }
    if (show_tensors && !f.tensors().empty()) {
        size_t nw = 4, sw = 5;
        for (const auto& t : f.tensors()) {
            nw = std::max(nw, t.name.size());
            sw = std::max(sw, shape_string(t).size());
        }
        nw = std::min<size_t>(nw, 64);
        std::printf("\ntensors:\n  %5s  %-*s  %-7s  %-*s  %12s  %12s\n", "#", static_cast<int>(nw), "name", "type",
                    static_cast<int>(sw), "shape", "offset", "bytes");
        size_t i = 0;
        for (const auto& t : f.tensors())
            std::printf("  %5zu  %-*s  %-7s  %-*s  %12" PRIu64 "  %12" PRIu64 "\n", i++, static_cast<int>(nw),
                        t.name.c_str(), std::string(dtype_name(t.type)).c_str(), static_cast<int>(sw),
                        shape_string(t).c_str(), f.data_offset() + t.offset, t.nbytes);
    }
    std::printf("\ntotal: %zu tensors, %" PRId64 " elements, %" PRIu64 " bytes (%.2f MiB)\n", f.tensors().size(),
                total_elems, total_bytes, static_cast<double>(total_bytes) / (1024.0 * 1024.0));
    return 0;
}

const cli::Registrar reg("inspect", "show a GGUF file's metadata and tensor table", cmd_inspect);

}  // namespace
