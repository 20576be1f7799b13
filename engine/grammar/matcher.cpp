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
    std::vector<std::string> pieces;  // per token; "" = never grammar text
    std::vector<int32_t> eog;         // end-of-generation tokens

    std::mutex mu;
    // Stacks: (position of the next element, parent stack). Stack 0 is empty: the grammar is complete.
    std::vector<std::pair<uint32_t, uint32_t>> stacks{{0u, 0u}};
    std::unordered_map<uint64_t, uint32_t> stack_ids;
    std::vector<std::vector<uint32_t>> sets;  // sorted stack ids
    std::unordered_map<std::vector<uint32_t>, uint32_t, VecHash> set_ids;
    std::unordered_map<uint64_t, uint32_t> cp_memo;  // (set, code point) -> set
    struct BState {
        uint32_t set;
        uint32_t pend;  // bytes of an unfinished UTF-8 character: count << 24 | bytes
    };
    std::vector<BState> bstates;
    std::unordered_map<uint64_t, uint32_t> bstate_ids;
    std::vector<uint32_t> trans;  // [bstate * 256 + byte] -> bstate, DEAD or UNKNOWN
    std::vector<std::shared_ptr<const std::vector<uint64_t>>> masks;
    size_t mask_bytes = 0;
    uint32_t initial = 0;
    uint32_t empty_set = 0;

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
    uint32_t bstate(uint32_t set, uint32_t pend) {
        const uint64_t key = (uint64_t(set) << 32) | pend;
        auto [it, fresh] = bstate_ids.try_emplace(key, static_cast<uint32_t>(bstates.size()));
        if (fresh) {
            bstates.push_back({set, pend});
            trans.resize(bstates.size() * 256, UNKNOWN);
            masks.emplace_back();
        }
        return it->second;
    }
    bool feasible(uint32_t set, uint32_t lo, uint32_t hi) const {
        for (uint32_t s : sets[set])
            if (s != 0 && g->classes[g->elems[stacks[s].first].arg].intersects(lo, hi)) return true;
        return false;
    }
    uint32_t step_uncached(uint32_t bs, uint8_t b) {
        const BState st = bstates[bs];
        const uint32_t len = st.pend >> 24;
        uint32_t bytes[4];
        for (uint32_t i = 0; i < len; ++i) bytes[i] = (st.pend >> (8 * (len - 1 - i))) & 0xFF;
        if (len == 0 && b < 0x80) {
            const uint32_t ns = advance(st.set, b);
            return ns == empty_set ? DEAD : bstate(ns, 0);
        }
        if (len > 0 && (b & 0xC0) != 0x80) return DEAD;
        bytes[len] = b;
        const uint32_t lead = bytes[0];
        const uint32_t total = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
        if (total == 0) return DEAD;
        uint32_t v = lead & (total == 2 ? 0x1Fu : total == 3 ? 0x0Fu : 0x07u);
        for (uint32_t i = 1; i <= len; ++i) v = (v << 6) | (bytes[i] & 0x3F);
        const uint32_t rest = total - (len + 1);
        uint32_t lo = v << (6 * rest), hi = lo | ((1u << (6 * rest)) - 1);
        lo = std::max(lo, total == 2 ? 0x80u : total == 3 ? 0x800u : 0x10000u);
        hi = std::min(hi, 0x10FFFFu);
        if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return DEAD;
        if (rest == 0) {
            const uint32_t ns = advance(st.set, v);
            return ns == empty_set ? DEAD : bstate(ns, 0);
        }
        if (!feasible(st.set, lo, hi)) return DEAD;
        uint32_t pend = 0;
        for (uint32_t i = 0; i <= len; ++i) pend = (pend << 8) | bytes[i];
        return bstate(st.set, ((len + 1) << 24) | pend);
    }
    uint32_t step(uint32_t bs, uint8_t b) {
        uint32_t& t = trans[size_t(bs) * 256 + b];
        if (t == UNKNOWN) {
            const uint32_t r = step_uncached(bs, b);
            trans[size_t(bs) * 256 + b] = r;  // trans may have grown: index again
            return r;
        }
        return t;
    }
    bool can_end(uint32_t bs) const {
        const BState& st = bstates[bs];
        return st.pend == 0 && !sets[st.set].empty() && sets[st.set][0] == 0;
    }
    bool must_end(uint32_t bs) const {
        const BState& st = bstates[bs];
        return st.pend == 0 && sets[st.set].size() == 1 && sets[st.set][0] == 0;
    }

    std::shared_ptr<const std::vector<uint64_t>> mask(uint32_t bs) {
        if (masks[bs]) return masks[bs];
        auto bits = std::make_shared<std::vector<uint64_t>>(n_words, 0);
        auto set_bit = [&](int32_t t) { (*bits)[size_t(t) >> 6] |= uint64_t(1) << (t & 63); };
        if (can_end(bs))
            for (int32_t t : eog) set_bit(t);
        std::vector<std::pair<uint32_t, uint32_t>> todo{{0u, bs}};
        while (!todo.empty()) {
            auto [n, s] = todo.back();
            todo.pop_back();
            const Node& node = nodes[n];
            for (uint32_t e = node.first_edge; e < node.first_edge + node.n_edges; ++e) {
                const uint32_t ns = step(s, edge_byte[e]);
                if (ns == DEAD) continue;
                const Node& child = nodes[edge_child[e]];
                for (uint32_t k = 0; k < child.n_toks; ++k) set_bit(node_toks[child.first_tok + k]);
                if (child.n_edges) todo.emplace_back(edge_child[e], ns);
            }
        }
        if (mask_bytes > MASK_BUDGET_BYTES) {
            for (auto& m : masks) m.reset();
            mask_bytes = 0;
        }
        mask_bytes += n_words * 8;
        masks[bs] = bits;
        return bits;
    }

    // Builds trie nodes for the tokens order[lo, hi), which share their first `depth` bytes.
    uint32_t build(const std::vector<int32_t>& order, size_t lo, size_t hi, size_t depth) {
        const uint32_t id = static_cast<uint32_t>(nodes.size());
        nodes.emplace_back();
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
            const uint32_t child = build(order, groups[k].first, groups[k].second, depth + 1);
            edge_child[first + k] = child;
        }
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
    m.initial = m.bstate(m.set_id(start), 0);
    return c;
}

