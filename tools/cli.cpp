// The command table and option parser shared by minerva and minerva-bench.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "cli.h"
#include "minerva/minerva.h"

namespace minerva::cli {

std::vector<Command>& commands() {
    static std::vector<Command> table;
    return table;
}

Args::Args(int argc, char** argv, std::initializer_list<std::string_view> value_opts,
           std::initializer_list<std::string_view> flag_opts, size_t max_positional) {
    std::map<std::string, bool> takes_value;
    auto add = [&](std::string_view spec, bool value) {
        std::string canon;
        size_t start = 0;
        while (start <= spec.size()) {
            size_t bar = spec.find('|', start);
            std::string name(spec.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start));
            if (canon.empty()) canon = name;
            alias_[name] = canon;
            takes_value[name] = value;
            if (bar == std::string_view::npos) break;
            start = bar + 1;
        }
    };
    for (auto s : value_opts) add(s, true);
    for (auto s : flag_opts) add(s, false);
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
            std::string name = a, value;
            bool inline_value = false;
            if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
                name = a.substr(0, eq);
                value = a.substr(eq + 1);
                inline_value = true;
            }
            auto it = takes_value.find(name);
            if (it == takes_value.end()) throw Error("unknown option " + name + " (see " + argv[0] + " --help)");
            if (it->second) {
                if (!inline_value) {
                    if (i + 1 >= argc) throw Error("option " + name + " needs a value");
                    value = argv[++i];
                }
                values_[alias_[name]] = value;
            } else {
                if (inline_value) throw Error("option " + name + " takes no value");
                values_[alias_[name]] = std::string(1, '1');
            }
        } else {
            if (positional_.size() >= max_positional)
                throw Error("unexpected argument '" + a + "' (see " + argv[0] + " --help)");
            positional_.push_back(a);
        }
    }
}

