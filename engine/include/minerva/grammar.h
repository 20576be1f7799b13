// minerva/grammar.h: grammar-constrained decoding. A GBNF grammar (the text format llama.cpp
// users know) or a JSON Schema is compiled once into a Grammar; bound to a vocabulary it becomes
// a GrammarConstraint, which a Sampler uses to mask every token whose text the grammar cannot
// continue with. Generated text then always parses.
//
//   auto g = minerva::Grammar::from_json_schema(R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})");
//   auto c = minerva::GrammarConstraint::create(g, model->vocab());
//   minerva::GenerateParams params;
//   params.sampling.grammar = c;      // generate() stops with finish_reason "stop" when the grammar completes
//
// GBNF: `name ::= alternatives` rules (the start rule is `root`), `|` alternation, `( )` groups,
// postfix `* + ? {m} {m,} {m,n}`, "literals" and [character classes] ([^...] negated, ranges,
// escapes \n \t \r \\ \" \] \xHH \uHHHH \UHHHHHHHH), `.` any character, `#` comments. Text is
// matched as UTF-8 code points; a token may end inside a character when that character can
// still be completed.
//
// Speed: the constraint keeps, per grammar state, the set of allowed tokens, so a step in a state
// seen before costs a cache look-up and a pass over the logits. A new state is found by a walk of
// a byte trie of the vocabulary, except inside runs of one character class (string content,
// digits, indentation: every count of a bounded repetition is a new state), where each token's
// leading run of the class was measured at bind and only what follows it is checked. States and
// masks are shared by every stream using the same constraint.
//
// Thread-safety: Grammar is immutable. GrammarConstraint may be shared by many threads (its
// caches are behind a mutex). GrammarMatcher is one stream's position and is used by one thread.
#pragma once
#include "minerva/export.h"
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/vocab.h"

namespace minerva {

class MINERVA_API Grammar {
public:
    // Parses GBNF text. Throws Error naming the line and column of a syntax error, an undefined
    // rule, a missing start rule, or left recursion (which a top-down matcher cannot run).
    static std::shared_ptr<const Grammar> parse(std::string_view gbnf, std::string_view start_rule = "root");
    // JSON Schema (a JSON text) -> grammar for JSON values that validate against it; see
    // json_schema_to_gbnf for what is supported. Throws Error naming an unsupported keyword.
    static std::shared_ptr<const Grammar> from_json_schema(std::string_view schema_json);
    // Any JSON object (OpenAI's response_format {"type": "json_object"}).
    static std::shared_ptr<const Grammar> json_object();

    ~Grammar();
    const std::string& source() const;  // the GBNF it was parsed from
    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    Grammar() = default;
    std::unique_ptr<Impl> impl_;
};

// JSON Schema -> GBNF. Supported: type (object, array, string, number, integer, boolean, null and
// lists of them), properties, required, additionalProperties, items, prefixItems, minItems,
// maxItems, minLength, maxLength, pattern (regex subset: literals, ., [classes], \d \w \s \D \W \S,
// groups, |, * + ? {m,n}, ^ and $ at the ends), format (date, time, date-time, uuid, email),
// enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, oneOf, allOf (of
// object schemas), $ref to #, #/$defs/NAME or #/definitions/NAME, nullable. Annotations (title,
// description, default, examples, $schema, $id, $comment, deprecated, readOnly, writeOnly) are
// ignored. Any other keyword throws Error("... unsupported JSON Schema keyword 'K' at PATH").
// oneOf is enforced, not approximated by anyOf: it compiles only when no value can match two
// of its branches, provably (their types do not overlap, e.g. string vs integer, with number
// overlapping integer; or both are const/enum without a common value; or both are objects
// with a property both require whose const/enum values differ, a discriminator). Other oneOf
// schemas throw Error naming 'oneOf' and the two branches; anyOf accepts any branch.
// Whitespace between tokens is bounded: one space, or a newline and at most 16 spaces. Objects with declared properties
// get exactly those (required ones always, optional ones may be left out), in declared order.
MINERVA_API std::string json_schema_to_gbnf(std::string_view schema_json);

class MINERVA_API GrammarConstraint {
public:
    // Binds a grammar to a vocabulary: builds the byte trie of the token pieces. Control tokens
    // never match grammar text; end-of-generation tokens are allowed exactly when the grammar
    // is complete. Also splits every token at each character class of the grammar (see Speed
    // above). Costs 0.1-0.3 s for a 128k-152k vocabulary.
    static std::shared_ptr<GrammarConstraint> create(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const Vocab> vocab);
    ~GrammarConstraint();
    const Grammar& grammar() const;
    const Vocab& vocab() const;
    struct Impl;
    Impl& impl() const { return *impl_; }

private:
    GrammarConstraint() = default;
    std::unique_ptr<Impl> impl_;
};

// One stream's position in a grammar.
class MINERVA_API GrammarMatcher {
public:
    // With start_after (e.g. "</think>"), the constraint is off until the generated text contains
    // that string; what follows it (leading whitespace dropped) is matched against the grammar.
    // With open_tag too (e.g. "<think>"), the wait happens only when the text starts with
    // open_tag: a reply whose first characters cannot begin it is held to the grammar at once.
    explicit GrammarMatcher(std::shared_ptr<GrammarConstraint> constraint, std::string start_after = {}, std::string open_tag = {});

    // Sets the logits of every token the grammar does not allow to -inf.
    void apply(std::span<float> logits);
    // The allowed tokens of the current state as a bitset over the vocabulary (bit i of word i/64).
    std::span<const uint64_t> allowed();
    // Advances by a sampled token. Returns false (state unchanged) when the grammar does not allow it.
    bool accept(int32_t token);
    // Advances by text; false (state unchanged) when the grammar does not allow it.
    bool accept_text(std::string_view text);
    bool active() const { return active_; }  // false while waiting for start_after
    bool can_end() const;     // the text so far is a complete sentence of the grammar
    bool must_end() const;    // complete, and no further text is allowed
    void reset();

private:
    std::shared_ptr<GrammarConstraint> c_;
    std::string start_after_, open_tag_;
    std::string pending_;  // generated text while waiting for start_after
    bool active_ = true;
    bool skip_ws_ = false;  // just after start_after: whitespace-only tokens pass before the answer
    uint32_t state_ = 0, pend_ = 0;                     // set of parse stacks, bytes of an unfinished character
    uint32_t mask_state_ = 0, mask_pend_ = 0;           // the state mask_ belongs to
    std::shared_ptr<const std::vector<uint64_t>> mask_;  // kept alive while in use
};

}  // namespace minerva
