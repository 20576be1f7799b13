// minerva-bench tokenizer: tokenizer throughput (MB/s and tokens/s) on one core.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "minerva/error.h"
#include "minerva/vocab.h"
#include "tools/cli.h"

namespace minerva::cli {
namespace {

constexpr const char* kHelp =
    "usage: minerva-bench tokenizer -m VOCAB [-f FILE] [--size MB] [--runs N]\n"
    "\n"
    "Tokenizes about --size MB (default 1) of text: FILE repeated, or, without -f, the English text\n"
    "$MINERVA_SHARED/text/stories.txt (../shared/text/stories.txt) repeated. Reports the median of\n"
    "--runs runs (default 5) for one call on the whole text and for calls on 4 KiB chunks (each\n"
    "call starts with an empty piece cache, as a server request does), and detokenize.\n";

std::string default_text_path() {
    if (const char* s = std::getenv("MINERVA_SHARED")) return std::string(s) + "/text/stories.txt";
    return "../shared/text/stories.txt";
}

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Timing {
    double wall = 0, cpu = 0;  // medians over the runs
};

// On a busy machine wall time includes waiting for a core; the thread's CPU time does not.
template <typename F>
Timing median_timing(int runs, F&& f) {
    std::vector<double> wall, cpu;
    f();  // warm-up
    for (int i = 0; i < runs; ++i) {
        const double c0 = thread_cpu_seconds();
        const auto a = std::chrono::steady_clock::now();
        f();
        wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
        cpu.push_back(thread_cpu_seconds() - c0);
    }
    std::sort(wall.begin(), wall.end());
    std::sort(cpu.begin(), cpu.end());
    return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void report(const char* what, Timing t, double mb, size_t tokens) {
    std::printf("%-22s wall %7.3f s %8.2f MB/s %10.0f tok/s | cpu %7.3f s %8.2f MB/s %10.0f tok/s\n", what, t.wall,
                mb / t.wall, tokens / t.wall, t.cpu, mb / t.cpu, tokens / t.cpu);
}

int cmd_bench_tokenizer(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
            std::fputs(kHelp, stdout);
            return 0;
        }
    Args args(argc, argv, {"-m|--model", "-f|--file", "--size", "--runs"});
    const std::string model = args.require("-m");
    const std::string path = args.get("-f", default_text_path());
    const double mb = args.get_float("--size", 1.0);
    const int runs = static_cast<int>(args.get_int("--runs", 5));
    if (mb <= 0 || mb > 1024) throw Error("--size must be in (0, 1024] MB");
    if (runs < 1) throw Error("--runs must be at least 1");

    const auto t0 = std::chrono::steady_clock::now();
    auto vocab = Vocab::load(model);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const std::string unit = read_file(path);
    if (unit.empty()) throw Error(path + ": empty text");
    const size_t target = static_cast<size_t>(mb * 1024 * 1024);
    std::string text;
    while (text.size() < target) text += unit;
    const double size_mb = text.size() / (1024.0 * 1024.0);

    std::vector<int32_t> ids;
    const Timing t_whole = median_timing(runs, [&] { ids = vocab->tokenize(text, false, false); });
    const size_t n_ids = ids.size();

    // 4 KiB chunks, cut at a space so words are not split differently from the whole-text run.
    std::vector<std::string_view> chunks;
    for (size_t pos = 0; pos < text.size();) {
        size_t end = std::min(text.size(), pos + 4096);
        if (end < text.size()) {
            const size_t sp = text.rfind(' ', end);
            if (sp != std::string::npos && sp > pos) end = sp;
        }
        chunks.emplace_back(text.data() + pos, end - pos);
        pos = end;
    }
    size_t n_chunk_ids = 0;
    const Timing t_chunks = median_timing(runs, [&] {
        n_chunk_ids = 0;
        for (auto c : chunks) n_chunk_ids += vocab->tokenize(c, false, false).size();
    });
    std::string back;
    const Timing t_detok = median_timing(runs, [&] { back = vocab->detokenize(ids); });
    if (back != text) throw Error("detokenize(tokenize(text)) differs from the text");

    std::printf("vocab %s (%s, pre '%.*s', %d tokens), loaded in %.3f s\n", model.c_str(),
                vocab->kind() == Vocab::Kind::SPM ? "spm" : "bpe", static_cast<int>(vocab->pre_tokenizer().size()),
                vocab->pre_tokenizer().data(), vocab->n_tokens(), load_s);
    std::printf("text %s repeated to %.2f MB, %zu tokens, median of %d runs, 1 thread\n", path.c_str(), size_mb, n_ids, runs);
    report("tokenize (one call)", t_whole, size_mb, n_ids);
    report("tokenize (4 KiB calls)", t_chunks, size_mb, n_chunk_ids);
    report("detokenize", t_detok, size_mb, n_ids);
    return 0;
}

const Registrar reg("tokenizer", "tokenizer throughput (MB/s, tokens/s) on one core", cmd_bench_tokenizer);

}  // namespace
}  // namespace minerva::cli
