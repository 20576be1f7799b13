// grammar/matcher.cpp: running a grammar over bytes, and the token masks.
//
// A parse position is a stack of grammar positions (a pushdown automaton): the top is a
// character class to match next, the entries below are where to continue when the rule on top
// ends. Stacks are interned as linked nodes (position, parent) so each is one integer, and the
// set of live stacks (the grammar is ambiguous in general) is interned too. A matcher state is
// such a set plus the bytes of a UTF-8 character not yet complete. Transitions on one byte are
// memoised in a 256-wide row per state, so after warm-up advancing is a table look-up.
//
// Masks: the vocabulary's token pieces form a byte trie; the allowed tokens of a state are found
// by walking the trie from that state and stopping at the first byte the grammar refuses. The
// result is cached per state as a bitset: a state seen before costs only applying the bitset.
#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "grammar/grammar_ir.h"
#include "minerva/error.h"

namespace minerva {

namespace {

constexpr uint32_t DEAD = 0xFFFFFFFFu;
constexpr uint32_t UNKNOWN = 0xFFFFFFFEu;
constexpr size_t MASK_BUDGET_BYTES = size_t(512) << 20;  // cached masks beyond this are dropped

struct VecHash {
    size_t operator()(const std::vector<uint32_t>& v) const {
        uint64_t h = 1469598103934665603ull;
        for (uint32_t x : v) h = (h ^ x) * 1099511628211ull;
        return static_cast<size_t>(h);
    }
};

}  // namespace

struct GrammarConstraint::Impl {
    std::shared_ptr<const Grammar> grammar;
    const Grammar::Impl* g = nullptr;
    std::shared_ptr<const Vocab> vocab;
    int n_vocab = 0;
    size_t n_words = 0;

    // Byte trie of token pieces. Node 0 is the root.
    struct Node {
        uint32_t first_edge = 0, n_edges = 0, first_tok = 0, n_toks = 0;
    };
    std::vector<Node> nodes;
    std::vector<uint8_t> edge_byte;
    std::vector<uint32_t> edge_child;
    std::vector<int32_t> node_toks;
    std::vector<uint32_t> node_parent, node_end;  // preorder: the subtree of i is [i, node_end[i])
    std::vector<uint8_t> node_byte;                // the byte on the edge into the node
    std::vector<std::string> pieces;  // per token; "" = never grammar text
    std::vector<int32_t> eog;         // end-of-generation tokens
    std::vector<int32_t> ws_only;     // tokens whose piece is only spaces, tabs and newlines
    std::string open_tag;             // the tag open_compat was computed for
    std::vector<int32_t> open_compat; // tokens whose piece (leading whitespace dropped) may begin open_tag

    // Tokens that keep `head + piece` (leading whitespace of the whole dropped) able to be or
    // begin with tag.
    std::vector<int32_t> tag_compatible(const std::string& head, const std::string& tag) const {
        std::vector<int32_t> out;
        for (int32_t t = 0; t < n_vocab; ++t) {
            const std::string& p = pieces[size_t(t)];
            if (p.empty()) continue;
            std::string text = head + p;
            const size_t first = text.find_first_not_of(" \t\r\n");
            if (first == std::string::npos) continue;  // whitespace: ws_only covers it
            const std::string_view h = std::string_view(text).substr(first);
            const bool ok = h.size() < tag.size() ? tag.compare(0, h.size(), h) == 0 : h.compare(0, tag.size(), tag) == 0;
            if (ok) out.push_back(t);
        }
        return out;
    }

    std::mutex mu;
    // Stacks: (position of the next element, parent stack). Stack 0 is empty: the grammar is complete.
    std::vector<std::pair<uint32_t, uint32_t>> stacks{{0u, 0u}};
    std::unordered_map<uint64_t, uint32_t> stack_ids;
    std::vector<std::vector<uint32_t>> sets;  // sorted stack ids
    std::unordered_map<std::vector<uint32_t>, uint32_t, VecHash> set_ids;
    std::unordered_map<uint64_t, uint32_t> cp_memo;  // (set, code point) -> set
    std::vector<uint32_t> seen;  // expansion dedupe, stamped
    uint32_t stamp = 0;

