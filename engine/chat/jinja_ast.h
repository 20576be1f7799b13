// jinja_ast.h: the syntax tree shared by jinja_parse.cpp and jinja_eval.cpp.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja.h"

namespace minerva::jinja {

struct Node;
using NodePtr = std::shared_ptr<Node>;

// One node type for statements and expressions; what kids/s/names mean depends on kind.
struct Node {
    enum class Kind {
        // statements
        Block,        // kids: statements in order
        Text,         // s: literal text
        Output,       // kids[0]: expression
        If,           // kids: cond0, body0, cond1, body1, ..., [nullptr, else_body]
        For,          // names: targets; kids: iterable, filter cond|null, body, else body|null
        Set,          // kids[0]: target (Name, Attr, Tuple), kids[1]: value
        SetBlock,     // kids[0]: target, kids[1]: body
        Macro,        // s: name; kwargs: parameters with defaults|null; kids[0]: body
        FilterBlock,  // s: filter; kids[0]: body, kids[1..]: args; kwargs
        Break,
        Continue,
        // expressions
        Literal,  // value
        Name,     // s
        List,     // kids: items
        Tuple,    // kids: items
        Dict,     // kids: key0, value0, key1, value1, ...
        Attr,     // kids[0]: object; s: attribute
        Index,    // kids[0]: object, kids[1]: key
        Slice,    // kids[0]: object, kids[1..3]: start, stop, step (each may be null)
        Call,     // kids[0]: callee, kids[1..]: args; kwargs
        Filter,   // s: name; kids[0]: input, kids[1..]: args; kwargs
        Test,     // s: name; kids[0]: input, kids[1..]: args; flag: negated ("is not")
        Unary,    // s: "-" or "+"; kids[0]
        Binary,   // s: operator; kids[0], kids[1]
        And,
        Or,
        Not,   // kids[0]
        Cond,  // kids: cond, then, else|null
    };
    Kind kind = Kind::Block;
    int line = 0;
    std::string s;
    Value value;
    bool flag = false;
    std::vector<NodePtr> kids;
    std::vector<std::string> names;
    std::vector<std::pair<std::string, NodePtr>> kwargs;
};

NodePtr parse(std::string_view source, const Options& opts);

}  // namespace minerva::jinja
