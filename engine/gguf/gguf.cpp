// GGUF reader. The file is mapped read-only; a Cursor walks it with every read bounds-checked.
#include "minerva/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>
#include <unordered_set>

namespace minerva::gguf {
namespace {

constexpr uint32_t kMaxNesting = 8;  // arrays of arrays deeper than this are rejected

bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= s.size()) return false;  // continuation bytes i+1 .. i+n must exist
        for (size_t k = 1; k <= n; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

std::string printable(std::string_view s, size_t max = 64) {
    std::string out;
    for (char ch : s.substr(0, max)) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7F) out += ch;
        else { char b[8]; snprintf(b, sizeof b, "\\x%02X", c); out += b; }
    }
    if (s.size() > max) out += "...";
    return out;
}

// A key or tensor name for an error message: valid UTF-8 is kept (control bytes escaped),
// anything long is cut at a character boundary so a 1 MB key cannot flood the message.
std::string display(std::string_view s, size_t max = 80) {
    if (!valid_utf8(s)) return printable(s, max);
    std::string out;
    size_t i = 0;
    for (; i < s.size() && out.size() < max; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7F) { char b[8]; snprintf(b, sizeof b, "\\x%02X", c); out += b; }
        else out += static_cast<char>(c);
    }
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) out += s[i++];
    if (i < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
    return out;
}

// Vectors are reserved up to this many elements from a count read in the file; beyond it they
// grow as elements are actually parsed, so a lying count in a large file costs no memory.
constexpr uint64_t kMaxReserve = 1 << 16;
size_t reserve_for(uint64_t n) { return static_cast<size_t>(std::min<uint64_t>(n, kMaxReserve)); }

size_t scalar_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
        case ValueType::UINT16: case ValueType::INT16: return 2;
        case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
        case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
        default: return 0;
    }
}

// Version 1 had no 64-bit value types (UINT64, INT64, FLOAT64 came with version 2).
bool known_value_type(uint32_t t, uint32_t version) { return version == 1 ? t <= 9 : t <= 12; }

std::string unknown_type_message(const char* what, uint32_t t, uint32_t version) {
    std::string m = std::string("unknown ") + what + " " + std::to_string(t);
    if (version == 1 && t >= 10 && t <= 12) m += " (64-bit value types do not exist in GGUF version 1)";
    else m += " (valid: 0 to " + std::to_string(version == 1 ? 9 : 12) + ")";
    return m;
}

class Cursor {
public:
    Cursor(const uint8_t* base, size_t size, const std::string& file, uint32_t version)
        : base_(base), size_(size), file_(file), version_(version) {}

    size_t pos() const { return pos_; }
    uint32_t version() const { return version_; }
    size_t remaining() const { return size_ - pos_; }
    void set_context(std::string ctx) { ctx_ = std::move(ctx); }

    [[noreturn]] void fail(const std::string& what, size_t at) const {
        std::ostringstream o;
        o << file_ << ": invalid GGUF at byte " << at;
        if (!ctx_.empty()) o << " (" << ctx_ << ")";
        o << ": " << what;
        throw Error(o.str());
    }
    [[noreturn]] void fail(const std::string& what) const { fail(what, pos_); }

