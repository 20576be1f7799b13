// minerva synth: write a GGUF of any supported architecture with seeded random weights (tests,
// benchmarks).
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "minerva/minerva.h"
#include "minerva/quantize.h"

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
    return s;
}

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: minerva synth (--shape NAME | --dims n_embd,n_layer,n_head,n_head_kv,n_ff,n_vocab) [--arch ARCH]\n"
                 "                     --type TYPE --vocab-from VOCAB.gguf [--seed S] [--ctx N] [-t THREADS] OUT.gguf\n"
                 "       with --dims: [--head-dim N] [--experts N_EXPERT,N_USED[,N_FF_EXP]] [--tied]\n"
                 "  shapes: %s\n"
                 "  architectures: %s (--arch overrides the shape's own; --dims defaults to llama)\n"
                 "  The vocabulary file's tokenizer.* metadata is copied and its token count is n_vocab\n"
                 "  (a shape's different n_vocab is overridden, with a log line; n_vocab 0 in --dims means: from the file).\n",
                 join(minerva::synth_shape_names()).c_str(), join(minerva::synth_arch_names()).c_str());
}

std::vector<long long> parse_ints(const std::string& opt, const std::string& s) {
    std::vector<long long> v;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) {
        try {
            size_t used = 0;
            long long x = std::stoll(item, &used);
            if (used != item.size()) throw std::invalid_argument("trailing");
            v.push_back(x);
        } catch (const std::exception&) {
            throw minerva::Error(opt + ": '" + item + "' is not an integer");
        }
    }
    return v;
}

std::vector<long long> parse_dims(const std::string& s) {
    auto v = parse_ints("--dims", s);
    if (v.size() != 6)
        throw minerva::Error("--dims expects 6 comma-separated integers n_embd,n_layer,n_head,n_head_kv,n_ff,n_vocab, got '" + s + "'");
    return v;
}

int cmd_synth(int argc, char** argv) {
    minerva::cli::Args args(argc, argv, {"--shape", "--dims", "--arch", "--head-dim", "--experts", "--type", "--vocab-from", "--seed",
                             "--ctx", "-t|--threads"},
                            {"--tied", "-h|--help"}, 1);
    if (args.has("--help")) {
        usage(stdout);
        return 0;
    }
    const auto& pos = args.positional();
    if (pos.size() != 1) {
        usage(stderr);
        throw minerva::Error("expected one output file, got " + std::to_string(pos.size()) + " arguments");
    }
    minerva::SynthOptions opt;
    opt.out_path = pos[0];
    if (args.has("--shape") == args.has("--dims")) {
        usage(stderr);
        throw minerva::Error("give exactly one of --shape and --dims");
    }
    if (args.has("--arch")) {
        opt.arch = args.require("--arch");
        const auto archs = minerva::synth_arch_names();
        if (std::find(archs.begin(), archs.end(), opt.arch) == archs.end())
            throw minerva::Error("unknown architecture '" + opt.arch + "' (known: " + join(archs) + ")");
    }
    if (args.has("--shape")) {
        opt.shape = args.require("--shape");
        if (!minerva::synth_shape(opt.shape))
            throw minerva::Error("unknown shape '" + opt.shape + "' (known: " + join(minerva::synth_shape_names()) + ")");
        for (const char* o : {"--head-dim", "--experts", "--tied"})
            if (args.has(o)) throw minerva::Error(std::string(o) + " applies to --dims only (a shape fixes it)");
    } else {
        auto d = parse_dims(args.require("--dims"));
        opt.dims.n_embd = d[0], opt.dims.n_layer = d[1], opt.dims.n_head = d[2];
        opt.dims.n_head_kv = d[3], opt.dims.n_ff = d[4], opt.dims.n_vocab = d[5];
        opt.dims.head_dim = args.get_int("--head-dim", 0);
        if (args.has("--experts")) {
            auto e = parse_ints("--experts", args.require("--experts"));
            if (e.size() != 2 && e.size() != 3)
                throw minerva::Error("--experts expects N_EXPERT,N_USED[,N_FF_EXP], got '" + args.require("--experts") + "'");
            opt.dims.n_expert = e[0], opt.dims.n_expert_used = e[1], opt.dims.n_ff_exp = e.size() == 3 ? e[2] : 0;
        }
        opt.dims.tied_output = args.has("--tied");
    }
    if (args.has("--ctx")) {
        if (!opt.shape.empty()) throw minerva::Error("--ctx applies to --dims only");
        opt.dims.n_ctx = args.get_int("--ctx", 2048, 1, 1 << 24);
    }
    opt.type = args.require("--type");
    if (!minerva::parse_quant_target(opt.type)) throw minerva::Error("unknown type '" + opt.type + "'");
    opt.vocab_from = args.require("--vocab-from");
    opt.seed = args.get_u64("--seed", 1);
    opt.n_threads = static_cast<int>(args.get_int("-t", 0, 0, 1024));
    minerva::cli::catch_interrupt();  // Ctrl-C cancels (the temporary output file is removed)
    minerva::cli::Progress progress("writing " + opt.out_path);
    opt.progress = progress.callback();
    minerva::synth_file(opt);
    return 0;
}

minerva::cli::Registrar reg("synth", "write a GGUF of any supported architecture with seeded random weights", cmd_synth);

}  // namespace
