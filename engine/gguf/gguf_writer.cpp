// GGUF v3 writer: metadata serialized on add, header written by begin_data(), data streamed.
#include "gguf_writer.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

namespace minerva::gguf {
namespace {

bool is_int_type(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
        case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
        case ValueType::BOOL:
            return true;
        default:
            return false;
    }
}

// Range of an integer type as [lo, hi] in int64 terms; UINT64 is stored bit-for-bit.
bool int_fits(ValueType t, int64_t v) {
    switch (t) {
        case ValueType::UINT8: return v >= 0 && v <= 0xff;
        case ValueType::INT8: return v >= -128 && v <= 127;
        case ValueType::UINT16: return v >= 0 && v <= 0xffff;
        case ValueType::INT16: return v >= -32768 && v <= 32767;
        case ValueType::UINT32: return v >= 0 && v <= 0xffffffffLL;
        case ValueType::INT32: return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
        case ValueType::BOOL: return v == 0 || v == 1;
        case ValueType::UINT64: case ValueType::INT64: return true;
        default: return false;
    }
}

size_t int_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
        case ValueType::UINT16: case ValueType::INT16: return 2;
        case ValueType::UINT32: case ValueType::INT32: return 4;
        default: return 8;
    }
}

}  // namespace

Writer::Writer(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {}

Writer::~Writer() {
    if (f_) {
        std::fclose(f_);
        f_ = nullptr;
    }
    if (data_started_ && !finished_) {
        std::error_code ec;
        std::filesystem::remove(tmp_path_, ec);
    }
}

void Writer::check_open(const char* what) const {
    if (data_started_) throw Error(path_ + ": GGUF writer: " + what + " after begin_data()");
}

void Writer::begin_key(std::string_view key, ValueType t) {
    check_open("metadata added");
    if (key.empty()) throw Error(path_ + ": GGUF writer: empty metadata key");
    if (!keys_.insert(std::string(key)).second)
        throw Error(path_ + ": GGUF writer: duplicate metadata key '" + std::string(key) + "'");
    put_string(key);
    put(static_cast<uint32_t>(t));
    ++n_kv_;
}

void Writer::put_string(std::string_view s) {
    put(static_cast<uint64_t>(s.size()));
    put_raw(s.data(), s.size());
}

void Writer::add_bool(std::string_view key, bool v) {
    begin_key(key, ValueType::BOOL);
    put(static_cast<uint8_t>(v ? 1 : 0));
}

void Writer::add_string(std::string_view key, std::string_view v) {
    begin_key(key, ValueType::STRING);
    put_string(v);
}

void Writer::add_uint(std::string_view key, ValueType t, uint64_t v) {
    if (!is_int_type(t) || t == ValueType::BOOL || (t != ValueType::UINT64 && v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) ||
        (t != ValueType::UINT64 && !int_fits(t, static_cast<int64_t>(v))))
        throw Error(path_ + ": GGUF writer: key '" + std::string(key) + "': " + std::to_string(v) +
                    " does not fit type " + std::string(value_type_name(t)));
    if (key == "general.alignment") {
        if (t != ValueType::UINT32 || v == 0 || (v & (v - 1)) != 0)
            throw Error(path_ + ": GGUF writer: general.alignment must be a uint32 power of two");
        if (!tensors_.empty()) throw Error(path_ + ": GGUF writer: general.alignment must be set before the tensors");
        alignment_ = v;
    }
    begin_key(key, t);
    put_raw(&v, int_size(t));  // little-endian: the low bytes
}

void Writer::add_int(std::string_view key, ValueType t, int64_t v) {
    if (t == ValueType::UINT64 || !is_int_type(t) || !int_fits(t, v) || t == ValueType::BOOL)
        throw Error(path_ + ": GGUF writer: key '" + std::string(key) + "': " + std::to_string(v) +
                    " does not fit type " + std::string(value_type_name(t)));
    if (key == "general.alignment") return add_uint(key, t, static_cast<uint64_t>(v));
    begin_key(key, t);
    put_raw(&v, int_size(t));
}

void Writer::add_float(std::string_view key, ValueType t, double v) {
    if (t != ValueType::FLOAT32 && t != ValueType::FLOAT64)
        throw Error(path_ + ": GGUF writer: key '" + std::string(key) + "': not a float type");
    begin_key(key, t);
    if (t == ValueType::FLOAT32) put(static_cast<float>(v));
    else put(v);
}

void Writer::add_string_array(std::string_view key, std::span<const std::string_view> v) {
    begin_key(key, ValueType::ARRAY);
    put(static_cast<uint32_t>(ValueType::STRING));
    put(static_cast<uint64_t>(v.size()));
    for (auto s : v) put_string(s);
}

void Writer::add_string_array(std::string_view key, const std::vector<std::string>& v) {
    std::vector<std::string_view> views(v.begin(), v.end());
    add_string_array(key, std::span<const std::string_view>(views));
}

void Writer::add_int_array(std::string_view key, ValueType elem, std::span<const int64_t> v) {
    if (!is_int_type(elem)) throw Error(path_ + ": GGUF writer: key '" + std::string(key) + "': not an integer type");
    for (size_t i = 0; i < v.size(); ++i)
        if (!int_fits(elem, v[i]))
            throw Error(path_ + ": GGUF writer: key '" + std::string(key) + "' element " + std::to_string(i) + ": " +
                        std::to_string(v[i]) + " does not fit type " + std::string(value_type_name(elem)));
    begin_key(key, ValueType::ARRAY);
    put(static_cast<uint32_t>(elem));
    put(static_cast<uint64_t>(v.size()));
    for (int64_t x : v) put_raw(&x, int_size(elem));
}

void Writer::add_float_array(std::string_view key, ValueType elem, std::span<const double> v) {
    if (elem != ValueType::FLOAT32 && elem != ValueType::FLOAT64)
        throw Error(path_ + ": GGUF writer: key '" + std::string(key) + "': not a float type");
    begin_key(key, ValueType::ARRAY);
    put(static_cast<uint32_t>(elem));
    put(static_cast<uint64_t>(v.size()));
    for (double x : v) {
        if (elem == ValueType::FLOAT32) put(static_cast<float>(x));
        else put(x);
    }
}

void Writer::put_scalar(ValueType t, const Value& v) {
    switch (t) {
        case ValueType::FLOAT32: put(static_cast<float>(v.as_float())); break;
        case ValueType::FLOAT64: put(v.as_float()); break;
        case ValueType::BOOL: put(static_cast<uint8_t>(v.as_bool() ? 1 : 0)); break;
        case ValueType::STRING: put_string(v.as_string()); break;
        default: {
            // Integers: the reader keeps unsigned values as uint64 and signed ones as int64.
            uint64_t bits = std::holds_alternative<uint64_t>(v.data) ? std::get<uint64_t>(v.data)
                                                                      : static_cast<uint64_t>(v.as_int());
            put_raw(&bits, int_size(t));
        }
    }
}

void Writer::put_array(const Array& a, int depth) {
    if (depth > 8) throw Error(path_ + ": GGUF writer: arrays nested too deep");
    put(static_cast<uint32_t>(a.elem_type));
    put(static_cast<uint64_t>(a.size()));
    switch (a.elem_type) {
        case ValueType::STRING:
            for (auto s : a.strings) put_string(s);
            break;
        case ValueType::ARRAY:
            for (const Value& v : a.nested) put_array(v.as_array(), depth + 1);
            break;
        case ValueType::FLOAT32:
            for (double x : a.floats) put(static_cast<float>(x));
            break;
        case ValueType::FLOAT64:
            for (double x : a.floats) put(x);
            break;
        default:
            for (int64_t x : a.ints) put_raw(&x, int_size(a.elem_type));
    }
}

void Writer::add_value(std::string_view key, const Value& v) {
    if (key == "general.alignment") return add_uint(key, v.type, v.as_uint());
    begin_key(key, v.type);
    if (v.type == ValueType::ARRAY) put_array(v.as_array(), 0);
    else put_scalar(v.type, v);
}

void Writer::add_tensor(std::string_view name, DType type, std::span<const int64_t> ne) {
    check_open("tensor added");
    std::string n(name);
    if (n.empty()) throw Error(path_ + ": GGUF writer: empty tensor name");
    if (ne.empty() || ne.size() > 4)
        throw Error(path_ + ": GGUF writer: tensor '" + n + "' has " + std::to_string(ne.size()) + " dims (1 to 4 allowed)");
    int64_t count = 1;
    for (int64_t d : ne) {
        if (d <= 0) throw Error(path_ + ": GGUF writer: tensor '" + n + "' has a dimension " + std::to_string(d));
        if (count > std::numeric_limits<int64_t>::max() / d) throw Error(path_ + ": GGUF writer: tensor '" + n + "' is too large");
        count *= d;
    }
    const DTypeInfo& info = dtype_info(type);
    if (ne[0] % info.block_elems != 0)
        throw Error(path_ + ": GGUF writer: tensor '" + n + "': row of " + std::to_string(ne[0]) +
                    " elements is not a multiple of the " + std::string(info.name) + " block size " +
                    std::to_string(info.block_elems));
    if (!tensor_names_.insert(n).second) throw Error(path_ + ": GGUF writer: duplicate tensor '" + n + "'");
    uint64_t nbytes = row_bytes(type, ne[0]) * static_cast<uint64_t>(count / ne[0]);
    uint64_t offset = (data_size_ + alignment_ - 1) / alignment_ * alignment_;
    tensors_.push_back({n, type, std::vector<int64_t>(ne.begin(), ne.end()), offset, nbytes});
    data_size_ = offset + nbytes;
}

void Writer::write_raw(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
        throw Error(tmp_path_ + ": write failed at byte " + std::to_string(pos_) + ": " + std::strerror(errno));
    pos_ += n;
}

void Writer::pad_to(uint64_t alignment) {
    static const uint8_t zeros[256] = {};
    uint64_t target = (pos_ + alignment - 1) / alignment * alignment;
    while (pos_ < target) write_raw(zeros, static_cast<size_t>(std::min<uint64_t>(target - pos_, sizeof zeros)));
}

void Writer::begin_data() {
    check_open("begin_data called");
    f_ = std::fopen(tmp_path_.c_str(), "wb");
    if (!f_) throw Error(tmp_path_ + ": cannot create: " + std::strerror(errno));
    data_started_ = true;
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);

    const char magic[4] = {'G', 'G', 'U', 'F'};
    write_raw(magic, 4);
    uint32_t version = 3;
    write_raw(&version, 4);
    uint64_t n_tensors = tensors_.size();
    write_raw(&n_tensors, 8);
    write_raw(&n_kv_, 8);
    write_raw(kv_.data(), kv_.size());
    std::string().swap(kv_);
    for (const Pending& t : tensors_) {
        uint64_t len = t.name.size();
        write_raw(&len, 8);
        write_raw(t.name.data(), t.name.size());
        uint32_t n_dims = static_cast<uint32_t>(t.ne.size());
        write_raw(&n_dims, 4);
        for (int64_t d : t.ne) write_raw(&d, 8);
        uint32_t type = static_cast<uint32_t>(t.type);
        write_raw(&type, 4);
        write_raw(&t.offset, 8);
    }
    pad_to(alignment_);
    cur_ = 0;
    cur_written_ = 0;
}

