// tests/byte_vocab.h: a vocabulary of 256 one-byte tokens and an end-of-sequence token (id
// 256), for grammar and tool-call tests that need no model file.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/model.h"

namespace minerva::test_util {

class ByteVocab : public Vocab {
public:
    Kind kind() const override { return Kind::BPE; }
    std::string_view pre_tokenizer() const override { return "default"; }
    int32_t n_tokens() const override { return 257; }
    std::vector<int32_t> tokenize(std::string_view text, bool, bool) const override {
        std::vector<int32_t> out;
        for (char c : text) out.push_back(static_cast<unsigned char>(c));
        return out;
    }
    std::string token_to_piece(int32_t id, bool special) const override {
        if (id == 256) return special ? "</s>" : "";
        return std::string(1, static_cast<char>(id));
    }
    std::string_view token_text(int32_t id) const override { return id == 256 ? "</s>" : "x"; }
    TokenType token_type(int32_t id) const override { return id == 256 ? TokenType::CONTROL : TokenType::NORMAL; }
    float token_score(int32_t) const override { return 0; }
    int32_t bos() const override { return -1; }
    int32_t eos() const override { return 256; }
    int32_t eot() const override { return -1; }
    int32_t pad() const override { return -1; }
    int32_t unk() const override { return -1; }
    int32_t sep() const override { return -1; }
    bool add_bos() const override { return false; }
    bool add_eos() const override { return false; }
    bool add_space_prefix() const override { return false; }
    int32_t find_token(std::string_view) const override { return -1; }
    bool is_eog(int32_t id) const override { return id == 256; }
};

inline std::shared_ptr<const Vocab> byte_vocab() {
    static auto v = std::make_shared<ByteVocab>();
    return v;
}

}  // namespace minerva::test_util
