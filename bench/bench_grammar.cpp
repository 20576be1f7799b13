// minerva-bench grammar: the cost of grammar-constrained sampling per token (the mask: find the
// allowed tokens of the state and ban the rest in the logits, plus advancing by the chosen token)
// on real vocabularies and JSON schemas of several shapes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "minerva/error.h"
#include "minerva/grammar.h"
#include "minerva/vocab.h"
#include "tools/cli.h"

namespace minerva::cli {
namespace {

constexpr const char* kHelp =
    "usage: minerva-bench grammar [-m VOCAB.gguf]... [--runs N] [--tokens N] [--seed S]\n"
    "\n"
    "For each vocabulary (default: $MINERVA_SHARED/vocab/ggml-vocab-{llama-spm,llama-bpe,qwen2}.gguf:\n"
    "32k, 128k and 152k tokens) and each built-in JSON schema, runs --runs (default 20) random\n"
    "generations of at most --tokens (default 256) tokens through one shared constraint, as a\n"
    "server does for repeated requests with one schema. A step picks a random allowed token (half\n"
    "the time one holding JSON punctuation, so values end); what is timed per token is the mask\n"
    "(GrammarMatcher::apply on a logits vector) and accept(). Reports mean and p99 per token over\n"
    "the first generation (cold: every state is new) and over all generations, in microseconds of\n"
    "wall time, and over all generations in CPU time of the thread (the same work without the\n"
    "waits for a core that a shared machine adds to the wall time).\n";

struct Schema {
    const char* name;
    const char* json;
};

const Schema kSchemas[] = {
    {"flat-object", R"({"type":"object","properties":{"name":{"type":"string","maxLength":24},"age":{"type":"integer","minimum":0,"maximum":120},"email":{"type":"string","format":"email"},"active":{"type":"boolean"}},"required":["name","age","email","active"]})"},
    {"nested-array", R"({"type":"object","properties":{"items":{"type":"array","maxItems":6,"items":{"type":"object","properties":{"id":{"type":"integer"},"tags":{"type":"array","items":{"type":"string","maxLength":10},"maxItems":3},"price":{"type":"number","minimum":0,"maximum":1000}},"required":["id","tags","price"]}}},"required":["items"]})"},
    {"enums-anyof", R"({"type":"object","properties":{"color":{"enum":["red","green","blue"]},"size":{"anyOf":[{"type":"integer","minimum":1,"maximum":9},{"const":"large"}]},"when":{"type":"string","format":"date-time"},"id":{"type":"string","format":"uuid"}},"required":["color","size","when","id"]})"},
    {"free-text", R"({"type":"object","properties":{"title":{"type":"string"},"body":{"type":"string"}},"required":["title","body"]})"},
    {"json-object", R"({"type":"object"})"},
};

double micros(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
// CPU time of this thread: on a shared machine the wall time also counts the waits for a core.
double cpu_micros() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Stats {
    double mean = 0, p99 = 0, max = 0;
    size_t n = 0;
};
Stats stats(std::vector<double> v) {
    Stats s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) sum += x;
    s.n = v.size();
    s.mean = sum / static_cast<double>(v.size());
    s.p99 = v[std::min(v.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(v.size())))];
    s.max = v.back();
    return s;
}

int cmd_bench_grammar(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
            std::fputs(kHelp, stdout);
            return 0;
        }
    // -m may repeat: collect them by hand, then parse the rest.
    std::vector<std::string> vocabs;
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if ((a == "-m" || a == "--model") && i + 1 < argc) vocabs.emplace_back(argv[++i]);
        else rest.push_back(argv[i]);
    }
    Args args(static_cast<int>(rest.size()), rest.data(), {"--runs", "--tokens", "--seed"});
    const int runs = static_cast<int>(args.get_int("--runs", 20));
    const int max_tokens = static_cast<int>(args.get_int("--tokens", 256));
    const uint64_t seed = static_cast<uint64_t>(args.get_int("--seed", 1));
    if (runs < 1 || max_tokens < 1) throw Error("--runs and --tokens must be at least 1");
    if (vocabs.empty()) {
        const char* s = std::getenv("MINERVA_SHARED");
        const std::string dir = std::string(s ? s : "../shared") + "/vocab/ggml-vocab-";
        vocabs = {dir + "llama-spm.gguf", dir + "llama-bpe.gguf", dir + "qwen2.gguf"};
    }

    std::printf("%-10s %7s %-13s %8s | %9s %9s | %9s %9s %9s | %8s %8s | %6s\n", "vocab", "tokens", "schema", "bind ms", "cold mean",
                "cold p99", "mean us", "p99 us", "max us", "cpu mean", "cpu p99", "steps");
    for (const std::string& path : vocabs) {
        auto vocab = Vocab::load(path);
        std::string vname = path.substr(path.rfind('/') + 1);
        if (vname.rfind("ggml-vocab-", 0) == 0) vname = vname.substr(11);
        if (vname.size() > 5 && vname.compare(vname.size() - 5, 5, ".gguf") == 0) vname.resize(vname.size() - 5);
        const int n_vocab = vocab->n_tokens();
        std::vector<std::string> pieces(static_cast<size_t>(n_vocab));
        std::vector<bool> punct(static_cast<size_t>(n_vocab));
        for (int32_t t = 0; t < n_vocab; ++t) {
            pieces[size_t(t)] = vocab->token_to_piece(t, false);
            punct[size_t(t)] = pieces[size_t(t)].find_first_of("\"}],") != std::string::npos;
        }
        for (const Schema& sc : kSchemas) {
            auto grammar = Grammar::from_json_schema(sc.json);
            const auto b0 = std::chrono::steady_clock::now();
            auto constraint = GrammarConstraint::create(grammar, vocab);
            const double bind_ms = micros(std::chrono::steady_clock::now() - b0) / 1000;
            std::mt19937_64 rng(seed);
            std::vector<float> logits(static_cast<size_t>(n_vocab));
            std::vector<double> cold, all, cpu;
            std::vector<int32_t> ids, closing;
            for (int run = 0; run < runs; ++run) {
                GrammarMatcher m(constraint);
                for (int step = 0; step < max_tokens; ++step) {
                    if (m.must_end()) break;
                    std::fill(logits.begin(), logits.end(), 0.f);
                    const double c0 = cpu_micros();
                    const auto t0 = std::chrono::steady_clock::now();
                    m.apply(logits);
                    const double t_mask = micros(std::chrono::steady_clock::now() - t0);
                    const double c_mask = cpu_micros() - c0;
                    // choose (not timed)
                    ids.clear();
                    closing.clear();
                    bool end_ok = false;
                    for (int32_t t = 0; t < n_vocab; ++t)
                        if (logits[size_t(t)] == 0.f) {
                            if (vocab->is_eog(t)) end_ok = true;
                            else {
                                ids.push_back(t);
                                if (punct[size_t(t)]) closing.push_back(t);
                            }
                        }
                    if (end_ok && (ids.empty() || rng() % 4 == 0)) break;
                    if (ids.empty()) throw Error("grammar dead end in " + std::string(sc.name));
                    if (!closing.empty() && rng() % 2) ids.swap(closing);
                    const int32_t tok = ids[rng() % ids.size()];
                    const double c1 = cpu_micros();
                    const auto t1 = std::chrono::steady_clock::now();
                    if (!m.accept(tok)) throw Error("the grammar refused a token its mask allowed");
                    const double t = t_mask + micros(std::chrono::steady_clock::now() - t1);
                    cpu.push_back(c_mask + cpu_micros() - c1);
                    if (run == 0) cold.push_back(t);
                    all.push_back(t);
                }
            }
            const Stats c = stats(cold), a = stats(all), u = stats(cpu);
            std::printf("%-10s %7d %-13s %8.1f | %9.1f %9.1f | %9.1f %9.1f %9.1f | %8.1f %8.1f | %6zu\n", vname.c_str(), n_vocab, sc.name,
                        bind_ms, c.mean, c.p99, a.mean, a.p99, a.max, u.mean, u.p99, a.n);
            std::fflush(stdout);
        }
    }
    return 0;
}

const Registrar reg("grammar", "grammar-constrained sampling: mask time per token (mean, p99) per vocabulary and schema",
                    cmd_bench_grammar);

}  // namespace
}  // namespace minerva::cli
