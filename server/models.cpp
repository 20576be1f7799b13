// models.cpp: configuration file, OpenAI-shaped errors, the model pool with LRU unloading.
#include "models.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
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

const char* policy_name(EvictionPolicy p) {
    switch (p) {
        case EvictionPolicy::Lfu: return "lfu";
        case EvictionPolicy::Fifo: return "fifo";
        default: return "lru";
    }
}

int64_t parse_duration(const std::string& s) {
    auto bad = [&]() -> int64_t {
        throw Error("'" + s + "' is not a duration (seconds, or like 30s, 5m, 1h30m; negative = forever)");
    };
    if (s.empty()) return bad();
    size_t k = 0;
    bool neg = false;
    if (s[0] == '-') neg = true, k = 1;
    if (k >= s.size()) return bad();
    int64_t total = 0;
    bool unitless = true;
    while (k < s.size()) {
        size_t start = k;
        while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
        if (k == start || k - start > 9) return bad();
        int64_t v = std::stoll(s.substr(start, k - start));
        int64_t mult = 1;
        if (k < s.size()) {
            unitless = false;
            char u = s[k++];
            if (u == 's') mult = 1;
            else if (u == 'm') mult = 60;
            else if (u == 'h') mult = 3600;
            else return bad();
        } else if (!unitless) {
            return bad();  // "5m30": a number without a unit after one with
        }
        total += v * mult;
    }
    return neg ? -1 : total;
}

std::optional<int64_t> parse_keep_alive(const json& body) {
    auto it = body.find("keep_alive");
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (it->is_number_integer()) {
        int64_t v = it->get<int64_t>();
        return v < 0 ? -1 : v;
    }
    if (it->is_number_float()) {
        double v = it->get<double>();
        if (!(v < 1e9)) throw ApiError(400, "'keep_alive' is too large", "keep_alive", "invalid_value");
        return v < 0 ? -1 : static_cast<int64_t>(v);
    }
    if (it->is_string()) {
        try {
            return parse_duration(it->get<std::string>());
        } catch (const Error& e) {
            throw ApiError(400, std::string("'keep_alive': ") + e.what(), "keep_alive", "invalid_value");
        }
    }
    throw ApiError(400, "'keep_alive' must be a number of seconds or a duration string like \"5m\"", "keep_alive", "invalid_type");
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
        else if (key == "context_shift") {
            if (!v.is_boolean()) bad(key, "true or false");
            cfg.context_shift = v.get<bool>();
        } else if (key == "cache_type_k" || key == "cache_type_v") {
            std::string t;
            str(t);
            try {
                parse_kv_type(t);
            } catch (const Error&) {
                bad(key, "one of \"f16\", \"f32\", \"q8_0\", \"q4_0\"");
            }
            (key == "cache_type_k" ? cfg.cache_type_k : cfg.cache_type_v) = t;
        }
        else if (key == "device") str(cfg.device);
        else if (key == "parallel") integer(cfg.parallel, 1, 256);
        else if (key == "max_loaded_models") integer(cfg.max_loaded_models, 1, 64);
        else if (key == "max_queue") integer(cfg.max_queue, 0, 1 << 16);
        else if (key == "api_key") str(cfg.api_key);
        else if (key == "cors") str(cfg.cors);
        else if (key == "chat_template") str(cfg.chat_template);
        else if (key == "log_level") str(cfg.log_level);
        else if (key == "max_connections") integer(cfg.max_connections, 16, 1 << 20);
        else if (key == "workers") integer(cfg.workers, 0, 1024);
        else if (key == "header_timeout") integer(cfg.header_timeout_s, 1, 3600);
        else if (key == "keep_alive_timeout") integer(cfg.keep_alive_timeout_s, 1, 3600);
        else if (key == "drain_timeout") integer(cfg.drain_timeout_s, 0, 3600);
        else if (key == "max_body") {
            if (!v.is_number_integer() || v.get<int64_t>() < 1024 || v.get<int64_t>() > (int64_t{1} << 30))
                bad(key, "an integer in [1024, 1073741824]");
            cfg.max_body_bytes = v.get<size_t>();
        } else if (key == "eviction_policy") {
            std::string p;
            str(p);
            if (p == "lru") cfg.eviction_policy = EvictionPolicy::Lru;
            else if (p == "lfu") cfg.eviction_policy = EvictionPolicy::Lfu;
            else if (p == "fifo") cfg.eviction_policy = EvictionPolicy::Fifo;
            else bad(key, "one of \"lru\", \"lfu\", \"fifo\"");
        } else if (key == "max_memory_bytes") {
            if (!v.is_number_integer() || v.get<int64_t>() < 0) bad(key, "a non-negative integer (0 = from the machine)");
            cfg.max_memory_bytes = v.get<int64_t>();
        } else if (key == "keep_alive") {
            if (v.is_number_integer()) cfg.keep_alive_s = v.get<int64_t>() < 0 ? -1 : v.get<int64_t>();
            else if (v.is_string()) {
                try {
                    cfg.keep_alive_s = parse_duration(v.get<std::string>());
                } catch (const Error&) {
                    bad(key, "seconds or a duration like \"5m\" (negative = never)");
                }
            } else bad(key, "seconds or a duration like \"5m\" (negative = never)");
        }
        else throw Error("config file " + path + ": unknown key '" + key + "'");
    }
}

