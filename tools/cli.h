// tools/cli.h: the minerva CLI's command table and argument parser. Each tools/cmd_*.cpp file
// registers its subcommands with a static Registrar, so adding one touches no other file.
#pragma once
#include <chrono>
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
// options take the next argument (or --opt=value); flags take none. Unknown options, missing
// values and more than max_positional plain arguments throw minerva::Error naming them, so a
// command reports its argument errors before it loads anything.
class Args {
public:
    Args(int argc, char** argv, std::initializer_list<std::string_view> value_opts,
         std::initializer_list<std::string_view> flag_opts = {}, size_t max_positional = 0);

    bool has(std::string_view name) const;  // any alias, e.g. has("-m")
    std::optional<std::string> get(std::string_view name) const;
    std::string get(std::string_view name, std::string_view def) const;
    std::string require(std::string_view name) const;  // Error if absent
    long long get_int(std::string_view name, long long def) const;
    double get_float(std::string_view name, double def) const;
    // The same, and an Error naming the option and the range when the value lies outside [lo, hi].
    long long get_int(std::string_view name, long long def, long long lo, long long hi) const;
    double get_float(std::string_view name, double def, double lo, double hi) const;
    uint64_t get_u64(std::string_view name, uint64_t def) const;  // 0 .. 2^64-1
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

// Options every command takes (run_main removes them before the command sees its arguments):
//   --log-level LEVEL  the library's log level (trace, debug, info, warn, error, off; default warn)
//   -q, --quiet        errors only: no logs, progress or statistics on stderr
// stdout carries only a command's result; everything else goes to stderr.
bool quiet();

// A progress display on stderr for work that reports a fraction done: a bar redrawn in place
// when stderr is a terminal, else a plain line at every quarter once the work has taken a
// second (quick work prints none). Nothing under --quiet.
// callback() returns false once Ctrl-C was pressed, which cancels the work.
class Progress {
public:
    explicit Progress(std::string label);
    ~Progress();  // ends the bar's line
    ProgressCallback callback();

private:
    void update(float fraction);
    std::string label_;
    bool tty_;
    std::chrono::steady_clock::time_point start_;
    bool drawn_ = false;
    int last_ = -1;
};

// Ctrl-C: the first SIGINT sets a flag the command polls (generation stops, loading is
// cancelled); a second one ends the program at once (exit 130).
void catch_interrupt();
bool interrupted();
void clear_interrupt();

// The model of a generating command: -m PATH on --device (default auto) with -t threads (default:
// physical cores), with a progress display while the weights load.
std::shared_ptr<Model> load_model(const Args& a);
// The model options of a command (--device, -t), checked.
ModelOptions model_options(const Args& a);

// Sets the sampling options present in a (--temp, --top-k, --top-p, --min-p, --repeat-penalty,
// --repeat-last-n, --presence-penalty, --frequency-penalty, --seed) in sp; absent ones keep
// sp's values. Error naming the option for a value out of its range.
void read_sampling(const Args& a, SamplerParams& sp);
// --cache-type-k / --cache-type-v (f16, f32, q8_0, q4_0) and --kv-f32 (both f32) into so.
void read_cache_types(const Args& a, SessionOptions& so);
// The options read_cache_types understands, for a command's option list and help text.
inline constexpr const char* kCacheTypeHelp =
    "  -ctk, --cache-type-k T  K cache type: f16 (default), f32, q8_0, q4_0\n"
    "  -ctv, --cache-type-v T  V cache type: f16 (default), f32, q8_0, q4_0\n";

}  // namespace minerva::cli
