// minerva chat: an interactive conversation with a model, through its chat template (the same
// code as minerva-serve: minerva/chat.h). Reads one user turn per line from stdin.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "minerva/chat.h"
#include "minerva/minerva.h"

namespace minerva::cli {
namespace {

const char* kChatHelp =
    "usage: minerva chat -m MODEL [options]\n"
    "One user turn per line on stdin; '/reset' forgets the conversation, '/exit' or EOF ends it.\n"
    "  -m, --model PATH        GGUF model\n"
    "  -s, --system TEXT       system message\n"
    "  --chat-template NAME|FILE  chatml, llama2, llama3, mistral, zephyr, gemma (3), gemma2, phi3,\n"
    "                          phi4, phi4-mini, qwen2.5, qwen3, tinyllama, or a Jinja file\n"
    "                          (default: the model's own, else chatml)\n"
    "  --print-prompt          print each rendered prompt to stderr\n"
    "  -n, --n-predict N       most tokens per reply (default 512)\n"
    "  -c, --ctx-size N        context size (default: min(trained, 4096))\n"
    "  -t, --threads N         CPU threads (default: physical cores)\n"
    "  --temp T                temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K, --top-p P, --min-p P, --repeat-penalty R, --seed S\n"
    "  --device D              auto, cpu, vulkan, vulkan:N\n"
    "%s"
    "Ctrl-C during a reply stops it (the conversation keeps what was said); at the prompt it ends the chat.\n";

int cmd_chat(int argc, char** argv) {
    Args a(argc, argv,
           {"-m|--model", "-s|--system", "--chat-template", "-n|--n-predict", "-c|--ctx-size", "-t|--threads", "--temp",
            "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--seed", "--device",
            "-ctk|--cache-type-k", "-ctv|--cache-type-v"},
           {"--print-prompt", "-h|--help"});
    if (a.has("--help")) {
        std::printf(kChatHelp, kCacheTypeHelp);
        return 0;
    }
    // Every option is checked before the model loads.
    GenerateParams gp;
    gp.max_tokens = static_cast<int>(a.get_int("-n", 512, 1, 1 << 24));
    read_sampling(a, gp.sampling);  // chat accepts the subset in its option list
    const int n_ctx = static_cast<int>(a.get_int("-c", 0, 0, 1 << 24));
    SessionOptions cache;  // the cache types, checked before loading
    read_cache_types(a, cache);
    model_options(a);
    a.require("-m");

    catch_interrupt();  // Ctrl-C interrupts a reply (the conversation stays); at the prompt it ends the chat
    auto model = load_model(a);
    const Vocab& vocab = *model->vocab();
    ChatTemplate tmpl = ChatTemplate::resolve(a.get("--chat-template", ""), model->chat_template());
    ChatOptions copts = chat_options(vocab);
    // End-of-turn markers that a vocabulary without them as control tokens would spell as text.
    gp.stop = {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "[INST]", "<|user|>"};

    SessionOptions so;
    so.n_ctx = n_ctx;
    so.kv_type_k = cache.kv_type_k;
    so.kv_type_v = cache.kv_type_v;
    Session session(model, so);
    if (!quiet())
        std::fprintf(stderr, "%s on %s, chat template '%s', n_ctx %d, KV cache %.1f MiB (%.1f KiB per token). One turn per line; /reset, /exit.\n",
                     model->info().name.c_str(), model->backend_name().c_str(), tmpl.name().c_str(), session.n_ctx(),
                     session.kv_bytes() / 1048576.0, session.kv_bytes_per_token() / 1024.0);

    std::vector<ChatMessage> conversation;
    if (auto s = a.get("-s")) conversation.emplace_back("system", *s);
    const size_t n_fixed = conversation.size();
    std::string line;
    while (true) {
        if (!quiet()) std::fputs("> ", stderr);
        if (!std::getline(std::cin, line) || line == "/exit") {
            if (interrupted()) std::fputs("\n", stderr);  // Ctrl-C at the prompt
            break;
        }
        if (line == "/reset") {
            conversation.resize(n_fixed);
            std::fputs("(conversation reset)\n", stderr);
            continue;
        }
        if (line.empty()) continue;
        conversation.emplace_back("user", line);
        // Render; when the conversation and room for a reply outgrow the context, drop the oldest
        // turns after the system prompt (llama.cpp's --keep): generate() then shifts the cache
        // over the dropped part instead of evaluating the kept turns again.
        const int reserve = std::min(gp.max_tokens > 0 ? gp.max_tokens : session.n_ctx() / 4, session.n_ctx() / 2);
        std::vector<int32_t> prompt;
        bool ok = true;
        while (true) {
            std::string text;
            try {
                text = tmpl.render(conversation, copts);
            } catch (const Error& e) {
                std::fprintf(stderr, "error: %s\n", e.what());
                ok = false;
                break;
            }
            if (a.has("--print-prompt")) std::fprintf(stderr, "[prompt]\n%s\n[/prompt]\n", text.c_str());
            prompt = tokenize_chat(vocab, text);
            if (static_cast<int>(prompt.size()) + reserve <= session.n_ctx() || conversation.size() <= n_fixed + 1) break;
            // The oldest turn: a user message and the assistant reply after it.
            conversation.erase(conversation.begin() + static_cast<std::ptrdiff_t>(n_fixed));
            if (conversation.size() > n_fixed + 1 && conversation[n_fixed].role == "assistant")
                conversation.erase(conversation.begin() + static_cast<std::ptrdiff_t>(n_fixed));
            std::fputs("(context full: the oldest turn was dropped)\n", stderr);
        }
        if (ok && static_cast<int>(prompt.size()) + 1 >= session.n_ctx()) {
            std::fprintf(stderr, "error: the message (%zu tokens with the system prompt) fills the context of %d\n",
                         prompt.size(), session.n_ctx());
            ok = false;
        }
        if (!ok) {
            conversation.pop_back();
            continue;
        }
        GenerateParams turn = gp;
        turn.max_tokens = std::min(gp.max_tokens, session.n_ctx() - static_cast<int>(prompt.size()));
        GenerateResult r = generate(session, prompt, turn, [&](int32_t, std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return !interrupted();
        });
        std::printf("\n");
        std::fflush(stdout);
        // An interrupted reply stays in the conversation as far as it got.
        conversation.emplace_back("assistant", r.text);
        if (r.finish_reason == "cancelled") {
            if (!quiet()) std::fputs("(reply interrupted)\n", stderr);
            clear_interrupt();
        }
    }
    return 0;
}

Registrar reg_chat("chat", "chat with a model through its chat template (stdin, one turn per line)", cmd_chat);

}  // namespace
}  // namespace minerva::cli
