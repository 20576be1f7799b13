// Tokenizer tests that need no shared data: the pre-tokenizer split rules on tricky strings
// (expected splits worked out by hand from each rule's regexes), and small vocabularies built in
// memory as GGUF files (merge order, byte fallback, longest-first special tokens, BOS/EOS,
// metadata errors).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "minerva/error.h"
#include "minerva/gguf.h"
#include "minerva/vocab.h"
#include "tokenizer/pretokenize.h"

namespace {

using minerva::TokenType;
using minerva::Vocab;
using Pieces = std::vector<std::string>;

Pieces split(std::string_view pre, std::string_view text) {
    const auto* rules = minerva::find_pre_tokenizer_rules(pre);
    if (!rules) throw std::runtime_error("no rules for " + std::string(pre));
    minerva::PreTokenizer p(*rules);
    std::vector<std::string_view> views;
    p.split(text, views);
    std::string joined;
    Pieces out;
    for (auto v : views) {
        out.emplace_back(v);
        joined += v;
    }
    EXPECT_EQ(joined, text) << "pieces must cover the text exactly";
    return out;
}

TEST(PreTokenizer, Gpt2) {
    EXPECT_EQ(split("gpt-2", "Hello world's 123 !!?  x\n\ny"),
              (Pieces{"Hello", " world", "'s", " 123", " !!?", " ", " x", "\n", "\n", "y"}));
    // Whitespace is Unicode White_Space, U+0085 included (PCRE2's own \s would miss it).
    EXPECT_EQ(split("gpt-2", "a\u00a0\u00a0b"), (Pieces{"a", "\u00a0", "\u00a0", "b"}));
    EXPECT_EQ(split("gpt-2", "a\u0085\u0085b"), (Pieces{"a", "\u0085", "\u0085", "b"}));
    EXPECT_EQ(split("gpt-2", "trailing   "), (Pieces{"trailing", "   "}));
    EXPECT_EQ(split("gpt-2", ""), Pieces{});
}

TEST(PreTokenizer, MptUsesGpt2Rules) {
    EXPECT_EQ(minerva::find_pre_tokenizer_rules("mpt")->name, "gpt-2");
    EXPECT_EQ(split("mpt", "x1 = 'd' + it'll"), (Pieces{"x", "1", " =", " '", "d", "'", " +", " it", "'ll"}));
}

TEST(PreTokenizer, Default) {
    // Punctuation runs first, then gpt-2, then digit runs, then groups of three ASCII digits.
    EXPECT_EQ(split("default", "a1234b, c"), (Pieces{"a", "123", "4", "b", ",", " c"}));
}

TEST(PreTokenizer, Llama3) {
    EXPECT_EQ(split("llama-bpe", "I'M  fine\n\n 12345 ok?!\n"),
              (Pieces{"I", "'M", " ", " fine", "\n\n", " ", "123", "45", " ok", "?!\n"}));
}

TEST(PreTokenizer, Qwen2) {
    EXPECT_EQ(split("qwen2", "I'M  fine\n\n 12345 ok?!\n"),
              (Pieces{"I", "'M", " ", " fine", "\n\n", " ", "1", "2", "3", "4", "5", " ok", "?!\n"}));
}

TEST(PreTokenizer, StarcoderFamily) {
    // Every digit alone first, then gpt-2 on what is left.
    const Pieces want = {"x", " =", " ", "1", "2", "3", "4", "5", " +", " foo", "'s", " ", " bar", "\t", "1"};
    for (const char* name : {"starcoder", "refact", "command-r", "smollm"}) {
        EXPECT_EQ(minerva::find_pre_tokenizer_rules(name)->name, "starcoder") << name;
        EXPECT_EQ(split(name, "x = 12345 + foo's  bar\t1"), want) << name;
    }
}

TEST(PreTokenizer, Falcon) {
    EXPECT_EQ(split("falcon", "Hello, world!! a+b=c `x` 1234567 it's"),
              (Pieces{"Hello", ",", " world", "!!", " a", "+", "b", "=", "c", " ", "`", "x", "`", " ", "123", "456",
                      "7", " it", "'", "s"}));
}

TEST(PreTokenizer, DeepseekCoder) {
    EXPECT_EQ(split("deepseek-coder", "def f(x):\n    return x+1 # 中文"),
              (Pieces{"def", " f", "(", "x", "):", "\n", "   ", " return", " x", "+", "1", " #", " ", "中文"}));
}

TEST(PreTokenizer, DeepseekLlmCjkRunsStopAtIdeographicSpace) {
    // U+3000 is whitespace: it is never part of a CJK run or a punctuation run.
    EXPECT_EQ(split("deepseek-llm", "中文\u3000日本"), (Pieces{"中文", "\u3000", "日本"}));
    EXPECT_EQ(split("deepseek-llm", "abc 12\n"), (Pieces{"abc", " ", "12", "\n"}));
}

TEST(PreTokenizer, LongInputsDoNotExhaustTheMatcher) {
    const std::string spaces(1 << 20, ' ');
    auto p = split("llama3", spaces + "x");
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].size(), spaces.size() - 1);
    EXPECT_EQ(p[1], " x");
}