std::string Args::canonical(std::string_view name) const {
    auto it = alias_.find(std::string(name));
    return it == alias_.end() ? std::string(name) : it->second;
}
bool Args::has(std::string_view name) const { return values_.count(canonical(name)) > 0; }
std::optional<std::string> Args::get(std::string_view name) const {
    auto it = values_.find(canonical(name));
    if (it == values_.end()) return std::nullopt;
    return it->second;
}
std::string Args::get(std::string_view name, std::string_view def) const {
    auto v = get(name);
    return v ? *v : std::string(def);
}
std::string Args::require(std::string_view name) const {
    auto v = get(name);
    if (!v) throw Error("missing required option " + canonical(name));
    return *v;
}
long long Args::get_int(std::string_view name, long long def) const {
    auto v = get(name);
    if (!v) return def;
    try {
        size_t used = 0;
        long long x = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing");
        return x;
    } catch (const std::exception&) {
        throw Error("option " + canonical(name) + " expects an integer, got '" + *v + "'");
    }
}
double Args::get_float(std::string_view name, double def) const {
    auto v = get(name);
    if (!v) return def;
    try {
        size_t used = 0;
        double x = std::stod(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing");
        return x;
    } catch (const std::exception&) {
        throw Error("option " + canonical(name) + " expects a number, got '" + *v + "'");
    }
}

long long Args::get_int(std::string_view name, long long def, long long lo, long long hi) const {
    auto v = get(name);
    if (!v) return def;
    bool ok = false;
    long long x = 0;
    try {
        size_t used = 0;
        x = std::stoll(*v, &used);
        ok = used == v->size() && x >= lo && x <= hi;
    } catch (const std::exception&) {  // not a number, or beyond long long
    }
    if (!ok)
        throw Error("option " + canonical(name) + " expects an integer from " + std::to_string(lo) + " to " +
                    std::to_string(hi) + ", got '" + *v + "'");
    return x;
}

double Args::get_float(std::string_view name, double def, double lo, double hi) const {
    auto v = get(name);
    if (!v) return def;
    double x = get_float(name, def);
    if (!(x >= lo && x <= hi)) {  // NaN fails too
        auto num = [](double d) {
            std::ostringstream o;
            o << d;
            return o.str();
        };
        throw Error("option " + canonical(name) + " expects a number from " + num(lo) + " to " + num(hi) + ", got '" +
                    *v + "'");
    }
    return x;
}

uint64_t Args::get_u64(std::string_view name, uint64_t def) const {
    auto v = get(name);
    if (!v) return def;
    uint64_t x = 0;
    bool ok = !v->empty() && v->size() <= 20;
    for (char c : *v) {
        if (!ok) break;
        if (c < '0' || c > '9') { ok = false; break; }
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (x > (UINT64_MAX - d) / 10) { ok = false; break; }
        x = x * 10 + d;
    }
    if (!ok) throw Error("option " + canonical(name) + " expects an integer from 0 to " + std::to_string(UINT64_MAX) + ", got '" + *v + "'");
    return x;
}

std::string read_file(const std::string& path) {
    if (path == "-") {
        std::ostringstream s;
        s << std::cin.rdbuf();
        return s.str();
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}


namespace {

const char* kCommonHelp =
    "options of every command:\n"
    "  --log-level LEVEL       library log level: trace, debug, info, warn, error, off (default warn)\n"
    "  -q, --quiet             errors only: no logs, progress or statistics on stderr\n"
    "stdout carries only the command's result; logs, progress and statistics go to stderr.\n";

bool g_quiet = false;
std::atomic<bool> g_interrupted{false};

void on_sigint(int) {
    if (g_interrupted.exchange(true)) _exit(130);  // the second Ctrl-C: stop now
}

// Removes --log-level LEVEL / --log-level=LEVEL / -q / --quiet from argv (from index 2 on: after
// the command name) and applies them. Returns the new argc.
int take_common_options(int argc, char** argv) {
    int out = 2;
    std::string level;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {  // the rest is the command's, untouched
            while (i < argc) argv[out++] = argv[i++];
            break;
        }
        if (a == "-q" || a == "--quiet") {
            g_quiet = true;
        } else if (a == "--log-level") {
            if (i + 1 >= argc) throw Error("option --log-level needs a value");
            level = argv[++i];
        } else if (a.rfind("--log-level=", 0) == 0) {
            level = a.substr(12);
        } else {
            argv[out++] = argv[i];
        }
    }
    // Only warnings and errors by default: a command's own output says what it did.
    set_log_level(g_quiet ? LogLevel::Error : LogLevel::Warn);
    if (!level.empty()) set_log_level(level);  // Error naming the option's accepted values
    return out;
}

}  // namespace

bool quiet() { return g_quiet; }

void catch_interrupt() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocking read of stdin returns, so chat can notice
    sigaction(SIGINT, &sa, nullptr);
}
bool interrupted() { return g_interrupted.load(); }
void clear_interrupt() { g_interrupted.store(false); }

Progress::Progress(std::string label)
    : label_(std::move(label)), tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
    if (drawn_ && tty_) std::fputc('\n', stderr);
}

ProgressCallback Progress::callback() {
    return [this](float fraction) {
        update(fraction);
        return !interrupted();
    };
}

void Progress::update(float fraction) {
    if (g_quiet) return;
    const int pct = static_cast<int>(std::clamp(fraction, 0.f, 1.f) * 100.f);
    if (tty_) {
        if (pct == last_) return;
        constexpr int kWidth = 30;
        const int fill = pct * kWidth / 100;
        std::fprintf(stderr, "\r%s [%s%s] %3d%%", label_.c_str(), std::string(static_cast<size_t>(fill), '#').c_str(),
                     std::string(static_cast<size_t>(kWidth - fill), ' ').c_str(), pct);
        drawn_ = true;
    } else {
        // Lines only for work that takes a while: a log of quick loads stays quiet.
        if (std::chrono::steady_clock::now() - start_ < std::chrono::seconds(1)) return;
        if (pct / 25 == last_ / 25 && last_ >= 0) return;
        if (pct / 25 == 0) return;  // from 25% on
        std::fprintf(stderr, "%s: %d%%\n", label_.c_str(), pct / 25 * 25);
    }
    std::fflush(stderr);
    last_ = pct;
}