void Writer::write_data(const void* data, size_t n) {
    if (!data_started_ || finished_) throw Error(path_ + ": GGUF writer: write_data outside begin_data()/finish()");
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        while (cur_ < tensors_.size() && cur_written_ == tensors_[cur_].nbytes) {
            ++cur_;
            cur_written_ = 0;
        }
        if (cur_ >= tensors_.size()) throw Error(path_ + ": GGUF writer: more data written than the tensors hold");
        const Pending& t = tensors_[cur_];
        if (cur_written_ == 0) pad_to(alignment_);  // start of a tensor: its offset is aligned
        uint64_t take = std::min<uint64_t>(n, t.nbytes - cur_written_);
        write_raw(p, static_cast<size_t>(take));
        p += take;
        n -= static_cast<size_t>(take);
        cur_written_ += take;
    }
}

void Writer::finish() {
    if (!data_started_) begin_data();
    if (finished_) return;
    while (cur_ < tensors_.size() && cur_written_ == tensors_[cur_].nbytes) {
        ++cur_;
        cur_written_ = 0;
    }
    if (cur_ < tensors_.size())
        throw Error(path_ + ": GGUF writer: tensor '" + tensors_[cur_].name + "' got " + std::to_string(cur_written_) +
                    " of its " + std::to_string(tensors_[cur_].nbytes) + " bytes");
    if (std::fflush(f_) != 0 || std::fclose(f_) != 0) {
        f_ = nullptr;
        throw Error(tmp_path_ + ": write failed: " + std::strerror(errno));
    }
    f_ = nullptr;
    std::error_code ec;
    std::filesystem::rename(tmp_path_, path_, ec);
    if (ec) throw Error(path_ + ": cannot rename " + tmp_path_ + " onto it: " + ec.message());
    finished_ = true;
}

}  // namespace minerva::gguf
