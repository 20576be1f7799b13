// minerva/vocab.h: tokenizers built from a GGUF file's tokenizer.ggml.* metadata.
//
// Two models: "llama" (SentencePiece-style, score-driven merges, byte fallback) and "gpt2"
// (byte-level BPE with merges by rank and a pre-tokenizer chosen by tokenizer.ggml.pre).
// A Vocab is immutable after construction and safe to use from many threads at once.
#pragma once
#include "minerva/export.h"
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "minerva/gguf.h"

namespace minerva {

enum class TokenType : int32_t {
    UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

class MINERVA_API Vocab {
public:
    enum class Kind { SPM, BPE };

    // Builds the vocabulary from file metadata. Throws Error naming the key when it is missing
    // or malformed.
    static std::shared_ptr<const Vocab> from_gguf(const gguf::File& file);
    // Convenience: opens the file and reads only its vocabulary.
    static std::shared_ptr<const Vocab> load(const std::string& path);

    virtual ~Vocab() = default;

    virtual Kind kind() const = 0;
    virtual std::string_view pre_tokenizer() const = 0;  // tokenizer.ggml.pre ("default" if none)
    virtual int32_t n_tokens() const = 0;

    // Text -> ids. add_special adds BOS/EOS as the file's add_bos_token/add_eos_token say;
    // parse_special turns the text of control tokens into those tokens (longest first; that text
    // is never split). User-defined tokens are always matched as whole tokens, as in the
    // reference tokenizer (llama.cpp). Any bytes are accepted (invalid UTF-8 included).
    virtual std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const = 0;
    // The bytes one token stands for. Control tokens give their text only when `special`.
    virtual std::string token_to_piece(int32_t id, bool special = true) const = 0;
    // Ids -> text (bytes). With remove_special, BOS/EOS and other control tokens are dropped;
    // otherwise their text is included. Throws Error on an id out of range. For SPM vocabularies
    // with add_space_prefix the space the tokenizer put in front is removed from the first piece,
    // so detokenize(tokenize(x, ...), true) == x.
    std::string detokenize(std::span<const int32_t> ids, bool remove_special = false) const;

    virtual std::string_view token_text(int32_t id) const = 0;  // as stored in the vocabulary
    virtual TokenType token_type(int32_t id) const = 0;
    virtual float token_score(int32_t id) const = 0;

    virtual int32_t bos() const = 0;  // -1 when the file names none
    virtual int32_t eos() const = 0;
    virtual int32_t eot() const = 0;
    virtual int32_t pad() const = 0;
    virtual int32_t unk() const = 0;
    virtual int32_t sep() const = 0;
    virtual bool add_bos() const = 0;
    virtual bool add_eos() const = 0;
    // SPM only: a space is put before the text (and after every special token) before
    // tokenizing; detokenize() removes it again from the start of the text.
    virtual bool add_space_prefix() const = 0;
    // The id of the token whose stored text is exactly `text`, or -1.
    virtual int32_t find_token(std::string_view text) const = 0;
    // End of generation: EOS, EOT and the other end-of-turn control tokens.
    virtual bool is_eog(int32_t id) const = 0;
    bool valid(int32_t id) const { return id >= 0 && id < n_tokens(); }
};

// Turns a stream of ids into text without ever emitting half of a UTF-8 character: bytes of an
// incomplete character are held back until the rest arrives (or flush()).
class MINERVA_API StreamDecoder {
public:
    explicit StreamDecoder(std::shared_ptr<const Vocab> vocab, bool special = false)
        : vocab_(std::move(vocab)), special_(special) {}
    // The complete characters now available (pieces are emitted as they are: no space is
    // stripped). Throws Error on an id out of range.
    std::string push(int32_t id);
    std::string flush();           // whatever is held back (invalid bytes included)
    void reset() { pending_.clear(); }

private:
    std::shared_ptr<const Vocab> vocab_;
    bool special_;
    std::string pending_;
};

}  // namespace minerva
