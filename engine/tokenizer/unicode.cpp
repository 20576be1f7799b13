// UTF-8 helpers and GPT-2's byte-level alphabet (see unicode.h).
#include "unicode.h"

namespace minerva::unicode {

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

uint32_t decode_utf8(std::string_view s, size_t& i) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    const size_t n = utf8_len(c);
    if (n == 1) {
        ++i;
        return c < 0x80 ? c : 0xFFFD;
    }
    if (i + n > s.size()) {
        ++i;
        return 0xFFFD;
    }
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
        const uint8_t cc = static_cast<uint8_t>(s[i + k]);
        if ((cc & 0xC0) != 0x80) {
            ++i;
            return 0xFFFD;
        }
        cp = (cp << 6) | (cc & 0x3F);
    }
    i += n;
    return cp;
}

size_t complete_utf8_prefix(std::string_view s) {
    // Only the last three bytes can belong to an unfinished character.
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const uint8_t c = static_cast<uint8_t>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
        const size_t need = utf8_len(c);
        if (need > back) return n - back;  // lead byte still waiting for continuation bytes
        return n;
    }
    return n;
}

ByteLevel::ByteLevel() {
    cp_to_byte_.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
        cp_to_byte_[byte_to_cp[b]] = static_cast<int16_t>(b);
        append_utf8(byte_to_utf8[b], byte_to_cp[b]);
    }
}

const ByteLevel& ByteLevel::get() {
    static const ByteLevel table;
    return table;
}

std::string byte_level_decode(std::string_view text) {
    const ByteLevel& bl = ByteLevel::get();
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        const size_t start = i;
        const uint32_t cp = decode_utf8(text, i);
        const int b = cp == 0xFFFD ? -1 : bl.cp_to_byte(cp);
        if (b >= 0) out += static_cast<char>(b);
        else out.append(text.substr(start, i - start));
    }
    return out;
}

std::string byte_level_encode(std::string_view bytes) {
    const ByteLevel& bl = ByteLevel::get();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) out += bl.byte_to_utf8[static_cast<uint8_t>(c)];
    return out;
}

}  // namespace minerva::unicode