    template <typename T>
    T read(const char* what) {
        if (remaining() < sizeof(T))
            fail(std::string("file ends inside ") + what + " (" + std::to_string(sizeof(T)) + " bytes needed, " +
                 std::to_string(remaining()) + " left)");
        T v;
        std::memcpy(&v, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    // Counts and lengths are 32-bit in version 1, 64-bit after.
    uint64_t read_count(const char* what) {
        return version_ == 1 ? read<uint32_t>(what) : read<uint64_t>(what);
    }

    std::string_view read_string(const char* what) {
        size_t at = pos_;
        uint64_t len = read_count(what);
        if (len > remaining())
            fail(std::string(what) + " length " + std::to_string(len) + " exceeds the " +
                     std::to_string(remaining()) + " bytes left in the file",
                 at);
        std::string_view s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return s;
    }

    void skip_to(size_t p) { pos_ = p; }

private:
    const uint8_t* base_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& file_;
    uint32_t version_;
    std::string ctx_;
};

// A metadata key or tensor name (`what`): not empty, valid UTF-8 and not in `seen` (which it
// joins). From here on errors name it ("<label> 'name'").
std::string_view read_name(Cursor& cur, const std::string& what, const std::string& label,
                           std::unordered_set<std::string_view>& seen) {
    const size_t at = cur.pos();
    std::string_view name = cur.read_string(what.c_str());
    if (name.empty()) cur.fail("empty " + what, at);
    if (!valid_utf8(name)) cur.fail(what + " \"" + printable(name) + "\" is not valid UTF-8", at);
    cur.set_context(label + " '" + display(name) + "'");
    if (!seen.insert(name).second) cur.fail("duplicate " + what, at);
    return name;
}

Value read_value(Cursor& c, ValueType type, uint32_t depth);

Value read_scalar(Cursor& c, ValueType type) {
    Value v;
    v.type = type;
    switch (type) {
        case ValueType::UINT8: v.data = uint64_t{c.read<uint8_t>("uint8 value")}; break;
        case ValueType::INT8: v.data = int64_t{c.read<int8_t>("int8 value")}; break;
        case ValueType::UINT16: v.data = uint64_t{c.read<uint16_t>("uint16 value")}; break;
        case ValueType::INT16: v.data = int64_t{c.read<int16_t>("int16 value")}; break;
        case ValueType::UINT32: v.data = uint64_t{c.read<uint32_t>("uint32 value")}; break;
        case ValueType::INT32: v.data = int64_t{c.read<int32_t>("int32 value")}; break;
        case ValueType::UINT64: v.data = uint64_t{c.read<uint64_t>("uint64 value")}; break;
        case ValueType::INT64: v.data = int64_t{c.read<int64_t>("int64 value")}; break;
        case ValueType::FLOAT32: v.data = double{c.read<float>("float32 value")}; break;
        case ValueType::FLOAT64: v.data = c.read<double>("float64 value"); break;
        case ValueType::BOOL: {
            size_t at = c.pos();
            uint8_t b = c.read<uint8_t>("bool value");
            if (b > 1) c.fail("bool value is " + std::to_string(b) + ", not 0 or 1", at);
            v.data = b != 0;
            break;
        }
        case ValueType::STRING: v.data = c.read_string("string value"); break;
        default: c.fail("internal: not a scalar type");
    }
    return v;
}

Value read_array(Cursor& c, uint32_t depth) {
    if (depth >= kMaxNesting) c.fail("arrays nested more than " + std::to_string(kMaxNesting) + " deep");
    size_t at = c.pos();
    uint32_t et = c.read<uint32_t>("array element type");
    if (!known_value_type(et, c.version())) c.fail(unknown_type_message("array element type", et, c.version()), at);
    auto elem = static_cast<ValueType>(et);
    size_t at_n = c.pos();
    uint64_t n = c.read_count("array length");
    // The smallest encoding of one element bounds how many can fit in what is left.
    const size_t count_bytes = c.version() == 1 ? 4 : 8;
    size_t min_elem = elem == ValueType::STRING  ? count_bytes
                      : elem == ValueType::ARRAY ? 4 + count_bytes
                                                 : scalar_size(elem);
    if (n > c.remaining() / min_elem)
        c.fail("array of " + std::to_string(n) + " " + std::string(value_type_name(elem)) +
                   " elements cannot fit in the " + std::to_string(c.remaining()) + " bytes left",
               at_n);
    auto arr = std::make_shared<Array>();
    arr->elem_type = elem;
    if (elem == ValueType::STRING) {
        arr->strings.reserve(reserve_for(n));
        for (uint64_t i = 0; i < n; ++i) arr->strings.push_back(c.read_string("string array element"));
    } else if (elem == ValueType::ARRAY) {
        arr->nested.reserve(reserve_for(n));
        for (uint64_t i = 0; i < n; ++i) arr->nested.push_back(read_array(c, depth + 1));
    } else if (elem == ValueType::FLOAT32 || elem == ValueType::FLOAT64) {
        arr->floats.reserve(reserve_for(n));
        for (uint64_t i = 0; i < n; ++i) arr->floats.push_back(std::get<double>(read_scalar(c, elem).data));
    } else {
        arr->ints.reserve(reserve_for(n));
        for (uint64_t i = 0; i < n; ++i) {
            Value v = read_scalar(c, elem);
            if (auto* u = std::get_if<uint64_t>(&v.data)) arr->ints.push_back(static_cast<int64_t>(*u));
            else if (auto* s = std::get_if<int64_t>(&v.data)) arr->ints.push_back(*s);
            else arr->ints.push_back(std::get<bool>(v.data) ? 1 : 0);
        }
    }
    Value v;
    v.type = ValueType::ARRAY;
    v.data = std::shared_ptr<const Array>(std::move(arr));
    return v;
}

Value read_value(Cursor& c, ValueType type, uint32_t depth) {
    if (type == ValueType::ARRAY) return read_array(c, depth);
    return read_scalar(c, type);
}

}  // namespace

std::string_view value_type_name(ValueType t) {
    static constexpr std::string_view names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                                 "bool", "string", "array", "uint64", "int64", "float64"};
    auto i = static_cast<uint32_t>(t);
    return i < 13 ? names[i] : "unknown";
}

