// Writes tests/gguf_builder.h's files to disk: --write-cases DIR (every malformed kind, one file
// each, named after the case) and --write-corpus DIR (the valid seed files for fuzzing).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gguf_builder.h"

namespace fs = std::filesystem;

static void put(const fs::path& p, const std::string& bytes) {
    std::ofstream o(p, std::ios::binary);
    o.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!o) {
        std::fprintf(stderr, "gguf_cases: cannot write %s\n", p.c_str());
        std::exit(1);
    }
}

int main(int argc, char** argv) {
    if (argc != 3 || (std::strcmp(argv[1], "--write-cases") != 0 && std::strcmp(argv[1], "--write-corpus") != 0)) {
        std::fprintf(stderr, "usage: gguf_cases --write-cases DIR | --write-corpus DIR\n");
        return 2;
    }
    fs::path dir = argv[2];
    fs::create_directories(dir);
    size_t n = 0;
    if (!std::strcmp(argv[1], "--write-cases")) {
        for (const auto& c : gguf_test::malformed_cases()) put(dir / (c.name + ".gguf"), c.bytes), ++n;
    } else {
        for (const auto& v : gguf_test::valid_files()) put(dir / (v.name + ".gguf"), v.bytes), ++n;
    }
    std::printf("wrote %zu files to %s\n", n, dir.c_str());
    return 0;
}
