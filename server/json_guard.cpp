// json_guard.cpp: see json_guard.h.
#include "json_guard.h"

#include <nlohmann/json.hpp>
#include <string>

#include "models.h"

namespace minerva::serve {

void check_json_depth(std::string_view text, size_t max_depth) {
    size_t depth = 0;
    bool in_string = false;
    for (size_t k = 0; k < text.size(); ++k) {
        char ch = text[k];
        if (in_string) {
            if (ch == '\\') ++k;
            else if (ch == '"') in_string = false;
            continue;
        }
        if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max_depth)
                throw ApiError(400, "The request body nests arrays/objects deeper than " + std::to_string(max_depth) + " levels", "",
                               "invalid_json");
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            --depth;
        }
    }
}

bool is_token_id(const nlohmann::json& v, int n_tokens) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() < static_cast<uint64_t>(n_tokens);
    if (v.is_number_integer()) {
        int64_t x = v.get<int64_t>();
        return x >= 0 && x < n_tokens;
    }
    return false;
}

}  // namespace minerva::serve
