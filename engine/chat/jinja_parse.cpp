// jinja_parse.cpp: the lexer and recursive-descent parser of the Jinja subset (see jinja.h).
// The grammar and operator precedence follow Jinja2's parser: conditional < or < and < not <
// comparisons (==, !=, <, >, <=, >=, in, not in) < + - < ~ < * / // % < ** < unary - < postfix
// (.attr, [index], (call)) < filters (|f) and tests (is t).
#include <algorithm>
#include <cctype>
#include <cstring>

#include "jinja_ast.h"
#include "minerva/error.h"

namespace minerva::jinja {

namespace {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };

struct Token {
    Tok type;
    std::string text;
    int line;
};

const char* tok_name(Tok t) {
    switch (t) {
        case Tok::Text: return "text";
        case Tok::VarBegin: return "'{{'";
        case Tok::VarEnd: return "'}}'";
        case Tok::BlockBegin: return "'{%'";
        case Tok::BlockEnd: return "'%}'";
        case Tok::Name: return "name";
        case Tok::String: return "string";
        case Tok::Int: return "integer";
        case Tok::Float: return "number";
        case Tok::Op: return "operator";
        case Tok::End: return "end of template";
    }
    return "?";
}

[[noreturn]] void fail(int line, const std::string& msg) {
    throw Error("chat template line " + std::to_string(line) + ": " + msg);
}

// ---- lexer -------------------------------------------------------------------------------

class Lexer {
public:
    Lexer(std::string_view src, const Options& opts) : src_(src), opts_(opts) {}

    std::vector<Token> run() {
        size_t pos = 0;
        bool strip_next = false;  // a '-' closed the previous tag: strip leading whitespace
        bool trim_newline = false;  // trim_blocks: drop one newline after a block tag
        while (pos < src_.size()) {
            size_t open = find_tag(pos);
            std::string text(src_.substr(pos, open - pos));
            bool line_start = pos == 0;  // does the text chunk begin at the start of a line?
            if (strip_next) {
                size_t k = 0;
                while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
                text.erase(0, k);
            } else if (trim_newline) {
                if (text.rfind("\r\n", 0) == 0) text.erase(0, 2), line_start = true;
                else if (!text.empty() && text[0] == '\n') text.erase(0, 1), line_start = true;
            }
            strip_next = trim_newline = false;
            if (open < src_.size()) {
                char kind = src_[open + 1];
                char mod = open + 2 < src_.size() ? src_[open + 2] : 0;
                if (mod == '-') {
                    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
                } else if (mod != '+' && opts_.lstrip_blocks && (kind == '%' || kind == '#')) {
                    size_t nl = text.find_last_of('\n');
                    size_t from = nl == std::string::npos ? 0 : nl + 1;
                    bool blank = text.find_first_not_of(" \t", from) == std::string::npos;
                    if ((nl != std::string::npos || line_start) && blank) text.erase(from);
                }
            }
            if (!text.empty()) push(Tok::Text, text, line_at(pos));
            if (open >= src_.size()) break;

            char kind = src_[open + 1];
            size_t inner = open + 2;
            if (inner < src_.size() && (src_[inner] == '-' || src_[inner] == '+')) ++inner;
            if (kind == '#') {
                size_t close = src_.find("#}", inner);
                if (close == std::string_view::npos) fail(line_at(open), "unterminated comment '{#'");
                strip_next = close > inner && src_[close - 1] == '-';
                trim_newline = opts_.trim_blocks && !(close > inner && src_[close - 1] == '+');
                pos = close + 2;
                continue;
            }
            bool is_block = kind == '%';
            push(is_block ? Tok::BlockBegin : Tok::VarBegin, "", line_at(open));
            // raw blocks: the text up to {% endraw %} is output verbatim
            size_t p = inner;
            while (p < src_.size() && std::isspace(static_cast<unsigned char>(src_[p]))) ++p;
            if (is_block && src_.compare(p, 3, "raw") == 0 && p + 3 < src_.size() &&
                !std::isalnum(static_cast<unsigned char>(src_[p + 3])) && src_[p + 3] != '_') {
                pos = lex_raw(open, p + 3);
                continue;
            }
            auto [end, mod] = lex_expr(inner, is_block);
            strip_next = mod == '-';
            trim_newline = is_block && opts_.trim_blocks && mod != '+';
            pos = end;
        }
        push(Tok::End, "", line_at(src_.size()));
        return std::move(toks_);
    }

private:
    std::string_view src_;
    Options opts_;
    std::vector<Token> toks_;