    uint32_t stack_id(uint32_t pos, uint32_t parent) {
        const uint64_t key = (uint64_t(pos) << 32) | parent;
        auto [it, fresh] = stack_ids.try_emplace(key, static_cast<uint32_t>(stacks.size()));
        if (fresh) stacks.emplace_back(pos, parent);
        return it->second;
    }
    // The stack that continues after the element at pos (a tail call when pos is the last element).
    uint32_t next(uint32_t pos, uint32_t parent) {
        return g->elems[pos + 1].kind == GrammarElem::END ? parent : stack_id(pos + 1, parent);
    }
    // All stacks reachable from `id` without consuming a character, whose top is a character class
    // (or the empty stack).
    void expand(uint32_t id, std::vector<uint32_t>& out) {
        if (id >= seen.size()) seen.resize(stacks.size() * 2 + 16, 0);
        if (seen[id] == stamp) return;
        seen[id] = stamp;
        if (id == 0) {
            out.push_back(0);
            return;
        }
        auto [pos, parent] = stacks[id];
        const GrammarElem e = g->elems[pos];
        if (e.kind == GrammarElem::END) {
            expand(parent, out);
        } else if (e.kind == GrammarElem::CHARS) {
            out.push_back(id);
        } else {
            const uint32_t cont = next(pos, parent);
            for (uint32_t a : g->rule_alts[e.arg])
                expand(g->elems[a].kind == GrammarElem::END ? cont : stack_id(a, cont), out);
        }
    }
    uint32_t set_id(std::vector<uint32_t>& v) {
        std::sort(v.begin(), v.end());
        v.erase(std::unique(v.begin(), v.end()), v.end());
        auto [it, fresh] = set_ids.try_emplace(v, static_cast<uint32_t>(sets.size()));
        if (fresh) sets.push_back(v);
        return it->second;
    }
    uint32_t advance(uint32_t set, uint32_t cp) {
        const uint64_t key = (uint64_t(set) << 32) | cp;
        if (auto it = cp_memo.find(key); it != cp_memo.end()) return it->second;
        std::vector<uint32_t> out;
        ++stamp;
        for (size_t i = 0; i < sets[set].size(); ++i) {
            const uint32_t s = sets[set][i];
            if (s == 0) continue;
            auto [pos, parent] = stacks[s];
            if (g->classes[g->elems[pos].arg].matches(cp)) expand(next(pos, parent), out);
        }
        const uint32_t r = set_id(out);
        cp_memo.emplace(key, r);
        return r;
    }

    // A matcher state is a set id plus the bytes of an unfinished UTF-8 character ("pend":
    // count << 24 | bytes). Rows of trans are per set: for an ASCII byte the next set, for a
    // UTF-8 lead byte the set itself when some character starting with it can match (the rest
    // of such a character is checked byte by byte), DEAD otherwise.
    std::vector<uint32_t> trans;  // [set * 256 + byte] -> set, DEAD or UNKNOWN
    std::vector<std::shared_ptr<const std::vector<uint64_t>>> masks;  // per set (pend == 0)
    std::unordered_map<uint64_t, std::shared_ptr<const std::vector<uint64_t>>> partial_masks;  // (set, pend)
    size_t mask_bytes = 0;
    uint32_t initial = 0;
    uint32_t empty_set = 0;

