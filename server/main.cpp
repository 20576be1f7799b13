// minerva-serve: an OpenAI-compatible HTTP server over libminerva. See docs/server.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "api.h"
#include "minerva/minerva.h"

using minerva::serve::Config;

static const char* kUsage = R"(usage: minerva-serve [options]

  -m, --model PATH          serve this GGUF file (id = file name without .gguf)
      --models-dir DIR      serve every .gguf in DIR (default ~/.minerva/models)
      --default-model ID    model used when a request names none
      --host HOST           bind address (default 127.0.0.1)
      --port PORT           port (default 11434; 0 = any free port)
  -t, --threads N           CPU threads (default: physical cores)
  -c, --ctx-size N          context cells per slot (default: min(trained, 4096))
      --context-shift       a chat longer than the context drops its oldest turns (after the system
                            messages) instead of a 400, and a full context during generation drops
                            the oldest half of the tokens after n_keep instead of finishing "length"
  -ctk, --cache-type-k T    K cache type: f16 (default), f32, q8_0, q4_0
  -ctv, --cache-type-v T    V cache type: f16 (default), f32, q8_0, q4_0
      --device DEV          auto, cpu, vulkan, vulkan:N
  -np, --parallel N         slots per model, decoded as one batch (default 4)
      --max-queue N         requests waiting for a slot before 429 (default 64)
      --max-loaded-models N models kept loaded; least recently used unloads (default 2)
      --chat-template NAME|FILE  override the model's chat template (chatml, llama2, llama3,
                            mistral, zephyr, gemma, gemma2, phi3, phi4, phi4-mini, qwen2.5,
                            qwen3, tinyllama, or a Jinja file)
      --api-key KEY         require 'Authorization: Bearer KEY' (not for /health, /ready)
      --cors ORIGINS        allow these origins ('*' or a comma list); CORS is off by default
      --max-body BYTES      largest request body (default 8 MiB; larger -> 413)
      --max-connections N   open client connections (default 1024; beyond -> 503)
      --workers N           threads handling requests (default parallel + max-queue + 16)
      --header-timeout S    a request head must arrive within S seconds (default 10; -> 408)
      --keep-alive-timeout S  idle keep-alive connections close after S seconds (default 15)
      --drain-timeout S     on SIGINT/SIGTERM, in-flight requests get S seconds (default 30)
      --eviction-policy P   lru, lfu or fifo: which loaded model is unloaded first (default lru)
      --max-memory BYTES    memory budget of loaded models (default 90% of physical memory)
      --keep-alive DUR      unload a model idle this long (30s, 5m, 1h; default -1 = never)
      --config FILE         config file (default ~/.minerva/config.json); flags override it
      --log-level LEVEL     trace, debug, info, warn, error, off
)";

static minerva::serve::Api* g_api = nullptr;

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) {
    g_signal = sig;
    if (g_api) g_api->stop();
}

