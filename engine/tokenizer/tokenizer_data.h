// tokenizer_data.h (internal): the vocabulary as the tokenizers see it, and the two flat hash
// tables they look things up in (token text -> id; merge pair -> rank and result).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/vocab.h"

namespace minerva {

// Token text -> id. Open addressing over the vocabulary's own strings: no copies of keys, and
// lookups take a string_view (a slice of the input), so nothing is concatenated or allocated.
// When two tokens share a text the later id wins, as in the reference tokenizer.
class TextIndex {
public:
    void build(const std::vector<std::string>& texts);
    int32_t find(std::string_view s) const;

private:
    static uint64_t hash(std::string_view s);
    const std::vector<std::string>* texts_ = nullptr;
    std::vector<int32_t> slots_;  // token id or -1
    uint64_t mask_ = 0;
};

// (left id, right id) -> (rank, id of the merged symbol). Open addressing, linear probing.
class PairMap {
public:
    struct Entry {
        uint64_t key;
        int32_t rank;
        int32_t result;
    };
    void reserve(size_t n);
    // Inserts unless the pair is present (the first, lowest-ranked merge of a pair wins).
    void insert(int32_t left, int32_t right, int32_t rank, int32_t result);
    const Entry* find(int32_t left, int32_t right) const {
        if (slots_.empty()) return nullptr;
        const uint64_t key = make_key(left, right);
        for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
            const Entry& e = slots_[i];
            if (e.key == key) return &e;
            if (e.key == kEmpty) return nullptr;
        }
    }
    size_t size() const { return size_; }

private:
    static constexpr uint64_t kEmpty = ~0ull;
    static uint64_t make_key(int32_t l, int32_t r) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
    }
    static uint64_t mix(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdull;
        k ^= k >> 33;
        return k;
    }
    void grow();
    std::vector<Entry> slots_;
    uint64_t mask_ = 0;
    size_t size_ = 0;
};

// Everything read from tokenizer.ggml.*, normalised.
struct VocabData {
    Vocab::Kind kind = Vocab::Kind::SPM;
    std::string model;  // tokenizer.ggml.model
    std::string pre;    // tokenizer.ggml.pre, "default" when absent
    std::vector<std::string> texts;
    std::vector<float> scores;
    std::vector<TokenType> types;
    TextIndex index;

    int32_t bos = -1, eos = -1, eot = -1, eom = -1, pad = -1, unk = -1, sep = -1, mask = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
    std::vector<int32_t> eog;  // sorted

    // Tokens matched as whole units in the input (control, user-defined, unknown), longest first.
    std::vector<int32_t> special_by_length;

    int32_t n_tokens() const { return static_cast<int32_t>(texts.size()); }
};

}  // namespace minerva
