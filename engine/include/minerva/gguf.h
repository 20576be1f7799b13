// minerva/gguf.h: a bounds-checked, memory-mapped reader for GGUF files (versions 1, 2 and 3).
//
// Every read is checked against the file size; a malformed file throws minerva::Error with one
// line "FILE: invalid GGUF at byte N (key 'K' | tensor 'T'): what was wrong". Counts and lengths
// are checked against the bytes left before anything is reserved, so memory stays within a small
// constant factor of the file size whatever the counts claim. Rejected, among others: bad magic
// or version, unknown value/tensor types, non-UTF-8 or duplicate keys and tensor names, bools
// other than 0/1, arrays nested deeper than 8, n_dims outside 1..4, zero or overflowing dims,
// general.alignment that is not an integer power of two, and tensor data that is misaligned,
// overlapping or past the end of the file. Version 1 files use 32-bit counts, lengths and
// dimensions and have no 64-bit value types. Tensor data is never copied: it stays in the
// mapping, which lives as long as any File (or copy of it) does. tests/test_gguf_malformed.cpp
// and the fuzz target (docs/fuzzing.md) hold the reader to this.
#pragma once
#include "minerva/export.h"
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "minerva/error.h"
#include "minerva/types.h"

namespace minerva::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
MINERVA_API std::string_view value_type_name(ValueType t);

struct Array;

// One metadata value. Strings are views into the mapped file.
struct MINERVA_API Value {
    ValueType type = ValueType::UINT8;
    std::variant<uint64_t, int64_t, double, bool, std::string_view, std::shared_ptr<const Array>> data;

    bool is_integer() const;
    bool is_number() const;  // integer or float
    // The accessors throw Error when the value is not of a fitting kind (or does not fit).
    int64_t as_int() const;
    uint64_t as_uint() const;
    double as_float() const;  // any number
    bool as_bool() const;
    std::string_view as_string() const;
    const Array& as_array() const;
    std::string to_string(size_t max_array_items = 8) const;  // for display
};

// An array value; exactly one of the vectors is filled, chosen by elem_type.
struct MINERVA_API Array {
    ValueType elem_type = ValueType::UINT8;
    std::vector<std::string_view> strings;  // STRING
    std::vector<int64_t> ints;              // integer types and BOOL (UINT64 stored bit-for-bit)
    std::vector<double> floats;             // FLOAT32, FLOAT64
    std::vector<Value> nested;              // ARRAY
    size_t size() const;
};

struct MINERVA_API TensorInfo {
    std::string name;
    DType type = DType::F32;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] varies fastest
    uint64_t offset = 0;           // relative to the start of the data section
    uint64_t nbytes = 0;
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class MINERVA_API File {
public:
    // Maps and parses the file. Throws Error on any problem.
    static File open(const std::string& path);
    // Parses a buffer the caller keeps alive for the File's lifetime (fuzzing, tests).
    static File from_memory(const void* data, size_t size, std::string name = "<memory>");

    const std::string& path() const { return name_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    size_t file_size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }

    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }
    // Typed getters: throw Error naming the file and key when missing or of the wrong kind.
    std::string_view get_string(std::string_view key) const;
    int64_t get_int(std::string_view key) const;
    double get_float(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    const Array& get_array(std::string_view key) const;
    // With defaults when missing (still an Error when present with the wrong kind).
    std::string_view get_string(std::string_view key, std::string_view def) const;
    int64_t get_int(std::string_view key, int64_t def) const;
    double get_float(std::string_view key, double def) const;
    bool get_bool(std::string_view key, bool def) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    const uint8_t* tensor_data(const TensorInfo& t) const { return base_ + data_offset_ + t.offset; }
    const uint8_t* base() const { return base_; }

private:
    File() = default;
    void parse();

    std::shared_ptr<const void> mapping_;  // keeps the mmap alive; empty for from_memory
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    std::string name_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<TensorInfo> tensors_;
};

}  // namespace minerva::gguf
