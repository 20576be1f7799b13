// libFuzzer target for minerva-serve's HTTP request parser (server/http_parser.cpp): arbitrary
// bytes arrive in pieces of a size the first byte picks, as from a socket, and pipelined
// requests are parsed one after another. Findings: a crash, a sanitizer report, a hang, an
// error status outside the documented set, a request past a limit, or buffered input that
// outgrows the longest allowed line (the parser must never hold more).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http_parser.h"

using namespace minerva::serve::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const Limits lim = [] {
        Limits l;
        l.max_body = 4096;
        l.max_url = 256;
        l.max_header_line = 256;
        l.max_headers = 16;
        return l;
    }();
    if (size == 0) return 0;
    const size_t step = 1 + data[0] % 64;
    const size_t max_buffered = std::max(lim.max_url + 32, lim.max_header_line);
    std::string in;
    Request req;
    RequestParser parser(lim);
    for (size_t off = 1; off < size; off += step) {
        in.append(reinterpret_cast<const char*>(data) + off, std::min(step, size - off));
        while (true) {
            auto st = parser.feed(in, req);
            if (st == RequestParser::Status::Error) {
                switch (parser.status()) {
                    case 400: case 413: case 414: case 417: case 431: case 501: case 505: return 0;
                    default: std::abort();
                }
            }
            if (st == RequestParser::Status::NeedMore) break;
            if (req.body.size() > lim.max_body || req.target.size() > lim.max_url || req.headers.size() > lim.max_headers ||
                req.path.empty() || req.path[0] != '/' || (req.version != "HTTP/1.1" && req.version != "HTTP/1.0"))
                std::abort();
            req = Request{};
            parser.reset();
        }
        if (in.size() > max_buffered) std::abort();
    }
    return 0;
}
