// The GGUF reader against malformed files: every kind in gguf_builder.h's malformed_cases() must
// be rejected with a minerva::Error naming the file and what was wrong (never another exception
// or a crash), through from_memory, open and the `minerva inspect` CLI. Also: the valid builder
// files read back exactly, every truncation and every bit flip of a valid file either parses or
// is an Error, and every shared model and vocabulary file reads cleanly.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common.h"
#include "gguf_builder.h"
#include "minerva/gguf.h"

namespace fs = std::filesystem;
using namespace minerva;

namespace gguf_test {
// Readable parameter names in gtest failure output instead of a byte dump.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " (" << c.bytes.size() << " bytes)"; }
}  // namespace gguf_test

namespace {

// Parses and returns the Error message; fails the test when it parses or throws anything else.
std::string error_of(const std::string& bytes, const std::string& name) {
    try {
        gguf::File::from_memory(bytes.data(), bytes.size(), name);
    } catch (const Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << name << ": threw a non-minerva exception: " << e.what();
        return "";
    }
    ADD_FAILURE() << name << ": was accepted";
    return "";
}

// Walks everything a parsed file exposes, so a bad index or view shows up under ASan/UBSan.
size_t walk(const gguf::File& f) {
    size_t sum = 0;
    for (const auto& [k, v] : f.metadata()) sum += k.size() + v.to_string(1000).size();
    for (const auto& t : f.tensors()) {
        const uint8_t* p = f.tensor_data(t);
        EXPECT_GE(p, f.base());
        EXPECT_LE(p + t.nbytes, f.base() + f.file_size()) << t.name;
        if (t.nbytes) sum += p[0] + p[t.nbytes - 1];
    }
    return sum;
}

fs::path temp_dir() {
    fs::path d = fs::temp_directory_path() / ("minerva-gguf-test-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
}

void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream o(p, std::ios::binary);
    o.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string slurp(const fs::path& p) {
    std::ifstream i(p, std::ios::binary);
    std::ostringstream s;
    s << i.rdbuf();
    return s.str();
}

class Malformed : public ::testing::TestWithParam<gguf_test::Case> {};

}  // namespace

TEST(GgufMalformed, FortyOrMoreDistinctKinds) {
    auto cases = gguf_test::malformed_cases();
    std::set<std::string> names;
    for (const auto& c : cases) EXPECT_TRUE(names.insert(c.name).second) << "duplicate case " << c.name;
    EXPECT_GE(names.size(), 40u);
}

TEST_P(Malformed, FromMemoryNamesFileOffsetAndProblem) {
    const auto& c = GetParam();
    std::string name = "case-" + c.name + ".gguf";
    std::string msg = error_of(c.bytes, name);
    EXPECT_EQ(msg.rfind(name + ": invalid GGUF at byte ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected \"" << c.expect << "\" in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
}

TEST_P(Malformed, OpenNamesThePath) {
    const auto& c = GetParam();
    fs::path p = temp_dir() / (c.name + ".gguf");
    write_file(p, c.bytes);
    try {
        gguf::File::open(p.string());
        ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_EQ(msg.rfind(p.string() + ": invalid GGUF at byte ", 0), 0u) << msg;
        EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    }
    fs::remove(p);
}

INSTANTIATE_TEST_SUITE_P(Cases, Malformed, ::testing::ValuesIn(gguf_test::malformed_cases()),
                         [](const auto& info) {
                             std::string n = info.param.name;
                             for (char& ch : n)
                                 if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

TEST(GgufValid, BuilderFilesReadBackExactly) {
    for (uint32_t version : {1u, 2u, 3u}) {
        SCOPED_TRACE("version " + std::to_string(version));
        std::string bytes = gguf_test::base_file(version).build();
        auto f = gguf::File::from_memory(bytes.data(), bytes.size(), "base.gguf");
        EXPECT_EQ(f.version(), version);
        EXPECT_EQ(f.alignment(), 32u);
        EXPECT_EQ(f.metadata().size(), version == 1 ? 17u : 20u);
        EXPECT_FALSE(f.get_string("general.architecture").empty());
        EXPECT_EQ(f.get_string("general.name"), "malformed-test \xE2\x96\x81 base");
        EXPECT_EQ(f.get_int("llama.block_count"), 1);
        EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
        EXPECT_EQ(f.get_int("test.u8"), 200);
        EXPECT_EQ(f.get_int("test.i8"), -5);
        EXPECT_EQ(f.get_int("test.u16"), 60000);
        EXPECT_EQ(f.get_int("test.i16"), -300);
        EXPECT_EQ(f.get_int("test.i32"), -70000);
        EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
        const auto& toks = f.get_array("tokenizer.ggml.tokens");
        ASSERT_EQ(toks.size(), 5u);
        EXPECT_EQ(toks.strings[3], "\xE2\x96\x81" "a");
        const auto& scores = f.get_array("tokenizer.ggml.scores");
        ASSERT_EQ(scores.floats.size(), 5u);
        EXPECT_EQ(scores.floats[4], -4.0);
        EXPECT_EQ(f.get_array("tokenizer.ggml.token_type").ints, (std::vector<int64_t>{2, 3, 3, 1, 1}));
        EXPECT_EQ(f.get_array("test.bools").ints, (std::vector<int64_t>{1, 0, 1}));
        const auto& nested = f.get_array("test.nested");
        ASSERT_EQ(nested.nested.size(), 2u);
        EXPECT_EQ(nested.nested[0].as_array().ints, (std::vector<int64_t>{1, 2}));
        EXPECT_EQ(nested.nested[1].as_array().ints, (std::vector<int64_t>{3}));
        EXPECT_EQ(f.get_array("test.empty_array").size(), 0u);
        if (version >= 2) {
            EXPECT_EQ(f.find("test.u64")->as_uint(), 1ull << 40);
            EXPECT_EQ(f.get_int("test.i64"), -(1ll << 40));
            EXPECT_EQ(f.get_float("test.f64"), 2.5);
        }
        ASSERT_EQ(f.tensors().size(), 3u);
        const auto* q = f.find_tensor("blk.0.attn_q.weight");
        ASSERT_NE(q, nullptr);
        EXPECT_EQ(q->type, DType::Q8_0);
        EXPECT_EQ(q->n_dims, 2u);
        EXPECT_EQ(q->ne[0], 32);
        EXPECT_EQ(q->ne[1], 2);
        EXPECT_EQ(q->nbytes, 68u);
        EXPECT_EQ(q->offset, 160u);
        EXPECT_EQ(f.data_offset() % 32, 0u);
        // The builder fills data with (i*7+1) & 0xFF from the start of the data section.
        EXPECT_EQ(f.tensor_data(*q)[0], static_cast<uint8_t>((160 * 7 + 1) & 0xFF));
        EXPECT_EQ(f.find_tensor("output_norm.weight")->nbytes, 16u);
        // Typed getters name the key when it is missing or of the wrong kind.
        try {
            f.get_string("llama.block_count");
            ADD_FAILURE();
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("base.gguf: metadata key 'llama.block_count'"), std::string::npos);
        }
        EXPECT_THROW(f.get_int("no.such.key"), Error);
        EXPECT_EQ(f.get_int("no.such.key", 7), 7);
    }
}

TEST(GgufValid, SeedFilesParse) {
    for (const auto& v : gguf_test::valid_files()) {
        SCOPED_TRACE(v.name);
        EXPECT_NO_THROW(walk(gguf::File::from_memory(v.bytes.data(), v.bytes.size(), v.name)));
    }
    std::string a64 = gguf_test::valid_files()[4].bytes;
    auto f = gguf::File::from_memory(a64.data(), a64.size(), "a64");
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    EXPECT_EQ(f.find_tensor("c")->n_elements(), 6);
    EXPECT_EQ(f.find_tensor("c")->ne[3], 2);
}

// Every proper prefix of a valid file with tensors is an Error, never anything else.
TEST(GgufValid, EveryTruncationIsAnError) {
    for (uint32_t version : {1u, 3u}) {
        std::string bytes = gguf_test::base_file(version).build();
        for (size_t n = 0; n < bytes.size(); ++n) {
            std::string cut = bytes.substr(0, n);
            std::string msg = error_of(cut, "cut.gguf");
            ASSERT_EQ(msg.rfind("cut.gguf: invalid GGUF at byte ", 0), 0u) << "v" << version << " prefix " << n << ": " << msg;
        }
    }
}

// Every single-bit flip of a valid file parses or is an Error (no other exception, no crash).
TEST(GgufValid, EveryBitFlipParsesOrIsAnError) {
    for (uint32_t version : {1u, 3u}) {
        std::string bytes = gguf_test::base_file(version).build();
        size_t rejected = 0;
        for (size_t i = 0; i < bytes.size(); ++i) {
            for (int bit = 0; bit < 8; ++bit) {
                std::string m = bytes;
                m[i] = static_cast<char>(m[i] ^ (1 << bit));
                try {
                    walk(gguf::File::from_memory(m.data(), m.size(), "flip.gguf"));
                } catch (const Error& e) {
                    ++rejected;
                    ASSERT_EQ(std::string(e.what()).rfind("flip.gguf: ", 0), 0u) << e.what();
                } catch (const std::exception& e) {
                    FAIL() << "byte " << i << " bit " << bit << ": non-minerva exception " << e.what();
                }
            }
        }
        EXPECT_GT(rejected, bytes.size());  // flips in the header and lengths must be caught
    }
}

// ---- the shared models and vocabularies ----

namespace {
std::vector<fs::path> shared_ggufs(const std::string& sub) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(fs::path(test::shared_dir()) / sub))
        if (e.path().extension() == ".gguf") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

void check_shared_file(const fs::path& p) {
    SCOPED_TRACE(p.string());
    gguf::File f = gguf::File::open(p.string());
    EXPECT_GE(f.version(), 2u);
    EXPECT_EQ(f.data_offset() % f.alignment(), 0u);
    EXPECT_FALSE(f.metadata().empty());
    EXPECT_NO_THROW(walk(f));
    // Every vocabulary has its token list, with as many scores/types as tokens when present.
    const auto& tokens = f.get_array("tokenizer.ggml.tokens");
    EXPECT_GT(tokens.size(), 0u);
    EXPECT_EQ(tokens.elem_type, gguf::ValueType::STRING);
    if (f.has("tokenizer.ggml.token_type")) {
        EXPECT_EQ(f.get_array("tokenizer.ggml.token_type").size(), tokens.size());
    }
    if (f.has("tokenizer.ggml.scores")) {
        EXPECT_EQ(f.get_array("tokenizer.ggml.scores").size(), tokens.size());
    }
    uint64_t end = f.data_offset();
    for (const auto& t : f.tensors()) {
        EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
        EXPECT_EQ(t.nbytes, row_bytes(t.type, t.ne[0]) * static_cast<uint64_t>(t.ne[1] * t.ne[2] * t.ne[3])) << t.name;
        end = std::max<uint64_t>(end, f.data_offset() + t.offset + t.nbytes);
    }
    if (!f.tensors().empty()) {
        EXPECT_LE(end, f.file_size());
        EXPECT_GE(end + f.alignment(), f.file_size()) << "unexplained bytes after the last tensor";
        EXPECT_FALSE(f.get_string("general.architecture").empty());
        EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr);
    }
}
}  // namespace

TEST(GgufShared, EveryModelReads) {
    MINERVA_SHARED_FILE(dir, "models");
    auto files = shared_ggufs("models");
    EXPECT_FALSE(files.empty());
    for (const auto& p : files) check_shared_file(p);
}

TEST(GgufShared, EveryVocabReads) {
    MINERVA_SHARED_FILE(dir, "vocab");
    auto files = shared_ggufs("vocab");
    EXPECT_FALSE(files.empty());
    for (const auto& p : files) check_shared_file(p);
}

// ---- minerva inspect ----

namespace {
struct CliRun {
    int status;
    std::string out, err;
};
CliRun run_inspect(const std::string& args) {
    fs::path d = temp_dir();
    fs::path out = d / "stdout.txt", err = d / "stderr.txt";
    std::string cmd = std::string("'") + MINERVA_BINARY_DIR + "/minerva' inspect " + args + " >'" + out.string() +
                      "' 2>'" + err.string() + "'";
    int rc = std::system(cmd.c_str());
    CliRun r{WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc), slurp(out), slurp(err)};
    return r;
}
bool have_cli() {
    bool ok = fs::exists(fs::path(MINERVA_BINARY_DIR) / "minerva");
    if (!ok) ADD_FAILURE() << "build the minerva CLI first: " << MINERVA_BINARY_DIR << "/minerva is missing";
    return ok;
}
}  // namespace

TEST(GgufCli, InspectRejectsEveryMalformedFileWithStatus1) {
    if (!have_cli()) return;
    fs::path d = temp_dir() / "cases";
    fs::create_directories(d);
    for (const auto& c : gguf_test::malformed_cases()) {
        fs::path p = d / (c.name + ".gguf");
        write_file(p, c.bytes);
        CliRun r = run_inspect("-m '" + p.string() + "'");
        EXPECT_EQ(r.status, 1) << c.name << "\n" << r.err;
        EXPECT_NE(r.err.find("minerva inspect: error: " + p.string() + ": invalid GGUF at byte "), std::string::npos)
            << c.name << ": " << r.err;
        EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.name << ": one error line: " << r.err;
        EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
    }
    fs::remove_all(d);
}

TEST(GgufCli, InspectMissingFileAndDirectory) {
    if (!have_cli()) return;
    CliRun r = run_inspect("-m /nonexistent/x.gguf");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("/nonexistent/x.gguf: cannot open"), std::string::npos) << r.err;
    r = run_inspect("-m '" + temp_dir().string() + "'");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

TEST(GgufCli, InspectValidBuilderFile) {
    if (!have_cli()) return;
    fs::path p = temp_dir() / "valid.gguf";
    write_file(p, gguf_test::base_file(3).build());
    CliRun r = run_inspect("-m '" + p.string() + "' --items 2");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("version:     3"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("array<string>[5]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[\"<unk>\", \"<s>\", ... (5 string items)]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("blk.0.attn_q.weight  Q8_0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("total: 3 tensors, 112 elements, 244 bytes"), std::string::npos) << r.out;
    r = run_inspect("-m '" + p.string() + "' --json --no-metadata");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"n_tensors\": 3"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"name\": \"output_norm.weight\""), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\"metadata\""), std::string::npos) << r.out;
    fs::remove(p);
}

TEST(GgufCli, InspectEverySharedFile) {
    MINERVA_SHARED_FILE(dir, "models");
    if (!have_cli()) return;
    auto files = shared_ggufs("models");
    for (const auto& p : shared_ggufs("vocab")) files.push_back(p);
    for (const auto& p : files) {
        CliRun r = run_inspect("-m '" + p.string() + "'");
        EXPECT_EQ(r.status, 0) << p << ": " << r.err;
        EXPECT_TRUE(r.err.empty()) << r.err;
        EXPECT_NE(r.out.find("tokenizer.ggml.tokens"), std::string::npos) << p;
        EXPECT_NE(r.out.find("\ntotal: "), std::string::npos) << p;
        CliRun j = run_inspect("-m '" + p.string() + "' --json");
        EXPECT_EQ(j.status, 0) << p << ": " << j.err;
    }
}
