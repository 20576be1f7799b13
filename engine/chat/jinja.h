// jinja.h: a Jinja2 subset, large enough for the chat templates shipped in GGUF files
// (tokenizer.chat_template). Internal to the engine; the public face is minerva/chat.h.
//
// Supported: {{ }}, {% if/elif/else %}, {% for a[, b] in x [if c] %} with loop.* and {% else %},
// {% set %} (names, namespace attributes, tuples, blocks), {% macro %}, break/continue, comments,
// whitespace control ({%- -%}, trim_blocks and lstrip_blocks as Hugging Face enables them),
// literals, operators (+ - * / // % ** ~, comparisons, and/or/not, in, is tests, a if c else b),
// indexing, slicing, attribute access, string/dict methods, the common filters and tests.
// Semantics follow Python/Jinja2: str() of True is "True", + of str and int is an error,
// tojson is json.dumps (", " and ": " separators), for-loops scope their own {% set %}.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace minerva::jinja {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like a Python dict
using KwArgs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(std::vector<Value>& args, KwArgs& kwargs)>;

struct Value {
    enum class Type { Undefined, None, Bool, Int, Float, String, Array, Object, Function };
    Type type = Type::Undefined;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;                  // String; for Undefined, the name that was looked up
    std::shared_ptr<jinja::Array> arr;
    std::shared_ptr<jinja::Object> obj;
    std::shared_ptr<jinja::Function> fn;
    bool is_namespace = false;      // an Object created by namespace(): attributes may be set

    Value() = default;
    static Value undefined(std::string name = {});
    static Value none();
    Value(bool v) : type(Type::Bool), b(v) {}
    Value(int v) : type(Type::Int), i(v) {}
    Value(int64_t v) : type(Type::Int), i(v) {}
    Value(double v) : type(Type::Float), f(v) {}
    Value(std::string v) : type(Type::String), s(std::move(v)) {}
    Value(const char* v) : type(Type::String), s(v) {}
    Value(jinja::Array v) : type(Type::Array), arr(std::make_shared<jinja::Array>(std::move(v))) {}
    Value(jinja::Object v) : type(Type::Object), obj(std::make_shared<jinja::Object>(std::move(v))) {}
    static Value function(jinja::Function fn);

    bool is_undefined() const { return type == Type::Undefined; }
    bool is_none() const { return type == Type::None; }
    bool is_string() const { return type == Type::String; }
    bool is_number() const { return type == Type::Int || type == Type::Float; }
    bool truthy() const;
    const Value* find(std::string_view key) const;  // Object member or nullptr
    void set(const std::string& key, Value v);      // Object member (insert or replace)
    std::string str() const;                        // Python str()
    std::string repr() const;                       // Python repr()
};

struct Options {
    bool trim_blocks = true;    // drop the first newline after a block tag (Hugging Face default)
    bool lstrip_blocks = true;  // drop spaces and tabs before a block tag on its line
};

struct Node;

class Template {
public:
    // Parses the source. Throws minerva::Error naming the line and what was expected.
    explicit Template(std::string_view source, const Options& opts = {});
    ~Template();
    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;

    // Renders with the given global variables. Throws minerva::Error (undefined operations,
    // type errors, raise_exception(...)) naming the line.
    std::string render(const Object& globals) const;

private:
    std::shared_ptr<const Node> root_;
};

// json.dumps(value, ensure_ascii=False, indent=indent) as Python writes it.
std::string to_json(const Value& v, int indent = -1);

}  // namespace minerva::jinja
