// Vocab: built from a GGUF file's tokenizer.ggml.* metadata; splits special tokens out of the
// input and hands the rest to the SPM or BPE tokenizer; turns ids back into bytes.
#include "minerva/vocab.h"

#include "log/log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "minerva/error.h"
#include "pretokenize.h"
#include "tokenizer_bpe.h"
#include "tokenizer_data.h"
#include "tokenizer_spm.h"
#include "unicode.h"

namespace minerva {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

// Texts that mark the end of a turn in the common chat formats.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "<end_of_utterance>",
};
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<end_of_utterance>",
};

class GgufVocab final : public Vocab {
public:
    void load(const gguf::File& file);

    Kind kind() const override { return d_.kind; }
    std::string_view pre_tokenizer() const override { return d_.pre; }
    int32_t n_tokens() const override { return d_.n_tokens(); }
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const override;
    std::string token_to_piece(int32_t id, bool special) const override;
    std::string_view token_text(int32_t id) const override { return d_.texts[check(id)]; }
    TokenType token_type(int32_t id) const override { return d_.types[check(id)]; }
    float token_score(int32_t id) const override { return d_.scores[check(id)]; }
    int32_t bos() const override { return d_.bos; }
    int32_t eos() const override { return d_.eos; }
    int32_t eot() const override { return d_.eot; }
    int32_t pad() const override { return d_.pad; }
    int32_t unk() const override { return d_.unk; }
    int32_t sep() const override { return d_.sep; }
    bool add_bos() const override { return d_.add_bos; }
    bool add_eos() const override { return d_.add_eos; }
    bool add_space_prefix() const override { return d_.kind == Kind::SPM && d_.add_space_prefix; }
    int32_t find_token(std::string_view text) const override { return d_.index.find(text); }
    bool is_eog(int32_t id) const override { return std::binary_search(d_.eog.begin(), d_.eog.end(), id); }

private:
    int32_t check(int32_t id) const {
        if (!valid(id))
            throw Error("token id " + std::to_string(id) + " is out of range (the vocabulary has " +
                        std::to_string(n_tokens()) + " tokens)");
        return id;
    }
    // A run of the input: raw text (token < 0) or one special token.
    struct Fragment {
        int32_t token;
        size_t offset, length;
    };
    std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

    VocabData d_;
    std::vector<std::string> pieces_;  // decoded bytes of every token, as token_to_piece(id, true)
    std::unique_ptr<SpmTokenizer> spm_;
    std::unique_ptr<BpeTokenizer> bpe_;
};

int32_t read_token_id(const gguf::File& f, std::string_view key, int32_t def, int32_t n_tokens) {
    const gguf::Value* v = f.find(key);
    if (!v) return def;
    if (!v->is_integer())
        throw Error(f.path() + ": " + std::string(key) + " must be an integer token id, found " +
                    std::string(gguf::value_type_name(v->type)));
    int64_t id = v->as_int();
    if (id == -1 || id == 0xFFFFFFFFll) return -1;  // "none", as some converters write it
    if (id < 0 || id >= n_tokens)
        throw Error(f.path() + ": " + std::string(key) + " = " + std::to_string(id) +
                    " is out of range (the vocabulary has " + std::to_string(n_tokens) + " tokens)");
    return static_cast<int32_t>(id);
}

