// The "llama" (SentencePiece-style) tokenizer.
//
// The text is cut into UTF-8 characters. Every adjacent pair whose concatenation is a token is a
// candidate merge, scored by that token's score; the best candidate (highest score, leftmost on
// ties) is merged, and the new symbol's pairs with its neighbours become candidates, until no
// candidate is left. A final symbol that is not a token (a character missing from the
// vocabulary) is spelled out in byte tokens <0xNN>, or the unknown token when there are none.
#include "tokenizer_spm.h"

#include <cstdio>
#include <algorithm>
#include <unordered_map>

#include "unicode.h"

namespace minerva {

namespace {
constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581
}  // namespace

std::string spm_escape_spaces(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    for (char c : text) {
        if (c == ' ') out += "\xE2\x96\x81";
        else out += c;
    }
    return out;
}

SpmTokenizer::SpmTokenizer(const VocabData& vocab) : v_(vocab) {
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = v_.index.find(name);
        if (id < 0) {
            const char one = static_cast<char>(b);
            id = v_.index.find(std::string_view(&one, 1));
        }
        byte_tokens_[b] = id;
    }
    split_at_spaces_ = true;
    for (const std::string& t : v_.texts) {
        for (size_t pos = t.find(kSpace, 1); pos != std::string::npos; pos = t.find(kSpace, pos + 1)) {
            if (pos < kSpace.size() || t.compare(pos - kSpace.size(), kSpace.size(), kSpace) != 0) {
                split_at_spaces_ = false;
                return;
            }
        }
    }
}

namespace {

struct Symbol {
    uint32_t start;  // byte offset in the text
    uint32_t len;    // 0 once merged into its left neighbour
    int32_t prev, next;
};

struct Bigram {
    float score;
    int32_t left, right;
    uint32_t len;
};

struct BigramOrder {  // the heap puts the "largest" first: highest score, then leftmost
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

void SpmTokenizer::tokenize(std::string_view text, std::vector<int32_t>& out) const {
    if (!split_at_spaces_) {
        encode_segment(text, out);
        return;
    }
    // Cut before every "▁" that follows another character; encode each piece once.
    struct Span {
        uint32_t begin, count;
    };
    std::unordered_map<std::string_view, Span> cache;
    std::vector<int32_t> cached;
    auto emit = [&](std::string_view seg) {
        if (seg.size() > 64) {
            encode_segment(seg, out);
            return;
        }
        if (auto it = cache.find(seg); it != cache.end()) {
            out.insert(out.end(), cached.begin() + it->second.begin, cached.begin() + it->second.begin + it->second.count);
            return;
        }
        const size_t before = out.size();
        encode_segment(seg, out);
        cache.emplace(seg, Span{static_cast<uint32_t>(cached.size()), static_cast<uint32_t>(out.size() - before)});
        cached.insert(cached.end(), out.begin() + before, out.end());
    };
    size_t start = 0;
    for (size_t pos = text.find(kSpace, 1); pos != std::string_view::npos; pos = text.find(kSpace, pos + kSpace.size())) {
        const bool after_space = pos >= kSpace.size() && text.compare(pos - kSpace.size(), kSpace.size(), kSpace) == 0;
        if (after_space || pos == start) continue;
        emit(text.substr(start, pos - start));
        start = pos;
    }
    emit(text.substr(start));
}

void SpmTokenizer::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    thread_local std::vector<Symbol> sym;
    sym.clear();
    sym.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t n = std::min(unicode::utf8_len(static_cast<uint8_t>(text[i])), text.size() - i);
        const int32_t idx = static_cast<int32_t>(sym.size());
        sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n), idx - 1, -1});
        if (idx > 0) sym[idx - 1].next = idx;
        i += n;
    }

    thread_local std::vector<Bigram> queue;  // a heap ordered by BigramOrder
    queue.clear();
    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t len = sym[l].len + sym[r].len;  // the two symbols are contiguous in text
        const int32_t id = v_.index.find(text.substr(sym[l].start, len));
        if (id < 0) return;
        queue.push_back({v_.scores[id], l, r, len});
        std::push_heap(queue.begin(), queue.end(), BigramOrder{});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        std::pop_heap(queue.begin(), queue.end(), BigramOrder{});
        const Bigram b = queue.back();
        queue.pop_back();
        Symbol& l = sym[b.left];
        Symbol& r = sym[b.right];
        // Stale candidate: one side was merged away or has grown since it was queued.
        if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const std::string_view piece = text.substr(sym[i].start, sym[i].len);
        const int32_t id = v_.index.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        bool all_bytes = true;
        for (char c : piece) all_bytes = all_bytes && byte_tokens_[static_cast<uint8_t>(c)] >= 0;
        if (all_bytes) {
            for (char c : piece) out.push_back(byte_tokens_[static_cast<uint8_t>(c)]);
        } else if (v_.unk >= 0) {
            out.push_back(v_.unk);  // no byte fallback: one unknown token for the character
        }
    }
}

}  // namespace minerva
