// http_parser.h: the incremental HTTP/1.x request parser of the connection layer, apart from
// sockets so that it can be fuzzed (tests/fuzz/fuzz_http.cpp). It consumes bytes as they
// arrive and enforces every limit as soon as it can be known: request target (414), header
// line and count (431), body size by Content-Length or while chunks are decoded (413), framing
// (400, 501, 505). It never buffers a line past its limit.
#pragma once
#include <cstddef>
#include <string>

#include "http.h"

namespace minerva::serve::http {

class RequestParser {
public:
    enum class Status { NeedMore, Complete, Error };

    explicit RequestParser(const Limits& lim) : lim_(lim) {}

    // Consumes what it can of `in` (erasing it) into `req`. Complete: `req` holds a whole
    // request and `in` starts at the next one. Error: see status()/message(); the connection
    // cannot be read further.
    Status feed(std::string& in, Request& req);
    void reset();  // for the next request on the connection

    bool started() const { return started_; }      // a byte of this request has been consumed
    bool in_body() const { return phase_ == Phase::Body; }
    // True once, when the head asked for 100-continue and the body has not begun to arrive.
    bool take_continue();
    int status() const { return status_; }
    const std::string& message() const { return message_; }

private:
    enum class Phase { Head, Body, Done } phase_ = Phase::Head;
    enum class Chunk { Size, Data, DataEnd, Trailer } chunk_ = Chunk::Size;

    Status fail(int status, std::string message);
    Status head_done(std::string& in, Request& req);

    const Limits& lim_;
    size_t scan_ = 0;       // in `in`: where the next head line starts
    size_t n_lines_ = 0;    // request line + header lines
    size_t n_blank_ = 0;    // blank lines before the request line
    bool chunked_ = false;
    size_t body_left_ = 0;  // Content-Length bytes still to come, or of the current chunk
    size_t n_trailers_ = 0;
    bool started_ = false;
    bool want_continue_ = false;
    int status_ = 0;
    std::string message_;
};

}  // namespace minerva::serve::http
