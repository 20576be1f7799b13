// minerva: the command-line tool. Subcommands live in tools/cmd_*.cpp.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "cli.h"
#include "minerva/minerva.h"

static void usage(FILE* out) {
    std::fprintf(out, "usage: minerva <command> [options]   (minerva <command> --help for its options)\n\ncommands:\n");
    auto cmds = minerva::cli::commands();
    std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
    for (const auto& c : cmds) std::fprintf(out, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
}

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        std::printf("minerva %s\n", minerva::version());
        return 0;
    }
    for (const auto& c : minerva::cli::commands()) {
        if (c.name == argv[1]) {
            try {
                return c.fn(argc - 1, argv + 1);
            } catch (const minerva::Error& e) {
                std::fprintf(stderr, "minerva %s: error: %s\n", argv[1], e.what());
                return 1;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "minerva %s: internal error: %s\n", argv[1], e.what());
                return 1;
            }
        }
    }
    std::fprintf(stderr, "minerva: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
