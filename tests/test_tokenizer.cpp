// Tokenizer tests: the reference vectors of ../shared/vocab for every vocabulary, then special
// tokens, BOS/EOS, byte fallback, round trips, the streaming decoder and bad metadata.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common.h"
#include "minerva/error.h"
#include "minerva/gguf.h"
#include "minerva/vocab.h"

namespace {

using minerva::TokenType;
using minerva::Vocab;

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// The .inp format: every input is followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_inputs(const std::string& path) {
    const std::string all = slurp(path);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    for (size_t hit; (hit = all.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
        out.push_back(all.substr(pos, hit - pos));
    return out;
}

std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::vector<int32_t>> out;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream ls(line);
        std::vector<int32_t> ids;
        for (int32_t id; ls >> id;) ids.push_back(id);
        out.push_back(ids);
    }
    return out;
}

std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += " " + std::to_string(id);
    return s;
}

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, ReproducesReference) {
    const std::string name = GetParam();
    MINERVA_SHARED_FILE(gguf_path, "vocab/" + name + ".gguf");
    MINERVA_SHARED_FILE(inp_path, "vocab/" + name + ".gguf.inp");
    MINERVA_SHARED_FILE(out_path, "vocab/" + name + ".gguf.out");
    auto vocab = Vocab::load(gguf_path);
    const auto inputs = read_inputs(inp_path);
    const auto expected = read_outputs(out_path);
    ASSERT_EQ(inputs.size(), expected.size()) << "malformed vector files for " << name;
    ASSERT_GT(inputs.size(), 10u);
    int failures = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const auto got = vocab->tokenize(inputs[i], /*add_special=*/false, /*parse_special=*/false);
        EXPECT_EQ(got, expected[i]) << name << " input #" << i << " '" << inputs[i] << "'\n  expected:"
                                    << ids_str(expected[i]) << "\n  got:     " << ids_str(got);
        failures += got != expected[i];
        // Every vector also round-trips (byte-level and SPM with byte fallback are lossless).
        EXPECT_EQ(vocab->detokenize(got), inputs[i]) << name << " input #" << i;
    }
    std::printf("[%s] %zu vectors, %d mismatches\n", name.c_str(), inputs.size(), failures);
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, VocabVectors,
                         ::testing::Values("ggml-vocab-llama-spm", "ggml-vocab-llama-bpe", "ggml-vocab-gpt-2",
                                           "ggml-vocab-qwen2", "ggml-vocab-deepseek-llm"),
                         [](const auto& info) {
                             std::string s = info.param.substr(11);
                             for (char& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

}  // namespace
