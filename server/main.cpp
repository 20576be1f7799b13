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
      --device DEV          auto, cpu, vulkan, vulkan:N
  -np, --parallel N         slots per model, decoded as one batch (default 4)
      --max-queue N         requests waiting for a slot before 429 (default 64)
      --max-loaded-models N models kept loaded; least recently used unloads (default 2)
      --chat-template NAME|FILE  override the model's chat template (chatml, llama2, llama3,
                            mistral, zephyr, gemma, phi3, tinyllama, or a Jinja file)
      --api-key KEY         require 'Authorization: Bearer KEY' (not for /health, /ready)
      --cors ORIGINS        allow these origins ('*' or a comma list); CORS is off by default
      --max-body BYTES      largest request body (default 8 MiB; larger -> 413)
      --config FILE         config file (default ~/.minerva/config.json); flags override it
      --log-level LEVEL     trace, debug, info, warn, error, off
)";

static minerva::serve::Api* g_api = nullptr;

static void on_signal(int) {
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
        g_api = &api;
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::signal(SIGPIPE, SIG_IGN);
        if (!api.listen()) {
            std::fprintf(stderr, "minerva-serve: error: cannot listen on %s:%d\n", cfg.host.c_str(), cfg.port);
            return 1;
        }
        g_api = nullptr;
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "minerva-serve: error: %s\n", e.what());
        return 1;
    }
}
