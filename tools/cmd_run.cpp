// minerva run: generate a continuation of a prompt, streamed to stdout.
#include <algorithm>
#include <cstdio>
#include <string>

#include "cli.h"
#include "minerva/minerva.h"

namespace minerva::cli {
namespace {

const char* kRunHelp =
    "usage: minerva run -m MODEL (-p TEXT | -f FILE) [options]\n"
    "  -m, --model PATH        GGUF model\n"
    "  -p, --prompt TEXT       prompt text (tokenized with BOS)\n"
    "  -f, --file FILE         read the prompt from FILE ('-' = stdin)\n"
    "  -n, --n-predict N       tokens to generate (default 128; -1 = until the context is full)\n"
    "  -c, --ctx-size N        context size (default: min(trained, 4096))\n"
    "  -t, --threads N         CPU threads (default: physical cores)\n"
    "  --temp T                temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K               top-k (default 40; 0 = off)\n"
    "  --top-p P               top-p (default 0.95; 1 = off)\n"
    "  --min-p P               min-p (default 0.05; 0 = off)\n"
    "  --repeat-penalty R      repetition penalty (default 1.0 = off)\n"
    "  --repeat-last-n N       penalty window (default 64)\n"
    "  --presence-penalty P    (default 0)\n"
    "  --frequency-penalty P   (default 0)\n"
    "  --seed S                RNG seed (default: random)\n"
    "  --ignore-eos            do not stop at end-of-generation tokens\n"
    "  --ids                   print generated token ids (space separated) instead of text\n"
    "  --kv-f32                keep the KV cache in f32 (same as -ctk f32 -ctv f32)\n"
    "  --device D              auto, cpu, vulkan, vulkan:N\n"
    "%s"
    "Ctrl-C stops generation and prints the statistics (exit status 130); a second Ctrl-C ends at once.\n";

int cmd_run(int argc, char** argv) {
    Args a(argc, argv,
           {"-m|--model", "-p|--prompt", "-f|--file", "-n|--n-predict", "-c|--ctx-size", "-t|--threads", "--temp",
            "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n", "--presence-penalty",
            "--frequency-penalty", "--seed", "--device", "-ctk|--cache-type-k", "-ctv|--cache-type-v"},
           {"--ids", "--ignore-eos", "--kv-f32", "-h|--help"});
    if (a.has("--help")) {
        std::printf(kRunHelp, kCacheTypeHelp);
        return 0;
    }
    if (a.has("-p") == a.has("-f")) throw Error("give the prompt with exactly one of -p TEXT or -f FILE");
    // Every option is checked before the model loads.
    GenerateParams gp;
    gp.max_tokens = static_cast<int>(a.get_int("-n", 128, -1, 1 << 24));
    gp.ignore_eos = a.has("--ignore-eos");
    read_sampling(a, gp.sampling);
    const int n_ctx = static_cast<int>(a.get_int("-c", 0, 0, 1 << 24));
    SessionOptions cache;  // the cache types, checked before loading
    read_cache_types(a, cache);
    model_options(a);
    a.require("-m");
    const std::string text = a.has("-p") ? *a.get("-p") : read_file(*a.get("-f"));

    catch_interrupt();  // Ctrl-C cancels loading, or stops generation and prints the statistics
    auto model = load_model(a);

    std::vector<int32_t> prompt = model->vocab()->tokenize(text, true, false);
    if (prompt.empty()) throw Error("the prompt has no tokens");

    SessionOptions so;
    so.n_ctx = n_ctx;
    so.kv_type_k = cache.kv_type_k;
    so.kv_type_v = cache.kv_type_v;
    // Scratch for the prompt's batch, no larger: activations are n_batch columns wide.
    so.n_batch = static_cast<int>(std::min<size_t>(prompt.size(), 512));
    Session session(model, so);
    if (static_cast<int>(prompt.size()) >= session.n_ctx())
        throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, which leaves no room in the context of " +
                    std::to_string(session.n_ctx()) + " (use -c)");

    const bool ids = a.has("--ids");
    bool first = true;
    GenerateResult r = generate(session, prompt, gp, [&](int32_t tok, std::string_view piece) {
        if (ids) {
            if (tok >= 0) std::printf(first ? "%d" : " %d", tok), first = false;
        } else {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
        }
        std::fflush(stdout);
        return !interrupted();
    });
    std::printf("\n");
    std::fflush(stdout);
    const bool stopped = r.finish_reason == "cancelled";
    if (quiet()) return stopped ? 130 : 0;
    const size_t n_gen = r.tokens.size();
    std::fprintf(stderr, "\n%s on %s, n_ctx %d, KV cache %.1f MiB (K %s, V %s: %.1f KiB per token)\n",
                 model->info().name.c_str(), model->backend_name().c_str(), session.n_ctx(), session.kv_bytes() / 1048576.0,
                 kv_type_name(so.kv_type_k), kv_type_name(so.kv_type_v), session.kv_bytes_per_token() / 1024.0);
    std::fprintf(stderr, "prompt: %d tokens in %.3f s = %.2f tokens/s\n", r.n_prompt - r.n_cached, r.prompt_seconds,
                 r.prompt_seconds > 0 ? (r.n_prompt - r.n_cached) / r.prompt_seconds : 0.0);
    // The first generated token comes from the prompt's logits; n_gen - 1 forward passes follow.
    const double gen_tps = r.gen_seconds > 0 && n_gen > 1 ? static_cast<double>(n_gen - 1) / r.gen_seconds : 0.0;
    std::fprintf(stderr, "generation: %zu tokens in %.3f s = %.2f tokens/s (finish: %s)\n", n_gen, r.gen_seconds, gen_tps,
                 stopped ? "interrupted" : r.finish_reason.c_str());
    return stopped ? 130 : 0;  // 128 + SIGINT, as a shell reports a program Ctrl-C ended
}

Registrar reg_run("run", "generate text from a prompt (streams to stdout)", cmd_run);

}  // namespace
}  // namespace minerva::cli
