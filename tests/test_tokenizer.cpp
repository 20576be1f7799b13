// Tokenizer tests: the reference vectors of ../shared/vocab for every vocabulary, then special
// tokens, BOS/EOS, byte fallback, round trips, the streaming decoder and bad metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <sstream>

#include "common.h"
#include "minerva/error.h"
#include "minerva/gguf.h"
#include "minerva/vocab.h"

namespace {

using minerva::TokenType;
using minerva::Vocab;

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// The .inp format: every input is followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_inputs(const std::string& path) {
    const std::string all = slurp(path);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    for (size_t hit; (hit = all.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
        out.push_back(all.substr(pos, hit - pos));
    return out;
}

std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::vector<int32_t>> out;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream ls(line);
        std::vector<int32_t> ids;
        for (int32_t id; ls >> id;) ids.push_back(id);
        out.push_back(ids);
    }
    return out;
}

std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
        s += ' ';
        s += std::to_string(id);
    }
    return s;
}

// llama.cpp's test vocabularies in ../shared/vocab (the tests' parameter), and the test-name
// suffix of each: "llama_spm" for "ggml-vocab-llama-spm".
const std::vector<std::string> k_vocab_names = {"ggml-vocab-llama-spm", "ggml-vocab-llama-bpe", "ggml-vocab-gpt-2",
                                                "ggml-vocab-qwen2", "ggml-vocab-deepseek-llm"};

std::string vocab_param_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string s = info.param.substr(11);
    for (char& c : s)
        if (c == '-') c = '_';
    return s;
}

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, ReproducesReference) {
    const std::string name = GetParam();
    MINERVA_SHARED_FILE(gguf_path, "vocab/" + name + ".gguf");
    MINERVA_SHARED_FILE(inp_path, "vocab/" + name + ".gguf.inp");
    MINERVA_SHARED_FILE(out_path, "vocab/" + name + ".gguf.out");
    auto vocab = Vocab::load(gguf_path);
    const auto inputs = read_inputs(inp_path);
    const auto expected = read_outputs(out_path);
    ASSERT_EQ(inputs.size(), expected.size()) << "malformed vector files for " << name;
    ASSERT_GT(inputs.size(), 10u);
    int failures = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const auto got = vocab->tokenize(inputs[i], /*add_special=*/false, /*parse_special=*/false);
        EXPECT_EQ(got, expected[i]) << name << " input #" << i << " '" << inputs[i] << "'\n  expected:"
                                    << ids_str(expected[i]) << "\n  got:     " << ids_str(got);
        failures += got != expected[i];
        // Every vector also round-trips (byte-level and SPM with byte fallback are lossless).
        EXPECT_EQ(vocab->detokenize(got), inputs[i]) << name << " input #" << i;
    }
    std::printf("[%s] %zu vectors, %d mismatches\n", name.c_str(), inputs.size(), failures);
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, VocabVectors, ::testing::ValuesIn(k_vocab_names), vocab_param_name);


// ---- the shared vocabularies: special tokens, BOS/EOS, pieces, round trips, streaming ----

std::shared_ptr<const Vocab> shared_vocab(const std::string& path) {
    static std::map<std::string, std::shared_ptr<const Vocab>> cache;
    auto& v = cache[path];
    if (!v) v = Vocab::load(path);
    return v;
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<uint8_t>(s[i]);
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

const std::vector<std::string>& unicode_samples() {
    static const std::vector<std::string> v = {
        "Hello, world! It's 2024: the year of 10,000 tokens.",
        "  leading and trailing spaces  ",
        "tabs\tand\nnewlines\r\n\n\n and\u00a0no-break\u2003em space",
        "Ünïcödé façade naïve coöperate",
        "日本語のテキストと中文和한국어",
        "emoji 😀👍🏽👨‍👩‍👧 flags 🇫🇷 and ✅",
        "Русский текст, ελληνικά, עברית, العربية",
        "code: for (int i = 0; i < n; ++i) { x += a[i]; } // done",
        "mixed 123abc456 ½ ² ٣ ⅷ",
        "<|eot_id|> <s> </s> [INST] look like special tokens",
        "a",
        " ",
        "\n",
    };
    return v;
}

class SharedVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedVocab, RoundTripsVariedText) {
    MINERVA_SHARED_FILE(path, "vocab/" + GetParam() + ".gguf");
    auto v = shared_vocab(path);
    for (const auto& text : unicode_samples()) {
        const auto ids = v->tokenize(text, false, false);
        EXPECT_EQ(v->detokenize(ids), text) << GetParam() << ": '" << text << "'";
        const auto with_special = v->tokenize(text, true, false);
        EXPECT_EQ(v->detokenize(with_special, /*remove_special=*/true), text) << GetParam() << ": '" << text << "'";
    }
    // Invalid UTF-8 survives too (byte-level BPE and SPM byte fallback are lossless). Not bytes
    // 0xC0, 0xC1, 0xF5..0xFF: deepseek-llm re-added their byte-level characters as user-defined
    // tokens whose text is the character itself.
    const std::string bad = std::string("ok \x80\xbf bytes \xc3 cut ") + "\xe2\x82";
    EXPECT_EQ(v->detokenize(v->tokenize(bad, false, false)), bad) << GetParam();
    EXPECT_TRUE(v->tokenize("", false, false).empty());
}

