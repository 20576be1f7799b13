// tests/test_grammar.cpp: the GBNF parser, the matcher, JSON Schema -> grammar, and token masks
// checked against a brute-force recognizer on the real vocabularies in ../shared/vocab.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "byte_vocab.h"
#include "common.h"
#include "grammar/grammar_ir.h"
#include "minerva/error.h"
#include "minerva/grammar.h"
#include "minerva/model.h"

using namespace minerva;
using json = nlohmann::json;
using minerva::test_util::byte_vocab;

namespace {

// 1: complete sentence, 0: viable prefix, -1: rejected
int match(const std::string& gbnf, const std::string& text) {
    GrammarMatcher m(GrammarConstraint::create(Grammar::parse(gbnf), byte_vocab()));
    if (!m.accept_text(text)) return -1;
    return m.can_end() ? 1 : 0;
}

}  // namespace

TEST(Gbnf, MatchesWhatItShould) {
    struct Case {
        const char* grammar;
        const char* text;
        int expect;
    };
    const Case cases[] = {
        {R"(root ::= "abc")", "abc", 1},
        {R"(root ::= "abc")", "ab", 0},
        {R"(root ::= "abc")", "abd", -1},
        {R"(root ::= "a" | "b" | "cd")", "c", 0},
        {R"(root ::= "a" | "b" | "cd")", "b", 1},
        {R"(root ::= [a-c]+)", "abcabc", 1},
        {R"(root ::= [a-c]+)", "", 0},
        {R"(root ::= [a-c]+)", "abx", -1},
        {R"(root ::= [^a-c]*)", "xyz", 1},
        {R"(root ::= [^a-c]*)", "xa", -1},
        {R"(root ::= "x"{2,3})", "x", 0},
        {R"(root ::= "x"{2,3})", "xx", 1},
        {R"(root ::= "x"{2,3})", "xxxx", -1},
        {R"(root ::= "ab"{2})", "abab", 1},
        {R"(root ::= "ab"{2,})", "ababababab", 1},
        {R"(root ::= ("a" | "b")? "c")", "c", 1},
        {R"(root ::= ("a" | "b")? "c")", "bc", 1},
        {"root ::= item (\",\" item)*\nitem ::= [0-9]+ # a number\n", "1,22,333", 1},
        {"root ::=\n  \"(\" root \")\"\n  | \"\"\n", "((()))", 1},
        {"root ::=\n  \"(\" root \")\"\n  | \"\"\n", "(()", 0},
        {R"(root ::= "\x41\u00e9\n\"")", "A\xC3\xA9\n\"", 1},
        {R"(root ::= [\u00e0-\u00ff]+)", "\xC3\xA0\xC3\xBF", 1},
        {R"(root ::= [\u00e0-\u00ff]+)", "\xC3", 0},       // half a character that can still complete
        {R"(root ::= [\u00e0-\u00ff]+)", "\xC3\x80", -1},  // U+00C0 is outside the class
        {R"(root ::= [\u00e0-\u00ff]+)", "\xE2", -1},      // no 3-byte character is in the class
        {R"(root ::= "日本" .)", "日本語", 1},
        {R"(root ::= .)", "\xED\xA0\x80", -1},  // a UTF-16 surrogate is not a character
        {R"(root ::= [\]] [\-] [^\]])", "]-x", 1},
    };
    for (const Case& c : cases) EXPECT_EQ(match(c.grammar, c.text), c.expect) << c.grammar << " on '" << c.text << "'";
}

