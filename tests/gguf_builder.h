// tests/gguf_builder.h: writes small GGUF files byte by byte, valid or deliberately broken.
//
// Header-only and free of minerva headers, so the fuzz project's case generator uses it as well
// as the gtests. A Builder holds the file as fields (header, key/values with their encoded
// values, tensor infos, data); every field can be set to a wrong value, and build() writes
// exactly what the fields say, recording where each section starts (Layout) so tests can cut
// or patch the bytes at a chosen place.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gguf_test {

enum Vt : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
// Tensor type ids (ggml numbering).
enum Tt : uint32_t { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q8_0 = 8, T_Q4_K = 12, T_BF16 = 30 };

template <typename T>
inline std::string le(T v) {  // x86-64 is little-endian, as GGUF is
    std::string s(sizeof(T), '\0');
    std::memcpy(s.data(), &v, sizeof(T));
    return s;
}

// Bytes of a tensor of the given type and element count (the types the builder uses).
inline uint64_t tensor_bytes(uint32_t type, uint64_t n_elements) {
    switch (type) {
        case T_F32: return n_elements * 4;
        case T_F16: case T_BF16: return n_elements * 2;
        case T_Q4_0: return n_elements / 32 * 18;
        case T_Q8_0: return n_elements / 32 * 34;
        case T_Q4_K: return n_elements / 256 * 144;
        default: return 0;
    }
}

struct Kv {
    std::string key;
    uint32_t type;
    std::string value;  // the encoded value (what follows the type)
};

struct Tensor {
    std::string name;
    uint32_t n_dims;
    std::vector<uint64_t> dims;
    uint32_t type;
    uint64_t offset;
};

struct Layout {
    size_t header_end = 0;            // after magic, version and both counts
    std::vector<size_t> kv_start;     // where each key/value begins
    std::vector<size_t> kv_value;     // where each value (after the type) begins
    size_t kvs_end = 0;
    std::vector<size_t> tensor_start;
    std::vector<size_t> tensor_offset_field;
    size_t infos_end = 0;
    size_t data_start = 0;
    size_t size = 0;
};

struct Builder {
    std::string magic = "GGUF";
    uint32_t version = 3;
    std::optional<uint64_t> n_tensors_override, n_kv_override;
    std::vector<Kv> kvs;
    std::vector<Tensor> tensors;
    uint64_t alignment = 32;             // padding before the data section
    bool pad = true;                     // false: no padding (files that must end right after a value)
    std::optional<uint64_t> data_size;   // default: exactly enough for every tensor

    // ---- encoders that follow the version (32-bit counts and lengths in version 1) ----
    std::string count(uint64_t n) const { return version == 1 ? le<uint32_t>(static_cast<uint32_t>(n)) : le<uint64_t>(n); }
    std::string str(std::string_view s) const { return count(s.size()) + std::string(s); }
    std::string array(uint32_t elem_type, uint64_t n, const std::string& payload) const {
        return le<uint32_t>(elem_type) + count(n) + payload;
    }
    std::string string_array(const std::vector<std::string>& items) const {
        std::string p;
        for (const auto& s : items) p += str(s);
        return array(STRING, items.size(), p);
    }

    // ---- adding entries ----
    Builder& kv(std::string key, uint32_t type, std::string value) {
        kvs.push_back({std::move(key), type, std::move(value)});
        return *this;
    }
    Builder& kv_u32(std::string key, uint32_t v) { return kv(std::move(key), UINT32, le(v)); }
    Builder& kv_str(std::string key, std::string_view v) { return kv(std::move(key), STRING, str(v)); }
    // Appends a tensor at the next aligned offset after the last one.
    Builder& tensor(std::string name, std::vector<uint64_t> dims, uint32_t type) {
        uint64_t off = 0;
        for (const auto& t : tensors) {
            uint64_t end = t.offset + bytes_of(t);
            if (end > off) off = end;
        }
        off = (off + alignment - 1) / alignment * alignment;
        uint32_t nd = static_cast<uint32_t>(dims.size());
        tensors.push_back({std::move(name), nd, std::move(dims), type, off});
        return *this;
    }
    Kv* find_kv(std::string_view key) {
        for (auto& k : kvs)
            if (k.key == key) return &k;
        return nullptr;
    }

    static uint64_t bytes_of(const Tensor& t) {
        uint64_t n = 1;
        for (uint64_t d : t.dims) n *= d;
        return tensor_bytes(t.type, n);
    }

