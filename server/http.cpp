// http.cpp: the HTTP/1.1 connection layer (see http.h). Ownership of a connection passes
// between the epoll thread (while it reads a request: the fd is armed EPOLLONESHOT) and one
// worker (while a handler runs and writes the response); the worker hands it back through a
// queue and an eventfd, so no connection is touched by two threads at once.
#include "http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "http_parser.h"
#include "minerva/error.h"

namespace minerva::serve::http {

using Clock = std::chrono::steady_clock;

namespace {

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

const char* reason(int status) {
    switch (status) {
        case 100: return "Continue";
        case 102: return "Processing";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 417: return "Expectation Failed";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 499: return "Client Closed Request";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

}  // namespace

std::string escape_for_log(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char ch : s) {
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", ch);
            out += buf;
        } else {
            out += static_cast<char>(ch);
        }
    }
    return out;
}

// ---- one client connection ------------------------------------------------------------------

class Connection {
public:
    explicit Connection(const Limits& lim) : parser(lim) {}
    int fd = -1;
    std::string addr;
    int port = 0;
    std::string in;  // received, not yet consumed
    int served = 0;  // requests answered on this connection

    // the request being read
    // Linger: answered and shut for writing; what the client still sends is read and dropped
    // until it closes (or a deadline), so that closing does not reset the answer away
    enum class Phase { Idle, Head, Body, Ready, Linger } phase = Phase::Idle;
    size_t lingered = 0;
    size_t accounted = 0;  // bytes of in + req.body counted in Server::buffered_
    Request req;
    RequestParser parser;
    Clock::time_point deadline;  // of the current phase (idle keep-alive, head, body)
    int deadline_status = 0;     // 408 when the deadline ends a request, 0 when it closes an idle one

    // while a worker owns it
    bool headers_sent = false;
    bool probed = false;
    bool keep_alive = true;
    int write_timeout_ms = 30000;

    bool send_all(const char* data, size_t n) {
        auto deadline_w = Clock::now() + std::chrono::milliseconds(write_timeout_ms);
        while (n > 0) {
            ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
            if (w > 0) {
                data += w;
                n -= static_cast<size_t>(w);
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline_w - Clock::now()).count());
                if (left <= 0) return false;
                pollfd p{fd, POLLOUT, 0};
                if (::poll(&p, 1, std::min(left, 1000)) < 0 && errno != EINTR) return false;
                continue;
            }
            return false;
        }
        return true;
    }
    bool send_all(const std::string& s) { return send_all(s.data(), s.size()); }

    bool gone() {
        pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
        bool eof = (p.revents & POLLRDHUP) != 0;
        if (!eof && (p.revents & POLLIN)) {
            char ch;
            eof = ::recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
        }
        if (!eof || probed) return false;
        // The client closed its sending side: it may still read (a half-close) or be gone. A
        // probe tells: a closed socket answers it with a reset, seen by the next poll. Before
        // the response head an HTTP/1.1 client must skip a 1xx; a stream sends an SSE comment.
        probed = true;
        if (!headers_sent) {
            if (req.version != "HTTP/1.1") return false;
            return !send_all("HTTP/1.1 102 Processing\r\n\r\n");
        }
        // an SSE comment line, framed as a chunk on HTTP/1.1
        return !send_all(req.version == "HTTP/1.1" ? "2\r\n:\n\r\n" : ":\n");
    }
};

bool Request::client_gone() const { return conn ? conn->gone() : false; }

void Response::set_header(const std::string& name, const std::string& value) {
    for (auto& [k, v] : headers)
        if (lower(k) == lower(name)) {
            v = value;
            return;
        }
    headers.emplace_back(name, value);
}

std::string Response::get_header_value(const std::string& name) const {
    for (auto& [k, v] : headers)
        if (lower(k) == lower(name)) return v;
    return {};
}

void Response::set_content(std::string content, const std::string& content_type) {
    body = std::move(content);
    set_header("Content-Type", content_type);
}

void Response::set_chunked_content_provider(const std::string& content_type, std::function<bool(size_t, DataSink&)> p,
                                            std::function<void(bool)> done) {
    if (status < 0) status = 200;
    set_header("Content-Type", content_type);
    provider = std::move(p);
    provider_done = std::move(done);
}

