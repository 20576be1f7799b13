// Chat templates: the Jinja subset on its own, then the templates shipped with real models
// (tests/data/templates/*.jinja, copied from the models' tokenizer_config.json) rendered for a
// short conversation and compared with the exact text transformers' apply_chat_template gives.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common.h"
#include "chat/jinja.h"
#include "minerva/chat.h"
#include "minerva/error.h"
#include "minerva/vocab.h"

using minerva::ChatMessage;
using minerva::ChatOptions;
using minerva::ChatTemplate;

namespace {

std::string read_template(const std::string& name) {
    std::string path = std::string(MINERVA_SOURCE_DIR) + "/tests/data/templates/" + name;
    std::ifstream f(path, std::ios::binary);
    EXPECT_TRUE(f.good()) << "cannot open " << path;
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

const std::vector<ChatMessage> kConversation = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi there! How can I help?"},
    {"user", "Tell me a joke. "},  // the trailing space shows which templates trim
};
const std::vector<ChatMessage> kNoSystem(kConversation.begin() + 1, kConversation.end());

ChatOptions opts(std::string bos, std::string eos, bool gen = true) {
    ChatOptions o;
    o.bos_token = std::move(bos);
    o.eos_token = std::move(eos);
    o.add_generation_prompt = gen;
    o.now = 1721995200;  // 2024-07-26 12:00 UTC: "26 Jul 2024" in every time zone
    return o;
}

std::string render(const std::string& src, const minerva::jinja::Object& globals = {}) {
    return minerva::jinja::Template(src).render(globals);
}

}  // namespace

// ---- the Jinja subset --------------------------------------------------------------------

struct JinjaCase {
    const char* tmpl;
    const char* expected;
};

class JinjaFeature : public ::testing::TestWithParam<JinjaCase> {};

TEST_P(JinjaFeature, Renders) {
    using minerva::jinja::Array;
    using minerva::jinja::Object;
    using minerva::jinja::Value;
    Object globals{
        {"xs", Value(Array{Value(1), Value(2), Value(3)})},
        {"words", Value(Array{Value("a"), Value("b"), Value("c")})},
        {"d", Value(Object{{"k", Value("v")}, {"n", Value(2)}})},
        {"msg", Value(Object{{"role", Value("user")}, {"content", Value("  Hi There  ")}})},
        {"msgs", Value(Array{Value(Object{{"role", Value("user")}}), Value(Object{{"role", Value("assistant")}}),
                             Value(Object{{"role", Value("user")}})})},
        {"nothing", Value::none()},
        {"flag", Value(true)},
    };
    const JinjaCase& c = GetParam();
    std::string got;
    try {
        got = render(c.tmpl, globals);
    } catch (const minerva::Error& e) {
        FAIL() << "template: " << c.tmpl << "\nthrew: " << e.what();
    }
    EXPECT_EQ(got, c.expected) << "template: " << c.tmpl;
}