    void push(Tok t, std::string text, int line) { toks_.push_back({t, std::move(text), line}); }

    // Line of a position; positions are asked for mostly in increasing order, so the count
    // continues from the last answer (linear in the template, not quadratic).
    mutable size_t line_pos_ = 0;
    mutable int line_ = 1;
    int line_at(size_t pos) const {
        pos = std::min(pos, src_.size());
        if (pos < line_pos_) line_pos_ = 0, line_ = 1;
        for (; line_pos_ < pos; ++line_pos_) line_ += src_[line_pos_] == '\n';
        return line_;
    }
    size_t find_tag(size_t pos) const {
        while (true) {
            size_t p = src_.find('{', pos);
            if (p == std::string_view::npos || p + 1 >= src_.size()) return src_.size();
            char c = src_[p + 1];
            if (c == '{' || c == '%' || c == '#') return p;
            pos = p + 1;
        }
    }

    size_t lex_raw(size_t open, size_t p) {
        size_t close = src_.find("%}", p);
        if (close == std::string_view::npos) fail(line_at(open), "unterminated '{% raw'");
        push(Tok::Name, "raw", line_at(open));
        push(Tok::BlockEnd, "", line_at(open));
        size_t body = close + 2;
        size_t search = body;
        while (true) {
            size_t tag = src_.find("{%", search);
            if (tag == std::string_view::npos) fail(line_at(open), "'{% raw %}' without '{% endraw %}'");
            size_t q = tag + 2;
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
            while (q < src_.size() && std::isspace(static_cast<unsigned char>(src_[q]))) ++q;
            if (src_.compare(q, 6, "endraw") == 0) {
                size_t end = src_.find("%}", q);
                if (end == std::string_view::npos) fail(line_at(tag), "unterminated '{% endraw'");
                std::string text(src_.substr(body, tag - body));
                if (src_[tag + 2] == '-')
                    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
                push(Tok::Text, text, line_at(body));
                push(Tok::BlockBegin, "", line_at(tag));
                push(Tok::Name, "endraw", line_at(tag));
                push(Tok::BlockEnd, "", line_at(tag));
                return end + 2;
            }
            search = tag + 2;
        }
    }

