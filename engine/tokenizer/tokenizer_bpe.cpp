// The "gpt2" (byte-level BPE) tokenizer.
//
// The pre-tokenizer cuts the text into pieces. Each piece's bytes become symbols, one per byte
// (the token of that byte's character in GPT-2's byte-level alphabet). The adjacent pair with
// the lowest merge rank (leftmost on ties) is merged, over and over, until no adjacent pair has a
// merge. Pairs are looked up by their two symbol ids in a hash table, never by building strings.
// Pieces repeat a lot in real text, so one tokenize() call remembers the ids of the pieces it has
// already encoded.
#include "tokenizer_bpe.h"

#include <algorithm>
#include <unordered_map>

#include "minerva/error.h"
#include "unicode.h"

namespace minerva {

BpeTokenizer::BpeTokenizer(const VocabData& vocab, const std::vector<std::string_view>& merges,
                           const PreTokenizerRules& rules, const std::string& file)
    : v_(vocab), pre_(rules) {
    const auto& bl = unicode::ByteLevel::get();
    for (int b = 0; b < 256; ++b) byte_tokens_[b] = v_.index.find(bl.byte_to_utf8[b]);

    // Symbols are tokens, or merge results missing from the vocabulary (rare, but the merge list
    // may still build on them): give those ids past the vocabulary.
    std::unordered_map<std::string, int32_t> virtual_ids;
    auto symbol_id = [&](std::string_view text) -> int32_t {
        const int32_t id = v_.index.find(text);
        if (id >= 0) return id;
        auto it = virtual_ids.find(std::string(text));
        return it == virtual_ids.end() ? -1 : it->second;
    };
    struct Parsed {
        std::string_view left, right;
    };
    std::vector<Parsed> parsed(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
        const std::string_view m = merges[i];
        const size_t sp = m.find(' ', 1);
        if (sp == std::string_view::npos || sp + 1 >= m.size())
            throw Error(file + ": tokenizer.ggml.merges[" + std::to_string(i) + "] is not of the form 'left right': '" +
                        std::string(m.substr(0, 64)) + "'");
        parsed[i] = {m.substr(0, sp), m.substr(sp + 1)};
        std::string joined = std::string(parsed[i].left) + std::string(parsed[i].right);
        if (v_.index.find(joined) < 0 && !virtual_ids.count(joined)) {
            const int32_t id = v_.n_tokens() + static_cast<int32_t>(virtual_bytes_.size());
            virtual_bytes_.push_back(unicode::byte_level_decode(joined));
            virtual_ids.emplace(std::move(joined), id);
        }
    }
    merges_.reserve(merges.size());
    for (size_t i = 0; i < parsed.size(); ++i) {
        const int32_t l = symbol_id(parsed[i].left), r = symbol_id(parsed[i].right);
        if (l < 0 || r < 0) continue;  // a side that no symbol can ever be: the merge never applies
        const std::string joined = std::string(parsed[i].left) + std::string(parsed[i].right);
        merges_.insert(l, r, static_cast<int32_t>(i), symbol_id(joined));
    }
}

void BpeTokenizer::emit_symbol(int32_t sym, std::vector<int32_t>& out) const {
    if (sym >= 0 && sym < v_.n_tokens()) {
        out.push_back(sym);
        return;
    }
    // Not a token: spell it out byte by byte (or the unknown token for a byte with no token).
    if (sym >= v_.n_tokens()) {
        for (char c : virtual_bytes_[sym - v_.n_tokens()]) {
            const int32_t t = byte_tokens_[static_cast<uint8_t>(c)];
            if (t >= 0) out.push_back(t);
            else if (v_.unk >= 0) out.push_back(v_.unk);
        }
    } else if (v_.unk >= 0) {
        out.push_back(v_.unk);
    }
}

namespace {

struct Sym {
    int32_t id;  // token (or virtual) id; -1 for a byte with no token
    int32_t prev, next;
    bool alive;
};

struct Candidate {
    int32_t rank;
    int32_t left, right;  // symbol positions
    int32_t left_id, right_id;
};

// std heap functions keep the "largest" on top: lowest rank, then leftmost.
bool lower_priority(const Candidate& a, const Candidate& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
}

struct Scratch {
    std::vector<Sym> sym;
    std::vector<Candidate> heap;
    std::string encoded;
    std::vector<std::string_view> pieces;
};

Scratch& scratch() {
    thread_local Scratch s;
    return s;
}

}  // namespace

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
    Scratch& s = scratch();
    if (pre_.rules().ignore_merges) {
        // Llama 3 style: a piece that is a token as a whole is that token, merges or not.
        s.encoded.clear();
        const auto& bl = unicode::ByteLevel::get();
        for (char c : word) s.encoded += bl.byte_to_utf8[static_cast<uint8_t>(c)];
        const int32_t id = v_.index.find(s.encoded);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    if (word.size() == 1) {
        emit_symbol(byte_tokens_[static_cast<uint8_t>(word[0])], out);
        return;
    }

    auto& sym = s.sym;
    auto& heap = s.heap;
    sym.clear();
    heap.clear();
    const int32_t n = static_cast<int32_t>(word.size());
    for (int32_t i = 0; i < n; ++i) sym.push_back({byte_tokens_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, true});

    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
        const PairMap::Entry* e = merges_.find(sym[l].id, sym[r].id);
        if (!e) return;
        heap.push_back({e->rank, l, r, sym[l].id, sym[r].id});
        std::push_heap(heap.begin(), heap.end(), lower_priority);
    };
    for (int32_t i = 0; i + 1 < n; ++i) try_add(i, i + 1);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), lower_priority);
        const Candidate c = heap.back();
        heap.pop_back();
        Sym& l = sym[c.left];
        Sym& r = sym[c.right];
        // Stale: a side was merged into something else since this pair was queued.
        if (!l.alive || !r.alive || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;
        l.id = merges_.find(c.left_id, c.right_id)->result;
        r.alive = false;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = c.left;
        try_add(l.prev, c.left);
        try_add(c.left, l.next);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) emit_symbol(sym[i].id, out);
}

void BpeTokenizer::tokenize(std::string_view text, std::vector<int32_t>& out) const {
    // Pieces are views into `text`, which outlives this call: they key the cache directly.
    std::vector<std::string_view> pieces;
    pre_.split(text, pieces);
    struct Span {
        uint32_t begin, count;
    };
    std::unordered_map<std::string_view, Span> cache;
    std::vector<int32_t> cached;
    constexpr size_t kMaxCachedLen = 64;
    for (std::string_view p : pieces) {
        if (p.size() > kMaxCachedLen) {
            encode_word(p, out);
            continue;
        }
        auto it = cache.find(p);
        if (it != cache.end()) {
            out.insert(out.end(), cached.begin() + it->second.begin, cached.begin() + it->second.begin + it->second.count);
            continue;
        }
        const size_t before = out.size();
        encode_word(p, out);
        const Span span{static_cast<uint32_t>(cached.size()), static_cast<uint32_t>(out.size() - before)};
        cached.insert(cached.end(), out.begin() + before, out.end());
        cache.emplace(p, span);
    }
}

}  // namespace minerva
