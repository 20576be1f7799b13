// tests/test_cli_output.cpp: the minerva CLI as a user runs it. stdout carries only each
// command's result (logits parses as JSON, run --ids is ids, ...) while logs, progress and
// statistics go to stderr; --log-level and --quiet work on every command; argument errors name
// the option and come before any model is loaded; Ctrl-C stops `run` with its statistics and
// interrupts a `chat` reply while keeping the conversation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "common.h"

namespace {

const std::string kCli = std::string(MINERVA_BINARY_DIR) + "/minerva";
const std::string kBench = std::string(MINERVA_BINARY_DIR) + "/minerva-bench";

struct Result {
    int status = -1;  // exit status, or 128 + signal
    std::string out, err;
};

std::string slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// Runs argv with stdin from /dev/null (or `input`), capturing stdout and stderr apart.
Result run(const std::vector<std::string>& argv, const std::string& input = "") {
    // ctest runs the cases of this file as parallel processes: file names carry the pid
    const std::string dir = testing::TempDir() + "/minerva-cli-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    const std::string out = dir + "/out.txt", err = dir + "/err.txt", in = dir + "/in.txt";
    std::ofstream(in, std::ios::binary) << input;
    pid_t pid = fork();
    if (pid == 0) {
        int fi = open(in.c_str(), O_RDONLY), fo = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644),
            fe = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fi, 0), dup2(fo, 1), dup2(fe, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    Result r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

bool matches(const std::string& s, const std::string& re) { return std::regex_search(s, std::regex(re)); }

// No line of a library log ("minerva: info: ...") or progress display on stdout.
void expect_clean_stdout(const Result& r, const std::string& what) {
    EXPECT_EQ(r.out.find("minerva: "), std::string::npos) << what << " stdout:\n" << r.out;
    EXPECT_EQ(r.out.find("loading "), std::string::npos) << what << " stdout:\n" << r.out;
    EXPECT_EQ(r.out.find("[info]"), std::string::npos) << what << " stdout:\n" << r.out;
}

}  // namespace

TEST(CliOutput, LogitsStdoutIsJson) {
    MINERVA_SHARED_FILE(model, "models/stories260K-f32.gguf");
    // --log-level trace: the library says as much as it can, all of it on stderr
    Result r = run({kCli, "logits", "-m", model, "-p", "Once upon a time", "--top", "3", "--log-level", "trace"});
    ASSERT_EQ(r.status, 0) << r.err;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << "stdout is not JSON:\n" << r.out.substr(0, 300);
    EXPECT_EQ(j["prompt_tokens"].size(), j["prompt_top3"].size());
    EXPECT_GT(j["prompt_tokens"].size(), 1u);
    EXPECT_TRUE(matches(r.err, "minerva: (debug|info): ")) << "no library log on stderr at trace:\n" << r.err;
}

// Every command: stdout holds its result and nothing else, at the most talkative log level.
TEST(CliOutput, EveryCommandsStdoutHoldsOnlyItsResult) {
    MINERVA_SHARED_FILE(model, "models/stories260K-f32.gguf");
    MINERVA_SHARED_FILE(text, "text/stories.txt");
    const std::string dir = testing::TempDir() + "/minerva-cli-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    const std::string lv = "--log-level=debug";
    struct Case {
        std::vector<std::string> argv;
        std::string stdout_re;  // the whole of stdout must match
    };
    std::vector<Case> cases = {
        {{kCli, "run", "-m", model, "-p", "Once upon a time", "-n", "8", "--temp", "0", "--ids", lv}, R"(^[0-9]+( [0-9]+)*\n$)"},
        {{kCli, "run", "-m", model, "-p", "Once upon a time", "-n", "8", "--temp", "0", lv}, R"(^[^\n]*\n$)"},
        {{kCli, "perplexity", "-m", model, "-f", text, "-c", "128", lv},
         R"(^(\[[0-9]+\] [0-9.]+\n)+chunks = [0-9]+, scored tokens = [0-9]+, mean NLL = [0-9.]+\nPPL = [0-9.]+\n$)"},
        {{kCli, "tokenize", "-m", model, "-p", "Hello world", lv}, R"(^[0-9]+( [0-9]+)*\n$)"},
        {{kCli, "detokenize", "-m", model, "-p", "1 403 407", lv}, R"(^[^\n]*\n$)"},
        {{kCli, "inspect", "-m", model, "--json", lv}, R"(^\{[\s\S]*\}\n$)"},
        {{kCli, "quantize", model, dir + "/q.gguf", "Q8_0", lv}, R"(^$)"},
        {{kCli, "synth", "--dims", "64,2,4,2,128,0", "--type", "F16", "--vocab-from", model, dir + "/s.gguf", lv}, R"(^$)"},
        {{kBench, "e2e", "-m", model, "-p", "16", "-n", "8", "--reps", "1", lv}, R"(^model .*\nbackend .*\npp.*\ntg.*\n$)"},
    };
    for (const auto& c : cases) {
        std::string what;
        for (size_t i = 1; i < c.argv.size(); ++i) what += c.argv[i] + " ";
        Result r = run(c.argv);
        EXPECT_EQ(r.status, 0) << what << "\nstderr:\n" << r.err;
        expect_clean_stdout(r, what);
        EXPECT_TRUE(std::regex_search(r.out, std::regex(c.stdout_re)))
            << what << "stdout is not just the result:\n" << r.out.substr(0, 500);
    }
    Result r = run({kCli, "inspect", "-m", model, "--json"});
    nlohmann::json j;
    EXPECT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out.substr(0, 300);
    EXPECT_TRUE(j.is_object());
}

TEST(CliOutput, QuietLeavesStderrEmptyAndLogLevelIsChecked) {
    MINERVA_SHARED_FILE(model, "models/stories260K-f32.gguf");
    Result r = run({kCli, "run", "-m", model, "-p", "Once upon a time", "-n", "4", "--temp", "0", "--quiet"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "") << "--quiet printed on stderr";
    EXPECT_FALSE(r.out.empty());
    r = run({kCli, "run", "-m", model, "-p", "Once upon a time", "-n", "4", "--temp", "0", "--log-level", "info"});
    EXPECT_TRUE(matches(r.err, "minerva: info: ")) << r.err;
    EXPECT_TRUE(matches(r.err, "generation: 4 tokens")) << r.err;
    r = run({kCli, "tokenize", "-m", model, "-p", "x", "--log-level", "loud"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(matches(r.err, "unknown log level 'loud'")) << r.err;
}

// The issue's cases: each is refused with exit 1 and a message naming the option, before the
// model is touched (the model path does not exist, so an error about it would mean it loaded).
TEST(CliOutput, ArgumentErrorsNameTheOptionBeforeLoading) {
    const std::string missing = testing::TempDir() + "/no-such-model.gguf";
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    std::vector<Case> cases = {
        {{"run", "-p", "x", "--seed", "99999999999999999999999"}, "option --seed expects an integer from 0 to 18446744073709551615"},
        {{"run", "-p", "x", "--top-p", "7"}, "option --top-p expects a number from 0 to 1, got '7'"},
        {{"run", "-p", "x", "--temp", "-3"}, "option --temp expects a number from 0 to 100, got '-3'"},
        {{"run", "-p", "x", "-t", "-4"}, "option -t expects an integer from 0 to 1024, got '-4'"},
        {{"run", "-p", "x", "stray"}, "unexpected argument 'stray'"},
        {{"run", "-p", "x", "-n", "ten"}, "option -n expects an integer"},
        {{"run", "-p", "x", "--device", "gpu"}, "option --device expects auto, cpu, vulkan or vulkan:N"},
        {{"chat", "--min-p", "2"}, "option --min-p expects a number from 0 to 1"},
        {{"chat", "extra"}, "unexpected argument 'extra'"},
        {{"logits", "-p", "x", "--top", "0"}, "option --top expects an integer from 1"},
        {{"perplexity", "-f", "x", "-c", "2"}, "option -c expects an integer from 4"},
        {{"tokenize", "-p", "x", "stray"}, "unexpected argument 'stray'"},
        {{"devices", "stray"}, "unexpected argument 'stray'"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> argv = {kCli};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        argv.insert(argv.end(), {"-m", missing});
        if (c.args[0] == "devices") argv.resize(argv.size() - 2);
        Result r = run(argv);
        std::string what;
        for (auto& a : c.args) what += a + " ";
        EXPECT_EQ(r.status, 1) << what << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << what << "\nstderr: " << r.err;
        EXPECT_EQ(r.err.find("internal error"), std::string::npos) << what << r.err;
        EXPECT_EQ(r.err.find("no-such-model"), std::string::npos) << what << ": the model was opened first:\n" << r.err;
        EXPECT_EQ(r.out, "") << what;
    }
}

namespace {

// A child with pipes on stdin and stdout (stderr to a file), for the Ctrl-C tests.
struct Child {
    pid_t pid = -1;
    int in = -1, out = -1;
    std::string err_path;

    explicit Child(const std::vector<std::string>& argv) {
        err_path = testing::TempDir() + "/minerva-cli-child-" + std::to_string(getpid()) + ".txt";
        int pin[2], pout[2];
        EXPECT_EQ(pipe(pin), 0);
        EXPECT_EQ(pipe(pout), 0);
        pid = fork();
        if (pid == 0) {
            int fe = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(pin[0], 0), dup2(pout[1], 1), dup2(fe, 2);
            close(pin[1]), close(pout[0]);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execv(args[0], args.data());
            _exit(127);
        }
        close(pin[0]), close(pout[1]);
        in = pin[1], out = pout[0];
    }
    void write_line(const std::string& s) { EXPECT_EQ(::write(in, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
    // Reads stdout until it holds at least n more bytes (or seconds pass); returns what came.
    std::string read_some(size_t n, double seconds) {
        std::string got;
        auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (got.size() < n && std::chrono::steady_clock::now() < until) {
            pollfd p{out, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) continue;
            char buf[4096];
            ssize_t k = ::read(out, buf, sizeof buf);
            if (k <= 0) break;
            got.append(buf, static_cast<size_t>(k));
        }
        return got;
    }
    int wait() {
        close(in);
        read_some(SIZE_MAX, 30);  // drain
        int st = 0;
        waitpid(pid, &st, 0);
        close(out);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
};

}  // namespace

TEST(CliInterrupt, CtrlCStopsRunAndPrintsStatistics) {
    MINERVA_SHARED_FILE(model, "models/tiny-k-f32.gguf");
    // ~4 s of generation on one thread; the signal comes after the first tokens.
    Child c({kCli, "run", "-m", model, "-p", "Once upon a time", "-n", "2000", "-c", "2048", "--ignore-eos", "--temp",
             "0", "-t", "1", "--device", "cpu"});
    std::string first = c.read_some(8, 60);
    ASSERT_GE(first.size(), 8u) << "no output before the timeout";
    kill(c.pid, SIGINT);
    const int status = c.wait();
    const std::string err = slurp(c.err_path);
    EXPECT_EQ(status, 130) << err;
    EXPECT_TRUE(matches(err, R"(generation: [0-9]+ tokens in .* \(finish: interrupted\))")) << err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(err, m, std::regex(R"(generation: ([0-9]+) tokens)")));
    EXPECT_LT(std::stoi(m[1]), 2000) << "generation was not stopped";
}

TEST(CliInterrupt, CtrlCInterruptsAChatReplyAndKeepsTheConversation) {
    MINERVA_SHARED_FILE(model, "models/tiny-k-f32.gguf");
    Child c({kCli, "chat", "-m", model, "-n", "600", "-c", "4096", "--temp", "0", "-t", "1", "--device", "cpu",
             "--chat-template", "chatml", "--print-prompt"});
    c.write_line("Tell me a story\n");
    std::string reply = c.read_some(8, 60);
    ASSERT_GE(reply.size(), 8u);
    kill(c.pid, SIGINT);
    // The chat goes on: a second turn is answered, with the first exchange in its prompt.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    c.write_line("And then?\n/exit\n");
    const int status = c.wait();
    const std::string err = slurp(c.err_path);
    EXPECT_EQ(status, 0) << err;
    EXPECT_TRUE(matches(err, R"(\(reply interrupted\))")) << err;
    // the second rendered prompt holds the first user turn and an assistant turn before "And then?"
    const size_t second = err.rfind("[prompt]");
    ASSERT_NE(second, std::string::npos) << err;
    const std::string p2 = err.substr(second);
    EXPECT_TRUE(matches(p2, R"(<\|im_start\|>user\nTell me a story<\|im_end\|>\n<\|im_start\|>assistant\n[^]*<\|im_end\|>\n<\|im_start\|>user\nAnd then\?)"))
        << p2.substr(0, 600);
    EXPECT_NE(err.find("[prompt]"), second) << "only one turn was rendered";
}
