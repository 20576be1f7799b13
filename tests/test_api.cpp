// tests/test_api.cpp: the library as a host program sees it: Sessions of one Model evaluated from
// two threads give the results each gives alone; diagnostics reach the log callback (or stderr)
// and never stdout; libminerva.so exports the public API and nothing else.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common.h"
#include "minerva.h"
#include "minerva/minerva.h"

using namespace minerva;

namespace {

// Greedy continuation, with every logit of every step (any interference shows in the bits).
std::vector<float> greedy_run(Session& s, const std::vector<int32_t>& prompt, int n) {
    s.clear();
    std::vector<float> all;
    auto logits = s.eval(prompt);
    for (int i = 0; i < n; ++i) {
        all.insert(all.end(), logits.begin(), logits.end());
        int32_t tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        logits = s.eval(std::span<const int32_t>(&tok, 1));
    }
    return all;
}

}  // namespace

// Per device: the CPU backend's thread pool and the Vulkan backend's command buffers and staging
// memory are both the model's. Without a Vulkan device the vulkan case is skipped (failed under
// MINERVA_REQUIRE_VULKAN=1).
class ApiThreads : public testing::TestWithParam<std::string> {};

TEST_P(ApiThreads, TwoSessionsOfOneModelFromTwoThreads) {
    MINERVA_SHARED_FILE(path, "models/tiny-k-f32.gguf");
    ModelOptions mo;
    mo.device = GetParam();
    mo.n_threads = 2;
    std::shared_ptr<Model> model;
    try {
        model = Model::load(path, mo);
    } catch (const Error& e) {
        const char* r = std::getenv("MINERVA_REQUIRE_VULKAN");
        if (GetParam() == "cpu" || (r && std::string(r) == "1")) GTEST_FAIL() << e.what();
        GTEST_SKIP() << "no Vulkan device: " << e.what();
    }
    const auto& vocab = *model->vocab();
    const auto pa = vocab.tokenize("Once upon a time, there was a little girl", true, false);
    const auto pb = vocab.tokenize("The cat sat on the mat and looked at the dog", true, false);
    SessionOptions so;
    so.n_ctx = 128;
    Session sa(model, so), sb(model, so);
    const int n = 24;
    const auto want_a = greedy_run(sa, pa, n), want_b = greedy_run(sb, pb, n);
    ASSERT_NE(want_a, want_b);
    int differed = 0;
    const int runs = GetParam() == "cpu" ? 10 : 3;  // lavapipe (CI's Vulkan) is slow
    for (int run = 0; run < runs; ++run) {
        std::vector<float> got_a, got_b;
        std::thread ta([&] { got_a = greedy_run(sa, pa, n); });
        std::thread tb([&] { got_b = greedy_run(sb, pb, n); });
        ta.join();
        tb.join();
        differed += (got_a != want_a) + (got_b != want_b);
    }
    EXPECT_EQ(differed, 0) << "of " << 2 * runs << " concurrent runs, " << differed << " differed from the same session run alone";
}
INSTANTIATE_TEST_SUITE_P(Devices, ApiThreads, testing::Values("cpu", "vulkan"));

// Collects what the library logs, and checks the level filter and the stderr default.
TEST(ApiLog, CallbackReceivesMessagesAndLevelFilters) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    std::mutex mu;
    std::vector<std::pair<LogLevel, std::string>> got;
    set_log_callback([&](LogLevel l, std::string_view m) {
        std::lock_guard lock(mu);
        got.emplace_back(l, std::string(m));
    });
    ModelOptions mo;
    mo.device = "cpu";
    set_log_level(LogLevel::Debug);
    Model::load(path, mo);
    bool saw_load = false;
    for (auto& [l, m] : got) saw_load |= l == LogLevel::Debug && m.find("loaded") != std::string::npos;
    EXPECT_TRUE(saw_load) << "no debug message about the load reached the callback (" << got.size() << " messages)";
    got.clear();
    set_log_level(LogLevel::Warn);
    Model::load(path, mo);
    for (auto& [l, m] : got) EXPECT_GE(static_cast<int>(l), static_cast<int>(LogLevel::Warn)) << m;
    set_log_callback({});
    set_log_level(LogLevel::Info);

    EXPECT_THROW(set_log_level(std::string("loud")), Error);
    EXPECT_EQ(parse_log_level("warn"), LogLevel::Warn);
    EXPECT_EQ(parse_log_level("off"), LogLevel::Off);
    EXPECT_FALSE(parse_log_level("verbose"));
    EXPECT_EQ(log_level_name(LogLevel::Error), "error");
}