    void grow_tables() {
        if (trans.size() < sets.size() * 256) {
            trans.resize(sets.size() * 256, UNKNOWN);
            masks.resize(sets.size());
        }
    }
    bool feasible(uint32_t set, uint32_t lo, uint32_t hi) const {
        for (uint32_t s : sets[set])
            if (s != 0 && g->classes[g->elems[stacks[s].first].arg].intersects(lo, hi)) return true;
        return false;
    }
    // Code points that a character starting with these bytes can still become; false if none.
    static bool utf8_range(const uint32_t* bytes, uint32_t n, uint32_t& lo, uint32_t& hi, uint32_t& total) {
        const uint32_t lead = bytes[0];
        total = lead < 0x80 ? 1 : lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
        if (total == 0 || n > total) return false;
        uint32_t v = total == 1 ? lead : lead & (total == 2 ? 0x1Fu : total == 3 ? 0x0Fu : 0x07u);
        for (uint32_t i = 1; i < n; ++i) {
            if ((bytes[i] & 0xC0) != 0x80) return false;
            v = (v << 6) | (bytes[i] & 0x3F);
        }
        const uint32_t rest = total - n;
        lo = v << (6 * rest);
        hi = lo | ((1u << (6 * rest)) - 1);
        lo = std::max(lo, total == 1 ? 0u : total == 2 ? 0x80u : total == 3 ? 0x800u : 0x10000u);
        hi = std::min(hi, 0x10FFFFu);
        if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return false;
        if (rest == 0 && lo >= 0xD800 && lo <= 0xDFFF) return false;
        return true;
    }
    uint32_t row_entry(uint32_t set, uint8_t b) {
        uint32_t r;
        if (b < 0x80) {
            r = advance(set, b);
            if (r == empty_set) r = DEAD;
        } else {
            uint32_t bytes[1] = {b}, lo, hi, total;
            r = utf8_range(bytes, 1, lo, hi, total) && feasible(set, lo, hi) ? set : DEAD;
        }
        grow_tables();
        trans[size_t(set) * 256 + b] = r;
        return r;
    }
    // One byte from (set, pend); false when the grammar refuses it (state unchanged then).
    bool byte_step(uint32_t& set, uint32_t& pend, uint8_t b) {
        if (pend == 0) {
            uint32_t t = trans[size_t(set) * 256 + b];
            if (t == UNKNOWN) t = row_entry(set, b);
            if (t == DEAD) return false;
            if (b < 0x80) set = t;
            else pend = (1u << 24) | b;
            return true;
        }
        const uint32_t n = pend >> 24;
        uint32_t bytes[4];
        for (uint32_t i = 0; i < n; ++i) bytes[i] = (pend >> (8 * (n - 1 - i))) & 0xFF;
        bytes[n] = b;
        uint32_t lo, hi, total;
        if (!utf8_range(bytes, n + 1, lo, hi, total)) return false;
        if (n + 1 == total) {
            const uint32_t ns = advance(set, lo);
            if (ns == empty_set) return false;
            grow_tables();
            set = ns;
            pend = 0;
            return true;
        }
        if (!feasible(set, lo, hi)) return false;
        pend = ((n + 1) << 24) | ((pend & 0xFFFFFF) << 8) | b;
        return true;
    }
    bool can_end(uint32_t set, uint32_t pend) const { return pend == 0 && !sets[set].empty() && sets[set][0] == 0; }
    bool must_end(uint32_t set, uint32_t pend) const { return pend == 0 && sets[set].size() == 1 && sets[set][0] == 0; }

    std::vector<uint32_t> walk_set, walk_pend;  // scratch of mask(): the state at each trie node