int main(int argc, char** argv) {
    try {
        std::vector<std::string> args(argv + 1, argv + argc);
        Config cfg;
        // the config file first, then the flags over it
        std::string config_path = minerva::serve::default_config_path();
        bool explicit_config = false;
        for (size_t k = 0; k < args.size(); ++k) {
            if (args[k] == "--help" || args[k] == "-h") {
                std::fputs(kUsage, stdout);
                return 0;
            }
            if (args[k] == "--config") {
                if (k + 1 >= args.size()) throw minerva::Error("--config needs a value");
                config_path = args[k + 1];
                explicit_config = true;
            }
        }
        minerva::serve::load_config_file(config_path, explicit_config, cfg);

        auto integer = [](const std::string& flag, const std::string& v, long lo, long hi) {
            try {
                size_t used = 0;
                long x = std::stol(v, &used);
                if (used == v.size() && x >= lo && x <= hi) return static_cast<int>(x);
            } catch (const std::exception&) {
            }
            throw minerva::Error(flag + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
        };
        for (size_t k = 0; k < args.size(); ++k) {
            const std::string& a = args[k];
            auto value = [&]() -> std::string {
                if (k + 1 >= args.size()) throw minerva::Error(a + " needs a value");
                return args[++k];
            };
            if (a == "-m" || a == "--model") cfg.model_path = value();
            else if (a == "--models-dir") cfg.models_dir = value();
            else if (a == "--default-model") cfg.default_model = value();
            else if (a == "--host") cfg.host = value();
            else if (a == "--port") cfg.port = integer(a, value(), 0, 65535);
            else if (a == "-t" || a == "--threads") cfg.threads = integer(a, value(), 0, 1024);
            else if (a == "-c" || a == "--ctx-size" || a == "--context") cfg.context = integer(a, value(), 0, 1 << 20);
            else if (a == "--context-shift") cfg.context_shift = true;
            else if (a == "-ctk" || a == "--cache-type-k") cfg.cache_type_k = minerva::kv_type_name(minerva::parse_kv_type(value()));
            else if (a == "-ctv" || a == "--cache-type-v") cfg.cache_type_v = minerva::kv_type_name(minerva::parse_kv_type(value()));
            else if (a == "--device") cfg.device = value();
            else if (a == "-np" || a == "--parallel") cfg.parallel = integer(a, value(), 1, 256);
            else if (a == "--max-queue") cfg.max_queue = integer(a, value(), 0, 1 << 16);
            else if (a == "--max-loaded-models") cfg.max_loaded_models = integer(a, value(), 1, 64);
            else if (a == "--chat-template") cfg.chat_template = value();
            else if (a == "--api-key") cfg.api_key = value();
            else if (a == "--cors") cfg.cors = value();
            else if (a == "--max-body") cfg.max_body_bytes = static_cast<size_t>(integer(a, value(), 1024, 1 << 30));
            else if (a == "--config") value();
            else if (a == "--log-level") cfg.log_level = value();
            else if (a == "--max-connections") cfg.max_connections = integer(a, value(), 16, 1 << 20);
            else if (a == "--workers") cfg.workers = integer(a, value(), 1, 1024);
            else if (a == "--header-timeout") cfg.header_timeout_s = integer(a, value(), 1, 3600);
            else if (a == "--keep-alive-timeout") cfg.keep_alive_timeout_s = integer(a, value(), 1, 3600);
            else if (a == "--drain-timeout") cfg.drain_timeout_s = integer(a, value(), 0, 3600);
            else if (a == "--eviction-policy") {
                std::string p = value();
                if (p == "lru") cfg.eviction_policy = minerva::serve::EvictionPolicy::Lru;
                else if (p == "lfu") cfg.eviction_policy = minerva::serve::EvictionPolicy::Lfu;
                else if (p == "fifo") cfg.eviction_policy = minerva::serve::EvictionPolicy::Fifo;
                else throw minerva::Error("--eviction-policy must be lru, lfu or fifo, got '" + p + "'");
            } else if (a == "--max-memory") {
                std::string v = value();
                size_t used = 0;
                long long x = -1;
                try {
                    x = std::stoll(v, &used);
                } catch (const std::exception&) {
                }
                if (used != v.size() || x < 0) throw minerva::Error("--max-memory must be a number of bytes, got '" + v + "'");
                cfg.max_memory_bytes = x;
            } else if (a == "--keep-alive") cfg.keep_alive_s = minerva::serve::parse_duration(value());
            else throw minerva::Error("unknown option '" + a + "' (see --help)");
        }
        if (cfg.models_dir.empty() && cfg.model_path.empty()) cfg.models_dir = minerva::serve::default_models_dir();
        // Logs go to stderr (stdout stays clean), the library's through the server's logger.
        auto spd = [](minerva::LogLevel l) {
            return l == minerva::LogLevel::Off ? spdlog::level::off : static_cast<spdlog::level::level_enum>(l);
        };
        spdlog::set_default_logger(spdlog::stderr_color_mt("minerva-serve"));
        minerva::set_log_level(cfg.log_level);
        spdlog::set_level(spd(minerva::log_level()));
        minerva::set_log_callback([spd](minerva::LogLevel l, std::string_view msg) { spdlog::log(spd(l), "{}", msg); });
        if (!cfg.chat_template.empty()) minerva::ChatTemplate::resolve(cfg.chat_template, "");  // fail early

        minerva::serve::Api api(cfg);
        std::signal(SIGPIPE, SIG_IGN);
        api.start();
        g_api = &api;
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        api.run();
        g_api = nullptr;
        if (g_signal) spdlog::info("shutdown: stopped on signal {}", static_cast<int>(g_signal));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "minerva-serve: error: %s\n", e.what());
        return 1;
    }
}