TEST_P(SharedVocab, StreamDecoderNeverSplitsCharacters) {
    MINERVA_SHARED_FILE(path, "vocab/" + GetParam() + ".gguf");
    auto v = shared_vocab(path);
    for (const auto& text : unicode_samples()) {
        const auto ids = v->tokenize(text, false, false);
        minerva::StreamDecoder dec(v);
        std::string all;
        for (int32_t id : ids) {
            const std::string part = dec.push(id);
            EXPECT_TRUE(valid_utf8(part)) << GetParam() << ": half a character emitted for '" << text << "'";
            all += part;
        }
        all += dec.flush();
        // The stream keeps every piece as it is (the SPM space prefix included).
        std::string pieces;
        for (int32_t id : ids) pieces += v->token_to_piece(id, false);
        EXPECT_EQ(all, pieces) << GetParam();
    }
}

TEST_P(SharedVocab, SpecialTokensAndEndOfGeneration) {
    MINERVA_SHARED_FILE(path, "vocab/" + GetParam() + ".gguf");
    auto v = shared_vocab(path);
    ASSERT_GE(v->eos(), 0);
    EXPECT_TRUE(v->is_eog(v->eos()));
    EXPECT_EQ(v->token_type(v->eos()), TokenType::CONTROL);
    EXPECT_EQ(v->token_to_piece(v->eos(), false), "");
    EXPECT_EQ(v->token_to_piece(v->eos(), true), v->token_text(v->eos()));
    const std::string eos_text(v->token_text(v->eos()));
    // parse_special: the control text becomes the single token, the rest is tokenized normally.
    const auto plain = v->tokenize("Hi there", false, false);
    const auto parsed = v->tokenize("Hi there" + eos_text, false, true);
    std::vector<int32_t> want = plain;
    want.push_back(v->eos());
    EXPECT_EQ(parsed, want) << GetParam();
    // Without parse_special the text is just text.
    const auto unparsed = v->tokenize("Hi there" + eos_text, false, false);
    EXPECT_EQ(std::count(unparsed.begin(), unparsed.end(), v->eos()), 0);
    EXPECT_EQ(v->detokenize(unparsed), "Hi there" + eos_text);
    // detokenize renders the control token unless asked to drop it.
    EXPECT_EQ(v->detokenize(parsed), "Hi there" + eos_text);
    EXPECT_EQ(v->detokenize(parsed, true), "Hi there");
    EXPECT_FALSE(v->is_eog(plain.at(0)));
    EXPECT_THROW(v->token_to_piece(v->n_tokens()), minerva::Error);
    EXPECT_THROW(v->token_to_piece(-1), minerva::Error);
    const int32_t bad_ids[] = {plain[0], v->n_tokens()};
    EXPECT_THROW(v->detokenize(bad_ids), minerva::Error);
}

TEST_P(SharedVocab, RandomInputsAreValidAndRoundTrip) {
    MINERVA_SHARED_FILE(path, "vocab/" + GetParam() + ".gguf");
    auto v = shared_vocab(path);
    const bool spm = v->kind() == Vocab::Kind::SPM;
    const std::vector<std::string> alphabet = {
        "a", "Z", "q", " ", "  ", "\n", "\r\n", "\t", "1", "234", "'s", "'LL", "!", "?!", "<|", "|>", "<s>", "</s>",
        "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\x80",
        "\xC3", "\xC2\xA0", "\xE3\x80\x80", "\xC2\x85", "_", "{", "}", "..."};
    std::mt19937 rng(1234);
    for (int iter = 0; iter < 300; ++iter) {
        std::string text;
        const int n = static_cast<int>(rng() % 24);
        for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
        for (bool parse_special : {false, true}) {
            // Plain text: with BOS/EOS every other time, dropped again by detokenize. Parsed
            // special tokens: no BOS/EOS, and their text comes back from detokenize.
            const bool add_special = !parse_special && iter % 2 == 0;
            const auto ids = v->tokenize(text, add_special, parse_special);
            for (int32_t id : ids) ASSERT_TRUE(v->valid(id)) << GetParam();
            // SPM puts a space after every parsed special token, so only the plain form is exact there.
            if (!parse_special || !spm) {
                EXPECT_EQ(v->detokenize(ids, add_special), text)
                    << GetParam() << " parse_special=" << parse_special << " text '" << text << "'";
            }
        }
    }
}

TEST_P(SharedVocab, ThreadsShareOneVocab) {
    MINERVA_SHARED_FILE(path, "vocab/" + GetParam() + ".gguf");
    auto v = shared_vocab(path);
    std::string text;
    for (const auto& s : unicode_samples()) text += s + " ";
    for (int i = 0; i < 4; ++i) text += text;
    const auto want = v->tokenize(text, true, true);
    std::vector<std::vector<int32_t>> got(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int k = 0; k < 5; ++k) got[t] = v->tokenize(text, true, true);
        });
    for (auto& th : threads) th.join();
    for (const auto& g : got) EXPECT_EQ(g, want) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, SharedVocab, ::testing::ValuesIn(k_vocab_names), vocab_param_name);