    std::shared_ptr<const std::vector<uint64_t>> mask(uint32_t set, uint32_t pend) {
        if (pend == 0 && masks[set]) return masks[set];
        const uint64_t pkey = (uint64_t(set) << 32) | pend;
        if (pend != 0)
            if (auto it = partial_masks.find(pkey); it != partial_masks.end()) return it->second;
        auto bits = std::make_shared<std::vector<uint64_t>>(n_words, 0);
        uint64_t* w = bits->data();
        if (can_end(set, pend))
            for (int32_t t : eog) w[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
        // Nodes are numbered in preorder, so the walk is one pass over the arrays: a node's state
        // comes from its parent's, and a refused byte skips the node's whole subtree.
        walk_set.resize(nodes.size());
        walk_pend.resize(nodes.size());
        walk_set[0] = set;
        walk_pend[0] = pend;
        const uint32_t n_nodes = static_cast<uint32_t>(nodes.size());
        for (uint32_t i = 1; i < n_nodes;) {
            const uint32_t p = node_parent[i];
            uint32_t s = walk_set[p], pd = walk_pend[p];
            const uint8_t b = node_byte[i];
            bool ok;
            if (pd == 0 && b < 0x80) {  // the common case: one table look-up
                uint32_t t = trans[size_t(s) * 256 + b];
                if (t == UNKNOWN) t = row_entry(s, b);
                ok = t != DEAD;
                s = t;
            } else {
                ok = byte_step(s, pd, b);
            }
            if (!ok) {
                i = node_end[i];
                continue;
            }
            walk_set[i] = s;
            walk_pend[i] = pd;
            const Node& node = nodes[i];
            for (uint32_t k = 0; k < node.n_toks; ++k) {
                const int32_t t = node_toks[node.first_tok + k];
                w[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
            }
            ++i;
        }
        if (mask_bytes > MASK_BUDGET_BYTES) {
            for (auto& m : masks) m.reset();
            partial_masks.clear();
            mask_bytes = 0;
        }
        mask_bytes += n_words * 8;
        if (pend == 0) masks[set] = bits;
        else partial_masks[pkey] = bits;
        return bits;
    }

    // Builds trie nodes for the tokens order[lo, hi), which share their first `depth` bytes.
    uint32_t build(const std::vector<int32_t>& order, size_t lo, size_t hi, size_t depth, uint32_t parent = 0, uint8_t byte = 0) {
        const uint32_t id = static_cast<uint32_t>(nodes.size());
        nodes.emplace_back();
        node_parent.push_back(parent);
        node_byte.push_back(byte);
        node_end.push_back(0);
        size_t i = lo;
        nodes[id].first_tok = static_cast<uint32_t>(node_toks.size());
        while (i < hi && pieces[size_t(order[i])].size() == depth) node_toks.push_back(order[i++]);
        nodes[id].n_toks = static_cast<uint32_t>(node_toks.size()) - nodes[id].first_tok;
        std::vector<std::pair<size_t, size_t>> groups;
        while (i < hi) {
            const char c = pieces[size_t(order[i])][depth];
            size_t j = i;
            while (j < hi && pieces[size_t(order[j])][depth] == c) ++j;
            groups.emplace_back(i, j);
            i = j;
        }
        const uint32_t first = static_cast<uint32_t>(edge_byte.size());
        nodes[id].first_edge = first;
        nodes[id].n_edges = static_cast<uint32_t>(groups.size());
        edge_byte.resize(first + groups.size());
        edge_child.resize(first + groups.size());
        for (size_t k = 0; k < groups.size(); ++k) {
            edge_byte[first + k] = static_cast<uint8_t>(pieces[size_t(order[groups[k].first])][depth]);
            const uint32_t child = build(order, groups[k].first, groups[k].second, depth + 1, id, edge_byte[first + k]);
            edge_child[first + k] = child;
        }
        node_end[id] = static_cast<uint32_t>(nodes.size());
        return id;
    }
};

std::shared_ptr<GrammarConstraint> GrammarConstraint::create(std::shared_ptr<const Grammar> grammar,
                                                             std::shared_ptr<const Vocab> vocab) {
    if (!grammar || !vocab) throw Error("GrammarConstraint: grammar and vocabulary are required");
    std::shared_ptr<GrammarConstraint> c(new GrammarConstraint());
    c->impl_ = std::make_unique<Impl>();
    Impl& m = *c->impl_;
    m.grammar = grammar;
    m.g = &grammar->impl();
    m.vocab = vocab;
    m.n_vocab = vocab->n_tokens();
    m.n_words = (static_cast<size_t>(m.n_vocab) + 63) / 64;
    m.pieces.resize(static_cast<size_t>(m.n_vocab));
    std::vector<int32_t> order;
    for (int32_t t = 0; t < m.n_vocab; ++t) {
        if (vocab->is_eog(t)) {
            m.eog.push_back(t);
            continue;
        }
        const TokenType ty = vocab->token_type(t);
        if (ty == TokenType::CONTROL || ty == TokenType::UNUSED || ty == TokenType::UNKNOWN) continue;
        m.pieces[size_t(t)] = vocab->token_to_piece(t, false);
        if (!m.pieces[size_t(t)].empty()) order.push_back(t);
        if (!m.pieces[size_t(t)].empty() && m.pieces[size_t(t)].find_first_not_of(" \t\r\n") == std::string::npos) m.ws_only.push_back(t);
    }
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        const std::string &pa = m.pieces[size_t(a)], &pb = m.pieces[size_t(b)];
        return pa != pb ? pa < pb : a < b;
    });
    m.build(order, 0, order.size(), 0);