INSTANTIATE_TEST_SUITE_P(
    Subset, JinjaFeature,
    ::testing::Values(
        JinjaCase{"plain text", "plain text"},
        JinjaCase{"{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}",
                  "7 9 3 -4 1 1024 3.5"},
        JinjaCase{"{{ 'a' + 'b' }}{{ 'x' ~ 1 ~ none }}{{ 'ab' * 2 }}", "abx1Noneabab"},
        JinjaCase{"{{ true }} {{ none }} {{ 1.0 }} {{ [1, 'a'] }} {{ {'a': 1} }}", "True None 1.0 [1, 'a'] {'a': 1}"},
        JinjaCase{"{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
                  "10TrueFalse3|21FalseFalse3|32FalseTrue3|"},
        JinjaCase{"{% for x in xs if x != 2 %}{{ x }}{{ loop.length }}{% endfor %}", "1232"},
        JinjaCase{"{% for x in [] %}a{% else %}empty{% endfor %}", "empty"},
        JinjaCase{"{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
                  "1"},
        JinjaCase{"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}{{ k }}{% endfor %}",
                  "k=v;n=2;kn"},
        JinjaCase{"{% if 0 %}a{% elif nothing %}b{% elif xs %}c{% else %}d{% endif %}", "c"},
        JinjaCase{"{% set x = 5 %}{% for i in xs %}{% set x = i %}{% endfor %}{{ x }}", "5"},
        JinjaCase{"{% set ns = namespace(total=0) %}{% for i in xs %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}",
                  "6"},
        JinjaCase{"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set blk %}x{{ a }}y{% endset %}{{ blk }}", "12x1y"},
        JinjaCase{"{{ xs[0] }}{{ xs[-1] }}{{ xs[1:] }}{{ xs[:-1] }}{{ xs[::-1] }}{{ 'hello'[::-1] }}{{ 'hello'[1:3] }}",
                  "13[2, 3][1, 2][3, 2, 1]ollehel"},
        JinjaCase{"{{ msg.role }}{{ msg['role'] }}{{ msg.missing is defined }}{{ msg.content | trim }}|", "useruserFalseHi There|"},
        JinjaCase{"{{ msg.content.strip() }}|{{ msg.content.lstrip() }}|{{ msg.content.rstrip() }}|", "Hi There|Hi There  |  Hi There|"},
        JinjaCase{"{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}{{ 'hello world'.title() }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('x') }}",
                  "HIhiHello WorldTrueFalse"},
        JinjaCase{"{{ 'a,b,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a-b'.replace('-', '+') }}{{ '-'.join(words) }}",
                  "['a', 'b', 'c']['a', 'b']a+ba-b-c"},
        JinjaCase{"{{ 'x' | upper }}{{ 'X' | lower }}{{ words | length }}{{ 'abc' | length }}{{ words | join(', ') }}",
                  "Xx3" "3a, b, c"},
        JinjaCase{"{{ undefined_thing | default('dflt') }}{{ '' | default('e', true) }}{{ 3 | string }}{{ xs | first }}{{ xs | last }}",
                  "dflte313"},
        JinjaCase{"{{ d | tojson }} {{ ['a\"b', none, true, 1.5] | tojson }}", R"({"k": "v", "n": 2} ["a\"b", null, true, 1.5])"},
        JinjaCase{"{{ d | tojson(indent=2) }}", "{\n  \"k\": \"v\",\n  \"n\": 2\n}"},
        JinjaCase{"{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}{{ msgs | map(attribute='role') | join('/') }}",
                  "2user/assistant/user"},
        JinjaCase{"{{ xs | reject('equalto', 2) | list }}{{ xs | select('odd') | list }}{{ xs | reverse | list }}", "[1, 3][1, 3][3, 2, 1]"},
        JinjaCase{"{{ nothing is none }}{{ 'a' is string }}{{ 1 is number }}{{ d is mapping }}{{ xs is iterable }}{{ 4 is divisibleby 2 }}",
                  "TrueTrueTrueTrueTrueTrue"},
        JinjaCase{"{{ not nothing is none }}{{ nothing is not none }}{{ x is undefined }}{{ 3 is odd }}", "FalseFalseTrueTrue"},
        JinjaCase{"{{ 2 in xs }}{{ 'k' in d }}{{ 'ell' in 'hello' }}{{ 5 not in xs }}", "TrueTrueTrueTrue"},
        JinjaCase{"{{ 1 < 2 and 2 <= 2 }}{{ 'a' < 'b' }}{{ 1 == 1.0 }}{{ xs == [1, 2, 3] }}{{ flag or undefined_x }}{{ 0 or 'z' }}",
                  "TrueTrueTrueTrueTruez"},
        JinjaCase{"{{ 'yes' if flag else 'no' }}{{ 'yes' if nothing else 'no' }}", "yesno"},
        JinjaCase{"a  {%- if true -%}  b  {%- endif -%}  c {{- ' d ' -}} e", "abc d e"},
        JinjaCase{"{% if true %}\nline\n{% endif %}\n  {% if true %}\nx\n  {% endif %}\nend", "line\nx\nend"},
        JinjaCase{"{# a comment #}x{#- trimmed -#} y", "xy"},
        JinjaCase{"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }}{{ greet('Al', punct='?') }}",
                  "Hi Bob!Hi Al?"},
        JinjaCase{"{{ range(3) | list }}{{ range(1, 7, 2) | list }}", "[0, 1, 2][1, 3, 5]"},
        JinjaCase{"{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}"},
        JinjaCase{"{{ \"it's\" }} {{ 'tab\\tnew\\nline' }}", "it's tab\tnew\nline"},
        JinjaCase{"{% for m in msgs %}{{ loop.cycle('odd', 'even') }}{% endfor %}", "oddevenodd"},
        JinjaCase{"{{ d.get('k') }}{{ d.get('zz', 'def') }}{{ d.keys() | list }}{{ d['n'] + 1 }}", "vdef['k', 'n']3"}));

