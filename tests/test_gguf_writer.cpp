// The GGUF writer, checked by reading its files back with the reader.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common.h"
#include "gguf/gguf_writer.h"
#include "minerva/gguf.h"

using namespace minerva;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("minerva-test-writer-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return (dir / name).string();
}

TEST(GgufWriter, AllValueTypesTensorsAndAlignment) {
    const std::string path = temp_path("all.gguf");
    {
        gguf::Writer w(path);
        w.add_u32("general.alignment", 64);
        w.add_u8("t.u8", 250);
        w.add_i8("t.i8", -100);
        w.add_u16("t.u16", 65000);
        w.add_i16("t.i16", -32000);
        w.add_u32("t.u32", 4000000000u);
        w.add_i32("t.i32", -2000000000);
        w.add_u64("t.u64", 18000000000000000000ull);
        w.add_i64("t.i64", -9000000000000000000ll);
        w.add_f32("t.f32", 1.5f);
        w.add_f64("t.f64", 3.141592653589793);
        w.add_bool("t.bool", true);
        w.add_string("t.str", "h\xC3\xA9llo");
        w.add_string("t.empty", "");
        w.add_string_array("t.strs", std::vector<std::string>{"a", "", "\xE2\x96\x81the", "<0x0A>"});
        std::vector<int64_t> ints = {-1, 0, 7};
        w.add_int_array("t.i32s", gguf::ValueType::INT32, ints);
        std::vector<int64_t> u8s = {0, 255, 3};
        w.add_int_array("t.u8s", gguf::ValueType::UINT8, u8s);
        std::vector<int64_t> bools = {1, 0};
        w.add_int_array("t.bools", gguf::ValueType::BOOL, bools);
        std::vector<double> fl = {0.25, -2.0};
        w.add_float_array("t.f32s", gguf::ValueType::FLOAT32, fl);
        w.add_float_array("t.f64s", gguf::ValueType::FLOAT64, fl);
        w.add_int_array("t.empty_arr", gguf::ValueType::INT64, {});

        int64_t a_ne[] = {5};
        int64_t b_ne[] = {64, 3};
        int64_t c_ne[] = {32, 2, 2, 2};
        w.add_tensor("a", DType::F32, a_ne);
        w.add_tensor("b", DType::F16, b_ne);
        w.add_tensor("c", DType::Q8_0, c_ne);
        w.begin_data();
        std::vector<uint8_t> a(20), b(64 * 3 * 2), c(8 * 34);
        for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i + 1);
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 7);
        for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<uint8_t>(255 - i);
        w.write_data(a.data(), a.size());
        // Chunks may cross tensor boundaries only at the end of a tensor: write b in pieces.
        w.write_data(b.data(), 100);
        w.write_data(b.data() + 100, b.size() - 100);
        w.write_data(c.data(), c.size());
        w.finish();
    }
    ASSERT_FALSE(fs::exists(path + ".tmp"));
    auto f = gguf::File::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    EXPECT_EQ(f.find("t.u8")->type, gguf::ValueType::UINT8);
    EXPECT_EQ(f.get_int("t.u8"), 250);
    EXPECT_EQ(f.find("t.i8")->type, gguf::ValueType::INT8);
    EXPECT_EQ(f.get_int("t.i8"), -100);
    EXPECT_EQ(f.get_int("t.u16"), 65000);
    EXPECT_EQ(f.find("t.i16")->type, gguf::ValueType::INT16);
    EXPECT_EQ(f.get_int("t.i16"), -32000);
    EXPECT_EQ(f.get_int("t.u32"), 4000000000ll);
    EXPECT_EQ(f.get_int("t.i32"), -2000000000);
    EXPECT_EQ(f.find("t.u64")->as_uint(), 18000000000000000000ull);
    EXPECT_EQ(f.get_int("t.i64"), -9000000000000000000ll);
    EXPECT_EQ(f.find("t.f32")->type, gguf::ValueType::FLOAT32);
    EXPECT_EQ(f.get_float("t.f32"), 1.5);
    EXPECT_EQ(f.find("t.f64")->type, gguf::ValueType::FLOAT64);
    EXPECT_EQ(f.get_float("t.f64"), 3.141592653589793);
    EXPECT_TRUE(f.get_bool("t.bool"));
    EXPECT_EQ(f.get_string("t.str"), "h\xC3\xA9llo");
    EXPECT_EQ(f.get_string("t.empty"), "");
    const auto& strs = f.get_array("t.strs");
    ASSERT_EQ(strs.elem_type, gguf::ValueType::STRING);
    ASSERT_EQ(strs.strings.size(), 4u);
    EXPECT_EQ(strs.strings[0], "a");
    EXPECT_EQ(strs.strings[1], "");
    EXPECT_EQ(strs.strings[2], "\xE2\x96\x81the");
    EXPECT_EQ(strs.strings[3], "<0x0A>");
    EXPECT_EQ(f.get_array("t.i32s").ints, (std::vector<int64_t>{-1, 0, 7}));
    EXPECT_EQ(f.get_array("t.i32s").elem_type, gguf::ValueType::INT32);
    EXPECT_EQ(f.get_array("t.u8s").ints, (std::vector<int64_t>{0, 255, 3}));
    EXPECT_EQ(f.get_array("t.bools").elem_type, gguf::ValueType::BOOL);
    EXPECT_EQ(f.get_array("t.bools").ints, (std::vector<int64_t>{1, 0}));
    EXPECT_EQ(f.get_array("t.f32s").floats, (std::vector<double>{0.25, -2.0}));
    EXPECT_EQ(f.get_array("t.f64s").elem_type, gguf::ValueType::FLOAT64);
    EXPECT_EQ(f.get_array("t.empty_arr").size(), 0u);

    ASSERT_EQ(f.tensors().size(), 3u);
    const auto* a = f.find_tensor("a");
    const auto* b = f.find_tensor("b");
    const auto* c = f.find_tensor("c");
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(a->n_dims, 1u);
    EXPECT_EQ(a->ne[0], 5);
    EXPECT_EQ(b->type, DType::F16);
    EXPECT_EQ(b->ne[1], 3);
    EXPECT_EQ(c->type, DType::Q8_0);
    EXPECT_EQ(c->n_dims, 4u);
    EXPECT_EQ(c->ne[3], 2);
    for (const auto* t : {a, b, c}) EXPECT_EQ(t->offset % 64, 0u) << t->name;
    EXPECT_EQ(f.tensor_data(*a)[4], 5);
    EXPECT_EQ(f.tensor_data(*b)[101], static_cast<uint8_t>(101 * 7));
    EXPECT_EQ(f.tensor_data(*c)[c->nbytes - 1], static_cast<uint8_t>(255 - (c->nbytes - 1)));
    fs::remove(path);
}

