// grammar/gbnf.cpp: GBNF text -> Grammar::Impl. A recursive-descent parser; groups and
// repetitions become synthesized rules named after the rule they appear in ("value_3"), so
// errors about them still point at something the author wrote. Newlines are whitespace: a rule
// ends where the next `name ::=` starts.
#include <algorithm>
#include <functional>
#include <map>
#include <string>

#include "grammar/grammar_ir.h"
#include "minerva/error.h"

namespace minerva {

namespace {

using Seq = std::vector<GrammarElem>;

class Parser {
public:
    explicit Parser(std::string_view src) : s_(src) {}

    std::unique_ptr<Grammar::Impl> run(std::string_view start) {
        skip_space();
        while (pos_ < s_.size()) {
            size_t name_at = pos_;
            std::string name = parse_name();
            skip_space();
            if (s_.substr(pos_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
            pos_ += 3;
            uint32_t r = rule_index(name);
            if (defined_[r]) fail_at(name_at, "rule '" + name + "' is defined twice");
            defined_[r] = true;
            current_ = name;
            rules_[r] = parse_alternatives(false);
            skip_space();
        }
        for (size_t r = 0; r < names_.size(); ++r)
            if (!defined_[r]) fail_at(first_use_[r], "rule '" + names_[r] + "' is used but never defined");
        auto it = std::find(names_.begin(), names_.end(), std::string(start));
        if (it == names_.end() || !defined_[static_cast<size_t>(it - names_.begin())])
            throw Error("grammar: no start rule '" + std::string(start) + "' (define `" + std::string(start) + " ::= ...`)");
        auto g = std::make_unique<Grammar::Impl>();
        g->source = std::string(s_);
        g->start_rule = static_cast<uint32_t>(it - names_.begin());
        g->rule_names = names_;
        g->classes = classes_;
        g->rule_alts.resize(rules_.size());
        for (size_t r = 0; r < rules_.size(); ++r)
            for (const Seq& alt : rules_[r]) {
                g->rule_alts[r].push_back(static_cast<uint32_t>(g->elems.size()));
                g->elems.insert(g->elems.end(), alt.begin(), alt.end());
                g->elems.push_back({GrammarElem::END, 0});
            }
        check_left_recursion(*g);
        return g;
    }

private:
    std::string_view s_;
    size_t pos_ = 0;
    std::vector<std::string> names_;
    std::vector<std::vector<Seq>> rules_;
    std::vector<bool> defined_;
    std::vector<size_t> first_use_;
    std::vector<CharClass> classes_;
    std::map<std::pair<bool, std::vector<std::pair<uint32_t, uint32_t>>>, uint32_t> class_ids_;
    std::string current_;
    int n_synth_ = 0;

    [[noreturn]] void fail_at(size_t at, const std::string& msg) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < s_.size(); ++i) {
            if (s_[i] == '\n') ++line, col = 1;
            else ++col;
        }
        throw Error("grammar: line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + msg);
    }
    [[noreturn]] void fail(const std::string& msg) const { fail_at(pos_, msg); }

    void skip_space() {
        while (pos_ < s_.size()) {
            char c = s_[pos_];
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') ++pos_;
            else if (c == '#') {
                while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
            } else break;
        }
    }
    static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }
    std::string parse_name() {
        size_t b = pos_;
        while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
        if (b == pos_) fail(pos_ < s_.size() ? std::string("unexpected '") + s_[pos_] + "'" : "unexpected end of grammar");
        return std::string(s_.substr(b, pos_ - b));
    }
    uint32_t rule_index(const std::string& name) {
        auto it = std::find(names_.begin(), names_.end(), name);
        if (it != names_.end()) return static_cast<uint32_t>(it - names_.begin());
        names_.push_back(name);
        rules_.emplace_back();
        defined_.push_back(false);
        first_use_.push_back(pos_);
        return static_cast<uint32_t>(names_.size() - 1);
    }
    uint32_t new_rule(std::vector<Seq> alts) {
        std::string name = current_ + "_" + std::to_string(++n_synth_);
        uint32_t r = rule_index(name);
        defined_[r] = true;
        rules_[r] = std::move(alts);
        return r;
    }
    uint32_t class_id(CharClass c) {
        auto& rs = c.ranges;
        std::sort(rs.begin(), rs.end());
        std::vector<std::pair<uint32_t, uint32_t>> merged;
        for (auto& r : rs) {
            if (!merged.empty() && r.first <= merged.back().second + 1) merged.back().second = std::max(merged.back().second, r.second);
            else merged.push_back(r);
        }
        auto key = std::make_pair(c.negated, merged);
        auto it = class_ids_.find(key);
        if (it != class_ids_.end()) return it->second;
        c.ranges = merged;
        classes_.push_back(c);
        return class_ids_[key] = static_cast<uint32_t>(classes_.size() - 1);
    }
    GrammarElem char_elem(uint32_t lo, uint32_t hi, bool negated = false) {
        CharClass c;
        c.negated = negated;
        c.ranges.push_back({lo, hi});
        return {GrammarElem::CHARS, class_id(c)};
    }

