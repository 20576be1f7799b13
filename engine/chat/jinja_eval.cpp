// jinja_eval.cpp: values, filters, tests, methods and the tree-walking renderer of the Jinja
// subset (see jinja.h). Errors are minerva::Error naming the template line.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

#include "jinja_ast.h"
#include "minerva/error.h"

namespace minerva::jinja {

// ---- Value -----------------------------------------------------------------------------------

Value Value::undefined(std::string name) {
    Value v;
    v.s = std::move(name);
    return v;
}

Value Value::none() {
    Value v;
    v.type = Type::None;
    return v;
}

Value Value::function(jinja::Function fn) {
    Value v;
    v.type = Type::Function;
    v.fn = std::make_shared<jinja::Function>(std::move(fn));
    return v;
}

bool Value::truthy() const {
    switch (type) {
        case Type::Undefined:
        case Type::None: return false;
        case Type::Bool: return b;
        case Type::Int: return i != 0;
        case Type::Float: return f != 0;
        case Type::String: return !s.empty();
        case Type::Array: return !arr->empty();
        case Type::Object: return !obj->empty();
        case Type::Function: return true;
    }
    return false;
}

const Value* Value::find(std::string_view key) const {
    if (type != Type::Object) return nullptr;
    for (auto& [k, v] : *obj)
        if (k == key) return &v;
    return nullptr;
}

void Value::set(const std::string& key, Value v) {
    for (auto& [k, old] : *obj)
        if (k == key) {
            old = std::move(v);
            return;
        }
    obj->emplace_back(key, std::move(v));
}

static std::string float_repr(double f) {
    if (std::isnan(f)) return "nan";
    if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, f);
    std::string s(buf, r.ptr);
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    return s;
}

static std::string str_repr(const std::string& s) {
    char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
        if (c == q || c == '\\') out += '\\', out += c;
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else out += c;
    }
    return out + q;
}

std::string Value::str() const {
    switch (type) {
        case Type::Undefined: return "";
        case Type::None: return "None";
        case Type::Bool: return b ? "True" : "False";
        case Type::Int: return std::to_string(i);
        case Type::Float: return float_repr(f);
        case Type::String: return s;
        default: return repr();
    }
}

std::string Value::repr() const {
    switch (type) {
        case Type::String: return str_repr(s);
        case Type::Array: {
            std::string out = "[";
            for (size_t k = 0; k < arr->size(); ++k) out += (k ? ", " : "") + (*arr)[k].repr();
            return out + "]";
        }
        case Type::Object: {
            if (is_namespace) return "<Namespace>";
            std::string out = "{";
            bool first = true;
            for (auto& [k, v] : *obj) {
                out += (first ? "" : ", ") + str_repr(k) + ": " + v.repr();
                first = false;
            }
            return out + "}";
        }
        case Type::Function: return "<function>";
        default: return str();
    }
}

static void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

static void json_dump(std::string& out, const Value& v, int indent, int depth) {
    auto newline = [&](int d) {
        out += '\n';
        out.append(static_cast<size_t>(indent * d), ' ');
    };
    switch (v.type) {
        case Value::Type::Undefined: throw Error("tojson: cannot serialise an undefined value '" + v.s + "'");
        case Value::Type::None: out += "null"; break;
        case Value::Type::Bool: out += v.b ? "true" : "false"; break;
        case Value::Type::Int: out += std::to_string(v.i); break;
        case Value::Type::Float:
            out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : float_repr(v.f);
            break;
        case Value::Type::String: json_string(out, v.s); break;
        case Value::Type::Function: throw Error("tojson: cannot serialise a function");
        case Value::Type::Array: {
            if (v.arr->empty()) {
                out += "[]";
                break;
            }
            out += '[';
            for (size_t k = 0; k < v.arr->size(); ++k) {
                if (k) out += indent >= 0 ? "," : ", ";
                if (indent >= 0) newline(depth + 1);
                json_dump(out, (*v.arr)[k], indent, depth + 1);
            }
            if (indent >= 0) newline(depth);
            out += ']';
            break;
        }
        case Value::Type::Object: {
            if (v.obj->empty()) {
                out += "{}";
                break;
            }
            out += '{';
            bool first = true;
            for (auto& [k, x] : *v.obj) {
                if (!first) out += indent >= 0 ? "," : ", ";
                first = false;
                if (indent >= 0) newline(depth + 1);
                json_string(out, k);
                out += ": ";
                json_dump(out, x, indent, depth + 1);
            }
            if (indent >= 0) newline(depth);
            out += '}';
            break;
        }
    }
}

std::string to_json(const Value& v, int indent) {
    std::string out;
    json_dump(out, v, indent, 0);
    return out;
}

// ---- renderer --------------------------------------------------------------------------------

