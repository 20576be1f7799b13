// The command table and option parser shared by minerva and minerva-bench.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "minerva/minerva.h"

namespace minerva::cli {

std::vector<Command>& commands() {
    static std::vector<Command> table;
    return table;
}

Args::Args(int argc, char** argv, std::initializer_list<std::string_view> value_opts,
           std::initializer_list<std::string_view> flag_opts) {
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


void usage_of_commands(const char* prog, FILE* out) {
    std::fprintf(out, "usage: %s <command> [options]   (%s <command> --help for its options)\n\ncommands:\n", prog, prog);
    auto cmds = minerva::cli::commands();
    std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
    for (const auto& c : cmds) std::fprintf(out, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
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
                return c.fn(argc - 1, argv + 1);
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

std::shared_ptr<Model> load_model(const Args& a, bool progress) {
    ModelOptions mo;
    mo.device = a.get("--device", "auto");
    mo.n_threads = static_cast<int>(a.get_int("-t", 0));
    mo.progress = progress;
    return Model::load(a.require("-m"), mo);
}

void read_cache_types(const Args& a, SessionOptions& so) {
    if (a.has("--kv-f32")) so.kv_type_k = so.kv_type_v = KvType::F32;
    if (auto t = a.get("--cache-type-k")) so.kv_type_k = parse_kv_type(*t);
    if (auto t = a.get("--cache-type-v")) so.kv_type_v = parse_kv_type(*t);
}

void read_sampling(const Args& a, SamplerParams& sp) {
    sp.temperature = static_cast<float>(a.get_float("--temp", sp.temperature));
    sp.top_k = static_cast<int>(a.get_int("--top-k", sp.top_k));
    sp.top_p = static_cast<float>(a.get_float("--top-p", sp.top_p));
    sp.min_p = static_cast<float>(a.get_float("--min-p", sp.min_p));
    sp.repeat_penalty = static_cast<float>(a.get_float("--repeat-penalty", sp.repeat_penalty));
    sp.penalty_last_n = static_cast<int>(a.get_int("--repeat-last-n", sp.penalty_last_n));
    sp.presence_penalty = static_cast<float>(a.get_float("--presence-penalty", sp.presence_penalty));
    sp.frequency_penalty = static_cast<float>(a.get_float("--frequency-penalty", sp.frequency_penalty));
    if (auto s = a.get("--seed")) sp.seed = static_cast<uint64_t>(std::stoull(*s));
}

}  // namespace minerva::cli