    std::vector<uint32_t> empty;
    m.empty_set = m.set_id(empty);
    std::vector<uint32_t> start;
    ++m.stamp;
    for (uint32_t a : m.g->rule_alts[m.g->start_rule])
        m.expand(m.g->elems[a].kind == GrammarElem::END ? 0 : m.stack_id(a, 0), start);
    m.initial = m.set_id(start);
    m.grow_tables();
    return c;
}

GrammarConstraint::~GrammarConstraint() = default;
const Grammar& GrammarConstraint::grammar() const { return *impl_->grammar; }
const Vocab& GrammarConstraint::vocab() const { return *impl_->vocab; }

GrammarMatcher::GrammarMatcher(std::shared_ptr<GrammarConstraint> constraint, std::string start_after, std::string open_tag)
    : c_(std::move(constraint)), start_after_(std::move(start_after)), open_tag_(std::move(open_tag)) {
    if (!c_) throw Error("GrammarMatcher: no constraint");
    reset();
}

void GrammarMatcher::reset() {
    active_ = start_after_.empty();
    skip_ws_ = false;
    pending_.clear();
    state_ = c_->impl().initial;
    pend_ = 0;
    mask_.reset();
}

std::span<const uint64_t> GrammarMatcher::allowed() {
    if (!mask_ || mask_state_ != state_ || mask_pend_ != pend_) {
        auto& m = c_->impl();
        std::lock_guard<std::mutex> lock(m.mu);
        mask_ = m.mask(state_, pend_);
        mask_state_ = state_;
        mask_pend_ = pend_;
    }
    return *mask_;
}

void GrammarMatcher::apply(std::span<float> logits) {
    auto& m = c_->impl();
    // Tokens allowed besides the grammar's: whitespace before the answer, or (not yet known
    // whether the reply thinks) tokens that may open the think block.
    std::vector<int32_t> extra_owned;
    const std::vector<int32_t>* extra = nullptr;
    constexpr size_t kMaxLeadingSpace = 16;  // a model that only ever writes whitespace still answers
    bool with_ws = skip_ws_ && pending_.size() < kMaxLeadingSpace;
    if (!active_) {
        if (open_tag_.empty()) return;  // thinking: free text until start_after
        const size_t first = pending_.find_first_not_of(" \t\r\n");
        const std::string head = first == std::string::npos ? std::string() : pending_.substr(first);
        if (head.size() >= open_tag_.size()) return;  // inside the think block
        std::lock_guard<std::mutex> lock(m.mu);
        if (head.empty()) {
            if (m.open_tag != open_tag_) {
                m.open_compat = m.tag_compatible("", open_tag_);
                m.open_tag = open_tag_;
            }
            extra_owned = m.open_compat;
            with_ws = pending_.size() < kMaxLeadingSpace;
        } else {
            extra_owned = m.tag_compatible(head, open_tag_);
        }
        extra = &extra_owned;
    }
    auto bits = allowed();
    std::vector<float> keep;
    if (with_ws)
        for (int32_t t : m.ws_only)
            if (static_cast<size_t>(t) < logits.size()) keep.push_back(logits[size_t(t)]);
    if (extra)
        for (int32_t t : *extra)
            if (static_cast<size_t>(t) < logits.size()) keep.push_back(logits[size_t(t)]);
    const size_t n = logits.size();
    if (n != static_cast<size_t>(c_->impl().n_vocab))
        throw Error("GrammarMatcher: got " + std::to_string(n) + " logits for a vocabulary of " + std::to_string(c_->impl().n_vocab));
    constexpr float ninf = -std::numeric_limits<float>::infinity();
    float* l = logits.data();
    for (size_t w = 0; w < bits.size(); ++w) {
        const uint64_t word = bits[w];
        if (word == ~uint64_t(0)) continue;
        const size_t base = w * 64, end = std::min(n, base + 64);
        if (word == 0) {
            std::fill(l + base, l + end, ninf);
            continue;
        }
        for (size_t i = base; i < end; ++i)
            if (!((word >> (i - base)) & 1)) l[i] = ninf;
    }
    size_t k = 0;
    if (with_ws)
        for (int32_t t : m.ws_only)
            if (static_cast<size_t>(t) < logits.size()) l[size_t(t)] = keep[k++];
    if (extra)
        for (int32_t t : *extra)
            if (static_cast<size_t>(t) < logits.size()) l[size_t(t)] = keep[k++];
}

bool GrammarMatcher::accept_text(std::string_view text) {
    auto& m = c_->impl();
    std::lock_guard<std::mutex> lock(m.mu);
    uint32_t s = state_, pd = pend_;
    for (char ch : text)
        if (!m.byte_step(s, pd, static_cast<uint8_t>(ch))) return false;
    state_ = s;
    pend_ = pd;
    return true;
}

bool GrammarMatcher::accept(int32_t token) {
    auto& m = c_->impl();
    if (token < 0 || token >= m.n_vocab) return false;
    if (!active_) {
        pending_ += m.vocab->token_to_piece(token, true);
        const size_t at = pending_.find(start_after_);
        if (at == std::string::npos) {
            if (!open_tag_.empty()) {
                // not thinking after all: the reply is the answer, held to the grammar from its start
                const size_t first = pending_.find_first_not_of(" \t\r\n");
                if (first != std::string::npos) {
                    const std::string_view head = std::string_view(pending_).substr(first);
                    const bool may_open = head.size() < open_tag_.size() ? open_tag_.compare(0, head.size(), head) == 0
                                                                         : head.compare(0, open_tag_.size(), open_tag_) == 0;
                    if (!may_open) {
                        active_ = true;
                        std::string text(head);
                        pending_.clear();
                        return accept_text(text);
                    }
                }
            }
            return true;
        }
        active_ = true;
        skip_ws_ = true;
        std::string rest = pending_.substr(at + start_after_.size());
        pending_.clear();
        const size_t first = rest.find_first_not_of(" \t\r\n");
        if (first == std::string::npos) return true;
        skip_ws_ = false;
        return accept_text(rest.substr(first));
    }
    if (skip_ws_) {
        const std::string piece = m.vocab->token_to_piece(token, false);
        const size_t first = piece.find_first_not_of(" \t\r\n");
        if (first == std::string::npos && !m.vocab->is_eog(token)) {
            pending_ += piece;  // counts the whitespace allowed before the answer
            return true;
        }
        skip_ws_ = false;
        pending_.clear();
        if (first != std::string::npos && first > 0) return accept_text(std::string_view(piece).substr(first));
    }
    if (m.vocab->is_eog(token)) return can_end();
    const std::string& piece = m.pieces[size_t(token)];
    if (piece.empty()) return false;
    return accept_text(piece);
}

bool GrammarMatcher::can_end() const {
    if (!active_) return false;
    auto& m = c_->impl();
    std::lock_guard<std::mutex> lock(m.mu);
    return m.can_end(state_, pend_);
}

bool GrammarMatcher::must_end() const {
    if (!active_) return false;
    auto& m = c_->impl();
    std::lock_guard<std::mutex> lock(m.mu);
    return m.must_end(state_, pend_);
}

}  // namespace minerva
