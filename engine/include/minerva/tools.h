// minerva/tools.h: tool (function) calls in the format each model family writes them, and the
// grammar that forces a valid call.
//
//   auto fmt = minerva::detect_tool_format(model->chat_template());
//   minerva::ToolCallParser parser(fmt);
//   for (each generated piece) stream_to_user(parser.push(piece));   // plain text only
//   minerva::ParsedToolCalls r = parser.finish();                    // r.calls, r.content
//
// Formats (what the model writes):
//   Llama3     {"name": "f", "parameters": {...}}, optionally after <|python_tag|>; several joined by ';'
//   Hermes     <tool_call>{"name": "f", "arguments": {...}}</tool_call> (Hermes, Qwen2.5, Qwen3)
//   Qwen3Coder <tool_call><function=f><parameter=p>value</parameter>...</function></tool_call>
//   Mistral    [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]
//   Generic    {"tool_calls": [{"name": "f", "arguments": {...}}]}  (templates without tool support;
//              generic_tool_prompt() tells the model about it)
// Parsers accept a missing opening tag (a reply that starts with the call's JSON).
#pragma once
#include "minerva/export.h"
#include <string>
#include <string_view>
#include <vector>

namespace minerva {

enum class ToolFormat { Generic, Llama3, Hermes, Qwen3Coder, Mistral };

// From the chat template's text: which format its model was trained to write.
MINERVA_API ToolFormat detect_tool_format(std::string_view chat_template);
MINERVA_API const char* tool_format_name(ToolFormat f);
// Does the template render `tools` itself? (If not, use generic_tool_prompt.)
MINERVA_API bool template_handles_tools(std::string_view chat_template);

struct MINERVA_API ToolCall {
    std::string name;
    std::string arguments;  // JSON object text
};

struct MINERVA_API ParsedToolCalls {
    std::string content;          // text outside the calls
    std::vector<ToolCall> calls;  // in order
    bool malformed = false;       // a call was started but could not be parsed (its text is in content)
};

// Whole-text parse.
MINERVA_API ParsedToolCalls parse_tool_calls(std::string_view text, ToolFormat fmt);

// Incremental: push() returns the text that is certainly not part of a call (it may be streamed
// as content at once); text that may start a call is held until finish().
class MINERVA_API ToolCallParser {
public:
    explicit ToolCallParser(ToolFormat fmt) : fmt_(fmt) {}
    std::string push(std::string_view piece);
    ParsedToolCalls finish();

private:
    ToolFormat fmt_;
    std::string buf_;       // everything pushed
    size_t emitted_ = 0;    // bytes of buf_ returned by push()
    bool holding_ = false;  // a call has (possibly) started at emitted_
};

// GBNF that admits only calls of the named functions (all of `tools` when names is empty) in the
// format, arguments valid against each function's `parameters` schema; with parallel, one to four
// calls. tools_json: OpenAI's tools array. Throws Error naming an unsupported schema keyword or
// an unknown function.
MINERVA_API std::string tool_call_grammar(ToolFormat fmt, const std::string& tools_json, const std::vector<std::string>& names, bool parallel);

// A system-prompt paragraph describing the tools and the Generic format, for templates that do
// not render `tools`.
MINERVA_API std::string generic_tool_prompt(const std::string& tools_json, bool parallel);

// Splits a thinking model's reply into reasoning (inside <think>...</think>) and the answer, as
// text streams in. opened: the prompt already opened the think block (R1-style templates), so the
// reply starts inside it. A reply that does not start with <think> is all answer.
class MINERVA_API ThinkingSplitter {
public:
    explicit ThinkingSplitter(bool opened) : state_(opened ? State::Think : State::Undecided) {}
    struct Out {
        std::string reasoning, content;
    };
    Out push(std::string_view piece);
    Out finish();

private:
    enum class State { Undecided, Think, AfterThink, Answer };
    State state_;
    std::string buf_;
};

}  // namespace minerva
