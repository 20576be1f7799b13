// engine/model/sampler.cpp: turning logits into the next token. The order follows llama.cpp's default
// chain so the same parameters mean the same thing: logit bias, penalties over the recent
// window, then greedy (temperature <= 0) or top-k, top-p, min-p, temperature and a seeded draw.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "minerva/error.h"
#include "minerva/model.h"

namespace minerva {

namespace {

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Sampler::Sampler(const SamplerParams& params, int n_vocab) : params_(params), n_vocab_(n_vocab) {
    if (n_vocab <= 0) throw Error("Sampler: n_vocab must be positive");
    if (!(params.top_p >= 0) || !(params.min_p <= 1) || !std::isfinite(params.temperature) ||
        !(params.repeat_penalty > 0) || !std::isfinite(params.repeat_penalty))
        throw Error("Sampler: invalid parameters (need top_p >= 0, min_p <= 1, repeat_penalty > 0, finite temperature)");
    for (auto& [id, bias] : params.logit_bias)
        if (id < 0 || id >= n_vocab) throw Error("Sampler: logit_bias token " + std::to_string(id) + " is out of range");
    if (params.grammar) {
        if (params.grammar->vocab().n_tokens() != n_vocab)
            throw Error("Sampler: the grammar constraint is bound to a vocabulary of " + std::to_string(params.grammar->vocab().n_tokens()) +
                        " tokens, the model has " + std::to_string(n_vocab));
        matcher_ = std::make_unique<GrammarMatcher>(params.grammar, params.grammar_start_after, params.grammar_open_tag);
    }
    reset();
}

void Sampler::reset() {
    history_.clear();
    if (matcher_) matcher_->reset();
    uint64_t seed = params_.seed;
    if (seed == 0xFFFFFFFFFFFFFFFFull) seed = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    uint64_t x = seed;
    for (uint64_t& s : rng_) s = splitmix64(x);
}

uint64_t Sampler::next_u64() {
    const uint64_t result = rotl(rng_[1] * 5, 7) * 9;
    const uint64_t t = rng_[1] << 17;
    rng_[2] ^= rng_[0];
    rng_[3] ^= rng_[1];
    rng_[1] ^= rng_[2];
    rng_[0] ^= rng_[3];
    rng_[2] ^= t;
    rng_[3] = rotl(rng_[3], 45);
    return result;
}

double Sampler::next_unit() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

void Sampler::accept(int32_t token) {
    if (matcher_ && !matcher_->accept(token))
        throw Error("Sampler: token " + std::to_string(token) + " is not allowed by the grammar here");
    history_.push_back(token);
}

void Sampler::accept_prompt(std::span<const int32_t> tokens) { history_.insert(history_.end(), tokens.begin(), tokens.end()); }

int32_t Sampler::sample(std::span<const float> logits_in) {
    if (logits_in.size() != static_cast<size_t>(n_vocab_))
        throw Error("Sampler: got " + std::to_string(logits_in.size()) + " logits, expected " + std::to_string(n_vocab_));
    const SamplerParams& p = params_;
    scratch_.assign(logits_in.begin(), logits_in.end());
    std::vector<float>& l = scratch_;

    // Grammar: tokens it cannot continue with are banned outright (when all are, the draw below
    // reports it).
    if (matcher_) matcher_->apply(l);
    // Logit bias: added to the raw logits (-inf bans a token).
    for (auto& [id, bias] : p.logit_bias) l[static_cast<size_t>(id)] += bias;

    // Penalties over the last penalty_last_n accepted tokens (llama.cpp semantics): the
    // repetition penalty divides positive logits and multiplies negative ones, once per distinct
    // token; frequency subtracts per occurrence, presence once.
    const bool penalize = p.repeat_penalty != 1.f || p.frequency_penalty != 0.f || p.presence_penalty != 0.f;
    if (penalize && !history_.empty() && p.penalty_last_n != 0) {
        size_t n = p.penalty_last_n < 0 ? history_.size() : std::min(history_.size(), static_cast<size_t>(p.penalty_last_n));
        // Count occurrences by sorting a copy of the window (no per-token map allocation).
        window_.assign(history_.end() - static_cast<ptrdiff_t>(n), history_.end());
        std::sort(window_.begin(), window_.end());
        for (size_t i = 0; i < window_.size();) {
            size_t j = i;
            while (j < window_.size() && window_[j] == window_[i]) ++j;
            const int32_t id = window_[i];
            const int c = static_cast<int>(j - i);
            i = j;
            if (id < 0 || id >= n_vocab_) continue;
            float& v = l[static_cast<size_t>(id)];
            v = v > 0 ? v / p.repeat_penalty : v * p.repeat_penalty;
            v -= static_cast<float>(c) * p.frequency_penalty + p.presence_penalty;
        }
    }

    // Greedy: the largest logit (the lowest id on ties).
    if (p.temperature <= 0.f) {
        const auto best = std::max_element(l.begin(), l.end());
        if (*best == -std::numeric_limits<float>::infinity()) throw Error("Sampler: every token is banned (all logits are -inf)");
        return static_cast<int32_t>(best - l.begin());
    }

    // Candidates sorted by logit, best first (only as many as top-k keeps).
    work_.clear();
    for (int32_t i = 0; i < n_vocab_; ++i)
        if (l[static_cast<size_t>(i)] > -std::numeric_limits<float>::infinity()) work_.emplace_back(l[static_cast<size_t>(i)], i);
    if (work_.empty()) throw Error("Sampler: every token is banned (all logits are -inf)");
    auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t keep = work_.size();
    if (p.top_k > 0) keep = std::min(keep, static_cast<size_t>(p.top_k));
    std::partial_sort(work_.begin(), work_.begin() + static_cast<ptrdiff_t>(keep), work_.end(), better);
    work_.resize(keep);

    // Probabilities of the survivors (softmax at temperature 1, as llama.cpp's top-p/min-p see them).
    auto probs = [&](float temp, std::vector<double>& out) {
        out.resize(work_.size());
        const double mx = work_[0].first;
        double sum = 0;
        for (size_t i = 0; i < work_.size(); ++i) sum += out[i] = std::exp((work_[i].first - mx) / temp);
        for (double& x : out) x /= sum;
    };
    std::vector<double>& pr = probs_;

    // Top-p: the smallest prefix whose probability reaches top_p (at least one token).
    if (p.top_p < 1.f) {
        probs(1.f, pr);
        double cum = 0;
        size_t n = 0;
        while (n < pr.size()) {
            cum += pr[n++];
            if (cum >= p.top_p) break;
        }
        work_.resize(std::max<size_t>(n, 1));
    }
    // Min-p: drop tokens less likely than min_p times the most likely one.
    if (p.min_p > 0.f) {
        const float cut = work_[0].first + std::log(p.min_p);
        size_t n = 1;
        while (n < work_.size() && work_[n].first >= cut) ++n;
        work_.resize(n);
    }
    // Temperature, then a draw from what is left.
    probs(p.temperature, pr);
    double u = next_unit();
    for (size_t i = 0; i < pr.size(); ++i) {
        if (u < pr[i]) return work_[i].second;
        u -= pr[i];
    }
    return work_.back().second;
}

std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int k) {
    if (logits.empty() || k <= 0) return {};
    float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
    const float lse = mx + static_cast<float>(std::log(sum));
    std::vector<std::pair<int32_t, float>> all;
    all.reserve(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) all.emplace_back(static_cast<int32_t>(i), logits[i]);
    const size_t n = std::min(all.size(), static_cast<size_t>(k));
    std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(n), all.end(), [](auto& a, auto& b) {
        return a.second > b.second || (a.second == b.second && a.first < b.first);
    });
    all.resize(n);
    for (auto& e : all) e.second -= lse;
    return all;
}

float token_logprob(std::span<const float> logits, int32_t id) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) throw Error("token_logprob: token " + std::to_string(id) + " is out of range");
    float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
    return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - mx - std::log(sum));
}

}  // namespace minerva
