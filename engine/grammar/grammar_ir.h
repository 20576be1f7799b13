// grammar/grammar_ir.h: the compiled form of a GBNF grammar, shared by the parser (gbnf.cpp) and
// the matcher (matcher.cpp). Rules are lists of alternatives; every alternative is a run of
// elements in one flat array ending in END, so a position in the grammar is one index.
// Groups and repetitions are lowered to extra rules by the parser (X* -> R ::= X R | "").
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "minerva/grammar.h"

namespace minerva {

struct GrammarElem {
    enum Kind : uint8_t { END, CHARS, REF };
    Kind kind = END;
    uint32_t arg = 0;  // CHARS: index into classes; REF: rule index
};

// A set of code points: sorted, merged, inclusive ranges, possibly negated.
struct CharClass {
    bool negated = false;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    bool matches(uint32_t cp) const {
        bool in = false;
        for (auto& [lo, hi] : ranges)
            if (cp >= lo && cp <= hi) {
                in = true;
                break;
            }
        return in != negated;
    }
    // Some code point in [lo, hi] is in the set.
    bool intersects(uint32_t lo, uint32_t hi) const {
        if (!negated) {
            for (auto& [a, b] : ranges)
                if (a <= hi && b >= lo) return true;
            return false;
        }
        // negated: [lo, hi] is not fully covered by the (sorted, merged) ranges
        uint32_t next = lo;
        for (auto& [a, b] : ranges) {
            if (b < next) continue;
            if (a > next) return true;
            if (b >= hi) return false;
            next = b + 1;
        }
        return next <= hi;
    }
};

struct Grammar::Impl {
    std::string source;
    std::vector<std::string> rule_names;
    std::vector<std::vector<uint32_t>> rule_alts;  // per rule: start position of each alternative in elems
    std::vector<GrammarElem> elems;
    std::vector<CharClass> classes;
    uint32_t start_rule = 0;
};

}  // namespace minerva
