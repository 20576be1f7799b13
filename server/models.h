// models.h: configuration, errors in OpenAI's shape, and the pool of models: the .gguf files of
// the models directory (id = file name without .gguf), loaded on first use, least recently used
// unloaded past max_loaded_models.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "minerva/chat.h"
#include "minerva/model.h"
#include "scheduler.h"

namespace minerva::serve {

struct Config {
    std::string host = "127.0.0.1";
    int port = 11434;
    std::string models_dir;       // default ~/.minerva/models
    std::string model_path;       // --model: one model file
    std::string default_model;    // id used when a request names none
    int threads = 0;
    int context = 0;              // cells per slot; 0 = the model's default
    std::string device = "auto";
    int parallel = 4;             // slots per model
    int max_loaded_models = 2;
    int max_queue = 64;           // jobs waiting for a slot, per model
    std::string api_key;
    std::string cors;             // allowed origins ("*" or comma list); "" = CORS off
    std::string chat_template;    // built-in name or file; "" = the model's own
    size_t max_body_bytes = 8u << 20;
    std::string log_level = "info";
};

// Reads ~/.minerva/config.json (or `path`) into cfg. Missing default file: nothing happens.
// Bad JSON or a wrongly typed key: Error naming the file and key.
void load_config_file(const std::string& path, bool must_exist, Config& cfg);
std::string default_config_path();
std::string default_models_dir();

// An error answered as {"error": {"message", "type", "param", "code"}} with this status.
struct ApiError : std::runtime_error {
    int status;
    std::string param, code, type;
    ApiError(int status_, std::string message, std::string param_ = {}, std::string code_ = {}, std::string type_ = {});
};

struct LoadedModel {
    std::string id, path;
    std::shared_ptr<Model> model;
    std::unique_ptr<Scheduler> scheduler;
    std::optional<ChatTemplate> chat;
    ChatOptions chat_opts;
    int64_t created = 0;  // file modification time (unix)
};

struct ModelEntry {
    std::string id, path;
    int64_t created = 0;
    bool loaded = false;
};

class Metrics;

class ModelPool {
public:
    ModelPool(const Config& cfg, Metrics* metrics) : cfg_(cfg), metrics_(metrics) {}
    ~ModelPool();

    std::vector<ModelEntry> list() const;
    std::optional<ModelEntry> find(const std::string& id) const;
    // The loaded model, loading it (and unloading the least recently used) when needed.
    // ApiError 404 for an unknown id, 500 when the file cannot be loaded.
    std::shared_ptr<LoadedModel> get(const std::string& id);
    bool unload(const std::string& id);
    std::vector<std::shared_ptr<LoadedModel>> loaded() const;
    std::string resolve_id(const std::string& requested) const;  // "" -> the default model

private:
    const Config& cfg_;
    Metrics* metrics_;
    mutable std::mutex mu_;
    std::mutex load_mu_;  // one load at a time
    struct Entry {
        std::shared_ptr<LoadedModel> m;
        std::chrono::steady_clock::time_point last_used;
    };
    std::map<std::string, Entry> loaded_;
};

}  // namespace minerva::serve
