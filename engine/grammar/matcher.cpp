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
// A new state inside a run of one character class (string content, digits, indentation; each
// count of a bounded repetition is a new state) does not walk the trie: tokens are split at bind
// into their leading run of the class and the rest, so only the rest is checked (see
// mask_by_runs), and a new count costs tens of microseconds instead of a walk of the vocabulary.
#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <iterator>
#include <limits>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "grammar/grammar_ir.h"
#include "minerva/error.h"

namespace minerva {

namespace {

constexpr uint32_t DEAD = 0xFFFFFFFFu;
constexpr uint32_t UNKNOWN = 0xFFFFFFFEu;
constexpr size_t MASK_BUDGET_BYTES = size_t(512) << 20;  // cached masks beyond this are dropped
constexpr size_t FIRST_BYTE_MEMO_TOKENS = size_t(8) << 20;  // token ids remembered per first byte (32 MiB)

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
            bool any = false;  // most bytes match no stack's class: no need to build the empty set
            for (uint32_t s : sets[set])
                if (s != 0 && ((cls_ascii[g->elems[stacks[s].first].arg][b >> 6] >> (b & 63)) & 1)) {
                    any = true;
                    break;
                }
            r = any ? advance(set, b) : empty_set;
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

    std::vector<uint32_t> walk_set, walk_pend;  // scratch of walk()

    // Sets in w the tokens whose whole piece the grammar accepts from (set, pend), by one preorder
    // pass over the trie: a node's state comes from its parent's, and a refused byte skips the
    // node's whole subtree. Subtrees rooted at the nodes of `skip` (sorted) are left out.
    //
    // The tokens allowed below a first byte depend only on the state after that byte (and on what
    // is skipped), and many states share it: after the '.' of an e-mail address, whatever the
    // count before it. So the allowed tokens under each (first byte, state after it, skip class)
    // are remembered, and a walk that meets that pair again copies them instead of walking.
    std::unordered_map<uint64_t, std::vector<int32_t>> first_byte_memo;
    size_t first_byte_memo_size = 0;
    std::vector<int32_t> collect;  // scratch of walk()

