// tests/test_sampler.cpp: each sampling option's effect on hand-made logits, the draw's
// distribution, and seed reproducibility. No model needed.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "minerva/minerva.h"

using namespace minerva;

namespace {

// Logits with probabilities 0.5, 0.3, 0.15, 0.05 for tokens 0..3 and ~0 for the rest.
std::vector<float> four_way(int n_vocab = 16) {
    std::vector<float> l(static_cast<size_t>(n_vocab), -30.f);
    const double p[4] = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < 4; ++i) l[static_cast<size_t>(i)] = static_cast<float>(std::log(p[i]));
    return l;
}

SamplerParams plain(uint64_t seed = 1) {
    SamplerParams p;
    p.temperature = 1;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.seed = seed;
    return p;
}

std::map<int32_t, int> histogram(Sampler& s, std::span<const float> l, int n) {
    std::map<int32_t, int> h;
    for (int i = 0; i < n; ++i) ++h[s.sample(l)];
    return h;
}

TEST(Sampler, GreedyPicksTheLargestLogit) {
    SamplerParams p = plain();
    p.temperature = 0;
    std::vector<float> l = {0.1f, 2.f, -1.f, 1.99f};
    Sampler s(p, 4);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(l), 1);
    p.temperature = -1;
    Sampler s2(p, 4);
    EXPECT_EQ(s2.sample(l), 1);
}

TEST(Sampler, DrawFollowsTheSoftmax) {
    Sampler s(plain(7), 16);
    const int n = 40000;
    auto h = histogram(s, four_way(), n);
    const double p[4] = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(h[i] / double(n), p[i], 0.01) << "token " << i;
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
    SamplerParams p = plain(3);
    p.temperature = 0.2f;
    Sampler cold(p, 16);
    auto hc = histogram(cold, four_way(), 5000);
    EXPECT_GT(hc[0] / 5000.0, 0.9);  // 0.5^5 vs 0.3^5: token 0 nearly always
    p.temperature = 3.f;
    Sampler hot(p, 16);
    auto hh = histogram(hot, four_way(), 5000);
    EXPECT_LT(hh[0] / 5000.0, 0.45);
    EXPECT_GT(hh[3] / 5000.0, 0.08);
}

TEST(Sampler, TopKKeepsTheKBest) {
    SamplerParams p = plain(4);
    p.top_k = 2;
    Sampler s(p, 16);
    auto h = histogram(s, four_way(), 4000);
    EXPECT_EQ(h.size(), 2u);
    EXPECT_TRUE(h.count(0) && h.count(1));
    EXPECT_NEAR(h[0] / 4000.0, 0.5 / 0.8, 0.03);  // renormalised over the survivors
    p.top_k = 1;
    p.temperature = 5;
    Sampler one(p, 16);
    EXPECT_EQ(histogram(one, four_way(), 200).size(), 1u);
}

TEST(Sampler, TopPKeepsTheSmallestSufficientPrefix) {
    SamplerParams p = plain(5);
    p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: tokens 0 and 1
    Sampler s(p, 16);
    auto h = histogram(s, four_way(), 4000);
    EXPECT_EQ(h.size(), 2u);
    p.top_p = 0.85f;  // tokens 0, 1, 2
    Sampler s3(p, 16);
    EXPECT_EQ(histogram(s3, four_way(), 4000).size(), 3u);
    p.top_p = 0.0f;  // at least one token survives
    Sampler s0(p, 16);
    EXPECT_EQ(histogram(s0, four_way(), 100).size(), 1u);
}

TEST(Sampler, MinPDropsTheUnlikely) {
    SamplerParams p = plain(6);
    p.min_p = 0.5f;  // p >= 0.25: tokens 0 and 1
    Sampler s(p, 16);
    auto h = histogram(s, four_way(), 4000);
    EXPECT_EQ(h.size(), 2u);
    p.min_p = 0.2f;  // p >= 0.1: tokens 0, 1, 2
    Sampler s2(p, 16);
    EXPECT_EQ(histogram(s2, four_way(), 4000).size(), 3u);
}

TEST(Sampler, RepetitionPenaltyFollowsLlamaCpp) {
    SamplerParams p = plain();
    p.temperature = 0;
    p.repeat_penalty = 2.f;
    // Positive logits are divided, negative ones multiplied.
    std::vector<float> l = {3.f, 2.f, -1.f, -1.5f};
    Sampler s(p, 4);
    EXPECT_EQ(s.sample(l), 0);
    s.accept(0);  // 3 -> 1.5 < 2
    EXPECT_EQ(s.sample(l), 1);
    s.accept(0);  // counted once, not twice: still 1.5
    s.accept(1);  // 2 -> 1
    EXPECT_EQ(s.sample(l), 0);
    std::vector<float> neg = {-1.f, -1.5f, -5.f, -5.f};
    Sampler s2(p, 4);
    s2.accept(0);  // -1 -> -2 < -1.5
    EXPECT_EQ(s2.sample(neg), 1);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
    SamplerParams p = plain();
    p.temperature = 0;
    std::vector<float> l = {3.f, 2.5f, 2.2f, 0.f};
    p.presence_penalty = 0.6f;  // once per token seen
    Sampler s(p, 4);
    s.accept(0), s.accept(0), s.accept(0);
    EXPECT_EQ(s.sample(l), 1);  // 2.4 < 2.5
    p.presence_penalty = 0;
    p.frequency_penalty = 0.2f;  // per occurrence: 3 - 0.6 = 2.4 < 2.5
    Sampler f(p, 4);
    f.accept(0), f.accept(0);
    EXPECT_EQ(f.sample(l), 0);  // 2.6 still best after two
    f.accept(0);
    EXPECT_EQ(f.sample(l), 1);
}

