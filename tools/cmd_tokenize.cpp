// minerva tokenize / detokenize: text <-> token ids with a model's vocabulary.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli.h"
#include "minerva/error.h"
#include "minerva/vocab.h"

namespace minerva::cli {
namespace {

constexpr const char* kTokenizeHelp =
    "usage: minerva tokenize -m MODEL [-p TEXT | -f FILE] [--bos] [--special] [--jsonl]\n"
    "\n"
    "Prints the token ids of the text (from -p, -f FILE, or standard input), separated by spaces.\n"
    "  -m, --model FILE   GGUF file whose vocabulary to use (only the vocabulary is read)\n"
    "  -p, --prompt TEXT  the text\n"
    "  -f, --file FILE    read the text from FILE ('-' for standard input)\n"
    "  --bos              put the BOS token first (none by default)\n"
    "  --special          turn the text of special tokens such as <|eot_id|> into those tokens\n"
    "  --jsonl            the input has one JSON string per line; print one JSON array of ids per line\n";

constexpr const char* kDetokenizeHelp =
    "usage: minerva detokenize -m MODEL [-p IDS] [--no-special]\n"
    "\n"
    "Prints the text of whitespace-separated token ids (from -p or standard input).\n"
    "  -m, --model FILE   GGUF file whose vocabulary to use\n"
    "  -p, --prompt IDS   the ids, e.g. \"9906 1917\"\n"
    "  --no-special       leave out control tokens (BOS, EOS, ...) instead of printing their text\n";

bool wants_help(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") return true;
    return false;
}

std::vector<int32_t> encode(const Vocab& vocab, std::string_view text, bool bos, bool special) {
    std::vector<int32_t> ids;
    if (bos) {
        if (vocab.bos() < 0) throw Error("--bos: this vocabulary has no BOS token");
        ids.push_back(vocab.bos());
    }
    const auto body = vocab.tokenize(text, /*add_special=*/false, special);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
}

int cmd_tokenize(int argc, char** argv) {
    if (wants_help(argc, argv)) {
        std::fputs(kTokenizeHelp, stdout);
        return 0;
    }
    Args args(argc, argv, {"-m|--model", "-p|--prompt", "-f|--file"}, {"--bos", "--special", "--jsonl"});
    if (args.has("-p") && args.has("-f")) throw Error("give the text with -p or -f, not both");
    auto vocab = Vocab::load(args.require("-m"));
    const bool bos = args.has("--bos"), special = args.has("--special");
    const std::string input = args.has("-p") ? args.require("-p") : read_file(args.get("-f", "-"));

    if (!args.has("--jsonl")) {
        const auto ids = encode(*vocab, input, bos, special);
        std::string line;
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) line += ' ';
            line += std::to_string(ids[i]);
        }
        std::printf("%s\n", line.c_str());
        return 0;
    }

    std::istringstream lines(input);
    std::string line;
    for (size_t n = 1; std::getline(lines, line); ++n) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are skipped
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            throw Error("--jsonl: line " + std::to_string(n) + " is not valid JSON: " + e.what());
        }
        if (!j.is_string())
            throw Error("--jsonl: line " + std::to_string(n) + " must be a JSON string, found " + j.type_name());
        const auto ids = encode(*vocab, j.get_ref<const std::string&>(), bos, special);
        std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    }
    return 0;
}

int cmd_detokenize(int argc, char** argv) {
    if (wants_help(argc, argv)) {
        std::fputs(kDetokenizeHelp, stdout);
        return 0;
    }
    Args args(argc, argv, {"-m|--model", "-p|--prompt"}, {"--no-special"});
    auto vocab = Vocab::load(args.require("-m"));
    const std::string input = args.has("-p") ? args.require("-p") : read_file("-");
    std::istringstream in(input);
    std::vector<int32_t> ids;
    for (std::string word; in >> word;) {
        size_t used = 0;
        long long id = 0;
        try {
            id = std::stoll(word, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != word.size()) throw Error("'" + word + "' is not a token id (expected integers separated by spaces)");
        if (id < 0 || id >= vocab->n_tokens())
            throw Error("token id " + word + " is out of range (the vocabulary has " + std::to_string(vocab->n_tokens()) +
                        " tokens)");
        ids.push_back(static_cast<int32_t>(id));
    }
    const std::string text = vocab->detokenize(ids, args.has("--no-special"));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
}

const Registrar reg_tokenize("tokenize", "text -> token ids with a model's vocabulary", cmd_tokenize);
const Registrar reg_detokenize("detokenize", "token ids -> text", cmd_detokenize);

}  // namespace
}  // namespace minerva::cli