TEST(PreTokenizer, EveryNamedRuleCompiles) {
    for (const auto& name : minerva::known_pre_tokenizer_names()) {
        const auto* r = minerva::find_pre_tokenizer_rules(name);
        ASSERT_NE(r, nullptr) << name;
        EXPECT_NO_THROW(minerva::PreTokenizer{*r}) << name;
    }
    EXPECT_EQ(minerva::find_pre_tokenizer_rules("no-such-pre"), nullptr);
}

// ---- a GGUF writer for small in-memory vocabularies ----

class GgufBuilder {
public:
    GgufBuilder& str(const std::string& key, const std::string& v) {
        kv(key, 8);
        put_str(v);
        return *this;
    }
    GgufBuilder& u32(const std::string& key, uint32_t v) {
        kv(key, 4);
        put(v);
        return *this;
    }
    GgufBuilder& boolean(const std::string& key, bool v) {
        kv(key, 7);
        put(static_cast<uint8_t>(v));
        return *this;
    }
    GgufBuilder& strs(const std::string& key, const std::vector<std::string>& v) {
        kv(key, 9);
        put(uint32_t{8});
        put(uint64_t{v.size()});
        for (const auto& s : v) put_str(s);
        return *this;
    }
    GgufBuilder& f32s(const std::string& key, const std::vector<float>& v) {
        kv(key, 9);
        put(uint32_t{6});
        put(uint64_t{v.size()});
        for (float f : v) put(f);
        return *this;
    }
    GgufBuilder& i32s(const std::string& key, const std::vector<int32_t>& v) {
        kv(key, 9);
        put(uint32_t{5});
        put(uint64_t{v.size()});
        for (int32_t i : v) put(i);
        return *this;
    }
    std::shared_ptr<const Vocab> vocab() {
        std::string file = "GGUF";
        auto app = [&](auto x) { file.append(reinterpret_cast<const char*>(&x), sizeof x); };
        app(uint32_t{3});
        app(uint64_t{0});
        app(n_kv_);
        file += body_;
        while (file.size() % 32) file += '\0';
        bytes_ = std::make_shared<std::string>(std::move(file));
        auto f = minerva::gguf::File::from_memory(bytes_->data(), bytes_->size(), "test.gguf");
        return Vocab::from_gguf(f);
    }

private:
    template <typename T>
    void put(T x) {
        body_.append(reinterpret_cast<const char*>(&x), sizeof x);
    }
    void put_str(const std::string& s) {
        put(uint64_t{s.size()});
        body_ += s;
    }
    void kv(const std::string& key, uint32_t type) {
        put_str(key);
        put(type);
        ++n_kv_;
    }
    std::string body_;
    uint64_t n_kv_ = 0;
    std::shared_ptr<std::string> bytes_;
};

// A tiny SentencePiece vocabulary: <unk> <s> </s>, optional byte tokens, a few pieces.
struct SpmSpec {
    bool bytes = true;
    std::vector<std::pair<std::string, float>> pieces = {
        {"\xE2\x96\x81", -1}, {"a", -2}, {"b", -2}, {"c", -2}, {"\xE2\x96\x81" "a", -1.5f},
        {"ab", -0.5f}, {"bc", -0.4f}, {"abc", -0.1f}, {"\xE2\x96\x81" "ab", -0.3f},
    };
    std::vector<std::string> user_defined;
    std::vector<std::string> control;
};

GgufBuilder spm_builder(const SpmSpec& s) {
    std::vector<std::string> tok = {"<unk>", "<s>", "</s>"};
    std::vector<float> score = {0, 0, 0};
    std::vector<int32_t> type = {2, 3, 3};
    if (s.bytes) {
        for (int b = 0; b < 256; ++b) {
            char name[8];
            std::snprintf(name, sizeof name, "<0x%02X>", b);
            tok.push_back(name);
            score.push_back(0);
            type.push_back(6);
        }
    }
    for (const auto& [t, sc] : s.pieces) {
        tok.push_back(t);
        score.push_back(sc);
        type.push_back(1);
    }
    for (const auto& t : s.user_defined) {
        tok.push_back(t);
        score.push_back(0);
        type.push_back(4);
    }
    for (const auto& t : s.control) {
        tok.push_back(t);
        score.push_back(0);
        type.push_back(3);
    }
    GgufBuilder g;
    g.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", tok).f32s("tokenizer.ggml.scores", score)
        .i32s("tokenizer.ggml.token_type", type);
    return g;
}

