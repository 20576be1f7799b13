// tests/test_tool_calls.cpp: tool-call parsers per format (whole, streamed in pieces, malformed),
// format detection, and the grammar that forces a call: what it admits parses back into calls
// whose arguments hold the required parameters.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "byte_vocab.h"
#include "minerva/grammar.h"
#include "minerva/model.h"
#include "minerva/tools.h"

using namespace minerva;
using json = nlohmann::json;
using minerva::test_util::byte_vocab;

namespace {

struct Case {
    ToolFormat fmt;
    std::string text;
    std::string content;                                   // expected content
    std::vector<std::pair<std::string, json>> calls;      // expected (name, arguments)
};

const json kArgs = {{"city", "Paris"}, {"days", 3}};

std::vector<Case> cases() {
    return {
        {ToolFormat::Hermes, "Let me check.\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>",
         "Let me check.", {{"weather", kArgs}}},
        {ToolFormat::Hermes, "{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>", "", {{"weather", kArgs}}},  // no opening tag
        {ToolFormat::Hermes,
         "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>", "",
         {{"a", json::object()}, {"b", {{"x", 1}}}}},
        {ToolFormat::Qwen3Coder, "<tool_call>\n<function=weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>", "",
         {{"weather", kArgs}}},
        {ToolFormat::Qwen3Coder, "<function=weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>", "",
         {{"weather", kArgs}}},
        {ToolFormat::Mistral, "[TOOL_CALLS][{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}, {\"name\": \"b\", \"arguments\": {}}]", "",
         {{"weather", kArgs}, {"b", json::object()}}},
        {ToolFormat::Mistral, "[{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}]", "", {{"weather", kArgs}}},
        {ToolFormat::Llama3, "<|python_tag|>{\"name\": \"weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", "", {{"weather", kArgs}}},
        {ToolFormat::Llama3, "{\"name\": \"weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}; {\"name\": \"b\", \"parameters\": {}}", "",
         {{"weather", kArgs}, {"b", json::object()}}},
        {ToolFormat::Generic, "{\"tool_calls\": [{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}]}", "", {{"weather", kArgs}}},
        {ToolFormat::Generic, "It is sunny in Paris.", "It is sunny in Paris.", {}},
        {ToolFormat::Hermes, "Plain answer < with a bracket.", "Plain answer < with a bracket.", {}},
    };
}

void check(const Case& c, const ParsedToolCalls& r, const std::string& how) {
    EXPECT_EQ(r.content, c.content) << how << ": " << c.text;
    ASSERT_EQ(r.calls.size(), c.calls.size()) << how << ": " << c.text;
    for (size_t i = 0; i < c.calls.size(); ++i) {
        EXPECT_EQ(r.calls[i].name, c.calls[i].first) << how;
        EXPECT_EQ(json::parse(r.calls[i].arguments), c.calls[i].second) << how;
    }
}

}  // namespace

TEST(ToolCalls, ParseWhole) {
    for (const Case& c : cases()) check(c, parse_tool_calls(c.text, c.fmt), std::string("whole ") + tool_format_name(c.fmt));
}

TEST(ToolCalls, ParseStreamedInPieces) {
    for (size_t step : {1u, 2u, 3u, 7u}) {
        for (const Case& c : cases()) {
            ToolCallParser p(c.fmt);
            std::string streamed;
            for (size_t i = 0; i < c.text.size(); i += step) streamed += p.push(std::string_view(c.text).substr(i, step));
            ParsedToolCalls r = p.finish();
            // what was streamed plus what finish() gives as content is the whole content
            r.content = streamed + r.content;
            // trailing whitespace before a call is not content
            while (!r.content.empty() && (r.content.back() == '\n' || r.content.back() == ' ')) r.content.pop_back();
            check(c, r, "pieces of " + std::to_string(step));
            if (!c.calls.empty()) {
                EXPECT_EQ(streamed.find("{\"name\""), std::string::npos) << "a call leaked into streamed content";
                EXPECT_EQ(streamed.find("<tool_call"), std::string::npos);
            }
        }
    }
}

TEST(ToolCalls, MalformedCallsStayText) {
    for (auto [fmt, text] : std::vector<std::pair<ToolFormat, std::string>>{
             {ToolFormat::Hermes, "<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \n</tool_call>"},
             {ToolFormat::Hermes, "<tool_call>\n{\"arguments\": {}}\n</tool_call>"},
             {ToolFormat::Mistral, "[TOOL_CALLS][{\"name\": 3}]"},
             {ToolFormat::Llama3, "{\"name\": \"x\", \"parameters\": [1, 2]}"},
             {ToolFormat::Qwen3Coder, "<tool_call>\n<function=weather>\n<parameter=city>\nParis\n"},
         }) {
        ParsedToolCalls r = parse_tool_calls(text, fmt);
        EXPECT_TRUE(r.calls.empty()) << text;
        EXPECT_TRUE(r.malformed) << text;
        EXPECT_EQ(r.content, text);
    }
}

