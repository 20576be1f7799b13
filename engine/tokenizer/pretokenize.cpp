// Pre-tokenizer rule sets and the PCRE2 splitter (see pretokenize.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pretokenize.h"

#include <pcre2.h>

#include <map>

#include "minerva/error.h"
#include "unicode.h"

namespace minerva {
namespace {

// The regexes, as the reference tokenizer (llama.cpp) defines them for each tokenizer.ggml.pre.
// Character classes: \p{L} letters, \p{N} numbers, \p{P} punctuation (Unicode categories).

// GPT-2: contractions, optional space + letters / numbers / other, whitespace not before text.
constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
// Llama 3: case-insensitive contractions, up to 3 digits per piece, newlines kept together.
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen2: as Llama 3 but one digit per piece.
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Tekken (Mistral Nemo): upper-then-lower letter runs; ASCII-case trick as in the reference.
constexpr const char* kTekken =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|"
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// BLOOM-style: runs of anything but whitespace and a few punctuation marks.
constexpr const char* kBloom = " ?[^(\\s|.,!?…。，、।۔،)]+";

// The reference matches the regexes with literal (non-\p) character classes against text in
// which every non-ASCII whitespace character has been replaced by U+000B, so such a class never
// matches whitespace even where its ranges include, say, U+3000. `(?:(?!\s)[...])` says the same.
constexpr const char* kCjkRun = "(?:(?!\\s)[一-龥ࠀ-一가-퟿])+";

std::vector<PreTokenizerRules> build_rules() {
    std::vector<PreTokenizerRules> r;
    r.push_back({"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false});
    r.push_back({"gpt-2", {kGpt2}, false, false});
    r.push_back({"llama3", {kLlama3}, true, true});
    r.push_back({"dbrx", {kLlama3}, false, false});
    r.push_back({"qwen2", {kQwen2}, false, false});
    // deepseek-llm's letter class (cased letters) is written with escapes: several of its code
    // points (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are singletons that Unicode
    // normalisation of the source text would silently replace.
    r.push_back({"deepseek-llm",
                 {"[\r\n]",
                  "\\s?["
                  "\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
                  "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
                  "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
                  "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
                  "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}"
                  "\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
                  "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"
                  "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}"
                  "\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}"
                  "\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}"
                  "\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
                  "]+",
                  "\\s?(?:(?!\\s)[!-/:-~！-／：-～‘-‟　-。])+",
                  "\\s+$",
                  kCjkRun,
                  "\\p{N}+"},
                 false, false});
    r.push_back({"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkRun, "\\p{N}"}, false, false});
    r.push_back({"deepseek-v3",
                 {"\\p{N}{1,3}",
                  "[一-龥぀-ゟ゠-ヿ]+",
                  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
                  " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
                 false, false});
    r.push_back({"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}, false, false});
    r.push_back({"starcoder", {"\\p{N}", kGpt2}, false, false});
    r.push_back({"bloom", {kBloom}, false, false});
    r.push_back({"viking", {kBloom, "\\p{N}"}, false, false});
    r.push_back({"tekken", {kTekken}, true, true});
    return r;
}

const std::vector<PreTokenizerRules>& all_rules() {
    static const std::vector<PreTokenizerRules> rules = build_rules();
    return rules;
}

// tokenizer.ggml.pre value -> rule set name. Several model families share one rule set.
const std::map<std::string, std::string, std::less<>>& aliases() {
    static const std::map<std::string, std::string, std::less<>> m = {
        {"default", "default"},
        {"gpt-2", "gpt-2"}, {"gpt2", "gpt-2"}, {"mpt", "gpt-2"}, {"olmo", "gpt-2"}, {"jais", "gpt-2"},
        {"phi-2", "gpt-2"}, {"jina-es", "gpt-2"}, {"jina-de", "gpt-2"}, {"jina-v2-es", "gpt-2"},
        {"jina-v2-de", "gpt-2"}, {"jina-v1-en", "gpt-2"}, {"jina-v2-code", "gpt-2"},
        {"roberta-bpe", "gpt-2"}, {"gigachat", "gpt-2"},
        {"llama3", "llama3"}, {"llama-v3", "llama3"}, {"llama-bpe", "llama3"}, {"falcon3", "llama3"},
        {"falcon-h1", "llama3"}, {"pixtral", "llama3"},
        {"dbrx", "dbrx"}, {"smaug-bpe", "dbrx"}, {"chatglm-bpe", "dbrx"}, {"glm4", "dbrx"},
        {"qwen2", "qwen2"}, {"deepseek-r1-qwen", "qwen2"}, {"megrez", "qwen2"}, {"stablelm2", "qwen2"},
        {"deepseek-llm", "deepseek-llm"},
        {"deepseek-coder", "deepseek-coder"},
        {"deepseek-v3", "deepseek-v3"},
        {"falcon", "falcon"},
        {"starcoder", "starcoder"}, {"refact", "starcoder"}, {"command-r", "starcoder"},
        {"smollm", "starcoder"}, {"codeshell", "starcoder"}, {"exaone", "starcoder"},
        {"minerva-7b", "starcoder"},
        {"bloom", "bloom"}, {"poro-chat", "bloom"}, {"gpt3-finnish", "bloom"},
        {"viking", "viking"},
        {"tekken", "tekken"},
    };
    return m;
}

// Every whitespace character of the reference tokenizer (Unicode White_Space), as the inside
// of a character class. PCRE2's own \s in UCP mode lacks U+0085.
constexpr const char* kWhitespaceClass =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Per-thread PCRE2 match state: the match data, a match context and a JIT stack big enough
// for long runs (megabytes of spaces).
struct MatchScratch {
    pcre2_match_data* md = nullptr;
    pcre2_match_context* mctx = nullptr;
    pcre2_jit_stack* stack = nullptr;
    MatchScratch() {
        md = pcre2_match_data_create(1, nullptr);
        mctx = pcre2_match_context_create(nullptr);
        stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
        if (!md || !mctx) throw Error("pre-tokenizer: out of memory creating PCRE2 match data");
        if (stack) pcre2_jit_stack_assign(mctx, nullptr, stack);
    }
    ~MatchScratch() {
        pcre2_jit_stack_free(stack);
        pcre2_match_context_free(mctx);
        pcre2_match_data_free(md);
    }
};

MatchScratch& scratch() {
    thread_local MatchScratch s;
    return s;
}

}  // namespace

std::string pcre2_pattern_for(std::string_view regex) {
    std::string out;
    bool in_class = false;
    for (size_t i = 0; i < regex.size(); ++i) {
        const char c = regex[i];
        if (c == '\\' && i + 1 < regex.size()) {
            const char n = regex[++i];
            if (n == 's') {
                out += in_class ? std::string(kWhitespaceClass) : "[" + std::string(kWhitespaceClass) + "]";
            } else if (n == 'S') {
                if (in_class) throw Error("pre-tokenizer regex: \\S inside a character class is not supported");
                out += "[^" + std::string(kWhitespaceClass) + "]";
            } else {
                out += c;
                out += n;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal, not the end of the class.
            if (i + 1 < regex.size() && regex[i + 1] == '^') out += regex[++i];
            if (i + 1 < regex.size() && regex[i + 1] == ']') out += regex[++i];
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        out += c;
    }
    return out;
}

const PreTokenizerRules* find_pre_tokenizer_rules(std::string_view pre) {
    auto it = aliases().find(pre);
    if (it == aliases().end()) return nullptr;
    for (const auto& r : all_rules())
        if (r.name == it->second) return &r;
    return nullptr;
}

std::vector<std::string> known_pre_tokenizer_names() {
    std::vector<std::string> names;
    for (const auto& [k, v] : aliases()) names.push_back(k);
    return names;
}

struct PreTokenizer::Compiled {
    pcre2_code* code = nullptr;
    ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(const PreTokenizerRules& rules) : rules_(rules) {
    for (const auto& rx : rules_.regexes) {
        const std::string pattern = pcre2_pattern_for(rx);
        int err = 0;
        PCRE2_SIZE err_off = 0;
        auto c = std::make_unique<Compiled>();
        c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &err,
                                &err_off, nullptr);
        if (!c->code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw Error("pre-tokenizer '" + rules_.name + "': regex does not compile at offset " +
                        std::to_string(err_off) + ": " + reinterpret_cast<const char*>(msg));
        }
        // JIT is an optimisation: without it (unsupported CPU) the interpreter gives the same result.
        pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);
        compiled_.push_back(std::move(c));
    }
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
    if (text.empty()) return;
    MatchScratch& s = scratch();
    std::vector<std::string_view> cur{text}, next;
    for (const auto& c : compiled_) {
        next.clear();
        next.reserve(cur.size() * 2);
        for (std::string_view seg : cur) {
            size_t pos = 0, gap = 0;
            while (pos < seg.size()) {
                const int rc = pcre2_match(c->code, reinterpret_cast<PCRE2_SPTR>(seg.data()), seg.size(), pos, 0,
                                           s.md, s.mctx);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    throw Error("pre-tokenizer '" + rules_.name + "': regex match failed: " +
                                reinterpret_cast<const char*>(msg));
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
                const size_t b = ov[0], e = ov[1];
                if (e <= b) {  // an empty match splits nothing; step over one character
                    pos = b + unicode::utf8_len(static_cast<uint8_t>(seg[b < seg.size() ? b : seg.size() - 1]));
                    continue;
                }
                if (b > gap) next.push_back(seg.substr(gap, b - gap));
                next.push_back(seg.substr(b, e - b));
                pos = gap = e;
            }
            if (gap < seg.size()) next.push_back(seg.substr(gap));
        }
        cur.swap(next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
}

}  // namespace minerva