// Malformed templates and failing renders throw minerva::Error with a line number; never crash.
TEST(Jinja, MalformedTemplatesThrowClearErrors) {
    const char* bad_parse[] = {
        "{% if x %}never closed", "{% for %}{% endfor %}", "{{ 1 + }}", "{{ 'unterminated }}", "{% endif %}",
        "{% for x in xs %}{% endif %}", "{{ x[] }}", "{% bogus %}", "{{ (1, 2 }}", "{# no end", "{{ a.  }}",
        "{% set %}", "{% macro m( %}{% endmacro %}", "{{ @ }}", "{% if x %}{% else %}{% else %}{% endif %}",
    };
    // deep nesting is an Error, not a stack overflow
    std::vector<std::string> deep = {"{{ " + std::string(100000, '(') + "1 }}", "{{ " + std::string(100000, '-') + "1 }}",
                                     "{{ " + std::string(50000, '[') + " }}", std::string(3000, '{') + "% if x %}",
                                     [] { std::string t; for (int i = 0; i < 5000; ++i) t += "{% if x %}"; return t; }(),
                                     "{{ " + [] { std::string t; for (int i = 0; i < 50000; ++i) t += "not "; return t; }() + "x }}"};
    for (const auto& t : deep) EXPECT_THROW(minerva::jinja::Template{t}, minerva::Error) << t.substr(0, 40);
    for (const char* t : bad_parse) {
        try {
            minerva::jinja::Template tmpl(t);
            ADD_FAILURE() << "parsed without error: " << t;
        } catch (const minerva::Error& e) {
            EXPECT_NE(std::string(e.what()).find("line"), std::string::npos) << e.what();
        }
    }
    const char* bad_render[] = {
        "{{ raise_exception('boom') }}", "{{ 1 + 'a' }}", "{{ missing.attr }}", "{{ 1 / 0 }}", "{{ nope() }}",
        "{{ 'a' | nosuchfilter }}", "{{ 1 is nosuchtest }}", "{% set x.y = 1 %}", "{{ [1][0:1:0] }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "{{ 'x'.nomethod() }}", "{% for a, b in [1] %}{% endfor %}",
    };
    for (const char* t : bad_render) {
        try {
            render(t);
            ADD_FAILURE() << "rendered without error: " << t;
        } catch (const minerva::Error& e) {
            EXPECT_NE(std::string(e.what()).find("line"), std::string::npos) << e.what();
        }
    }
    try {
        render("{{ raise_exception('Roles must alternate') }}");
    } catch (const minerva::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Roles must alternate"), std::string::npos);
    }
}

// Random byte edits of a real template either render or throw Error: no crash, no hang.
TEST(Jinja, MutatedTemplatesNeverCrash) {
    std::string base = read_template("llama3.1.jinja") + read_template("mistral-v0.3.jinja");
    std::mt19937 rng(1234);
    const std::string alphabet = "{}%#-+()[]'\".|,:=~ \nabcxyz01";
    int rendered = 0, errors = 0;
    for (int iter = 0; iter < 400; ++iter) {
        std::string t = base;
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            size_t pos = rng() % t.size();
            switch (rng() % 3) {
                case 0: t.erase(pos, 1 + rng() % 8); break;
                case 1: t.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
                default: t[pos] = alphabet[rng() % alphabet.size()];
            }
        }
        try {
            ChatTemplate tmpl(t);
            tmpl.render(kConversation, opts("<s>", "</s>"));
            ++rendered;
        } catch (const minerva::Error&) {
            ++errors;
        }
    }
    EXPECT_EQ(rendered + errors, 400);
    EXPECT_GT(errors, 0);
}

// ---- the templates real models ship --------------------------------------------------------

struct ShippedCase {
    const char* file;
    bool with_system;
    const char* bos;
    const char* eos;
    bool add_generation_prompt;
    const char* expected;
};