void usage_of_commands(const char* prog, FILE* out) {
    std::fprintf(out, "usage: %s <command> [options]   (%s <command> --help for its options)\n\ncommands:\n", prog, prog);
    auto cmds = minerva::cli::commands();
    std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
    for (const auto& c : cmds) std::fprintf(out, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
    std::fprintf(out, "\n%s", kCommonHelp);
}

int run_main(const char* prog, int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        usage_of_commands(prog, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        std::printf("%s %s\n", prog, minerva::version());
        return 0;
    }
    for (const auto& c : minerva::cli::commands()) {
        if (c.name == argv[1]) {
            try {
                argc = take_common_options(argc, argv);
                int rc = c.fn(argc - 1, argv + 1);
                for (int i = 2; i < argc; ++i)
                    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) std::fprintf(stdout, "\n%s", kCommonHelp);
                return rc;
            } catch (const minerva::Error& e) {
                std::fprintf(stderr, "%s %s: error: %s\n", prog, argv[1], e.what());
                return 1;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "%s %s: internal error: %s\n", prog, argv[1], e.what());
                return 1;
            }
        }
    }
    std::fprintf(stderr, "%s: unknown command '%s'\n\n", prog, argv[1]);
    usage_of_commands(prog, stderr);
    return 2;
}

ModelOptions model_options(const Args& a) {
    ModelOptions mo;
    mo.device = a.get("--device", "auto");
    if (mo.device != "auto" && mo.device != "cpu" && mo.device != "vulkan" && mo.device.rfind("vulkan:", 0) != 0)
        throw Error("option --device expects auto, cpu, vulkan or vulkan:N, got '" + mo.device + "'");
    mo.n_threads = static_cast<int>(a.get_int("-t", 0, 0, 1024));
    return mo;
}

std::shared_ptr<Model> load_model(const Args& a) {
    ModelOptions mo = model_options(a);
    const std::string path = a.require("-m");
    std::string name = path.substr(path.find_last_of('/') + 1);
    Progress progress("loading " + name);
    mo.progress = progress.callback();
    return Model::load(path, mo);
}

void read_cache_types(const Args& a, SessionOptions& so) {
    if (a.has("--kv-f32")) so.kv_type_k = so.kv_type_v = KvType::F32;
    if (auto t = a.get("--cache-type-k")) so.kv_type_k = parse_kv_type(*t);
    if (auto t = a.get("--cache-type-v")) so.kv_type_v = parse_kv_type(*t);
}

void read_sampling(const Args& a, SamplerParams& sp) {
    sp.temperature = static_cast<float>(a.get_float("--temp", sp.temperature, 0.0, 100.0));
    sp.top_k = static_cast<int>(a.get_int("--top-k", sp.top_k, 0, 1 << 30));
    sp.top_p = static_cast<float>(a.get_float("--top-p", sp.top_p, 0.0, 1.0));
    sp.min_p = static_cast<float>(a.get_float("--min-p", sp.min_p, 0.0, 1.0));
    sp.repeat_penalty = static_cast<float>(a.get_float("--repeat-penalty", sp.repeat_penalty, 0.01, 100.0));
    sp.penalty_last_n = static_cast<int>(a.get_int("--repeat-last-n", sp.penalty_last_n, -1, 1 << 30));
    sp.presence_penalty = static_cast<float>(a.get_float("--presence-penalty", sp.presence_penalty, -2.0, 2.0));
    sp.frequency_penalty = static_cast<float>(a.get_float("--frequency-penalty", sp.frequency_penalty, -2.0, 2.0));
    sp.seed = a.get_u64("--seed", sp.seed);
}

}  // namespace minerva::cli
