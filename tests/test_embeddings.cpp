// tests/test_embeddings.cpp: Session::hidden_states and embed(): pooling, normalisation, and
// that splitting the input over several forward passes (n_batch) changes nothing.
#include <gtest/gtest.h>

#include <cmath>

#include "common.h"
#include "minerva/model.h"

using namespace minerva;

TEST(Embeddings, PoolingNormalisationAndBatching) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    ModelOptions mo;
    mo.device = "cpu";
    mo.n_threads = 1;
    auto model = Model::load(path, mo);
    EXPECT_EQ(model_pooling(*model), Pooling::Mean);  // the file names none
    auto toks = model->vocab()->tokenize("Once upon a time, there was a little girl named Mia. She liked the sun.", true, false);
    ASSERT_GT(toks.size(), 10u);
    const size_t d = static_cast<size_t>(model->info().n_embd);

    Session big(model, {.n_ctx = 256, .n_seq = 2, .n_batch = 512});
    Session small(model, {.n_ctx = 256, .n_seq = 1, .n_batch = 4});
    const std::vector<float> h = big.hidden_states(toks, 1);
    const std::vector<float> hs = small.hidden_states(toks);
    ASSERT_EQ(h.size(), toks.size() * d);
    ASSERT_EQ(hs.size(), h.size());
    for (size_t i = 0; i < h.size(); ++i) ASSERT_NEAR(h[i], hs[i], 1e-4f * (1 + std::fabs(h[i]))) << i;
    EXPECT_EQ(big.n_past(1), 0);  // the sequence is left empty

    // A prefix's hidden states are the first rows of the whole text's (causal attention).
    const std::vector<float> hp = big.hidden_states(std::span(toks).first(5));
    for (size_t i = 0; i < hp.size(); ++i) ASSERT_NEAR(hp[i], h[i], 1e-4f * (1 + std::fabs(h[i])));

    Embedding mean = embed(big, toks, Pooling::Mean, true, true);
    ASSERT_EQ(mean.pooled.size(), d);
    ASSERT_EQ(mean.per_token.size(), toks.size() * d);
    double norm = 0;
    for (float v : mean.pooled) norm += double(v) * v;
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-5);
    // mean of the raw rows, normalised, is the pooled vector
    std::vector<double> acc(d, 0);
    for (size_t t = 0; t < toks.size(); ++t)
        for (size_t i = 0; i < d; ++i) acc[i] += h[t * d + i];
    double an = 0;
    for (double v : acc) an += v * v;
    for (size_t i = 0; i < d; ++i) EXPECT_NEAR(mean.pooled[i], acc[i] / std::sqrt(an), 1e-4);

    Embedding cls = embed(big, toks, Pooling::Cls, false), last = embed(big, toks, Pooling::Last, false);
    for (size_t i = 0; i < d; ++i) {
        EXPECT_NEAR(cls.pooled[i], h[i], 1e-5f * (1 + std::fabs(h[i])));
        EXPECT_NEAR(last.pooled[i], h[(toks.size() - 1) * d + i], 1e-5f * (1 + std::fabs(h[i])));
    }
    Embedding none = embed(big, toks, Pooling::None, true);
    EXPECT_TRUE(none.pooled.empty());
    EXPECT_EQ(none.per_token.size(), h.size());

    std::vector<int32_t> too_long(300, toks[1]);
    EXPECT_THROW(big.hidden_states(too_long), Error);
}