class ShippedTemplate : public ::testing::TestWithParam<ShippedCase> {};

TEST_P(ShippedTemplate, RendersExactly) {
    const ShippedCase& c = GetParam();
    ChatTemplate tmpl(read_template(c.file), c.file);
    std::string got = tmpl.render(c.with_system ? kConversation : kNoSystem, opts(c.bos, c.eos, c.add_generation_prompt));
    EXPECT_EQ(got, c.expected) << c.file;
}

#define USER_ASSISTANT_USER_L3                                                                        \
    "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"                                    \
    "<|start_header_id|>assistant<|end_header_id|>\n\nHi there! How can I help?<|eot_id|>"           \
    "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"                           \
    "<|start_header_id|>assistant<|end_header_id|>\n\n"

INSTANTIATE_TEST_SUITE_P(
    Models, ShippedTemplate,
    ::testing::Values(
        ShippedCase{"llama2.jinja", true, "<s>", "</s>", true,
                    "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there! How can I help? "
                    "</s><s>[INST] Tell me a joke. [/INST]"},
        ShippedCase{"llama3.jinja", true, "<|begin_of_text|>", "<|end_of_text|>", true,
                    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" USER_ASSISTANT_USER_L3},
        ShippedCase{"llama3.1.jinja", true, "<|begin_of_text|>", "<|eot_id|>", true,
                    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                    "Today Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>" USER_ASSISTANT_USER_L3},
        ShippedCase{"llama3.2.jinja", true, "<|begin_of_text|>", "<|eot_id|>", true,
                    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                    "Today Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>" USER_ASSISTANT_USER_L3},
        ShippedCase{"llama3.2.jinja", false, "<|begin_of_text|>", "<|eot_id|>", true,
                    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                    "Today Date: 26 Jul 2024\n\n<|eot_id|>" USER_ASSISTANT_USER_L3},
        ShippedCase{"mistral-v0.1.jinja", false, "<s>", "</s>", true,
                    "<s>[INST] Hello! [/INST]Hi there! How can I help?</s>[INST] Tell me a joke.  [/INST]"},
        ShippedCase{"mistral-v0.3.jinja", true, "<s>", "</s>", true,
                    "<s>[INST] Hello![/INST] Hi there! How can I help?</s>[INST] You are a helpful assistant.\n\n"
                    "Tell me a joke. [/INST]"},
        ShippedCase{"chatml-qwen2.jinja", true, "", "<|im_end|>", true,
                    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
                    "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n<|im_start|>user\nTell me a joke. <|im_end|>\n"
                    "<|im_start|>assistant\n"},
        ShippedCase{"chatml-qwen2.jinja", false, "", "<|im_end|>", false,
                    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
                    "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n<|im_start|>user\nTell me a joke. <|im_end|>\n"},
        ShippedCase{"chatml-smollm.jinja", false, "", "<|im_end|>", true,
                    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
                    "<|im_start|>user\nTell me a joke. <|im_end|>\n<|im_start|>assistant\n"},
        ShippedCase{"zephyr.jinja", true, "<s>", "</s>", true,
                    "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\nHi there! How can I help?</s>\n"
                    "<|user|>\nTell me a joke. </s>\n<|assistant|>\n"},
        ShippedCase{"tinyllama.jinja", true, "<s>", "</s>", false,
                    "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\nHi there! How can I help?</s>\n"
                    "<|user|>\nTell me a joke. </s>\n"},
        ShippedCase{"gemma.jinja", false, "<bos>", "<eos>", true,
                    "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there! How can I help?<end_of_turn>\n"
                    "<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n"},
        ShippedCase{"gemma3.jinja", true, "<bos>", "<eos>", true,
                    "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n<start_of_turn>model\n"
                    "Hi there! How can I help?<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n"},
        ShippedCase{"phi3.jinja", true, "<s>", "<|endoftext|>", true,
                    "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\nHi there! How can I help?<|end|>\n"
                    "<|user|>\nTell me a joke. <|end|>\n<|assistant|>\n"},
        ShippedCase{"phi3.jinja", false, "<s>", "<|endoftext|>", false,
                    "<|user|>\nHello!<|end|>\n<|assistant|>\nHi there! How can I help?<|end|>\n<|user|>\nTell me a joke. <|end|>\n"
                    "<|endoftext|>"}));

// Templates that refuse a conversation say why, through raise_exception.
TEST(ShippedTemplates, RejectionsNameTheRule) {
    struct Case {
        const char* file;
        std::vector<ChatMessage> msgs;
        const char* needle;
    };
    std::vector<Case> cases = {
        {"gemma.jinja", kConversation, "System role not supported"},
        {"mistral-v0.1.jinja", kConversation, "Conversation roles must alternate"},
        {"llama2.jinja", {{"user", "a"}, {"user", "b"}}, "Conversation roles must alternate"},
        {"mistral-v0.3.jinja", {{"assistant", "a"}}, "must alternate"},
    };
    for (auto& c : cases) {
        ChatTemplate tmpl(read_template(c.file), c.file);
        try {
            tmpl.render(c.msgs, opts("<s>", "</s>"));
            ADD_FAILURE() << c.file << " accepted a conversation it should refuse";
        } catch (const minerva::Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
        }
    }
}

// The built-in names render the same text as the shipped files they were taken from.
TEST(ChatTemplateBuiltin, MatchShippedFilesAndResolve) {
    struct Case {
        const char* name;
        const char* file;
        bool with_system;
    };
    Case cases[] = {{"llama2", "llama2.jinja", true},   {"llama3", "llama3.jinja", true},
                    {"mistral", "mistral-v0.3.jinja", true}, {"zephyr", "zephyr.jinja", true},
                    {"gemma", "gemma3.jinja", true},   {"phi3", "phi3.jinja", true},
                    {"tinyllama", "tinyllama.jinja", true}};
    for (auto& c : cases) {
        auto o = opts("<s>", "</s>");
        const auto& msgs = c.with_system ? kConversation : kNoSystem;
        EXPECT_EQ(ChatTemplate::builtin(c.name).render(msgs, o), ChatTemplate(read_template(c.file)).render(msgs, o)) << c.name;
        EXPECT_EQ(ChatTemplate::resolve(c.name, "").name(), c.name);
    }
    EXPECT_EQ(ChatTemplate::builtin_names().size(), 13u);
    // No model template: ChatML.
    EXPECT_EQ(ChatTemplate::resolve("", "").render(kNoSystem, opts("<s>", "</s>")),
              "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
              "<|im_start|>user\nTell me a joke. <|im_end|>\n<|im_start|>assistant\n");
    // The model's own template wins when no override is given; a file path is read.
    EXPECT_EQ(ChatTemplate::resolve("", "{{ messages | length }}").render(kConversation), "4");
    std::string path = testing::TempDir() + "/minerva_tmpl.jinja";
    std::ofstream(path) << "{% for m in messages %}{{ m.role[0] }}{% endfor %}\n";
    EXPECT_EQ(ChatTemplate::resolve(path, "ignored").render(kConversation), "suau");
    EXPECT_THROW(ChatTemplate::resolve("no-such-template", ""), minerva::Error);
    EXPECT_THROW(ChatTemplate("{% if %}"), minerva::Error);
}

// ---- the families' templates with tools and <think> --------------------------------------

// Conversations in tests/data/templates/cases/*.json (messages with tool_calls and
// reasoning_content, tools, enable_thinking); the expected text is what Jinja2 renders for them
// as transformers' apply_chat_template does (tests/data/templates/render_reference.py TEMPLATE CASE).
struct FamilyCase {
    const char* file;
    const char* case_file;
    std::string expected;
};

struct LoadedCase {
    std::vector<ChatMessage> messages;
    ChatOptions opts;
};

LoadedCase load_case(const std::string& name) {
    std::ifstream f(std::string(MINERVA_SOURCE_DIR) + "/tests/data/templates/cases/" + name);
    EXPECT_TRUE(f.good()) << name;
    auto j = nlohmann::ordered_json::parse(f);
    LoadedCase c;
    for (const auto& m : j["messages"]) {
        ChatMessage msg(m["role"].get<std::string>(), m["content"].get<std::string>());
        if (m.contains("tool_call_id")) msg.tool_call_id = m["tool_call_id"].get<std::string>();
        if (m.contains("reasoning_content")) msg.reasoning_content = m["reasoning_content"].get<std::string>();
        if (m.contains("tool_calls")) msg.tool_calls_json = m["tool_calls"].dump();
        c.messages.push_back(std::move(msg));
    }
    c.opts = opts(j["bos_token"].get<std::string>(), j["eos_token"].get<std::string>(), j["add_generation_prompt"].get<bool>());
    if (j.contains("tools")) c.opts.tools_json = j["tools"].dump();
    if (j.contains("enable_thinking")) c.opts.enable_thinking = j["enable_thinking"].get<bool>();
    return c;
}

// Qwen's system turn when tools are given (Qwen2.5 and Qwen3 write the same): the system text,
// the tools' JSON inside <tools></tools>, then how to call them.
std::string qwen_tools_system(const std::string& system, const std::string& tools) {
    return "<|im_start|>system\n" + system +
           "\n"
           "\n"
           "# Tools\n"
           "\n"
           "You may call one or more functions to assist with the user query.\n"
           "\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n"
           "<tools>\n" +
           tools +
           "\n"
           "</tools>\n"
           "\n"
           "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
           "<tool_call>\n"
           "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
           "</tool_call><|im_end|>\n";
}

// tools.json and plain.json as Qwen2.5 and Qwen3 both render them.
const std::string k_qwen_tools =
    qwen_tools_system("You are a helpful assistant.",
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Current weather for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}}, \"required\": [\"city\"]}}}") +
    "<|im_start|>user\n"
    "What is the weather in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<tool_call>\n"
    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n"
    "</tool_call><|im_end|>\n"
    "<|im_start|>user\n"
    "<tool_response>\n"
    "{\"temperature\": 21}\n"
    "</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n";
