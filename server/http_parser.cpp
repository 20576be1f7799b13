// http_parser.cpp: see http_parser.h.
#include "http_parser.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace minerva::serve::http {

namespace {

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

std::string trim(const std::string& s) {
    size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

bool tchar(char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr;
}

int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// Percent-decoding of a path; false on a malformed escape or an encoded NUL.
bool decode_path(const std::string& in, std::string& out) {
    out.clear();
    for (size_t k = 0; k < in.size(); ++k) {
        if (in[k] != '%') {
            out += in[k];
            continue;
        }
        if (k + 2 >= in.size()) return false;
        int hi = hex_value(in[k + 1]), lo = hex_value(in[k + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
        out += static_cast<char>(hi * 16 + lo);
        k += 2;
    }
    return true;
}

}  // namespace

bool Request::has_header(const std::string& name) const {
    std::string n = lower(name);
    for (auto& [k, v] : headers)
        if (k == n) return true;
    return false;
}

std::string Request::get_header_value(const std::string& name) const {
    std::string n = lower(name);
    for (auto& [k, v] : headers)
        if (k == n) return v;
    return {};
}

void RequestParser::reset() {
    phase_ = Phase::Head;
    chunk_ = Chunk::Size;
    scan_ = n_lines_ = n_blank_ = body_left_ = n_trailers_ = 0;
    chunked_ = started_ = want_continue_ = false;
    status_ = 0;
    message_.clear();
}

bool RequestParser::take_continue() {
    bool w = want_continue_;
    want_continue_ = false;
    return w;
}

RequestParser::Status RequestParser::fail(int status, std::string message) {
    status_ = status;
    message_ = std::move(message);
    return Status::Error;
}

RequestParser::Status RequestParser::feed(std::string& in, Request& req) {
    if (!in.empty()) started_ = true;
    while (phase_ == Phase::Head) {
        size_t nl = in.find('\n', scan_);
        const bool request_line = n_lines_ == 0;
        const size_t line_limit = request_line ? lim_.max_url + 32 : lim_.max_header_line;
        if (nl == std::string::npos) {
            // drop the lines already taken (once per feed, not per line), then check the partial one
            in.erase(0, scan_);
            scan_ = 0;
            if (in.size() > line_limit) {
                return request_line ? fail(414, "The request line is longer than " + std::to_string(line_limit) + " bytes")
                                    : fail(431, "A header line is longer than " + std::to_string(line_limit) + " bytes");
            }
            return Status::NeedMore;
        }
        std::string line = in.substr(scan_, nl - scan_);
        scan_ = nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > line_limit) {
            return request_line ? fail(414, "The request line is longer than " + std::to_string(line_limit) + " bytes")
                                : fail(431, "A header line is longer than " + std::to_string(line_limit) + " bytes");
        }
        if (request_line) {
            if (line.empty()) {  // blank lines before a request are allowed, a few
                if (++n_blank_ > lim_.max_headers) return fail(400, "Too many blank lines before the request line");
                continue;
            }
            size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
            if (sp1 == std::string::npos || sp2 == sp1) return fail(400, "Malformed request line");
            req.method = line.substr(0, sp1);
            req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
            req.version = line.substr(sp2 + 1);
            if (req.method.empty() || !std::all_of(req.method.begin(), req.method.end(), tchar))
                return fail(400, "Malformed request method");
            if (req.version != "HTTP/1.1" && req.version != "HTTP/1.0") {
                if (req.version.rfind("HTTP/", 0) != 0) return fail(400, "Malformed request line");
                req.version = "HTTP/1.1";
                return fail(505, "Only HTTP/1.0 and HTTP/1.1 are supported");
            }
            if (req.target.size() > lim_.max_url) return fail(414, "The URL is longer than " + std::to_string(lim_.max_url) + " bytes");
            if (req.target.empty() || req.target[0] != '/') return fail(400, "The request target must be a path");
            for (unsigned char ch : req.target)
                if (ch <= 0x20 || ch == 0x7f) return fail(400, "The request target holds a control byte or space");
            size_t q = req.target.find('?');
            req.query = q == std::string::npos ? "" : req.target.substr(q + 1);
            if (!decode_path(req.target.substr(0, q), req.path)) return fail(400, "Malformed percent-encoding in the path");
            ++n_lines_;
            continue;
        }
        if (!line.empty()) {
            if (++n_lines_ > lim_.max_headers + 1) return fail(431, "More than " + std::to_string(lim_.max_headers) + " header lines");
            size_t colon = line.find(':');
            if (colon == std::string::npos || colon == 0) return fail(400, "Malformed header line");
            std::string name = line.substr(0, colon);
            if (!std::all_of(name.begin(), name.end(), tchar)) return fail(400, "Malformed header name");
            std::string value = trim(line.substr(colon + 1));
            for (unsigned char ch : value)
                if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return fail(400, "A header value holds a control byte");
            req.headers.emplace_back(lower(name), value);
            continue;
        }
        in.erase(0, scan_);
        scan_ = 0;
        if (Status s = head_done(in, req); s == Status::Error) return s;
    }
    while (phase_ == Phase::Body) {
        if (!chunked_ || chunk_ == Chunk::Data) {
            size_t take = std::min(body_left_, in.size());
            if (take > 0) want_continue_ = false;
            req.body.append(in, 0, take);
            in.erase(0, take);
            body_left_ -= take;
            if (body_left_ > 0) return Status::NeedMore;
            if (!chunked_) {
                phase_ = Phase::Done;
                break;
            }
            chunk_ = Chunk::DataEnd;
            continue;
        }
        want_continue_ = false;
        size_t nl = in.find('\n');
        if (nl == std::string::npos) {
            if (in.size() > lim_.max_header_line) return fail(400, "Malformed chunked body: a line is too long");
            return Status::NeedMore;
        }
        std::string line = in.substr(0, nl);
        in.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (chunk_ == Chunk::DataEnd) {
            if (!line.empty()) return fail(400, "Malformed chunked body: chunk data is not followed by CRLF");
            chunk_ = Chunk::Size;
        } else if (chunk_ == Chunk::Size) {
            std::string hex = trim(line.substr(0, line.find(';')));
            if (hex.empty() || hex.size() > 15 ||
                !std::all_of(hex.begin(), hex.end(), [](char ch) { return hex_value(ch) >= 0; }))
                return fail(400, "Malformed chunked body: bad chunk size");
            size_t size = std::stoull(hex, nullptr, 16);
            if (size > lim_.max_body || req.body.size() + size > lim_.max_body)
                return fail(413, "The request body is too large (limit " + std::to_string(lim_.max_body) + " bytes)");
            if (size == 0) {
                chunk_ = Chunk::Trailer;
            } else {
                body_left_ = size;
                chunk_ = Chunk::Data;
            }
        } else {  // trailers, ignored, up to a blank line
            if (line.empty()) {
                phase_ = Phase::Done;
                break;
            }
            if (++n_trailers_ > lim_.max_headers) return fail(431, "Too many trailer lines");
        }
    }
    return Status::Complete;
}

// The blank line after the headers: decide how the body is framed.
RequestParser::Status RequestParser::head_done(std::string& in, Request& req) {
    std::string te, cl;
    int n_te = 0, n_cl = 0;
    for (auto& [k, v] : req.headers) {
        if (k == "transfer-encoding") {
            if (n_te++) te += ',';
            te += lower(v);
        }
        if (k == "content-length") {
            if (n_cl++ && v != cl) return fail(400, "Conflicting Content-Length headers");
            cl = v;
        }
    }
    if (n_te && n_cl) return fail(400, "A request may not carry both Transfer-Encoding and Content-Length");
    chunked_ = false;
    body_left_ = 0;
    if (n_te) {
        if (trim(te) != "chunked") return fail(501, "Transfer-Encoding '" + te.substr(0, 64) + "' is not supported (only chunked)");
        if (req.version != "HTTP/1.1") return fail(400, "Transfer-Encoding needs HTTP/1.1");
        chunked_ = true;
        chunk_ = Chunk::Size;
    } else if (n_cl) {
        if (cl.empty() || cl.size() > 19 || !std::all_of(cl.begin(), cl.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            return fail(400, "Content-Length '" + cl.substr(0, 32) + "' is not a non-negative integer");
        unsigned long long len = std::stoull(cl);
        if (len > lim_.max_body) return fail(413, "The request body is too large (limit " + std::to_string(lim_.max_body) + " bytes)");
        body_left_ = static_cast<size_t>(len);
    }
    std::string expect = lower(req.get_header_value("expect"));
    if (!expect.empty() && expect != "100-continue") return fail(417, "Expect '" + expect.substr(0, 64) + "' is not supported");
    want_continue_ = expect == "100-continue" && (chunked_ || body_left_ > 0) && in.empty() && req.version == "HTTP/1.1";
    phase_ = Phase::Body;
    return Status::NeedMore;
}

}  // namespace minerva::serve::http