// ---- worker pools ----------------------------------------------------------------------------

struct Server::Pool {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Connection*> tasks;
    std::vector<std::thread> threads;
    int idle = 0;
    bool stop = false;

    Pool(int n, Server* s) {
        for (int k = 0; k < n; ++k)
            threads.emplace_back([this, s] {
                while (true) {
                    Connection* c;
                    {
                        std::unique_lock lock(mu);
                        ++idle;
                        cv.wait(lock, [&] { return stop || !tasks.empty(); });
                        --idle;
                        if (tasks.empty()) return;
                        c = tasks.front();
                        tasks.pop_front();
                    }
                    s->n_pending_.fetch_sub(1);
                    s->handle(c);
                }
            });
    }
    // false when every worker is busy and `max_pending` requests already wait
    bool push(Connection* c, int max_pending) {
        {
            std::lock_guard lock(mu);
            if (static_cast<int>(tasks.size()) >= idle + max_pending) return false;
            tasks.push_back(c);
        }
        cv.notify_one();
        return true;
    }
    ~Pool() {
        {
            std::lock_guard lock(mu);
            stop = true;
        }
        cv.notify_all();
        for (auto& t : threads) t.join();
    }
};

// ---- server ----------------------------------------------------------------------------------

Server::Server(Limits limits) : lim_(limits) {}

Server::~Server() {
    main_pool_.reset();
    priority_pool_.reset();
    for (auto& [fd, c] : conns_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Server::route(const std::string& method, const std::string& pattern, Handler h) {
    routes_.push_back({method, std::regex(pattern), std::move(h)});
}

int Server::bind(const std::string& host, int port) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    std::string port_s = std::to_string(port);
    if (int rc = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res); rc != 0)
        throw Error("cannot resolve --host '" + host + "': " + gai_strerror(rc));
    std::string why = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        // SO_REUSEADDR lets a restarted server bind past TIME_WAIT; it does not let two
        // listeners share the port (SO_REUSEPORT, deliberately not set, would).
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, lim_.backlog) == 0) {
            listen_fd_ = fd;
            break;
        }
        why = std::strerror(errno);
        ::close(fd);
    }
    ::freeaddrinfo(res);
    if (listen_fd_ < 0) throw Error("cannot listen on " + host + ":" + port_s + ": " + why);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    int bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);

    // each connection is a descriptor: make room for the connection limit
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = static_cast<rlim_t>(lim_.max_connections) + 256;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = std::min(want, rl.rlim_max);
            ::setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur < want) lim_.max_connections = std::max(16, static_cast<int>(rl.rlim_cur) - 256);
    }
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.fd = wake_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    return bound;
}

void Server::stop() {
    stopping_.store(true);
    if (wake_fd_ >= 0) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);
    }
}

void Server::run() {
    main_pool_ = std::make_unique<Pool>(lim_.workers, this);
    priority_pool_ = std::make_unique<Pool>(2, this);
    loop();
    main_pool_.reset();
    priority_pool_.reset();
}

void Server::loop() {
    std::vector<epoll_event> events(256);
    bool draining = false;
    Clock::time_point drain_deadline;
    bool drain_timed_out = false;
    while (true) {
        if (stopping_.load() && !draining) {
            draining = true;
            drain_deadline = Clock::now() + std::chrono::milliseconds(drain_ms_);
            spdlog::info("shutdown: no longer accepting connections; draining {} request(s) in flight (up to {} s)",
                         n_in_flight_.load() + n_pending_.load(), drain_ms_ / 1000);
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
            ::close(listen_fd_);
            listen_fd_ = -1;
        }
        if (draining) {
            // connections the loop owns hold no request in flight: close them
            std::vector<Connection*> idle;
            for (auto& [fd, c] : conns_)
                if (c->phase != Connection::Phase::Ready) idle.push_back(c.get());
            for (auto* c : idle) close_conn(c);
            if (conns_.empty()) return;
            if (!drain_timed_out && Clock::now() >= drain_deadline) {
                drain_timed_out = true;
                if (on_drain_timeout_) on_drain_timeout_();
            }
        }
        if (accept_paused_until_ && listen_fd_ >= 0 && Clock::now() >= *accept_paused_until_) {
            accept_paused_until_.reset();
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = listen_fd_;
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
        }
        int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 100);
        if (n < 0 && errno != EINTR) throw Error(std::string("epoll_wait: ") + std::strerror(errno));
        for (int k = 0; k < n; ++k) {
            int fd = events[static_cast<size_t>(k)].data.fd;
            if (fd == listen_fd_) {
                accept_all();
            } else if (fd == wake_fd_) {
                uint64_t v;
                while (::read(wake_fd_, &v, sizeof v) > 0) {
                }
                take_back();
            } else if (auto it = conns_.find(fd); it != conns_.end()) {
                on_readable(it->second.get());
            }
        }
        take_back();
        expire();
    }
}