    std::string build(Layout* layout = nullptr) const {
        Layout l;
        std::string o = magic + le<uint32_t>(version);
        o += count(n_tensors_override.value_or(tensors.size()));
        o += count(n_kv_override.value_or(kvs.size()));
        l.header_end = o.size();
        for (const auto& k : kvs) {
            l.kv_start.push_back(o.size());
            o += str(k.key) + le<uint32_t>(k.type);
            l.kv_value.push_back(o.size());
            o += k.value;
        }
        l.kvs_end = o.size();
        for (const auto& t : tensors) {
            l.tensor_start.push_back(o.size());
            o += str(t.name) + le<uint32_t>(t.n_dims);
            for (uint64_t d : t.dims) o += count(d);
            o += le<uint32_t>(t.type);
            l.tensor_offset_field.push_back(o.size());
            o += le<uint64_t>(t.offset);
        }
        l.infos_end = o.size();
        while (pad && o.size() % alignment) o += '\0';
        l.data_start = o.size();
        uint64_t need = 0;
        for (const auto& t : tensors) {
            uint64_t end = t.offset + bytes_of(t);
            if (end > need) need = end;
        }
        uint64_t n = data_size.value_or(need);
        if (n > (uint64_t{1} << 24)) n = 0;  // a case with absurd offsets must set data_size itself
        for (uint64_t i = 0; i < n; ++i) o += static_cast<char>((i * 7 + 1) & 0xFF);  // deterministic, not zeros
        l.size = o.size();
        if (layout) *layout = l;
        return o;
    }
};

