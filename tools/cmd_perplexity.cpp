// minerva perplexity: llama.cpp's perplexity definition (see engine/model/generate.cpp, perplexity()).
#include <cstdio>
#include <string>

#include "cli.h"
#include "minerva/minerva.h"

namespace minerva::cli {
namespace {

int cmd_perplexity(int argc, char** argv) {
    Args a(argc, argv, {"-m|--model", "-f|--file", "-c|--ctx-size", "-t|--threads", "--device", "-b|--batch-size",
                        "-ctk|--cache-type-k", "-ctv|--cache-type-v"},
           {"--kv-f32", "-h|--help"});
    if (a.has("--help")) {
        std::puts("usage: minerva perplexity -m MODEL -f TEXT [-c N] [-t N] [-b N] [--device D] [--kv-f32] [-ctk T] [-ctv T]\n"
                  "llama.cpp's definition: chunks of N tokens starting with BOS, the second half of each scored;\n"
                  "the last line is `PPL = <value>`");
        return 0;
    }
    SessionOptions so;
    so.n_ctx = static_cast<int>(a.get_int("-c", 512, 4, 1 << 24));
    so.n_batch = static_cast<int>(a.get_int("-b", so.n_ctx, 1, 1 << 24));
    read_cache_types(a, so);  // checked before loading
    model_options(a);
    a.require("-m");
    const std::string text = read_file(a.require("-f"));
    auto model = load_model(a);
    const Vocab& vocab = *model->vocab();
    std::vector<int32_t> tokens = vocab.tokenize(text, true, false);
    Session session(model, so);
    if (!quiet())
        std::fprintf(stderr, "%s: %zu tokens, %zu chunks of %d\n", model->info().name.c_str(), tokens.size(),
                 tokens.size() / static_cast<size_t>(so.n_ctx), so.n_ctx);
    PerplexityResult r = perplexity(session, tokens, vocab.add_bos() ? vocab.bos() : -1, [](int chunk, double ppl) {
        std::printf("[%d] %.4f\n", chunk + 1, ppl);
        std::fflush(stdout);
    });
    std::printf("chunks = %d, scored tokens = %d, mean NLL = %.6f\n", r.n_chunks, r.n_scored, r.nll);
    std::printf("PPL = %.4f\n", r.ppl);
    return 0;
}

Registrar reg_perplexity("perplexity", "perplexity of a text (llama.cpp's definition)", cmd_perplexity);

}  // namespace
}  // namespace minerva::cli
