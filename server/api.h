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

namespace httplib {
class Server;
}

namespace minerva::serve {

class Api {
public:
    explicit Api(const Config& cfg);
    ~Api();
    // Binds and serves until stop(). Returns false when the address cannot be bound.
    bool listen();
    void stop();
    int bound_port() const { return port_; }

private:
    struct RequestRecord {
        std::chrono::steady_clock::time_point t0;
        int prompt_tokens = 0, completion_tokens = 0;
        std::string note;  // "cancelled" when the client went away
    };

    void routes();
    std::string begin_request(const std::string& method, const std::string& path);
    void note_tokens(const std::string& rid, int prompt, int completion, const std::string& note = {});

    const Config& cfg_;
    Metrics metrics_;
    ModelPool pool_;
    std::unique_ptr<httplib::Server> http_;
    std::atomic<uint64_t> next_id_{1};
    std::mutex log_mu_;
    std::map<std::string, RequestRecord> records_;
    int port_ = 0;
};

}  // namespace minerva::serve
