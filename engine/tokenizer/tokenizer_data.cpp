// TextIndex and PairMap (see tokenizer_data.h).
#include "tokenizer_data.h"

#include <bit>

namespace minerva {

uint64_t TextIndex::hash(std::string_view s) {
    // FNV-1a over 8-byte words, then a final mix: fast on short keys, which is what tokens are.
    uint64_t h = 0xcbf29ce484222325ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    for (size_t k = 0; i < s.size(); ++i, ++k) tail |= static_cast<uint64_t>(static_cast<uint8_t>(s[i])) << (8 * k);
    h = (h ^ tail) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

void TextIndex::build(const std::vector<std::string>& texts) {
    texts_ = &texts;
    const size_t cap = std::bit_ceil(std::max<size_t>(16, texts.size() * 2));
    slots_.assign(cap, -1);
    mask_ = cap - 1;
    for (size_t id = 0; id < texts.size(); ++id) {
        const std::string& t = texts[id];
        for (uint64_t i = hash(t) & mask_;; i = (i + 1) & mask_) {
            int32_t& slot = slots_[i];
            if (slot < 0) {
                slot = static_cast<int32_t>(id);
                break;
            }
            if (texts[slot] == t) {  // duplicate text: the later token wins
                slot = static_cast<int32_t>(id);
                break;
            }
        }
    }
}

int32_t TextIndex::find(std::string_view s) const {
    if (slots_.empty()) return -1;
    for (uint64_t i = hash(s) & mask_;; i = (i + 1) & mask_) {
        const int32_t id = slots_[i];
        if (id < 0) return -1;
        if ((*texts_)[id] == s) return id;
    }
}

void PairMap::reserve(size_t n) {
    const size_t cap = std::bit_ceil(std::max<size_t>(16, n * 2));
    if (cap <= slots_.size()) return;
    std::vector<Entry> old;
    old.swap(slots_);
    slots_.assign(cap, Entry{kEmpty, 0, 0});
    mask_ = cap - 1;
    size_ = 0;
    for (const Entry& e : old)
        if (e.key != kEmpty) insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xffffffffu), e.rank, e.result);
}

void PairMap::grow() { reserve(std::max<size_t>(16, slots_.size())); }

void PairMap::insert(int32_t left, int32_t right, int32_t rank, int32_t result) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t key = make_key(left, right);
    for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
        Entry& e = slots_[i];
        if (e.key == key) return;
        if (e.key == kEmpty) {
            e = Entry{key, rank, result};
            ++size_;
            return;
        }
    }
}

}  // namespace minerva
