// models.h: configuration, errors in OpenAI's shape, and the pool of models: the .gguf files of
// the models directory (id = file name without .gguf), loaded on first use (or preloaded), and
// unloaded by an eviction policy (lru, lfu, fifo) past max_loaded_models or a memory budget, or
// after keep_alive idle seconds.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <thread>
#include <condition_variable>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "minerva/chat.h"
#include "minerva/model.h"
#include "scheduler.h"

namespace minerva::serve {

enum class EvictionPolicy { Lru, Lfu, Fifo };
const char* policy_name(EvictionPolicy p);

struct Config {
    std::string host = "127.0.0.1";
    int port = 11434;
    std::string models_dir;       // default ~/.minerva/models
    std::string model_path;       // --model: one model file
    std::string default_model;    // id used when a request names none
    int threads = 0;
    int context = 0;              // cells per slot; 0 = the model's default
    std::string cache_type_k = "f16";  // KV cache types: f16, f32, q8_0, q4_0
    std::string cache_type_v = "f16";
    bool context_shift = false;   // drop the oldest turns / tokens instead of refusing or stopping
    std::string device = "auto";
    int parallel = 4;             // slots per model
    int max_loaded_models = 2;
    int max_queue = 64;           // jobs waiting for a slot, per model
    std::string api_key;
    std::string cors;             // allowed origins ("*" or comma list); "" = CORS off
    std::string chat_template;    // built-in name or file; "" = the model's own
    size_t max_body_bytes = 8u << 20;
    std::string log_level = "info";
    // connection layer
    int max_connections = 1024;   // open client connections; beyond -> 503
    int workers = 0;              // handler threads; 0 = parallel + max_queue + 16
    int header_timeout_s = 10;    // a request head must arrive within this (-> 408)
    int keep_alive_timeout_s = 15;
    int drain_timeout_s = 30;     // SIGINT/SIGTERM: in-flight requests get this long to finish
    // model management
    EvictionPolicy eviction_policy = EvictionPolicy::Lru;
    int64_t max_memory_bytes = 0;  // weights + KV caches of loaded models; 0 = 90% of physical memory
    int64_t keep_alive_s = -1;     // unload a model idle this long; < 0 = never
};

// "5m", "1h30m", "30s", "300" (seconds), "-1" (never) -> seconds; Error on anything else.
int64_t parse_duration(const std::string& s);
// The request's optional "keep_alive" (Ollama's: seconds, or a duration string; negative = never
// unload, 0 = unload when done). ApiError 400 naming it when malformed.
std::optional<int64_t> parse_keep_alive(const nlohmann::json& body);

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
    bool context_shift = false;  // Config::context_shift, for the request parser
    int64_t created = 0;  // file modification time (unix)
};

struct ModelEntry {
    std::string id, path;
    int64_t created = 0;
    bool loaded = false;
};

// Per model, since start-up (across loads).
struct ModelStats {
    std::string id;
    bool loaded = false;
    double load_seconds = 0;     // of the latest load
    int64_t loads = 0, evictions = 0;
    int64_t bytes = 0;           // weights file + KV cache while loaded, else 0
    int64_t requests = 0, prompt_tokens = 0, completion_tokens = 0;
    int64_t last_used = 0;       // unix seconds, 0 = never
};

class Metrics;

class ModelPool {
public:
    ModelPool(const Config& cfg, Metrics* metrics);
    ~ModelPool();

    std::vector<ModelEntry> list() const;
    std::optional<ModelEntry> find(const std::string& id) const;
    // The loaded model, loading it (and evicting others by the policy) when needed. `use`
    // counts a request (and moves it up the eviction order; a preload does not); keep_alive_s
    // overrides the configured idle time for this model. ApiError 404 for an unknown id, 503
    // when the model alone exceeds the memory budget, 500 when the file cannot be loaded.
    std::shared_ptr<LoadedModel> get(const std::string& id, bool use = true, std::optional<int64_t> keep_alive_s = {});
    bool unload(const std::string& id);
    std::vector<std::shared_ptr<LoadedModel>> loaded() const;
    std::string resolve_id(const std::string& requested) const;  // "" -> the default model
    std::vector<ModelStats> stats() const;
    int64_t loaded_bytes() const;
    int64_t memory_budget() const { return budget_; }
    // A thread that unloads models idle past their keep_alive (requests running keep a model busy).
    void start_idle_reaper();

private:
    const Config& cfg_;
    Metrics* metrics_;
    mutable std::mutex mu_;
    std::mutex load_mu_;  // one load at a time
    struct Entry {
        std::shared_ptr<LoadedModel> m;
        std::chrono::steady_clock::time_point last_used, loaded_at;
        int64_t uses = 0;            // requests since this load (lfu)
        int64_t keep_alive_s = -1;
        int64_t bytes = 0;
    };
    // Picks the entry the policy evicts first, never `keep`; end() when none.
    std::map<std::string, Entry>::iterator victim(const std::string& keep);
    void evict(std::map<std::string, Entry>::iterator it, const char* why, std::vector<std::shared_ptr<LoadedModel>>& out);
    std::map<std::string, Entry> loaded_;
    std::map<std::string, ModelStats> stats_;  // also of models no longer loaded
    int64_t budget_ = 0;
    std::mutex reaper_mu_;
    std::condition_variable reaper_cv_;
    bool reaper_stop_ = false;
    std::thread reaper_;
};

}  // namespace minerva::serve