// Reader -> writer -> reader keeps every metadata value of a real vocabulary file (string
// arrays of 32000 tokens, float scores, int token types, ...), nested arrays too.
TEST(GgufWriter, CopiesMetadataExactly) {
    MINERVA_SHARED_FILE(src, "vocab/ggml-vocab-llama-spm.gguf");
    auto in = gguf::File::open(src);
    const std::string path = temp_path("copy.gguf");
    {
        gguf::Writer w(path);
        for (const auto& [k, v] : in.metadata()) w.add_value(k, v);
        w.finish();
    }
    auto out = gguf::File::open(path);
    ASSERT_EQ(out.metadata().size(), in.metadata().size());
    for (size_t i = 0; i < in.metadata().size(); ++i) {
        const auto& [k, v] = in.metadata()[i];
        const auto& [k2, v2] = out.metadata()[i];
        EXPECT_EQ(k, k2);
        EXPECT_EQ(v.type, v2.type) << k;
        EXPECT_EQ(v.to_string(1u << 20), v2.to_string(1u << 20)) << k;
    }
    fs::remove(path);
}

TEST(GgufWriter, NestedArraysRoundTrip) {
    // Hand-build a file with an array of arrays through the writer's generic path: first write
    // the inner arrays as separate keys, read them back, then nest them via add_value.
    const std::string p1 = temp_path("inner.gguf"), p2 = temp_path("nested.gguf");
    {
        gguf::Writer w(p1);
        std::vector<int64_t> a = {1, 2, 3}, b = {-4};
        w.add_int_array("x", gguf::ValueType::INT16, a);
        w.add_int_array("y", gguf::ValueType::INT16, b);
        w.finish();
    }
    auto inner = gguf::File::open(p1);
    auto arr = std::make_shared<gguf::Array>();
    arr->elem_type = gguf::ValueType::ARRAY;
    arr->nested = {*inner.find("x"), *inner.find("y")};
    gguf::Value nested;
    nested.type = gguf::ValueType::ARRAY;
    nested.data = std::shared_ptr<const gguf::Array>(arr);
    {
        gguf::Writer w(p2);
        w.add_value("nested", nested);
        w.finish();
    }
    auto f = gguf::File::open(p2);
    const auto& n = f.get_array("nested");
    ASSERT_EQ(n.elem_type, gguf::ValueType::ARRAY);
    ASSERT_EQ(n.nested.size(), 2u);
    EXPECT_EQ(n.nested[0].as_array().ints, (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ(n.nested[1].as_array().elem_type, gguf::ValueType::INT16);
    EXPECT_EQ(n.nested[1].as_array().ints, (std::vector<int64_t>{-4}));
    fs::remove(p1);
    fs::remove(p2);
}

TEST(GgufWriter, RejectsMisuse) {
    const std::string path = temp_path("bad.gguf");
    int64_t ne[] = {32, 2};
    int64_t bad_row[] = {33, 2};
    int64_t zero[] = {32, 0};
    int64_t five[] = {1, 1, 1, 1, 1};
    {
        gguf::Writer w(path);
        w.add_u32("k", 1);
        EXPECT_THROW(w.add_string("k", "again"), Error);                          // duplicate key
        EXPECT_THROW(w.add_uint("big", gguf::ValueType::UINT8, 256), Error);      // does not fit
        EXPECT_THROW(w.add_int("neg", gguf::ValueType::INT8, -129), Error);
        EXPECT_THROW(w.add_u16("general.alignment", 32), Error);                  // wrong type
        EXPECT_THROW(w.add_u32("general.alignment", 48), Error);                  // not a power of 2
        std::vector<int64_t> v = {300};
        EXPECT_THROW(w.add_int_array("arr", gguf::ValueType::UINT8, v), Error);
        w.add_tensor("t", DType::Q8_0, ne);
        EXPECT_THROW(w.add_tensor("t", DType::Q8_0, ne), Error);                  // duplicate tensor
        EXPECT_THROW(w.add_tensor("u", DType::Q8_0, bad_row), Error);             // not a block multiple
        EXPECT_THROW(w.add_tensor("z", DType::F32, zero), Error);                 // zero dim
        EXPECT_THROW(w.add_tensor("f", DType::F32, five), Error);                 // 5 dims
        w.begin_data();
        EXPECT_THROW(w.add_u32("late", 1), Error);                                // after begin_data
        std::vector<uint8_t> data(2 * 34 + 1);
        EXPECT_THROW(w.write_data(data.data(), data.size()), Error);              // too much data
    }
    EXPECT_FALSE(fs::exists(path));  // unfinished: nothing under the final name
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    {
        gguf::Writer w(path);
        w.add_tensor("t", DType::Q8_0, ne);
        w.begin_data();
        std::vector<uint8_t> data(34);
        w.write_data(data.data(), data.size());
        EXPECT_THROW(w.finish(), Error);  // half the tensor missing
    }
    EXPECT_FALSE(fs::exists(path));
}

}  // namespace