void GgufVocab::load(const gguf::File& f) {
    const std::string& path = f.path();
    d_.model = std::string(f.get_string("tokenizer.ggml.model"));
    if (d_.model == "llama") d_.kind = Kind::SPM;
    else if (d_.model == "gpt2") d_.kind = Kind::BPE;
    else
        throw Error(path + ": tokenizer.ggml.model '" + d_.model +
                    "' is not supported (supported: 'llama' for SentencePiece, 'gpt2' for byte-level BPE)");

    const gguf::Array& tokens = f.get_array("tokenizer.ggml.tokens");
    if (tokens.elem_type != gguf::ValueType::STRING)
        throw Error(path + ": tokenizer.ggml.tokens must be an array of strings, found an array of " +
                    std::string(gguf::value_type_name(tokens.elem_type)));
    if (tokens.strings.empty()) throw Error(path + ": tokenizer.ggml.tokens is empty");
    if (tokens.strings.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2))
        throw Error(path + ": tokenizer.ggml.tokens has too many entries (" + std::to_string(tokens.strings.size()) + ")");
    const size_t n = tokens.strings.size();
    d_.texts.assign(tokens.strings.begin(), tokens.strings.end());

    d_.scores.assign(n, 0.0f);
    if (const gguf::Value* v = f.find("tokenizer.ggml.scores")) {
        const gguf::Array& a = v->type == gguf::ValueType::ARRAY ? v->as_array()
                                                                 : throw Error(path + ": tokenizer.ggml.scores must be an array");
        if (a.size() != n)
            throw Error(path + ": tokenizer.ggml.scores has " + std::to_string(a.size()) +
                        " entries but tokenizer.ggml.tokens has " + std::to_string(n));
        if (!a.floats.empty()) for (size_t i = 0; i < n; ++i) d_.scores[i] = static_cast<float>(a.floats[i]);
        else if (!a.ints.empty()) for (size_t i = 0; i < n; ++i) d_.scores[i] = static_cast<float>(a.ints[i]);
        else throw Error(path + ": tokenizer.ggml.scores must be an array of numbers");
        for (size_t i = 0; i < n; ++i)
            if (std::isnan(d_.scores[i]))  // the merge order would be undefined
                throw Error(path + ": tokenizer.ggml.scores[" + std::to_string(i) + "] is NaN");
    }

    d_.types.assign(n, TokenType::NORMAL);
    if (const gguf::Value* v = f.find("tokenizer.ggml.token_type")) {
        const gguf::Array& a = v->type == gguf::ValueType::ARRAY ? v->as_array()
                                                                 : throw Error(path + ": tokenizer.ggml.token_type must be an array");
        if (a.size() != n)
            throw Error(path + ": tokenizer.ggml.token_type has " + std::to_string(a.size()) +
                        " entries but tokenizer.ggml.tokens has " + std::to_string(n));
        if (a.ints.size() != n) throw Error(path + ": tokenizer.ggml.token_type must be an array of integers");
        for (size_t i = 0; i < n; ++i) {
            if (a.ints[i] < 0 || a.ints[i] > 6)
                throw Error(path + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(a.ints[i]) +
                            " is not a token type (0..6)");
            d_.types[i] = static_cast<TokenType>(a.ints[i]);
        }
    }
    d_.index.build(d_.texts);

    const int32_t nt = d_.n_tokens();
    const bool spm = d_.kind == Kind::SPM;
    d_.bos = read_token_id(f, "tokenizer.ggml.bos_token_id", spm && nt > 1 ? 1 : -1, nt);
    d_.eos = read_token_id(f, "tokenizer.ggml.eos_token_id", spm && nt > 2 ? 2 : -1, nt);
    d_.unk = read_token_id(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, nt);
    d_.eot = read_token_id(f, "tokenizer.ggml.eot_token_id", -1, nt);
    d_.eom = read_token_id(f, "tokenizer.ggml.eom_token_id", -1, nt);
    d_.pad = read_token_id(f, "tokenizer.ggml.padding_token_id", -1, nt);
    d_.sep = read_token_id(f, "tokenizer.ggml.seperator_token_id", -1, nt);  // the key's spelling in GGUF
    d_.sep = read_token_id(f, "tokenizer.ggml.separator_token_id", d_.sep, nt);
    d_.mask = read_token_id(f, "tokenizer.ggml.mask_token_id", -1, nt);

    // Pre-tokenizer (BPE only) and the defaults that come with it.
    const PreTokenizerRules* rules = nullptr;
    d_.pre = std::string(f.get_string("tokenizer.ggml.pre", "default"));
    if (!spm) {
        rules = find_pre_tokenizer_rules(d_.pre);
        if (!rules) {
            logging::warn("{}: unknown pre-tokenizer '{}' (tokenizer.ggml.pre); using the gpt-2 split rules", path, d_.pre);
            rules = find_pre_tokenizer_rules("gpt-2");
        }
    }
    d_.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", spm ? true : rules->add_bos);
    d_.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
    d_.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", spm);
    if (d_.add_bos && d_.bos < 0) {
        logging::warn("{}: add_bos_token is set but the file names no BOS token; no BOS will be added", path);
        d_.add_bos = false;
    }
    if (d_.add_eos && d_.eos < 0) {
        logging::warn("{}: add_eos_token is set but the file names no EOS token; no EOS will be added", path);
        d_.add_eos = false;
    }

    // End of generation: EOS, EOT, EOM and every end-of-turn token the vocabulary has. Such a
    // token that is not typed as a control token is treated as one (converters sometimes miss it).
    if (d_.eot < 0) {
        for (std::string_view t : kEotTexts) {
            const int32_t id = d_.index.find(t);
            if (id >= 0) {
                d_.eot = id;
                break;
            }
        }
    }
    for (int32_t id : {d_.eos, d_.eot, d_.eom})
        if (id >= 0) d_.eog.push_back(id);
    for (std::string_view t : kEogTexts) {
        const int32_t id = d_.index.find(t);
        if (id >= 0) d_.eog.push_back(id);
    }
    std::sort(d_.eog.begin(), d_.eog.end());
    d_.eog.erase(std::unique(d_.eog.begin(), d_.eog.end()), d_.eog.end());
    for (int32_t id : d_.eog) {
        if (d_.types[id] != TokenType::CONTROL && id != d_.eos) {
            logging::debug("{}: end-of-turn token {} '{}' is not a control token; treating it as one", path, id, d_.texts[id]);
            d_.types[id] = TokenType::CONTROL;
        }
    }

    for (int32_t id = 0; id < nt; ++id) {
        const TokenType t = d_.types[id];
        if ((t == TokenType::CONTROL || t == TokenType::USER_DEFINED || t == TokenType::UNKNOWN) && !d_.texts[id].empty())
            d_.special_by_length.push_back(id);
    }
    std::stable_sort(d_.special_by_length.begin(), d_.special_by_length.end(),
                     [&](int32_t a, int32_t b) { return d_.texts[a].size() > d_.texts[b].size(); });

    // Pieces: what each token stands for in bytes (control tokens: their text).
    pieces_.resize(n);
    for (int32_t id = 0; id < nt; ++id) {
        const std::string& text = d_.texts[id];
        std::string& p = pieces_[id];
        switch (d_.types[id]) {
            case TokenType::CONTROL:
            case TokenType::UNKNOWN:
            case TokenType::USER_DEFINED: p = text; break;
            case TokenType::NORMAL:
                if (spm) {
                    for (size_t i = 0; i < text.size();) {
                        if (text.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
                            p += ' ';
                            i += kSpmSpace.size();
                        } else {
                            p += text[i++];
                        }
                    }
                } else {
                    p = unicode::byte_level_decode(text);
                }
                break;
            case TokenType::BYTE: {
                unsigned v = 0;
                char tail = 0;
                if (text.size() == 6 && std::sscanf(text.c_str(), "<0x%2X>%c", &v, &tail) == 1) p = std::string(1, static_cast<char>(v));
                break;
            }
            case TokenType::UNDEFINED:
            case TokenType::UNUSED: break;  // stands for nothing
        }
    }

    if (spm) {
        spm_ = std::make_unique<SpmTokenizer>(d_);
    } else {
        const gguf::Array& merges = f.get_array("tokenizer.ggml.merges");
        if (merges.elem_type != gguf::ValueType::STRING)
            throw Error(path + ": tokenizer.ggml.merges must be an array of strings");
        bpe_ = std::make_unique<BpeTokenizer>(d_, merges.strings, *rules, path);
    }
}