    void walk(uint32_t set, uint32_t pend, uint64_t* w, const std::vector<uint32_t>* skip, uint32_t skip_class = DEAD) {
        walk_set.resize(nodes.size());
        walk_pend.resize(nodes.size());
        walk_set[0] = set;
        walk_pend[0] = pend;
        const uint32_t n_nodes = static_cast<uint32_t>(nodes.size());
        size_t k = 0;
        const size_t n_skip = skip ? skip->size() : 0;
        const bool memo = pend == 0 && (skip_class == DEAD || skip_class < 0xFFFF);
        uint64_t key = 0;
        uint32_t sub_end = 0;  // collecting the tokens of the first-byte subtree [.., sub_end)
        auto finish = [&] {
            if (first_byte_memo_size > FIRST_BYTE_MEMO_TOKENS) {
                first_byte_memo.clear();
                first_byte_memo_size = 0;
            }
            first_byte_memo_size += collect.size() + 8;
            first_byte_memo.emplace(key, collect);
            sub_end = 0;
        };
        for (uint32_t i = 1; i < n_nodes;) {
            if (sub_end && i >= sub_end) finish();
            if (k < n_skip) {
                while (k < n_skip && (*skip)[k] < i) ++k;
                if (k < n_skip && (*skip)[k] == i) {
                    i = node_end[i];
                    continue;
                }
            }
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
            if (memo && p == 0) {
                // ASCII: s is the set after the byte; a lead byte: s is still the set before it
                key = (uint64_t(s) << 24) | (uint64_t(skip_class == DEAD ? 0 : skip_class + 1) << 8) | b;
                if (auto it = first_byte_memo.find(key); it != first_byte_memo.end()) {
                    for (int32_t t : it->second) w[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
                    i = node_end[i];
                    continue;
                }
                collect.clear();
                sub_end = node_end[i];
            }
            walk_set[i] = s;
            walk_pend[i] = pd;
            const Node& node = nodes[i];
            for (uint32_t j = 0; j < node.n_toks; ++j) {
                const int32_t t = node_toks[node.first_tok + j];
                w[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
                if (sub_end) collect.push_back(t);
            }
            ++i;
        }
        if (sub_end) finish();
    }

    // ---- Runs of one character class.
    //
    // Inside a bounded repetition (a string's maxLength, digit counts, indentation) every count
    // is its own set, and a walk of the trie from a new set would re-decide most of the vocabulary.
    // Instead, for a character class C, every token is split once (at bind) into its leading run
    // of C characters (length L) and the rest. A set is "C-uniform" when each of its stacks'
    // classes either holds all of C or none of it: then every C character leads to the same next
    // set, so the sets after 0, 1, 2, ... C characters form a chain computed with one character
    // per step. Tokens made only of C characters are then allowed exactly when the chain is
    // still alive at their length (a precomputed bitset per length), tokens with a run of L
    // followed by something else are checked from the chain's L-th set only from the byte after
    // their run (grouped by that byte, so a refused byte drops its whole group with one look-up),
    // and tokens starting with something else are found by the usual trie walk, which skips the
    // subtrees of C characters. Exact: every token is decided by running the grammar over its
    // bytes, only the shared run is run once for all of them.
    struct ClassIndex {
        uint32_t max_len = 0;           // longest leading run over the vocabulary, in characters
        size_t n_lead = 0;              // tokens whose first character is in the class
        std::vector<int32_t> pure;      // tokens made only of class characters, by run length
        std::vector<uint32_t> pure_at;  // pure[pure_at[L], pure_at[L + 1]) have run length L
        std::vector<int32_t> mixed;     // tokens with a run of L >= 1, then a byte that is not, by (L, byte)
        std::vector<uint32_t> mixed_off;  // per mixed token: where its run ends (bytes)
        std::vector<uint32_t> mixed_sfx;  // per mixed token: id of its text after the run (equal texts, equal ids)
        // per suffix id: the set it was last checked from (DEAD: never) and the result; the same
        // tail from the same set always gives the same answer
        std::vector<uint32_t> sfx_base;
        std::vector<uint8_t> sfx_ok;
        struct Group {
            uint8_t byte;
            uint32_t begin, end;  // into mixed
        };
        std::vector<Group> groups;
        std::vector<uint32_t> groups_at;  // groups of run length L: groups[groups_at[L], groups_at[L + 1])
        std::vector<uint8_t> tail_in;     // per mixed token: what follows its run is the start of a character of the class
        std::vector<int32_t> partial;     // tokens that are only the start of a character of the class
        std::vector<uint32_t> skip;       // trie nodes whose path is one character of the class, or the start of one
        std::unordered_map<uint32_t, std::shared_ptr<const std::vector<uint64_t>>> upto;  // pure tokens of length 1..L
    };
    std::vector<ClassIndex> cidx;                              // per grammar class
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> cls_cps;  // per class: its code points as sorted ranges
    std::vector<uint32_t> cls_rep;                             // per class: one of its code points (DEAD: none)
    std::vector<uint8_t> multi_cp;                             // per class: it holds two code points or more
    std::vector<std::array<uint64_t, 2>> cls_ascii;            // per class: the ASCII characters it holds
    std::vector<uint8_t> cls_rel;                              // [a * n + b]: 0 unknown, 1 a splits b, 2 it does not
    struct CharNode {
        uint32_t node, lo, hi;  // the path is one character (lo == hi) or the start of one, any of lo..hi
        bool operator<(const CharNode& o) const { return node < o.node; }
    };
    std::vector<CharNode> char_nodes;                          // trie nodes whose path is one character or the start of one
    std::vector<int32_t> trie_tokens;                          // tokens with a piece, in trie order
    std::vector<uint32_t> chain;                               // scratch of mask_by_runs()

    static std::vector<std::pair<uint32_t, uint32_t>> code_points(const CharClass& c) {
        auto r = c.ranges;
        std::sort(r.begin(), r.end());
        std::vector<std::pair<uint32_t, uint32_t>> m;
        for (auto& x : r) {
            if (!m.empty() && x.first <= m.back().second + 1) m.back().second = std::max(m.back().second, x.second);
            else m.push_back(x);
        }
        if (!c.negated) return m;
        std::vector<std::pair<uint32_t, uint32_t>> out;
        uint32_t next = 0;
        for (auto& [lo, hi] : m) {
            if (lo > next) out.emplace_back(next, lo - 1);
            next = std::max(next, hi + 1);
        }
        if (next <= 0x10FFFF) out.emplace_back(next, 0x10FFFF);
        return out;
    }
    // Class a either holds every code point of class b or none of them.
    bool keeps_whole(uint32_t a, uint32_t b) {
        const size_t n = cls_cps.size();
        uint8_t scratch = 0;
        uint8_t& memo = cls_rel.empty() ? scratch : cls_rel[size_t(a) * n + b];
        if (memo) return memo == 2;
        const auto &A = cls_cps[a], &B = cls_cps[b];
        bool contains = true;
        for (auto& [lo, hi] : B) {
            auto it = std::upper_bound(A.begin(), A.end(), std::make_pair(lo, 0xFFFFFFFFu));
            if (it == A.begin() || std::prev(it)->second < hi) {
                contains = false;
                break;
            }
        }
        bool disjoint = true;
        for (size_t i = 0, j = 0; i < A.size() && j < B.size();) {
            if (A[i].second < B[j].first) ++i;
            else if (B[j].second < A[i].first) ++j;
            else {
                disjoint = false;
                break;
            }
        }
        memo = contains || disjoint ? 2 : 1;
        return memo == 2;
    }
    // Class c holds every code point in lo..hi.
    bool class_holds(uint32_t c, uint32_t lo, uint32_t hi) const {
        const auto& A = cls_cps[c];
        auto it = std::upper_bound(A.begin(), A.end(), std::make_pair(lo, 0xFFFFFFFFu));
        return it != A.begin() && std::prev(it)->second >= hi;
    }
    bool uniform(uint32_t set, uint32_t c) {
        for (uint32_t s : sets[set])
            if (s != 0 && !keeps_whole(g->elems[stacks[s].first].arg, c)) return false;
        return true;
    }
    // The set after one character cp from set (pend 0); DEAD when refused.
    uint32_t step_char(uint32_t set, uint32_t cp) {
        if (cp < 0x80) {
            uint32_t t = trans[size_t(set) * 256 + cp];
            if (t == UNKNOWN) t = row_entry(set, static_cast<uint8_t>(cp));
            return t;
        }
        const uint32_t r = advance(set, cp);
        grow_tables();
        return r == empty_set ? DEAD : r;
    }

    void build_class_index(uint32_t c) {
        ClassIndex& X = cidx[c];
        const CharClass& cls = g->classes[c];
        const auto& ascii = cls_ascii[c];
        std::vector<std::pair<uint32_t, int32_t>> pure;
        struct Mixed {
            uint32_t len;
            uint8_t byte;
            int32_t tok;
            uint32_t off;
            bool tail_in;
        };
        std::vector<Mixed> mixed;
        for (int32_t t : trie_tokens) {
            const std::string& p = pieces[size_t(t)];
            size_t i = 0;
            uint32_t len = 0;
            while (i < p.size()) {
                const auto b0 = static_cast<uint8_t>(p[i]);
                if (b0 < 0x80) {
                    if (!((ascii[b0 >> 6] >> (b0 & 63)) & 1)) break;
                    ++i, ++len;
                    continue;
                }
                uint32_t bytes[4] = {b0, 0, 0, 0}, lo, hi, total, total2;
                if (!utf8_range(bytes, 1, lo, hi, total) || i + total > p.size()) break;
                for (uint32_t k = 1; k < total; ++k) bytes[k] = static_cast<uint8_t>(p[i + k]);
                if (!utf8_range(bytes, total, lo, hi, total2) || !cls.matches(lo)) break;
                i += total, ++len;
            }
            // the rest, when it is only the start of a character that the class holds entirely
            bool tail_in = false;
            if (i < p.size() && static_cast<uint8_t>(p[i]) >= 0x80 && p.size() - i < 4) {
                uint32_t bytes[4] = {0, 0, 0, 0}, lo, hi, total;
                const uint32_t n = static_cast<uint32_t>(p.size() - i);
                for (uint32_t k = 0; k < n; ++k) bytes[k] = static_cast<uint8_t>(p[i + k]);
                tail_in = utf8_range(bytes, n, lo, hi, total) && n < total && class_holds(c, lo, hi);
            }
            if (len == 0) {
                if (tail_in) X.partial.push_back(t);
                continue;
            }
            X.max_len = std::max(X.max_len, len);
            if (i == p.size()) pure.emplace_back(len, t);
            else mixed.push_back({len, static_cast<uint8_t>(p[i]), t, static_cast<uint32_t>(i), tail_in});
        }
        X.n_lead = pure.size() + mixed.size();
        std::sort(pure.begin(), pure.end());
        X.pure_at.assign(X.max_len + 2, 0);
        for (auto& [len, t] : pure) {
            X.pure.push_back(t);
            ++X.pure_at[len + 1];
        }
        for (uint32_t L = 1; L < X.pure_at.size(); ++L) X.pure_at[L] += X.pure_at[L - 1];
        std::sort(mixed.begin(), mixed.end(), [](const Mixed& a, const Mixed& b) {
            return a.len != b.len ? a.len < b.len : a.byte != b.byte ? a.byte < b.byte : a.tok < b.tok;
        });
        X.groups_at.assign(X.max_len + 2, 0);
        std::unordered_map<std::string_view, uint32_t> sfx_ids;
        for (size_t i = 0; i < mixed.size(); ++i) {
            X.mixed.push_back(mixed[i].tok);
            X.mixed_off.push_back(mixed[i].off);
            X.tail_in.push_back(mixed[i].tail_in);
            const std::string_view sfx = std::string_view(pieces[size_t(mixed[i].tok)]).substr(mixed[i].off);
            X.mixed_sfx.push_back(sfx_ids.try_emplace(sfx, static_cast<uint32_t>(sfx_ids.size())).first->second);
            if (i == 0 || mixed[i].len != mixed[i - 1].len || mixed[i].byte != mixed[i - 1].byte) {
                X.groups.push_back({mixed[i].byte, static_cast<uint32_t>(i), static_cast<uint32_t>(i)});
                ++X.groups_at[mixed[i].len + 1];
            }
            X.groups.back().end = static_cast<uint32_t>(i + 1);
        }
        for (uint32_t L = 1; L < X.groups_at.size(); ++L) X.groups_at[L] += X.groups_at[L - 1];
        X.sfx_base.assign(sfx_ids.size(), DEAD);
        X.sfx_ok.assign(sfx_ids.size(), 0);
        for (const CharNode& cn : char_nodes)
            if (class_holds(c, cn.lo, cn.hi)) X.skip.push_back(cn.node);
        // Below a skipped node: the character's start alone (in `partial` or a mixed tail), a
        // whole character of the class (a run of 1 or more), or an invalid byte (never allowed).
        std::sort(X.skip.begin(), X.skip.end());
    }

    // Paths from the root of the trie that are exactly one valid character.
    void find_char_nodes(uint32_t node, uint32_t* bytes, uint32_t n) {
        if (n >= 4) return;  // a character has at most 4 bytes
        const Node& nd = nodes[node];
        for (uint32_t e = nd.first_edge; e < nd.first_edge + nd.n_edges; ++e) {
            bytes[n] = edge_byte[e];
            uint32_t lo, hi, total;
            if (!utf8_range(bytes, n + 1, lo, hi, total)) continue;
            char_nodes.push_back({edge_child[e], lo, hi});
            if (n + 1 < total) find_char_nodes(edge_child[e], bytes, n + 1);
        }
    }

    // The tokens of pure run length 1..L as a bitset (cached per length).
    const std::vector<uint64_t>& pure_upto(ClassIndex& X, uint32_t L) {
        auto& slot = X.upto[L];
        if (!slot) {
            // From nothing, adding tokens of length <= L, or from all of them, removing the
            // longer ones (long tokens are few): whichever touches fewer tokens.
            const uint32_t n_up = X.pure_at[L + 1] - X.pure_at[1], n_down = X.pure_at[X.max_len + 1] - X.pure_at[L + 1];
            std::shared_ptr<std::vector<uint64_t>> bits;
            if (n_down < n_up && L < X.max_len) {
                bits = std::make_shared<std::vector<uint64_t>>(pure_upto(X, X.max_len));
                for (uint32_t i = X.pure_at[L + 1]; i < X.pure_at[X.max_len + 1]; ++i) {
                    const int32_t t = X.pure[i];
                    (*bits)[size_t(t) >> 6] &= ~(uint64_t(1) << (t & 63));
                }
            } else {
                bits = std::make_shared<std::vector<uint64_t>>(n_words, 0);
                for (uint32_t i = X.pure_at[1]; i < X.pure_at[L + 1]; ++i) {
                    const int32_t t = X.pure[i];
                    (*bits)[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
                }
            }
            X.upto[L] = bits;  // (not slot: the recursive call may have rehashed the map)
        }
        return *X.upto[L];
    }

    // The mask of a set (pend 0) through runs of one class; false when no class of the set's
    // stacks makes it uniform, or the chain stops being uniform (the caller walks the trie then).
    bool mask_by_runs(uint32_t set, uint64_t* w) {
        uint32_t best = DEAD;
        size_t best_n = 0;
        for (uint32_t s : sets[set]) {
            if (s == 0) continue;
            const uint32_t c = g->elems[stacks[s].first].arg;
            // A class of one character has no runs worth sharing (its mixed tokens are checked
            // one by one, without the trie's shared prefixes): the walk does better there.
            if (!multi_cp[c] || cidx[c].n_lead <= best_n || !uniform(set, c)) continue;
            best = c;
            best_n = cidx[c].n_lead;
        }
        if (best == DEAD) return false;
        ClassIndex& X = cidx[best];
        // chain[L]: the set after L class characters, for L = 0 .. r (all alive)
        chain.assign(1, set);
        bool died = false, looped = false;
        for (uint32_t L = 0; L < X.max_len; ++L) {
            const uint32_t cur = chain.back();
            if (L > 0 && !uniform(cur, best)) return false;
            const uint32_t nx = step_char(cur, cls_rep[best]);
            if (nx == DEAD) {
                died = true;
                break;
            }
            if (nx == cur) {  // a loop: every longer run stays here
                chain.resize(X.max_len + 1, cur);
                looped = true;
                break;
            }
            chain.push_back(nx);
        }
        const uint32_t r = static_cast<uint32_t>(chain.size() - 1);
        // Whether the set after L class characters takes one more (some stack's class holds the
        // class): then the start of any character of the class is allowed there too.
        bool more_at_r = looped;
        if (!died && !looped) {
            if (!uniform(chain[r], best)) return false;
            more_at_r = step_char(chain[r], cls_rep[best]) != DEAD;
        }
        auto takes_more = [&](uint32_t L) { return L < r || more_at_r; };
        if (takes_more(0))
            for (int32_t t : X.partial) w[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
        if (r >= 1) {
            const auto& pu = pure_upto(X, r);
            for (size_t i = 0; i < n_words; ++i) w[i] |= pu[i];
        }
        for (uint32_t L = 1; L <= r; ++L) {
            const uint32_t base = chain[L];
            for (uint32_t gi = X.groups_at[L]; gi < X.groups_at[L + 1]; ++gi) {
                const ClassIndex::Group& grp = X.groups[gi];
                uint32_t t0 = trans[size_t(base) * 256 + grp.byte];
                if (t0 == UNKNOWN) t0 = row_entry(base, grp.byte);
                if (t0 == DEAD) continue;
                const bool more = takes_more(L);
                // A tail's fate depends only on the set after its first byte: for an ASCII byte
                // that is t0 (the same for every count of the run before it), else base.
                const uint32_t from = grp.byte < 0x80 ? t0 : base;
                for (uint32_t m = grp.begin; m < grp.end; ++m) {
                    const int32_t tok = X.mixed[m];
                    if (X.tail_in[m]) {
                        if (more) w[size_t(tok) >> 6] |= uint64_t(1) << (tok & 63);
                        continue;
                    }
                    const uint32_t id = X.mixed_sfx[m];
                    if (X.sfx_base[id] != from) {  // many tokens share a tail ('",')
                        const std::string& p = pieces[size_t(tok)];
                        uint32_t s = from, pd = grp.byte < 0x80 ? 0 : (1u << 24) | grp.byte;
                        bool ok = true;
                        for (size_t i = X.mixed_off[m] + 1; ok && i < p.size(); ++i) ok = byte_step(s, pd, static_cast<uint8_t>(p[i]));
                        X.sfx_base[id] = from;
                        X.sfx_ok[id] = ok;
                    }
                    if (X.sfx_ok[id]) w[size_t(tok) >> 6] |= uint64_t(1) << (tok & 63);
                }
            }
        }
        walk(set, 0, w, &X.skip, best);
        return true;
    }

    std::shared_ptr<const std::vector<uint64_t>> mask(uint32_t set, uint32_t pend) {
        if (pend == 0 && masks[set]) return masks[set];
        const uint64_t pkey = (uint64_t(set) << 32) | pend;
        if (pend != 0)
            if (auto it = partial_masks.find(pkey); it != partial_masks.end()) return it->second;
        auto bits = std::make_shared<std::vector<uint64_t>>(n_words, 0);
        uint64_t* w = bits->data();
        if (can_end(set, pend))
            for (int32_t t : eog) w[size_t(t) >> 6] |= uint64_t(1) << (t & 63);
        if (pend != 0 || !mask_by_runs(set, w)) walk(set, pend, w, nullptr);
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
    m.trie_tokens = std::move(order);

    // Per class: its code points, one representative, its ASCII members; the class indexes.
    const size_t n_cls = m.g->classes.size();
    m.cls_cps.resize(n_cls);
    m.cls_rep.assign(n_cls, DEAD);
    m.cls_ascii.assign(n_cls, {0, 0});
    if (n_cls <= 2048) m.cls_rel.assign(n_cls * n_cls, 0);  // memo of keeps_whole (at most 4 MiB)
    for (size_t c = 0; c < n_cls; ++c) {
        m.cls_cps[c] = Impl::code_points(m.g->classes[c]);
        for (auto& [lo, hi] : m.cls_cps[c]) {
            for (uint32_t b = lo; b <= hi && b < 0x80; ++b) m.cls_ascii[c][b >> 6] |= uint64_t(1) << (b & 63);
            if (m.cls_rep[c] == DEAD) {
                const uint32_t cp = lo >= 0xD800 && lo <= 0xDFFF ? 0xE000 : lo;
                if (cp <= hi) m.cls_rep[c] = cp;
            }
        }
    }
    uint32_t bytes[4];
    m.find_char_nodes(0, bytes, 0);
    std::sort(m.char_nodes.begin(), m.char_nodes.end());
    m.cidx.resize(n_cls);
    m.multi_cp.assign(n_cls, 0);
    for (size_t c = 0; c < n_cls; ++c) {
        uint64_t n = 0;
        for (auto& [lo, hi] : m.cls_cps[c]) n += hi - lo + 1;
        m.multi_cp[c] = m.cls_rep[c] != DEAD && n >= 2;
        if (m.multi_cp[c]) m.build_class_index(static_cast<uint32_t>(c));
    }

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
        uint64_t banned = ~word;
        if (end - base < 64) banned &= (uint64_t(1) << (end - base)) - 1;
        if (std::popcount(banned) <= 16) {  // few banned: visit just those
            for (; banned; banned &= banned - 1) l[base + static_cast<size_t>(std::countr_zero(banned))] = ninf;
            continue;
        }
        for (size_t i = base; i < end; ++i) l[i] = ((word >> (i - base)) & 1) ? l[i] : ninf;  // branch-free
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
