// Reads every shared model and vocabulary file and checks the facts the reader must get right.
#include <gtest/gtest.h>

#include "common.h"
#include "minerva/gguf.h"

using namespace minerva;

TEST(GgufBasic, ReadsSharedModel) {
    MINERVA_SHARED_FILE(path, "models/stories260K-f32.gguf");
    auto f = gguf::File::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_int("llama.block_count"), 5);
    EXPECT_EQ(f.get_array("tokenizer.ggml.tokens").size(), 512u);
    const gguf::TensorInfo* t = f.find_tensor("token_embd.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, DType::F32);
    EXPECT_EQ(t->ne[0], 64);
    EXPECT_EQ(t->ne[1], 512);
    EXPECT_EQ(f.data_offset() % f.alignment(), 0u);
}