    // One UTF-8 code point of the source (literals and classes may hold any text).
    uint32_t read_utf8() {
        auto b = static_cast<unsigned char>(s_[pos_]);
        int n = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
        if (n < 0) fail("invalid UTF-8 in grammar");
        uint32_t cp = n == 0 ? b : n == 1 ? (b & 0x1Fu) : n == 2 ? (b & 0x0Fu) : (b & 0x07u);
        ++pos_;
        for (int i = 0; i < n; ++i, ++pos_) {
            if (pos_ >= s_.size() || (static_cast<unsigned char>(s_[pos_]) & 0xC0) != 0x80) fail("invalid UTF-8 in grammar");
            cp = (cp << 6) | (static_cast<unsigned char>(s_[pos_]) & 0x3Fu);
        }
        return cp;
    }
    uint32_t hex(int digits) {
        uint32_t v = 0;
        for (int i = 0; i < digits; ++i, ++pos_) {
            if (pos_ >= s_.size()) fail("unfinished escape");
            char c = s_[pos_];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) fail("expected a hex digit in escape");
            v = v * 16 + static_cast<uint32_t>(d);
        }
        if (v > 0x10FFFF) fail("escape beyond U+10FFFF");
        return v;
    }
    // A character of a literal or class, escapes resolved.
    uint32_t read_char() {
        if (pos_ >= s_.size()) fail("unexpected end of grammar inside a literal or class");
        if (s_[pos_] != '\\') return read_utf8();
        ++pos_;
        if (pos_ >= s_.size()) fail("unfinished escape");
        char c = s_[pos_++];
        switch (c) {
            case 'n': return '\n';
            case 't': return '\t';
            case 'r': return '\r';
            case '0': return 0;
            case '\\': case '"': case '\'': case ']': case '[': case '-': case '^': case '/': return static_cast<uint32_t>(c);
            case 'x': return hex(2);
            case 'u': return hex(4);
            case 'U': return hex(8);
            default: fail_at(pos_ - 2, std::string("unknown escape '\\") + c + "'");
        }
    }

    std::vector<Seq> parse_alternatives(bool nested) {
        std::vector<Seq> alts;
        alts.push_back(parse_sequence(nested));
        while (pos_ < s_.size() && s_[pos_] == '|') {
            ++pos_;
            alts.push_back(parse_sequence(nested));
        }
        return alts;
    }

    // Is the text at pos_ the start of the next rule (`name ::=`)?
    bool at_rule_start() {
        size_t save = pos_;
        if (pos_ >= s_.size() || !name_char(s_[pos_])) return false;
        while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
        skip_space();
        bool yes = s_.substr(pos_, 3) == "::=";
        pos_ = save;
        return yes;
    }

