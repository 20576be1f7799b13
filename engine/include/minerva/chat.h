// minerva/chat.h: chat templates. A conversation becomes prompt text by rendering the model's
// tokenizer.chat_template (a Jinja template) with a built-in Jinja-subset interpreter, or a
// built-in template when the model has none (ChatML) or the user names one.
//
//   auto tmpl = minerva::ChatTemplate::resolve("", model->chat_template());
//   std::vector<minerva::ChatMessage> msgs = {{"system", "Be brief."}, {"user", "Hi"}};
//   std::string text = tmpl.render(msgs, minerva::chat_options(*model->vocab()));
//   auto prompt = minerva::tokenize_chat(*model->vocab(), text);
#pragma once
#include "minerva/export.h"
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "minerva/vocab.h"

namespace minerva {

struct MINERVA_API ChatMessage {
    ChatMessage() = default;
    ChatMessage(std::string role_, std::string content_, std::string name_ = {}, std::string tool_call_id_ = {})
        : role(std::move(role_)), content(std::move(content_)), name(std::move(name_)), tool_call_id(std::move(tool_call_id_)) {}
    std::string role;     // "system", "user", "assistant", "tool", ...
    std::string content;  // text (content-part arrays are joined by the caller)
    std::string name;     // optional: tool or participant name ("" = absent)
    std::string tool_call_id;  // optional: for role "tool" ("" = absent)
    // optional, role "assistant": the model's reasoning, apart from content (Qwen3's <think>
    // part; "" = absent, the template then looks for <think>...</think> in content).
    std::string reasoning_content;
    // optional, assistant turns: the calls it made, as OpenAI's JSON array
    // [{"id", "type": "function", "function": {"name", "arguments"}}] ("" = none). Templates see
    // it as message.tool_calls (keys in the given order), with each function.arguments that is
    // a JSON string also parsed into an object.
    std::string tool_calls_json;
};

struct MINERVA_API ChatOptions {
    bool add_generation_prompt = true;  // end with the header of an assistant turn
    std::string bos_token;              // text of the BOS token, as templates expect
    std::string eos_token;
    std::optional<int64_t> now;         // unix time for strftime_now() (default: the clock)
    // The tools the model may call: a JSON array of OpenAI tool definitions
    // ([{"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}]),
    // the template's `tools` (in the same key order). "" = no tools (`tools` undefined).
    std::string tools_json;
    // The template's `enable_thinking` (Qwen3: false closes an empty <think></think> block so
    // the model answers directly); nullopt leaves it undefined (the template's default).
    std::optional<bool> enable_thinking;
};

class MINERVA_API ChatTemplate {
public:
    // Parses a Jinja template. Throws Error naming the line for a malformed template.
    explicit ChatTemplate(std::string_view source, std::string name = "custom");
    ~ChatTemplate();
    ChatTemplate(const ChatTemplate&);
    ChatTemplate& operator=(const ChatTemplate&);

    // A built-in template by name (see builtin_names()); Error for an unknown name.
    static ChatTemplate builtin(std::string_view name);
    // chatml, llama2, llama3, mistral, zephyr, gemma (Gemma 3), gemma2, phi3, phi4, phi4-mini,
    // qwen2.5, qwen3, tinyllama
    static const std::vector<std::string>& builtin_names();
    // spec "" -> the model's template (or ChatML when it has none); a built-in name; otherwise the
    // path of a file holding a Jinja template. Error when the file cannot be read or parsed.
    static ChatTemplate resolve(const std::string& spec, const std::string& model_template);

    const std::string& name() const;
    const std::string& source() const;

    // Renders the conversation. Throws Error for template errors, for raise_exception()
    // (e.g. "Conversation roles must alternate user/assistant/user/assistant/...") and for
    // tools / tool_calls that are not valid JSON arrays (naming the field).
    std::string render(std::span<const ChatMessage> messages, const ChatOptions& opts = {}) const;

private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

// bos_token/eos_token as the vocabulary spells them.
MINERVA_API ChatOptions chat_options(const Vocab& vocab, bool add_generation_prompt = true);

// Tokenizes rendered chat text with special-token text parsed. BOS is prepended when the
// vocabulary asks for it and the text does not already start with the BOS text.
MINERVA_API std::vector<int32_t> tokenize_chat(const Vocab& vocab, std::string_view text);

}  // namespace minerva