TEST(Gbnf, ErrorsNameTheProblem) {
    struct Case {
        const char* grammar;
        const char* message;
    };
    const Case cases[] = {
        {"root ::= foo", "rule 'foo' is used but never defined"},
        {"main ::= \"a\"", "no start rule 'root'"},
        {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice"},
        {"root ::= \"abc", "unterminated literal"},
        {"root ::= [a-", "unterminated character class"},
        {"root ::= (\"a\"", "expected ')'"},
        {"root ::= \"a\")", "unmatched ')'"},
        {"root ::= root \"a\" | \"b\"", "left-recursive"},
        {"root ::= (\"a\"?)*", "left-recursive"},
        {"root ::= \"a\"{3,2}", "n < m"},
        {"root ::= [z-a]", "backwards"},
        {"root ::= \"\\q\"", "unknown escape"},
        {"root = \"a\"", "expected '::='"},
        {"root ::= \"a\" @", "unexpected '@'"},
    };
    for (const Case& c : cases) {
        try {
            Grammar::parse(c.grammar);
            ADD_FAILURE() << "no error for: " << c.grammar;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << c.grammar << " -> " << e.what();
        }
    }
}

TEST(Gbnf, SamplerFollowsTheGrammarAndStops) {
    // A uniform sampler over 257 byte tokens must still produce a sentence of the grammar.
    auto c = GrammarConstraint::create(Grammar::parse(R"(root ::= "{" [a-z]{1,5} ":" ("yes" | "no") "}")"), byte_vocab());
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        SamplerParams sp;
        sp.seed = seed;
        sp.temperature = 1.0f;
        sp.top_k = 0;
        sp.top_p = 1.0f;
        sp.min_p = 0;
        sp.grammar = c;
        Sampler s(sp, 257);
        std::vector<float> logits(257, 0.f);
        std::string text;
        for (int i = 0; i < 64 && !s.grammar()->must_end(); ++i) {
            int32_t t = s.sample(logits);
            s.accept(t);
            text += static_cast<char>(t);
        }
        EXPECT_TRUE(s.grammar()->must_end()) << text;
        EXPECT_TRUE(std::regex_match(text, std::regex(R"(\{[a-z]{1,5}:(yes|no)\})"))) << text;
    }
}

TEST(Gbnf, StartsAfterThinking) {
    auto c = GrammarConstraint::create(Grammar::parse(R"(root ::= "ok")"), byte_vocab());
    GrammarMatcher m(c, "</think>");
    for (char ch : std::string("<think>anything at all</think>")) EXPECT_TRUE(m.accept(static_cast<unsigned char>(ch)));
    EXPECT_TRUE(m.active());
    EXPECT_FALSE(m.accept('x'));
    EXPECT_TRUE(m.accept('o'));
    EXPECT_TRUE(m.accept('k'));
    EXPECT_TRUE(m.must_end());

    // With the opening tag given, a reply that does not think is constrained from its start.
    GrammarMatcher direct(c, "</think>", "<think>");
    EXPECT_TRUE(direct.accept(' '));
    EXPECT_FALSE(direct.active());
    EXPECT_TRUE(direct.accept('o'));
    EXPECT_TRUE(direct.active());
    EXPECT_TRUE(direct.accept('k'));
    EXPECT_TRUE(direct.must_end());
    GrammarMatcher bad(c, "</think>", "<think>");
    EXPECT_FALSE(bad.accept('x'));
    GrammarMatcher thinking(c, "</think>", "<think>");
    for (char ch : std::string("<think>hmm</think> ok")) EXPECT_TRUE(thinking.accept(static_cast<unsigned char>(ch)));
    EXPECT_TRUE(thinking.must_end());
}

// ---- JSON Schema

