// minerva logits: teacher-forced top logits at every prompt position, as JSON (the shape of the
// llama.cpp references in ../shared/reference).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli.h"
#include "minerva/minerva.h"

namespace minerva::cli {
namespace {

int cmd_logits(int argc, char** argv) {
    Args a(argc, argv, {"-m|--model", "-f|--file", "-p|--prompt", "--top", "-t|--threads", "--device", "--kv",
                        "-ctk|--cache-type-k", "-ctv|--cache-type-v"},
           {"-h|--help"});
    if (a.has("--help")) {
        std::puts("usage: minerva logits -m MODEL (-f FILE | -p TEXT) [--top K] [-t N] [--device D] [--kv f16|f32|q8_0|q4_0] [-ctk T] [-ctv T]\n"
                  "prints {\"prompt_tokens\": [...], \"prompt_topK\": [[[id, logit] x K] per position]}\n"
                  "(the prompt is tokenized with BOS; logits are teacher-forced)");
        return 0;
    }
    if (a.has("-p") == a.has("-f")) throw Error("give the prompt with exactly one of -p TEXT or -f FILE");
    const int top = static_cast<int>(a.get_int("--top", 5, 1, 1 << 20));
    SessionOptions so;  // cache types checked before loading
    if (auto kv = a.get("--kv")) so.kv_type_k = so.kv_type_v = parse_kv_type(*kv);  // both K and V
    read_cache_types(a, so);
    model_options(a);
    a.require("-m");
    const std::string text = a.has("-p") ? *a.get("-p") : read_file(*a.get("-f"));
    auto model = load_model(a);
    std::vector<int32_t> tokens = model->vocab()->tokenize(text, true, false);
    if (tokens.empty()) throw Error("the prompt has no tokens");

    so.n_ctx = static_cast<int>(tokens.size());
    Session session(model, so);
    session.eval(tokens, 0, true);
    std::span<const float> all = session.logits();
    const size_t nv = static_cast<size_t>(session.n_vocab());

    nlohmann::json out;
    out["n_vocab"] = nv;
    out["prompt_tokens"] = tokens;
    nlohmann::json rows = nlohmann::json::array();
    std::vector<int32_t> idx(nv);
    const int k = std::min<int>(top, static_cast<int>(nv));
    for (size_t p = 0; p < tokens.size(); ++p) {
        const float* l = all.data() + p * nv;
        for (size_t i = 0; i < nv; ++i) idx[i] = static_cast<int32_t>(i);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                          [&](int32_t x, int32_t y) { return l[x] > l[y] || (l[x] == l[y] && x < y); });
        nlohmann::json row = nlohmann::json::array();
        for (int i = 0; i < k; ++i) row.push_back({idx[static_cast<size_t>(i)], l[idx[static_cast<size_t>(i)]]});
        rows.push_back(std::move(row));
    }
    out["prompt_top" + std::to_string(top)] = std::move(rows);
    std::puts(out.dump().c_str());
    return 0;
}

Registrar reg_logits("logits", "teacher-forced top-K logits of a prompt as JSON", cmd_logits);

}  // namespace
}  // namespace minerva::cli