// ---- Value ----

bool Value::is_integer() const {
    return std::holds_alternative<uint64_t>(data) || std::holds_alternative<int64_t>(data);
}
bool Value::is_number() const { return is_integer() || std::holds_alternative<double>(data); }

int64_t Value::as_int() const {
    if (auto* s = std::get_if<int64_t>(&data)) return *s;
    if (auto* u = std::get_if<uint64_t>(&data)) {
        if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw Error("integer value " + std::to_string(*u) + " is too large");
        return static_cast<int64_t>(*u);
    }
    if (auto* b = std::get_if<bool>(&data)) return *b ? 1 : 0;
    throw Error(std::string("expected an integer, found ") + std::string(value_type_name(type)));
}
uint64_t Value::as_uint() const {
    if (auto* u = std::get_if<uint64_t>(&data)) return *u;
    if (auto* s = std::get_if<int64_t>(&data)) {
        if (*s < 0) throw Error("expected a non-negative integer, found " + std::to_string(*s));
        return static_cast<uint64_t>(*s);
    }
    throw Error(std::string("expected an unsigned integer, found ") + std::string(value_type_name(type)));
}
double Value::as_float() const {
    if (auto* d = std::get_if<double>(&data)) return *d;
    if (auto* s = std::get_if<int64_t>(&data)) return static_cast<double>(*s);
    if (auto* u = std::get_if<uint64_t>(&data)) return static_cast<double>(*u);
    throw Error(std::string("expected a number, found ") + std::string(value_type_name(type)));
}
bool Value::as_bool() const {
    if (auto* b = std::get_if<bool>(&data)) return *b;
    throw Error(std::string("expected a bool, found ") + std::string(value_type_name(type)));
}
std::string_view Value::as_string() const {
    if (auto* s = std::get_if<std::string_view>(&data)) return *s;
    throw Error(std::string("expected a string, found ") + std::string(value_type_name(type)));
}
const Array& Value::as_array() const {
    if (auto* a = std::get_if<std::shared_ptr<const Array>>(&data)) return **a;
    throw Error(std::string("expected an array, found ") + std::string(value_type_name(type)));
}