TEST(Llama3Vocab, ChatTemplateTextAndBos) {
    MINERVA_SHARED_FILE(path, "vocab/ggml-vocab-llama-bpe.gguf");
    auto v = shared_vocab(path);
    EXPECT_EQ(v->pre_tokenizer(), "llama-bpe");
    EXPECT_TRUE(v->add_bos());  // not in the file: the llama3 default
    EXPECT_FALSE(v->add_eos());
    const int32_t start = v->find_token("<|start_header_id|>"), end = v->find_token("<|end_header_id|>");
    const int32_t eot = v->find_token("<|eot_id|>");
    ASSERT_GE(start, 0);
    ASSERT_GE(eot, 0);
    EXPECT_EQ(v->eot(), eot);
    EXPECT_TRUE(v->is_eog(eot));
    const auto ids = v->tokenize("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>", false, true);
    std::vector<int32_t> want = {v->bos(), start};
    for (int32_t id : v->tokenize("user", false, false)) want.push_back(id);
    want.push_back(end);
    for (int32_t id : v->tokenize("\n\nHi!", false, false)) want.push_back(id);
    want.push_back(eot);
    EXPECT_EQ(ids, want);
    // add_special puts BOS first (once).
    const auto with_bos = v->tokenize("Hello", true, false);
    ASSERT_EQ(with_bos.size(), 2u);
    EXPECT_EQ(with_bos[0], v->bos());
    EXPECT_EQ(with_bos[1], v->tokenize("Hello", false, false)[0]);
}

TEST(QwenVocab, NoBosByDefaultAndImEndEndsTurn) {
    MINERVA_SHARED_FILE(path, "vocab/ggml-vocab-qwen2.gguf");
    auto v = shared_vocab(path);
    EXPECT_FALSE(v->add_bos());
    EXPECT_EQ(v->tokenize("Hello", true, false), v->tokenize("Hello", false, false));
    const int32_t im_end = v->find_token("<|im_end|>");
    ASSERT_GE(im_end, 0);
    EXPECT_TRUE(v->is_eog(im_end));
    EXPECT_FALSE(v->is_eog(v->find_token("<|im_start|>")));
}

TEST(SpmVocab, PiecesSpacePrefixAndByteFallback) {
    MINERVA_SHARED_FILE(path, "vocab/ggml-vocab-llama-spm.gguf");
    auto v = shared_vocab(path);
    EXPECT_EQ(v->kind(), Vocab::Kind::SPM);
    EXPECT_TRUE(v->add_space_prefix());
    EXPECT_EQ(v->bos(), 1);
    EXPECT_EQ(v->eos(), 2);
    EXPECT_EQ(v->unk(), 0);
    const auto hello = v->tokenize("Hello", true, false);
    ASSERT_EQ(hello.size(), 2u);
    EXPECT_EQ(hello[0], 1);
    EXPECT_EQ(v->token_text(hello[1]), "\xE2\x96\x81" "Hello");
    EXPECT_EQ(v->token_to_piece(hello[1]), " Hello");
    EXPECT_EQ(v->detokenize(hello), "<s> Hello");  // the prefix space is only removed at the very start
    EXPECT_EQ(v->detokenize(hello, true), "Hello");
    // A character missing from the vocabulary is spelled in byte tokens.
    const auto ids = v->tokenize("\xF0\x9F\xA6\x99", false, false);  // U+1F999 (not a token)
    ASSERT_EQ(ids.size(), 5u);                                           // "▁" + 4 bytes
    const char* bytes[] = {"<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"};
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(v->token_type(ids[i + 1]), TokenType::BYTE);
        EXPECT_EQ(v->token_text(ids[i + 1]), bytes[i]);
    }
    EXPECT_EQ(v->token_to_piece(ids[1]), "\xF0");
    // Streaming those bytes: nothing until the character is complete.
    minerva::StreamDecoder dec(v);
    EXPECT_EQ(dec.push(ids[0]), " ");
    EXPECT_EQ(dec.push(ids[1]), "");
    EXPECT_EQ(dec.push(ids[2]), "");
    EXPECT_EQ(dec.push(ids[3]), "");
    EXPECT_EQ(dec.push(ids[4]), "\xF0\x9F\xA6\x99");
    EXPECT_EQ(dec.push(ids[1]), "");
    EXPECT_EQ(dec.flush(), "\xF0");  // an unfinished character comes out on flush
    EXPECT_EQ(dec.flush(), "");
    // The space prefix comes back after each special token (parse_special), as in SentencePiece.
    const auto around = v->tokenize("a</s>b", false, true);
    ASSERT_EQ(around.size(), 3u);
    EXPECT_EQ(around[1], 2);
    EXPECT_EQ(v->token_text(around[2]), "\xE2\x96\x81" "b");
}

}  // namespace