const std::string k_qwen_plain =
    "<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
    "Hello!<|im_end|>\n"
    "<|im_start|>assistant\n"
    "Hi there! How can I help?<|im_end|>\n"
    "<|im_start|>user\n"
    "Tell me a joke. <|im_end|>\n"
    "<|im_start|>assistant\n";

class FamilyTemplate : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(FamilyTemplate, RendersExactly) {
    const FamilyCase& fc = GetParam();
    auto c = load_case(fc.case_file);
    ChatTemplate tmpl(read_template(fc.file), fc.file);
    EXPECT_EQ(tmpl.render(c.messages, c.opts), fc.expected) << fc.file << " on " << fc.case_file;
}

INSTANTIATE_TEST_SUITE_P(
    Families, FamilyTemplate,
    ::testing::Values(
        FamilyCase{"qwen2.5.jinja", "tools.json", k_qwen_tools},
        FamilyCase{"qwen2.5.jinja", "thinking.json",
                   "<|im_start|>system\n"
                       "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                       "<|im_start|>user\n"
                       "What is 2+2?<|im_end|>\n"
                       "<|im_start|>assistant\n"
                       "<think>\n"
                       "Add them.\n"
                       "</think>\n"
                       "\n"
                       "4<|im_end|>\n"
                       "<|im_start|>user\n"
                       "And 3+3?<|im_end|>\n"
                       "<|im_start|>assistant\n"},
        FamilyCase{"qwen2.5.jinja", "plain.json", k_qwen_plain},
        FamilyCase{"qwen3.jinja", "tools.json", k_qwen_tools},
        FamilyCase{"qwen3.jinja", "thinking.json",
                   "<|im_start|>user\n"
                       "What is 2+2?<|im_end|>\n"
                       "<|im_start|>assistant\n"
                       "4<|im_end|>\n"
                       "<|im_start|>user\n"
                       "And 3+3?<|im_end|>\n"
                       "<|im_start|>assistant\n"
                       "<think>\n"
                       "\n"
                       "</think>\n"
                       "\n"},
        FamilyCase{"qwen3.jinja", "reasoning-tools.json",
                   qwen_tools_system("Be brief.",
                         "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Current weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}") +
                       "<|im_start|>user\n"
                       "Weather in Paris?<|im_end|>\n"
                       "<|im_start|>assistant\n"
                       "<think>\n"
                       "I need the weather tool.\n"
                       "</think>\n"
                       "\n"
                       "<tool_call>\n"
                       "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
                       "</tool_call><|im_end|>\n"
                       "<|im_start|>user\n"
                       "<tool_response>\n"
                       "sunny\n"
                       "</tool_response>\n"
                       "<tool_response>\n"
                       "21 C\n"
                       "</tool_response><|im_end|>\n"
                       "<|im_start|>assistant\n"},
        FamilyCase{"qwen3.jinja", "plain.json", k_qwen_plain},
        FamilyCase{"phi4.jinja", "plain.json",
                   "<|im_start|>system<|im_sep|>You are a helpful assistant.<|im_end|><|im_start|>user<|im_sep|>Hello!<|im_end|><|im_start|>assistant<|im_sep|>Hi there! How can I help?<|im_end|><|im_start|>user<|im_sep|>Tell me a joke. <|im_end|><|im_start|>assistant<|im_sep|>"},
        FamilyCase{"phi4-mini.jinja", "plain.json",
                   "<|system|>You are a helpful assistant.<|end|><|user|>Hello!<|end|><|assistant|>Hi there! How can I help?<|end|><|user|>Tell me a joke. <|end|><|assistant|>"}));

