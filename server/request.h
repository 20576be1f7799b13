// request.h: OpenAI request bodies -> generation jobs, and jobs' output -> OpenAI responses.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "minerva/tools.h"
#include "models.h"

namespace minerva::serve {

using json = nlohmann::json;

enum class Endpoint { Chat, Completion };

struct GenRequest {
    Endpoint endpoint = Endpoint::Chat;
    std::string model;
    std::vector<std::vector<int32_t>> prompts;  // chat: one; completions: one per prompt sent
    int n = 1;
    int max_tokens = 0;
    SamplerParams sampling;
    bool seeded = false;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;
    int top_logprobs = -1;  // < 0: no logprobs
    bool echo = false;      // completions: prepend the prompt text
    std::vector<std::string> prompt_texts;  // completions: the text of each prompt (for echo)
    // chat with tools: parse the model's calls in this format (tool_choice other than "none")
    bool parse_tools = false;
    ToolFormat tool_format = ToolFormat::Generic;
    bool parallel_tool_calls = true;
    // chat with a thinking model: split <think>...</think> into reasoning_content
    bool split_reasoning = false;
    bool reasoning_opened = false;  // the prompt ends inside the think block
    bool context_shift = false;  // the model's server setting (LoadedModel::context_shift)
    int n_keep = 0;              // tokens a context shift keeps at the start
    int dropped_messages = 0;    // chat: oldest turns dropped to fit the context (context_shift)
};

// Parses and validates a request body against a loaded model (for tokenizing, vocabulary range
// checks and the context length). Throws ApiError 400 naming the parameter.
GenRequest parse_generation(const json& body, Endpoint endpoint, LoadedModel& lm);

// The "model" field: a string or absent. ApiError 400 when it has another type.
std::string requested_model(const json& body);

// Reads the value of an integer field (ApiError 400 naming it when mistyped or out of range).
std::optional<int64_t> get_int(const json& body, const char* key, int64_t lo, int64_t hi);

json error_body(const ApiError& e);
std::string dump(const json& j);  // never throws on invalid UTF-8 (replaced)

// Token text and bytes for logprobs.
json chat_logprobs(const Vocab& vocab, const std::vector<TokenInfo>& tokens);
json completion_logprobs(const Vocab& vocab, const std::vector<TokenInfo>& tokens, size_t text_offset);

}  // namespace minerva::serve
