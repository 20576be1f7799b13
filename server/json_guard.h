// json_guard.h: checks on request JSON before anything walks it recursively (nlohmann's parser
// is iterative, but copying, comparing or dumping a value recurses once per nesting level, so
// 100k levels would overflow the stack).
#pragma once
#include <cstddef>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace minerva::serve {

constexpr size_t kMaxJsonDepth = 64;

// ApiError 400 (code invalid_json) when arrays/objects nest deeper than max_depth anywhere in
// the text. Linear, no recursion; strings (and escapes in them) are skipped.
void check_json_depth(std::string_view text, size_t max_depth = kMaxJsonDepth);

// True when v is an integer that is a valid token id of a vocabulary of n_tokens entries (no
// truncation: 4294967297 is not token 1).
bool is_token_id(const nlohmann::json& v, int n_tokens);

}  // namespace minerva::serve