std::string Value::to_string(size_t max_items) const {
    std::ostringstream o;
    if (auto* u = std::get_if<uint64_t>(&data)) o << *u;
    else if (auto* s = std::get_if<int64_t>(&data)) o << *s;
    else if (auto* d = std::get_if<double>(&data)) o << *d;
    else if (auto* b = std::get_if<bool>(&data)) o << (*b ? "true" : "false");
    else if (auto* sv = std::get_if<std::string_view>(&data)) o << '"' << display(*sv, 120) << '"';
    else {
        const Array& a = as_array();
        size_t n = a.size();
        o << '[';
        for (size_t i = 0; i < n && i < max_items; ++i) {
            if (i) o << ", ";
            switch (a.elem_type) {
                case ValueType::STRING: o << '"' << display(a.strings[i], 40) << '"'; break;
                case ValueType::ARRAY: o << a.nested[i].to_string(max_items); break;
                case ValueType::FLOAT32: case ValueType::FLOAT64: o << a.floats[i]; break;
                case ValueType::UINT64: o << static_cast<uint64_t>(a.ints[i]); break;
                default: o << a.ints[i];
            }
        }
        if (n > max_items) o << ", ... (" << n << " " << value_type_name(a.elem_type) << " items)";
        o << ']';
    }
    return o.str();
}

size_t Array::size() const {
    switch (elem_type) {
        case ValueType::STRING: return strings.size();
        case ValueType::ARRAY: return nested.size();
        case ValueType::FLOAT32: case ValueType::FLOAT64: return floats.size();
        default: return ints.size();
    }
}

// ---- File ----

File File::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw Error(path + ": cannot stat: " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file");
    }
    size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {  // mmap cannot map nothing; the parser gives the usual "file ends" error
        ::close(fd);
        static const uint8_t nothing = 0;
        File f;
        f.base_ = &nothing;
        f.name_ = path;
        f.parse();
        return f;
    }
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw Error(path + ": cannot map: " + std::strerror(e));
    File f;
    f.mapping_ = std::shared_ptr<const void>(p, [size](const void* q) { munmap(const_cast<void*>(q), size); });
    f.base_ = static_cast<const uint8_t*>(p);
    f.size_ = size;
    f.name_ = path;
    f.parse();
    return f;
}

File File::from_memory(const void* data, size_t size, std::string name) {
    File f;
    f.base_ = static_cast<const uint8_t*>(data);
    f.size_ = size;
    f.name_ = std::move(name);
    f.parse();
    return f;
}