// A small, valid file using every value type the version has (version 1 lacks the 64-bit ones),
// string and nested arrays, general.alignment and three tensors of different types.
inline Builder base_file(uint32_t version = 3) {
    Builder b;
    b.version = version;
    b.kv_str("general.architecture", "llama");
    b.kv_str("general.name", "malformed-test \xE2\x96\x81 base");
    b.kv_u32("general.alignment", 32);
    b.kv_u32("llama.block_count", 1);
    b.kv("llama.attention.layer_norm_rms_epsilon", FLOAT32, le<float>(1e-5f));
    b.kv("test.u8", UINT8, le<uint8_t>(200));
    b.kv("test.i8", INT8, le<int8_t>(-5));
    b.kv("test.u16", UINT16, le<uint16_t>(60000));
    b.kv("test.i16", INT16, le<int16_t>(-300));
    b.kv("test.i32", INT32, le<int32_t>(-70000));
    b.kv("tokenizer.ggml.add_bos_token", BOOL, le<uint8_t>(1));
    b.kv("tokenizer.ggml.tokens", ARRAY, b.string_array({"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "b"}));
    {
        std::string p;
        for (int i = 0; i < 5; ++i) p += le<float>(-1.0f * static_cast<float>(i));
        b.kv("tokenizer.ggml.scores", ARRAY, b.array(FLOAT32, 5, p));
    }
    {
        std::string p;
        for (int v : {2, 3, 3, 1, 1}) p += le<int32_t>(v);
        b.kv("tokenizer.ggml.token_type", ARRAY, b.array(INT32, 5, p));
    }
    b.kv("test.bools", ARRAY, b.array(BOOL, 3, std::string("\x01\x00\x01", 3)));
    {   // [[1, 2], [3]] as arrays of uint8
        std::string inner1 = b.array(UINT8, 2, std::string("\x01\x02", 2));
        std::string inner2 = b.array(UINT8, 1, std::string("\x03", 1));
        b.kv("test.nested", ARRAY, b.array(ARRAY, 2, inner1 + inner2));
    }
    b.kv("test.empty_array", ARRAY, b.array(UINT32, 0, ""));
    if (version >= 2) {
        b.kv("test.u64", UINT64, le<uint64_t>(1ull << 40));
        b.kv("test.i64", INT64, le<int64_t>(-(1ll << 40)));
        b.kv("test.f64", FLOAT64, le<double>(2.5));
    }
    b.tensor("token_embd.weight", {8, 5}, T_F32);
    b.tensor("blk.0.attn_q.weight", {32, 2}, T_Q8_0);
    b.tensor("output_norm.weight", {8}, T_F16);
    return b;
}

// Valid files for a fuzzing seed corpus and the positive tests.
struct Named {
    std::string name;
    std::string bytes;
};
inline std::vector<Named> valid_files() {
    std::vector<Named> v;
    v.push_back({"v3-base", base_file(3).build()});
    v.push_back({"v2-base", base_file(2).build()});
    v.push_back({"v1-base", base_file(1).build()});
    {
        Builder b;  // nothing but the header
        v.push_back({"v3-empty", b.build()});
    }
    {
        Builder b = base_file(3);
        b.find_kv("general.alignment")->value = le<uint32_t>(64);
        b.alignment = 64;
        b.tensors.clear();
        b.tensor("a", {64, 2}, T_Q4_0).tensor("b", {256}, T_Q4_K).tensor("c", {3, 1, 1, 2}, T_BF16);
        v.push_back({"v3-align64", b.build()});
    }
    return v;
}

// One kind of malformed file: its bytes and a substring the error message must contain.
struct Case {
    std::string name;
    std::string bytes;
    std::string expect;
};

inline std::vector<Case> malformed_cases() {
    std::vector<Case> cs;
    auto add = [&](std::string name, std::string bytes, std::string expect) {
        cs.push_back({std::move(name), std::move(bytes), std::move(expect)});
    };
    auto with = [](uint32_t version, auto&& mutate) {
        Builder b = base_file(version);
        mutate(b);
        return b.build();
    };
    Layout L;
    const std::string good = base_file(3).build(&L);
    Layout L1;
    const std::string good1 = base_file(1).build(&L1);
    auto cut = [](const std::string& s, size_t n) { return s.substr(0, n); };
    auto patch = [](std::string s, size_t at, const std::string& bytes) {
        s.replace(at, bytes.size(), bytes);
        return s;
    };
    const size_t i_tokens = 11, i_bools = 14, i_nested = 15;  // indices into base_file's kvs

    // ---- header ----
    add("empty-file", "", "the magic number");
    add("truncated-magic", cut(good, 2), "file ends inside the magic number");
    add("bad-magic", patch(good, 0, "GGML"), "bad magic");
    add("lowercase-magic", patch(good, 0, "gguf"), "bad magic");
    add("truncated-version", cut(good, 6), "file ends inside the version");
    add("version-0", patch(good, 4, le<uint32_t>(0)), "unsupported GGUF version 0");
    add("version-4", patch(good, 4, le<uint32_t>(4)), "unsupported GGUF version 4");
    add("version-huge", patch(good, 4, le<uint32_t>(0x03000000)), "unsupported GGUF version");
    add("truncated-tensor-count", cut(good, 12), "file ends inside the tensor count");
    add("truncated-metadata-count", cut(good, 20), "file ends inside the metadata count");
    add("header-only-no-counts-v1", cut(good1, 10), "file ends inside the tensor count");
    add("tensor-count-huge", patch(good, 8, le<uint64_t>(1ull << 62)), "tensor count 4611686018427387904 cannot fit");
    add("tensor-count-max", patch(good, 8, le<uint64_t>(~0ull)), "tensor count 18446744073709551615 cannot fit");
    add("metadata-count-huge", patch(good, 16, le<uint64_t>(1ull << 40)), "metadata count 1099511627776 cannot fit");
    add("counts-together-too-big", with(3, [](Builder& b) {
            b.n_tensors_override = 1;
            b.n_kv_override = 1;
            b.kvs.clear();
            b.tensors.clear();
            b.pad = false;
            b.data_size = 40;  // room for either, not both
        }), "together cannot fit");
    add("metadata-count-lies", with(3, [](Builder& b) {
            b.tensors.clear();
            b.n_kv_override = b.kvs.size() + 1;
            b.data_size = 0;
        }), "metadata entry 20");
    add("tensor-count-lies", with(3, [](Builder& b) { b.n_tensors_override = 4; }), "tensor 3");

    // ---- keys ----
    // Cut inside the last key/value of a file without tensors, so the counts still fit.
    Layout Lk;
    Builder nt = base_file(3);
    nt.tensors.clear();
    nt.pad = false;
    const std::string no_tensors = nt.build(&Lk);
    const size_t last = Lk.kv_start.size() - 1;  // "test.f64"
    add("truncated-key-length", cut(no_tensors, Lk.kv_start[last] + 3), "metadata entry 19): file ends inside key");
    add("key-length-huge", patch(good, L.kv_start[0], le<uint64_t>(1ull << 50)), "key length 1125899906842624 exceeds");
    add("key-length-past-end", patch(good, L.kv_start[1], le<uint64_t>(good.size())), "exceeds the");
    add("truncated-key-bytes", cut(no_tensors, Lk.kv_start[last] + 8 + 3), "key length 8 exceeds the 3 bytes left");
    add("empty-key", with(3, [](Builder& b) { b.kvs[2].key = ""; }), "empty key");
    add("key-invalid-byte", with(3, [](Builder& b) { b.kvs[3].key = "llama.\xFF" "block"; }), "is not valid UTF-8");
    add("key-overlong-utf8", with(3, [](Builder& b) { b.kvs[3].key = "key\xC0\xAF"; }), "key \"key\\xC0\\xAF\" is not valid UTF-8");
    add("key-surrogate-utf8", with(3, [](Builder& b) { b.kvs[3].key = "key\xED\xA0\x80"; }), "key \"key\\xED\\xA0\\x80\" is not valid UTF-8");
    add("key-truncated-utf8", with(3, [](Builder& b) { b.kvs[3].key = "key\xE2\x96"; }), "key \"key\\xE2\\x96\" is not valid UTF-8");
    add("key-stray-continuation", with(3, [](Builder& b) { b.kvs[3].key = "\x80key"; }), "is not valid UTF-8");
    add("key-above-unicode", with(3, [](Builder& b) { b.kvs[3].key = "k\xF4\x90\x80\x80"; }), "is not valid UTF-8");
    add("duplicate-key", with(3, [](Builder& b) { b.kvs[4].key = b.kvs[3].key; }), "key 'llama.block_count'): duplicate key");

    // ---- values ----
    add("truncated-value-type", cut(no_tensors, Lk.kv_value[last] - 2), "key 'test.f64'): file ends inside value type");
    add("truncated-float64-value", cut(no_tensors, Lk.kv_value[last] + 7), "file ends inside float64 value (8 bytes needed, 7 left)");
    add("unknown-value-type-13", with(3, [](Builder& b) { b.kvs[3].type = 13; }), "unknown value type 13");
    add("unknown-value-type-max", with(3, [](Builder& b) { b.kvs[3].type = 0xFFFFFFFF; }), "unknown value type 4294967295");
    add("truncated-scalar", with(3, [](Builder& b) {
            b.tensors.clear();
            b.pad = false;
            b.kvs.resize(4);
            b.kvs[3].value = "\x01\x00";  // a uint32 with 2 of its 4 bytes
            b.data_size = 0;
        }), "file ends inside uint32 value");
    add("bool-byte-2", with(3, [](Builder& b) { b.kvs[10].value = le<uint8_t>(2); }), "bool value is 2, not 0 or 1");
    add("bool-array-0xff", with(3, [&](Builder& b) {
            b.kvs[i_bools].value = b.array(BOOL, 3, std::string("\x01\x00\xFF", 3));
        }), "bool value is 255");
    add("string-length-huge", patch(good, L.kv_value[0], le<uint64_t>(1ull << 63)), "string value length 9223372036854775808 exceeds");
    add("string-length-one-past-end", with(3, [](Builder& b) {
            b.tensors.clear();
            b.pad = false;
            b.kvs.resize(1);
            b.kvs[0].value = b.count(11) + "0123456789";
            b.data_size = 0;
        }), "string value length 11 exceeds the 10 bytes left");
    add("array-unknown-element-type", with(3, [&](Builder& b) { b.kvs[i_tokens].value.replace(0, 4, le<uint32_t>(77)); }),
        "unknown array element type 77");
    add("array-count-huge-u8", with(3, [](Builder& b) { b.kvs[3] = {"test.bytes", ARRAY, b.array(UINT8, 1ull << 60, "abc")}; }),
        "array of 1152921504606846976 uint8 elements cannot fit");
    add("array-count-huge-strings", with(3, [&](Builder& b) { b.kvs[i_tokens].value.replace(4, 8, le<uint64_t>(1ull << 32)); }),
        "array of 4294967296 string elements cannot fit");
    add("string-array-element-length-huge", with(3, [&](Builder& b) {
            b.kvs[i_tokens].value = b.array(STRING, 2, b.str("ok") + le<uint64_t>(1ull << 48) + "x");
        }), "string array element length 281474976710656 exceeds");
    add("array-count-lies", with(3, [](Builder& b) {
            b.tensors.clear();
            b.pad = false;
            b.kvs.clear();
            b.kv("test.ints", ARRAY, b.array(INT32, 3, le<int32_t>(1) + le<int32_t>(2)));  // 2 of 3 present
            b.data_size = 0;
        }), "array of 3 int32 elements cannot fit in the 8 bytes left");
    add("array-truncated-mid-element", with(3, [](Builder& b) {
            b.tensors.clear();
            b.pad = false;
            b.kvs.clear();
            b.kv("test.ints", ARRAY, b.array(UINT16, 2, std::string("\x01\x00\x02", 3)));
        }), "array of 2 uint16 elements cannot fit");
    add("nested-array-too-deep", with(3, [](Builder& b) {
            std::string v = b.array(UINT8, 1, "x");
            for (int d = 0; d < 9; ++d) v = b.array(ARRAY, 1, v);
            b.kvs[3] = {"test.deep", ARRAY, v};
        }), "arrays nested more than 8 deep");
    add("nested-array-inner-count-huge", with(3, [&](Builder& b) {
            b.kvs[i_nested].value = b.array(ARRAY, 1, b.array(FLOAT64, 1ull << 61, ""));
        }), "array of 2305843009213693952 float64 elements cannot fit");
    add("nested-array-outer-count-huge", with(3, [&](Builder& b) {
            b.kvs[i_nested].value = b.array(ARRAY, 1ull << 59, b.array(UINT8, 0, ""));
        }), "array of 576460752303423488 array elements cannot fit");

    // ---- general.alignment ----
    add("alignment-zero", with(3, [](Builder& b) { b.find_kv("general.alignment")->value = le<uint32_t>(0); }),
        "alignment 0 is not a power of two");
    add("alignment-not-power-of-two", with(3, [](Builder& b) { b.find_kv("general.alignment")->value = le<uint32_t>(48); }),
        "alignment 48 is not a power of two");
    add("alignment-negative", with(3, [](Builder& b) {
            auto* k = b.find_kv("general.alignment");
            k->type = INT32;
            k->value = le<int32_t>(-32);
        }), "alignment -32 is not a power of two");
    add("alignment-too-large", with(3, [](Builder& b) {
            auto* k = b.find_kv("general.alignment");
            k->type = UINT64;
            k->value = le<uint64_t>(1ull << 40);
        }), "alignment 1099511627776 is not a power of two between 1 and 2^30");
    add("alignment-string", with(3, [](Builder& b) {
            auto* k = b.find_kv("general.alignment");
            k->type = STRING;
            k->value = b.str("32");
        }), "alignment must be an integer, found string");

    // ---- tensor infos ----
    add("truncated-tensor-name", cut(good, L.tensor_start[0] + 8 + 3), "tensor name length 17 exceeds");
    add("truncated-tensor-name-length", cut(good, L.tensor_start[1] + 4), "file ends inside tensor name");
    add("tensor-name-empty", with(3, [](Builder& b) { b.tensors[1].name = ""; }), "tensor 1): empty tensor name");
    add("tensor-name-invalid-utf8", with(3, [](Builder& b) { b.tensors[1].name = "blk.\xFE.w"; }),
        "tensor name \"blk.\\xFE.w\" is not valid UTF-8");
    add("duplicate-tensor-name", with(3, [](Builder& b) { b.tensors[2].name = b.tensors[0].name; }),
        "tensor 'token_embd.weight'): duplicate tensor name");
    add("truncated-n-dims", cut(good, L.tensor_start[0] + 8 + 17 + 2), "file ends inside n_dims");
    add("n-dims-zero", with(3, [](Builder& b) { b.tensors[0].n_dims = 0; b.tensors[0].dims.clear(); }), "n_dims is 0");
    add("n-dims-five", with(3, [](Builder& b) { b.tensors[0].n_dims = 5; b.tensors[0].dims = {8, 5, 1, 1, 1}; }),
        "n_dims is 5 (must be 1 to 4)");
    add("truncated-dimension", cut(good, L.tensor_start[0] + 8 + 17 + 4 + 3), "file ends inside dimension");
    add("dimension-zero", with(3, [](Builder& b) { b.tensors[0].dims = {8, 0}; }), "dimension 1 is zero");
    add("dimensions-overflow", with(3, [](Builder& b) { b.tensors[0].dims = {1ull << 40, 1ull << 40}; b.data_size = 272; }),
        "dimension 1 = 1099511627776 overflows");
    add("dimension-above-int64", with(3, [](Builder& b) {
            b.tensors[0].n_dims = 1;
            b.tensors[0].dims = {(1ull << 63) + 8};
            b.data_size = 272;
        }), "dimension 0 = 9223372036854775816 overflows");
    add("tensor-bytes-overflow", with(3, [](Builder& b) { b.tensors[0].n_dims = 1; b.tensors[0].dims = {1ull << 62}; b.data_size = 64; }),
        "tensor byte size overflows");
    add("truncated-tensor-type", cut(good, L.tensor_offset_field[0] - 1), "file ends inside tensor type");
    add("unknown-tensor-type-4", with(3, [](Builder& b) { b.tensors[1].type = 4; }), "unknown tensor type 4");
    add("unknown-tensor-type-huge", with(3, [](Builder& b) { b.tensors[1].type = 1000; }), "unknown tensor type 1000");
    add("dims-not-multiple-of-block", with(3, [](Builder& b) { b.tensors[1].dims = {33, 2}; }),
        "first dimension 33 is not a multiple of the Q8_0 block size 32");
    add("truncated-tensor-offset", cut(good, L.tensor_offset_field[2] + 5), "file ends inside tensor data offset");
    add("misaligned-offset", with(3, [](Builder& b) { b.tensors[1].offset += 4; }), "is misaligned");
    add("misaligned-offset-align64", with(3, [](Builder& b) {
            b.find_kv("general.alignment")->value = le<uint32_t>(64);
            b.alignment = 64;
            b.tensors[1].offset = 32 * 5;  // a multiple of 32, not of 64
        }), "data offset 160 is misaligned: not a multiple of the alignment 64");
    add("tensor-data-past-end", with(3, [](Builder& b) { b.data_size = 64 * 3; }), "extends past the end");
    add("tensor-offset-huge", with(3, [](Builder& b) { b.tensors[2].offset = 1ull << 62; b.data_size = 272; }),
        "tensor 'output_norm.weight'): data at offset 4611686018427387904 (+16 bytes) extends past the end");
    add("tensor-offset-max-aligned", with(3, [](Builder& b) { b.tensors[2].offset = ~0ull & ~31ull; b.data_size = 272; }),
        "extends past the end");
    add("tensors-overlap", with(3, [](Builder& b) { b.tensors[2].offset = b.tensors[1].offset + 32; }),
        "overlaps the data of tensor 'blk.0.attn_q.weight'");
    add("tensors-same-offset", with(3, [](Builder& b) { b.tensors[1].offset = 0; b.tensors[2].offset = 224; }),
        "overlaps the data of tensor");
    add("data-section-missing", cut(good, L.infos_end + (L.data_start > L.infos_end ? 1 : 0)),
        L.data_start > L.infos_end ? "tensor data section would start at byte" : "extends past the end");
    add("truncated-in-data", cut(good, L.size - 1), "tensor 'output_norm.weight'): data");

    // ---- version 1 (32-bit counts, lengths and dimensions) ----
    add("v1-uint64-value", with(1, [](Builder& b) { b.kv("test.u64", UINT64, le<uint64_t>(1)); }),
        "64-bit value types do not exist in GGUF version 1");
    add("v1-float64-array", with(1, [](Builder& b) { b.kv("test.f64s", ARRAY, b.array(FLOAT64, 1, le<double>(1.0))); }),
        "unknown array element type 12 (64-bit value types do not exist in GGUF version 1)");
    add("v1-tensor-count-huge", patch(good1, 8, le<uint32_t>(0xFFFFFFFF)), "tensor count 4294967295 cannot fit");
    add("v1-string-length-huge", patch(good1, L1.kv_value[0], le<uint32_t>(0xFFFFFFF0)), "string value length 4294967280 exceeds");
    add("v1-dimension-zero", with(1, [](Builder& b) { b.tensors[1].dims = {32, 0}; }), "dimension 1 is zero");
    add("v1-truncated-dimension", cut(good1, L1.tensor_start[0] + 4 + 17 + 4 + 2), "file ends inside dimension");
    add("v3-file-labelled-v1", patch(good, 4, le<uint32_t>(1)), "n_dims is 1751347809");
    add("v1-file-labelled-v3", patch(good1, 4, le<uint32_t>(3)), "cannot fit");
    return cs;
}

}  // namespace gguf_test