TEST(ToolCalls, DetectsFormatFromTemplate) {
    EXPECT_EQ(detect_tool_format("{% for tool in tools %}<tool_call>{{ tool }}</tool_call>"), ToolFormat::Hermes);
    EXPECT_EQ(detect_tool_format("<tool_call>\n<function=name>\n<parameter=x>"), ToolFormat::Qwen3Coder);
    EXPECT_EQ(detect_tool_format("[AVAILABLE_TOOLS]{{ tools }}[/AVAILABLE_TOOLS][TOOL_CALLS]"), ToolFormat::Mistral);
    EXPECT_EQ(detect_tool_format("<|start_header_id|>ipython<|end_header_id|>{% if tools %}<|python_tag|>"), ToolFormat::Llama3);
    EXPECT_EQ(detect_tool_format("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"), ToolFormat::Generic);
}

TEST(ToolCalls, ForcedCallGrammarParsesBack) {
    const std::string tools = R"([
      {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {
         "city": {"type": "string", "maxLength": 6}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"]}}},
      {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]}}}])";
    auto vocab = byte_vocab();
    for (ToolFormat fmt : {ToolFormat::Hermes, ToolFormat::Qwen3Coder, ToolFormat::Mistral, ToolFormat::Llama3, ToolFormat::Generic}) {
        for (bool parallel : {false, true}) {
            for (const std::vector<std::string>& names : {std::vector<std::string>{}, std::vector<std::string>{"time"}}) {
                const std::string g = tool_call_grammar(fmt, tools, names, parallel);
                auto c = GrammarConstraint::create(Grammar::parse(g), vocab);
                for (uint64_t seed = 0; seed < 5; ++seed) {
                    SamplerParams sp;
                    sp.seed = seed;
                    sp.temperature = 1;
                    sp.top_k = 0, sp.top_p = 1, sp.min_p = 0;
                    sp.grammar = c;
                    Sampler s(sp, 257);
                    std::vector<float> logits(257, 0.f);
                    logits[256] = 3.f;  // end as soon as allowed: parallel calls stay short
                    std::string text;
                    for (int i = 0; i < 2000 && !s.grammar()->must_end(); ++i) {
                        const int32_t t = s.sample(logits);
                        if (t == 256) break;
                        s.accept(t);
                        text += char(t);
                    }
                    ParsedToolCalls r = parse_tool_calls(text, fmt);
                    ASSERT_FALSE(r.calls.empty()) << tool_format_name(fmt) << ": " << text;
                    if (!parallel) {
                        EXPECT_EQ(r.calls.size(), 1u);
                    }
                    for (auto& call : r.calls) {
                        json a = json::parse(call.arguments);
                        if (!names.empty()) {
                            EXPECT_EQ(call.name, "time");
                        }
                        if (call.name == "time") EXPECT_TRUE(a["zone"] == "UTC" || a["zone"] == "CET") << text;
                        else {
                            EXPECT_EQ(call.name, "weather");
                            EXPECT_TRUE(a["city"].is_string()) << text;
                            EXPECT_TRUE(a["days"].is_number_integer() && a["days"] >= 1 && a["days"] <= 7) << text;
                        }
                    }
                }
            }
        }
    }
    EXPECT_THROW(tool_call_grammar(ToolFormat::Hermes, tools, {"nope"}, false), Error);
}

TEST(Thinking, SplitsReasoningWholeAndInPieces) {
    struct Case {
        bool opened;
        std::string text, reasoning, content;
    };
    const std::vector<Case> cases = {
        {false, "<think>\nLet me see.\n</think>\n\nThe answer is 4.", "\nLet me see.\n", "The answer is 4."},
        {false, "  <think>a</think>b", "a", "b"},
        {false, "No thinking here.", "", "No thinking here."},
        {false, "<thin is not a tag", "", "<thin is not a tag"},
        {true, "reasoning only, cut short", "reasoning only, cut short", ""},
        {true, "why</think>\n{\"a\": 1}", "why", "{\"a\": 1}"},
        {false, "<think>x</thinkx></think>y", "x</thinkx>", "y"},
    };
    for (const Case& c : cases)
        for (size_t step : {1u, 2u, 5u, 1000u}) {
            ThinkingSplitter s(c.opened);
            std::string r, a;
            for (size_t i = 0; i < c.text.size(); i += step) {
                auto o = s.push(std::string_view(c.text).substr(i, step));
                r += o.reasoning;
                a += o.content;
            }
            auto o = s.finish();
            r += o.reasoning;
            a += o.content;
            EXPECT_EQ(r, c.reasoning) << c.text << " step " << step;
            EXPECT_EQ(a, c.content) << c.text << " step " << step;
        }
}