void File::parse() {
    Cursor c(base_, size_, name_, 3);
    uint32_t magic = c.read<uint32_t>("the magic number");
    if (std::memcmp(&magic, "GGUF", 4) != 0) {
        std::string got(reinterpret_cast<const char*>(&magic), 4);
        c.fail("bad magic \"" + printable(got) + "\" (expected \"GGUF\"): not a GGUF file", 0);
    }
    version_ = c.read<uint32_t>("the version");
    if (version_ < 1 || version_ > 3)
        c.fail("unsupported GGUF version " + std::to_string(version_) + " (1, 2 and 3 are supported)", 4);
    // Version 1 stores counts, lengths and dimensions in 32 bits; later versions in 64.
    Cursor cur(base_, size_, name_, version_);
    cur.skip_to(c.pos());
    const size_t count_bytes = version_ == 1 ? 4 : 8;

    size_t at = cur.pos();
    uint64_t n_tensors = cur.read_count("the tensor count");
    size_t at_kv = cur.pos();
    uint64_t n_kv = cur.read_count("the metadata count");
    // The smallest encodings bound how many entries the rest of the file can hold:
    // a key/value is key length + 1-byte key + type + 1-byte value; a tensor info is name length
    // + 1-byte name + n_dims + one dimension + type + offset.
    const size_t min_kv = count_bytes + 1 + 4 + 1;
    const size_t min_tensor = count_bytes + 1 + 4 + count_bytes + 4 + 8;
    const size_t left = cur.remaining();
    if (n_tensors > left / min_tensor)
        cur.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(left) +
                     " bytes left (each tensor info takes at least " + std::to_string(min_tensor) + ")",
                 at);
    if (n_kv > left / min_kv)
        cur.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(left) +
                     " bytes left (each entry takes at least " + std::to_string(min_kv) + ")",
                 at_kv);
    if (n_tensors * min_tensor + n_kv * min_kv > left)  // no overflow: each term is <= left
        cur.fail("metadata count " + std::to_string(n_kv) + " and tensor count " + std::to_string(n_tensors) +
                     " together cannot fit in the " + std::to_string(left) + " bytes left",
                 at);

    // Metadata.
    std::unordered_set<std::string_view> seen;
    kv_.reserve(reserve_for(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        cur.set_context("metadata entry " + std::to_string(i));
        std::string_view key = read_name(cur, "key", "key", seen);
        size_t t_at = cur.pos();
        uint32_t t = cur.read<uint32_t>("value type");
        if (!known_value_type(t, version_)) cur.fail(unknown_type_message("value type", t, version_), t_at);
        size_t v_at = cur.pos();
        Value v = read_value(cur, static_cast<ValueType>(t), 0);
        if (key == "general.alignment") {
            // Must be a power of two: tensor offsets are multiples of it and the data section
            // starts at one. 1 GiB is far beyond any real file's alignment.
            if (!v.is_integer())
                cur.fail("alignment must be an integer, found " + std::string(value_type_name(v.type)), v_at);
            bool neg = std::holds_alternative<int64_t>(v.data) && std::get<int64_t>(v.data) < 0;
            uint64_t al = neg ? 0 : v.as_uint();
            if (neg || al == 0 || (al & (al - 1)) != 0 || al > (uint64_t{1} << 30))
                cur.fail("alignment " + v.to_string() + " is not a power of two between 1 and 2^30", v_at);
            alignment_ = al;
        }
        kv_.emplace_back(std::string(key), std::move(v));
    }

    // Tensor infos.
    std::unordered_set<std::string_view> names;
    std::vector<size_t> offset_field_at;  // where each tensor's offset was read, for later errors
    tensors_.reserve(reserve_for(n_tensors));
    offset_field_at.reserve(reserve_for(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        cur.set_context("tensor " + std::to_string(i));
        std::string_view name = read_name(cur, "tensor name", "tensor", names);
        TensorInfo ti;
        ti.name = std::string(name);
        size_t nd_at = cur.pos();
        ti.n_dims = cur.read<uint32_t>("n_dims");
        if (ti.n_dims == 0 || ti.n_dims > 4)
            cur.fail("n_dims is " + std::to_string(ti.n_dims) + " (must be 1 to 4)", nd_at);
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < ti.n_dims; ++d) {
            size_t d_at = cur.pos();
            uint64_t dim = cur.read_count("dimension");
            if (dim == 0) cur.fail("dimension " + std::to_string(d) + " is zero", d_at);
            if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                n_el > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim)
                cur.fail("dimension " + std::to_string(d) + " = " + std::to_string(dim) +
                             " overflows the element count (more than 2^63 - 1 elements)",
                         d_at);
            n_el *= dim;
            ti.ne[d] = static_cast<int64_t>(dim);
        }
        size_t type_at = cur.pos();
        uint32_t type_id = cur.read<uint32_t>("tensor type");
        auto info = dtype_info(type_id);
        if (!info) cur.fail("unknown tensor type " + std::to_string(type_id), type_at);
        ti.type = info->type;
        if (ti.ne[0] % info->block_elems != 0)
            cur.fail("first dimension " + std::to_string(ti.ne[0]) + " is not a multiple of the " +
                         std::string(info->name) + " block size " + std::to_string(info->block_elems),
                     type_at);
        uint64_t blocks = n_el / info->block_elems;
        if (blocks > std::numeric_limits<uint64_t>::max() / info->block_bytes)
            cur.fail("tensor byte size overflows", type_at);
        ti.nbytes = blocks * info->block_bytes;
        size_t off_at = cur.pos();
        ti.offset = cur.read<uint64_t>("tensor data offset");
        if (ti.offset % alignment_ != 0)
            cur.fail("data offset " + std::to_string(ti.offset) + " is misaligned: not a multiple of the alignment " +
                         std::to_string(alignment_),
                     off_at);
        tensors_.push_back(std::move(ti));
        offset_field_at.push_back(off_at);
    }

    // Data section: starts at the first aligned offset after the infos; every tensor inside the
    // file, none overlapping another.
    uint64_t end_infos = cur.pos();
    data_offset_ = (end_infos + alignment_ - 1) / alignment_ * alignment_;
    if (tensors_.empty()) return;
    cur.set_context("");
    if (data_offset_ > size_)
        cur.fail("the tensor data section would start at byte " + std::to_string(data_offset_) +
                 ", past the end of the " + std::to_string(size_) + "-byte file (truncated?)");
    uint64_t data_size = size_ - data_offset_;
    std::vector<size_t> by_offset(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const TensorInfo& t = tensors_[i];
        by_offset[i] = i;
        if (t.offset > data_size || t.nbytes > data_size - t.offset) {
            cur.set_context("tensor '" + display(t.name) + "'");
            cur.fail("data at offset " + std::to_string(t.offset) + " (+" + std::to_string(t.nbytes) +
                         " bytes) extends past the end of the data section (" + std::to_string(data_size) +
                         " bytes from byte " + std::to_string(data_offset_) + " of the " + std::to_string(size_) +
                         "-byte file; truncated?)",
                     offset_field_at[i]);
        }
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
        const TensorInfo& p = tensors_[by_offset[k - 1]];
        const TensorInfo& q = tensors_[by_offset[k]];
        if (p.offset + p.nbytes > q.offset) {
            cur.set_context("tensor '" + display(q.name) + "'");
            cur.fail("data at byte " + std::to_string(data_offset_ + q.offset) + " overlaps the data of tensor '" +
                         display(p.name) + "' [" + std::to_string(data_offset_ + p.offset) + ", " +
                         std::to_string(data_offset_ + p.offset + p.nbytes) + ")",
                     offset_field_at[by_offset[k]]);
        }
    }
}