namespace {

[[noreturn]] void fail(int line, const std::string& msg) {
    throw Error("chat template line " + std::to_string(line) + ": " + msg);
}

const char* type_name(const Value& v) {
    switch (v.type) {
        case Value::Type::Undefined: return "undefined";
        case Value::Type::None: return "none";
        case Value::Type::Bool: return "bool";
        case Value::Type::Int: return "int";
        case Value::Type::Float: return "float";
        case Value::Type::String: return "string";
        case Value::Type::Array: return "list";
        case Value::Type::Object: return "dict";
        case Value::Type::Function: return "function";
    }
    return "?";
}

double num(const Value& v) {
    if (v.type == Value::Type::Float) return v.f;
    if (v.type == Value::Type::Bool) return v.b;
    return static_cast<double>(v.i);
}
bool numeric(const Value& v) { return v.is_number() || v.type == Value::Type::Bool; }

bool equal(const Value& a, const Value& b) {
    if (numeric(a) && numeric(b)) {
        if (a.type == Value::Type::Int && b.type == Value::Type::Int) return a.i == b.i;
        return num(a) == num(b);
    }
    if (a.type != b.type) return false;
    switch (a.type) {
        case Value::Type::Undefined:
        case Value::Type::None: return true;
        case Value::Type::String: return a.s == b.s;
        case Value::Type::Array:
            if (a.arr->size() != b.arr->size()) return false;
            for (size_t k = 0; k < a.arr->size(); ++k)
                if (!equal((*a.arr)[k], (*b.arr)[k])) return false;
            return true;
        case Value::Type::Object:
            if (a.obj == b.obj) return true;
            if (a.obj->size() != b.obj->size()) return false;
            for (auto& [k, v] : *a.obj) {
                const Value* w = b.find(k);
                if (!w || !equal(v, *w)) return false;
            }
            return true;
        default: return a.fn == b.fn;
    }
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string strip(const std::string& s, bool left, bool right, const std::string* chars = nullptr) {
    auto in_set = [&](char c) { return chars ? chars->find(c) != std::string::npos : is_space(c); };
    size_t a = 0, b = s.size();
    if (left)
        while (a < b && in_set(s[a])) ++a;
    if (right)
        while (b > a && in_set(s[b - 1])) --b;
    return s.substr(a, b - a);
}

std::string to_upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
std::string to_lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
std::string title(const std::string& s) {
    std::string out = s;
    bool start = true;
    for (char& c : out) {
        unsigned char u = static_cast<unsigned char>(c);
        if (std::isalpha(u)) {
            c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
            start = false;
        } else {
            start = !(u >= 0x80);  // bytes of non-ASCII letters do not start words
        }
    }
    return out;
}
std::string capitalize(const std::string& s) {
    std::string out = to_lower(s);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
}
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count = -1) {
    if (from.empty()) return s;
    std::string out;
    size_t pos = 0;
    while (count != 0) {
        size_t p = s.find(from, pos);
        if (p == std::string::npos) break;
        out.append(s, pos, p - pos);
        out += to;
        pos = p + from.size();
        if (count > 0) --count;
    }
    return out + s.substr(pos);
}

Value split(const std::string& s, const Value* sep, int64_t maxsplit) {
    Array parts;
    if (!sep || sep->is_none()) {  // Python: runs of whitespace, no empty parts
        size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && is_space(s[i])) ++i;
            if (i >= s.size()) break;
            if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
                parts.emplace_back(strip(s.substr(i), false, true));
                break;
            }
            size_t j = i;
            while (j < s.size() && !is_space(s[j])) ++j;
            parts.emplace_back(s.substr(i, j - i));
            i = j;
        }
        return Value(std::move(parts));
    }
    if (!sep->is_string() || sep->s.empty()) throw Error("split: the separator must be a non-empty string");
    size_t pos = 0;
    while (true) {
        size_t p = s.find(sep->s, pos);
        if (p == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit)) break;
        parts.emplace_back(s.substr(pos, p - pos));
        pos = p + sep->s.size();
    }
    parts.emplace_back(s.substr(pos));
    return Value(std::move(parts));
}

// A for-loop's or a call's local variables, innermost last; globals below them all.
struct Scope {
    const Object* globals;
    std::vector<Object> frames;

    const Value* lookup(const std::string& name) const {
        for (auto f = frames.rbegin(); f != frames.rend(); ++f)
            for (auto& [k, v] : *f)
                if (k == name) return &v;
        for (auto& [k, v] : *globals)
            if (k == name) return &v;
        return nullptr;
    }
    void assign(const std::string& name, Value v) {
        for (auto& [k, old] : frames.back())
            if (k == name) {
                old = std::move(v);
                return;
            }
        frames.back().emplace_back(name, std::move(v));
    }
};

enum class Flow { Normal, Break, Continue };

class Renderer {
public:
    explicit Renderer(const Object& globals) { scope_.globals = &globals; scope_.frames.emplace_back(); }

    void exec(const Node& n, std::string& out) {
        if (exec_node(n, out) != Flow::Normal) fail(n.line, "'break' or 'continue' outside a loop");
    }

private:
    Scope scope_;
    int depth_ = 0;
    int64_t iterations_ = 0;  // loop iterations so far: a runaway template is an Error, not a hang

    struct DepthGuard {
        int& d;
        DepthGuard(int& d_, int line) : d(d_) {
            if (++d > 200) fail(line, "nesting too deep (recursive macro?)");
        }
        ~DepthGuard() { --d; }
    };

    Flow exec_node(const Node& n, std::string& out) {
        using K = Node::Kind;
        switch (n.kind) {
            case K::Block:
                for (auto& k : n.kids)
                    if (Flow f = exec_node(*k, out); f != Flow::Normal) return f;
                return Flow::Normal;
            case K::Text: out += n.s; return Flow::Normal;
            case K::Output: {
                Value v = eval(*n.kids[0]);
                out += v.str();
                return Flow::Normal;
            }
            case K::If:
                for (size_t k = 0; k + 1 < n.kids.size(); k += 2)
                    if (!n.kids[k] || eval(*n.kids[k]).truthy()) return exec_node(*n.kids[k + 1], out);
                return Flow::Normal;
            case K::For: return exec_for(n, out);
            case K::Set: assign(*n.kids[0], eval(*n.kids[1]), n.line); return Flow::Normal;
            case K::SetBlock: {
                std::string body;
                exec(*n.kids[1], body);
                assign(*n.kids[0], Value(body), n.line);
                return Flow::Normal;
            }
            case K::Macro: define_macro(n); return Flow::Normal;
            case K::FilterBlock: {
                std::string body;
                exec(*n.kids[0], body);
                std::vector<Value> args{Value(body)};
                for (size_t k = 1; k < n.kids.size(); ++k) args.push_back(eval(*n.kids[k]));
                KwArgs kw = eval_kwargs(n);
                out += apply_filter(n.s, args, kw, n.line).str();
                return Flow::Normal;
            }
            case K::Break: return Flow::Break;
            case K::Continue: return Flow::Continue;
            default: fail(n.line, "expression used as a statement");
        }
    }