// With no callback, everything the library says goes to stderr; stdout (fd 1) stays empty.
TEST(ApiLog, DefaultGoesToStderrNeverStdout) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    const std::string dir = testing::TempDir();
    const std::string tag = std::to_string(getpid());
    const std::string out_path = dir + "/api_stdout_" + tag + ".txt", err_path = dir + "/api_stderr_" + tag + ".txt";
    std::fflush(stdout);
    std::fflush(stderr);
    const int saved_out = dup(1), saved_err = dup(2);
    ASSERT_TRUE(std::freopen(out_path.c_str(), "w", stdout));
    ASSERT_TRUE(std::freopen(err_path.c_str(), "w", stderr));
    set_log_callback({});
    set_log_level(LogLevel::Trace);
    {
        ModelOptions mo;  // device auto: the backend choice is logged at info
        auto model = Model::load(path, mo);
        Session s(model);
        GenerateParams gp;
        gp.max_tokens = 8;
        gp.sampling.temperature = 0;
        generate(s, model->vocab()->tokenize("Once", true, false), gp);
    }
    set_log_level(LogLevel::Info);
    std::fflush(stdout);
    std::fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    auto slurp = [](const std::string& p) {
        std::ifstream f(p);
        std::stringstream s;
        s << f.rdbuf();
        return s.str();
    };
    EXPECT_EQ(slurp(out_path), "") << "the library wrote to stdout";
    EXPECT_NE(slurp(err_path).find("minerva: "), std::string::npos) << "no log line on stderr at level trace";
}

// libminerva.so's dynamic symbol table: the public API only (hidden visibility + version script).
TEST(ApiSurface, SharedLibraryExportsOnlyThePublicApi) {
    const std::string lib = std::string(MINERVA_BINARY_DIR) + "/libminerva.so";
    if (access(lib.c_str(), R_OK) != 0) GTEST_FAIL() << "not built: " << lib;
    FILE* p = popen(("nm -D --defined-only '" + lib + "' | c++filt").c_str(), "r");
    ASSERT_TRUE(p);
    char line[4096];
    int n = 0, n_c = 0;
    std::vector<std::string> bad;
    bool has_load = false, has_c_load = false;
    while (std::fgets(line, sizeof line, p)) {
        std::string s(line);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        // "ADDRESS TYPE NAME"
        size_t a = s.find(' '), b = a == std::string::npos ? a : s.find(' ', a + 1);
        if (b == std::string::npos) continue;
        std::string name = s.substr(b + 1);
        ++n;
        if (name.rfind("minerva_", 0) == 0) {
            ++n_c;
            has_c_load |= name == "minerva_model_load";
            continue;
        }
        has_load |= name.rfind("minerva::Model::load(", 0) == 0;
        bool ok = false;
        for (const char* prefix : {"minerva::", "typeinfo for minerva::", "typeinfo name for minerva::", "vtable for minerva::"})
            ok |= name.rfind(prefix, 0) == 0;
        for (const char* internal : {"minerva::cpu::", "minerva::vk::", "minerva::shaders::", "minerva::detail::",
                                     "minerva::logging::", "minerva::jinja", "LlamaModel", "Backend"})
            ok &= name.find(internal) == std::string::npos;
        if (!ok) bad.push_back(name);
    }
    ASSERT_EQ(pclose(p), 0) << "nm failed";
    EXPECT_TRUE(has_load) << "minerva::Model::load is not exported";
    EXPECT_TRUE(has_c_load) << "the C API (minerva_model_load) is not exported";
    EXPECT_LT(n, 300) << "libminerva.so exports " << n << " symbols";
    std::string list;
    for (size_t i = 0; i < bad.size() && i < 20; ++i) list += "\n  " + bad[i];
    EXPECT_TRUE(bad.empty()) << bad.size() << " non-API symbols exported, e.g.:" << list;
    std::fprintf(stderr, "libminerva.so exports %d symbols (%d of the C API)\n", n, n_c);
}

TEST(ApiVersion, MacrosMatchTheLibrary) {
    EXPECT_STREQ(version(), MINERVA_VERSION_STRING);
    EXPECT_EQ(MINERVA_VERSION, MINERVA_MAKE_VERSION(MINERVA_VERSION_MAJOR, MINERVA_VERSION_MINOR, MINERVA_VERSION_PATCH));
    EXPECT_EQ(std::to_string(MINERVA_VERSION_MAJOR) + "." + std::to_string(MINERVA_VERSION_MINOR) + "." +
                  std::to_string(MINERVA_VERSION_PATCH),
              MINERVA_VERSION_STRING);
}