ModelPool::ModelPool(const Config& cfg, Metrics* metrics) : cfg_(cfg), metrics_(metrics) {
    budget_ = cfg.max_memory_bytes;
    if (budget_ <= 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
        budget_ = pages > 0 && page > 0 ? static_cast<int64_t>(static_cast<double>(pages) * static_cast<double>(page) * 0.9) : INT64_MAX;
    }
}

ModelPool::~ModelPool() {
    {
        std::lock_guard lock(reaper_mu_);
        reaper_stop_ = true;
    }
    reaper_cv_.notify_all();
    if (reaper_.joinable()) reaper_.join();
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

static int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

std::map<std::string, ModelPool::Entry>::iterator ModelPool::victim(const std::string& keep) {
    auto best = loaded_.end();
    for (auto it = loaded_.begin(); it != loaded_.end(); ++it) {
        if (it->first == keep) continue;
        if (best == loaded_.end()) {
            best = it;
            continue;
        }
        const Entry &a = it->second, &b = best->second;
        bool better = false;
        switch (cfg_.eviction_policy) {
            case EvictionPolicy::Lru: better = a.last_used < b.last_used; break;
            case EvictionPolicy::Lfu: better = a.uses < b.uses || (a.uses == b.uses && a.last_used < b.last_used); break;
            case EvictionPolicy::Fifo: better = a.loaded_at < b.loaded_at; break;
        }
        if (better) best = it;
    }
    return best;
}

// Called with mu_ held. The model is destroyed once the last request on it lets go.
void ModelPool::evict(std::map<std::string, Entry>::iterator it, const char* why, std::vector<std::shared_ptr<LoadedModel>>& out) {
    spdlog::info("unloading model '{}' ({})", it->first, why);
    auto& st = stats_[it->first];
    ++st.evictions;
    st.prompt_tokens += it->second.m->scheduler->prompt_tokens_total();
    st.completion_tokens += it->second.m->scheduler->generated_tokens_total();
    out.push_back(it->second.m);
    loaded_.erase(it);
}

std::shared_ptr<LoadedModel> ModelPool::get(const std::string& id, bool use, std::optional<int64_t> keep_alive_s) {
    auto touch = [&](Entry& e) {
        if (use) {
            e.last_used = std::chrono::steady_clock::now();
            ++e.uses;
            auto& st = stats_[id];
            ++st.requests;
            st.last_used = unix_now();
        }
        if (keep_alive_s) e.keep_alive_s = *keep_alive_s;
    };
    {
        std::lock_guard lock(mu_);
        if (auto it = loaded_.find(id); it != loaded_.end()) {
            touch(it->second);
            return it->second.m;
        }
    }
    auto entry = find(id);
    if (!entry) throw ApiError(404, "The model '" + id + "' does not exist", "model", "model_not_found");

    std::lock_guard load_lock(load_mu_);
    {
        std::lock_guard lock(mu_);  // loaded by another request meanwhile?
        if (auto it = loaded_.find(id); it != loaded_.end()) {
            touch(it->second);
            return it->second.m;
        }
    }
    // the memory budget: the weights file is mapped whole; the KV cache comes on top
    std::error_code ec;
    int64_t file_bytes = static_cast<int64_t>(fs::file_size(entry->path, ec));
    if (ec) file_bytes = 0;
    if (file_bytes > budget_)
        throw ApiError(503,
                       "The model '" + id + "' needs " + std::to_string(file_bytes) + " bytes, more than the memory budget of " +
                           std::to_string(budget_) + " bytes (max_memory_bytes)",
                       "model", "model_too_large");
    std::vector<std::shared_ptr<LoadedModel>> evicted;  // destroyed outside the lock
    {
        std::lock_guard lock(mu_);
        int64_t total = 0;
        for (auto& [k, e] : loaded_) total += e.bytes;
        while (!loaded_.empty() && (total + file_bytes > budget_ || static_cast<int>(loaded_.size()) >= cfg_.max_loaded_models)) {
            auto v = victim(id);
            if (v == loaded_.end()) break;
            total -= v->second.bytes;
            evict(v, total + file_bytes > budget_ ? "memory budget" : "max_loaded_models", evicted);
        }
    }
    evicted.clear();
    auto lm = std::make_shared<LoadedModel>();
    lm->id = id;
    lm->path = entry->path;
    lm->created = entry->created;
    double secs = 0;
    try {
        auto t0 = std::chrono::steady_clock::now();
        ModelOptions mo;
        mo.device = cfg_.device;
        mo.n_threads = cfg_.threads;
        lm->model = Model::load(entry->path, mo);
        SessionOptions so;
        so.n_ctx = cfg_.context;
        so.n_seq = cfg_.parallel;
        so.kv_type_k = parse_kv_type(cfg_.cache_type_k);
        so.kv_type_v = parse_kv_type(cfg_.cache_type_v);
        lm->scheduler = std::make_unique<Scheduler>(lm->model, so, cfg_.max_queue, metrics_);
        lm->chat = ChatTemplate::resolve(cfg_.chat_template, lm->model->chat_template());
        lm->chat_opts = chat_options(*lm->model->vocab());
        lm->context_shift = cfg_.context_shift;
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        spdlog::info("loaded model '{}' from {} ({}, {} slots x {} ctx, chat template {}) in {:.2f}s", id, entry->path,
                     lm->model->backend_name(), cfg_.parallel, lm->scheduler->n_ctx(), lm->chat->name(), secs);
    } catch (const std::exception& e) {
        throw ApiError(500, "cannot load model '" + id + "': " + e.what(), "model", "model_load_failed");
    }
    {
        std::lock_guard lock(mu_);
        auto now = std::chrono::steady_clock::now();
        Entry e;
        e.m = lm;
        e.last_used = e.loaded_at = now;
        e.keep_alive_s = cfg_.keep_alive_s;
        e.bytes = file_bytes + static_cast<int64_t>(lm->scheduler->stats().kv_bytes);
        auto& st = stats_[id];
        st.id = id;
        st.load_seconds = secs;
        ++st.loads;
        loaded_[id] = e;
        touch(loaded_[id]);
        // with the KV cache counted the model may still push others out
        int64_t total = 0;
        for (auto& [k, x] : loaded_) total += x.bytes;
        while (total > budget_) {
            auto v = victim(id);
            if (v == loaded_.end()) break;
            total -= v->second.bytes;
            evict(v, "memory budget", evicted);
        }
    }
    return lm;
}

bool ModelPool::unload(const std::string& id) {
    std::vector<std::shared_ptr<LoadedModel>> gone;
    {
        std::lock_guard lock(mu_);
        auto it = loaded_.find(id);
        if (it == loaded_.end()) return false;
        auto& st = stats_[id];
        st.prompt_tokens += it->second.m->scheduler->prompt_tokens_total();
        st.completion_tokens += it->second.m->scheduler->generated_tokens_total();
        gone.push_back(it->second.m);
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

int64_t ModelPool::loaded_bytes() const {
    std::lock_guard lock(mu_);
    int64_t total = 0;
    for (auto& [id, e] : loaded_) total += e.bytes;
    return total;
}

std::vector<ModelStats> ModelPool::stats() const {
    auto all = list();
    std::lock_guard lock(mu_);
    std::vector<ModelStats> out;
    for (auto& me : all) {
        ModelStats st;
        if (auto it = stats_.find(me.id); it != stats_.end()) st = it->second;
        st.id = me.id;
        if (auto it = loaded_.find(me.id); it != loaded_.end()) {
            st.loaded = true;
            st.bytes = it->second.bytes;
            st.prompt_tokens += it->second.m->scheduler->prompt_tokens_total();
            st.completion_tokens += it->second.m->scheduler->generated_tokens_total();
        }
        out.push_back(st);
    }
    return out;
}

void ModelPool::start_idle_reaper() {
    reaper_ = std::thread([this] {
        std::unique_lock rlock(reaper_mu_);
        while (!reaper_cv_.wait_for(rlock, std::chrono::milliseconds(500), [&] { return reaper_stop_; })) {
            std::vector<std::shared_ptr<LoadedModel>> gone;
            {
                std::lock_guard lock(mu_);
                auto now = std::chrono::steady_clock::now();
                for (auto it = loaded_.begin(); it != loaded_.end();) {
                    Entry& e = it->second;
                    // requests generating or queued keep it busy (a request that has the model but
                    // has not queued yet keeps it alive through its reference if it is unloaded)
                    auto st = e.m->scheduler->stats();
                    if (st.active > 0 || st.queued > 0) {
                        e.last_used = std::max(e.last_used, now);
                        ++it;
                        continue;
                    }
                    if (e.keep_alive_s >= 0 && now - e.last_used >= std::chrono::seconds(e.keep_alive_s)) {
                        auto next = std::next(it);
                        spdlog::info("unloading model '{}' (idle for {} s, keep_alive)", it->first, e.keep_alive_s);
                        auto& s = stats_[it->first];
                        s.prompt_tokens += e.m->scheduler->prompt_tokens_total();
                        s.completion_tokens += e.m->scheduler->generated_tokens_total();
                        gone.push_back(e.m);
                        loaded_.erase(it);
                        it = next;
                    } else {
                        ++it;
                    }
                }
            }
        }
    });
}

}  // namespace minerva::serve
