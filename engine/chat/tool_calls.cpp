// chat/tool_calls.cpp: parsing tool calls in each family's format, holding back streamed text that
// may be a call, and the grammar that forces a valid call.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "grammar/json_schema.h"
#include "minerva/error.h"
#include "minerva/tools.h"

namespace minerva {

using json = nlohmann::json;

namespace {

constexpr int kMaxParallelCalls = 4;

std::string trim(std::string_view s) {
    size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string_view::npos ? std::string() : std::string(s.substr(a, b - a + 1));
}

// End (exclusive) of the balanced JSON object or array starting at i, or npos.
size_t json_end(std::string_view s, size_t i) {
    int depth = 0;
    bool in_str = false;
    for (size_t k = i; k < s.size(); ++k) {
        const char c = s[k];
        if (in_str) {
            if (c == '\\') ++k;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') ++depth;
        else if (c == '}' || c == ']') {
            if (--depth == 0) return k + 1;
        }
    }
    return std::string_view::npos;
}

// {"name": ..., "arguments"|"parameters": {...} or "..."} -> call
bool call_from_json(const json& j, ToolCall& out) {
    if (!j.is_object()) return false;
    const json* obj = &j;
    if (j.contains("function") && j["function"].is_object()) obj = &j["function"];
    if (!obj->contains("name") || !(*obj)["name"].is_string()) return false;
    out.name = (*obj)["name"].get<std::string>();
    const json* args = nullptr;
    for (const char* k : {"arguments", "parameters"})
        if (obj->contains(k)) args = &(*obj)[k];
    if (!args || args->is_null()) out.arguments = "{}";
    else if (args->is_string()) {
        auto parsed = json::parse(args->get<std::string>(), nullptr, false);
        if (parsed.is_discarded() || !parsed.is_object()) return false;
        out.arguments = parsed.dump();
    } else if (args->is_object()) out.arguments = args->dump();
    else return false;
    return true;
}

// JSON calls (objects or arrays of objects) one after another, separated by whitespace, ';' or ','.
bool parse_json_calls(std::string_view s, std::vector<ToolCall>& calls) {
    size_t i = 0;
    bool any = false;
    while (true) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r' || s[i] == ';' || s[i] == ',')) ++i;
        if (i >= s.size()) return any;
        if (s[i] != '{' && s[i] != '[') return false;
        const size_t e = json_end(s, i);
        if (e == std::string_view::npos) return false;
        auto j = json::parse(s.substr(i, e - i), nullptr, false);
        if (j.is_discarded()) return false;
        std::vector<json> items;
        if (j.is_array()) items.assign(j.begin(), j.end());
        else if (j.is_object() && j.contains("tool_calls") && j["tool_calls"].is_array()) items.assign(j["tool_calls"].begin(), j["tool_calls"].end());
        else items.push_back(j);
        for (auto& x : items) {
            ToolCall c;
            if (!call_from_json(x, c)) return false;
            calls.push_back(std::move(c));
        }
        any = true;
        i = e;
    }
}

// <function=f><parameter=p>value</parameter>...</function>
bool parse_xml_call(std::string_view s, ToolCall& out) {
    std::string t = trim(s);
    if (t.rfind("<function=", 0) != 0) return false;
    size_t gt = t.find('>');
    if (gt == std::string::npos) return false;
    out.name = trim(std::string_view(t).substr(10, gt - 10));
    const size_t fend = t.find("</function>", gt);
    if (fend == std::string::npos || out.name.empty()) return false;
    json args = json::object();
    size_t p = gt + 1;
    while (true) {
        const size_t ps = t.find("<parameter=", p);
        if (ps == std::string::npos || ps > fend) break;
        const size_t pgt = t.find('>', ps);
        const size_t pend = t.find("</parameter>", pgt);
        if (pgt == std::string::npos || pend == std::string::npos) return false;
        const std::string key = trim(std::string_view(t).substr(ps + 11, pgt - ps - 11));
        std::string raw = std::string(t.substr(pgt + 1, pend - pgt - 1));
        if (!raw.empty() && raw.front() == '\n') raw.erase(0, 1);
        if (!raw.empty() && raw.back() == '\n') raw.pop_back();
        auto v = json::parse(raw, nullptr, false);
        args[key] = v.is_discarded() ? json(raw) : v;
        p = pend + 12;
    }
    out.arguments = args.dump();
    return true;
}

// Opening markers of a call in each format ("" entries: a call may start the reply with JSON).
std::vector<std::string> markers(ToolFormat f) {
    switch (f) {
        case ToolFormat::Hermes: return {"<tool_call>"};
        case ToolFormat::Qwen3Coder: return {"<tool_call>", "<function="};
        case ToolFormat::Mistral: return {"[TOOL_CALLS]"};
        case ToolFormat::Llama3: return {"<|python_tag|>"};
        case ToolFormat::Generic: return {};
    }
    return {};
}

}  // namespace

const char* tool_format_name(ToolFormat f) {
    switch (f) {
        case ToolFormat::Generic: return "generic";
        case ToolFormat::Llama3: return "llama3";
        case ToolFormat::Hermes: return "hermes";
        case ToolFormat::Qwen3Coder: return "qwen3-coder";
        case ToolFormat::Mistral: return "mistral";
    }
    return "generic";
}

ToolFormat detect_tool_format(std::string_view t) {
    if (t.find("<function=") != std::string_view::npos && t.find("<tool_call>") != std::string_view::npos) return ToolFormat::Qwen3Coder;
    if (t.find("<tool_call>") != std::string_view::npos) return ToolFormat::Hermes;
    if (t.find("[TOOL_CALLS]") != std::string_view::npos) return ToolFormat::Mistral;
    if (t.find("<|python_tag|>") != std::string_view::npos || (t.find("<|start_header_id|>") != std::string_view::npos && t.find("tools") != std::string_view::npos))
        return ToolFormat::Llama3;
    return ToolFormat::Generic;
}

bool template_handles_tools(std::string_view t) { return t.find("tools") != std::string_view::npos; }

ParsedToolCalls parse_tool_calls(std::string_view text, ToolFormat fmt) {
    ParsedToolCalls r;
    const std::string all(text);
    // Where a call starts: a marker, or (missing opening tag / JSON formats) the reply itself.
    size_t start = std::string::npos;
    for (const std::string& m : markers(fmt)) start = std::min(start, all.find(m));
    const std::string head = trim(all);
    const bool json_first = !head.empty() && (head[0] == '{' || head[0] == '[');
    if (start == std::string::npos && json_first) start = all.find_first_not_of(" \t\r\n");
    // Hermes/Qwen without the opening tag: "{...}</tool_call>"
    if (start == std::string::npos && (fmt == ToolFormat::Hermes || fmt == ToolFormat::Qwen3Coder) && all.find("</tool_call>") != std::string::npos)
        start = all.find_first_not_of(" \t\r\n");
    if (start == std::string::npos) {
        r.content = all;
        return r;
    }
    std::string body = all.substr(start);
    std::vector<ToolCall> calls;
    bool ok = false;
    if (fmt == ToolFormat::Hermes || fmt == ToolFormat::Qwen3Coder) {
        // split on the tags; each piece is a JSON call or an XML function
        std::string rest = body;
        ok = true;
        bool any = false;
        while (!trim(rest).empty()) {
            std::string r2 = trim(rest);
            if (r2.rfind("<tool_call>", 0) == 0) r2 = r2.substr(11);
            size_t end = r2.find("</tool_call>");
            std::string piece = end == std::string::npos ? r2 : r2.substr(0, end);
            rest = end == std::string::npos ? "" : r2.substr(end + 12);
            ToolCall c;
            if (parse_xml_call(piece, c)) calls.push_back(c);
            else if (!parse_json_calls(trim(piece), calls)) {
                ok = false;
                break;
            }
            any = true;
        }
        ok = ok && any;
    } else if (fmt == ToolFormat::Mistral) {
        std::string b = trim(body);
        if (b.rfind("[TOOL_CALLS]", 0) == 0) b = b.substr(12);
        ok = parse_json_calls(trim(b), calls);
    } else {
        std::string b = trim(body);
        if (b.rfind("<|python_tag|>", 0) == 0) b = b.substr(14);
        ok = parse_json_calls(trim(b), calls);
    }
    if (!ok || calls.empty()) {
        r.content = all;
        r.malformed = true;
        return r;
    }
    r.content = trim(all.substr(0, start));
    r.calls = std::move(calls);
    return r;
}

std::string ToolCallParser::push(std::string_view piece) {
    buf_ += piece;
    if (holding_) return "";
    // A reply that starts with JSON may be a call in every format (a missing opening tag).
    const size_t first = buf_.find_first_not_of(" \t\r\n");
    if (emitted_ == 0) {
        if (first == std::string::npos) return "";  // only whitespace so far
        if (buf_[first] == '{' || buf_[first] == '[') {
            holding_ = true;
            return "";
        }
    }
    // Hold from a marker, or from a suffix that may grow into one.
    size_t hold = buf_.size();
    for (const std::string& m : markers(fmt_)) {
        const size_t at = buf_.find(m, emitted_);
        if (at != std::string::npos) {
            hold = std::min(hold, at);
            holding_ = true;
        }
        for (size_t len = std::min(m.size() - 1, buf_.size() - emitted_); len > 0; --len)
            if (buf_.compare(buf_.size() - len, len, m, 0, len) == 0) {
                hold = std::min(hold, buf_.size() - len);
                break;
            }
    }
    std::string out = buf_.substr(emitted_, hold - emitted_);
    emitted_ = hold;
    return out;
}

ParsedToolCalls ToolCallParser::finish() {
    ParsedToolCalls r = parse_tool_calls(std::string_view(buf_).substr(emitted_), fmt_);
    if (r.calls.empty()) {
        r.content = buf_.substr(emitted_);  // what was held, as text
        return r;
    }
    return r;  // content before the call (if any was held) plus nothing already emitted
}

std::string tool_call_grammar(ToolFormat fmt, const std::string& tools_json, const std::vector<std::string>& names, bool parallel) {
    json tools = json::parse(tools_json, nullptr, false);
    if (tools.is_discarded() || !tools.is_array()) throw Error("tools must be a JSON array");
    std::string rules, alts;
    int k = 0;
    std::vector<std::string> found;
    for (auto& t : tools) {
        const json& f = t.contains("function") ? t["function"] : t;
        if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) throw Error("a tool has no function name");
        const std::string name = f["name"].get<std::string>();
        if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
        found.push_back(name);
        json params = f.contains("parameters") && !f["parameters"].is_null() ? f["parameters"] : json{{"type", "object"}};
        const std::string prefix = "t" + std::to_string(k++) + "-";
        try {
            rules += json_schema_rules(params, prefix);
        } catch (const Error& e) {
            throw Error("function '" + name + "' parameters: " + e.what());
        }
        const std::string q = json(name).dump();  // "name" with JSON escapes
        std::string lit;                           // as a GBNF literal
        for (char c : q) lit += c == '"' ? std::string("\\\"") : c == '\\' ? std::string("\\\\") : std::string(1, c);
        std::string call;
        switch (fmt) {
            case ToolFormat::Qwen3Coder: {
                // <function=NAME> with each required parameter in order
                std::string body = "\"<tool_call>\\n<function=" + name + ">\\n\"";
                if (params.contains("properties") && params["properties"].is_object()) {
                    std::vector<std::string> req;
                    if (params.contains("required") && params["required"].is_array())
                        for (auto& r : params["required"]) req.push_back(r.get<std::string>());
                    int pi = 0;
                    for (auto& [pn, ps] : params["properties"].items()) {
                        if (std::find(req.begin(), req.end(), pn) == req.end()) continue;
                        const std::string pp = prefix + "p" + std::to_string(pi++) + "-";
                        rules += json_schema_rules(ps, pp);
                        body += " \"<parameter=" + pn + ">\\n\" " + pp + "root \"\\n</parameter>\\n\"";
                    }
                }
                call = body + " \"</function>\\n</tool_call>\"";
                break;
            }
            case ToolFormat::Hermes:
                call = "\"<tool_call>\\n{\\\"name\\\": " + lit + ", \\\"arguments\\\": \" " + prefix + "root \"}\\n</tool_call>\"";
                break;
            case ToolFormat::Llama3:
                call = "\"{\\\"name\\\": " + lit + ", \\\"parameters\\\": \" " + prefix + "root \"}\"";
                break;
            case ToolFormat::Mistral:
            case ToolFormat::Generic:
                call = "\"{\\\"name\\\": " + lit + ", \\\"arguments\\\": \" " + prefix + "root \"}\"";
                break;
        }
        alts += (alts.empty() ? "" : " | ") + call;
    }
    for (const std::string& n : names)
        if (std::find(found.begin(), found.end(), n) == found.end()) throw Error("no function named '" + n + "' among the tools");
    if (alts.empty()) throw Error("no tools to call");
    // parallel: at most kMaxParallelCalls calls, so that a model that never stops still ends
    auto rep = [&](const std::string& sep) {
        return parallel ? " (" + sep + " call){0," + std::to_string(kMaxParallelCalls - 1) + "}" : std::string();
    };
    std::string root;
    switch (fmt) {
        case ToolFormat::Hermes:
        case ToolFormat::Qwen3Coder: root = "call" + rep("\"\\n\""); break;
        case ToolFormat::Llama3: root = "call" + rep("\"; \""); break;
        case ToolFormat::Mistral: root = "\"[TOOL_CALLS][\" call" + rep("\", \"") + " \"]\""; break;
        case ToolFormat::Generic: root = "\"{\\\"tool_calls\\\": [\" call" + rep("\", \"") + " \"]}\""; break;
    }
    return "root ::= " + root + "\ncall ::= " + alts + "\n" + rules;
}

