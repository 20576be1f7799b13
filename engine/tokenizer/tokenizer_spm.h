// tokenizer_spm.h (internal): the "llama" tokenizer model, SentencePiece-style BPE over
// characters where the merge order comes from the token scores.
#pragma once
#include <array>
#include <string_view>
#include <vector>

#include "tokenizer_data.h"

namespace minerva {

class SpmTokenizer {
public:
    explicit SpmTokenizer(const VocabData& vocab);
    // Tokenizes text whose spaces are already U+2581 (and any space prefix already added).
    void tokenize(std::string_view text, std::vector<int32_t>& out) const;
    // The token that stands for one byte (<0xNN>, else the one-byte text), or -1.
    int32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }

private:
    void encode_segment(std::string_view text, std::vector<int32_t>& out) const;

    const VocabData& v_;
    std::array<int32_t, 256> byte_tokens_{};
    // True when no token has a U+2581 right after another character: then no token can span
    // the start of a "▁word", and the text can be cut there and its pieces encoded (and
    // cached) separately with the same result, instead of one merge queue over the whole text.
    bool split_at_spaces_ = false;
};

// ' ' -> U+2581 ("▁"), the SentencePiece whitespace marker.
std::string spm_escape_spaces(std::string_view text);

}  // namespace minerva
