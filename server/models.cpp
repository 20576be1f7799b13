// models.cpp: configuration file, OpenAI-shaped errors, the model pool with LRU unloading.
#include "models.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "minerva/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace minerva::serve {

ApiError::ApiError(int status_, std::string message, std::string param_, std::string code_, std::string type_)
    : std::runtime_error(std::move(message)), status(status_), param(std::move(param_)), code(std::move(code_)),
      type(std::move(type_)) {
    if (type.empty()) {
        switch (status) {
            case 401: type = "authentication_error"; break;
            case 404: type = "invalid_request_error"; break;
            case 429: type = "rate_limit_error"; break;
            default: type = status >= 500 ? "server_error" : "invalid_request_error";
        }
    }
}

static std::string home() {
    const char* h = std::getenv("HOME");
    return h ? h : ".";
}
std::string default_config_path() { return home() + "/.minerva/config.json"; }
std::string default_models_dir() { return home() + "/.minerva/models"; }

void load_config_file(const std::string& path, bool must_exist, Config& cfg) {
    std::ifstream f(path);
    if (!f) {
        if (must_exist) throw Error("config file " + path + ": cannot be read");
        return;
    }
    json j;
    try {
        j = json::parse(f);
    } catch (const json::exception& e) {
        throw Error("config file " + path + ": invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw Error("config file " + path + ": must hold a JSON object");
    auto bad = [&](const std::string& key, const char* want) {
        throw Error("config file " + path + ": key '" + key + "' must be " + want);
    };
    for (auto& [key, v] : j.items()) {
        auto str = [&](std::string& dst) {
            if (!v.is_string()) bad(key, "a string");
            dst = v.get<std::string>();
        };
        auto integer = [&](int& dst, int lo, int hi) {
            if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
                bad(key, ("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]").c_str());
            dst = v.get<int>();
        };
        if (key == "host") str(cfg.host);
        else if (key == "port") integer(cfg.port, 0, 65535);
        else if (key == "models_dir") str(cfg.models_dir);
        else if (key == "model") str(cfg.model_path);
        else if (key == "default_model") str(cfg.default_model);
        else if (key == "threads") integer(cfg.threads, 0, 1024);
        else if (key == "context") integer(cfg.context, 0, 1 << 20);
        else if (key == "device") str(cfg.device);
        else if (key == "parallel") integer(cfg.parallel, 1, 256);
        else if (key == "max_loaded_models") integer(cfg.max_loaded_models, 1, 64);
        else if (key == "max_queue") integer(cfg.max_queue, 0, 1 << 16);
        else if (key == "api_key") str(cfg.api_key);
        else if (key == "cors") str(cfg.cors);
        else if (key == "chat_template") str(cfg.chat_template);
        else if (key == "log_level") str(cfg.log_level);
        else throw Error("config file " + path + ": unknown key '" + key + "'");
    }
}

ModelPool::~ModelPool() {
    std::lock_guard lock(mu_);
    loaded_.clear();
}

std::vector<ModelEntry> ModelPool::list() const {
    std::vector<ModelEntry> out;
    auto add = [&](const fs::path& p) {
        ModelEntry e;
        e.id = p.stem().string();
        e.path = p.string();
        std::error_code ec;
        auto t = fs::last_write_time(p, ec);
        if (!ec)
            e.created = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::file_clock::to_sys(t).time_since_epoch()).count();
        for (auto& x : out)
            if (x.id == e.id) return;
        out.push_back(e);
    };
    if (!cfg_.model_path.empty()) add(cfg_.model_path);
    std::error_code ec;
    if (!cfg_.models_dir.empty() && fs::is_directory(cfg_.models_dir, ec)) {
        std::vector<fs::path> files;
        for (auto& de : fs::directory_iterator(cfg_.models_dir, ec))
            if (de.path().extension() == ".gguf") files.push_back(de.path());
        std::sort(files.begin(), files.end());
        for (auto& p : files) add(p);
    }
    std::lock_guard lock(mu_);
    for (auto& e : out) e.loaded = loaded_.count(e.id) > 0;
    return out;
}

std::optional<ModelEntry> ModelPool::find(const std::string& id) const {
    for (auto& e : list())
        if (e.id == id) return e;
    return std::nullopt;
}

std::string ModelPool::resolve_id(const std::string& requested) const {
    if (!requested.empty()) return requested;
    if (!cfg_.default_model.empty()) return cfg_.default_model;
    auto all = list();
    if (all.empty()) throw ApiError(404, "no models are available (use --model or --models-dir)", "model", "model_not_found");
    return all.front().id;
}

std::shared_ptr<LoadedModel> ModelPool::get(const std::string& id) {
    {
        std::lock_guard lock(mu_);
        if (auto it = loaded_.find(id); it != loaded_.end()) {
            it->second.last_used = std::chrono::steady_clock::now();
            return it->second.m;
        }
    }
    auto entry = find(id);
    if (!entry) throw ApiError(404, "The model '" + id + "' does not exist", "model", "model_not_found");

    std::lock_guard load_lock(load_mu_);
    {
        std::lock_guard lock(mu_);  // loaded by another request meanwhile?
        if (auto it = loaded_.find(id); it != loaded_.end()) {
            it->second.last_used = std::chrono::steady_clock::now();
            return it->second.m;
        }
    }
    auto lm = std::make_shared<LoadedModel>();
    lm->id = id;
    lm->path = entry->path;
    lm->created = entry->created;
    try {
        auto t0 = std::chrono::steady_clock::now();
        ModelOptions mo;
        mo.device = cfg_.device;
        mo.n_threads = cfg_.threads;
        lm->model = Model::load(entry->path, mo);
        SessionOptions so;
        so.n_ctx = cfg_.context;
        so.n_seq = cfg_.parallel;
        lm->scheduler = std::make_unique<Scheduler>(lm->model, so, cfg_.max_queue, metrics_);
        lm->chat = ChatTemplate::resolve(cfg_.chat_template, lm->model->chat_template());
        lm->chat_opts = chat_options(*lm->model->vocab());
        spdlog::info("loaded model '{}' from {} ({}, {} slots x {} ctx, chat template {}) in {:.2f}s", id, entry->path,
                     lm->model->backend_name(), cfg_.parallel, lm->scheduler->n_ctx(), lm->chat->name(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    } catch (const std::exception& e) {
        throw ApiError(500, "cannot load model '" + id + "': " + e.what(), "model", "model_load_failed");
    }
    std::vector<std::shared_ptr<LoadedModel>> evicted;  // destroyed outside the lock
    {
        std::lock_guard lock(mu_);
        loaded_[id] = {lm, std::chrono::steady_clock::now()};
        while (static_cast<int>(loaded_.size()) > cfg_.max_loaded_models) {
            auto lru = loaded_.end();
            for (auto it = loaded_.begin(); it != loaded_.end(); ++it)
                if (it->first != id && (lru == loaded_.end() || it->second.last_used < lru->second.last_used)) lru = it;
            if (lru == loaded_.end()) break;
            spdlog::info("unloading model '{}' (least recently used)", lru->first);
            evicted.push_back(lru->second.m);
            loaded_.erase(lru);
        }
    }
    return lm;
}

bool ModelPool::unload(const std::string& id) {
    std::shared_ptr<LoadedModel> m;
    {
        std::lock_guard lock(mu_);
        auto it = loaded_.find(id);
        if (it == loaded_.end()) return false;
        m = it->second.m;
        loaded_.erase(it);
    }
    spdlog::info("unloaded model '{}'", id);
    return true;
}

std::vector<std::shared_ptr<LoadedModel>> ModelPool::loaded() const {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<LoadedModel>> out;
    for (auto& [id, e] : loaded_) out.push_back(e.m);
    return out;
}

}  // namespace minerva::serve