std::string generic_tool_prompt(const std::string& tools_json, bool parallel) {
    return "You can call these tools (JSON Schema of each function's arguments):\n" + tools_json +
           "\nTo call " + (parallel ? "one or more tools" : "a tool") +
           ", reply with only this JSON: {\"tool_calls\": [{\"name\": \"<function name>\", \"arguments\": {<arguments>}}]}\n"
           "Otherwise reply normally.";
}

ThinkingSplitter::Out ThinkingSplitter::push(std::string_view piece) {
    static constexpr std::string_view kOpen = "<think>", kClose = "</think>";
    Out out;
    buf_ += piece;
    for (;;) {
        if (state_ == State::Undecided) {
            const size_t first = buf_.find_first_not_of(" \t\r\n");
            if (first == std::string::npos) return out;
            const std::string_view head = std::string_view(buf_).substr(first);
            if (head.size() < kOpen.size() && kOpen.compare(0, head.size(), head) == 0) return out;  // may still open
            if (head.compare(0, kOpen.size(), kOpen) == 0) {
                buf_ = std::string(head.substr(kOpen.size()));
                state_ = State::Think;
            } else {
                state_ = State::Answer;
            }
        } else if (state_ == State::Think) {
            const size_t at = buf_.find(kClose);
            if (at != std::string::npos) {
                out.reasoning += buf_.substr(0, at);
                buf_.erase(0, at + kClose.size());
                state_ = State::AfterThink;
                continue;
            }
            size_t hold = 0;  // a tail that may grow into </think>
            for (size_t len = std::min(buf_.size(), kClose.size() - 1); len > 0; --len)
                if (kClose.compare(0, len, std::string_view(buf_).substr(buf_.size() - len)) == 0) {
                    hold = len;
                    break;
                }
            out.reasoning += buf_.substr(0, buf_.size() - hold);
            buf_.erase(0, buf_.size() - hold);
            return out;
        } else if (state_ == State::AfterThink) {
            const size_t first = buf_.find_first_not_of(" \t\r\n");
            if (first == std::string::npos) {
                buf_.clear();
                return out;
            }
            buf_.erase(0, first);
            state_ = State::Answer;
        } else {
            out.content += buf_;
            buf_.clear();
            return out;
        }
    }
}

ThinkingSplitter::Out ThinkingSplitter::finish() {
    Out out;
    if (state_ == State::Think) out.reasoning = buf_;
    else if (state_ != State::AfterThink) out.content = buf_;
    buf_.clear();
    return out;
}

}  // namespace minerva