TEST(Sampler, PenaltyWindow) {
    SamplerParams p = plain();
    p.temperature = 0;
    p.repeat_penalty = 10.f;
    p.penalty_last_n = 2;
    std::vector<float> l = {3.f, 2.f, 1.f, 0.f};
    Sampler s(p, 4);
    s.accept(0), s.accept(3), s.accept(3);  // token 0 fell out of the window
    EXPECT_EQ(s.sample(l), 0);
    p.penalty_last_n = -1;  // the whole history
    Sampler all(p, 4);
    all.accept(0), all.accept(3), all.accept(3);
    EXPECT_EQ(all.sample(l), 1);
    p.penalty_last_n = 0;  // off
    Sampler off(p, 4);
    off.accept(0);
    EXPECT_EQ(off.sample(l), 0);
}

TEST(Sampler, LogitBias) {
    SamplerParams p = plain(9);
    p.logit_bias = {{0, -std::numeric_limits<float>::infinity()}, {3, 5.f}};
    Sampler s(p, 16);
    auto h = histogram(s, four_way(), 2000);
    EXPECT_EQ(h.count(0), 0u);             // banned
    EXPECT_GT(h[3] / 2000.0, 0.8);         // 0.05 * e^5 dominates
    p.logit_bias = {{16, 1.f}};
    EXPECT_THROW(Sampler(p, 16), Error);
    p.logit_bias = {};
    p.temperature = 0;
    p.logit_bias = {{2, 1.5f}};
    Sampler g(p, 16);
    EXPECT_EQ(g.sample(four_way()), 2);    // log .15 + 1.5 > log .5
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
    SamplerParams p = plain(42);
    std::vector<float> flat(64, 0.f);
    auto draw = [&](uint64_t seed) {
        p.seed = seed;
        Sampler s(p, 64);
        std::vector<int32_t> out;
        for (int i = 0; i < 64; ++i) out.push_back(s.sample(flat));
        return out;
    };
    EXPECT_EQ(draw(42), draw(42));
    EXPECT_NE(draw(42), draw(43));
    // reset() restarts the sequence.
    p.seed = 42;
    Sampler s(p, 64);
    std::vector<int32_t> a, b;
    for (int i = 0; i < 16; ++i) a.push_back(s.sample(flat));
    s.reset();
    for (int i = 0; i < 16; ++i) b.push_back(s.sample(flat));
    EXPECT_EQ(a, b);
    // The default seed is random: two samplers rarely agree on 64 draws from 64 tokens.
    p.seed = SamplerParams{}.seed;
    Sampler r1(p, 64), r2(p, 64);
    std::vector<int32_t> x, y;
    for (int i = 0; i < 64; ++i) x.push_back(r1.sample(flat)), y.push_back(r2.sample(flat));
    EXPECT_NE(x, y);
}

TEST(Sampler, BadInputIsAnError) {
    SamplerParams p = plain();
    Sampler s(p, 4);
    std::vector<float> wrong(5, 0.f);
    EXPECT_THROW(s.sample(wrong), Error);
    p.repeat_penalty = 0;
    EXPECT_THROW(Sampler(p, 4), Error);
    EXPECT_THROW(Sampler(plain(), 0), Error);
    std::vector<float> banned(4, -std::numeric_limits<float>::infinity());
    Sampler t(plain(), 4);
    EXPECT_THROW(t.sample(banned), Error);
}

TEST(Logprobs, TopLogprobsAndTokenLogprob) {
    std::vector<float> l = four_way();
    auto top = top_logprobs(l, 3);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].first, 0);
    EXPECT_EQ(top[1].first, 1);
    EXPECT_EQ(top[2].first, 2);
    EXPECT_NEAR(top[0].second, std::log(0.5), 1e-4);
    EXPECT_NEAR(top[1].second, std::log(0.3), 1e-4);
    EXPECT_NEAR(token_logprob(l, 3), std::log(0.05), 1e-4);
    // Shifting all logits changes nothing.
    for (float& x : l) x += 100.f;
    EXPECT_NEAR(token_logprob(l, 2), std::log(0.15), 1e-4);
    EXPECT_EQ(top_logprobs(l, 100).size(), l.size());
    EXPECT_THROW(token_logprob(l, 16), Error);
}

}  // namespace