    // Tokenises an expression up to '}}' or '%}'. Returns the position after the closing
    // delimiter and its whitespace modifier ('-', '+' or 0).
    std::pair<size_t, char> lex_expr(size_t p, bool is_block) {
        const char close = is_block ? '%' : '}';
        size_t start = p;
        while (true) {
            while (p < src_.size() && std::isspace(static_cast<unsigned char>(src_[p]))) ++p;
            if (p >= src_.size())
                fail(line_at(start), std::string("unterminated '") + (is_block ? "{%" : "{{") + "'");
            int line = line_at(p);
            char c = src_[p];
            // closing delimiter, possibly with a '-' or '+' modifier
            if ((c == '-' || c == '+') && p + 2 < src_.size() && src_[p + 1] == close && src_[p + 2] == '}') {
                push(is_block ? Tok::BlockEnd : Tok::VarEnd, "", line);
                return {p + 3, c};
            }
            if (c == close && p + 1 < src_.size() && src_[p + 1] == '}') {
                push(is_block ? Tok::BlockEnd : Tok::VarEnd, "", line);
                return {p + 2, 0};
            }
            if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
                size_t q = p;
                while (q < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
                push(Tok::Name, std::string(src_.substr(p, q - p)), line);
                p = q;
            } else if (std::isdigit(static_cast<unsigned char>(c))) {
                size_t q = p;
                bool is_float = false;
                while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
                if (q + 1 < src_.size() && src_[q] == '.' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
                    is_float = true;
                    ++q;
                    while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) ++q;
                }
                if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
                    size_t r = q + 1;
                    if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
                    if (r < src_.size() && std::isdigit(static_cast<unsigned char>(src_[r]))) {
                        is_float = true;
                        q = r;
                        while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) ++q;
                    }
                }
                std::string num;
                for (size_t k = p; k < q; ++k)
                    if (src_[k] != '_') num += src_[k];
                push(is_float ? Tok::Float : Tok::Int, num, line);
                p = q;
            } else if (c == '\'' || c == '"') {
                std::string s;
                size_t q = p + 1;
                while (true) {
                    if (q >= src_.size()) fail(line, "unterminated string literal");
                    char d = src_[q];
                    if (d == c) break;
                    if (d == '\\' && q + 1 < src_.size()) {
                        char e = src_[q + 1];
                        q += 2;
                        switch (e) {
                            case 'n': s += '\n'; break;
                            case 't': s += '\t'; break;
                            case 'r': s += '\r'; break;
                            case 'b': s += '\b'; break;
                            case 'f': s += '\f'; break;
                            case '0': s += '\0'; break;
                            case '\\': s += '\\'; break;
                            case '\'': s += '\''; break;
                            case '"': s += '"'; break;
                            case '\n': break;
                            default: s += '\\'; s += e; break;
                        }
                        continue;
                    }
                    s += d;
                    ++q;
                }
                push(Tok::String, s, line);
                p = q + 1;
            } else {
                static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
                std::string op;
                for (const char* t : two)
                    if (src_.compare(p, 2, t) == 0) op = t;
                if (op.empty()) {
                    if (!std::strchr("+-*/%~<>=()[]{},.:|", c)) fail(line, std::string("unexpected character '") + c + "'");
                    op = std::string(1, c);
                }
                push(Tok::Op, op, line);
                p += op.size();
            }
        }
    }
};

// ---- parser ------------------------------------------------------------------------------

NodePtr make(Node::Kind k, int line) {
    auto n = std::make_shared<Node>();
    n->kind = k;
    n->line = line;
    return n;
}

class Parser {
public:
    explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

    NodePtr parse_template() {
        auto body = parse_body({});
        return body;
    }

private:
    std::vector<Token> t_;
    size_t i_ = 0;
    int depth_ = 0;

    // Bounds the recursion of nested expressions and blocks, so that "((((..." is an Error
    // rather than a stack overflow.
    struct Nest {
        Parser& p;
        explicit Nest(Parser& p_) : p(p_) {
            if (++p.depth_ > 200) fail(p.peek().line, "nesting too deep (more than 200 levels)");
        }
        ~Nest() { --p.depth_; }
    };

    const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
    const Token& next() {
        const Token& t = t_[i_];
        if (i_ + 1 < t_.size()) ++i_;
        return t;
    }
    bool is_op(const char* op, size_t k = 0) const { return peek(k).type == Tok::Op && peek(k).text == op; }
    bool is_name(const char* n, size_t k = 0) const { return peek(k).type == Tok::Name && peek(k).text == n; }
    std::string describe(const Token& t) const {
        if (t.type == Tok::Name || t.type == Tok::Op) return "'" + t.text + "'";
        if (t.type == Tok::String) return "string '" + t.text + "'";
        return tok_name(t.type);
    }
    void expect_op(const char* op) {
        if (!is_op(op)) fail(peek().line, std::string("expected '") + op + "', got " + describe(peek()));
        next();
    }
    void expect(Tok type) {
        if (peek().type != type) fail(peek().line, std::string("expected ") + tok_name(type) + ", got " + describe(peek()));
        next();
    }
    void expect_name(const char* n) {
        if (!is_name(n)) fail(peek().line, std::string("expected '") + n + "', got " + describe(peek()));
        next();
    }
    std::string name() {
        if (peek().type != Tok::Name) fail(peek().line, "expected a name, got " + describe(peek()));
        return next().text;
    }

