// grammar/json_schema.cpp: JSON Schema -> GBNF. Each schema node becomes a rule; shared pieces
// (strings, numbers, whitespace) are rules emitted once. Everything generated is valid against
// the schema: where exact support would be unwieldy the grammar picks a valid subset (documented
// in minerva/grammar.h and docs/api.md), and a keyword it cannot honour at all is an Error that
// names it, never dropped.
#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "minerva/error.h"
#include "grammar/json_schema.h"
#include "minerva/grammar.h"

namespace minerva {

namespace {

using json = nlohmann::json;

constexpr int WS_MAX = 16;  // indent after a newline

// A GBNF literal for arbitrary UTF-8 text.
std::string literal(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else out += ch;
    }
    return out + "\"";
}

// Integer ranges as digit patterns. Non-negative [lo, hi] (hi < 0: unbounded) -> GBNF alternatives.
std::string digits_range(const std::string& lo, const std::string& hi);

std::string rep(const std::string& x, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += (i ? " " : "") + x;
    return out;
}

// Equal-length decimal strings lo <= hi: alternatives matching exactly the numbers in between.
void same_len_range(const std::string& lo, const std::string& hi, std::vector<std::string>& out, const std::string& prefix = "") {
    if (lo.empty()) {
        out.push_back(prefix.empty() ? "\"\"" : prefix);
        return;
    }
    auto cls = [](char a, char b) { return a == b ? std::string("\"") + a + "\"" : std::string("[") + a + "-" + b + "]"; };
    auto cat = [&](const std::string& a, const std::string& b) { return a.empty() ? b : b.empty() ? a : a + " " + b; };
    const size_t n = lo.size();
    if (lo[0] == hi[0]) {
        same_len_range(lo.substr(1), hi.substr(1), out, cat(prefix, cls(lo[0], lo[0])));
        return;
    }
    const std::string rest_lo = lo.substr(1), rest_hi = hi.substr(1);
    const bool lo_min = rest_lo.find_first_not_of('0') == std::string::npos;
    const bool hi_max = rest_hi.find_first_not_of('9') == std::string::npos;
    char a = lo[0], b = hi[0];
    const std::string any_rest = n > 1 ? rep("[0-9]", static_cast<int>(n - 1)) : "";
    if (!lo_min) {
        same_len_range(rest_lo, std::string(n - 1, '9'), out, cat(prefix, cls(a, a)));
        ++a;
    }
    if (!hi_max) --b;
    if (a <= b) out.push_back(cat(cat(prefix, cls(a, b)), any_rest));
    if (!hi_max) same_len_range(std::string(n - 1, '0'), rest_hi, out, cat(prefix, cls(hi[0], hi[0])));
}

std::string digits_range(const std::string& lo, const std::string& hi) {
    std::vector<std::string> alts;
    const size_t max_len = hi.empty() ? lo.size() : hi.size();
    for (size_t len = lo.size(); len <= max_len; ++len) {
        std::string a = lo;
        if (len != lo.size()) a.assign(len, '0'), a[0] = '1';
        std::string b = (!hi.empty() && len == hi.size()) ? hi : std::string(len, '9');
        same_len_range(a, b, alts);
    }
    if (hi.empty()) {  // anything longer than lo
        std::string longer = "[1-9] [0-9]{";
        longer.append(std::to_string(lo.size())).append(",17}");
        alts.push_back(longer);
    }
    std::string out;
    for (auto& x : alts) out += (out.empty() ? "" : " | ") + x;
    return "(" + out + ")";
}

class Converter {
public:
    explicit Converter(const json& root) : root_(root) {}

    // The rules as GBNF text; with a prefix every rule name gets it (so that several schemas can
    // live in one grammar) and the start rule is PREFIXroot.
    std::string run(const std::string& prefix = "") {
        const std::string r = visit(root_, "root", "#");
        rules_["root"] = r;
        std::string out;
        for (auto& [name, body] : rules_) out += prefix + name + " ::= " + rename(body, prefix) + "\n";
        return out;
    }
    std::string rename(const std::string& body, const std::string& prefix) const {
        if (prefix.empty()) return body;
        std::string out;
        for (size_t i = 0; i < body.size();) {
            const char c = body[i];
            if (c == '"' || c == '[') {  // literal or class: copy through its end
                const char close = c == '"' ? '"' : ']';
                size_t j = i + 1;
                while (j < body.size() && body[j] != close) j += body[j] == '\\' ? 2 : 1;
                out.append(body, i, j + 1 - i);
                i = j + 1;
            } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
                size_t j = i;
                while (j < body.size() && (std::isalnum(static_cast<unsigned char>(body[j])) || body[j] == '-' || body[j] == '_')) ++j;
                const std::string id = body.substr(i, j - i);
                out += rules_.count(id) ? prefix + id : id;
                i = j;
            } else {
                out += c;
                ++i;
            }
        }
        return out;
    }

private:
    const json& root_;
    std::map<std::string, std::string> rules_;
    std::map<std::string, std::string> ref_rules_;  // $ref target -> rule name
    int n_ = 0;