std::vector<std::string> texts(const Vocab& v, const std::vector<int32_t>& ids) {
    std::vector<std::string> out;
    for (int32_t id : ids) out.emplace_back(v.token_text(id));
    return out;
}

TEST(SyntheticSpm, MergesByScoreAndFallsBackToBytes) {
    auto v = spm_builder({}).vocab();
    EXPECT_EQ(v->bos(), 1);  // SPM defaults when the file names none
    EXPECT_EQ(v->eos(), 2);
    EXPECT_TRUE(v->add_bos());
    // "▁abc": candidates ▁a(-1.5) ab(-0.5) bc(-0.4): bc wins, then a+bc=abc (-0.1), then ▁+abc is
    // no token: ▁ abc.
    EXPECT_EQ(texts(*v, v->tokenize("abc", false, false)), (std::vector<std::string>{"\xE2\x96\x81", "abc"}));
    // "ab": ▁a(-1.5) vs ab(-0.5): ab, then ▁ab (-0.3).
    EXPECT_EQ(texts(*v, v->tokenize("ab", false, false)), (std::vector<std::string>{"\xE2\x96\x81" "ab"}));
    // é is no token: its two bytes.
    EXPECT_EQ(texts(*v, v->tokenize("\xC3\xA9", false, false)), (std::vector<std::string>{"\xE2\x96\x81", "<0xC3>", "<0xA9>"}));
    EXPECT_EQ(v->detokenize(v->tokenize("a \xC3\xA9 cab", false, false)), "a \xC3\xA9 cab");
    const auto with_special = v->tokenize("ab", true, false);
    EXPECT_EQ(with_special.front(), 1);
}

TEST(SyntheticSpm, UnknownTokenWithoutByteTokens) {
    SpmSpec s;
    s.bytes = false;
    auto v = spm_builder(s).vocab();
    EXPECT_EQ(texts(*v, v->tokenize("a\xC3\xA9", false, false)),
              (std::vector<std::string>{"\xE2\x96\x81" "a", "<unk>"}));
}

TEST(SyntheticSpm, SpecialTokensLongestFirstAndUserDefinedAlways) {
    SpmSpec s;
    s.control = {"<|a|>", "<|a|><|b|>", "|a"};
    s.user_defined = {"@@"};
    auto v = spm_builder(s).vocab();
    const int32_t a = v->find_token("<|a|>"), ab = v->find_token("<|a|><|b|>"), bar_a = v->find_token("|a");
    const int32_t at = v->find_token("@@");
    // The longest control text takes its occurrences first, even where a shorter one starts earlier.
    const auto ids = v->tokenize("x<|a|><|b|>y<|a|>", false, true);
    std::vector<int32_t> want;
    for (int32_t id : v->tokenize("x", false, false)) want.push_back(id);
    want.push_back(ab);
    // after a special token the SPM space prefix is added again
    for (int32_t id : v->tokenize("y", false, false)) want.push_back(id);
    want.push_back(a);
    EXPECT_EQ(ids, want);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), bar_a), 0);
    // Without parse_special control texts stay text, but user-defined tokens are still matched.
    const auto plain = v->tokenize("<|a|>@@", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), a), 0);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), at), 1);
    EXPECT_EQ(v->detokenize(plain), "<|a|>@@");
}

TEST(SyntheticSpm, BosEosFromMetadata) {
    auto g = spm_builder({});
    g.boolean("tokenizer.ggml.add_bos_token", false).boolean("tokenizer.ggml.add_eos_token", true);
    auto v = g.vocab();
    const auto ids = v->tokenize("ab", true, false);
    ASSERT_GE(ids.size(), 2u);
    EXPECT_NE(ids.front(), v->bos());
    EXPECT_EQ(ids.back(), v->eos());
    EXPECT_EQ(v->tokenize("ab", false, false).back(), v->find_token("\xE2\x96\x81" "ab"));
    auto g2 = spm_builder({});
    g2.boolean("tokenizer.ggml.add_space_prefix", false);
    auto v2 = g2.vocab();
    EXPECT_EQ(texts(*v2, v2->tokenize("ab", false, false)), (std::vector<std::string>{"ab"}));
    EXPECT_EQ(v2->detokenize(v2->tokenize(" ab", false, false)), " ab");
}

