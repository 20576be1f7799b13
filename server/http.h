// http.h: minerva-serve's HTTP/1.1 connection layer. One epoll thread accepts connections and
// reads requests with a bounded incremental parser (URL, header line, header count, body size,
// chunked bodies, a header deadline that bytes do not extend, bounded keep-alive, pipelining);
// complete requests run on a fixed worker pool (beyond it and its bounded backlog: 503), and
// /health-style routes on a small pool of their own so that load never delays them. Handlers
// see a Request and fill a Response, or stream one through a content provider.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace minerva::serve::http {

struct Limits {
    size_t max_body = 8u << 20;       // body bytes (Content-Length or chunked, decoded) -> 413
    size_t max_url = 8192;            // request target -> 414
    size_t max_header_line = 8192;    // one header line -> 431
    size_t max_headers = 100;         // header lines -> 431
    int header_timeout_ms = 10000;    // from the first byte of a request to its blank line -> 408
    int body_timeout_ms = 60000;      // from the blank line to the last body byte -> 408
    int keep_alive_ms = 15000;        // an idle keep-alive connection is closed after this
    int keep_alive_max = 1000;        // requests on one connection, then Connection: close
    int write_timeout_ms = 30000;     // one write to a client that does not read
    int max_connections = 1024;       // open client connections; beyond -> 503 and close
    size_t max_buffered = 512u << 20; // request bytes buffered over all connections; beyond -> 503
    int workers = 84;                 // threads running handlers
    int max_pending = 84;             // complete requests waiting for a worker; beyond -> 503
    int backlog = 4096;               // listen(2) backlog (the kernel caps it at somaxconn)
};

class Connection;

struct Request {
    std::string method, target, path, query, version;  // path is percent-decoded
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    std::vector<std::string> matches;  // [0] the path, then the route pattern's groups
    std::string remote_addr;
    int remote_port = 0;
    Connection* conn = nullptr;  // set while a handler runs

    bool has_header(const std::string& name) const;
    std::string get_header_value(const std::string& name) const;  // "" when absent
    // True once the client is gone (reset, or closed and it did not take a probe). A client
    // that only shut down its sending side after a complete request is still answered.
    bool client_gone() const;
};

class DataSink {
public:
    virtual ~DataSink() = default;
    virtual bool write(const char* data, size_t size) = 0;  // false: the client is gone
    virtual void done() = 0;
};

struct Response {
    int status = -1;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // a streamed body: called until it calls sink.done() or returns false
    std::function<bool(size_t, DataSink&)> provider;
    std::function<void(bool)> provider_done;  // true when the stream completed

    void set_header(const std::string& name, const std::string& value);
    std::string get_header_value(const std::string& name) const;
    void set_content(std::string content, const std::string& content_type);
    void set_chunked_content_provider(const std::string& content_type, std::function<bool(size_t, DataSink&)> p,
                                      std::function<void(bool)> done = {});
};

using Handler = std::function<void(const Request&, Response&)>;

class Server {
public:
    enum class HandlerResponse { Handled, Unhandled };

    explicit Server(Limits limits);
    ~Server();

    void Get(const std::string& pattern, Handler h) { route("GET", pattern, std::move(h)); }
    void Post(const std::string& pattern, Handler h) { route("POST", pattern, std::move(h)); }
    void Delete(const std::string& pattern, Handler h) { route("DELETE", pattern, std::move(h)); }
    void Options(const std::string& pattern, Handler h) { route("OPTIONS", pattern, std::move(h)); }
    // Paths served by the priority pool (cheap GETs: health, readiness, metrics).
    void set_priority_paths(std::set<std::string> paths) { priority_paths_ = std::move(paths); }

    // Before routing; Handled skips the route (the pre-routing handler filled the response).
    void set_pre_routing_handler(std::function<HandlerResponse(const Request&, Response&)> f) { pre_routing_ = std::move(f); }
    // Fills the body of an error status the layer set itself (404, 405, 400, 408, 413, 414, 431, 503).
    void set_error_handler(std::function<void(const Request&, Response&, const std::string& message)> f) {
        error_handler_ = std::move(f);
    }
    void set_exception_handler(std::function<void(const Request&, Response&, std::exception_ptr)> f) {
        exception_handler_ = std::move(f);
    }
    // After each response (also the layer's own errors), for the access log.
    void set_logger(std::function<void(const Request&, const Response&)> f) { logger_ = std::move(f); }

    // Binds host:port (port 0: any free port) without SO_REUSEPORT, so a second server on the
    // same port fails. Returns the bound port; throws minerva::Error with the reason.
    int bind(const std::string& host, int port);
    // Serves until stop(), then drains: no new connections or requests, in-flight requests
    // finish within drain_ms, after which on_drain_timeout runs (it should end them) and the
    // layer waits for them to return.
    void run();
    // Async-signal-safe: begins the drain.
    void stop();
    bool stopping() const { return stopping_.load(); }
    void set_drain(int drain_ms, std::function<void()> on_drain_timeout) {
        drain_ms_ = drain_ms;
        on_drain_timeout_ = std::move(on_drain_timeout);
    }

    struct Stats {
        int connections = 0, in_flight = 0, pending = 0;
    };
    Stats stats() const { return {n_conns_.load(), n_in_flight_.load(), n_pending_.load()}; }

private:
    struct RouteEntry {
        std::string method;
        std::regex re;
        Handler h;
    };
    struct Pool;

    void route(const std::string& method, const std::string& pattern, Handler h);
    void loop();
    void accept_all();
    void on_readable(Connection* c);
    void parse(Connection* c);
    void reject(Connection* c, int status, const std::string& message, bool linger_after = true);
    void dispatch(Connection* c);
    void handle(Connection* c);  // on a worker
    void finish(Connection* c);  // on a worker: hand the connection back to the loop
    void take_back();            // on the loop
    void arm(Connection* c);
    void close_conn(Connection* c);
    void account(Connection* c);  // updates buffered_ with c's buffered bytes
    void linger(Connection* c);
    void write_response(Connection* c, Response& res, bool keep_alive);
    void expire();

    Limits lim_;
    std::vector<RouteEntry> routes_;
    std::set<std::string> priority_paths_;
    std::function<HandlerResponse(const Request&, Response&)> pre_routing_;
    std::function<void(const Request&, Response&, const std::string&)> error_handler_;
    std::function<void(const Request&, Response&, std::exception_ptr)> exception_handler_;
    std::function<void(const Request&, const Response&)> logger_;
    std::function<void()> on_drain_timeout_;
    int drain_ms_ = 30000;

    int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::optional<std::chrono::steady_clock::time_point> accept_paused_until_;
    std::map<int, std::unique_ptr<Connection>> conns_;  // loop thread only
    size_t buffered_ = 0;                                // loop thread only
    std::mutex back_mu_;
    std::vector<Connection*> back_;  // returned by workers
    std::unique_ptr<Pool> main_pool_, priority_pool_;
    std::atomic<int> n_conns_{0}, n_in_flight_{0}, n_pending_{0};
};

// "\x0a"-style escapes for bytes up to 0x20 (space), 0x7f and above, '"' and '\\': safe to log.
std::string escape_for_log(const std::string& s);

}  // namespace minerva::serve::http