std::vector<GgufVocab::Fragment> GgufVocab::partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags{{-1, 0, text.size()}};
    if (text.empty()) return {};
    std::vector<Fragment> next;
    // Longest special tokens first; each takes every occurrence in the raw text left over by the
    // longer ones, so a special token's text is never split by a shorter one.
    for (int32_t id : d_.special_by_length) {
        const TokenType t = d_.types[id];
        if (!parse_special && t != TokenType::USER_DEFINED) continue;
        const std::string& needle = d_.texts[id];
        bool found = false;
        for (const Fragment& fr : frags)
            if (fr.token < 0 && text.substr(fr.offset, fr.length).find(needle) != std::string_view::npos) {
                found = true;
                break;
            }
        if (!found) continue;
        next.clear();
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                next.push_back(fr);
                continue;
            }
            const std::string_view raw = text.substr(fr.offset, fr.length);
            size_t pos = 0;
            for (size_t hit; (hit = raw.find(needle, pos)) != std::string_view::npos; pos = hit + needle.size()) {
                if (hit > pos) next.push_back({-1, fr.offset + pos, hit - pos});
                next.push_back({id, fr.offset + hit, needle.size()});
            }
            if (pos < raw.size()) next.push_back({-1, fr.offset + pos, raw.size() - pos});
        }
        frags.swap(next);
    }
    return frags;
}

