// grammar/json_schema.h: JSON Schema -> GBNF rules for use inside a larger grammar (tool calls).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace minerva {

// The grammar of values valid against schema as GBNF rules whose names all start with prefix;
// the start rule is PREFIXroot. Throws Error naming an unsupported keyword.
std::string json_schema_rules(const nlohmann::json& schema, const std::string& prefix);

}  // namespace minerva
