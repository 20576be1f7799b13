// minerva quantize IN OUT TYPE [-t N]: convert a GGUF model's weights to another type.
#include <cstdio>
#include <string>

#include "cli.h"
#include "minerva/minerva.h"
#include "minerva/quantize.h"

namespace {

void usage(FILE* out) {
    std::string types;
    for (const auto& n : minerva::quant_target_names()) types += (types.empty() ? "" : " ") + n;
    std::fprintf(out,
                 "usage: minerva quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
                 "  TYPE: %s\n"
                 "  Input tensors F32/F16/BF16 (quantized ones are re-quantized). Norms and 1-D tensors stay F32;\n"
                 "  Q4_K_M/Q5_K_M promote output, attn_v and ffn_down (llama.cpp's layer rule) to Q6_K.\n",
                 types.c_str());
}

int cmd_quantize(int argc, char** argv) {
    minerva::cli::Args args(argc, argv, {"-t|--threads"}, {"-h|--help"}, 3);
    if (args.has("--help")) {
        usage(stdout);
        return 0;
    }
    const auto& pos = args.positional();
    if (pos.size() != 3) {
        usage(stderr);
        throw minerva::Error("expected IN OUT TYPE, got " + std::to_string(pos.size()) + " arguments");
    }
    long long threads = args.get_int("-t", 0, 0, 1024);
    if (!minerva::parse_quant_target(pos[2])) {
        usage(stderr);
        throw minerva::Error("unknown type '" + pos[2] + "'");
    }
    minerva::cli::catch_interrupt();  // Ctrl-C cancels (the temporary output file is removed)
    minerva::cli::Progress progress("quantizing " + pos[1]);
    minerva::quantize_file(pos[0], pos[1], pos[2], static_cast<int>(threads), progress.callback());
    return 0;
}

minerva::cli::Registrar reg("quantize", "convert a model's weights to another type (Q4_0, Q8_0, Q4_K_M, ...)",
                            cmd_quantize);

}  // namespace
