// engine/model/generate.cpp: the generation loop (prefix reuse, sampling, stop conditions, streaming)
// and perplexity, both over the public Session API.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <string>

#include "minerva/error.h"
#include "minerva/model.h"

namespace minerva {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Length of the longest suffix of text that is a proper prefix of some stop string: that much
// text must be held back, as the next token may complete the stop string.
size_t stop_prefix_len(std::string_view text, const std::vector<std::string>& stops) {
    size_t best = 0;
    for (const std::string& s : stops) {
        const size_t max_len = std::min(text.size(), s.size() - 1);
        for (size_t len = max_len; len > best; --len)
            if (text.compare(text.size() - len, len, s, 0, len) == 0) {
                best = len;
                break;
            }
    }
    return best;
}

}  // namespace

GenerateResult generate(Session& session, std::span<const int32_t> prompt, const GenerateParams& params,
                        const TokenCallback& on_token, int seq) {
    if (prompt.empty()) throw Error("generate: the prompt has no tokens");
    const Model& model = session.model();
    const Vocab& vocab = *model.vocab();
    std::vector<std::string> stops;
    for (const std::string& s : params.stop)
        if (!s.empty()) stops.push_back(s);

    GenerateResult res;
    res.n_prompt = static_cast<int>(prompt.size());

    // Reuse the cached common prefix (across a dropped middle, by a shift); at least the last
    // prompt token is evaluated again for its logits.
    const size_t common = static_cast<size_t>(session.reuse_prefix(seq, prompt));
    res.n_cached = static_cast<int>(common);

    const auto t0 = Clock::now();
    std::span<const float> logits = session.eval(prompt.subspan(common), seq);
    res.prompt_seconds = seconds_since(t0);

    Sampler sampler(params.sampling, session.n_vocab());
    // The penalty window looks at the prompt too, as llama.cpp's does.
    sampler.accept_prompt(prompt);

    StreamDecoder decoder(model.vocab());
    size_t emitted = 0;  // bytes of res.text already passed to the callback
    const auto t1 = Clock::now();
    const int room = session.n_ctx() - session.n_past(seq);
    const int max_new = params.max_tokens >= 0 ? params.max_tokens : params.context_shift ? INT32_MAX : room + 1;
    if (params.context_shift && (params.n_keep < 0 || params.n_keep >= session.n_ctx() - 1))
        throw Error("generate: n_keep " + std::to_string(params.n_keep) + " leaves no room to shift the context of " +
                    std::to_string(session.n_ctx()));
    res.finish_reason = "length";
    bool finished = false, stopped_by_string = false;
    for (int i = 0; i < max_new && !finished; ++i) {
        const int32_t tok = sampler.sample(logits);
        if (!params.ignore_eos && vocab.is_eog(tok)) {
            res.finish_reason = "stop";
            break;
        }
        sampler.accept(tok);
        res.tokens.push_back(tok);
        // The grammar is complete and admits nothing more: the answer is whole.
        if (sampler.grammar() && sampler.grammar()->must_end()) {
            res.finish_reason = "stop";
            finished = true;
        }
        const size_t search_from = res.text.size();
        res.text += decoder.push(tok);

        // A stop string completed: cut the text before it and finish.
        size_t cut = std::string::npos;
        for (const std::string& s : stops) {
            const size_t from = search_from >= s.size() ? search_from - s.size() + 1 : 0;
            const size_t at = res.text.find(s, std::max(from, emitted));
            if (at != std::string::npos) cut = std::min(cut, at);
        }
        if (cut != std::string::npos) {
            res.text.resize(cut);
            res.finish_reason = "stop";
            finished = stopped_by_string = true;
        }
        // Emit all but what may still become a stop string.
        // Full context: shift (drop the oldest half after the kept tokens) or stop.
        if (!finished && params.context_shift && session.n_past(seq) >= session.n_ctx()) {
            const int n_keep = std::min(params.n_keep, session.n_past(seq));
            session.shift(seq, n_keep, (session.n_past(seq) - n_keep + 1) / 2);
        }
        const bool last = finished || i + 1 == max_new || session.n_past(seq) >= session.n_ctx();
        const size_t hold = finished ? 0 : stop_prefix_len(std::string_view(res.text).substr(emitted), stops);
        const size_t upto = res.text.size() - hold;
        std::string_view chunk = std::string_view(res.text).substr(emitted, upto - emitted);
        emitted = upto;
        if (on_token && !on_token(tok, chunk)) {
            res.finish_reason = "cancelled";
            break;
        }
        if (last) break;
        logits = session.eval(std::span<const int32_t>(&res.tokens.back(), 1), seq);
    }
    // Held-back bytes (an unfinished character, the start of a stop string that never came)
    // go out in one last call, unless a stop string cut the text or the caller cancelled.
    if (res.finish_reason != "cancelled") {
        if (!stopped_by_string) {
            res.text += decoder.flush();
            for (const std::string& s : stops)
                if (size_t at = res.text.find(s, emitted); at != std::string::npos) {
                    res.text.resize(at);
                    res.finish_reason = "stop";
                }
            if (res.text.size() > emitted && on_token)
                on_token(-1, std::string_view(res.text).substr(emitted));
        }
    }
    res.gen_seconds = seconds_since(t1);
    return res;
}

PerplexityResult perplexity(Session& session, std::span<const int32_t> tokens, int32_t bos,
                            const std::function<void(int chunk, double ppl)>& on_chunk) {
    const int n_ctx = session.n_ctx();
    const size_t n_chunks = tokens.size() / static_cast<size_t>(n_ctx);
    if (n_ctx < 4) throw Error("perplexity: n_ctx must be at least 4");
    if (n_chunks == 0)
        throw Error("perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of n_ctx = " +
                    std::to_string(n_ctx));
    const int first = n_ctx / 2;  // the first half of each chunk is context only
    const size_t nv = static_cast<size_t>(session.n_vocab());
    std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
    double nll = 0;
    PerplexityResult r;
    for (size_t c = 0; c < n_chunks; ++c) {
        std::copy_n(tokens.begin() + static_cast<ptrdiff_t>(c * static_cast<size_t>(n_ctx)), n_ctx, chunk.begin());
        if (bos >= 0) chunk[0] = bos;
        session.clear(0);
        session.eval(chunk, 0, true);
        std::span<const float> all = session.logits();
        for (int j = first; j < n_ctx - 1; ++j) {
            nll -= token_logprob(all.subspan(static_cast<size_t>(j) * nv, nv), chunk[static_cast<size_t>(j) + 1]);
            ++r.n_scored;
        }
        ++r.n_chunks;
        if (on_chunk) on_chunk(static_cast<int>(c), std::exp(nll / r.n_scored));
    }
    session.clear(0);
    r.nll = nll / r.n_scored;
    r.ppl = std::exp(r.nll);
    return r;
}

}  // namespace minerva