    // Parses text, output and statements until a block tag whose keyword is in `until`
    // (left unconsumed, positioned at its '{%').
    NodePtr parse_body(std::initializer_list<const char*> until) {
        Nest nest(*this);
        auto block = make(Node::Kind::Block, peek().line);
        while (true) {
            const Token& t = peek();
            if (t.type == Tok::End) {
                if (until.size()) {
                    std::string want;
                    for (const char* u : until) want += std::string(want.empty() ? "" : " or ") + "'" + u + "'";
                    fail(t.line, "unexpected end of template: missing " + want);
                }
                return block;
            }
            if (t.type == Tok::Text) {
                auto n = make(Node::Kind::Text, t.line);
                n->s = t.text;
                block->kids.push_back(n);
                next();
            } else if (t.type == Tok::VarBegin) {
                next();
                auto n = make(Node::Kind::Output, t.line);
                n->kids.push_back(parse_expression());
                expect(Tok::VarEnd);
                block->kids.push_back(n);
            } else if (t.type == Tok::BlockBegin) {
                const Token& kw = peek(1);
                if (kw.type != Tok::Name) fail(kw.line, "expected a tag name after '{%', got " + describe(kw));
                for (const char* u : until)
                    if (kw.text == u) return block;
                if ((kw.text.rfind("end", 0) == 0 && kw.text != "endgeneration") || kw.text == "elif" || kw.text == "else")
                    fail(kw.line, "unexpected '" + kw.text + "' tag");
                next();  // '{%'
                if (auto n = parse_statement()) block->kids.push_back(n);
            } else {
                fail(t.line, "unexpected " + describe(t));
            }
        }
    }

    void end_tag(const char* kw) {
        expect(Tok::BlockBegin);
        expect_name(kw);
        expect(Tok::BlockEnd);
    }

    NodePtr parse_statement() {
        const Token& kw = next();
        int line = kw.line;
        const std::string k = kw.text;
        if (k == "if") {
            auto n = make(Node::Kind::If, line);
            n->kids.push_back(parse_expression());
            expect(Tok::BlockEnd);
            n->kids.push_back(parse_body({"elif", "else", "endif"}));
            while (true) {
                expect(Tok::BlockBegin);
                std::string w = name();
                if (w == "elif") {
                    n->kids.push_back(parse_expression());
                    expect(Tok::BlockEnd);
                    n->kids.push_back(parse_body({"elif", "else", "endif"}));
                } else if (w == "else") {
                    expect(Tok::BlockEnd);
                    n->kids.push_back(nullptr);
                    n->kids.push_back(parse_body({"endif"}));
                    end_tag("endif");
                    break;
                } else {
                    expect(Tok::BlockEnd);
                    break;
                }
            }
            return n;
        }
        if (k == "for") {
            auto n = make(Node::Kind::For, line);
            n->names.push_back(name());
            while (is_op(",")) {
                next();
                n->names.push_back(name());
            }
            expect_name("in");
            n->kids.push_back(parse_tuple(false));
            NodePtr cond;
            if (is_name("if")) {
                next();
                cond = parse_expression();
            }
            if (is_name("recursive")) fail(peek().line, "recursive loops are not supported");
            expect(Tok::BlockEnd);
            n->kids.push_back(cond);
            n->kids.push_back(parse_body({"else", "endfor"}));
            expect(Tok::BlockBegin);
            if (name() == "else") {
                expect(Tok::BlockEnd);
                n->kids.push_back(parse_body({"endfor"}));
                end_tag("endfor");
            } else {
                expect(Tok::BlockEnd);
                n->kids.push_back(nullptr);
            }
            return n;
        }
        if (k == "set") {
            auto target = parse_set_target();
            if (peek().type == Tok::BlockEnd) {  // {% set x %}...{% endset %}
                next();
                auto n = make(Node::Kind::SetBlock, line);
                n->kids.push_back(target);
                n->kids.push_back(parse_body({"endset"}));
                end_tag("endset");
                return n;
            }
            expect_op("=");
            auto n = make(Node::Kind::Set, line);
            n->kids.push_back(target);
            n->kids.push_back(parse_tuple(true));
            expect(Tok::BlockEnd);
            return n;
        }
        if (k == "macro") {
            auto n = make(Node::Kind::Macro, line);
            n->s = name();
            expect_op("(");
            while (!is_op(")")) {
                std::string p = name();
                NodePtr def;
                if (is_op("=")) {
                    next();
                    def = parse_expression();
                }
                n->kwargs.push_back({p, def});
                if (!is_op(")")) expect_op(",");
            }
            next();
            expect(Tok::BlockEnd);
            n->kids.push_back(parse_body({"endmacro"}));
            end_tag("endmacro");
            return n;
        }
        if (k == "break" || k == "continue") {
            expect(Tok::BlockEnd);
            return make(k == "break" ? Node::Kind::Break : Node::Kind::Continue, line);
        }
        if (k == "raw") {
            expect(Tok::BlockEnd);
            auto body = parse_body({"endraw"});
            end_tag("endraw");
            return body;
        }
        if (k == "filter") {
            auto n = make(Node::Kind::FilterBlock, line);
            n->s = name();
            parse_call_args(*n);
            expect(Tok::BlockEnd);
            n->kids.insert(n->kids.begin(), parse_body({"endfilter"}));
            end_tag("endfilter");
            return n;
        }
        if (k == "generation" || k == "endgeneration") {  // Hugging Face's assistant-mask markers
            expect(Tok::BlockEnd);
            return nullptr;
        }
        fail(line, "unknown tag '" + k + "'");
    }

