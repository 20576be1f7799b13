// tests/test_cli_model.cpp: the model-facing commands as a user runs them (minerva run, logits,
// perplexity; minerva-bench e2e), checked against ../shared/reference on stories260K-f32.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>

#include "common.h"

namespace {

struct Result {
    int status = -1;
    std::string out;  // stdout
};

// Runs a command line (stderr to stderr_path when given) and captures stdout.
Result run(const std::string& cmd) {
    Result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string bin(const char* name) { return std::string(MINERVA_BINARY_DIR) + "/" + name; }

nlohmann::json read_json(const std::string& path) {
    std::ifstream f(path);
    return nlohmann::json::parse(f);
}

std::string last_line(const std::string& s) {
    std::string t = s;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    const size_t nl = t.rfind('\n');
    return nl == std::string::npos ? t : t.substr(nl + 1);
}

class CliModel : public testing::Test {
protected:
    void SetUp() override {
        model_ = minerva::test::shared_file("models/stories260K-f32.gguf");
        ref_ = minerva::test::shared_file("reference/stories260K-f32.json");
        prompt_ = minerva::test::shared_file("reference/prompt.txt");
        if (model_.empty() || ref_.empty() || prompt_.empty()) {
            if (minerva::test::require_shared()) GTEST_FAIL() << "missing shared data";
            GTEST_SKIP() << "shared data not available (set MINERVA_SHARED)";
        }
    }
    std::string model_, ref_, prompt_;
};

TEST_F(CliModel, RunGreedyIdsMatchLlamaCpp) {
    const auto ref = read_json(ref_);
    Result r = run(bin("minerva") + " run -m " + model_ + " -f " + prompt_ +
                   " -n 32 --temp 0 --ignore-eos --ids --device cpu -t 1 2>/dev/null");
    ASSERT_EQ(r.status, 0);
    std::istringstream in(r.out);
    std::vector<int32_t> ids;
    for (int32_t x; in >> x;) ids.push_back(x);
    EXPECT_EQ(ids, ref["greedy"].get<std::vector<int32_t>>());
}

TEST_F(CliModel, RunStreamsTextAndReportsSpeed) {
    Result r = run(bin("minerva") + " run -m " + model_ + " -p 'Once upon a time' -n 24 --seed 3 --device cpu -t 1 2>&1");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("prompt: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("generation: 24 tokens"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tokens/s"), std::string::npos);
    // Same seed, same text.
    Result a = run(bin("minerva") + " run -m " + model_ + " -p 'Once upon a time' -n 24 --seed 3 --device cpu -t 1 2>/dev/null");
    Result b = run(bin("minerva") + " run -m " + model_ + " -p 'Once upon a time' -n 24 --seed 3 --device cpu -t 1 2>/dev/null");
    EXPECT_EQ(a.out, b.out);
    EXPECT_GT(a.out.size(), 40u);
}

TEST_F(CliModel, LogitsJsonHasTheReferenceShape) {
    const auto ref = read_json(ref_);
    Result r = run(bin("minerva") + " logits -m " + model_ + " -f " + prompt_ + " --top 5 --device cpu -t 1");
    ASSERT_EQ(r.status, 0);
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["prompt_tokens"], ref["prompt_tokens"]);
    ASSERT_EQ(j["prompt_top5"].size(), ref["prompt_top5"].size());
    for (size_t p = 0; p < j["prompt_top5"].size(); ++p) {
        ASSERT_EQ(j["prompt_top5"][p].size(), 5u);
        EXPECT_EQ(j["prompt_top5"][p][0][0], ref["prompt_top5"][p][0][0]) << "position " << p;
        const double ours = j["prompt_top5"][p][0][1].get<double>(), theirs = ref["prompt_top5"][p][0][1].get<double>();
        EXPECT_NEAR(ours, theirs, 0.01 + 0.002 * std::fabs(theirs)) << "position " << p;
    }
}

TEST_F(CliModel, PerplexityLastLineMatchesLlamaCpp) {
    MINERVA_SHARED_FILE(text, "text/stories.txt");
    MINERVA_SHARED_FILE(ppl, "reference/ppl-stories-c128.json");
    const double want = read_json(ppl)["stories260K-f32"].get<double>();
    Result r = run(bin("minerva") + " perplexity -m " + model_ + " -f " + text + " -c 128 --device cpu -t 1 2>/dev/null");
    ASSERT_EQ(r.status, 0);
    const std::string last = last_line(r.out);
    ASSERT_EQ(last.rfind("PPL = ", 0), 0u) << last;
    EXPECT_NEAR(std::stod(last.substr(6)), want, 0.002 * want);
}

TEST_F(CliModel, BadInputIsAnErrorWithStatus1) {
    Result r = run(bin("minerva") + " run -m /nonexistent.gguf -p hi 2>&1");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("/nonexistent.gguf"), std::string::npos) << r.out;
    r = run(bin("minerva") + " run -m " + model_ + " 2>&1");  // no prompt
    EXPECT_EQ(r.status, 1);
    r = run(bin("minerva") + " run -m " + model_ + " -p hi -c 2 --device cpu 2>&1");  // no room
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("context"), std::string::npos) << r.out;
    r = run(bin("minerva") + " perplexity -m " + model_ + " -f " + prompt_ + " -c 4096 --device cpu 2>&1");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("chunk"), std::string::npos) << r.out;
}

TEST_F(CliModel, BenchE2eJsonLastLine) {
    Result r = run(bin("minerva-bench") + " e2e -m " + model_ + " -t 1 -p 32 -n 16 --reps 3 --device cpu --json");
    ASSERT_EQ(r.status, 0) << r.out;
    const auto j = nlohmann::json::parse(last_line(r.out));
    EXPECT_GT(j["pp_tps"].get<double>(), 0);
    EXPECT_GT(j["tg_tps"].get<double>(), 0);
    EXPECT_EQ(j["pp_runs"].size(), 3u);
}

}  // namespace
