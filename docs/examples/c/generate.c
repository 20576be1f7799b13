/* A C program on libminerva's C API (minerva.h), built against an installed package:
 *   cc generate.c $(pkg-config --cflags --libs minerva) -o generate
 *   ./generate model.gguf "Once upon a time" 16
 * Greedily continues the prompt, streaming the text to stdout; then prints the embedding size
 * and first values of the prompt to stderr. Every error is a status code plus a message. */
#include <minerva.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool on_token(int32_t token, const char* text, size_t len, void* user_data) {
    (void)token;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    ++*(int*)user_data;
    return true;
}

static int fail(const char* what, minerva_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, minerva_status_name(st), minerva_last_error());
    return 1;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_TOKENS\n", argv[0]);
        return 2;
    }
    fprintf(stderr, "libminerva %s (headers %s)\n", minerva_version(), MINERVA_VERSION_STRING);
    minerva_set_log_level(MINERVA_LOG_WARN);

    minerva_model_params mp = minerva_model_default_params();
    mp.device = "cpu";
    minerva_model* model = NULL;
    minerva_status st = minerva_model_load(argv[1], &mp, &model);
    if (st != MINERVA_OK) return fail("load", st);

    /* Ask for the size first (a zero-capacity call), then tokenize into a buffer that fits. */
    size_t n_prompt = 0;
    st = minerva_tokenize(model, argv[2], strlen(argv[2]), true, false, NULL, 0, &n_prompt);
    if (st != MINERVA_ERR_BUFFER_TOO_SMALL && st != MINERVA_OK) return fail("tokenize", st);
    int32_t* prompt = malloc(n_prompt * sizeof(int32_t));
    st = minerva_tokenize(model, argv[2], strlen(argv[2]), true, false, prompt, n_prompt, &n_prompt);
    if (st != MINERVA_OK) return fail("tokenize", st);

    minerva_session* session = NULL;
    st = minerva_session_create(model, NULL, &session);
    if (st != MINERVA_OK) return fail("session", st);

    minerva_generate_params gp = minerva_generate_default_params();
    gp.max_tokens = atoi(argv[3]);
    gp.sampling.temperature = 0; /* greedy */
    gp.ignore_eos = true;
    int n_seen = 0;
    minerva_generate_result r;
    st = minerva_generate(session, prompt, n_prompt, &gp, on_token, &n_seen, &r);
    if (st != MINERVA_OK) return fail("generate", st);
    printf("\n");
    fprintf(stderr, "%d prompt tokens, %d generated (finish %d)\n", r.n_prompt, r.n_generated, (int)r.finish_reason);

    int32_t n_embd = minerva_model_n_embd(model);
    float* emb = malloc((size_t)n_embd * sizeof(float));
    st = minerva_session_embed(session, prompt, n_prompt, emb, (size_t)n_embd);
    if (st != MINERVA_OK) return fail("embed", st);
    double norm = 0;
    for (int32_t i = 0; i < n_embd; ++i) norm += (double)emb[i] * emb[i];
    fprintf(stderr, "embedding: %d floats, squared norm %.4f\n", n_embd, norm);

    free(emb);
    free(prompt);
    minerva_session_free(session);
    minerva_model_free(model);
    return 0;
}