    NodePtr parse_set_target() {
        int line = peek().line;
        std::string first = name();
        if (is_op(".")) {
            next();
            auto n = make(Node::Kind::Attr, line);
            auto base = make(Node::Kind::Name, line);
            base->s = first;
            n->kids.push_back(base);
            n->s = name();
            return n;
        }
        if (is_op(",")) {
            auto n = make(Node::Kind::Tuple, line);
            auto add = [&](std::string s) {
                auto v = make(Node::Kind::Name, line);
                v->s = std::move(s);
                n->kids.push_back(v);
            };
            add(first);
            while (is_op(",")) {
                next();
                add(name());
            }
            return n;
        }
        auto n = make(Node::Kind::Name, line);
        n->s = first;
        return n;
    }

    // expression [, expression ...] (a bare tuple, as in `for x in a, b` or `set a, b = 1, 2`)
    NodePtr parse_tuple(bool with_cond) {
        int line = peek().line;
        auto first = with_cond ? parse_expression() : parse_or();
        if (!is_op(",")) return first;
        auto n = make(Node::Kind::Tuple, line);
        n->kids.push_back(first);
        while (is_op(",")) {
            next();
            n->kids.push_back(with_cond ? parse_expression() : parse_or());
        }
        return n;
    }

    NodePtr parse_expression() {
        Nest nest(*this);
        auto a = parse_or();
        while (is_name("if")) {
            int line = next().line;
            auto n = make(Node::Kind::Cond, line);
            auto cond = parse_or();
            NodePtr other;
            if (is_name("else")) {
                next();
                other = parse_expression();
            }
            n->kids = {cond, a, other};
            a = n;
        }
        return a;
    }

    NodePtr binary(Node::Kind kind, std::string op, NodePtr a, NodePtr b, int line) {
        auto n = make(kind, line);
        n->s = std::move(op);
        n->kids = {std::move(a), std::move(b)};
        return n;
    }