    [[noreturn]] static void unsupported(const std::string& kw, const std::string& path, const std::string& why = "") {
        throw Error("unsupported JSON Schema keyword '" + kw + "' at " + path + (why.empty() ? "" : " (" + why + ")"));
    }
    [[noreturn]] static void invalid(const std::string& path, const std::string& msg) {
        throw Error("invalid JSON Schema at " + path + ": " + msg);
    }

    std::string add(const std::string& hint, const std::string& body) {
        std::string base;
        for (char c : hint) base += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
        if (base.empty() || base.size() > 40) base = "r";
        std::string name = base + "-" + std::to_string(++n_);
        rules_[name] = body;
        return name;
    }
    std::string shared(const std::string& name, const std::string& body) {
        rules_.emplace(name, body);
        return name;
    }
    // Bounded whitespace: one space, or a newline and an indent (pretty-printed JSON).
    std::string ws() { return shared("ws", "(\" \" | \"\\n\" [ ]{0," + std::to_string(WS_MAX) + "})?"); }
    std::string json_char() {
        return shared("json-char",
                      "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))");
    }
    std::string string_rule() { return shared("string", "\"\\\"\" " + json_char() + "* \"\\\"\""); }
    std::string number_rule() {
        return shared("number", "\"-\"? (\"0\" | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?");
    }
    std::string integer_rule() { return shared("integer", "\"-\"? (\"0\" | [1-9] [0-9]{0,15})"); }
    std::string any_value() {
        if (!rules_.count("value")) {
            rules_["value"] = "";  // reserve (recursive)
            std::string w = ws();
            rules_["value"] = "object | array | " + string_rule() + " | " + number_rule() + " | \"true\" | \"false\" | \"null\"";
            rules_["object"] = "\"{\" " + w + " (" + string_rule() + " " + w + " \":\" " + w + " value (" + w + " \",\" " + w + " " +
                               string_rule() + " " + w + " \":\" " + w + " value)*)? " + w + " \"}\"";
            rules_["array"] = "\"[\" " + w + " (value (" + w + " \",\" " + w + " value)*)? " + w + " \"]\"";
        }
        return "value";
    }

    static const json* get(const json& s, const char* k) {
        auto it = s.find(k);
        return it == s.end() ? nullptr : &*it;
    }
    static std::optional<int64_t> get_count(const json& s, const char* k, const std::string& path) {
        const json* v = get(s, k);
        if (!v) return std::nullopt;
        if (!v->is_number_integer() || v->get<int64_t>() < 0) invalid(path, std::string("'") + k + "' must be a non-negative integer");
        return v->get<int64_t>();
    }

