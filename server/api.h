// api.h: the HTTP face of minerva-serve: OpenAI-compatible routes over the model pool.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "metrics.h"
#include "models.h"

namespace minerva::serve {

namespace http {
class Server;
struct Limits;
}

class Api {
public:
    explicit Api(const Config& cfg);
    ~Api();
    // Loads a --model (a bad one is an error), checks --models-dir, binds the port. Throws
    // minerva::Error with the reason (the port is taken, the file is not a model, ...).
    void start();
    // Serves until stop(), then drains in-flight requests (bounded by drain_timeout_s).
    void run();
    void stop();  // async-signal-safe
    int bound_port() const { return port_; }

private:
    struct RequestRecord {
        std::chrono::steady_clock::time_point t0;
        int prompt_tokens = 0, completion_tokens = 0;
        std::string note;  // "cancelled" when the client went away
    };

    static http::Limits limits(const Config& cfg);
    void routes();
    std::string begin_request(const std::string& method, const std::string& path);
    void note_tokens(const std::string& rid, int prompt, int completion, const std::string& note = {});

    const Config& cfg_;
    Metrics metrics_;
    ModelPool pool_;
    std::unique_ptr<http::Server> http_;
    std::atomic<uint64_t> next_id_{1};
    std::mutex log_mu_;
    std::map<std::string, RequestRecord> records_;
    int port_ = 0;
};

}  // namespace minerva::serve