    NodePtr parse_or() {
        auto a = parse_and();
        while (is_name("or")) {
            int line = next().line;
            a = binary(Node::Kind::Or, "or", a, parse_and(), line);
        }
        return a;
    }
    NodePtr parse_and() {
        auto a = parse_not();
        while (is_name("and")) {
            int line = next().line;
            a = binary(Node::Kind::And, "and", a, parse_not(), line);
        }
        return a;
    }
    NodePtr parse_not() {
        Nest nest(*this);
        if (is_name("not")) {
            int line = next().line;
            auto n = make(Node::Kind::Not, line);
            n->kids.push_back(parse_not());
            return n;
        }
        return parse_compare();
    }
    NodePtr parse_compare() {
        auto a = parse_math1();
        while (true) {
            int line = peek().line;
            if (peek().type == Tok::Op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                           peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
                std::string op = next().text;
                a = binary(Node::Kind::Binary, op, a, parse_math1(), line);
            } else if (is_name("in")) {
                next();
                a = binary(Node::Kind::Binary, "in", a, parse_math1(), line);
            } else if (is_name("not") && is_name("in", 1)) {
                next();
                next();
                a = binary(Node::Kind::Binary, "not in", a, parse_math1(), line);
            } else {
                return a;
            }
        }
    }
    NodePtr parse_math1() {
        auto a = parse_concat();
        while (is_op("+") || is_op("-")) {
            const Token& t = next();
            a = binary(Node::Kind::Binary, t.text, a, parse_concat(), t.line);
        }
        return a;
    }
    NodePtr parse_concat() {
        auto a = parse_math2();
        while (is_op("~")) {
            int line = next().line;
            a = binary(Node::Kind::Binary, "~", a, parse_math2(), line);
        }
        return a;
    }
    NodePtr parse_math2() {
        auto a = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const Token& t = next();
            a = binary(Node::Kind::Binary, t.text, a, parse_pow(), t.line);
        }
        return a;
    }
    NodePtr parse_pow() {
        auto a = parse_unary();
        while (is_op("**")) {
            int line = next().line;
            a = binary(Node::Kind::Binary, "**", a, parse_unary(), line);
        }
        return a;
    }
    NodePtr parse_unary() {
        Nest nest(*this);
        if (is_op("-") || is_op("+")) {
            const Token& t = next();
            auto n = make(Node::Kind::Unary, t.line);
            n->s = t.text;
            n->kids.push_back(parse_unary());
            return parse_filters(n);
        }
        return parse_filters(parse_postfix(parse_primary()));
    }

    NodePtr parse_primary() {
        const Token& t = peek();
        int line = t.line;
        if (t.type == Tok::Name) {
            next();
            auto n = make(Node::Kind::Literal, line);
            if (t.text == "true" || t.text == "True") n->value = Value(true);
            else if (t.text == "false" || t.text == "False") n->value = Value(false);
            else if (t.text == "none" || t.text == "None") n->value = Value::none();
            else {
                n->kind = Node::Kind::Name;
                n->s = t.text;
            }
            return n;
        }
        if (t.type == Tok::String) {
            std::string s;
            while (peek().type == Tok::String) s += next().text;  // adjacent literals concatenate
            auto n = make(Node::Kind::Literal, line);
            n->value = Value(s);
            return n;
        }
        if (t.type == Tok::Int || t.type == Tok::Float) {
            next();
            auto n = make(Node::Kind::Literal, line);
            try {
                n->value = t.type == Tok::Int ? Value(static_cast<int64_t>(std::stoll(t.text))) : Value(std::stod(t.text));
            } catch (const std::exception&) {
                fail(line, "number out of range: " + t.text);
            }
            return n;
        }
        if (is_op("(")) {
            next();
            if (is_op(")")) {
                next();
                return make(Node::Kind::Tuple, line);
            }
            auto e = parse_expression();
            if (is_op(",")) {
                auto n = make(Node::Kind::Tuple, line);
                n->kids.push_back(e);
                while (is_op(",")) {
                    next();
                    if (is_op(")")) break;
                    n->kids.push_back(parse_expression());
                }
                e = n;
            }
            expect_op(")");
            return e;
        }
        if (is_op("[")) {
            next();
            auto n = make(Node::Kind::List, line);
            while (!is_op("]")) {
                n->kids.push_back(parse_expression());
                if (!is_op("]")) expect_op(",");
            }
            next();
            return n;
        }
        if (is_op("{")) {
            next();
            auto n = make(Node::Kind::Dict, line);
            while (!is_op("}")) {
                n->kids.push_back(parse_expression());
                expect_op(":");
                n->kids.push_back(parse_expression());
                if (!is_op("}")) expect_op(",");
            }
            next();
            return n;
        }
        fail(line, "expected an expression, got " + describe(t));
    }

    void parse_call_args(Node& n) {
        if (!is_op("(")) return;
        next();
        while (!is_op(")")) {
            if (peek().type == Tok::Name && is_op("=", 1)) {
                std::string key = next().text;
                next();
                n.kwargs.push_back({key, parse_expression()});
            } else {
                n.kids.push_back(parse_expression());
            }
            if (!is_op(")")) expect_op(",");
        }
        next();
    }

    NodePtr parse_postfix(NodePtr a) {
        while (true) {
            int line = peek().line;
            if (is_op(".")) {
                next();
                auto n = make(Node::Kind::Attr, line);
                n->kids.push_back(a);
                if (peek().type == Tok::Int) n->s = next().text;
                else n->s = name();
                a = n;
            } else if (is_op("[")) {
                next();
                NodePtr start, stop, step;
                bool slice = false;
                if (!is_op(":")) start = parse_expression();
                if (is_op(":")) {
                    slice = true;
                    next();
                    if (!is_op("]") && !is_op(":")) stop = parse_expression();
                    if (is_op(":")) {
                        next();
                        if (!is_op("]")) step = parse_expression();
                    }
                }
                expect_op("]");
                auto n = make(slice ? Node::Kind::Slice : Node::Kind::Index, line);
                n->kids = {a, start};
                if (slice) {
                    n->kids.push_back(stop);
                    n->kids.push_back(step);
                } else if (!start) {
                    fail(line, "empty subscript '[]'");
                }
                a = n;
            } else if (is_op("(")) {
                auto n = make(Node::Kind::Call, line);
                n->kids.push_back(a);
                parse_call_args(*n);
                a = n;
            } else {
                return a;
            }
        }
    }

    static bool test_takes_arg(const std::string& t) {
        static const char* with_arg[] = {"divisibleby", "equalto", "eq", "ne", "sameas", "gt", "lt", "ge", "le",
                                         "greaterthan", "lessthan", "in", "==", "!="};
        for (const char* w : with_arg)
            if (t == w) return true;
        return false;
    }

    NodePtr parse_filters(NodePtr a) {
        while (true) {
            int line = peek().line;
            if (is_op("|")) {
                next();
                auto n = make(Node::Kind::Filter, line);
                n->s = name();
                n->kids.push_back(a);
                parse_call_args(*n);
                a = n;
            } else if (is_name("is")) {
                next();
                auto n = make(Node::Kind::Test, line);
                if (is_name("not")) {
                    next();
                    n->flag = true;
                }
                n->kids.push_back(a);
                if (is_name("none") || is_name("true") || is_name("false")) n->s = next().text;
                else n->s = name();
                if (is_op("(")) {
                    parse_call_args(*n);
                } else if (test_takes_arg(n->s)) {
                    const Token& t = peek();
                    bool starts = t.type == Tok::Name || t.type == Tok::String || t.type == Tok::Int ||
                                  t.type == Tok::Float || is_op("(") || is_op("[") || is_op("{");
                    if (starts && !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if"))
                        n->kids.push_back(parse_postfix(parse_primary()));
                }
                a = n;
            } else {
                return a;
            }
        }
    }
};

}  // namespace

NodePtr parse(std::string_view source, const Options& opts) {
    Lexer lexer(source, opts);
    Parser parser(lexer.run());
    return parser.parse_template();
}

}  // namespace minerva::jinja