// The new built-in names are the shipped files, tools and all; bad tools / tool_calls JSON is
// an Error naming the field.
TEST(ChatTemplateBuiltin, FamilyNamesAndToolErrors) {
    struct Case {
        const char* name;
        const char* file;
        const char* case_file;
    };
    const Case cases[] = {{"qwen2.5", "qwen2.5.jinja", "tools.json"}, {"qwen3", "qwen3.jinja", "reasoning-tools.json"},
                          {"qwen3", "qwen3.jinja", "thinking.json"},  {"gemma2", "gemma.jinja", "thinking.json"},
                          {"phi4", "phi4.jinja", "plain.json"},      {"phi4-mini", "phi4-mini.jinja", "plain.json"}};
    for (const auto& k : cases) {
        auto c = load_case(k.case_file);
        EXPECT_EQ(ChatTemplate::builtin(k.name).render(c.messages, c.opts),
                  ChatTemplate(read_template(k.file)).render(c.messages, c.opts))
            << k.name;
    }
    auto c = load_case("tools.json");
    auto expect_error = [](const std::function<void()>& fn, const std::string& needle) {
        try {
            fn();
            ADD_FAILURE() << "no error for " << needle;
        } catch (const minerva::Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    auto tmpl = ChatTemplate::builtin("qwen3");
    auto o = c.opts;
    o.tools_json = "[{\"type\": ";
    expect_error([&] { tmpl.render(c.messages, o); }, "tools is not valid JSON");
    o.tools_json = "{\"type\": \"function\"}";
    expect_error([&] { tmpl.render(c.messages, o); }, "tools must be a JSON array, got object");
    o.tools_json = std::string(1000, '[') + std::string(1000, ']');
    expect_error([&] { tmpl.render(c.messages, o); }, "nested more than 128 levels");
    auto msgs = c.messages;
    msgs[2].tool_calls_json = "not json";
    expect_error([&] { tmpl.render(msgs, c.opts); }, "messages[2].tool_calls is not valid JSON");
    // Without tools, the Qwen templates take their plain branch (no "# Tools" section).
    EXPECT_EQ(tmpl.render(load_case("plain.json").messages, load_case("plain.json").opts).find("# Tools"), std::string::npos);
}

// With a real vocabulary: special-token text in the rendered prompt becomes the control token,
// and BOS is added once.
TEST(ChatTemplateVocab, TokenizesRenderedPrompt) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    auto vocab = minerva::Vocab::load(path);
    auto o = minerva::chat_options(*vocab);
    EXPECT_EQ(o.bos_token, "<s>");
    EXPECT_EQ(o.eos_token, "</s>");
    std::string text = ChatTemplate::builtin("llama2").render(kConversation, o);
    auto ids = minerva::tokenize_chat(*vocab, text);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], vocab->bos());
    EXPECT_NE(ids.size() > 1 ? ids[1] : -1, vocab->bos());
    int n_eos = 0;
    for (auto id : ids) n_eos += id == vocab->eos();
    EXPECT_EQ(n_eos, 1);  // "</s>" after the assistant turn is the EOS token, not its letters
    auto plain = minerva::tokenize_chat(*vocab, "Once upon a time");
    EXPECT_EQ(plain[0], vocab->bos());
}
