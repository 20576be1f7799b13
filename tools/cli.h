// tools/cli.h: the minerva CLI's command table and argument parser. Each tools/cmd_*.cpp file
// registers its subcommands with a static Registrar, so adding one touches no other file.
#pragma once
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/model.h"

namespace minerva::cli {

using CommandFn = int (*)(int argc, char** argv);  // argv[0] is the subcommand name

struct Command {
    std::string name;
    std::string summary;
    CommandFn fn;
};

std::vector<Command>& commands();

struct Registrar {
    Registrar(const char* name, const char* summary, CommandFn fn) { commands().push_back({name, summary, fn}); }
};

// A small option parser. Options are spelled "-m|--model" (aliases separated by '|'); value
// options take the next argument (or --opt=value); flags take none. Unknown options and missing
// values throw minerva::Error with a message naming them.
class Args {
public:
    Args(int argc, char** argv, std::initializer_list<std::string_view> value_opts,
         std::initializer_list<std::string_view> flag_opts = {});

    bool has(std::string_view name) const;  // any alias, e.g. has("-m")
    std::optional<std::string> get(std::string_view name) const;
    std::string get(std::string_view name, std::string_view def) const;
    std::string require(std::string_view name) const;  // Error if absent
    long long get_int(std::string_view name, long long def) const;
    double get_float(std::string_view name, double def) const;
    const std::vector<std::string>& positional() const { return positional_; }

private:
    std::string canonical(std::string_view name) const;
    std::map<std::string, std::string> alias_;  // every spelling -> canonical (first) spelling
    std::map<std::string, std::string> values_;
    std::vector<std::string> positional_;
};

// The whole program: dispatches argv[1] to its command, prints usage, turns Errors into exit
// status 1 with one message line. prog names the program in messages.
int run_main(const char* prog, int argc, char** argv);

// Reads a whole file (or stdin for "-"); Error when it cannot.
std::string read_file(const std::string& path);

// The model of a generating command: -m PATH on --device (default auto) with -t threads (default:
// physical cores); progress: a progress line while large weights upload.
std::shared_ptr<Model> load_model(const Args& a, bool progress);

// Sets the sampling options present in a (--temp, --top-k, --top-p, --min-p, --repeat-penalty,
// --repeat-last-n, --presence-penalty, --frequency-penalty, --seed) in sp; absent ones keep
// sp's values.
void read_sampling(const Args& a, SamplerParams& sp);
// --cache-type-k / --cache-type-v (f16, f32, q8_0, q4_0) and --kv-f32 (both f32) into so.
void read_cache_types(const Args& a, SessionOptions& so);
// The options read_cache_types understands, for a command's option list and help text.
inline constexpr const char* kCacheTypeHelp =
    "  -ctk, --cache-type-k T  K cache type: f16 (default), f32, q8_0, q4_0\n"
    "  -ctv, --cache-type-v T  V cache type: f16 (default), f32, q8_0, q4_0\n";

}  // namespace minerva::cli
