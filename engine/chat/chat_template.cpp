// chat_template.cpp: minerva/chat.h on top of the Jinja subset (jinja.h).
#include <cstdint>
#include <ctime>
#include <nlohmann/json.hpp>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "chat_template_builtin.h"
#include "jinja.h"
#include "minerva/chat.h"
#include "minerva/error.h"

namespace minerva {

struct ChatTemplate::Impl {
    std::string name;
    std::string source;
    jinja::Template tmpl;
    Impl(std::string n, std::string s) : name(std::move(n)), source(std::move(s)), tmpl(source) {}
};

ChatTemplate::ChatTemplate(std::string_view source, std::string name) {
    try {
        impl_ = std::make_shared<Impl>(name, std::string(source));
    } catch (const Error& e) {
        throw Error("chat template '" + name + "': " + e.what());
    }
}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(const ChatTemplate&) = default;
ChatTemplate& ChatTemplate::operator=(const ChatTemplate&) = default;

const std::vector<std::string>& ChatTemplate::builtin_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (auto& b : chat_builtin::all()) v.emplace_back(b.name);
        return v;
    }();
    return names;
}

ChatTemplate ChatTemplate::builtin(std::string_view name) {
    for (auto& b : chat_builtin::all())
        if (b.name == name) return ChatTemplate(b.source, std::string(name));
    std::string known;
    for (auto& n : builtin_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown chat template '" + std::string(name) + "' (built-in: " + known + ")");
}

ChatTemplate ChatTemplate::resolve(const std::string& spec, const std::string& model_template) {
    if (spec.empty()) {
        if (model_template.empty()) return builtin("chatml");
        return ChatTemplate(model_template, "model");
    }
    for (auto& b : chat_builtin::all())
        if (b.name == spec) return builtin(spec);
    std::ifstream f(spec, std::ios::binary);
    if (!f) {
        std::string known;
        for (auto& n : builtin_names()) known += (known.empty() ? "" : ", ") + n;
        throw Error("chat template '" + spec + "' is neither a built-in name (" + known + ") nor a readable file");
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string src = ss.str();
    if (src.size() > 1 && src.back() == '\n') src.pop_back();  // editors add one; templates ship without
    return ChatTemplate(src, spec);
}

namespace {

// A JSON value as the Jinja value Python's json.loads would give the template (objects keep
// their key order, as Python dicts do).
jinja::Value from_json(const nlohmann::ordered_json& j, int depth = 0) {
    if (depth > 128) throw Error("nested more than 128 levels deep");
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return jinja::Value::none();
        case nlohmann::ordered_json::value_t::boolean: return jinja::Value(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return jinja::Value(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: {
            auto u = j.get<uint64_t>();
            if (u > static_cast<uint64_t>(INT64_MAX)) return jinja::Value(static_cast<double>(u));
            return jinja::Value(static_cast<int64_t>(u));
        }
        case nlohmann::ordered_json::value_t::number_float: return jinja::Value(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return jinja::Value(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            jinja::Array a;
            for (const auto& e : j) a.push_back(from_json(e, depth + 1));
            return jinja::Value(std::move(a));
        }
        case nlohmann::ordered_json::value_t::object: {
            jinja::Object o;
            for (const auto& [k, v] : j.items()) o.emplace_back(k, from_json(v, depth + 1));
            return jinja::Value(std::move(o));
        }
        default: return jinja::Value::none();
    }
}

// what: the field, for the message ("tools", "messages[2].tool_calls").
jinja::Value json_array(const std::string& text, const std::string& what) {
    nlohmann::ordered_json j;
    try {
        j = nlohmann::ordered_json::parse(text);
    } catch (const std::exception& e) {
        throw Error(what + " is not valid JSON: " + e.what());
    }
    if (!j.is_array()) throw Error(what + " must be a JSON array, got " + std::string(j.type_name()));
    try {
        return from_json(j);
    } catch (const Error& e) {
        throw Error(what + ": " + e.what());
    }
}

// OpenAI's tool_calls array. Templates read function.arguments both as text and as a mapping
// (Qwen3 iterates it): a string that is JSON is handed over as the object it encodes.
jinja::Value tool_calls_value(const std::string& text, const std::string& what) {
    nlohmann::ordered_json calls;
    try {
        calls = nlohmann::ordered_json::parse(text);
    } catch (const std::exception& e) {
        throw Error(what + " is not valid JSON: " + e.what());
    }
    if (!calls.is_array()) throw Error(what + " must be a JSON array, got " + std::string(calls.type_name()));
    for (auto& c : calls)
        if (c.is_object() && c.contains("function") && c["function"].is_object() && c["function"].contains("arguments") &&
            c["function"]["arguments"].is_string()) {
            auto args = nlohmann::ordered_json::parse(c["function"]["arguments"].get<std::string>(), nullptr, false);
            if (!args.is_discarded()) c["function"]["arguments"] = args;
        }
    try {
        return from_json(calls);
    } catch (const Error& e) {
        throw Error(what + ": " + e.what());
    }
}

}  // namespace

const std::string& ChatTemplate::name() const { return impl_->name; }
const std::string& ChatTemplate::source() const { return impl_->source; }


std::string ChatTemplate::render(std::span<const ChatMessage> messages, const ChatOptions& opts) const {
    jinja::Array msgs;
    for (const auto& m : messages) {
        jinja::Object o{{"role", jinja::Value(m.role)}, {"content", jinja::Value(m.content)}};
        if (!m.name.empty()) o.emplace_back("name", jinja::Value(m.name));
        if (!m.tool_call_id.empty()) o.emplace_back("tool_call_id", jinja::Value(m.tool_call_id));
        if (!m.reasoning_content.empty()) o.emplace_back("reasoning_content", jinja::Value(m.reasoning_content));
        if (!m.tool_calls_json.empty())
            o.emplace_back("tool_calls", tool_calls_value(m.tool_calls_json, "messages[" + std::to_string(msgs.size()) + "].tool_calls"));
        msgs.emplace_back(std::move(o));
    }
    std::time_t now = opts.now ? static_cast<std::time_t>(*opts.now) : std::time(nullptr);
    jinja::Object globals{
        {"messages", jinja::Value(std::move(msgs))},
        {"add_generation_prompt", jinja::Value(opts.add_generation_prompt)},
        {"bos_token", jinja::Value(opts.bos_token)},
        {"eos_token", jinja::Value(opts.eos_token)},
        {"strftime_now", jinja::Value::function([now](std::vector<jinja::Value>& a, jinja::KwArgs&) {
             if (a.empty() || !a[0].is_string()) throw Error("strftime_now() needs a format string");
             std::tm tm{};
             localtime_r(&now, &tm);
             char buf[256];
             size_t n = std::strftime(buf, sizeof buf, a[0].s.c_str(), &tm);
             return jinja::Value(std::string(buf, n));
         })},
    };
    if (!opts.tools_json.empty()) globals.emplace_back("tools", json_array(opts.tools_json, "tools"));
    if (opts.enable_thinking) globals.emplace_back("enable_thinking", jinja::Value(*opts.enable_thinking));
    try {
        return impl_->tmpl.render(globals);
    } catch (const Error& e) {
        throw Error("chat template '" + impl_->name + "': " + e.what());
    }
}

ChatOptions chat_options(const Vocab& vocab, bool add_generation_prompt) {
    ChatOptions o;
    o.add_generation_prompt = add_generation_prompt;
    if (vocab.valid(vocab.bos())) o.bos_token = std::string(vocab.token_text(vocab.bos()));
    if (vocab.valid(vocab.eos())) o.eos_token = std::string(vocab.token_text(vocab.eos()));
    return o;
}

std::vector<int32_t> tokenize_chat(const Vocab& vocab, std::string_view text) {
    std::vector<int32_t> ids = vocab.tokenize(text, false, true);
    if (vocab.add_bos() && vocab.valid(vocab.bos())) {
        bool has_bos = !ids.empty() && ids[0] == vocab.bos();
        if (!has_bos) ids.insert(ids.begin(), vocab.bos());
    }
    return ids;
}

}  // namespace minerva