// Gemma's SentencePiece files set tokenizer.ggml.add_space_prefix false: no "\xE2\x96\x81" before
// the text nor after a turn marker, and <end_of_turn> ends a turn.
TEST(SyntheticSpm, GemmaNoSpacePrefixAroundTurnMarkers) {
    SpmSpec spec;
    spec.control = {"<start_of_turn>", "<end_of_turn>"};
    auto g = spm_builder(spec);
    g.boolean("tokenizer.ggml.add_space_prefix", false).u32("tokenizer.ggml.bos_token_id", 1);
    auto v = g.vocab();
    EXPECT_FALSE(v->add_space_prefix());
    const int32_t sot = v->find_token("<start_of_turn>"), eot = v->find_token("<end_of_turn>");
    ASSERT_GE(sot, 0);
    ASSERT_GE(eot, 0);
    const auto ids = v->tokenize("<start_of_turn>ab<end_of_turn>", true, true);
    EXPECT_EQ(texts(*v, ids), (std::vector<std::string>{"<s>", "<start_of_turn>", "ab", "<end_of_turn>"}));
    EXPECT_TRUE(v->is_eog(eot));
    EXPECT_FALSE(v->is_eog(sot));
    EXPECT_EQ(v->detokenize(v->tokenize("ab c", false, false)), "ab c");  // no leading space to strip
    // The same vocabulary with the SentencePiece default (true) puts the prefix after the marker.
    auto g2 = spm_builder(spec);
    auto v2 = g2.vocab();
    EXPECT_EQ(texts(*v2, v2->tokenize("<start_of_turn>ab", false, true)),
              (std::vector<std::string>{"<start_of_turn>", "\xE2\x96\x81" "ab"}));
}