namespace {

// Random walks through the grammar with a real vocabulary: pick uniformly among the allowed
// tokens (the end token with some probability once allowed) until the grammar ends.
std::string random_sentence(const std::shared_ptr<GrammarConstraint>& c, uint64_t seed, int max_tokens = 3000) {
    GrammarMatcher m(c);
    std::mt19937_64 rng(seed);
    std::string text;
    const Vocab& v = c->vocab();
    static const Vocab* cached_for = nullptr;
    static std::vector<std::string> pieces;
    static std::vector<bool> punct;
    if (cached_for != &v) {
        cached_for = &v;
        pieces.assign(size_t(v.n_tokens()), "");
        punct.assign(size_t(v.n_tokens()), false);
        for (int32_t t = 0; t < v.n_tokens(); ++t) {
            pieces[size_t(t)] = v.token_to_piece(t, false);
            punct[size_t(t)] = pieces[size_t(t)].find_first_of("\"}],") != std::string::npos || pieces[size_t(t)] == "null";
        }
    }
    for (int i = 0; i < max_tokens; ++i) {
        if (m.must_end()) return text;
        auto bits = m.allowed();
        std::vector<int32_t> ids, closing;  // closing: tokens with JSON punctuation, picked half the time so walks end
        bool end_ok = false;
        for (int32_t t = 0; t < v.n_tokens(); ++t)
            if ((bits[size_t(t) >> 6] >> (t & 63)) & 1) {
                if (v.is_eog(t)) end_ok = true;
                else {
                    ids.push_back(t);
                    if (punct[size_t(t)]) closing.push_back(t);
                }
            }
        if (!closing.empty() && rng() % 2) ids.swap(closing);
        if (end_ok && (ids.empty() || rng() % 4 == 0)) return text;
        EXPECT_FALSE(ids.empty()) << "dead end after: " << text;
        if (ids.empty()) return text;
        const int32_t t = ids[rng() % ids.size()];
        EXPECT_TRUE(m.accept(t));
        text += pieces[size_t(t)];
    }
    ADD_FAILURE() << "no end after " << max_tokens << " tokens: " << text;
    return text;
}

std::shared_ptr<const Vocab> shared_vocab(const std::string& name) {
    std::string p = test::shared_file("vocab/ggml-vocab-" + name + ".gguf");
    if (p.empty()) return nullptr;
    return Vocab::load(p);
}

}  // namespace