    Seq parse_sequence(bool nested) {
        Seq seq;
        for (;;) {
            skip_space();
            if (pos_ >= s_.size()) break;
            char c = s_[pos_];
            if (c == '|') break;
            if (c == ')') {
                if (!nested) fail("unmatched ')'");
                break;
            }
            if (!nested && at_rule_start()) break;
            size_t last_start = seq.size();
            if (c == '"') {
                ++pos_;
                while (pos_ < s_.size() && s_[pos_] != '"') {
                    uint32_t cp = read_char();
                    seq.push_back(char_elem(cp, cp));
                }
                if (pos_ >= s_.size()) fail("unterminated literal");
                ++pos_;
                if (seq.size() == last_start) {  // "" : an empty literal matches nothing, repeats of it too
                    skip_space();
                    if (pos_ < s_.size() && (s_[pos_] == '*' || s_[pos_] == '+' || s_[pos_] == '?' || s_[pos_] == '{'))
                        fail("a repetition of an empty literal");
                    continue;
                }
                if (seq.size() - last_start > 1) {
                    // A multi-character literal is one unit for a following repetition.
                    if (peek_repetition()) {
                        Seq lit(seq.begin() + static_cast<ptrdiff_t>(last_start), seq.end());
                        seq.resize(last_start);
                        seq.push_back({GrammarElem::REF, new_rule({lit})});
                    }
                }
            } else if (c == '[') {
                ++pos_;
                CharClass cls;
                if (pos_ < s_.size() && s_[pos_] == '^') cls.negated = true, ++pos_;
                while (pos_ < s_.size() && s_[pos_] != ']') {
                    uint32_t lo = read_char(), hi = lo;
                    if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
                        ++pos_;
                        hi = read_char();
                        if (hi < lo) fail("character range is backwards");
                    }
                    cls.ranges.push_back({lo, hi});
                }
                if (pos_ >= s_.size()) fail("unterminated character class");
                ++pos_;
                if (cls.ranges.empty() && !cls.negated) fail("empty character class");
                seq.push_back({GrammarElem::CHARS, class_id(cls)});
            } else if (c == '.') {
                ++pos_;
                seq.push_back(char_elem(0, 0x10FFFF));
            } else if (c == '(') {
                ++pos_;
                auto alts = parse_alternatives(true);
                skip_space();
                if (pos_ >= s_.size() || s_[pos_] != ')') fail("expected ')'");
                ++pos_;
                seq.push_back({GrammarElem::REF, new_rule(std::move(alts))});
            } else if (name_char(c)) {
                std::string name = parse_name();
                seq.push_back({GrammarElem::REF, rule_index(name)});
            } else {
                fail(std::string("unexpected '") + c + "'");
            }
            parse_repetitions(seq);
        }
        return seq;
    }

    bool peek_repetition() {
        size_t save = pos_;
        skip_space();
        bool yes = pos_ < s_.size() && (s_[pos_] == '*' || s_[pos_] == '+' || s_[pos_] == '?' || s_[pos_] == '{');
        pos_ = save;
        return yes;
    }