const Value* File::find(std::string_view key) const {
    for (const auto& [k, v] : kv_)
        if (k == key) return &v;
    return nullptr;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    for (const auto& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

namespace {
template <typename F>
auto typed_get(const File& f, std::string_view key, F&& get) -> decltype(get(std::declval<const Value&>())) {
    const Value* v = f.find(key);
    if (!v) throw Error(f.path() + ": missing metadata key '" + std::string(key) + "'");
    try {
        return get(*v);
    } catch (const Error& e) {
        throw Error(f.path() + ": metadata key '" + std::string(key) + "': " + e.what());
    }
}
}  // namespace

std::string_view File::get_string(std::string_view key) const {
    return typed_get(*this, key, [](const Value& v) { return v.as_string(); });
}
int64_t File::get_int(std::string_view key) const {
    return typed_get(*this, key, [](const Value& v) { return v.as_int(); });
}
double File::get_float(std::string_view key) const {
    return typed_get(*this, key, [](const Value& v) { return v.as_float(); });
}
bool File::get_bool(std::string_view key) const {
    return typed_get(*this, key, [](const Value& v) { return v.as_bool(); });
}
const Array& File::get_array(std::string_view key) const {
    return typed_get(*this, key, [](const Value& v) -> const Array& { return v.as_array(); });
}
std::string_view File::get_string(std::string_view key, std::string_view def) const {
    return has(key) ? get_string(key) : def;
}
int64_t File::get_int(std::string_view key, int64_t def) const { return has(key) ? get_int(key) : def; }
double File::get_float(std::string_view key, double def) const { return has(key) ? get_float(key) : def; }
bool File::get_bool(std::string_view key, bool def) const { return has(key) ? get_bool(key) : def; }

}  // namespace minerva::gguf