    void assign(const Node& target, Value v, int line) {
        if (target.kind == Node::Kind::Name) {
            scope_.assign(target.s, std::move(v));
        } else if (target.kind == Node::Kind::Attr) {
            const Value* ns = scope_.lookup(target.kids[0]->s);
            if (!ns || !ns->is_namespace)
                fail(line, "cannot set '" + target.kids[0]->s + "." + target.s + "': '" + target.kids[0]->s +
                               "' is not a namespace()");
            Value copy = *ns;  // shares the object
            copy.set(target.s, std::move(v));
        } else {  // tuple unpacking
            if (v.type != Value::Type::Array || v.arr->size() != target.kids.size())
                fail(line, "cannot unpack " + std::string(type_name(v)) + " into " + std::to_string(target.kids.size()) +
                               " names");
            for (size_t k = 0; k < target.kids.size(); ++k) scope_.assign(target.kids[k]->s, (*v.arr)[k]);
        }
    }

    Array iterate(const Value& v, int line) {
        switch (v.type) {
            case Value::Type::Undefined:
            case Value::Type::None: return {};
            case Value::Type::Array: return *v.arr;
            case Value::Type::Object: {
                Array keys;
                for (auto& [k, x] : *v.obj) keys.emplace_back(k);
                return keys;
            }
            case Value::Type::String: {
                Array chars;
                for (size_t k = 0; k < v.s.size();) {  // one UTF-8 character at a time
                    size_t len = 1;
                    unsigned char c = static_cast<unsigned char>(v.s[k]);
                    if (c >= 0xF0) len = 4;
                    else if (c >= 0xE0) len = 3;
                    else if (c >= 0xC0) len = 2;
                    chars.emplace_back(v.s.substr(k, len));
                    k += len;
                }
                return chars;
            }
            default: fail(line, std::string("cannot iterate over a ") + type_name(v));
        }
    }

    void bind_targets(const Node& n, const Value& item) {
        if (n.names.size() == 1) {
            scope_.assign(n.names[0], item);
            return;
        }
        if (item.type != Value::Type::Array || item.arr->size() != n.names.size())
            fail(n.line, "cannot unpack " + item.repr() + " into " + std::to_string(n.names.size()) + " loop variables");
        for (size_t k = 0; k < n.names.size(); ++k) scope_.assign(n.names[k], (*item.arr)[k]);
    }

    Flow exec_for(const Node& n, std::string& out) {
        Array items = iterate(eval(*n.kids[0]), n.line);
        if (n.kids[1]) {  // {% for x in xs if cond %}: filter first, so loop.length counts the kept
            Array kept;
            for (auto& item : items) {
                scope_.frames.emplace_back();
                bind_targets(n, item);
                bool keep = eval(*n.kids[1]).truthy();
                scope_.frames.pop_back();
                if (keep) kept.push_back(item);
            }
            items = std::move(kept);
        }
        if (items.empty()) {
            if (n.kids[3]) return exec_node(*n.kids[3], out);
            return Flow::Normal;
        }
        const int64_t len = static_cast<int64_t>(items.size());
        for (int64_t k = 0; k < len; ++k) {
            if (++iterations_ > 10'000'000 || out.size() > (size_t{256} << 20))
                fail(n.line, "the template runs too long (over 10 million loop iterations or 256 MiB of output)");
            Object loop{{"index", Value(k + 1)},
                        {"index0", Value(k)},
                        {"revindex", Value(len - k)},
                        {"revindex0", Value(len - k - 1)},
                        {"first", Value(k == 0)},
                        {"last", Value(k == len - 1)},
                        {"length", Value(len)},
                        {"previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("previtem")},
                        {"nextitem", k + 1 < len ? items[static_cast<size_t>(k + 1)] : Value::undefined("nextitem")}};
            Value loop_v(std::move(loop));
            loop_v.set("cycle", Value::function([k](std::vector<Value>& args, KwArgs&) {
                if (args.empty()) throw Error("loop.cycle() needs at least one value");
                return args[static_cast<size_t>(k) % args.size()];
            }));
            scope_.frames.emplace_back();
            scope_.assign("loop", loop_v);
            bind_targets(n, items[static_cast<size_t>(k)]);
            Flow f;
            try {
                f = exec_node(*n.kids[2], out);
            } catch (...) {
                scope_.frames.pop_back();
                throw;
            }
            scope_.frames.pop_back();
            if (f == Flow::Break) break;
        }
        return Flow::Normal;
    }

    void define_macro(const Node& n) {
        const Node* macro = &n;
        scope_.assign(n.s, Value::function([this, macro](std::vector<Value>& args, KwArgs& kwargs) {
            DepthGuard guard(depth_, macro->line);
            if (args.size() > macro->kwargs.size())
                fail(macro->line, "macro '" + macro->s + "' takes " + std::to_string(macro->kwargs.size()) + " arguments");
            Object locals;
            for (size_t k = 0; k < macro->kwargs.size(); ++k) {
                const auto& [pname, def] = macro->kwargs[k];
                Value v = Value::undefined(pname);
                if (k < args.size()) v = args[k];
                else if (def) v = eval(*def);
                for (auto& [kname, kv] : kwargs)
                    if (kname == pname) v = kv;
                locals.emplace_back(pname, v);
            }
            // a macro sees the globals and its own parameters, not its caller's locals
            std::vector<Object> saved;
            saved.swap(scope_.frames);
            scope_.frames.push_back(saved.front());
            scope_.frames.push_back(std::move(locals));
            std::string out;
            try {
                exec(*macro->kids[0], out);
            } catch (...) {
                scope_.frames.swap(saved);
                throw;
            }
            scope_.frames.swap(saved);
            return Value(out);
        }));
    }

    KwArgs eval_kwargs(const Node& n) {
        KwArgs kw;
        for (auto& [k, e] : n.kwargs) kw.emplace_back(k, eval(*e));
        return kw;
    }

    [[noreturn]] void undefined_error(const Value& v, int line) {
        fail(line, "'" + (v.s.empty() ? std::string("value") : v.s) + "' is undefined");
    }

    Value eval(const Node& n) {
        using K = Node::Kind;
        switch (n.kind) {
            case K::Literal: return n.value;
            case K::Name: {
                if (const Value* v = scope_.lookup(n.s)) return *v;
                return builtin(n.s);
            }
            case K::List:
            case K::Tuple: {
                Array a;
                for (auto& k : n.kids) a.push_back(eval(*k));
                return Value(std::move(a));
            }
            case K::Dict: {
                Value d{Object{}};
                for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
                    Value key = eval(*n.kids[k]);
                    if (!key.is_string()) fail(n.line, "dict keys must be strings");
                    d.set(key.s, eval(*n.kids[k + 1]));
                }
                return d;
            }
            case K::Attr: return get_attr(eval(*n.kids[0]), n.s, n.line, n.kids[0].get());
            case K::Index: return get_item(eval(*n.kids[0]), eval(*n.kids[1]), n.line, n.kids[0].get());
            case K::Slice: return slice(n);
            case K::Call: return call(n);
            case K::Filter: {
                std::vector<Value> args{eval(*n.kids[0])};
                for (size_t k = 1; k < n.kids.size(); ++k) args.push_back(eval(*n.kids[k]));
                KwArgs kw = eval_kwargs(n);
                return apply_filter(n.s, args, kw, n.line);
            }
            case K::Test: {
                std::vector<Value> args{eval(*n.kids[0])};
                for (size_t k = 1; k < n.kids.size(); ++k) args.push_back(eval(*n.kids[k]));
                bool r = apply_test(n.s, args, n.line);
                return Value(n.flag ? !r : r);
            }
            case K::Unary: {
                Value v = eval(*n.kids[0]);
                if (v.is_undefined()) undefined_error(v, n.line);
                if (v.type == Value::Type::Int) return Value(n.s == "-" ? -v.i : v.i);
                if (numeric(v)) return Value(n.s == "-" ? -num(v) : num(v));
                fail(n.line, std::string("bad operand type for unary ") + n.s + ": " + type_name(v));
            }
            case K::Not: return Value(!eval(*n.kids[0]).truthy());
            case K::And: {
                Value a = eval(*n.kids[0]);
                return a.truthy() ? eval(*n.kids[1]) : a;
            }
            case K::Or: {
                Value a = eval(*n.kids[0]);
                return a.truthy() ? a : eval(*n.kids[1]);
            }
            case K::Cond:
                if (eval(*n.kids[0]).truthy()) return eval(*n.kids[1]);
                return n.kids[2] ? eval(*n.kids[2]) : Value::undefined();
            case K::Binary: return binary(n);
            default: fail(n.line, "statement used as an expression");
        }
    }