void Server::accept_all() {
    while (true) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // out of descriptors: the backlog holds the clients; stop polling the listening
                // socket for a moment instead of spinning on it
                ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
                accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
            }
            return;
        }
        auto c = std::make_unique<Connection>(lim_);
        c->fd = fd;
        c->write_timeout_ms = lim_.write_timeout_ms;
        char host[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET) {
            auto& a = reinterpret_cast<sockaddr_in&>(ss);
            ::inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
            c->port = ntohs(a.sin_port);
        } else if (ss.ss_family == AF_INET6) {
            auto& a = reinterpret_cast<sockaddr_in6&>(ss);
            ::inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
            c->port = ntohs(a.sin6_port);
        }
        c->addr = host;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->deadline = Clock::now() + std::chrono::milliseconds(lim_.header_timeout_ms);
        c->deadline_status = 0;  // nothing sent yet: a silent connection is just closed
        Connection* raw = c.get();
        conns_[fd] = std::move(c);
        n_conns_.store(static_cast<int>(conns_.size()));
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
        ev.data.fd = fd;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        if (static_cast<int>(conns_.size()) > lim_.max_connections)
            reject(raw, 503, "Too many open connections (limit " + std::to_string(lim_.max_connections) + "); retry later",
                   /*linger=*/false);
    }
}

