// unicode.h (internal): the little UTF-8 and byte-level helpers the tokenizers need. Character
// classes (letters, numbers, whitespace) are not here: the pre-tokenizers use PCRE2's Unicode
// tables for those (pretokenize.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace minerva::unicode {

// Length of the UTF-8 sequence a lead byte announces; 1 for ASCII and for bytes that cannot
// start a sequence (continuation bytes, 0xF8..0xFF), so a scan always moves forward.
inline size_t utf8_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 1;
}

// Appends the UTF-8 encoding of a code point (no validation beyond the range).
void append_utf8(std::string& out, uint32_t cp);

// Decodes one code point at s[i]; advances i. Invalid sequences yield 0xFFFD and advance one byte.
uint32_t decode_utf8(std::string_view s, size_t& i);

// Length of the longest prefix of s that ends on a complete UTF-8 character: a trailing lead
// byte whose continuation bytes have not all arrived yet is excluded. Invalid bytes count as
// complete (they will never become valid by waiting).
size_t complete_utf8_prefix(std::string_view s);

// GPT-2's byte-level alphabet: every byte value stands for one printable code point (printable
// Latin-1 bytes for themselves, the rest shifted to U+0100 and up).
struct ByteLevel {
    std::array<uint32_t, 256> byte_to_cp{};
    std::array<std::string, 256> byte_to_utf8;  // the code point above, UTF-8 encoded
    // Code point -> byte, or -1 for code points outside the alphabet.
    int cp_to_byte(uint32_t cp) const { return cp < 324 ? cp_to_byte_[cp] : -1; }
    static const ByteLevel& get();

private:
    ByteLevel();
    std::array<int16_t, 324> cp_to_byte_{};
};

// Bytes-level text (as stored in a BPE vocabulary) -> raw bytes. Characters outside the
// alphabet are copied through as their UTF-8 bytes.
std::string byte_level_decode(std::string_view text);
// Raw bytes -> byte-level text.
std::string byte_level_encode(std::string_view bytes);

}  // namespace minerva::unicode
