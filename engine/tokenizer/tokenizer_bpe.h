// tokenizer_bpe.h (internal): the "gpt2" tokenizer model, byte-level BPE with merges by rank
// after a pre-tokenizer split.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/gguf.h"
#include "pretokenize.h"
#include "tokenizer_data.h"

namespace minerva {

class BpeTokenizer {
public:
    // merges: the strings of tokenizer.ggml.merges ("left right", in rank order).
    BpeTokenizer(const VocabData& vocab, const std::vector<std::string_view>& merges, const PreTokenizerRules& rules,
                 const std::string& file);
    void tokenize(std::string_view text, std::vector<int32_t>& out) const;
    const PreTokenizer& pre_tokenizer() const { return pre_; }
    size_t n_merges() const { return merges_.size(); }

private:
    // BPE of one pre-tokenized piece (raw bytes).
    void encode_word(std::string_view word, std::vector<int32_t>& out) const;
    void emit_symbol(int32_t sym, std::vector<int32_t>& out) const;

    const VocabData& v_;
    PreTokenizer pre_;
    PairMap merges_;
    std::array<int32_t, 256> byte_tokens_{};  // token of each byte's byte-level character
    // Merge results that are not tokens themselves get ids n_tokens + k; their raw bytes:
    std::vector<std::string> virtual_bytes_;
};

}  // namespace minerva