GrammarConstraint::~GrammarConstraint() = default;
const Grammar& GrammarConstraint::grammar() const { return *impl_->grammar; }
const Vocab& GrammarConstraint::vocab() const { return *impl_->vocab; }

GrammarMatcher::GrammarMatcher(std::shared_ptr<GrammarConstraint> constraint, std::string start_after)
    : c_(std::move(constraint)), start_after_(std::move(start_after)) {
    if (!c_) throw Error("GrammarMatcher: no constraint");
    reset();
}

void GrammarMatcher::reset() {
    active_ = start_after_.empty();
    pending_.clear();
    state_ = c_->impl().initial;
    mask_.reset();
    mask_state_ = DEAD;
}

std::span<const uint64_t> GrammarMatcher::allowed() {
    if (mask_state_ != state_ || !mask_) {
        auto& m = c_->impl();
        std::lock_guard<std::mutex> lock(m.mu);
        mask_ = m.mask(state_);
        mask_state_ = state_;
    }
    return *mask_;
}

void GrammarMatcher::apply(std::span<float> logits) {
    if (!active_) return;
    auto bits = allowed();
    const size_t n = logits.size();
    if (n != static_cast<size_t>(c_->impl().n_vocab))
        throw Error("GrammarMatcher: got " + std::to_string(n) + " logits for a vocabulary of " + std::to_string(c_->impl().n_vocab));
    constexpr float ninf = -std::numeric_limits<float>::infinity();
    for (size_t w = 0; w < bits.size(); ++w) {
        const uint64_t word = bits[w];
        if (word == ~uint64_t(0)) continue;
        const size_t base = w * 64, end = std::min(n, base + 64);
        if (word == 0) {
            std::fill(logits.begin() + static_cast<ptrdiff_t>(base), logits.begin() + static_cast<ptrdiff_t>(end), ninf);
            continue;
        }
        for (size_t i = base; i < end; ++i)
            if (!((word >> (i - base)) & 1)) logits[i] = ninf;
    }
}

bool GrammarMatcher::accept_text(std::string_view text) {
    auto& m = c_->impl();
    std::lock_guard<std::mutex> lock(m.mu);
    uint32_t s = state_;
    for (char ch : text) {
        s = m.step(s, static_cast<uint8_t>(ch));
        if (s == DEAD) return false;
    }
    state_ = s;
    return true;
}

bool GrammarMatcher::accept(int32_t token) {
    auto& m = c_->impl();
    if (token < 0 || token >= m.n_vocab) return false;
    if (!active_) {
        pending_ += m.vocab->token_to_piece(token, true);
        const size_t at = pending_.find(start_after_);
        if (at == std::string::npos) return true;
        active_ = true;
        std::string rest = pending_.substr(at + start_after_.size());
        pending_.clear();
        rest.erase(0, rest.find_first_not_of(" \t\r\n") == std::string::npos ? rest.size() : rest.find_first_not_of(" \t\r\n"));
        return accept_text(rest);
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
    return m.can_end(state_);
}

bool GrammarMatcher::must_end() const {
    if (!active_) return false;
    auto& m = c_->impl();
    std::lock_guard<std::mutex> lock(m.mu);
    return m.must_end(state_);
}

}  // namespace minerva
