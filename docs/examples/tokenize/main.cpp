// tokenize: loads a GGUF file's vocabulary and prints the token ids of the text given on the
// command line (words joined by single spaces), then the text decoded back from those ids.
//
//   tokenize [--raw] MODEL.gguf TEXT...
//
// Without --raw, BOS/EOS are added as the file's add_bos_token/add_eos_token say; with --raw
// nothing is added. Line 1: the ids, space-separated. Line 2: the decoded text.
#include <minerva/minerva.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    int first = 1;
    bool raw = false;
    if (argc > 1 && std::strcmp(argv[1], "--raw") == 0) {
        raw = true;
        first = 2;
    }
    if (argc - first < 2) {
        std::fprintf(stderr, "usage: %s [--raw] MODEL.gguf TEXT...\n", argv[0]);
        return 2;
    }
    std::string text;
    for (int i = first + 1; i < argc; ++i) {
        if (i > first + 1) text += ' ';
        text += argv[i];
    }
    try {
        std::shared_ptr<const minerva::Vocab> vocab = minerva::Vocab::load(argv[first]);
        std::vector<int32_t> ids = vocab->tokenize(text, /*add_special=*/!raw, /*parse_special=*/false);
        for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
        std::printf("\n%s\n", vocab->detokenize(ids, /*remove_special=*/true).c_str());
    } catch (const minerva::Error& e) {
        std::fprintf(stderr, "tokenize: %s\n", e.what());
        return 1;
    }
    return 0;
}
