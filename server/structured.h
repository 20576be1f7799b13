// structured.h: the request fields that constrain what the model writes: response_format
// (text, json_object, json_schema) and grammar (GBNF, an extension). Compiled constraints are
// cached per vocabulary and grammar text, so repeated schemas reuse their token masks.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <nlohmann/json.hpp>

#include "minerva/grammar.h"
#include "minerva/vocab.h"

namespace minerva::serve {

// The constraint the request asks for, or null for free text. ApiError 400 naming the field
// (response_format.type, response_format.json_schema.schema, grammar, ...) for anything it
// cannot honour, including an unsupported JSON Schema keyword.
std::shared_ptr<GrammarConstraint> parse_structured(const nlohmann::json& body, const std::shared_ptr<const Vocab>& vocab);

// A compiled constraint for GBNF text, from the cache when the same text was seen for this
// vocabulary. Throws minerva::Error for a bad grammar.
std::shared_ptr<GrammarConstraint> cached_constraint(const std::string& gbnf, const std::shared_ptr<const Vocab>& vocab);

}  // namespace minerva::serve