    Value builtin(const std::string& name) {
        if (name == "range")
            return Value::function([](std::vector<Value>& a, KwArgs&) {
                int64_t start = 0, stop = 0, step = 1;
                for (auto& v : a)
                    if (v.type != Value::Type::Int) throw Error("range() takes integers");
                if (a.size() == 1) stop = a[0].i;
                else if (a.size() >= 2) start = a[0].i, stop = a[1].i;
                if (a.size() == 3) step = a[2].i;
                if (a.empty() || a.size() > 3 || step == 0) throw Error("range() takes 1 to 3 integers, step not 0");
                Array out;
                for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
                    out.emplace_back(k);
                    if (out.size() > 1000000) throw Error("range() too long");
                }
                return Value(std::move(out));
            });
        if (name == "namespace" || name == "dict")
            return Value::function([name](std::vector<Value>& a, KwArgs& kw) {
                Value ns{Object{}};
                ns.is_namespace = name == "namespace";
                for (auto& v : a)
                    if (v.type == Value::Type::Object)
                        for (auto& [k, x] : *v.obj) ns.set(k, x);
                for (auto& [k, x] : kw) ns.set(k, x);
                return ns;
            });
        if (name == "raise_exception")
            return Value::function([](std::vector<Value>& a, KwArgs&) -> Value {
                throw Error("raise_exception: " + (a.empty() ? std::string("(no message)") : a[0].str()));
            });
        return Value::undefined(name);
    }

    Value get_attr(const Value& obj, const std::string& name, int line, const Node* base) {
        if (obj.is_undefined()) undefined_error(obj, line);
        if (obj.type == Value::Type::Object) {
            if (const Value* v = obj.find(name)) return *v;
            return Value::undefined(name);
        }
        if (obj.is_none()) fail(line, "None has no attribute '" + name + "'");
        if (obj.type == Value::Type::Array && !name.empty() && std::isdigit(static_cast<unsigned char>(name[0])))
            return get_item(obj, Value(static_cast<int64_t>(std::stoll(name))), line, base);
        return Value::undefined(name);  // a method: resolved by call()
    }

    Value get_item(const Value& obj, const Value& key, int line, const Node* base) {
        if (obj.is_undefined()) undefined_error(obj, line);
        if (obj.type == Value::Type::Object) {
            if (!key.is_string()) return Value::undefined(key.str());
            if (const Value* v = obj.find(key.s)) return *v;
            return Value::undefined(key.s);
        }
        if (obj.type == Value::Type::Array || obj.type == Value::Type::String) {
            if (key.type != Value::Type::Int) fail(line, std::string("indices must be integers, not ") + type_name(key));
            int64_t size = obj.type == Value::Type::Array ? static_cast<int64_t>(obj.arr->size())
                                                          : static_cast<int64_t>(obj.s.size());
            int64_t k = key.i < 0 ? key.i + size : key.i;
            if (k < 0 || k >= size) return Value::undefined("[" + std::to_string(key.i) + "]");
            if (obj.type == Value::Type::Array) return (*obj.arr)[static_cast<size_t>(k)];
            return Value(obj.s.substr(static_cast<size_t>(k), 1));
        }
        fail(line, std::string("cannot index a ") + type_name(obj));
    }

    Value slice(const Node& n) {
        Value obj = eval(*n.kids[0]);
        if (obj.is_undefined()) undefined_error(obj, n.line);
        auto opt = [&](const NodePtr& e, const char* what) -> std::optional<int64_t> {
            if (!e) return std::nullopt;
            Value v = eval(*e);
            if (v.is_none()) return std::nullopt;
            if (v.type != Value::Type::Int) fail(n.line, std::string("slice ") + what + " must be an integer");
            return v.i;
        };
        auto start = opt(n.kids[1], "start"), stop = opt(n.kids[2], "stop"), step_o = opt(n.kids[3], "step");
        int64_t step = step_o.value_or(1);
        if (step == 0) fail(n.line, "slice step cannot be zero");
        int64_t size;
        if (obj.type == Value::Type::Array) size = static_cast<int64_t>(obj.arr->size());
        else if (obj.type == Value::Type::String) size = static_cast<int64_t>(obj.s.size());
        else fail(n.line, std::string("cannot slice a ") + type_name(obj));
        // Python's slice.indices()
        auto clamp = [&](std::optional<int64_t> v, int64_t def) {
            if (!v) return def;
            int64_t x = *v < 0 ? *v + size : *v;
            if (step > 0) return std::clamp<int64_t>(x, 0, size);
            return std::clamp<int64_t>(x, -1, size - 1);
        };
        int64_t a = clamp(start, step > 0 ? 0 : size - 1), b = clamp(stop, step > 0 ? size : -1);
        Array out_a;
        std::string out_s;
        for (int64_t k = a; step > 0 ? k < b : k > b; k += step) {
            if (obj.type == Value::Type::Array) out_a.push_back((*obj.arr)[static_cast<size_t>(k)]);
            else out_s += obj.s[static_cast<size_t>(k)];
        }
        return obj.type == Value::Type::Array ? Value(std::move(out_a)) : Value(out_s);
    }

    Value call(const Node& n) {
        std::vector<Value> args;
        for (size_t k = 1; k < n.kids.size(); ++k) args.push_back(eval(*n.kids[k]));
        KwArgs kw = eval_kwargs(n);
        const Node& callee = *n.kids[0];
        if (callee.kind == Node::Kind::Attr) {
            Value obj = eval(*callee.kids[0]);
            if (obj.is_undefined()) undefined_error(obj, n.line);
            const Value* member = obj.find(callee.s);
            if (member && member->type == Value::Type::Function) return (*member->fn)(args, kw);
            return method(obj, callee.s, args, kw, n.line);
        }
        Value f = eval(callee);
        if (f.type != Value::Type::Function) {
            if (f.is_undefined()) fail(n.line, "'" + callee.s + "' is undefined (not a function this template engine knows)");
            fail(n.line, std::string("a ") + type_name(f) + " is not callable");
        }
        try {
            return (*f.fn)(args, kw);
        } catch (const Error& e) {
            std::string m = e.what();
            if (m.rfind("chat template", 0) == 0) throw;
            fail(n.line, m);
        }
    }

    static const Value* arg(std::vector<Value>& a, KwArgs& kw, size_t pos, const char* name) {
        if (pos < a.size()) return &a[pos];
        for (auto& [k, v] : kw)
            if (k == name) return &v;
        return nullptr;
    }

    Value method(const Value& obj, const std::string& name, std::vector<Value>& a, KwArgs& kw, int line) {
        auto need_str = [&](const Value* v, const char* what) -> const std::string& {
            if (!v || !v->is_string()) fail(line, name + "(): " + what + " must be a string");
            return v->s;
        };
        if (obj.is_string()) {
            const std::string& s = obj.s;
            if (name == "strip" || name == "lstrip" || name == "rstrip") {
                const Value* chars = arg(a, kw, 0, "chars");
                const std::string* set = chars && chars->is_string() ? &chars->s : nullptr;
                return Value(strip(s, name != "rstrip", name != "lstrip", set));
            }
            if (name == "upper") return Value(to_upper(s));
            if (name == "lower") return Value(to_lower(s));
            if (name == "title") return Value(title(s));
            if (name == "capitalize") return Value(capitalize(s));
            if (name == "startswith" || name == "endswith") {
                const Value* p = arg(a, kw, 0, "prefix");
                Array options;
                if (p && p->type == Value::Type::Array) options = *p->arr;
                else options.push_back(p ? *p : Value());
                for (auto& o : options) {
                    const std::string& x = need_str(&o, "the argument");
                    bool hit = name == "startswith" ? s.rfind(x, 0) == 0
                                                    : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
                    if (hit) return Value(true);
                }
                return Value(false);
            }
            if (name == "split" || name == "rsplit") {
                const Value* m = arg(a, kw, 1, "maxsplit");
                return split(s, arg(a, kw, 0, "sep"), m && m->type == Value::Type::Int ? m->i : -1);
            }
            if (name == "splitlines") {
                Value sep("\n");
                Value parts = split(replace_all(s, "\r\n", "\n"), &sep, -1);
                if (!parts.arr->empty() && parts.arr->back().s.empty()) parts.arr->pop_back();
                return parts;
            }
            if (name == "replace") {
                const Value* c = arg(a, kw, 2, "count");
                return Value(replace_all(s, need_str(arg(a, kw, 0, "old"), "old"), need_str(arg(a, kw, 1, "new"), "new"),
                                         c && c->type == Value::Type::Int ? c->i : -1));
            }
            if (name == "find") {
                size_t p = s.find(need_str(arg(a, kw, 0, "sub"), "sub"));
                return Value(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(p));
            }
            if (name == "count") {
                const std::string& x = need_str(arg(a, kw, 0, "sub"), "sub");
                int64_t c = 0;
                for (size_t p = x.empty() ? std::string::npos : s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++c;
                return Value(c);
            }
            if (name == "join") {
                const Value* items = arg(a, kw, 0, "iterable");
                std::string out;
                if (items) {
                    Array xs = iterate(*items, line);
                    for (size_t k = 0; k < xs.size(); ++k) out += (k ? s : "") + xs[k].str();
                }
                return Value(out);
            }
            if (name == "isdigit" || name == "isalpha" || name == "isspace") {
                if (s.empty()) return Value(false);
                for (char c : s) {
                    unsigned char u = static_cast<unsigned char>(c);
                    bool ok = name == "isdigit" ? std::isdigit(u) : name == "isalpha" ? std::isalpha(u) : is_space(c);
                    if (!ok) return Value(false);
                }
                return Value(true);
            }
        }
        if (obj.type == Value::Type::Object) {
            if (name == "items") return items(obj);
            if (name == "keys" || name == "values") {
                Array out;
                for (auto& [k, v] : *obj.obj) out.push_back(name == "keys" ? Value(k) : v);
                return Value(std::move(out));
            }
            if (name == "get") {
                const Value* key = arg(a, kw, 0, "key");
                if (key && key->is_string())
                    if (const Value* v = obj.find(key->s)) return *v;
                const Value* def = arg(a, kw, 1, "default");
                return def ? *def : Value::none();
            }
        }
        fail(line, std::string("unknown method '") + name + "' of a " + type_name(obj));
    }

    static Value items(const Value& obj) {
        Array out;
        for (auto& [k, v] : *obj.obj) out.push_back(Value(Array{Value(k), v}));
        return Value(std::move(out));
    }

    Value binary(const Node& n) {
        const std::string& op = n.s;
        Value a = eval(*n.kids[0]);
        Value b = eval(*n.kids[1]);
        if (op == "==") return Value(equal(a, b));
        if (op == "!=") return Value(!equal(a, b));
        if (op == "~") return Value(a.str() + b.str());
        if (op == "in" || op == "not in") {
            bool r = contains(b, a, n.line);
            return Value(op == "in" ? r : !r);
        }
        if (a.is_undefined()) undefined_error(a, n.line);
        if (b.is_undefined()) undefined_error(b, n.line);
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
            int c;
            if (numeric(a) && numeric(b)) c = num(a) < num(b) ? -1 : num(a) > num(b) ? 1 : 0;
            else if (a.is_string() && b.is_string()) c = a.s.compare(b.s) < 0 ? -1 : a.s == b.s ? 0 : 1;
            else fail(n.line, "cannot compare " + std::string(type_name(a)) + " and " + type_name(b) + " with " + op);
            return Value(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
        }
        if (op == "+") {
            if (a.is_string() && b.is_string()) return Value(a.s + b.s);
            if (a.type == Value::Type::Array && b.type == Value::Type::Array) {
                Array out = *a.arr;
                out.insert(out.end(), b.arr->begin(), b.arr->end());
                return Value(std::move(out));
            }
        }
        if (op == "*" && a.is_string() && b.type == Value::Type::Int) {
            std::string out;
            for (int64_t k = 0; k < b.i && out.size() < (1u << 24); ++k) out += a.s;
            return Value(out);
        }
        if (!numeric(a) || !numeric(b))
            fail(n.line, "unsupported operand types for " + op + ": " + type_name(a) + " and " + type_name(b));
        bool ints = a.type != Value::Type::Float && b.type != Value::Type::Float;
        int64_t x = a.type == Value::Type::Bool ? a.b : a.i, y = b.type == Value::Type::Bool ? b.b : b.i;
        if (op == "+") return ints ? Value(x + y) : Value(num(a) + num(b));
        if (op == "-") return ints ? Value(x - y) : Value(num(a) - num(b));
        if (op == "*") return ints ? Value(x * y) : Value(num(a) * num(b));
        if (op == "/") {
            if (num(b) == 0) fail(n.line, "division by zero");
            return Value(num(a) / num(b));
        }
        if (op == "//" || op == "%") {
            if (num(b) == 0) fail(n.line, "division by zero");
            if (ints) {
                int64_t q = x / y, r = x % y;
                if (r != 0 && ((r < 0) != (y < 0))) --q, r += y;  // Python floors
                return Value(op == "//" ? q : r);
            }
            double q = std::floor(num(a) / num(b));
            return Value(op == "//" ? q : num(a) - q * num(b));
        }
        if (op == "**") {
            if (ints && y >= 0) {
                int64_t r = 1;
                for (int64_t k = 0; k < y && k < 64; ++k) r *= x;
                return Value(r);
            }
            return Value(std::pow(num(a), num(b)));
        }
        fail(n.line, "unknown operator " + op);
    }

    bool contains(const Value& hay, const Value& needle, int line) {
        switch (hay.type) {
            case Value::Type::String:
                if (!needle.is_string()) fail(line, "'in <string>' requires a string on the left");
                return hay.s.find(needle.s) != std::string::npos;
            case Value::Type::Array:
                for (auto& v : *hay.arr)
                    if (equal(v, needle)) return true;
                return false;
            case Value::Type::Object: return needle.is_string() && hay.find(needle.s) != nullptr;
            case Value::Type::Undefined: undefined_error(hay, line);
            default: fail(line, std::string("'in' needs a string, list or dict, not a ") + type_name(hay));
        }
    }

    // ---- tests -------------------------------------------------------------------------------

    bool apply_test(const std::string& name, std::vector<Value>& a, int line) {
        const Value& v = a[0];
        auto need = [&](size_t k) -> const Value& {
            if (a.size() <= k) fail(line, "test '" + name + "' needs an argument");
            return a[k];
        };
        if (name == "defined") return !v.is_undefined();
        if (name == "undefined") return v.is_undefined();
        if (name == "none") return v.is_none();
        if (name == "boolean") return v.type == Value::Type::Bool;
        if (name == "true") return v.type == Value::Type::Bool && v.b;
        if (name == "false") return v.type == Value::Type::Bool && !v.b;
        if (name == "string") return v.is_string();
        if (name == "number") return v.is_number();
        if (name == "integer") return v.type == Value::Type::Int;
        if (name == "float") return v.type == Value::Type::Float;
        if (name == "mapping") return v.type == Value::Type::Object;
        if (name == "sequence") return v.type == Value::Type::Array || v.is_string() || v.type == Value::Type::Object;
        if (name == "iterable") return v.type == Value::Type::Array || v.is_string() || v.type == Value::Type::Object;
        if (name == "callable") return v.type == Value::Type::Function;
        if (name == "lower") return v.is_string() && to_lower(v.s) == v.s;
        if (name == "upper") return v.is_string() && to_upper(v.s) == v.s;
        if (name == "odd" || name == "even") {
            if (v.type != Value::Type::Int) fail(line, "test '" + name + "' needs an integer");
            return (v.i % 2 != 0) == (name == "odd");
        }
        if (name == "divisibleby") {
            const Value& d = need(1);
            if (v.type != Value::Type::Int || d.type != Value::Type::Int || d.i == 0)
                fail(line, "divisibleby needs integers and a non-zero divisor");
            return v.i % d.i == 0;
        }
        if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equal(v, need(1));
        if (name == "ne" || name == "!=") return !equal(v, need(1));
        if (name == "in") return contains(need(1), v, line);
        if (name == "gt" || name == "greaterthan" || name == "lt" || name == "lessthan" || name == "ge" || name == "le") {
            const Value& w = need(1);
            if (!numeric(v) || !numeric(w)) fail(line, "test '" + name + "' needs numbers");
            double x = num(v), y = num(w);
            if (name == "gt" || name == "greaterthan") return x > y;
            if (name == "lt" || name == "lessthan") return x < y;
            return name == "ge" ? x >= y : x <= y;
        }
        fail(line, "unknown test '" + name + "'");
    }

    // ---- filters -----------------------------------------------------------------------------

    // select/reject/selectattr/rejectattr: keep items for which the test (or truthiness) holds.
    Value select(const std::string& name, std::vector<Value>& a, int line) {
        bool by_attr = name == "selectattr" || name == "rejectattr";
        bool keep_if = name == "select" || name == "selectattr";
        size_t test_pos = by_attr ? 2 : 1;
        if (by_attr && (a.size() < 2 || !a[1].is_string())) fail(line, name + " needs an attribute name");
        Array out;
        for (auto& item : iterate(a[0], line)) {
            Value subject = by_attr ? (item.type == Value::Type::Object && item.find(a[1].s) ? *item.find(a[1].s)
                                                                                              : Value::undefined(a[1].s))
                                    : item;
            bool r;
            if (a.size() > test_pos) {
                if (!a[test_pos].is_string()) fail(line, name + ": the test name must be a string");
                std::vector<Value> targs{subject};
                targs.insert(targs.end(), a.begin() + static_cast<long>(test_pos) + 1, a.end());
                r = apply_test(a[test_pos].s, targs, line);
            } else {
                r = subject.truthy();
            }
            if (r == keep_if) out.push_back(item);
        }
        return Value(std::move(out));
    }

    Value apply_filter(const std::string& name, std::vector<Value>& a, KwArgs& kw, int line) {
        Value& v = a[0];
        auto need_string = [&]() -> const std::string& {
            if (v.is_undefined()) undefined_error(v, line);
            if (!v.is_string()) fail(line, "filter '" + name + "' needs a string, got a " + type_name(v));
            return v.s;
        };
        if (name == "trim") {
            const Value* chars = arg(a, kw, 1, "chars");
            return Value(strip(need_string(), true, true, chars && chars->is_string() ? &chars->s : nullptr));
        }
        if (name == "upper") return Value(to_upper(need_string()));
        if (name == "lower") return Value(to_lower(need_string()));
        if (name == "title") return Value(title(need_string()));
        if (name == "capitalize") return Value(capitalize(need_string()));
        if (name == "string") return Value(v.str());
        if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
            if (name == "safe") return v;
            std::string out;
            for (char c : v.str()) {
                switch (c) {
                    case '&': out += "&amp;"; break;
                    case '<': out += "&lt;"; break;
                    case '>': out += "&gt;"; break;
                    case '"': out += "&#34;"; break;
                    case '\'': out += "&#39;"; break;
                    default: out += c;
                }
            }
            return Value(out);
        }
        if (name == "length" || name == "count") {
            switch (v.type) {
                case Value::Type::Undefined: return Value(int64_t{0});
                case Value::Type::String: return Value(static_cast<int64_t>(iterate(v, line).size()));
                case Value::Type::Array: return Value(static_cast<int64_t>(v.arr->size()));
                case Value::Type::Object: return Value(static_cast<int64_t>(v.obj->size()));
                default: fail(line, std::string("a ") + type_name(v) + " has no length");
            }
        }
        if (name == "tojson") {
            const Value* ind = arg(a, kw, 1, "indent");
            return Value(to_json(v, ind && ind->type == Value::Type::Int ? static_cast<int>(ind->i) : -1));
        }
        if (name == "join") {
            const Value* sep = arg(a, kw, 1, "d");
            const Value* attr = arg(a, kw, 2, "attribute");
            std::string out, s = sep ? sep->str() : "";
            Array xs = iterate(v, line);
            for (size_t k = 0; k < xs.size(); ++k) {
                Value x = attr ? get_attr(xs[k], attr->str(), line, nullptr) : xs[k];
                out += (k ? s : "") + x.str();
            }
            return Value(out);
        }
        if (name == "default" || name == "d") {
            const Value* def = arg(a, kw, 1, "default_value");
            const Value* boolean = arg(a, kw, 2, "boolean");
            bool use_def = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
            return use_def ? (def ? *def : Value("")) : v;
        }
        if (name == "items") {
            if (v.is_undefined() || v.is_none()) return Value(Array{});
            if (v.type != Value::Type::Object) fail(line, std::string("filter 'items' needs a dict, got a ") + type_name(v));
            return items(v);
        }
        if (name == "dictsort") {
            if (v.type != Value::Type::Object) fail(line, "filter 'dictsort' needs a dict");
            Value out = items(v);
            std::stable_sort(out.arr->begin(), out.arr->end(),
                             [](const Value& x, const Value& y) { return to_lower((*x.arr)[0].s) < to_lower((*y.arr)[0].s); });
            return out;
        }
        if (name == "list") return Value(iterate(v, line));
        if (name == "first" || name == "last") {
            Array xs = iterate(v, line);
            if (xs.empty()) return Value::undefined(name);
            return name == "first" ? xs.front() : xs.back();
        }
        if (name == "reverse") {
            if (v.is_string()) return Value(std::string(v.s.rbegin(), v.s.rend()));
            Array xs = iterate(v, line);
            std::reverse(xs.begin(), xs.end());
            return Value(std::move(xs));
        }
        if (name == "unique") {
            Array out;
            for (auto& x : iterate(v, line))
                if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
            return Value(std::move(out));
        }
        if (name == "replace") {
            if (a.size() < 3) fail(line, "filter 'replace' needs old and new strings");
            const Value* c = arg(a, kw, 3, "count");
            return Value(replace_all(v.str(), a[1].str(), a[2].str(), c && c->type == Value::Type::Int ? c->i : -1));
        }
        if (name == "int") {
            if (v.type == Value::Type::Int) return v;
            if (numeric(v)) return Value(static_cast<int64_t>(num(v)));
            try {
                return Value(static_cast<int64_t>(std::stoll(v.str())));
            } catch (const std::exception&) {
                return Value(int64_t{0});
            }
        }
        if (name == "float") {
            if (numeric(v)) return Value(num(v));
            try {
                return Value(std::stod(v.str()));
            } catch (const std::exception&) {
                return Value(0.0);
            }
        }
        if (name == "abs") {
            if (v.type == Value::Type::Int) return Value(v.i < 0 ? -v.i : v.i);
            if (numeric(v)) return Value(std::fabs(num(v)));
            fail(line, "filter 'abs' needs a number");
        }
        if (name == "round") {
            if (!numeric(v)) fail(line, "filter 'round' needs a number");
            const Value* p = arg(a, kw, 1, "precision");
            double scale = std::pow(10.0, p && p->type == Value::Type::Int ? static_cast<double>(p->i) : 0.0);
            return Value(std::round(num(v) * scale) / scale);
        }
        if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") return select(name, a, line);
        if (name == "map") {
            Array out;
            const Value* attr = arg(a, kw, 99, "attribute");
            for (auto& x : iterate(v, line)) {
                if (attr) {
                    out.push_back(get_attr(x, attr->str(), line, nullptr));
                } else {
                    if (a.size() < 2 || !a[1].is_string()) fail(line, "filter 'map' needs a filter name or attribute=");
                    std::vector<Value> fa{x};
                    fa.insert(fa.end(), a.begin() + 2, a.end());
                    KwArgs none;
                    out.push_back(apply_filter(a[1].s, fa, none, line));
                }
            }
            return Value(std::move(out));
        }
        if (name == "indent") {
            const Value* w = arg(a, kw, 1, "width");
            const Value* first = arg(a, kw, 2, "first");
            std::string pad(w && w->type == Value::Type::Int ? static_cast<size_t>(std::clamp<int64_t>(w->i, 0, 64)) : 4u, ' ');
            std::string s = v.str(), out = first && first->truthy() ? pad : "";
            for (size_t k = 0; k < s.size(); ++k) {
                out += s[k];
                if (s[k] == '\n' && k + 1 < s.size() && s[k + 1] != '\n') out += pad;
            }
            return Value(out);
        }
        if (name == "wordcount") return Value(static_cast<int64_t>(split(v.str(), nullptr, -1).arr->size()));
        if (name == "sort") {
            Array xs = iterate(v, line);
            const Value* rev = arg(a, kw, 1, "reverse");
            const Value* attr = arg(a, kw, 3, "attribute");
            auto key = [&](const Value& x) { return attr ? get_attr(x, attr->str(), line, nullptr) : x; };
            std::stable_sort(xs.begin(), xs.end(), [&](const Value& x, const Value& y) {
                Value kx = key(x), ky = key(y);
                if (numeric(kx) && numeric(ky)) return num(kx) < num(ky);
                return kx.str() < ky.str();
            });
            if (rev && rev->truthy()) std::reverse(xs.begin(), xs.end());
            return Value(std::move(xs));
        }
        fail(line, "unknown filter '" + name + "'");
    }
};

}  // namespace

Template::Template(std::string_view source, const Options& opts) : root_(parse(source, opts)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Object& globals) const {
    Renderer r(globals);
    std::string out;
    r.exec(*root_, out);
    return out;
}

}  // namespace minerva::jinja
