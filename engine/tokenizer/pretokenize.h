// pretokenize.h (internal): the split rules that run before byte-level BPE, chosen by the GGUF
// key tokenizer.ggml.pre.
//
// A pre-tokenizer is a sequence of regexes. The first splits the whole text; each following one
// splits every piece the previous step produced. A regex splits a piece into its matches and the
// unmatched gaps between them, keeping both (nothing is dropped), and sees only that piece: its
// end is the end of the subject for `$` and lookaheads. The regexes are compiled by PCRE2 in UTF +
// UCP mode (with JIT). `\s` and `\S` are rewritten to one explicit whitespace class so that every
// rule agrees with the reference tokenizer on what whitespace is (PCRE2's own `\s` misses U+0085).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace minerva {

struct PreTokenizerRules {
    std::string name;                  // canonical name of the rule set, e.g. "llama3"
    std::vector<std::string> regexes;  // applied one after another
    bool ignore_merges = false;        // a whole piece that is a token is emitted as it is
    bool add_bos = false;              // default for add_bos_token when the file does not say
};

// The rules for a tokenizer.ggml.pre value; nullptr when the name is unknown.
const PreTokenizerRules* find_pre_tokenizer_rules(std::string_view pre);
// Every name find_pre_tokenizer_rules() knows (aliases included).
std::vector<std::string> known_pre_tokenizer_names();

class PreTokenizer {
public:
    // Compiles the rules. Throws Error when a regex does not compile.
    explicit PreTokenizer(const PreTokenizerRules& rules);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    const PreTokenizerRules& rules() const { return rules_; }
    // Appends the pieces of `text` (views into it, in order, covering it exactly) to `out`.
    // Safe to call from many threads at once.
    void split(std::string_view text, std::vector<std::string_view>& out) const;

private:
    struct Compiled;
    PreTokenizerRules rules_;
    std::vector<std::unique_ptr<Compiled>> compiled_;
};

// The PCRE2 pattern a rule regex becomes (whitespace classes made explicit); for tests.
std::string pcre2_pattern_for(std::string_view regex);

}  // namespace minerva