void Server::arm(Connection* c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.fd = c->fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Server::account(Connection* c) {
    size_t now = c->in.size() + c->req.body.size();
    buffered_ = buffered_ + now - c->accounted;
    c->accounted = now;
}

void Server::close_conn(Connection* c) {
    buffered_ -= c->accounted;
    c->accounted = 0;
    int fd = c->fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_.erase(fd);
    n_conns_.store(static_cast<int>(conns_.size()));
}

void Server::on_readable(Connection* c) {
    // Parse after every read: a head is rejected as soon as it breaks a limit, so at most one
    // read beyond the limit is ever buffered; a body is bounded by max_body.
    const int fd = c->fd;
    char buf[65536];
    while (true) {
        ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {
            close_conn(c);  // the client left (or reset), or finished after a lingering close
            return;
        }
        if (c->phase == Connection::Phase::Linger) {
            c->lingered += static_cast<size_t>(r);
            if (c->lingered > (size_t{64} << 20)) {
                close_conn(c);
                return;
            }
            continue;
        }
        if (c->phase == Connection::Phase::Idle) {
            c->phase = Connection::Phase::Head;
            c->deadline = Clock::now() + std::chrono::milliseconds(lim_.header_timeout_ms);
            c->deadline_status = 408;
        }
        // all connections together buffer at most max_buffered bytes of requests
        if (buffered_ + static_cast<size_t>(r) > lim_.max_buffered) {
            reject(c, 503, "The server is busy: too much request data is arriving at once; retry later");
            continue;  // now lingering: the rest is read and dropped
        }
        c->in.append(buf, static_cast<size_t>(r));
        parse(c);
        if (conns_.count(fd)) account(c);
        if (!conns_.count(fd) || c->phase == Connection::Phase::Ready) return;  // closed, or dispatched
    }
    arm(c);
}

// Consumes c->in into c->req. On a complete request dispatches it; on a bad one rejects it.
void Server::parse(Connection* c) {
    using Phase = Connection::Phase;
    if (c->phase != Phase::Head && c->phase != Phase::Body) return;
    const bool was_body = c->parser.in_body();
    auto st = c->parser.feed(c->in, c->req);
    if (st == RequestParser::Status::Error) return reject(c, c->parser.status(), c->parser.message());
    if (!was_body && (c->parser.in_body() || st == RequestParser::Status::Complete)) {
        // the head is complete: the body has a deadline of its own
        c->phase = Phase::Body;
        c->deadline = Clock::now() + std::chrono::milliseconds(lim_.body_timeout_ms);
        c->deadline_status = 408;
    }
    if (c->parser.take_continue())
        [[maybe_unused]] ssize_t w = ::send(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (st == RequestParser::Status::Complete) {
        c->phase = Phase::Ready;
        dispatch(c);
    }
}

void Server::reject(Connection* c, int status, const std::string& message, bool linger_after) {
    Response res;
    res.status = status;
    c->req.remote_addr = c->addr;
    c->req.remote_port = c->port;
    if (c->req.version.empty()) c->req.version = "HTTP/1.1";
    if (error_handler_) error_handler_(c->req, res, message);
    c->keep_alive = false;
    // the socket may be full of a body we will not read: write without blocking the loop long
    c->write_timeout_ms = 1000;
    write_response(c, res, false);
    if (logger_) logger_(c->req, res);
    if (linger_after) {
        linger(c);
    } else {  // past the connection limit: free the descriptor at once
        ::shutdown(c->fd, SHUT_WR);
        close_conn(c);
    }
}

void Server::linger(Connection* c) {
    // A close with unread input resets the connection, and a reset can destroy the answer
    // before the client reads it: shut writing, then drop input until the client closes.
    ::shutdown(c->fd, SHUT_WR);
    c->phase = Connection::Phase::Linger;
    c->in.clear();
    c->in.shrink_to_fit();
    c->req = Request{};
    c->parser.reset();
    account(c);
    c->deadline = Clock::now() + std::chrono::milliseconds(2000);
    c->deadline_status = 0;
    arm(c);
}

void Server::dispatch(Connection* c) {
    c->req.remote_addr = c->addr;
    c->req.remote_port = c->port;
    bool priority = c->req.method == "GET" && priority_paths_.count(c->req.path) > 0;
    Pool& pool = priority ? *priority_pool_ : *main_pool_;
    n_pending_.fetch_add(1);
    // priority requests take microseconds: they may wait in any number (one per connection)
    if (!pool.push(c, priority ? lim_.max_connections : lim_.max_pending)) {
        n_pending_.fetch_sub(1);
        c->phase = Connection::Phase::Head;  // so reject() closes it from the loop
        reject(c, 503, "The server is busy: every worker is taken and " + std::to_string(lim_.max_pending) +
                           " requests already wait; retry later");
    }
}

void Server::handle(Connection* c) {
    n_in_flight_.fetch_add(1);
    Request& req = c->req;
    req.conn = c;
    Response res;
    c->headers_sent = false;
    c->probed = false;
    c->write_timeout_ms = lim_.write_timeout_ms;
    std::string conn_hdr = lower(req.get_header_value("connection"));
    bool keep = req.version == "HTTP/1.1" ? conn_hdr.find("close") == std::string::npos
                                         : conn_hdr.find("keep-alive") != std::string::npos;
    if (c->served + 1 >= lim_.keep_alive_max || stopping_.load()) keep = false;
    c->keep_alive = keep;
    try {
        bool handled = pre_routing_ && pre_routing_(req, res) == HandlerResponse::Handled;
        if (!handled) {
            bool path_known = false;
            const RouteEntry* hit = nullptr;
            std::smatch m;
            for (auto& r : routes_) {
                if (!std::regex_match(req.path, m, r.re)) continue;
                path_known = path_known || r.method != "OPTIONS";
                if (r.method == req.method) {
                    hit = &r;
                    break;
                }
            }
            if (hit) {
                req.matches.clear();
                for (auto& g : m) req.matches.push_back(g.str());
                hit->h(req, res);
            } else {
                res.status = path_known ? 405 : 404;
                if (error_handler_)
                    error_handler_(req, res, (path_known ? "Method not allowed: " : "Unknown route: ") + req.method + " " + req.path);
            }
        }
    } catch (...) {
        res.provider = nullptr;
        if (exception_handler_) exception_handler_(req, res, std::current_exception());
        else res.status = 500;
    }
    if (res.status < 0) res.status = 200;
    write_response(c, res, keep);
    if (logger_) logger_(req, res);
    req.conn = nullptr;
    n_in_flight_.fetch_sub(1);
    finish(c);
}

void Server::write_response(Connection* c, Response& res, bool keep_alive) {
    const bool streamed = static_cast<bool>(res.provider);
    const bool v11 = c->req.version == "HTTP/1.1";
    if (streamed && !v11) keep_alive = false;  // HTTP/1.0: the close ends the body
    std::string head = std::string(v11 ? "HTTP/1.1 " : "HTTP/1.0 ") + std::to_string(res.status) + " " + reason(res.status) + "\r\n";
    for (auto& [k, v] : res.headers) {
        std::string lk = lower(k);
        if (lk == "content-length" || lk == "transfer-encoding" || lk == "connection") continue;
        head += k + ": " + v + "\r\n";
    }
    if (streamed) {
        if (v11) head += "Transfer-Encoding: chunked\r\n";
    } else if (res.status != 204 && res.status != 304) {
        head += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
    }
    head += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    head += "\r\n";
    c->keep_alive = keep_alive;
    if (!streamed) {
        bool ok = c->req.method == "HEAD" ? c->send_all(head) : c->send_all(head + res.body);
        if (!ok) c->keep_alive = false;
        return;
    }
    struct Sink : DataSink {
        Connection* c;
        bool v11, ok = true, finished = false;
        bool write(const char* data, size_t size) override {
            if (!ok || size == 0) return ok;
            if (v11) {
                char hex[32];
                int n = std::snprintf(hex, sizeof hex, "%zx\r\n", size);
                std::string frame(hex, static_cast<size_t>(n));
                frame.append(data, size);
                frame += "\r\n";
                ok = c->send_all(frame);
            } else {
                ok = c->send_all(data, size);
            }
            return ok;
        }
        void done() override { finished = true; }
    } sink;
    sink.c = c;
    sink.v11 = v11;
    sink.ok = c->send_all(head);
    c->headers_sent = true;
    size_t offset = 0;
    while (sink.ok && !sink.finished) {
        bool more;
        try {
            more = res.provider(offset, sink);
        } catch (...) {
            more = false;
        }
        if (!more) break;
    }
    if (sink.ok && sink.finished && v11) sink.ok = c->send_all("0\r\n\r\n");
    bool complete = sink.ok && sink.finished;
    if (res.provider_done) res.provider_done(complete);
    if (!complete) c->keep_alive = false;
}

void Server::finish(Connection* c) {
    {
        std::lock_guard lock(back_mu_);
        back_.push_back(c);
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);
}

void Server::take_back() {
    std::vector<Connection*> back;
    {
        std::lock_guard lock(back_mu_);
        back.swap(back_);
    }
    for (Connection* c : back) {
        if (stopping_.load()) {
            ::shutdown(c->fd, SHUT_WR);
            close_conn(c);
            continue;
        }
        if (!c->keep_alive) {
            linger(c);
            continue;
        }
        ++c->served;
        c->req = Request{};
        c->parser.reset();
        account(c);
        c->phase = c->in.empty() ? Connection::Phase::Idle : Connection::Phase::Head;
        c->deadline = Clock::now() + std::chrono::milliseconds(c->in.empty() ? lim_.keep_alive_ms : lim_.header_timeout_ms);
        c->deadline_status = c->in.empty() ? 0 : 408;
        if (!c->in.empty()) {
            const int fd = c->fd;
            parse(c);  // a pipelined request
            if (!conns_.count(fd) || c->phase == Connection::Phase::Ready) continue;
        }
        arm(c);
    }
}

void Server::expire() {
    auto now = Clock::now();
    std::vector<Connection*> due;
    for (auto& [fd, c] : conns_)
        if (c->phase != Connection::Phase::Ready && now >= c->deadline) due.push_back(c.get());
    for (Connection* c : due) {
        if (c->deadline_status == 0) {
            close_conn(c);
            continue;
        }
        reject(c, 408,
               c->phase == Connection::Phase::Body ? "The request body did not arrive within " + std::to_string(lim_.body_timeout_ms / 1000) + " s"
                                                   : "The request head did not arrive within " + std::to_string(lim_.header_timeout_ms / 1000) + " s");
    }
}

}  // namespace minerva::serve::http