// minerva/minerva.h is "everything a program needs": it includes every public header.
TEST(ApiSurface, UmbrellaHeaderIncludesEveryPublicHeader) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(MINERVA_SOURCE_DIR) / "engine/include/minerva";
    std::ifstream f(dir / "minerva.h");
    std::stringstream s;
    s << f.rdbuf();
    const std::string umbrella = s.str();
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (e.path().extension() != ".h" || name == "minerva.h") continue;
        ++n;
        EXPECT_NE(umbrella.find("#include \"minerva/" + name + "\""), std::string::npos) << "minerva.h misses " << name;
    }
    EXPECT_NE(umbrella.find("#include \"minerva/version.h\""), std::string::npos);  // generated into the build tree
    EXPECT_GE(n, 10);
}

// The C API: status codes and messages for every kind of misuse, buffers sized by the caller,
// and the same results as the C++ API.
TEST(CApi, StatusCodesBuffersAndResults) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    minerva_model* model = reinterpret_cast<minerva_model*>(1);
    EXPECT_EQ(minerva_model_load(nullptr, nullptr, &model), MINERVA_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(model, nullptr);
    EXPECT_STREQ(minerva_last_error(), "minerva_model_load: path is NULL");
    EXPECT_EQ(minerva_model_load("/nonexistent.gguf", nullptr, &model), MINERVA_ERR_FAILED);
    EXPECT_NE(std::string(minerva_last_error()).find("/nonexistent.gguf"), std::string::npos) << minerva_last_error();
    minerva_model_params mp = minerva_model_default_params();
    mp.device = "cpu";
    mp.n_threads = -1;
    EXPECT_EQ(minerva_model_load(path.c_str(), &mp, &model), MINERVA_ERR_INVALID_ARGUMENT);
    mp.n_threads = 1;
    ASSERT_EQ(minerva_model_load(path.c_str(), &mp, &model), MINERVA_OK) << minerva_last_error();
    EXPECT_STREQ(minerva_last_error(), "");
    EXPECT_EQ(minerva_model_n_vocab(model), 512);
    EXPECT_STREQ(minerva_model_arch(model), "llama");

    // tokenize: a too-small buffer says how many are needed
    const char* text = "Once upon a time";
    size_t n = 0;
    EXPECT_EQ(minerva_tokenize(model, text, std::strlen(text), true, false, nullptr, 0, &n), MINERVA_ERR_BUFFER_TOO_SMALL);
    std::vector<int32_t> ids(n);
    ASSERT_EQ(minerva_tokenize(model, text, std::strlen(text), true, false, ids.data(), ids.size(), &n), MINERVA_OK);
    ModelOptions mo;
    mo.device = "cpu";
    auto cpp_model = Model::load(path, mo);
    EXPECT_EQ(ids, cpp_model->vocab()->tokenize(text, true, false));
    char buf[64];
    size_t len = 0;
    ASSERT_EQ(minerva_detokenize(model, ids.data(), ids.size(), true, buf, sizeof buf, &len), MINERVA_OK);
    EXPECT_EQ(std::string(buf, len), text);
    EXPECT_EQ(minerva_detokenize(model, ids.data(), ids.size(), true, buf, 3, &len), MINERVA_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(len, std::strlen(text));
    const int32_t bad_id = 100000;
    EXPECT_EQ(minerva_detokenize(model, &bad_id, 1, true, buf, sizeof buf, &len), MINERVA_ERR_FAILED);

    // sessions: eval, context overflow leaves the session as it was
    minerva_session_params sp = minerva_session_default_params();
    sp.n_ctx = 8;
    minerva_session* session = nullptr;
    ASSERT_EQ(minerva_session_create(model, &sp, &session), MINERVA_OK) << minerva_last_error();
    minerva_model_free(model);  // the session keeps the model alive
    const float* logits = nullptr;
    ASSERT_EQ(minerva_session_eval(session, ids.data(), ids.size(), &logits), MINERVA_OK);
    EXPECT_EQ(minerva_session_n_past(session), static_cast<int32_t>(ids.size()));
    std::vector<int32_t> many(8, ids[1]);
    EXPECT_EQ(minerva_session_eval(session, many.data(), many.size(), nullptr), MINERVA_ERR_CONTEXT_FULL);
    EXPECT_EQ(minerva_session_n_past(session), static_cast<int32_t>(ids.size()));

    // the greedy sampler picks the arg max of those logits
    minerva_sampler_params smp = minerva_sampler_default_params();
    smp.top_p = 7;
    minerva_sampler* sampler = nullptr;
    EXPECT_EQ(minerva_sampler_create(&smp, 512, &sampler), MINERVA_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(minerva_last_error()).find("top_p"), std::string::npos);
    smp = minerva_sampler_default_params();
    smp.temperature = 0;
    ASSERT_EQ(minerva_sampler_create(&smp, 512, &sampler), MINERVA_OK);
    int32_t tok = -1;
    EXPECT_EQ(minerva_sampler_sample(sampler, logits, 100, &tok), MINERVA_ERR_INVALID_ARGUMENT);
    ASSERT_EQ(minerva_sampler_sample(sampler, logits, 512, &tok), MINERVA_OK);
    EXPECT_EQ(tok, static_cast<int32_t>(std::max_element(logits, logits + 512) - logits));
    minerva_sampler_free(sampler);

    // generate: the callback sees the same text the C++ API generates; false cancels
    minerva_session_clear(session);
    minerva_generate_params gp = minerva_generate_default_params();
    gp.max_tokens = 3;  // n_ctx 8 - 5 prompt tokens
    gp.sampling.temperature = 0;
    gp.ignore_eos = true;
    std::string streamed;
    auto cb = [](int32_t, const char* t, size_t l, void* ud) {
        static_cast<std::string*>(ud)->append(t, l);
        return true;
    };
    minerva_generate_result r{};
    ASSERT_EQ(minerva_generate(session, ids.data(), ids.size(), &gp, cb, &streamed, &r), MINERVA_OK) << minerva_last_error();
    EXPECT_EQ(r.n_generated, 3);
    EXPECT_EQ(r.finish_reason, MINERVA_FINISH_LENGTH);
    Session cpp_session(cpp_model, {.n_ctx = 8});
    GenerateParams cgp;
    cgp.max_tokens = 3;
    cgp.sampling.temperature = 0;
    cgp.ignore_eos = true;
    EXPECT_EQ(streamed, generate(cpp_session, ids, cgp).text);
    auto stop_now = [](int32_t, const char*, size_t, void*) { return false; };
    ASSERT_EQ(minerva_generate(session, ids.data(), ids.size(), &gp, stop_now, nullptr, &r), MINERVA_OK);
    EXPECT_EQ(r.finish_reason, MINERVA_FINISH_CANCELLED);
    gp.sampling.temperature = -1;
    EXPECT_EQ(minerva_generate(session, ids.data(), ids.size(), &gp, nullptr, nullptr, nullptr), MINERVA_ERR_INVALID_ARGUMENT);

    // embeddings: unit length, the C++ API's values, too small a buffer refused
    std::vector<float> emb(static_cast<size_t>(cpp_model->info().n_embd));
    EXPECT_EQ(minerva_session_embed(session, ids.data(), ids.size(), emb.data(), 3), MINERVA_ERR_BUFFER_TOO_SMALL);
    ASSERT_EQ(minerva_session_embed(session, ids.data(), ids.size(), emb.data(), emb.size()), MINERVA_OK);
    EXPECT_EQ(emb, embed(cpp_session, ids, model_pooling(*cpp_model)).pooled);
    minerva_session_free(session);
    minerva_session_free(nullptr);
    EXPECT_STREQ(minerva_status_name(MINERVA_ERR_CONTEXT_FULL), "MINERVA_ERR_CONTEXT_FULL");
}

TEST(ApiEmbed, UnitLengthDeterministicAndDistinct) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    ModelOptions mo;
    mo.device = "cpu";
    auto model = Model::load(path, mo);
    Session s(model, {.n_ctx = 64, .n_seq = 2, .n_batch = 4});  // n_batch 4: several passes
    const auto a = model->vocab()->tokenize("Once upon a time, there was a little girl", true, false);
    const auto b = model->vocab()->tokenize("The dog ran to the park to play ball", true, false);
    auto e = [&](const std::vector<int32_t>& t, int seq = 0) { return embed(s, t, Pooling::Mean, true, false, seq).pooled; };
    auto ea = e(a), eb = e(b, 1), ea2 = e(a);
    ASSERT_EQ(ea.size(), static_cast<size_t>(model->info().n_embd));
    double norm = 0, dot = 0, diff = 0;
    for (size_t i = 0; i < ea.size(); ++i) {
        norm += double(ea[i]) * ea[i];
        dot += double(ea[i]) * eb[i];
        diff = std::max(diff, double(std::fabs(ea[i] - ea2[i])));
    }
    EXPECT_NEAR(norm, 1.0, 1e-5);
    EXPECT_LT(diff, 1e-5);
    EXPECT_LT(dot, 0.9999) << "two different texts gave the same embedding";
    EXPECT_EQ(s.n_past(0), 0) << "embedding leaves the sequence empty";
    EXPECT_THROW(e({}), Error);
    std::vector<int32_t> too_long(65, a[1]);
    EXPECT_THROW(e(too_long), Error);
}