    int read_int() {
        size_t b = pos_;
        long v = 0;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
            v = v * 10 + (s_[pos_++] - '0');
            if (v > 10000) fail("repetition count above 10000");
        }
        if (b == pos_) fail("expected a number in {m,n}");
        return static_cast<int>(v);
    }

    // Applies postfix operators to the last element of seq.
    void parse_repetitions(Seq& seq) {
        for (;;) {
            size_t save = pos_;
            skip_space();
            if (pos_ >= s_.size()) return;
            char c = s_[pos_];
            int lo, hi;  // hi < 0: unbounded
            if (c == '*') lo = 0, hi = -1, ++pos_;
            else if (c == '+') lo = 1, hi = -1, ++pos_;
            else if (c == '?') lo = 0, hi = 1, ++pos_;
            else if (c == '{') {
                ++pos_;
                skip_space();
                lo = read_int();
                skip_space();
                hi = lo;
                if (pos_ < s_.size() && s_[pos_] == ',') {
                    ++pos_;
                    skip_space();
                    hi = (pos_ < s_.size() && s_[pos_] == '}') ? -1 : read_int();
                    skip_space();
                }
                if (pos_ >= s_.size() || s_[pos_] != '}') fail("expected '}'");
                ++pos_;
                if (hi >= 0 && hi < lo) fail("repetition {m,n} with n < m");
            } else {
                pos_ = save;
                return;
            }
            GrammarElem x = seq.back();
            seq.pop_back();
            for (int i = 0; i < lo; ++i) seq.push_back(x);
            if (hi < 0) {
                // R ::= X R | ""   (right recursion: the matcher's tail calls keep its stack flat)
                uint32_t r = new_rule({});
                rules_[r] = {Seq{x, {GrammarElem::REF, r}}, Seq{}};
                seq.push_back({GrammarElem::REF, r});
            } else if (hi > lo) {
                // X{0,k} nested: R_k ::= X R_{k-1} | ""
                int64_t inner = -1;
                for (int i = 0; i < hi - lo; ++i) {
                    Seq first{x};
                    if (inner >= 0) first.push_back({GrammarElem::REF, static_cast<uint32_t>(inner)});
                    inner = new_rule({first, Seq{}});
                }
                seq.push_back({GrammarElem::REF, static_cast<uint32_t>(inner)});
            }
        }
    }

    // A rule that can reach itself without consuming a character would send the top-down
    // matcher into an endless loop: reject it here, naming the rule.
    static void check_left_recursion(const Grammar::Impl& g) {
        const size_t n = g.rule_alts.size();
        std::vector<bool> nullable(n, false);
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r) {
                if (nullable[r]) continue;
                for (uint32_t a : g.rule_alts[r]) {
                    bool all = true;
                    for (uint32_t p = a; g.elems[p].kind != GrammarElem::END; ++p)
                        if (g.elems[p].kind == GrammarElem::CHARS || !nullable[g.elems[p].arg]) {
                            all = false;
                            break;
                        }
                    if (all) {
                        nullable[r] = changed = true;
                        break;
                    }
                }
            }
        }
        std::vector<std::vector<uint32_t>> first(n);  // rules reachable before any character
        for (size_t r = 0; r < n; ++r)
            for (uint32_t a : g.rule_alts[r])
                for (uint32_t p = a; g.elems[p].kind == GrammarElem::REF; ++p) {
                    first[r].push_back(g.elems[p].arg);
                    if (!nullable[g.elems[p].arg]) break;
                }
        std::vector<int> color(n, 0);
        std::function<void(uint32_t)> dfs = [&](uint32_t r) {
            color[r] = 1;
            for (uint32_t q : first[r]) {
                if (color[q] == 1)
                    throw Error("grammar: rule '" + g.rule_names[q] +
                                "' is left-recursive (it can reach itself before matching a character; a repetition of "
                                "something that can be empty does this too)");
                if (color[q] == 0) dfs(q);
            }
            color[r] = 2;
        };
        for (uint32_t r = 0; r < n; ++r)
            if (color[r] == 0) dfs(r);
    }
};

}  // namespace

Grammar::~Grammar() = default;

const std::string& Grammar::source() const { return impl_->source; }

std::shared_ptr<const Grammar> Grammar::parse(std::string_view gbnf, std::string_view start_rule) {
    std::shared_ptr<Grammar> g(new Grammar());
    g->impl_ = Parser(gbnf).run(start_rule);
    return g;
}

std::shared_ptr<const Grammar> Grammar::from_json_schema(std::string_view schema_json) {
    return parse(json_schema_to_gbnf(schema_json));
}

std::shared_ptr<const Grammar> Grammar::json_object() { return from_json_schema(R"({"type":"object"})"); }

}  // namespace minerva
