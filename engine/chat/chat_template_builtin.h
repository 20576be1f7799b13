// chat_template_builtin.h: the table of built-in chat templates (chat_template_builtin.cpp).
#pragma once
#include <string_view>
#include <vector>

namespace minerva::chat_builtin {

struct Builtin {
    std::string_view name;
    std::string_view description;
    std::string_view source;
};

const std::vector<Builtin>& all();

}  // namespace minerva::chat_builtin
