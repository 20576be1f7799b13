// tests/test_reference.cpp: end-to-end parity with llama.cpp on every model in ../shared/models,
// on every backend (cpu, vulkan): prompt tokens, teacher-forced top-1 and top-5 logits, greedy
// continuations and perplexity, against ../shared/reference (produced by llama.cpp on the same
// files). Tolerances are those of issue 3 and design.md; they are never loosened to pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.h"
#include "minerva/minerva.h"

namespace fs = std::filesystem;
using namespace minerva;

namespace {

// The shared data directory as seen when the tests are listed: MINERVA_SHARED, else ../shared
// beside the source tree (the CI layout).
std::string shared_root() {
    if (const char* s = std::getenv("MINERVA_SHARED"); s && *s) return s;
    fs::path p = fs::path(MINERVA_SOURCE_DIR).parent_path() / "shared";
    return fs::exists(p) ? p.string() : std::string();
}

std::vector<std::string> model_names() {
    std::vector<std::string> names;
    const std::string root = shared_root();
    std::error_code ec;
    if (!root.empty())
        for (const auto& e : fs::directory_iterator(fs::path(root) / "models", ec))
            if (e.path().extension() == ".gguf") names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
    // Without the data one placeholder case still runs and skips (or fails under
    // MINERVA_REQUIRE_SHARED=1), so a missing directory is never a silent pass.
    if (names.empty()) names.push_back("no_shared_models");
    return names;
}

bool require_vulkan() {
    const char* r = std::getenv("MINERVA_REQUIRE_VULKAN");
    return r && std::string(r) == "1";
}

nlohmann::json read_json(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw Error("cannot read " + path);
    return nlohmann::json::parse(f);
}

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool is_exact_type(DType t) { return t == DType::F32 || t == DType::F16; }

struct Param {
    std::string model;
    std::string device;
};

void PrintTo(const Param& p, std::ostream* os) { *os << p.model << " on " << p.device; }

std::string param_name(const testing::TestParamInfo<Param>& info) {
    std::string s = info.param.model + "_" + info.param.device;
    for (char& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

std::vector<Param> all_params() {
    std::vector<Param> out;
    for (const std::string& m : model_names())
        for (const char* d : {"cpu", "vulkan"}) out.push_back({m, d});
    return out;
}

class Reference : public testing::TestWithParam<Param> {
protected:
    void SetUp() override {
        const Param& p = GetParam();
        if (p.model == "no_shared_models") {
            if (test::require_shared()) GTEST_FAIL() << "no models found in ../shared/models (MINERVA_SHARED)";
            // The cases are listed when the test program is built (gtest_discover_tests); data that
            // appeared since then must not go unchecked.
            if (model_names().front() != "no_shared_models")
                GTEST_FAIL() << "shared models exist now but the test list was made without them: rebuild with "
                                "MINERVA_SHARED set (or ../shared beside the checkout)";
            GTEST_SKIP() << "shared data not available (set MINERVA_SHARED)";
        }
        model_path_ = test::shared_file("models/" + p.model + ".gguf");
        ref_path_ = test::shared_file("reference/" + p.model + ".json");
        if (model_path_.empty() || ref_path_.empty()) {
            if (test::require_shared()) GTEST_FAIL() << "missing model or reference for " << p.model;
            GTEST_SKIP() << "missing model or reference for " << p.model;
        }
        ModelOptions mo;
        mo.device = p.device;
        try {
            model_ = Model::load(model_path_, mo);
        } catch (const Error& e) {
            if (p.device == "cpu") GTEST_FAIL() << "load failed: " << e.what();
            if (require_vulkan()) GTEST_FAIL() << "MINERVA_REQUIRE_VULKAN=1 but: " << e.what();
            GTEST_SKIP() << "no Vulkan device: " << e.what();
        }
        ref_ = read_json(ref_path_);
        exact_ = is_exact_type(model_->info().weight_type);
        abs_tol_ = exact_ ? 0.01 : 0.05;
        rel_tol_ = exact_ ? 0.002 : 0.03;
    }

    double tol(double ref_logit) const { return abs_tol_ + rel_tol_ * std::fabs(ref_logit); }

    std::string model_path_, ref_path_;
    std::shared_ptr<Model> model_;
    nlohmann::json ref_;
    bool exact_ = true;
    double abs_tol_ = 0, rel_tol_ = 0;
};

TEST_P(Reference, PromptTokensAndLogits) {
    MINERVA_SHARED_FILE(prompt_path, "reference/prompt.txt");
    const std::vector<int32_t> tokens = model_->vocab()->tokenize(read_text(prompt_path), true, false);
    const std::vector<int32_t> want = ref_["prompt_tokens"].get<std::vector<int32_t>>();
    ASSERT_EQ(tokens, want) << "prompt tokens differ from llama.cpp's";
    ASSERT_EQ(ref_["n_vocab"].get<int>(), model_->info().n_vocab);

    SessionOptions so;
    so.n_ctx = static_cast<int>(tokens.size());
    Session session(model_, so);
    session.eval(tokens, 0, true);
    const auto all = session.logits();
    const size_t nv = static_cast<size_t>(session.n_vocab());
    const auto& top5 = ref_["prompt_top5"];
    ASSERT_EQ(top5.size(), tokens.size());

    int agree = 0, compared = 0, bad_logits = 0;
    double worst = 0;  // largest |ours - ref| / tol seen
    for (size_t p = 0; p < tokens.size(); ++p) {
        const float* l = all.data() + p * nv;
        std::map<int32_t, double> ref_logit;
        for (const auto& e : top5[p]) ref_logit[e[0].get<int32_t>()] = e[1].get<double>();
        const int32_t ref_top = top5[p][0][0].get<int32_t>();
        const int32_t our_top = static_cast<int32_t>(std::max_element(l, l + nv) - l);
        // Agreement: the same pick, or picks whose llama.cpp logits are within tolerance (a near-tie).
        if (our_top == ref_top) {
            ++agree;
        } else if (auto it = ref_logit.find(our_top); it != ref_logit.end()) {
            if (std::fabs(it->second - ref_logit[ref_top]) <= tol(ref_logit[ref_top])) ++agree;
        }
        // Logits of the ids in both top-5 lists.
        std::vector<int32_t> ours(nv);
        for (size_t i = 0; i < nv; ++i) ours[i] = static_cast<int32_t>(i);
        std::partial_sort(ours.begin(), ours.begin() + 5, ours.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
        for (int i = 0; i < 5; ++i) {
            auto it = ref_logit.find(ours[static_cast<size_t>(i)]);
            if (it == ref_logit.end()) continue;
            const double d = std::fabs(static_cast<double>(l[it->first]) - it->second);
            ++compared;
            worst = std::max(worst, d / tol(it->second));
            if (d > tol(it->second)) {
                if (++bad_logits <= 10)
                    ADD_FAILURE() << "position " << p << " token " << it->first << ": logit " << l[it->first]
                                  << " vs llama.cpp " << it->second << " (tolerance " << tol(it->second) << ")";
            }
        }
    }
    const double rate = static_cast<double>(agree) / static_cast<double>(tokens.size());
    std::printf("[ %s/%s ] top-1 agreement %d/%zu (%.1f%%), %d top-5 logits compared, worst |diff|/tol %.3f\n",
                GetParam().model.c_str(), GetParam().device.c_str(), agree, tokens.size(), 100 * rate, compared, worst);
    EXPECT_GE(rate, 0.98) << "teacher-forced top-1 agreement";
    EXPECT_GT(compared, static_cast<int>(tokens.size()));
    EXPECT_EQ(bad_logits, 0) << "top-5 logits outside tolerance (" << abs_tol_ << " + " << rel_tol_ * 100 << "%)";
}

TEST_P(Reference, GreedyContinuation) {
    const std::vector<int32_t> prompt = ref_["prompt_tokens"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = ref_["greedy"].get<std::vector<int32_t>>();
    SessionOptions so;
    so.n_ctx = static_cast<int>(prompt.size() + want.size());
    Session session(model_, so);
    std::vector<int32_t> got;
    auto logits = session.eval(prompt);
    for (size_t i = 0; i < want.size(); ++i) {
        got.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
        if (i + 1 < want.size()) logits = session.eval(std::span<const int32_t>(&got.back(), 1));
    }
    size_t same = 0;
    while (same < want.size() && got[same] == want[same]) ++same;
    std::printf("[ %s/%s ] greedy: first %zu of %zu tokens identical to llama.cpp's\n", GetParam().model.c_str(),
                GetParam().device.c_str(), same, want.size());
    // design.md: identical greedy continuations are required of the F32 files; with rounded
    // weights a near-tie may flip (held to logits and perplexity instead).
    if (model_->info().weight_type == DType::F32) {
        EXPECT_EQ(got, want);
    }
}

TEST_P(Reference, Perplexity) {
    MINERVA_SHARED_FILE(text_path, "text/stories.txt");
    MINERVA_SHARED_FILE(ppl_path, "reference/ppl-stories-c128.json");
    MINERVA_SHARED_FILE(ppl_arch_path, "reference/ppl-arch-stories-c128.json");
    // The LLaMA models' perplexities and the other families' are in two files.
    nlohmann::json ppl_ref = read_json(ppl_path);
    ppl_ref.update(read_json(ppl_arch_path));
    if (!ppl_ref.contains(GetParam().model)) {
        if (test::require_shared()) GTEST_FAIL() << "no reference perplexity for " << GetParam().model;
        GTEST_SKIP() << "no reference perplexity for " << GetParam().model;
    }
    const double want = ppl_ref[GetParam().model].get<double>();
    const std::vector<int32_t> tokens = model_->vocab()->tokenize(read_text(text_path), true, false);
    SessionOptions so;
    so.n_ctx = 128;
    so.n_batch = 128;
    Session session(model_, so);
    // Chunks start with BOS only where the vocabulary adds one (not Qwen's).
    const int32_t bos = model_->vocab()->add_bos() ? model_->vocab()->bos() : -1;
    const PerplexityResult r = perplexity(session, tokens, bos);
    const DType t = model_->info().weight_type;
    const double rel = (t == DType::F32 || t == DType::F16 || t == DType::BF16) ? 0.002 : 0.01;
    std::printf("[ %s/%s ] perplexity %.4f vs llama.cpp %.4f (%+.3f%%, %d chunks)\n", GetParam().model.c_str(),
                GetParam().device.c_str(), r.ppl, want, 100 * (r.ppl / want - 1), r.n_chunks);
    EXPECT_NEAR(r.ppl, want, rel * want);
}

// The KV cache in 8-bit blocks (llama.cpp's -ctk q8_0 -ctv q8_0) stays within the tolerance of
// quantized weights against llama.cpp's F16-cache reference, for every model, on every backend.
TEST_P(Reference, Q8CacheLogits) {
    const std::vector<int32_t> tokens = ref_["prompt_tokens"].get<std::vector<int32_t>>();
    SessionOptions so;
    so.n_ctx = static_cast<int>(tokens.size());
    so.kv_type_k = so.kv_type_v = KvType::Q8_0;
    if (model_->info().head_dim % 32 != 0) {
        // One block scale per 32 values must not span heads: such models refuse the type.
        EXPECT_THROW(Session(model_, so), Error);
        return;
    }
    Session session(model_, so);
    session.eval(tokens, 0, true);
    const auto all = session.logits();
    const size_t nv = static_cast<size_t>(session.n_vocab());
    const auto& top5 = ref_["prompt_top5"];
    int bad = 0, agree = 0;
    for (size_t p = 0; p < tokens.size(); ++p) {
        const float* l = all.data() + p * nv;
        const int32_t ref_top = top5[p][0][0].get<int32_t>();
        const int32_t our_top = static_cast<int32_t>(std::max_element(l, l + nv) - l);
        double ref_top_logit = top5[p][0][1].get<double>();
        bool near_tie = our_top == ref_top;
        for (const auto& e : top5[p]) {
            const double want = e[1].get<double>(), d = std::fabs(l[e[0].get<int32_t>()] - want);
            if (d > 0.05 + 0.03 * std::fabs(want) && ++bad <= 5)
                ADD_FAILURE() << "position " << p << " token " << e[0] << ": " << l[e[0].get<int32_t>()] << " vs " << want;
            if (e[0].get<int32_t>() == our_top && std::fabs(want - ref_top_logit) <= 0.05 + 0.03 * std::fabs(ref_top_logit))
                near_tie = true;
        }
        agree += near_tie;
    }
    std::printf("[ %s/%s ] q8_0 KV cache: top-1 agreement %d/%zu, %d logits outside the quantized tolerance\n",
                GetParam().model.c_str(), GetParam().device.c_str(), agree, tokens.size(), bad);
    EXPECT_EQ(bad, 0);
    EXPECT_GE(static_cast<double>(agree) / static_cast<double>(tokens.size()), 0.98);
}

INSTANTIATE_TEST_SUITE_P(Models, Reference, testing::ValuesIn(all_params()), param_name);

}  // namespace
