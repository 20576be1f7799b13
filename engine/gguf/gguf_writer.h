// engine/gguf/gguf_writer.h: writes GGUF version 3 files, streaming the tensor data.
//
// Use: declare every metadata key and every tensor (name, type, shape) first; then
// begin_data() writes the header, the tensor infos and the padding; then the tensor data is
// streamed in declaration order with write_data() (any chunk sizes), so a file of any size is
// written with only the caller's chunk in memory; finish() checks every byte was written and
// renames the temporary "<path>.tmp" onto <path>, so an interrupted write never leaves a
// half-file under the final name.
//
// Metadata values are serialized as they are added (the writer owns copies). The key
// "general.alignment" (uint32, a power of two) also sets the data alignment (default 32).
#pragma once
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "minerva/gguf.h"
#include "minerva/types.h"

namespace minerva::gguf {

class Writer {
public:
    explicit Writer(std::string path);
    ~Writer();  // an unfinished file is removed
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // ---- metadata (before begin_data) ----
    void add_u8(std::string_view key, uint8_t v) { add_uint(key, ValueType::UINT8, v); }
    void add_i8(std::string_view key, int8_t v) { add_int(key, ValueType::INT8, v); }
    void add_u16(std::string_view key, uint16_t v) { add_uint(key, ValueType::UINT16, v); }
    void add_i16(std::string_view key, int16_t v) { add_int(key, ValueType::INT16, v); }
    void add_u32(std::string_view key, uint32_t v) { add_uint(key, ValueType::UINT32, v); }
    void add_i32(std::string_view key, int32_t v) { add_int(key, ValueType::INT32, v); }
    void add_u64(std::string_view key, uint64_t v) { add_uint(key, ValueType::UINT64, v); }
    void add_i64(std::string_view key, int64_t v) { add_int(key, ValueType::INT64, v); }
    void add_f32(std::string_view key, float v) { add_float(key, ValueType::FLOAT32, v); }
    void add_f64(std::string_view key, double v) { add_float(key, ValueType::FLOAT64, v); }
    void add_bool(std::string_view key, bool v);
    void add_string(std::string_view key, std::string_view v);
    // Generic scalar forms: the value must fit the named type (Error otherwise).
    void add_uint(std::string_view key, ValueType t, uint64_t v);
    void add_int(std::string_view key, ValueType t, int64_t v);
    void add_float(std::string_view key, ValueType t, double v);
    // Arrays. Integer arrays hold any integer element type (or BOOL); values must fit it.
    void add_string_array(std::string_view key, std::span<const std::string_view> v);
    void add_string_array(std::string_view key, const std::vector<std::string>& v);
    void add_int_array(std::string_view key, ValueType elem, std::span<const int64_t> v);
    void add_float_array(std::string_view key, ValueType elem, std::span<const double> v);
    // Any value read by gguf::File (nested arrays included), copied.
    void add_value(std::string_view key, const Value& v);

    bool has_key(std::string_view key) const { return keys_.count(std::string(key)) > 0; }

    // ---- tensors (before begin_data) ----
    // ne[0] varies fastest and must be a multiple of the type's block size; 1 to 4 dims.
    void add_tensor(std::string_view name, DType type, std::span<const int64_t> ne);
    uint64_t data_bytes() const { return data_size_; }  // total, padding included

    // ---- data ----
    void begin_data();
    // Appends bytes to the current tensor (declaration order). A chunk may not run past the end
    // of the current tensor; once a tensor is complete, the next write starts the next one.
    void write_data(const void* data, size_t n);
    void finish();

private:
    struct Pending {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        uint64_t offset;
        uint64_t nbytes;
    };
    void begin_key(std::string_view key, ValueType t);
    void put_raw(const void* p, size_t n) { kv_.append(static_cast<const char*>(p), n); }
    template <typename T>
    void put(T v) { put_raw(&v, sizeof v); }
    void put_string(std::string_view s);
    void put_scalar(ValueType t, const Value& v);
    void put_array(const Array& a, int depth);
    void write_raw(const void* p, size_t n);
    void pad_to(uint64_t alignment);
    void check_open(const char* what) const;

    std::string path_, tmp_path_;
    std::FILE* f_ = nullptr;
    std::string kv_;  // serialized key/value pairs
    uint64_t n_kv_ = 0;
    std::unordered_set<std::string> keys_, tensor_names_;
    std::vector<Pending> tensors_;
    uint64_t alignment_ = 32;
    uint64_t data_size_ = 0;
    bool data_started_ = false, finished_ = false;
    size_t cur_ = 0;            // tensor being written
    uint64_t cur_written_ = 0;  // bytes of it written so far
    uint64_t pos_ = 0;          // bytes written to the file
};

}  // namespace minerva::gguf