TEST(JsonSchema, OutputsValidate) {
    auto vocab = shared_vocab("llama-bpe");
    if (!vocab) {
        if (test::require_shared()) GTEST_FAIL() << "missing ../shared/vocab (MINERVA_REQUIRE_SHARED=1)";
        GTEST_SKIP() << "needs ../shared/vocab";
    }
    struct Case {
        const char* schema;
        std::function<bool(const json&)> valid;
    };
    auto is_int_in = [](const json& j, int64_t lo, int64_t hi) { return j.is_number_integer() && j.get<int64_t>() >= lo && j.get<int64_t>() <= hi; };
    const std::vector<Case> cases = {
        {R"({"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name","age"],"additionalProperties":false})",
         [&](const json& j) {
             return j.is_object() && j.size() == 2 && j["name"].is_string() && j["name"].get<std::string>().size() <= 8 * 4 &&
                    is_int_in(j["age"], 0, 150);
         }},
        {R"({"type":"array","items":{"enum":["red","green",3,null]},"minItems":2,"maxItems":4})",
         [](const json& j) {
             if (!j.is_array() || j.size() < 2 || j.size() > 4) return false;
             for (auto& x : j)
                 if (!(x == "red" || x == "green" || x == 3 || x.is_null())) return false;
             return true;
         }},
        {R"({"type":"integer","minimum":-37,"maximum":1234})", [&](const json& j) { return is_int_in(j, -37, 1234); }},
        {R"({"type":"integer","exclusiveMinimum":99})", [&](const json& j) { return j.is_number_integer() && j.get<int64_t>() > 99; }},
        {R"({"type":"integer","maximum":-5})", [&](const json& j) { return j.is_number_integer() && j.get<int64_t>() <= -5; }},
        {R"({"type":"number","minimum":-2.5,"maximum":3.25})",
         [](const json& j) { return j.is_number() && j.get<double>() >= -2.5 && j.get<double>() <= 3.25; }},
        {R"({"type":"string","format":"date"})", [](const json& j) { return j.is_string() && std::regex_match(j.get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\d)")); }},
        {R"({"type":"string","format":"date-time"})",
         [](const json& j) { return j.is_string() && std::regex_match(j.get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))")); }},
        {R"({"type":"string","format":"uuid"})",
         [](const json& j) { return j.is_string() && std::regex_match(j.get<std::string>(), std::regex(R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")); }},
        {R"({"type":"string","pattern":"^[A-Z]{2}-\\d{3,4}$"})",
         [](const json& j) { return j.is_string() && std::regex_match(j.get<std::string>(), std::regex(R"([A-Z]{2}-\d{3,4})")); }},
        {R"({"type":"string","minLength":3,"maxLength":5})", [](const json& j) { return j.is_string() && j.get<std::string>().size() >= 3; }},
        {R"({"anyOf":[{"type":"boolean"},{"type":"null"},{"const":"x"}]})", [](const json& j) { return j.is_boolean() || j.is_null() || j == "x"; }},
        // oneOf with provably exclusive branches: by type, by const, by a required discriminator
        {R"({"oneOf":[{"type":"integer","minimum":0,"maximum":5},{"type":"string","maxLength":3},{"const":null}]})",
         [&](const json& j) { return is_int_in(j, 0, 5) || (j.is_string() && j.get<std::string>().size() <= 12) || j.is_null(); }},
        {R"({"$defs":{"cat":{"type":"object","properties":{"kind":{"const":"cat"},"lives":{"type":"integer","minimum":1,"maximum":9}},"required":["kind","lives"]}},"oneOf":[{"$ref":"#/$defs/cat"},{"type":"object","properties":{"kind":{"enum":["dog","wolf"]},"bark":{"type":"boolean"}},"required":["kind","bark"]}]})",
         [&](const json& j) {
             return j.is_object() && ((j["kind"] == "cat" && is_int_in(j["lives"], 1, 9) && j.size() == 2) ||
                                      ((j["kind"] == "dog" || j["kind"] == "wolf") && j["bark"].is_boolean() && j.size() == 2));
         }},
        {R"({"type":["integer","null"]})", [](const json& j) { return j.is_number_integer() || j.is_null(); }},
        {R"({"type":"integer","nullable":true,"maximum":3,"minimum":1})", [&](const json& j) { return j.is_null() || is_int_in(j, 1, 3); }},
        {R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer","minimum":0,"maximum":9},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v","next"]}},"$ref":"#/$defs/node"})",
         [&](const json& j) {
             const json* n = &j;
             while (n->is_object()) {
                 if (!is_int_in((*n)["v"], 0, 9)) return false;
                 n = &(*n)["next"];
             }
             return n->is_null();
         }},
        {R"({"allOf":[{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]},{"properties":{"b":{"const":1}},"required":["b"]}]})",
         [](const json& j) { return j.is_object() && j["a"].is_boolean() && j["b"] == 1; }},
        {R"({"type":"array","prefixItems":[{"type":"boolean"},{"const":"t"}],"items":false})",
         [](const json& j) { return j.is_array() && j.size() <= 2 && (j.empty() || j[0].is_boolean()) && (j.size() < 2 || j[1] == "t"); }},
        {R"({"type":"object"})", [](const json& j) { return j.is_object(); }},
        {R"({"type":"object","properties":{"o":{"type":"boolean"}}})", [](const json& j) { return j.is_object() && j.size() <= 1 && (!j.contains("o") || j["o"].is_boolean()); }},
        {R"({"type":"object","additionalProperties":{"type":"integer"}})", [](const json& j) {
             if (!j.is_object()) return false;
             for (auto& [k, v] : j.items())
                 if (!v.is_number_integer()) return false;
             return true;
         }},
    };
    for (const Case& c : cases) {
        auto cons = GrammarConstraint::create(Grammar::from_json_schema(c.schema), vocab);
        for (uint64_t seed = 0; seed < 6; ++seed) {
            std::string text = random_sentence(cons, seed);
            json j = json::parse(text, nullptr, false);
            EXPECT_FALSE(j.is_discarded()) << c.schema << " gave unparsable " << text;
            if (!j.is_discarded()) {
                EXPECT_TRUE(c.valid(j)) << c.schema << " gave " << text;
            }
        }
    }
}

TEST(JsonSchema, UnsupportedKeywordsAreNamed) {
    struct Case {
        const char* schema;
        const char* message;
    };
    const Case cases[] = {
        {R"({"type":"object","maxProperties":3})", "unsupported JSON Schema keyword 'maxProperties' at #"},
        {R"({"type":"array","items":{"type":"string","contentEncoding":"base64"}})", "'contentEncoding' at #/items"},
        {R"({"type":"array","uniqueItems":true})", "'uniqueItems'"},
        {R"({"type":"string","format":"hostname"})", "'format' at # ('hostname'"},
        {R"({"type":"string","pattern":"(?=a)b"})", "'pattern'"},
        {R"({"$ref":"http://example.com/s.json"})", "'$ref'"},
        {R"({"not":{"type":"null"}})", "'not'"},
        {R"({"if":{"type":"null"},"then":{}})", "'if'"},
        {R"({"type":"integer","multipleOf":3})", "'multipleOf'"},
        {R"({"type":"frog"})", "unknown type 'frog'"},
        {R"({"$ref":"#/$defs/missing"})", "does not exist"},
        {R"({"type":"object","required":["x"]})", "required property 'x'"},
        {R"({"type":"string","minLength":5,"maxLength":2})", "'maxLength' is less than 'minLength'"},
        {R"({"type":"object")", "not valid JSON"},
        // oneOf branches that one value could match both of: a grammar cannot rule that out
        {R"({"oneOf":[{"type":"string"},{"type":"string","maxLength":3}]})", "'oneOf' at # (branches 0 and 1 may both match"},
        {R"({"oneOf":[{"type":"number"},{"type":"integer"}]})", "'oneOf' at #"},
        {R"({"properties":{"p":{"oneOf":[{"enum":["a","b"]},{"enum":["b","c"]}]}}})", "'oneOf' at #/properties/p"},
        {R"({"oneOf":[{"type":"object","properties":{"k":{"const":"a"}},"required":["k"]},{"type":"object","properties":{"k":{"const":"a"}}}]})",
         "'oneOf'"},
    };
    for (const Case& c : cases) {
        try {
            json_schema_to_gbnf(c.schema);
            ADD_FAILURE() << "no error for " << c.schema;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << c.schema << " -> " << e.what();
        }
    }
}

// ---- token masks against brute force

namespace {

// A deliberately naive recognizer over Grammar::Impl: explicit stacks, no interning, no caches.
struct Naive {
    const Grammar::Impl& g;
    using Stack = std::vector<uint32_t>;
    std::vector<Stack> stacks;
    std::string partial;  // bytes of an unfinished character

    explicit Naive(const Grammar::Impl& gi) : g(gi) {
        for (uint32_t a : g.rule_alts[g.start_rule]) expand(Stack{a}, stacks);
        normalize(stacks);
    }
    static void normalize(std::vector<Stack>& v) {
        std::sort(v.begin(), v.end());
        v.erase(std::unique(v.begin(), v.end()), v.end());
    }
    void expand(Stack s, std::vector<Stack>& out) const {
        if (s.empty()) {
            out.push_back(s);
            return;
        }
        const GrammarElem e = g.elems[s.back()];
        if (e.kind == GrammarElem::END) {
            s.pop_back();
            expand(s, out);
        } else if (e.kind == GrammarElem::CHARS) {
            out.push_back(s);
        } else {
            s.back() += 1;
            for (uint32_t a : g.rule_alts[e.arg]) {
                Stack t = s;
                t.push_back(a);
                expand(t, out);
            }
        }
    }
    bool complete() const {
        if (!partial.empty()) return false;
        for (auto& s : stacks)
            if (s.empty()) return true;
        return false;
    }
    // Feeds bytes; false when no sentence of the grammar starts with what was fed.
    bool feed(std::string_view bytes) {
        for (char ch : bytes) {
            partial += ch;
            const auto b0 = static_cast<unsigned char>(partial[0]);
            const size_t len = b0 < 0x80 ? 1 : b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 0;
            if (len == 0) return false;
            for (size_t i = 1; i < partial.size(); ++i)
                if ((static_cast<unsigned char>(partial[i]) & 0xC0) != 0x80) return false;
            uint32_t v = len == 1 ? b0 : len == 2 ? (b0 & 0x1Fu) : len == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
            for (size_t i = 1; i < partial.size(); ++i) v = (v << 6) | (static_cast<unsigned char>(partial[i]) & 0x3Fu);
            const size_t rest = len - partial.size();
            uint32_t lo = v << (6 * rest), hi = lo | ((1u << (6 * rest)) - 1);
            lo = std::max(lo, len == 1 ? 0u : len == 2 ? 0x80u : len == 3 ? 0x800u : 0x10000u);
            hi = std::min(hi, 0x10FFFFu);
            if (lo > hi) return false;
            if (rest > 0) {
                bool any = false;
                for (auto& s : stacks) {
                    if (s.empty()) continue;
                    const CharClass& cls = g.classes[g.elems[s.back()].arg];
                    if ((lo <= std::min(hi, 0xD7FFu) && cls.intersects(lo, std::min(hi, 0xD7FFu))) ||
                        (std::max(lo, 0xE000u) <= hi && cls.intersects(std::max(lo, 0xE000u), hi)))
                        any = true;
                }
                if (!any) return false;
                continue;
            }
            if (v >= 0xD800 && v <= 0xDFFF) return false;
            partial.clear();
            std::vector<Stack> next;
            for (auto& s : stacks)
                if (!s.empty() && g.classes[g.elems[s.back()].arg].matches(v)) {
                    Stack t = s;
                    t.back() += 1;
                    expand(t, next);
                }
            normalize(next);
            stacks = std::move(next);
            if (stacks.empty()) return false;
        }
        return true;
    }
};

// prefer_long: half the steps take the longest allowed token, so that bounded repetitions
// (maxLength, digit counts, indentation) reach their limits within a few steps.
void check_masks(const std::string& vocab_name, const std::string& gbnf, int steps, uint64_t seed, bool prefer_long = false) {
    auto vocab = shared_vocab(vocab_name);
    if (!vocab) {
        if (test::require_shared()) GTEST_FAIL() << "missing ../shared/vocab (MINERVA_REQUIRE_SHARED=1)";
        GTEST_SKIP() << "needs ../shared/vocab";
    }
    auto grammar = Grammar::parse(gbnf);
    auto c = GrammarConstraint::create(grammar, vocab);
    GrammarMatcher m(c);
    Naive naive(grammar->impl());
    std::mt19937_64 rng(seed);
    std::vector<std::string> pieces(static_cast<size_t>(vocab->n_tokens()));
    std::vector<bool> plain(pieces.size());
    for (int32_t t = 0; t < vocab->n_tokens(); ++t) {
        const TokenType ty = vocab->token_type(t);
        plain[size_t(t)] = !vocab->is_eog(t) && ty != TokenType::CONTROL && ty != TokenType::UNUSED && ty != TokenType::UNKNOWN;
        if (plain[size_t(t)]) pieces[size_t(t)] = vocab->token_to_piece(t, false);
    }
    std::string text;
    for (int step = 0; step < steps; ++step) {
        auto bits = m.allowed();
        std::vector<int32_t> allowed;
        int mismatches = 0;
        for (int32_t t = 0; t < vocab->n_tokens(); ++t) {
            bool expect;
            if (vocab->is_eog(t)) expect = naive.complete();
            else if (!plain[size_t(t)] || pieces[size_t(t)].empty()) expect = false;
            else {
                Naive probe = naive;
                expect = probe.feed(pieces[size_t(t)]);
            }
            const bool got = (bits[size_t(t) >> 6] >> (t & 63)) & 1;
            if (got != expect && ++mismatches <= 5)
                ADD_FAILURE() << vocab_name << " step " << step << " after '" << text << "': token " << t << " '" << pieces[size_t(t)]
                              << "' mask " << got << " brute force " << expect;
            if (got && !vocab->is_eog(t)) allowed.push_back(t);
        }
        if (allowed.empty() || mismatches) break;
        int32_t t = allowed[rng() % allowed.size()];
        if (prefer_long && rng() % 2)
            for (int32_t a : allowed)
                if (pieces[size_t(a)].size() > pieces[size_t(t)].size()) t = a;
        ASSERT_TRUE(m.accept(t));
        ASSERT_TRUE(naive.feed(pieces[size_t(t)]));
        text += pieces[size_t(t)];
    }
}

const char* kMaskGrammar = R"(
root ::= "{" ws "\"name\"" ws ":" ws string ws "," ws "\"tags\"" ws ":" ws "[" ws (string (ws "," ws string)*)? ws "]" ws "," ws "\"n\"" ws ":" ws number ws "}"
string ::= "\"" ([^"\\\x00-\x1F] | "\\" ["\\/bfnrt])* "\""
number ::= "-"? ("0" | [1-9] [0-9]{0,6}) ("." [0-9]{1,4})?
ws ::= [ \t\n]{0,3}
)";

}  // namespace

class GrammarMask : public ::testing::TestWithParam<std::string> {};

TEST_P(GrammarMask, MatchesBruteForce) { check_masks(GetParam(), kMaskGrammar, 12, 7); }

TEST_P(GrammarMask, MatchesBruteForceOnUnicodeClasses) {
    // Multi-byte classes exercise tokens that end inside a character.
    check_masks(GetParam(), R"(root ::= "«" [à-ÿ一-龥]{1,12} "»" [ ]? )", 8, 3);
}

TEST_P(GrammarMask, MatchesBruteForceOnBoundedRepetitions) {
    // Every count of a bounded repetition is a state of its own; these masks come from the
    // class-run shortcut (matcher.cpp, mask_by_runs), so they are checked where the counts end:
    // bounded strings with escapes, digit counts, indentation, and overlapping classes.
    check_masks(GetParam(), R"(
root ::= "{" ws "\"s\":" ws str ws "," ws "\"n\":" ws int ws "," ws "\"w\":" ws word ws "}"
str ::= "\"" ([^"\\\x00-\x1F] | "\\" ["\\/bfnrt]){2,9} "\""
int ::= "-"? ("0" | [1-9] [0-9]{0,2})
word ::= "\"" [a-z]{1,4} [a-f0-9]{2,3} ([0-9] | "-"){0,3} "\""
ws ::= ("\n" [ ]{0,5} | " ")?
)", 24, 5, true);
}

TEST_P(GrammarMask, MatchesBruteForceOnSchemaBounds) {
    // minLength/maxLength, an integer range, an email and bounded whitespace, as the JSON Schema
    // compiler writes them.
    const std::string gbnf = json_schema_to_gbnf(
        R"({"type":"object","properties":{"name":{"type":"string","minLength":3,"maxLength":12},"age":{"type":"integer","minimum":-5,"maximum":120},"email":{"type":"string","format":"email"},"tags":{"type":"array","items":{"type":"string","maxLength":4},"maxItems":2}},"required":["name","age","email","tags"]})");
    for (uint64_t seed : {11u, 12u}) check_masks(GetParam(), gbnf, 24, seed, true);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, GrammarMask, ::testing::Values("llama-spm", "llama-bpe", "qwen2", "gpt-2", "deepseek-llm"),
                         [](const auto& info) {
                             std::string n = info.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });
