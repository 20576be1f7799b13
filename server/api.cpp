// api.cpp: routes, authentication, CORS, access log, and the chat/completions handlers (plain
// JSON or SSE streaming) over the scheduler's jobs.
#include "api.h"
#include "webui/webui.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>
#include <thread>

#include "minerva/error.h"
#include "embeddings.h"
#include "http.h"
#include "json_guard.h"
#include "structured.h"
#include "request.h"

namespace minerva::serve {

namespace {

using Clock = std::chrono::steady_clock;

void send_json(http::Response& res, int status, const json& j) {
    res.status = status;
    res.set_content(dump(j), "application/json");
}

void send_error(http::Response& res, const ApiError& e) { send_json(res, e.status, error_body(e)); }

json parse_body(const http::Request& req) {
    json body;
    check_json_depth(req.body);
    try {
        body = json::parse(req.body);
    } catch (const json::exception& e) {
        throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "", "invalid_json");
    }
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object", "", "invalid_json");
    return body;
}

std::string route_label(const std::string& path) {
    static const char* exact[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/tokenize", "/detokenize",
                                  "/health", "/ready", "/metrics"};
    for (const char* e : exact)
        if (path == e) return e;
    if (path == "/v1/models/stats") return path;
    if (path.rfind("/v1/models/", 0) == 0) {
        if (path.ends_with("/load")) return "/v1/models/{id}/load";
        if (path.ends_with("/preload")) return "/v1/models/{id}/preload";
        return "/v1/models/{id}";
    }
    return "other";
}

// What the HTTP thread has taken from one job so far.
struct Choice {
    std::shared_ptr<Job> job;
    std::string text;
    std::vector<TokenInfo> tokens;
    bool finished = false;
    bool role_sent = false;
    size_t prompt_index = 0;  // which prompt of the request (completions accept several)
    std::shared_ptr<ToolCallParser> tools;  // chat with tools: holds back text that may be a call
    std::shared_ptr<ThinkingSplitter> think;  // thinking models: <think>...</think> -> reasoning
};

// OpenAI's message.tool_calls for parsed calls; ids unique within the response.
json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id_base, size_t choice) {
    json out = json::array();
    for (size_t i = 0; i < calls.size(); ++i)
        out.push_back({{"id", "call_" + id_base + "_" + std::to_string(choice) + "_" + std::to_string(i)},
                       {"type", "function"},
                       {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
    return out;
}

// Waits until a job has output or is done; cancels all when the client is gone.
struct Waiter {
    std::vector<Choice>& choices;
    Scheduler& sched;
    const http::Request& req;

    bool client_gone() const { return req.client_gone(); }
    void cancel_all() {
        for (auto& c : choices) sched.cancel(c.job);
    }
    // Takes new output of every job into out_text/out_tokens (per choice). Returns false when
    // the client went away (all jobs cancelled).
    bool wait_any(std::vector<std::pair<std::string, std::vector<TokenInfo>>>& fresh, int ms) {
        fresh.assign(choices.size(), {});
        auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        while (true) {
            if (client_gone()) {
                cancel_all();
                return false;
            }
            bool any = false, all_done = true;
            for (size_t k = 0; k < choices.size(); ++k) {
                auto& c = choices[k];
                if (c.finished) continue;
                std::lock_guard lock(c.job->mu);
                if (!c.job->text.empty() || !c.job->tokens.empty() || c.job->done) any = true;
                fresh[k].first += c.job->text;
                c.job->text.clear();
                for (auto& t : c.job->tokens) fresh[k].second.push_back(std::move(t));
                c.job->tokens.clear();
                if (!c.job->done) all_done = false;
            }
            if (any || all_done || Clock::now() >= deadline) return true;
            // sleep on the first unfinished job's condition variable
            for (auto& c : choices) {
                if (c.finished) continue;
                std::unique_lock lock(c.job->mu);
                c.job->cv.wait_for(lock, std::chrono::milliseconds(25),
                                   [&] { return !c.job->text.empty() || !c.job->tokens.empty() || c.job->done; });
                break;
            }
        }
    }
};

json usage_json(const std::vector<Choice>& choices) {
    // prompt tokens count once per prompt, not once per choice
    int prompt = 0, completion = 0, cached = 0;
    for (size_t k = 0; k < choices.size(); ++k) {
        const auto& c = choices[k];
        if (k == 0 || c.prompt_index != choices[k - 1].prompt_index) {
            prompt += c.job->n_prompt;
            cached += c.job->n_cached;
        }
        completion += c.job->n_gen;
    }
    return json{{"prompt_tokens", prompt},
                {"completion_tokens", completion},
                {"total_tokens", prompt + completion},
                {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string finish_reason(const Job& j) { return j.finish_reason == "stop" || j.finish_reason == "length" ? j.finish_reason : "stop"; }

}  // namespace

http::Limits Api::limits(const Config& cfg) {
    http::Limits l;
    l.max_body = cfg.max_body_bytes;
    l.max_buffered = std::max<size_t>(cfg.max_body_bytes * 64, 4u << 20);
    l.max_connections = cfg.max_connections;
    // a worker for every request a model can hold (running or queued), so that a full queue is
    // answered 429 at once instead of waiting for a thread; plus headroom for the other routes
    l.workers = cfg.workers > 0 ? cfg.workers : std::min(1024, cfg.parallel + cfg.max_queue + 16);
    l.max_pending = l.workers;
    l.header_timeout_ms = cfg.header_timeout_s * 1000;
    l.keep_alive_ms = cfg.keep_alive_timeout_s * 1000;
    return l;
}

Api::Api(const Config& cfg) : cfg_(cfg), pool_(cfg, &metrics_), http_(std::make_unique<http::Server>(limits(cfg))) {
    routes();
}

Api::~Api() = default;

void Api::start() {
    // a bad --model is a start-up error, and /ready answers 200 only once it can serve
    if (!cfg_.model_path.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(cfg_.model_path, ec))
            throw Error("--model " + cfg_.model_path + ": no such file");
        try {
            pool_.get(std::filesystem::path(cfg_.model_path).stem().string(), false);
        } catch (const ApiError& e) {
            throw Error(e.what());
        }
    }
    if (cfg_.model_path.empty() || !cfg_.models_dir.empty()) {
        std::error_code ec;
        if (!cfg_.models_dir.empty() && !std::filesystem::is_directory(cfg_.models_dir, ec))
            throw Error("--models-dir " + cfg_.models_dir + ": not a directory");
    }
    port_ = http_->bind(cfg_.host, cfg_.port);
    http_->set_drain(cfg_.drain_timeout_s * 1000, [this] {
        spdlog::warn("shutdown: drain timeout ({} s) reached; ending the requests still running", cfg_.drain_timeout_s);
        for (auto& m : pool_.loaded()) m->scheduler->cancel_all("the server is shutting down");
    });
}

void Api::run() {
    // printed whatever the log level: scripts read the port from this line (--port 0)
    std::printf("minerva-serve listening on http://%s:%d (%zu model(s) available)\n", cfg_.host.c_str(), port_,
                pool_.list().size());
    std::fflush(stdout);
    pool_.start_idle_reaper();
    http_->run();
    auto st = http_->stats();
    spdlog::info("shutdown: drained ({} connection(s) left)", st.connections);
}

void Api::stop() { http_->stop(); }

std::string Api::begin_request(const std::string& method, const std::string& path) {
    std::string rid = "req-" + std::to_string(next_id_.fetch_add(1));
    std::lock_guard lock(log_mu_);
    records_[rid] = {Clock::now(), 0, 0, {}};
    return rid;
}

void Api::note_tokens(const std::string& rid, int prompt, int completion, const std::string& note) {
    std::lock_guard lock(log_mu_);
    if (auto it = records_.find(rid); it != records_.end()) {
        it->second.prompt_tokens = prompt;
        it->second.completion_tokens = completion;
        it->second.note = note;
    }
}

void Api::routes() {
    auto& http = *http_;

    // ---- every request: id, auth, CORS
    http.set_pre_routing_handler([this](const http::Request& req, http::Response& res) {
        std::string rid = begin_request(req.method, req.path);
        res.set_header("X-Request-Id", rid);
        if (!cfg_.cors.empty() && req.has_header("Origin")) {
            std::string origin = req.get_header_value("Origin");
            bool ok = cfg_.cors == "*";
            size_t start = 0;
            while (!ok && start <= cfg_.cors.size()) {
                size_t comma = cfg_.cors.find(',', start);
                std::string o = cfg_.cors.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                while (!o.empty() && o.front() == ' ') o.erase(0, 1);
                while (!o.empty() && o.back() == ' ') o.pop_back();
                ok = o == origin;
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
            if (ok) {
                res.set_header("Access-Control-Allow-Origin", cfg_.cors == "*" ? "*" : origin);
                res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
                res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
                res.set_header("Vary", "Origin");
            }
            if (req.method == "OPTIONS") {
                res.status = ok ? 204 : 403;
                return http::Server::HandlerResponse::Handled;
            }
        }
        if (!cfg_.api_key.empty() && req.path != "/health" && req.path != "/ready" && req.path != "/") {
            std::string auth = req.get_header_value("Authorization");
            // the scheme is case-insensitive (RFC 9110 11.1), the token is not
            std::string scheme = auth.substr(0, std::min<size_t>(auth.size(), 7));
            for (auto& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            size_t tok = auth.find_first_not_of(' ', 7);
            bool ok = scheme == "bearer " && tok != std::string::npos && auth.substr(tok) == cfg_.api_key;
            if (!ok) {
                send_error(res, ApiError(401,
                                         auth.empty() ? "Missing API key: send it as 'Authorization: Bearer <key>'"
                                                      : "Incorrect API key provided",
                                         "", "invalid_api_key"));
                return http::Server::HandlerResponse::Handled;
            }
        }
        return http::Server::HandlerResponse::Unhandled;
    });

    // cheap GETs on threads of their own: answered however busy the workers are
    http.set_priority_paths({"/health", "/ready", "/metrics"});

    // ---- statuses the HTTP layer sets itself (unknown route, limits, timeouts, overload)
    http.set_error_handler([this](const http::Request&, http::Response& res, const std::string& message) {
        std::string code;
        switch (res.status) {
            case 404: code = "unknown_route"; break;
            case 405: code = "method_not_allowed"; break;
            case 408: code = "request_timeout"; break;
            case 413: code = "request_too_large"; break;
            case 414: code = "uri_too_long"; break;
            case 431: code = "headers_too_large"; break;
            case 503: code = "server_busy"; break;
            default: code = "invalid_request";
        }
        if (res.get_header_value("X-Request-Id").empty()) res.set_header("X-Request-Id", "req-" + std::to_string(next_id_.fetch_add(1)));
        send_error(res, ApiError(res.status, message, "", code));
    });

    http.set_exception_handler([](const http::Request&, http::Response& res, std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const ApiError& e) {
            send_error(res, e);
        } catch (const std::exception& e) {
            send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
        } catch (...) {
            send_error(res, ApiError(500, "internal error"));
        }
    });

    // ---- access log + request metrics, once the response is written
    http.set_logger([this](const http::Request& req, const http::Response& res) {
        std::string rid = res.get_header_value("X-Request-Id");
        RequestRecord rec;
        {
            std::lock_guard lock(log_mu_);
            if (auto it = records_.find(rid); it != records_.end()) {
                rec = it->second;
                records_.erase(it);
            } else {
                rec.t0 = Clock::now();
            }
        }
        double secs = std::chrono::duration<double>(Clock::now() - rec.t0).count();
        metrics_.request(route_label(req.path), res.status);
        // the path is the client's: escaped, so that no byte of it can forge or break a log line
        spdlog::info("{} {} {} {} {} prompt_tokens={} completion_tokens={} {:.3f}s{}{}", rid, req.remote_addr,
                     http::escape_for_log(req.method), http::escape_for_log(req.target), res.status, rec.prompt_tokens, rec.completion_tokens, secs, rec.note.empty() ? "" : " ",
                     rec.note);
    });

    // wraps a handler: ApiError and other exceptions become OpenAI-shaped errors
    auto guarded = [](auto fn) {
        return [fn](const http::Request& req, http::Response& res) {
            try {
                fn(req, res);
            } catch (const ApiError& e) {
                send_error(res, e);
            } catch (const Error& e) {
                send_error(res, ApiError(400, e.what()));
            } catch (const std::exception& e) {
                send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
            }
        };
    };

    // The chat page: static, from the binary; it calls the API below (with the key the user gives it).
    http.Get("/", [](const http::Request&, http::Response& res) {
        res.set_header("Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
        res.set_content(std::string(webui_index_html()), "text/html; charset=utf-8");
    });
    http.Get("/health", guarded([](const http::Request&, http::Response& res) { send_json(res, 200, {{"status", "ok"}}); }));

    // 200 only when a request would be served: not while draining, not without a model, and
    // not when the default model is neither loaded nor loadable (its file gone)
    http.Get("/ready", guarded([this](const http::Request&, http::Response& res) {
        if (http_->stopping()) return send_json(res, 503, {{"status", "shutting down"}});
        auto models = pool_.list();
        if (models.empty()) return send_json(res, 503, {{"status", "no models"}});
        std::string id;
        try {
            id = pool_.resolve_id("");
        } catch (const ApiError&) {
        }
        auto def = pool_.find(id);
        if (!def) return send_json(res, 503, {{"status", "default model '" + id + "' not found"}});
        std::error_code ec;
        if (!def->loaded && !std::filesystem::is_regular_file(def->path, ec))
            return send_json(res, 503, {{"status", "default model file " + def->path + " is missing"}});
        send_json(res, 200, {{"status", "ready"}, {"models", models.size()}, {"loaded", pool_.loaded().size()}});
    }));

    http.Get("/metrics", guarded([this](const http::Request&, http::Response& res) {
        auto hs = http_->stats();
        std::string text = metrics_.render([this, hs](std::string& out) {
            auto loaded = pool_.loaded();
            SchedulerStats total;
            std::vector<std::pair<std::string, SchedulerStats>> per_model;
            for (auto& m : loaded) {
                auto s = m->scheduler->stats();
                per_model.emplace_back(m->id, s);
                total.queued += s.queued;
                total.active += s.active;
                total.slots += s.slots;
                total.kv_cells_used += s.kv_cells_used;
                total.kv_cells_total += s.kv_cells_total;
                total.kv_bytes += s.kv_bytes;
            }
            auto gauge = [&](const char* name, const char* help, double v) {
                out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
                       std::to_string(v) + "\n";
            };
            gauge("minerva_queue_depth", "Requests waiting: for a slot, or (HTTP) for a worker thread.", total.queued + hs.pending);
            gauge("minerva_active_slots", "Slots generating now.", total.active);
            gauge("minerva_slots", "Slots of all loaded models.", total.slots);
            gauge("minerva_kv_cache_used_cells", "KV-cache cells holding tokens.", static_cast<double>(total.kv_cells_used));
            gauge("minerva_kv_cache_cells", "KV-cache cells in all.", static_cast<double>(total.kv_cells_total));
            gauge("minerva_kv_cache_usage_ratio", "Share of KV-cache cells in use.",
                  total.kv_cells_total ? static_cast<double>(total.kv_cells_used) / static_cast<double>(total.kv_cells_total) : 0.0);
            gauge("minerva_kv_cache_bytes", "KV-cache memory.", static_cast<double>(total.kv_bytes));
            out += "# HELP minerva_kv_cache_bytes_per_token KV-cache memory one token takes (all layers, K and V), per model.\n"
                   "# TYPE minerva_kv_cache_bytes_per_token gauge\n";
            for (auto& [id, s] : per_model)
                out += "minerva_kv_cache_bytes_per_token{model=\"" + id + "\",cache_type_k=\"" + cfg_.cache_type_k +
                       "\",cache_type_v=\"" + cfg_.cache_type_v + "\"} " + std::to_string(s.kv_bytes_per_token) + "\n";
            gauge("minerva_models_loaded", "Models loaded.", static_cast<double>(loaded.size()));
            {
                int64_t shifts = 0;
                for (auto& m : loaded) shifts += m->scheduler->context_shifts_total();
                out += "# HELP minerva_context_shifts_total Context shifts of full slots (--context-shift), loaded models.\n"
                       "# TYPE minerva_context_shifts_total counter\nminerva_context_shifts_total " + std::to_string(shifts) + "\n";
            }
            gauge("minerva_model_bytes_loaded", "Memory of the loaded models (weights and KV cache).", static_cast<double>(pool_.loaded_bytes()));
            gauge("minerva_http_connections", "Open client connections.", hs.connections);
            gauge("minerva_http_requests_in_flight", "Requests a worker thread is handling.", hs.in_flight);
            gauge("minerva_http_requests_pending", "Complete requests waiting for a worker thread.", hs.pending);

            // the same under the names vLLM exports, which autoscalers and dashboards read
            std::string label = "{model_name=\"" + (cfg_.model_path.empty() ? std::string("minerva") : pool_.resolve_id("")) + "\"}";
            auto vgauge = [&](const char* name, const char* help, auto value_of) {
                out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
                if (per_model.empty()) out += std::string(name) + label + " 0\n";
                for (auto& [id, s] : per_model) out += std::string(name) + "{model_name=\"" + id + "\"} " + std::to_string(value_of(s)) + "\n";
            };
            vgauge("vllm:num_requests_running", "Requests generating now (vLLM name).", [](const SchedulerStats& s) { return s.active; });
            vgauge("vllm:num_requests_waiting", "Requests waiting for a slot (vLLM name).", [](const SchedulerStats& s) { return s.queued; });
            vgauge("vllm:kv_cache_usage_perc", "KV-cache usage, 1 = full (vLLM name).", [](const SchedulerStats& s) {
                return s.kv_cells_total ? static_cast<double>(s.kv_cells_used) / static_cast<double>(s.kv_cells_total) : 0.0;
            });
        });
        res.set_content(text, "text/plain; version=0.0.4");
    }));

    auto model_json = [](const ModelEntry& e) {
        return json{{"id", e.id}, {"object", "model"}, {"created", e.created}, {"owned_by", "minerva"}, {"loaded", e.loaded}};
    };
    http.Get("/v1/models", guarded([this, model_json](const http::Request&, http::Response& res) {
        json data = json::array();
        for (auto& e : pool_.list()) data.push_back(model_json(e));
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    }));
    http.Get("/v1/models/stats", guarded([this](const http::Request&, http::Response& res) {
        json data = json::array();
        for (auto& st : pool_.stats()) {
            data.push_back({{"id", st.id},
                            {"loaded", st.loaded},
                            {"load_seconds", st.load_seconds},
                            {"loads", st.loads},
                            {"bytes", st.bytes},
                            {"requests", st.requests},
                            {"prompt_tokens", st.prompt_tokens},
                            {"completion_tokens", st.completion_tokens},
                            {"last_used", st.last_used ? json(st.last_used) : json(nullptr)},
                            {"evictions", st.evictions}});
        }
        send_json(res, 200, {{"object", "list"}, {"policy", policy_name(cfg_.eviction_policy)},
                             {"max_memory_bytes", pool_.memory_budget()}, {"loaded_bytes", pool_.loaded_bytes()}, {"data", data}});
    }));
    http.Get(R"(/v1/models/([^/]+))", guarded([this, model_json](const http::Request& req, http::Response& res) {
        auto e = pool_.find(req.matches[1]);
        if (!e) throw ApiError(404, "The model '" + std::string(req.matches[1]) + "' does not exist", "model", "model_not_found");
        send_json(res, 200, model_json(*e));
    }));
    // load counts as a use (it moves the model up the eviction order); preload does not
    auto load_route = [this, model_json](bool use) {
        return [this, model_json, use](const http::Request& req, http::Response& res) {
            std::optional<int64_t> keep_alive;
            if (!req.body.empty()) {
                json body = parse_body(req);
                keep_alive = parse_keep_alive(body);
            }
            pool_.get(req.matches[1], use, keep_alive);
            send_json(res, 200, model_json(*pool_.find(req.matches[1])));
        };
    };
    http.Post(R"(/v1/models/([^/]+)/load)", guarded(load_route(true)));
    http.Post(R"(/v1/models/([^/]+)/preload)", guarded(load_route(false)));
    http.Delete(R"(/v1/models/([^/]+))", guarded([this](const http::Request& req, http::Response& res) {
        std::string id = req.matches[1];
        if (!pool_.find(id)) throw ApiError(404, "The model '" + id + "' does not exist", "model", "model_not_found");
        bool was = pool_.unload(id);
        send_json(res, 200, {{"id", id}, {"object", "model"}, {"deleted", was}});
    }));

    http.Post("/tokenize", guarded([this](const http::Request& req, http::Response& res) {
        json body = parse_body(req);
        auto lm = pool_.get(pool_.resolve_id(requested_model(body)));
        if (!body.contains("content") || !body["content"].is_string())
            throw ApiError(400, "'content' must be a string", "content", "invalid_type");
        bool add_special = false;
        if (body.contains("add_special")) {
            if (!body["add_special"].is_boolean()) throw ApiError(400, "'add_special' must be a boolean", "add_special", "invalid_type");
            add_special = body["add_special"].get<bool>();
        }
        auto ids = lm->model->vocab()->tokenize(body["content"].get<std::string>(), add_special, true);
        send_json(res, 200, {{"tokens", ids}});
    }));
    http.Post("/detokenize", guarded([this](const http::Request& req, http::Response& res) {
        json body = parse_body(req);
        auto lm = pool_.get(pool_.resolve_id(requested_model(body)));
        if (!body.contains("tokens") || !body["tokens"].is_array())
            throw ApiError(400, "'tokens' must be an array of token ids", "tokens", "invalid_type");
        std::vector<int32_t> ids;
        const Vocab& vocab = *lm->model->vocab();
        for (auto& t : body["tokens"]) {
            if (!is_token_id(t, vocab.n_tokens()))
                throw ApiError(400, "'tokens' holds a value that is not a token id of this model (0.." +
                                        std::to_string(vocab.n_tokens() - 1) + ")", "tokens", "invalid_value");
            ids.push_back(t.get<int32_t>());
        }
        send_json(res, 200, {{"content", vocab.detokenize(ids)}});
    }));

    auto generation = [this](Endpoint endpoint) {
        return [this, endpoint](const http::Request& req, http::Response& res) {
            json body = parse_body(req);
            auto lm = pool_.get(pool_.resolve_id(requested_model(body)), true, parse_keep_alive(body));
            GenRequest g = parse_generation(body, endpoint, *lm);
            std::string rid = res.get_header_value("X-Request-Id");
            // The client sent more than the context holds and the server dropped its oldest turns.
            if (g.dropped_messages > 0) res.set_header("X-Minerva-Dropped-Messages", std::to_string(g.dropped_messages));

            auto choices = std::make_shared<std::vector<Choice>>();
            std::vector<std::shared_ptr<Job>> jobs;
            for (size_t p = 0; p < g.prompts.size(); ++p)
                for (int i = 0; i < g.n; ++i) {
                    auto j = std::make_shared<Job>();
                    j->prompt = g.prompts[p];
                    j->max_tokens = g.max_tokens;
                    j->sampling = g.sampling;
                    if (g.seeded) j->sampling.seed = g.sampling.seed + static_cast<uint64_t>(i);
                    j->stop = g.stop;
                    j->top_logprobs = g.top_logprobs;
                    j->context_shift = g.context_shift;
                    j->n_keep = g.n_keep;
                    jobs.push_back(j);
                    choices->push_back(Choice{j, {}, {}, false, false, p,
                                              g.parse_tools ? std::make_shared<ToolCallParser>(g.tool_format) : nullptr,
                                              g.split_reasoning ? std::make_shared<ThinkingSplitter>(g.reasoning_opened) : nullptr});
                }
            if (!lm->scheduler->submit(jobs))
                throw ApiError(429, "The server is busy: the request queue of model '" + lm->id + "' is full; retry later", "",
                               "queue_full");

            const bool chat = endpoint == Endpoint::Chat;
            const std::string id = std::string(chat ? "chatcmpl-" : "cmpl-") + rid.substr(4) + "-" + std::to_string(std::time(nullptr));
            const int64_t created = std::time(nullptr);
            const std::string object = chat ? "chat.completion" : "text_completion";
            const Vocab& vocab = *lm->model->vocab();

            if (!g.stream) {
                Waiter w{*choices, *lm->scheduler, req};
                std::vector<std::pair<std::string, std::vector<TokenInfo>>> fresh;
                while (true) {
                    if (!w.wait_any(fresh, 200)) {
                        res.status = 499;  // client closed the request (logged; nobody reads it)
                        note_tokens(rid, (*choices)[0].job->n_prompt, static_cast<int>((*choices)[0].tokens.size()), "cancelled");
                        return;
                    }
                    bool all = true;
                    for (size_t k = 0; k < choices->size(); ++k) {
                        auto& c = (*choices)[k];
                        c.text += fresh[k].first;
                        for (auto& t : fresh[k].second) c.tokens.push_back(std::move(t));
                        std::lock_guard lock(c.job->mu);
                        if (c.job->done && c.job->text.empty() && c.job->tokens.empty()) c.finished = true;
                        all = all && c.finished;
                    }
                    if (all) break;
                }
                json out_choices = json::array();
                for (size_t k = 0; k < choices->size(); ++k) {
                    auto& c = (*choices)[k];
                    if (c.job->finish_reason == "error") throw ApiError(500, "generation failed: " + c.job->error);
                    json ch = {{"index", k}, {"finish_reason", finish_reason(*c.job)}};
                    std::string answer = c.text, reasoning;
                    if (chat && c.think) {
                        auto a = c.think->push(c.text), b = c.think->finish();
                        reasoning = a.reasoning + b.reasoning;
                        answer = a.content + b.content;
                    }
                    if (chat && c.tools) {
                        ParsedToolCalls tc = parse_tool_calls(answer, g.tool_format);
                        if (!g.parallel_tool_calls && tc.calls.size() > 1) tc.calls.resize(1);
                        if (tc.calls.empty()) {
                            ch["message"] = {{"role", "assistant"}, {"content", answer}};
                        } else {
                            ch["message"] = {{"role", "assistant"},
                                             {"content", tc.content.empty() ? json(nullptr) : json(tc.content)},
                                             {"tool_calls", tool_calls_json(tc.calls, rid.substr(4), k)}};
                            ch["finish_reason"] = "tool_calls";
                        }
                        ch["logprobs"] = g.top_logprobs >= 0 ? chat_logprobs(vocab, c.tokens) : json(nullptr);
                    } else if (chat) {
                        ch["message"] = {{"role", "assistant"}, {"content", answer}};
                        ch["logprobs"] = g.top_logprobs >= 0 ? chat_logprobs(vocab, c.tokens) : json(nullptr);
                    } else {
                        const std::string& ptext = g.prompt_texts[c.prompt_index];
                        ch["text"] = g.echo ? ptext + c.text : c.text;
                        ch["logprobs"] = g.top_logprobs >= 0 ? completion_logprobs(vocab, c.tokens, g.echo ? ptext.size() : 0)
                                                             : json(nullptr);
                    }
                    if (chat && !reasoning.empty()) {
                        ch["message"]["reasoning_content"] = reasoning;
                        ch["message"]["reasoning"] = reasoning;
                    }
                    out_choices.push_back(ch);
                    metrics_.latency(c.job->total_seconds);
                }
                json usage = usage_json(*choices);
                note_tokens(rid, usage["prompt_tokens"], usage["completion_tokens"]);
                send_json(res, 200,
                          {{"id", id}, {"object", object}, {"created", created}, {"model", lm->id}, {"choices", out_choices},
                           {"usage", usage}, {"system_fingerprint", "minerva"}});
                return;
            }

            // ---- SSE streaming
            const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
            auto chunk = [=](json choices_arr) {
                json j = {{"id", id}, {"object", chunk_object}, {"created", created}, {"model", lm->id},
                          {"system_fingerprint", "minerva"}, {"choices", std::move(choices_arr)}};
                if (g.include_usage) j["usage"] = nullptr;
                return "data: " + dump(j) + "\n\n";
            };
            auto sched = lm->scheduler.get();
            // Tokens are written at most every kFlushInterval per stream: one write (and one wake-up of
            // this thread) per token would cost more than the batched decode step that made it.
            auto last_write = std::make_shared<Clock::time_point>();
            res.set_header("Cache-Control", "no-cache");
            res.set_chunked_content_provider(
                "text/event-stream",
                [this, lm, sched, choices, &req, g, chat, chunk, rid, id, created, chunk_object, last_write,
                 &vocab](size_t, http::DataSink& sink) {
                    constexpr auto kFlushInterval = std::chrono::milliseconds(15);
                    if (Clock::now() < *last_write + kFlushInterval) std::this_thread::sleep_until(*last_write + kFlushInterval);
                    Waiter w{*choices, *sched, req};
                    std::vector<std::pair<std::string, std::vector<TokenInfo>>> fresh;
                    auto cancelled = [&] {
                        int gen = 0;
                        for (auto& c : *choices) gen += static_cast<int>(c.tokens.size());
                        note_tokens(rid, (*choices)[0].job->n_prompt, gen, "cancelled");
                        return false;
                    };
                    if (!w.wait_any(fresh, 200)) return cancelled();
                    std::string out;
                    bool all = true;
                    for (size_t k = 0; k < choices->size(); ++k) {
                        auto& c = (*choices)[k];
                        if (c.finished) continue;
                        auto& [text, toks] = fresh[k];
                        if (chat && !c.role_sent) {
                            out += chunk(json::array({{{"index", k}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                                       {"logprobs", nullptr}, {"finish_reason", nullptr}}}));
                            c.role_sent = true;
                        }
                        if (!text.empty() || !toks.empty()) {
                            json ch = {{"index", k}, {"finish_reason", nullptr}};
                            const bool held = c.tools || c.think;
                            std::string reasoning;
                            if (held) c.text += text;
                            if (c.think) {  // thinking goes out as reasoning_content
                                auto o = c.think->push(text);
                                reasoning = std::move(o.reasoning);
                                text = std::move(o.content);
                            }
                            if (c.tools) text = c.tools->push(text);  // a call is held back until it is whole
                            if (chat) {
                                ch["delta"] = {{"content", text}};
                                if (!reasoning.empty()) ch["delta"]["reasoning_content"] = ch["delta"]["reasoning"] = reasoning;
                                ch["logprobs"] = g.top_logprobs >= 0 ? chat_logprobs(vocab, toks) : json(nullptr);
                            } else {
                                ch["text"] = text;
                                ch["logprobs"] = g.top_logprobs >= 0 ? completion_logprobs(vocab, toks, c.text.size()) : json(nullptr);
                            }
                            if (!held) c.text += text;
                            for (auto& t : toks) c.tokens.push_back(t);
                            if (!held || !text.empty() || !reasoning.empty() || g.top_logprobs >= 0) out += chunk(json::array({ch}));
                        }
                        bool done;
                        {
                            std::lock_guard lock(c.job->mu);
                            done = c.job->done && c.job->text.empty() && c.job->tokens.empty();
                        }
                        if (done) {
                            c.finished = true;
                            if (c.job->finish_reason == "error") {
                                out += "data: " + dump(error_body(ApiError(500, "generation failed: " + c.job->error))) + "\n\n";
                            } else {
                                json ch = {{"index", k}, {"finish_reason", finish_reason(*c.job)}, {"logprobs", nullptr}};
                                auto delta = [&](json d) {
                                    return chunk(json::array({{{"index", k}, {"delta", std::move(d)}, {"logprobs", nullptr}, {"finish_reason", nullptr}}}));
                                };
                                if (c.think) {
                                    auto o = c.think->finish();
                                    if (!o.reasoning.empty()) out += delta({{"content", ""}, {"reasoning_content", o.reasoning}, {"reasoning", o.reasoning}});
                                    std::string rest = c.tools ? c.tools->push(o.content) : o.content;
                                    if (!rest.empty()) out += delta({{"content", rest}});
                                }
                                if (c.tools) {
                                    // the held-back text: calls as OpenAI's tool-call deltas (id and name first,
                                    // then the arguments in pieces), anything else as content
                                    ParsedToolCalls tc = c.tools->finish();
                                    if (!g.parallel_tool_calls && tc.calls.size() > 1) tc.calls.resize(1);
                                    if (!tc.content.empty())
                                        out += chunk(json::array({{{"index", k}, {"delta", {{"content", tc.content}}}, {"logprobs", nullptr},
                                                                   {"finish_reason", nullptr}}}));
                                    const json calls = tool_calls_json(tc.calls, rid.substr(4), k);
                                    for (size_t i = 0; i < calls.size(); ++i) {
                                        json head = {{"index", i}, {"id", calls[i]["id"]}, {"type", "function"},
                                                     {"function", {{"name", calls[i]["function"]["name"]}, {"arguments", ""}}}};
                                        out += chunk(json::array({{{"index", k}, {"delta", {{"tool_calls", json::array({head})}}},
                                                                   {"logprobs", nullptr}, {"finish_reason", nullptr}}}));
                                        const std::string args = calls[i]["function"]["arguments"];
                                        for (size_t a = 0; a < args.size(); a += 16) {
                                            json part = {{"index", i}, {"function", {{"arguments", args.substr(a, 16)}}}};
                                            out += chunk(json::array({{{"index", k}, {"delta", {{"tool_calls", json::array({part})}}},
                                                                       {"logprobs", nullptr}, {"finish_reason", nullptr}}}));
                                        }
                                    }
                                    if (!tc.calls.empty()) ch["finish_reason"] = "tool_calls";
                                }
                                if (chat) ch["delta"] = json::object();
                                else ch["text"] = "";
                                out += chunk(json::array({ch}));
                            }
                            metrics_.latency(c.job->total_seconds);
                        }
                        all = all && c.finished;
                    }
                    if (all) {
                        json usage = usage_json(*choices);
                        note_tokens(rid, usage["prompt_tokens"], usage["completion_tokens"]);
                        if (g.include_usage) {
                            json j = {{"id", id}, {"object", chunk_object}, {"created", created}, {"model", lm->id},
                                      {"system_fingerprint", "minerva"}, {"choices", json::array()}, {"usage", usage}};
                            out += "data: " + dump(j) + "\n\n";
                        }
                        out += "data: [DONE]\n\n";
                    }
                    if (!out.empty()) *last_write = Clock::now();
                    if (!out.empty() && !sink.write(out.data(), out.size())) {
                        w.cancel_all();
                        return cancelled();
                    }
                    if (all) sink.done();
                    return true;
                },
                [choices, sched](bool success) {
                    if (!success)
                        for (auto& c : *choices) sched->cancel(c.job);
                });
        };
    };
    http.Post("/v1/embeddings", guarded([this](const http::Request& req, http::Response& res) {
        json body = parse_body(req);
        auto lm = pool_.get(pool_.resolve_id(requested_model(body)));
        int n_prompt = 0;
        json out = create_embeddings(body, *lm, n_prompt);
        note_tokens(res.get_header_value("X-Request-Id"), n_prompt, 0);
        send_json(res, 200, out);
    }));
    http.Post("/v1/chat/completions", guarded(generation(Endpoint::Chat)));
    http.Post("/v1/completions", guarded(generation(Endpoint::Completion)));
    http.Options(".*", [](const http::Request&, http::Response& res) { res.status = 204; });
}

}  // namespace minerva::serve