// A tiny byte-level BPE vocabulary: the 256 byte characters, then merge results.
GgufBuilder bpe_builder(const std::vector<std::string>& merges, const std::string& pre = "gpt-2",
                        const std::vector<std::string>& control = {}) {
    std::vector<std::string> tok;
    for (int b = 0; b < 256; ++b) {
        // GPT-2's byte-level alphabet
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        static int next = 0;
        if (b == 0) next = 256;
        const uint32_t cp = printable ? b : next++;
        std::string s;
        if (cp < 0x80) s += static_cast<char>(cp);
        else {
            s += static_cast<char>(0xC0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        }
        tok.push_back(s);
    }
    for (const auto& m : merges) {
        std::string joined = m;
        joined.erase(joined.find(' '), 1);
        if (std::find(tok.begin(), tok.end(), joined) == tok.end()) tok.push_back(joined);
    }
    std::vector<int32_t> type(tok.size(), 1);
    for (const auto& c : control) {
        tok.push_back(c);
        type.push_back(3);
    }
    GgufBuilder g;
    g.str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", pre).strs("tokenizer.ggml.tokens", tok)
        .i32s("tokenizer.ggml.token_type", type).strs("tokenizer.ggml.merges", merges);
    return g;
}

TEST(SyntheticBpe, MergesByRankLeftmostFirst) {
    // Ranks: "b c" before "a b": "abc" -> a bc; "a a" ties resolve leftmost: "aaa" -> aa a.
    auto v = bpe_builder({"b c", "a b", "a a", "\xC4\xA0 a", "\xC4\xA0" "a bc"}).vocab();
    EXPECT_EQ(texts(*v, v->tokenize("abc", false, false)), (std::vector<std::string>{"a", "bc"}));
    EXPECT_EQ(texts(*v, v->tokenize("ab", false, false)), (std::vector<std::string>{"ab"}));
    EXPECT_EQ(texts(*v, v->tokenize("aaa", false, false)), (std::vector<std::string>{"aa", "a"}));
    EXPECT_EQ(texts(*v, v->tokenize(" abc", false, false)), (std::vector<std::string>{"\xC4\xA0" "abc"}));
    EXPECT_EQ(v->detokenize(v->tokenize(" abc\n\xC3\xA9", false, false)), " abc\n\xC3\xA9");
    EXPECT_FALSE(v->add_bos());  // gpt-2 default
    EXPECT_EQ(v->bos(), -1);
}

TEST(SyntheticBpe, MergeResultMissingFromVocabularyStillMergesFurther) {
    // "x y" gives "xy", which is not a token, but "xy z" gives the token "xyz".
    auto g = bpe_builder({"x y", "xy z"});
    auto v = g.vocab();
    EXPECT_EQ(texts(*v, v->tokenize("xyz", false, false)), (std::vector<std::string>{"xyz"}));
}

// Qwen files name tokenizer.ggml.pre "qwen2": digits are split one by one before BPE, so a
// merge across digits never applies (gpt-2's rules keep "12" one word and merge it); the file
// decides, not the architecture.
TEST(SyntheticBpe, Qwen2PreTokenizerFromMetadata) {
    auto qwen = bpe_builder({"1 2", "a b"}, "qwen2").vocab();
    auto gpt2 = bpe_builder({"1 2", "a b"}, "gpt-2").vocab();
    EXPECT_EQ(qwen->pre_tokenizer(), "qwen2");
    EXPECT_EQ(texts(*qwen, qwen->tokenize("ab 12", false, false)), (std::vector<std::string>{"ab", "\xC4\xA0", "1", "2"}));
    EXPECT_EQ(texts(*gpt2, gpt2->tokenize("ab 12", false, false)), (std::vector<std::string>{"ab", "\xC4\xA0", "12"}));
    EXPECT_FALSE(qwen->add_bos());  // qwen2 adds no BOS unless the file says so
    EXPECT_EQ(qwen->tokenize("ab", true, false), qwen->tokenize("ab", false, false));
}

TEST(SyntheticBpe, UnknownPreTokenizerFallsBackToGpt2) {
    auto v = bpe_builder({"a b"}, "no-such-pre").vocab();
    auto ref = bpe_builder({"a b"}, "gpt-2").vocab();
    EXPECT_EQ(v->pre_tokenizer(), "no-such-pre");
    const std::string text = "ab  ab's 12345 !?";
    EXPECT_EQ(v->tokenize(text, false, false), ref->tokenize(text, false, false));
}

TEST(SyntheticBpe, EndOfTurnTokensAreEog) {
    auto g = bpe_builder({"a b"}, "gpt-2", {"<|im_start|>", "<|im_end|>", "<|endoftext|>"});
    auto v = g.vocab();
    EXPECT_TRUE(v->is_eog(v->find_token("<|im_end|>")));
    EXPECT_TRUE(v->is_eog(v->find_token("<|endoftext|>")));
    EXPECT_FALSE(v->is_eog(v->find_token("<|im_start|>")));
    EXPECT_FALSE(v->is_eog(v->find_token("ab")));
    EXPECT_EQ(v->eot(), v->find_token("<|im_end|>"));
}

// ---- malformed metadata: a clear Error naming the key ----

void expect_error(GgufBuilder g, const std::string& must_mention) {
    try {
        g.vocab();
        ADD_FAILURE() << "no error; expected one mentioning " << must_mention;
    } catch (const minerva::Error& e) {
        EXPECT_NE(std::string(e.what()).find(must_mention), std::string::npos)
            << "error '" << e.what() << "' does not mention " << must_mention;
    }
}

TEST(VocabMetadata, ErrorsNameTheKey) {
    expect_error(GgufBuilder{}.strs("tokenizer.ggml.tokens", {"a"}), "tokenizer.ggml.model");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "bert").strs("tokenizer.ggml.tokens", {"a"}),
                 "tokenizer.ggml.model");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama"), "tokenizer.ggml.tokens");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {}),
                 "tokenizer.ggml.tokens");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").f32s("tokenizer.ggml.tokens", {1.0f}),
                 "tokenizer.ggml.tokens");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .f32s("tokenizer.ggml.scores", {0.0f}),
                 "tokenizer.ggml.scores");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .f32s("tokenizer.ggml.scores", {0.0f, std::nanf("")}),
                 "tokenizer.ggml.scores[1]");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .i32s("tokenizer.ggml.token_type", {1, 1, 1}),
                 "tokenizer.ggml.token_type");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .i32s("tokenizer.ggml.token_type", {1, 9}),
                 "tokenizer.ggml.token_type[1]");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .u32("tokenizer.ggml.bos_token_id", 2),
                 "tokenizer.ggml.bos_token_id");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .str("tokenizer.ggml.eos_token_id", "1"),
                 "tokenizer.ggml.eos_token_id");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "gpt2").strs("tokenizer.ggml.tokens", {"a", "b"}),
                 "tokenizer.ggml.merges");
    expect_error(GgufBuilder{}.str("tokenizer.ggml.model", "gpt2").strs("tokenizer.ggml.tokens", {"a", "b"})
                     .strs("tokenizer.ggml.merges", {"a b", "ab"}),
                 "tokenizer.ggml.merges[1]");
}

}  // namespace