std::vector<int32_t> GgufVocab::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (add_special && d_.add_bos) out.push_back(d_.bos);
    const std::vector<Fragment> frags = partition(text, parse_special);
    bool after_special = true;  // SPM: a space goes before the text and after every special token
    for (const Fragment& fr : frags) {
        if (fr.token >= 0) {
            out.push_back(fr.token);
            after_special = true;
            continue;
        }
        const std::string_view raw = text.substr(fr.offset, fr.length);
        if (spm_) {
            std::string s;
            if (d_.add_space_prefix && after_special) s = " ";
            s += raw;
            spm_->tokenize(spm_escape_spaces(s), out);
        } else {
            bpe_->tokenize(raw, out);
        }
        after_special = false;
    }
    if (add_special && d_.add_eos) out.push_back(d_.eos);
    return out;
}

std::string GgufVocab::token_to_piece(int32_t id, bool special) const {
    check(id);
    const TokenType t = d_.types[id];
    if (!special && (t == TokenType::CONTROL || t == TokenType::UNKNOWN)) return {};
    return pieces_[id];
}

}  // namespace

std::shared_ptr<const Vocab> Vocab::from_gguf(const gguf::File& file) {
    auto v = std::make_shared<GgufVocab>();  // built in place: the tokenizers keep references into it
    v->load(file);
    return v;
}

std::shared_ptr<const Vocab> Vocab::load(const std::string& path) { return from_gguf(gguf::File::open(path)); }

std::string Vocab::detokenize(std::span<const int32_t> ids, bool remove_special) const {
    std::string out;
    bool strip_space = add_space_prefix();
    for (int32_t id : ids) {
        if (!valid(id))
            throw Error("token id " + std::to_string(id) + " is out of range (the vocabulary has " +
                        std::to_string(n_tokens()) + " tokens)");
        const TokenType t = token_type(id);
        if (remove_special && (t == TokenType::CONTROL || t == TokenType::UNKNOWN)) continue;
        std::string piece = token_to_piece(id, true);
        if (piece.empty()) continue;
        if (strip_space && piece[0] == ' ') piece.erase(0, 1);
        strip_space = false;
        out += piece;
    }
    return out;
}

std::string StreamDecoder::push(int32_t id) {
    pending_ += vocab_->token_to_piece(id, special_);
    const size_t n = unicode::complete_utf8_prefix(pending_);
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace minerva
