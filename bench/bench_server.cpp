// minerva-bench batch: decode-step throughput of Session::eval_batch for 1..N sequences, the
// engine-side ceiling of minerva-serve's continuous batching (bench/server_concurrency.mjs
// measures the same through HTTP).
#include <chrono>
#include <cstdio>
#include <vector>

#include "minerva/minerva.h"
#include "tools/cli.h"

namespace minerva::cli {
namespace {

int cmd_batch(int argc, char** argv) {
    Args a(argc, argv, {"-m|--model", "-t|--threads", "--seqs", "--steps", "--device"}, {"-h|--help"});
    if (a.has("--help")) {
        std::puts("usage: minerva-bench batch -m MODEL [-t THREADS] [--seqs 8] [--steps 100] [--device D]\n"
                  "Times one-token decode steps of 1, 2, 4, ... --seqs sequences batched in one eval_batch.");
        return 0;
    }
    ModelOptions mo = model_options(a);  // --device and -t, checked
    const int max_seqs = static_cast<int>(a.get_int("--seqs", 8, 1, 256));
    const int steps = static_cast<int>(a.get_int("--steps", 100, 1, 1 << 24));
    auto model = Model::load(a.require("-m"), mo);
    SessionOptions so;
    so.n_seq = max_seqs;
    so.n_ctx = steps + 8;
    std::printf("%s on %s: one-token decode steps, %d steps each\n", model->info().name.c_str(),
                model->backend_name().c_str(), steps);
    double base = 0;
    std::vector<int> counts;
    for (int n = 1; n < max_seqs; n *= 2) counts.push_back(n);
    counts.push_back(max_seqs);
    for (int n : counts) {
        Session session(model, so);
        const int32_t tok = model->vocab()->bos() >= 0 ? model->vocab()->bos() : 0;
        std::vector<int32_t> feed(static_cast<size_t>(n), tok);
        auto run = [&] {
            std::vector<Session::BatchItem> items;
            for (int k = 0; k < n; ++k) items.push_back({k, std::span<const int32_t>(&feed[static_cast<size_t>(k)], 1)});
            session.eval_batch(items);
        };
        run();  // warm-up
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < steps; ++i) run();
        double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double tps = steps * n / sec;
        if (n == 1) base = tps;
        std::printf("  %3d sequences: %8.3f ms/step  %9.1f tokens/s  %5.2fx one sequence\n", n, sec / steps * 1e3, tps, tps / base);
    }
    return 0;
}

Registrar reg_batch("batch", "decode throughput of batched sequences (the server's continuous batching)", cmd_batch);

}  // namespace
}  // namespace minerva::cli
