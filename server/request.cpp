// request.cpp: validation of OpenAI chat/completions parameters and the logprobs formats.
// An unknown field, or a known one with the wrong type or out of range, is a 400 whose "param"
// names it.
#include "request.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "minerva/chat.h"
#include "json_guard.h"
#include "minerva/error.h"
#include "structured.h"

namespace minerva::serve {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_body(const ApiError& e) {
    return json{{"error",
                 {{"message", e.what()},
                  {"type", e.type},
                  {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                  {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

static const json* field(const json& body, const char* key) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
}

std::optional<int64_t> get_int(const json& body, const char* key, int64_t lo, int64_t hi) {
    const json* v = field(body, key);
    if (!v) return std::nullopt;
    int64_t x;
    if (v->is_number_integer()) x = v->get<int64_t>();
    else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() && std::fabs(v->get<double>()) < 1e15)
        x = static_cast<int64_t>(v->get<double>());
    else throw ApiError(400, std::string("'") + key + "' must be an integer", key, "invalid_type");
    if (x < lo || x > hi)
        throw ApiError(400, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                ", got " + std::to_string(x),
                       key, "invalid_value");
    return x;
}

static std::optional<double> get_num(const json& body, const char* key, double lo, double hi) {
    const json* v = field(body, key);
    if (!v) return std::nullopt;
    if (!v->is_number()) throw ApiError(400, std::string("'") + key + "' must be a number", key, "invalid_type");
    double x = v->get<double>();
    if (!(x >= lo && x <= hi)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "'%s' must be between %g and %g, got %g", key, lo, hi, x);
        throw ApiError(400, buf, key, "invalid_value");
    }
    return x;
}

static std::optional<bool> get_bool(const json& body, const char* key) {
    const json* v = field(body, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) throw ApiError(400, std::string("'") + key + "' must be a boolean", key, "invalid_type");
    return v->get<bool>();
}

std::string requested_model(const json& body) {
    const json* v = field(body, "model");
    if (!v) return "";
    if (!v->is_string()) throw ApiError(400, "'model' must be a string", "model", "invalid_type");
    return v->get<std::string>();
}

// content: a string, null, or an array of {"type": "text", "text": ...} parts
static std::string message_text(const json& content, size_t index) {
    std::string param = "messages[" + std::to_string(index) + "].content";
    if (content.is_null()) return "";
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) throw ApiError(400, "'" + param + "' must be a string or an array of content parts", param, "invalid_type");
    std::string out;
    for (size_t k = 0; k < content.size(); ++k) {
        const json& part = content[k];
        std::string pp = param + "[" + std::to_string(k) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
            throw ApiError(400, "'" + pp + "' must be an object with a 'type'", pp, "invalid_type");
        std::string type = part["type"].get<std::string>();
        if (type != "text" && type != "input_text")
            throw ApiError(400, "content parts of type '" + type + "' are not supported (only 'text')", pp, "invalid_value");
        if (!part.contains("text") || !part["text"].is_string())
            throw ApiError(400, "'" + pp + ".text' must be a string", pp + ".text", "invalid_type");
        if (!out.empty()) out += "\n";
        out += part["text"].get<std::string>();
    }
    return out;
}

static std::vector<ChatMessage> parse_messages(const json& body) {
    const json* msgs = field(body, "messages");
    if (!msgs) throw ApiError(400, "'messages' is required", "messages", "missing_required_parameter");
    if (!msgs->is_array() || msgs->empty())
        throw ApiError(400, "'messages' must be a non-empty array", "messages", "invalid_type");
    std::vector<ChatMessage> out;
    for (size_t k = 0; k < msgs->size(); ++k) {
        const json& m = (*msgs)[k];
        std::string p = "messages[" + std::to_string(k) + "]";
        if (!m.is_object()) throw ApiError(400, "'" + p + "' must be an object", p, "invalid_type");
        if (!m.contains("role") || !m["role"].is_string())
            throw ApiError(400, "'" + p + ".role' must be a string", p + ".role", "invalid_type");
        std::string role = m["role"].get<std::string>();
        if (role == "developer") role = "system";
        if (role != "system" && role != "user" && role != "assistant" && role != "tool")
            throw ApiError(400, "'" + p + ".role' must be one of system, developer, user, assistant, tool; got '" + role + "'",
                           p + ".role", "invalid_value");
        if (role != "assistant" && !m.contains("content"))
            throw ApiError(400, "'" + p + ".content' is required", p + ".content", "missing_required_parameter");
        ChatMessage cm(role, message_text(m.value("content", json(nullptr)), k));
        if (m.contains("name") && m["name"].is_string()) cm.name = m["name"].get<std::string>();
        if (m.contains("tool_call_id") && m["tool_call_id"].is_string()) cm.tool_call_id = m["tool_call_id"].get<std::string>();
        if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
            const json& tc = m["tool_calls"];
            const std::string tp = p + ".tool_calls";
            if (role != "assistant") throw ApiError(400, "'" + tp + "' is only allowed on assistant messages", tp, "invalid_value");
            if (!tc.is_array()) throw ApiError(400, "'" + tp + "' must be an array", tp, "invalid_type");
            for (size_t i = 0; i < tc.size(); ++i) {
                const json& c = tc[i];
                const std::string cp = tp + "[" + std::to_string(i) + "]";
                if (!c.is_object() || !c.contains("function") || !c["function"].is_object() || !c["function"].contains("name") ||
                    !c["function"]["name"].is_string() || !c["function"].contains("arguments") || !c["function"]["arguments"].is_string())
                    throw ApiError(400, "'" + cp + "' must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", cp,
                                   "invalid_value");
            }
            cm.tool_calls_json = tc.dump();
        }
        out.push_back(std::move(cm));
    }
    return out;
}

// tools, tool_choice, parallel_tool_calls: the tools go to the chat template (or, for templates
// without tool support, into a system message describing the generic format); "required" or a
// named function returns the grammar that forces a call.
static std::shared_ptr<GrammarConstraint> parse_tools(const json& body, LoadedModel& lm, GenRequest& r, std::vector<ChatMessage>& msgs,
                                                      ChatOptions& opts) {
    const json* tools = field(body, "tools");
    const json* choice = field(body, "tool_choice");
    r.parallel_tool_calls = get_bool(body, "parallel_tool_calls").value_or(true);
    if (!tools) {
        if (choice && !(choice->is_string() && *choice == "none"))
            throw ApiError(400, "'tool_choice' needs 'tools'", "tool_choice", "invalid_value");
        return nullptr;
    }
    if (!tools->is_array()) throw ApiError(400, "'tools' must be an array", "tools", "invalid_type");
    if (tools->empty()) return nullptr;
    std::vector<std::string> names;
    for (size_t i = 0; i < tools->size(); ++i) {
        const json& t = (*tools)[i];
        const std::string p = "tools[" + std::to_string(i) + "]";
        if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object())
            throw ApiError(400, "'" + p + "' must be {\"type\": \"function\", \"function\": {...}}", p, "invalid_value");
        const json& f = t["function"];
        for (auto& [k, v] : f.items())
            if (k != "name" && k != "description" && k != "parameters" && k != "strict")
                throw ApiError(400, "'" + p + ".function." + k + "' is not supported", p + ".function." + k, "invalid_value");
        const std::string name = f.contains("name") && f["name"].is_string() ? f["name"].get<std::string>() : "";
        bool ok = !name.empty() && name.size() <= 64;
        for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
        if (!ok) throw ApiError(400, "'" + p + ".function.name' must match ^[a-zA-Z0-9_-]{1,64}$", p + ".function.name", "invalid_value");
        if (f.contains("parameters") && !f["parameters"].is_null() && !f["parameters"].is_object())
            throw ApiError(400, "'" + p + ".function.parameters' must be a JSON Schema object", p + ".function.parameters", "invalid_type");
        names.push_back(name);
    }
    std::string mode = "auto";
    std::vector<std::string> forced;
    if (choice) {
        if (choice->is_string()) {
            mode = choice->get<std::string>();
            if (mode != "auto" && mode != "none" && mode != "required")
                throw ApiError(400, "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\"}}",
                               "tool_choice", "invalid_value");
        } else if (choice->is_object() && choice->value("type", "") == "function" && choice->contains("function") &&
                   (*choice)["function"].is_object() && (*choice)["function"].contains("name") && (*choice)["function"]["name"].is_string()) {
            const std::string name = (*choice)["function"]["name"].get<std::string>();
            if (std::find(names.begin(), names.end(), name) == names.end())
                throw ApiError(400, "'tool_choice' names function '" + name + "', which is not among the tools", "tool_choice", "invalid_value");
            mode = "required";
            forced.push_back(name);
        } else {
            throw ApiError(400, "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\"}}",
                           "tool_choice", "invalid_type");
        }
    }
    const std::string& tmpl = lm.chat->source();
    r.tool_format = template_handles_tools(tmpl) ? detect_tool_format(tmpl) : ToolFormat::Generic;
    r.parse_tools = mode != "none";
    const std::string tools_json = tools->dump();
    if (template_handles_tools(tmpl)) {
        opts.tools_json = tools_json;
    } else if (mode != "none") {
        const std::string prompt = generic_tool_prompt(tools_json, r.parallel_tool_calls);
        if (!msgs.empty() && msgs[0].role == "system") msgs[0].content += "\n\n" + prompt;
        else msgs.insert(msgs.begin(), ChatMessage("system", prompt));
    }
    if (mode != "required") return nullptr;
    try {
        return cached_constraint(tool_call_grammar(r.tool_format, tools_json, forced, r.parallel_tool_calls), lm.model->vocab());
    } catch (const Error& e) {
        throw ApiError(400, std::string("cannot force a tool call: ") + e.what(), "tools", "invalid_value");
    }
}

// Every field is honoured or refused: anything not listed here is a 400 naming it (docs/server.md
// lists them). `user` (an end-user id for the provider's abuse monitoring) has nothing to act on.
static void check_fields(const json& body, Endpoint endpoint) {
    static const std::set<std::string> common = {"model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "presence_penalty",
                                                  "frequency_penalty", "repeat_penalty", "seed", "logit_bias", "stop", "n", "stream",
                                                  "stream_options", "logprobs", "response_format", "grammar", "user", "keep_alive",
                                                  "n_keep"};
    static const std::set<std::string> chat = {"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
                                                "parallel_tool_calls", "reasoning_format", "reasoning_effort", "functions", "function_call"};
    static const std::set<std::string> completion = {"prompt", "echo", "max_completion_tokens"};
    for (auto& [k, v] : body.items()) {
        if (common.count(k) || (endpoint == Endpoint::Chat ? chat : completion).count(k)) continue;
        static const std::set<std::string> refused_later = {"tools", "tool_choice", "parallel_tool_calls", "reasoning_format",
                                                             "reasoning_effort", "functions", "function_call"};
        if (endpoint == Endpoint::Completion && refused_later.count(k)) continue;  // refused below with a precise message
        throw ApiError(400, "'" + k + "' is not supported by minerva-serve (docs/server.md lists the parameters)", k, "unsupported_parameter");
    }
    if (const json* u = field(body, "user"); u && !u->is_string()) throw ApiError(400, "'user' must be a string", "user", "invalid_type");
}

GenRequest parse_generation(const json& body, Endpoint endpoint, LoadedModel& lm) {
    check_fields(body, endpoint);
    GenRequest r;
    r.endpoint = endpoint;
    const Vocab& vocab = *lm.model->vocab();
    const int n_ctx = lm.scheduler->n_ctx();
    const char* prompt_param = endpoint == Endpoint::Chat ? "messages" : "prompt";

    // ---- the prompt
    std::shared_ptr<GrammarConstraint> tool_grammar;
    r.context_shift = lm.context_shift;
    if (endpoint == Endpoint::Chat) {
        auto msgs = parse_messages(body);
        ChatOptions opts = lm.chat_opts;
        tool_grammar = parse_tools(body, lm, r, msgs, opts);
        auto render = [&](const std::vector<ChatMessage>& m, bool add_generation_prompt) {
            try {
                ChatOptions o = opts;
                o.add_generation_prompt = add_generation_prompt;
                return lm.chat->render(m, o);
            } catch (const Error& e) {
                throw ApiError(400, std::string("cannot apply the chat template: ") + e.what(), "messages", "invalid_value");
            }
        };
        std::string text = render(msgs, opts.add_generation_prompt);
        std::vector<int32_t> ids = tokenize_chat(vocab, text);
        // The leading system messages: what a context shift keeps (llama.cpp's --keep).
        size_t n_system = 0;
        while (n_system < msgs.size() && msgs[n_system].role == "system") ++n_system;
        // With context_shift, a conversation that does not fit (with room for a reply) loses its
        // oldest turns after the system messages; the last message always stays.
        const int reserve = std::min(n_ctx / 4, 256);
        while (r.context_shift && static_cast<int>(ids.size()) + reserve > n_ctx && msgs.size() > n_system + 1) {
            msgs.erase(msgs.begin() + static_cast<std::ptrdiff_t>(n_system));
            while (msgs.size() > n_system + 1 && msgs[n_system].role != "user")  // a turn starts with the user
                msgs.erase(msgs.begin() + static_cast<std::ptrdiff_t>(n_system));
            ++r.dropped_messages;
            text = render(msgs, opts.add_generation_prompt);
            ids = tokenize_chat(vocab, text);
        }
        if (n_system > 0) {
            const std::vector<int32_t> sys =
                tokenize_chat(vocab, render(std::vector<ChatMessage>(msgs.begin(), msgs.begin() + static_cast<std::ptrdiff_t>(n_system)), false));
            size_t common = 0;
            while (common < sys.size() && common < ids.size() && sys[common] == ids[common]) ++common;
            r.n_keep = static_cast<int>(common);
        }
        r.prompts.push_back(std::move(ids));
        r.prompt_texts.push_back(text);
        // Thinking models: the template knows <think>, or the prompt opens the block itself.
        std::string format = "separate";
        if (const json* rf = field(body, "reasoning_format")) {
            if (!rf->is_string() || (*rf != "separate" && *rf != "inline"))
                throw ApiError(400, "'reasoning_format' must be 'separate' (reasoning_content) or 'inline' (kept in content)",
                               "reasoning_format", "invalid_value");
            format = rf->get<std::string>();
        }
        if (field(body, "reasoning_effort"))
            throw ApiError(400, "'reasoning_effort' is not supported: the model thinks as its chat template lets it", "reasoning_effort",
                           "unsupported_parameter");
        const size_t last = text.find_last_not_of(" \t\r\n");
        r.reasoning_opened = last != std::string::npos && last >= 6 && text.compare(last - 6, 7, "<think>") == 0;
        const bool thinks = r.reasoning_opened || lm.chat->source().find("<think>") != std::string::npos;
        r.split_reasoning = thinks && format == "separate";
    } else {
        const json* p = field(body, "prompt");
        if (!p) throw ApiError(400, "'prompt' is required", "prompt", "missing_required_parameter");
        // one prompt (a string or an array of token ids) or an array of several
        std::vector<const json*> list;
        const bool many = p->is_array() && !p->empty() && ((*p)[0].is_string() || (*p)[0].is_array());
        if (many)
            for (auto& x : *p) list.push_back(&x);
        else list.push_back(p);
        if (list.size() > 64) throw ApiError(400, "'prompt' holds more than 64 prompts", "prompt", "invalid_value");
        for (size_t i = 0; i < list.size(); ++i) {
            const json* one = list[i];
            const std::string param = many ? "prompt[" + std::to_string(i) + "]" : "prompt";
            std::vector<int32_t> ids;
            std::string text;
            if (one->is_string()) {
                text = one->get<std::string>();
                ids = vocab.tokenize(text, true, true);
            } else if (one->is_array() && !one->empty()) {
                for (size_t k = 0; k < one->size(); ++k) {
                    const json& t = (*one)[k];
                    if (!is_token_id(t, vocab.n_tokens()))
                        throw ApiError(400, "'" + param + "' token " + std::to_string(k) + " is not a token id of this model (0.." +
                                                std::to_string(vocab.n_tokens() - 1) + ")",
                                       param, "invalid_value");
                    ids.push_back(t.get<int32_t>());
                }
                text = vocab.detokenize(ids);
            } else {
                throw ApiError(400, "'" + param + "' must be a string, an array of token ids, or an array of those", param,
                               "invalid_type");
            }
            if (ids.empty()) throw ApiError(400, "'" + param + "' gives no tokens", param, "invalid_value");
            r.prompts.push_back(std::move(ids));
            r.prompt_texts.push_back(std::move(text));
        }
    }
    if (r.prompts[0].empty()) throw ApiError(400, std::string("'") + prompt_param + "' gives no tokens", prompt_param, "invalid_value");

    // ---- lengths
    auto max_tokens = get_int(body, "max_tokens", 1, 1 << 30);
    if (auto m = get_int(body, "max_completion_tokens", 1, 1 << 30)) max_tokens = m;
    size_t longest = 0;
    for (auto& p : r.prompts) longest = std::max(longest, p.size());
    const int n_prompt = static_cast<int>(longest);
    const char* len_param = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    // n_keep (llama.cpp's extension): tokens a context shift keeps at the start; -1 = the whole prompt.
    if (auto k = get_int(body, "n_keep", -1, 1 << 30)) r.n_keep = *k < 0 ? n_prompt : static_cast<int>(std::min<int64_t>(*k, n_prompt));
    if (field(body, "n_keep") && !r.context_shift)
        throw ApiError(400, "'n_keep' needs the server's context shift (--context-shift); it is off", "n_keep", "invalid_value");
    if (r.context_shift && r.n_keep >= n_ctx - 1)
        throw ApiError(400, "'n_keep' " + std::to_string(r.n_keep) + " leaves no room to shift the context of " + std::to_string(n_ctx),
                       "n_keep", "invalid_value");
    if (n_prompt >= n_ctx || (!r.context_shift && max_tokens && n_prompt + *max_tokens > n_ctx))
        throw ApiError(400,
                       "This model's maximum context length is " + std::to_string(n_ctx) + " tokens. However, you requested " +
                           std::to_string(n_prompt + (max_tokens ? *max_tokens : 0)) + " tokens (" + std::to_string(n_prompt) +
                           " in the " + prompt_param + ", " + std::to_string(max_tokens ? *max_tokens : 0) +
                           " for the completion). Please reduce the length of the " + prompt_param + " or completion.",
                       max_tokens ? len_param : prompt_param, "context_length_exceeded");
    r.max_tokens = max_tokens ? static_cast<int>(*max_tokens) : n_ctx - n_prompt;

    // ---- sampling
    SamplerParams& s = r.sampling;
    if (auto v = get_num(body, "temperature", 0, 2)) s.temperature = static_cast<float>(*v);
    if (auto v = get_num(body, "top_p", 0, 1)) s.top_p = static_cast<float>(*v);
    if (auto v = get_int(body, "top_k", 0, 1 << 30)) s.top_k = static_cast<int>(*v);
    if (auto v = get_num(body, "min_p", 0, 1)) s.min_p = static_cast<float>(*v);
    if (auto v = get_num(body, "presence_penalty", -2, 2)) s.presence_penalty = static_cast<float>(*v);
    if (auto v = get_num(body, "frequency_penalty", -2, 2)) s.frequency_penalty = static_cast<float>(*v);
    if (auto v = get_num(body, "repeat_penalty", 0.01, 10)) s.repeat_penalty = static_cast<float>(*v);
    if (auto v = get_int(body, "seed", INT64_MIN, INT64_MAX)) {
        s.seed = static_cast<uint64_t>(*v);
        r.seeded = true;
    }
    if (const json* lb = field(body, "logit_bias")) {
        if (!lb->is_object()) throw ApiError(400, "'logit_bias' must be an object of token id -> bias", "logit_bias", "invalid_type");
        for (auto& [key, val] : lb->items()) {
            int32_t id = -1;
            try {
                size_t used = 0;
                id = std::stoi(key, &used);
                if (used != key.size()) id = -1;
            } catch (const std::exception&) {
            }
            if (!vocab.valid(id))
                throw ApiError(400, "'logit_bias' key '" + key + "' is not a token id of this model", "logit_bias", "invalid_value");
            if (!val.is_number() || val.get<double>() < -100 || val.get<double>() > 100)
                throw ApiError(400, "'logit_bias' values must be numbers between -100 and 100", "logit_bias", "invalid_value");
            s.logit_bias.emplace_back(id, val.get<float>());
        }
    }

    // ---- structured output (response_format, grammar)
    s.grammar = parse_structured(body, lm.model->vocab());
    if (tool_grammar) {
        if (s.grammar)
            throw ApiError(400, "'tool_choice' forces a tool call, which cannot be combined with 'response_format' or 'grammar'",
                           "tool_choice", "invalid_value");
        s.grammar = tool_grammar;
    }
    if (s.grammar && endpoint == Endpoint::Chat) {
        // the constraint applies to the answer, after the thinking
        const std::string& tmpl = lm.chat->source();
        if (r.reasoning_opened || tmpl.find("<think>") != std::string::npos) {
            s.grammar_start_after = "</think>";
            s.grammar_open_tag = r.reasoning_opened ? "" : "<think>";
        }
    }
    for (const char* k : {"functions", "function_call"})
        if (field(body, k))
            throw ApiError(400, std::string("'") + k + "' (the deprecated functions API) is not supported; use 'tools' and 'tool_choice'", k,
                           "unsupported_parameter");
    if (endpoint == Endpoint::Completion)
        for (const char* k : {"tools", "tool_choice", "parallel_tool_calls", "reasoning_format", "reasoning_effort"})
            if (field(body, k)) throw ApiError(400, std::string("'") + k + "' is only supported by /v1/chat/completions", k, "invalid_value");

    // ---- stop, n, stream, logprobs
    if (const json* st = field(body, "stop")) {
        if (st->is_string()) {
            r.stop.push_back(st->get<std::string>());
        } else if (st->is_array() && st->size() <= 16) {
            for (auto& x : *st) {
                if (!x.is_string()) throw ApiError(400, "'stop' must be a string or an array of strings", "stop", "invalid_type");
                r.stop.push_back(x.get<std::string>());
            }
        } else {
            throw ApiError(400, "'stop' must be a string or an array of at most 16 strings", "stop", "invalid_type");
        }
        std::erase_if(r.stop, [](const std::string& x) { return x.empty(); });
    }
    r.n = static_cast<int>(get_int(body, "n", 1, 16).value_or(1));
    r.stream = get_bool(body, "stream").value_or(false);
    if (const json* so = field(body, "stream_options")) {
        if (!so->is_object()) throw ApiError(400, "'stream_options' must be an object", "stream_options", "invalid_type");
        if (!r.stream) throw ApiError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options", "invalid_value");
        r.include_usage = get_bool(*so, "include_usage").value_or(false);
    }
    if (endpoint == Endpoint::Chat) {
        bool lp = get_bool(body, "logprobs").value_or(false);
        auto top = get_int(body, "top_logprobs", 0, 20);
        if (top && !lp) throw ApiError(400, "'top_logprobs' needs 'logprobs' set to true", "top_logprobs", "invalid_value");
        if (lp) r.top_logprobs = static_cast<int>(top.value_or(0));
    } else {
        if (auto lp = get_int(body, "logprobs", 0, 5)) r.top_logprobs = static_cast<int>(*lp);
        r.echo = get_bool(body, "echo").value_or(false);
    }
    return r;
}

static json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
}

json chat_logprobs(const Vocab& vocab, const std::vector<TokenInfo>& tokens) {
    json content = json::array();
    for (auto& t : tokens) {
        std::string piece = vocab.token_to_piece(t.id, true);
        json top = json::array();
        for (auto& [id, lp] : t.top) {
            std::string p = vocab.token_to_piece(id, true);
            top.push_back({{"token", p}, {"logprob", lp}, {"bytes", bytes_of(p)}});
        }
        content.push_back({{"token", piece}, {"logprob", t.logprob}, {"bytes", bytes_of(piece)}, {"top_logprobs", top}});
    }
    return json{{"content", content}};
}

json completion_logprobs(const Vocab& vocab, const std::vector<TokenInfo>& tokens, size_t text_offset) {
    json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
    for (auto& t : tokens) {
        std::string piece = vocab.token_to_piece(t.id, true);
        toks.push_back(piece);
        lps.push_back(t.logprob);
        json top = json::object();
        for (auto& [id, lp] : t.top) top[vocab.token_to_piece(id, true)] = lp;
        tops.push_back(top);
        offs.push_back(text_offset);
        text_offset += piece.size();
    }
    return json{{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

}  // namespace minerva::serve