    const json& resolve_ref(const std::string& ref, const std::string& path) {
        if (ref == "#") return root_;
        for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
            const std::string p = prefix;
            if (ref.rfind(p, 0) == 0) {
                const std::string key = p.substr(2, p.size() - 3);
                const json* defs = get(root_, key.c_str());
                const std::string name = ref.substr(p.size());
                if (!defs || !defs->is_object() || !defs->contains(name)) invalid(path, "'$ref' target '" + ref + "' does not exist");
                return (*defs)[name];
            }
        }
        unsupported("$ref", path, "only '#', '#/$defs/NAME' and '#/definitions/NAME' are supported, got '" + ref + "'");
    }

    std::string visit(const json& s, const std::string& hint, const std::string& path) {
        if (s.is_boolean()) {
            if (s.get<bool>()) return any_value();
            invalid(path, "the schema 'false' matches nothing");
        }
        if (!s.is_object()) invalid(path, "a schema must be an object or a boolean");
        static const std::set<std::string> known = {
            "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
            "minLength", "maxLength", "pattern", "format", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "nullable", "title",
            "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "strict"};
        for (auto& [k, v] : s.items())
            if (!known.count(k)) unsupported(k, path);

        if (const json* n = get(s, "nullable"); n && n->is_boolean() && n->get<bool>()) {
            json copy = s;
            copy.erase("nullable");
            return add(hint, visit(copy, hint, path) + " | \"null\"");
        }
        if (const json* ref = get(s, "$ref")) {
            if (!ref->is_string()) invalid(path, "'$ref' must be a string");
            if (s.size() > 1)
                for (auto& [k, v] : s.items())
                    if (k != "$ref" && k != "title" && k != "description" && k != "$defs" && k != "definitions" && k != "$schema" && k != "$id")
                        unsupported(k, path, "next to '$ref'");
            const std::string target = ref->get<std::string>();
            if (auto it = ref_rules_.find(target); it != ref_rules_.end()) return it->second;
            // Reserve the rule first so recursive references resolve to it.
            std::string name = add(target == "#" ? "root-ref" : target.substr(target.rfind('/') + 1), "");
            ref_rules_[target] = name;
            rules_[name] = visit(resolve_ref(target, path), name, target);
            return name;
        }
        if (const json* c = get(s, "const")) return add(hint, literal(c->dump()));
        if (const json* e = get(s, "enum")) {
            if (!e->is_array() || e->empty()) invalid(path, "'enum' must be a non-empty array");
            std::string body;
            for (auto& v : *e) body += (body.empty() ? "" : " | ") + literal(v.dump());
            return add(hint, body);
        }
        for (const char* kw : {"anyOf", "oneOf"})
            if (const json* alts = get(s, kw)) {
                if (!alts->is_array() || alts->empty()) invalid(path, std::string("'") + kw + "' must be a non-empty array");
                if (std::string_view(kw) == "oneOf") check_exclusive(*alts, path);
                std::string body;
                for (size_t i = 0; i < alts->size(); ++i)
                    body += (body.empty() ? "" : " | ") + visit((*alts)[i], hint, path + "/" + kw + "/" + std::to_string(i));
                return add(hint, body);
            }
        if (const json* all = get(s, "allOf")) return visit(merge_all_of(s, *all, path), hint, path);

        const json* type = get(s, "type");
        if (!type) {
            if (get(s, "properties") || get(s, "additionalProperties")) return object(s, hint, path);
            if (get(s, "items") || get(s, "prefixItems")) return array(s, hint, path);
            return any_value();
        }
        if (type->is_array()) {
            if (type->empty()) invalid(path, "'type' must not be an empty list");
            std::string body;
            for (auto& t : *type) {
                if (!t.is_string()) invalid(path, "'type' entries must be strings");
                body += (body.empty() ? "" : " | ") + typed(s, t.get<std::string>(), hint, path);
            }
            return add(hint, body);
        }
        if (!type->is_string()) invalid(path, "'type' must be a string or a list of strings");
        return typed(s, type->get<std::string>(), hint, path);
    }

    // ---- oneOf: a grammar can take any branch, but not forbid a value that two branches both
    // accept. So oneOf is compiled (as a choice of its branches) only when no value can match
    // two of them, provably: the branches' JSON types do not overlap, or both are const/enum
    // with no common value, or both are objects with a property both require whose const/enum
    // values do not overlap (a discriminator). Anything else is refused, naming oneOf.
    enum Kind : unsigned { K_NULL = 1, K_BOOL = 2, K_INT = 4, K_FRAC = 8, K_STRING = 16, K_ARRAY = 32, K_OBJECT = 64, K_ANY = 127 };
    static unsigned value_kind(const json& v) {
        if (v.is_null()) return K_NULL;
        if (v.is_boolean()) return K_BOOL;
        if (v.is_number_integer() || v.is_number_unsigned()) return K_INT;
        if (v.is_number()) return v.get<double>() == std::floor(v.get<double>()) ? K_INT : K_FRAC;
        if (v.is_string()) return K_STRING;
        if (v.is_array()) return K_ARRAY;
        return K_OBJECT;
    }
    const json& deref(const json& s, const std::string& path, int depth = 0) {
        if (s.is_object())
            if (const json* r = get(s, "$ref"); r && r->is_string() && depth < 32) return deref(resolve_ref(r->get<std::string>(), path), path, depth + 1);
        return s;
    }
    // The JSON kinds the values of a schema can have.
    unsigned kinds(const json& s0, const std::string& path, int depth = 0) {
        const json& s = deref(s0, path);
        if (!s.is_object() || depth > 32) return K_ANY;
        unsigned k = 0;
        if (const json* c = get(s, "const")) k = value_kind(*c);
        else if (const json* e = get(s, "enum"); e && e->is_array()) {
            for (auto& v : *e) k |= value_kind(v);
        } else if (const json* alts = get(s, "anyOf"); alts && alts->is_array()) {
            for (auto& a : *alts) k |= kinds(a, path, depth + 1);
        } else if (const json* alts1 = get(s, "oneOf"); alts1 && alts1->is_array()) {
            for (auto& a : *alts1) k |= kinds(a, path, depth + 1);
        } else if (get(s, "allOf")) {
            k = K_OBJECT;
        } else if (const json* t = get(s, "type")) {
            auto one = [](const json& name) -> unsigned {
                if (!name.is_string()) return K_ANY;
                const std::string n = name.get<std::string>();
                return n == "null" ? K_NULL : n == "boolean" ? K_BOOL : n == "integer" ? K_INT : n == "number" ? K_INT | K_FRAC
                     : n == "string" ? K_STRING : n == "array" ? K_ARRAY : n == "object" ? K_OBJECT : K_ANY;
            };
            if (t->is_array())
                for (auto& x : *t) k |= one(x);
            else k = one(*t);
        } else if (get(s, "properties") || get(s, "additionalProperties")) {
            k = K_OBJECT;
        } else if (get(s, "items") || get(s, "prefixItems")) {
            k = K_ARRAY;
        } else {
            k = K_ANY;
        }
        if (const json* n = get(s, "nullable"); n && n->is_boolean() && n->get<bool>()) k |= K_NULL;
        return k;
    }
    // The only values a schema allows, when it is a const or an enum.
    static std::optional<std::vector<json>> values(const json& s) {
        if (!s.is_object()) return std::nullopt;
        std::vector<json> out;
        if (const json* c = get(s, "const")) out.push_back(*c);
        else if (const json* e = get(s, "enum"); e && e->is_array()) out.assign(e->begin(), e->end());
        else return std::nullopt;
        if (const json* n = get(s, "nullable"); n && n->is_boolean() && n->get<bool>()) out.push_back(nullptr);
        return out;
    }
    static bool overlap(const std::vector<json>& a, const std::vector<json>& b) {
        for (auto& x : a)
            for (auto& y : b)
                if (x == y) return true;
        return false;
    }
    bool exclusive(const json& a0, const json& b0, const std::string& path) {
        if ((kinds(a0, path) & kinds(b0, path)) == 0) return true;
        const json &a = deref(a0, path), &b = deref(b0, path);
        const auto va = values(a), vb = values(b);
        if (va && vb) return !overlap(*va, *vb);
        // objects told apart by a property both require, with const/enum values that differ
        const json *pa = get(a, "properties"), *pb = get(b, "properties"), *ra = get(a, "required"), *rb = get(b, "required");
        if (!pa || !pb || !ra || !rb || !pa->is_object() || !pb->is_object() || !ra->is_array() || !rb->is_array()) return false;
        for (auto& [name, sa] : pa->items()) {
            if (!pb->contains(name) || std::find(ra->begin(), ra->end(), name) == ra->end() ||
                std::find(rb->begin(), rb->end(), name) == rb->end())
                continue;
            const auto xa = values(deref(sa, path)), xb = values(deref((*pb)[name], path));
            if (xa && xb && !overlap(*xa, *xb)) return true;
        }
        return false;
    }
    void check_exclusive(const json& alts, const std::string& path) {
        for (size_t i = 0; i < alts.size(); ++i)
            for (size_t j = i + 1; j < alts.size(); ++j)
                if (!exclusive(alts[i], alts[j], path))
                    unsupported("oneOf", path,
                                "branches " + std::to_string(i) + " and " + std::to_string(j) +
                                    " may both match, and a grammar cannot forbid that; oneOf is enforced only when no value can "
                                    "match two branches: different types, different const/enum values, or a required property "
                                    "with different const/enum values in each. Use anyOf if any branch will do");
    }

    json merge_all_of(const json& s, const json& all, const std::string& path) {
        if (!all.is_array() || all.empty()) invalid(path, "'allOf' must be a non-empty array");
        json merged = json::object();
        merged["type"] = "object";
        json props = json::object(), req = json::array();
        auto take = [&](const json& part, const std::string& p) {
            const json* sub = &part;
            if (const json* r = get(part, "$ref"); r && r->is_string()) sub = &resolve_ref(r->get<std::string>(), p);
            if (!sub->is_object()) unsupported("allOf", p, "only object schemas can be combined");
            for (auto& [k, v] : sub->items()) {
                if (k == "properties") {
                    for (auto& [pk, pv] : v.items()) props[pk] = pv;
                } else if (k == "required") {
                    for (auto& r : v) req.push_back(r);
                } else if (k == "type") {
                    if (v != "object") unsupported("allOf", p, "only object schemas can be combined");
                } else if (k == "additionalProperties" || k == "title" || k == "description") {
                    if (k == "additionalProperties") merged[k] = v;
                } else {
                    unsupported("allOf", p, "keyword '" + k + "' inside allOf");
                }
            }
        };
        for (size_t i = 0; i < all.size(); ++i) take(all[i], path + "/allOf/" + std::to_string(i));
        json rest = s;
        rest.erase("allOf");
        take(rest, path);
        merged["properties"] = props;
        merged["required"] = req;
        return merged;
    }

    std::string typed(const json& s, const std::string& t, const std::string& hint, const std::string& path) {
        if (t == "object") return object(s, hint, path);
        if (t == "array") return array(s, hint, path);
        if (t == "string") return string(s, hint, path);
        if (t == "integer") return number(s, hint, path, true);
        if (t == "number") return number(s, hint, path, false);
        if (t == "boolean") return "(\"true\" | \"false\")";
        if (t == "null") return "\"null\"";
        invalid(path, "unknown type '" + t + "'");
    }

    std::string object(const json& s, const std::string& hint, const std::string& path) {
        const std::string w = ws();
        const json* props = get(s, "properties");
        std::set<std::string> required;
        if (const json* r = get(s, "required")) {
            if (!r->is_array()) invalid(path, "'required' must be an array of strings");
            for (auto& x : *r) {
                if (!x.is_string()) invalid(path, "'required' must be an array of strings");
                required.insert(x.get<std::string>());
            }
        }
        std::vector<std::pair<std::string, std::string>> kv;  // (key literal + colon, value rule)
        std::vector<bool> req;
        if (props) {
            if (!props->is_object()) invalid(path, "'properties' must be an object");
            for (auto& [k, v] : props->items()) {
                kv.emplace_back(literal(json(k).dump()), visit(v, hint + "-" + k, path + "/properties/" + k));
                req.push_back(required.count(k) > 0);
            }
        }
        for (auto& r : required)
            if (!props || !props->contains(r)) invalid(path, "required property '" + r + "' is not in 'properties'");
        const json* addl = get(s, "additionalProperties");
        if (kv.empty()) {
            // A map: any keys, values of the additionalProperties schema (any JSON value by default).
            if (addl && addl->is_boolean() && !addl->get<bool>()) return add(hint, "\"{\" " + w + " \"}\"");
            std::string val = (addl && !addl->is_boolean()) ? visit(*addl, hint + "-value", path + "/additionalProperties") : any_value();
            std::string pair = string_rule() + " " + w + " \":\" " + w + " " + val;
            return add(hint, "\"{\" " + w + " (" + pair + " (" + w + " \",\" " + w + " " + pair + ")*)? " + w + " \"}\"");
        }
        // Declared properties in order; optional ones may be skipped. rest(i, first) emits
        // properties i.. with a comma before each but the first emitted one.
        const size_t n = kv.size();
        std::vector<std::string> rest_first(n + 1), rest_more(n + 1);
        rest_first[n] = rest_more[n] = "\"\"";
        for (size_t i = n; i-- > 0;) {
            const std::string item = kv[i].first + " " + w + " \":\" " + w + " " + kv[i].second;
            const std::string sep = w + " \",\" " + w + " ";
            std::string with_first = item + " " + rest_more[i + 1];
            std::string with_more = sep + item + " " + rest_more[i + 1];
            if (req[i]) {
                rest_first[i] = add(hint + "-kv", with_first);
                rest_more[i] = add(hint + "-kv", with_more);
            } else {
                rest_first[i] = add(hint + "-kv", with_first + " | " + rest_first[i + 1]);
                rest_more[i] = add(hint + "-kv", with_more + " | " + rest_more[i + 1]);
            }
        }
        return add(hint, "\"{\" " + w + " " + rest_first[0] + " " + w + " \"}\"");
    }

    std::string array(const json& s, const std::string& hint, const std::string& path) {
        const std::string w = ws();
        const int64_t min_items = get_count(s, "minItems", path).value_or(0);
        const std::optional<int64_t> max_items = get_count(s, "maxItems", path);
        if (max_items && *max_items < min_items) invalid(path, "'maxItems' is less than 'minItems'");
        if (max_items && *max_items > 10000) unsupported("maxItems", path, "at most 10000");
        if (min_items > 10000) unsupported("minItems", path, "at most 10000");
        std::vector<std::string> prefix;
        if (const json* p = get(s, "prefixItems")) {
            if (!p->is_array()) invalid(path, "'prefixItems' must be an array");
            for (size_t i = 0; i < p->size(); ++i) prefix.push_back(visit((*p)[i], hint + "-" + std::to_string(i), path + "/prefixItems/" + std::to_string(i)));
        }
        std::string item;
        bool items_allowed = true;
        if (const json* it = get(s, "items")) {
            if (it->is_boolean() && !it->get<bool>()) items_allowed = false;
            else if (it->is_array()) unsupported("items", path, "use 'prefixItems' for tuples");
            else item = visit(*it, hint + "-item", path + "/items");
        } else {
            item = any_value();
        }
        // Element k (0-based) is prefix[k] when there is one, else item.
        const int64_t np = static_cast<int64_t>(prefix.size());
        const int64_t hi = items_allowed ? (max_items ? *max_items : -1) : std::min<int64_t>(np, max_items.value_or(np));
        if (!items_allowed && min_items > np) invalid(path, "'minItems' needs more items than 'prefixItems' allows");
        // Build right to left: tail(k) = what may follow after k elements.
        const std::string sep = w + " \",\" " + w + " ";
        auto elem = [&](int64_t k) { return k < np ? prefix[size_t(k)] : item; };
        int64_t explicit_to = std::max<int64_t>({np, min_items, 1});
        if (hi >= 0) explicit_to = hi;
        std::string after = "\"\"";
        if (hi < 0) after = "(" + sep + item + ")*";
        for (int64_t k = explicit_to; k-- > 0;) {
            // elements k.. given k elements already (k >= 1 needs a separator first)
            const std::string body = (k ? sep : std::string()) + elem(k) + " " + after;
            if (k >= min_items) after = add(hint + "-items", body + " | \"\"");
            else after = add(hint + "-items", body);
        }
        return add(hint, "\"[\" " + w + " " + after + " " + w + " \"]\"");
    }

    std::string string(const json& s, const std::string& hint, const std::string& path) {
        const int64_t min_len = get_count(s, "minLength", path).value_or(0);
        const std::optional<int64_t> max_len = get_count(s, "maxLength", path);
        if (max_len && *max_len < min_len) invalid(path, "'maxLength' is less than 'minLength'");
        if (max_len && *max_len > 10000) unsupported("maxLength", path, "at most 10000");
        if (min_len > 10000) unsupported("minLength", path, "at most 10000");
        const json* fmt = get(s, "format");
        const json* pat = get(s, "pattern");
        if ((fmt || pat) && (get(s, "minLength") || max_len))
            unsupported(get(s, "minLength") ? "minLength" : "maxLength", path, "together with 'format' or 'pattern'");
        if (fmt && pat) unsupported("pattern", path, "together with 'format'");
        if (fmt) {
            if (!fmt->is_string()) invalid(path, "'format' must be a string");
            return add(hint, "\"\\\"\" " + format(fmt->get<std::string>(), path) + " \"\\\"\"");
        }
        if (pat) {
            if (!pat->is_string()) invalid(path, "'pattern' must be a string");
            return add(hint, "\"\\\"\" " + regex(pat->get<std::string>(), path) + " \"\\\"\"");
        }
        std::string body = json_char() + "{" + std::to_string(min_len) + "," + (max_len ? std::to_string(*max_len) : "") + "}";
        if (min_len == 0 && !max_len) return string_rule();
        return add(hint, "\"\\\"\" " + body + " \"\\\"\"");
    }

    std::string format(const std::string& f, const std::string& path) {
        // Valid-only subsets: every date exists in every year (no Feb 29), times carry a zone.
        const std::string date =
            shared("date", "[0-9]{4} \"-\" ( (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]) | "
                           "(\"0\" [13-9] | \"1\" [0-2]) \"-\" (\"29\" | \"30\") | (\"0\" [13578] | \"1\" [02]) \"-31\" )");
        const std::string time = shared(
            "time", "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])");
        if (f == "date") return date;
        if (f == "time") return time;
        if (f == "date-time") return date + " \"T\" " + time;
        if (f == "uuid") return "[0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12}";
        if (f == "email")
            return "[a-zA-Z0-9_+-]{1,32} (\".\" [a-zA-Z0-9_+-]{1,32}){0,3} \"@\" [a-zA-Z0-9]{1,32} (\".\" [a-zA-Z0-9]{1,32}){1,3}";
        unsupported("format", path, "'" + f + "' (supported: date, time, date-time, uuid, email)");
    }

    // ---- numbers
    static std::string to_digits(int64_t v) { return std::to_string(v); }
    // Integers in [lo, hi] (either side optional).
    std::string int_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
        std::vector<std::string> alts;
        // non-negative part
        if (!hi || *hi >= 0) {
            const int64_t a = lo ? std::max<int64_t>(*lo, 0) : 0;
            alts.push_back(digits_range(to_digits(a), hi ? to_digits(*hi) : ""));
        }
        // negative part: -m with m in [max(1, -hi), -lo]
        if (!lo || *lo < 0) {
            const int64_t a = hi ? std::max<int64_t>(1, -*hi) : 1;
            if (!lo || -*lo >= a) alts.push_back("\"-\" " + digits_range(to_digits(a), lo ? to_digits(-*lo) : ""));
        }
        if (alts.empty()) return "";
        std::string out;
        for (auto& x : alts) out += (out.empty() ? "" : " | ") + x;
        return "(" + out + ")";
    }

    std::string number(const json& s, const std::string& hint, const std::string& path, bool integer) {
        std::optional<double> lo, hi;
        bool lo_ex = false, hi_ex = false;
        auto num = [&](const char* k) -> std::optional<double> {
            const json* v = get(s, k);
            if (!v) return std::nullopt;
            if (!v->is_number()) invalid(path, std::string("'") + k + "' must be a number");
            const double x = v->get<double>();
            if (std::fabs(x) > 1e15) unsupported(k, path, "bounds beyond 1e15");
            return x;
        };
        if (auto v = num("minimum")) lo = v;
        if (auto v = num("maximum")) hi = v;
        if (auto v = num("exclusiveMinimum"); v && (!lo || *v >= *lo)) lo = v, lo_ex = true;
        if (auto v = num("exclusiveMaximum"); v && (!hi || *v <= *hi)) hi = v, hi_ex = true;
        if (!lo && !hi) return integer ? integer_rule() : number_rule();
        // Integer bounds, rounded inwards.
        std::optional<int64_t> ilo, ihi;
        if (lo) ilo = static_cast<int64_t>(lo_ex ? std::floor(*lo) + 1 : std::ceil(*lo));
        if (hi) ihi = static_cast<int64_t>(hi_ex ? std::ceil(*hi) - 1 : std::floor(*hi));
        if (ilo && ihi && *ilo > *ihi) invalid(path, "no integer lies between the bounds");
        std::string body = int_range(ilo, ihi);
        if (!integer) {
            // i.ddd lies in [i, i+1) for i >= 0 and in (-(i+1), -i] for -i.ddd: keep those inside the bounds.
            const std::string frac = "\".\" [0-9]{1,16}";
            std::optional<int64_t> plo = ilo ? std::optional<int64_t>(std::max<int64_t>(*ilo, 0)) : std::optional<int64_t>(0);
            std::optional<int64_t> phi = ihi ? std::optional<int64_t>(*ihi - 1) : std::nullopt;
            if (!phi || *phi >= *plo) body += " | " + digits_range(to_digits(*plo), phi ? to_digits(*phi) : "") + " " + frac;
            std::optional<int64_t> nlo = ihi ? std::optional<int64_t>(std::max<int64_t>(0, -*ihi)) : std::optional<int64_t>(0);
            std::optional<int64_t> nhi = ilo ? std::optional<int64_t>(-*ilo - 1) : std::nullopt;
            if (!nhi || *nhi >= *nlo) body += " | \"-\" " + digits_range(to_digits(*nlo), nhi ? to_digits(*nhi) : "") + " " + frac;
        }
        return add(hint, body);
    }

    // ---- pattern: a regex subset -> GBNF over JSON string characters (no '"', '\' or control characters)
    std::string regex(const std::string& re, const std::string& path) {
        size_t i = 0;
        bool anchored_start = false, anchored_end = false;
        std::string body = re;
        if (!body.empty() && body[0] == '^') anchored_start = true, body.erase(0, 1);
        if (!body.empty() && body.back() == '$' && (body.size() < 2 || body[body.size() - 2] != '\\')) anchored_end = true, body.pop_back();
        std::string out = regex_alt(body, i, path);
        if (i != body.size()) unsupported("pattern", path, "unexpected ')' in '" + re + "'");
        const std::string any = "[^\"\\\\\\x00-\\x1F]*";
        return (anchored_start ? "" : any + " ") + "(" + out + ")" + (anchored_end ? "" : " " + any);
    }
    std::string regex_alt(const std::string& re, size_t& i, const std::string& path) {
        std::string out = regex_seq(re, i, path);
        while (i < re.size() && re[i] == '|') {
            ++i;
            out += " | " + regex_seq(re, i, path);
        }
        return out;
    }
    std::string regex_seq(const std::string& re, size_t& i, const std::string& path) {
        std::string out;
        while (i < re.size() && re[i] != '|' && re[i] != ')') {
            std::string atom;
            const char c = re[i];
            if (c == '(') {
                ++i;
                if (re.compare(i, 2, "?:") == 0) i += 2;
                else if (i < re.size() && re[i] == '?') unsupported("pattern", path, "lookaround and named groups");
                atom = "(" + regex_alt(re, i, path) + ")";
                if (i >= re.size() || re[i] != ')') unsupported("pattern", path, "unbalanced '('");
                ++i;
            } else if (c == '[') {
                atom = regex_class(re, i, path);
            } else if (c == '.') {
                ++i;
                atom = "[^\"\\\\\\x00-\\x1F]";
            } else if (c == '\\') {
                if (i + 1 >= re.size()) unsupported("pattern", path, "trailing '\\'");
                const char e = re[i + 1];
                i += 2;
                switch (e) {
                    case 'd': atom = "[0-9]"; break;
                    case 'D': atom = emit_class({{'0', '9'}}, true); break;
                    case 'w': atom = "[a-zA-Z0-9_]"; break;
                    case 'W': atom = emit_class({{'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {'_', '_'}}, true); break;
                    case 's': atom = "[ ]"; break;  // JSON strings hold other whitespace only escaped
                    case 'S': atom = emit_class({{' ', ' '}}, true); break;
                    default:
                        if (std::isalnum(static_cast<unsigned char>(e))) unsupported("pattern", path, std::string("escape '\\") + e + "'");
                        if (e == '"' || e == '\\') unsupported("pattern", path, "'\"' or '\\' in a pattern");
                        atom = literal(std::string(1, e));
                }
            } else if (c == '*' || c == '+' || c == '?' || c == '{') {
                unsupported("pattern", path, "a quantifier with nothing before it");
            } else if (c == '^' || c == '$') {
                unsupported("pattern", path, "'^' and '$' are supported only at the ends");
            } else if (c == '"') {
                unsupported("pattern", path, "'\"' in a pattern");
            } else {
                // one UTF-8 character
                size_t len = 1;
                const auto b = static_cast<unsigned char>(c);
                if (b >= 0xF0) len = 4;
                else if (b >= 0xE0) len = 3;
                else if (b >= 0xC0) len = 2;
                atom = literal(re.substr(i, len));
                i += len;
            }
            // quantifier
            if (i < re.size() && (re[i] == '*' || re[i] == '+' || re[i] == '?')) {
                atom += re[i++];
                if (i < re.size() && (re[i] == '?' || re[i] == '+')) unsupported("pattern", path, "lazy and possessive quantifiers");
            } else if (i < re.size() && re[i] == '{') {
                size_t close = re.find('}', i);
                if (close == std::string::npos) unsupported("pattern", path, "unterminated '{'");
                std::string q = re.substr(i, close - i + 1);
                for (char qc : q.substr(1, q.size() - 2))
                    if (!std::isdigit(static_cast<unsigned char>(qc)) && qc != ',') unsupported("pattern", path, "quantifier '" + q + "'");
                atom += q;
                i = close + 1;
            }
            out += (out.empty() ? "" : " ") + atom;
        }
        return out.empty() ? "\"\"" : out;
    }
    // [...] -> a GBNF class holding only characters a JSON string may carry unescaped.
    static std::string emit_class(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated) {
        auto hexc = [](uint32_t cp) {
            char buf[16];
            std::snprintf(buf, sizeof buf, cp <= 0xFF ? "\\x%02X" : cp <= 0xFFFF ? "\\u%04X" : "\\U%08X", cp);
            return std::string(buf);
        };
        const std::vector<std::pair<uint32_t, uint32_t>> banned = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
        std::string out;
        if (negated) {
            for (auto& b : banned) ranges.push_back(b);
            out = "[^";
        } else {
            std::vector<std::pair<uint32_t, uint32_t>> kept;
            for (auto r : ranges) {
                std::vector<std::pair<uint32_t, uint32_t>> parts{r};
                for (auto& b : banned) {
                    std::vector<std::pair<uint32_t, uint32_t>> next;
                    for (auto& [lo, hi] : parts) {
                        if (hi < b.first || lo > b.second) {
                            next.emplace_back(lo, hi);
                            continue;
                        }
                        if (lo < b.first) next.emplace_back(lo, b.first - 1);
                        if (hi > b.second) next.emplace_back(b.second + 1, hi);
                    }
                    parts = next;
                }
                kept.insert(kept.end(), parts.begin(), parts.end());
            }
            ranges = kept;
            if (ranges.empty()) return "";
            out = "[";
        }
        for (auto& [lo, hi] : ranges) out += lo == hi ? hexc(lo) : hexc(lo) + "-" + hexc(hi);
        return out + "]";
    }
    static uint32_t utf8_at(const std::string& s, size_t& i) {
        const auto b = static_cast<unsigned char>(s[i]);
        size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1Fu) : len == 3 ? (b & 0x0Fu) : (b & 0x07u);
        for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
        i += len;
        return cp;
    }
    std::string regex_class(const std::string& re, size_t& i, const std::string& path) {
        ++i;  // '['
        bool neg = false;
        if (i < re.size() && re[i] == '^') neg = true, ++i;
        std::vector<std::pair<uint32_t, uint32_t>> ranges;
        bool first = true;
        auto one = [&](uint32_t& cp) -> bool {  // false: a class escape was added instead
            if (re[i] != '\\') {
                cp = utf8_at(re, i);
                return true;
            }
            if (i + 1 >= re.size()) unsupported("pattern", path, "trailing '\\'");
            const char e = re[i + 1];
            i += 2;
            switch (e) {
                case 'd': ranges.push_back({'0', '9'}); return false;
                case 'w': ranges.insert(ranges.end(), {{'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {'_', '_'}}); return false;
                case 's': ranges.push_back({' ', ' '}); return false;
                default:
                    if (std::isalnum(static_cast<unsigned char>(e))) unsupported("pattern", path, std::string("escape '\\") + e + "' in a class");
                    cp = static_cast<unsigned char>(e);
                    return true;
            }
        };
        while (i < re.size() && (re[i] != ']' || first)) {
            first = false;
            uint32_t lo = 0, hi = 0;
            if (!one(lo)) continue;
            hi = lo;
            if (i + 1 < re.size() && re[i] == '-' && re[i + 1] != ']') {
                ++i;
                if (!one(hi)) unsupported("pattern", path, "a range ending in a class escape");
                if (hi < lo) unsupported("pattern", path, "a backwards range");
            }
            ranges.emplace_back(lo, hi);
        }
        if (i >= re.size()) unsupported("pattern", path, "unterminated '['");
        ++i;
        std::string cls = emit_class(ranges, neg);
        if (cls.empty()) unsupported("pattern", path, "a class of only characters a JSON string must escape");
        return cls;
    }
};

}  // namespace

std::string json_schema_rules(const nlohmann::json& schema, const std::string& prefix) { return Converter(schema).run(prefix); }

std::string json_schema_to_gbnf(std::string_view schema_json) {
    json schema;
    try {
        schema = json::parse(schema_json);
    } catch (const json::exception& e) {
        throw Error(std::string("JSON Schema is not valid JSON: ") + e.what());
    }
    return Converter(schema).run();
}

}  // namespace minerva
