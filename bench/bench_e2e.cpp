// minerva-bench e2e: end-to-end prompt processing and generation speed of one model, the way
// llama-bench measures them: pp = one forward pass over n_prompt tokens from an empty cache;
// tg = n_gen single-token forward passes (greedy argmax of each) after that prompt. Each run
// starts from an empty cache; the figure is the median of the runs.
#include <algorithm>
#include <cinttypes>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/cli.h"
#include "minerva/minerva.h"

namespace minerva::cli {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cmd_e2e(int argc, char** argv) {
    Args a(argc, argv, {"-m|--model", "-t|--threads", "-p|--n-prompt", "-n|--n-gen", "--device", "--reps", "-b|--batch-size", "--depth",
                        "-ctk|--cache-type-k", "-ctv|--cache-type-v"},
           {"--json", "--kv-f32", "-h|--help"});
    if (a.has("--help")) {
        std::puts("usage: minerva-bench e2e -m MODEL [-t THREADS] [-p 128] [-n 64] [--depth 0] [--device D] [--reps 3] [-ctk T] [-ctv T] [--json]\n"
                  "prompt (pp) and generation (tg) tokens/s, median of the runs; with --depth D a context of D\n"
                  "tokens is evaluated first (once, not timed) and pp and tg are measured after it.\n"
                  "With --json the last line is {\"pp_tps\": X, \"tg_tps\": Y, ...}");
        return 0;
    }
    const int n_prompt = static_cast<int>(a.get_int("-p", 128));
    const int n_gen = static_cast<int>(a.get_int("-n", 64));
    const int reps = static_cast<int>(a.get_int("--reps", 3));
    const int depth = static_cast<int>(a.get_int("--depth", 0));
    if (n_prompt < 1 || n_gen < 1 || reps < 1) throw Error("-p, -n and --reps must be at least 1");
    if (depth < 0) throw Error("--depth must not be negative");

    ModelOptions mo = model_options(a);  // --device and -t, checked
    const int n_batch = static_cast<int>(a.get_int("-b", std::max(n_prompt, 1), 1, 1 << 24));
    SessionOptions cache;  // the cache types, checked before loading
    read_cache_types(a, cache);
    const auto t_load = Clock::now();
    auto model = Model::load(a.require("-m"), mo);
    const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
    const ModelInfo& info = model->info();

    SessionOptions so;
    so.n_ctx = depth + n_prompt + n_gen;
    so.n_batch = n_batch;
    so.kv_type_k = cache.kv_type_k;
    so.kv_type_v = cache.kv_type_v;
    Session session(model, so);

    // A fixed, non-degenerate prompt: ids spread over the vocabulary (BOS first when there is one).
    // The depth context comes first and is evaluated once; every run starts from it.
    std::vector<int32_t> all(static_cast<size_t>(depth + n_prompt));
    const int32_t bos = model->vocab()->bos();
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>((1009LL * static_cast<int64_t>(i + 1) + 7) % info.n_vocab);
    if (bos >= 0) all[0] = bos;
    const std::vector<int32_t> context(all.begin(), all.begin() + depth), prompt(all.begin() + depth, all.end());
    if (depth > 0) session.eval(context);

    std::vector<double> pp, tg;
    for (int r = 0; r < reps + 1; ++r) {  // run 0 warms up caches and page-ins; not counted
        session.truncate(0, depth);
        const auto t0 = Clock::now();
        auto logits = session.eval(prompt);
        const auto t1 = Clock::now();
        for (int i = 0; i < n_gen; ++i) {
            const int32_t tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            logits = session.eval(std::span<const int32_t>(&tok, 1));
        }
        const auto t2 = Clock::now();
        if (r == 0) continue;
        pp.push_back(n_prompt / std::chrono::duration<double>(t1 - t0).count());
        tg.push_back(n_gen / std::chrono::duration<double>(t2 - t1).count());
    }
    const double pp_tps = median(pp), tg_tps = median(tg);
    // Decode reads every weight once per token: bytes of weights / time per token. With experts
    // it reads only the chosen ones: the expert tensors count k/E of their bytes (the router and
    // everything else in full).
    const double weight_gb = static_cast<double>(info.file_size) / 1e9;
    double active_gb = weight_gb;
    int64_t n_expert = 0, n_expert_used = 0;
    {
        const gguf::File f = gguf::File::open(info.path);
        const std::string arch(f.get_string("general.architecture", ""));
        n_expert = f.get_int(arch + ".expert_count", 0);
        n_expert_used = f.get_int(arch + ".expert_used_count", 0);
        if (n_expert > 0 && n_expert_used > 0 && n_expert_used <= n_expert) {
            uint64_t exp_bytes = 0;
            for (const auto& t : f.tensors())
                if (t.name.find("_exps.") != std::string::npos) exp_bytes += t.nbytes;
            active_gb = (static_cast<double>(info.file_size) -
                         static_cast<double>(exp_bytes) * (1.0 - static_cast<double>(n_expert_used) / n_expert)) / 1e9;
        }
    }
    std::printf("model      %s (%s, %.1f M params, %.1f MB)\n", info.name.c_str(),
                std::string(dtype_name(info.weight_type)).c_str(), info.n_params / 1e6, info.file_size / 1e6);
    std::printf("backend    %s (load %.2f s)\n", model->backend_name().c_str(), load_s);
    if (depth > 0) std::printf("depth      %d tokens of context before each run\n", depth);
    std::printf("pp%-4d     %10.2f tokens/s  (median of %d)\n", n_prompt, pp_tps, reps);
    if (n_expert > 0)
        std::printf("tg%-4d     %10.2f tokens/s  (median of %d; ~%.1f GB/s of the weights read: %" PRId64 " of %" PRId64
                    " experts, %.2f of %.2f GB)\n",
                    n_gen, tg_tps, reps, tg_tps * active_gb, n_expert_used, n_expert, active_gb, weight_gb);
    else
        std::printf("tg%-4d     %10.2f tokens/s  (median of %d; ~%.1f GB/s of weights)\n", n_gen, tg_tps, reps,
                    tg_tps * weight_gb);
    if (a.has("--json")) {
        nlohmann::json j = {{"model", info.name},
                            {"path", info.path},
                            {"type", std::string(dtype_name(info.weight_type))},
                            {"backend", model->backend_name()},
                            {"n_prompt", n_prompt},
                            {"n_gen", n_gen},
                            {"depth", depth},
                            {"cache_type_k", kv_type_name(so.kv_type_k)},
                            {"cache_type_v", kv_type_name(so.kv_type_v)},
                            {"reps", reps},
                            {"pp_tps", pp_tps},
                            {"tg_tps", tg_tps},
                            {"pp_runs", pp},
                            {"tg_runs", tg},
                            {"tg_weight_gbps", tg_tps * weight_gb},
                            {"active_weight_gb", active_gb},
                            {"tg_active_gbps", tg_tps * active_gb}};
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

Registrar reg_e2e("e2e", "end-to-end prompt and generation tokens/s (median of runs)", cmd_e2e);

}  // namespace
}  // namespace minerva::cli
