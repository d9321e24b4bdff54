// fuzz_gen.c — the JSON a model directory gives `trlc generate` / `trlc chat` besides config.json
// and the weights: input = generation_config.json "\n@@FILE@@\n" tokenizer_config.json, written
// into <scratch>/model/ next to tests/fixtures/tiny-qwen3's config.json, model.safetensors and
// tokenizer.json (copied once). The model is opened (gen_model_open: eos_token_id read from
// generation_config.json), the chat template read (chat_from_config: chat_template, a string or a
// list of named ones, bos_token), and one chat turn generated as `trlc chat` does (greedy, 4 new
// tokens, the model's stop ids).
// Oracles: the model always opens (generation_config.json is optional: a bad one is ignored);
// at most the asked number of stop ids, none negative; chat_from_config's status agrees with the
// errors reported; the generated ids lie inside the vocabulary and stop at a stop id or after 4.
// Not fuzzed here: config.json (fuzz_hfconfig), the weights (fuzz_stindex), templates as text
// (fuzz_chat), the command line (fuzz_cli).
#include "chat.h"
#include "diag.h"
#include "fuzz_util.h"
#include "gen.h"
#include "tokenizer.h"
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif

static void copy_fixture(const char *name) {
    char src[1024], dst[1024];
    snprintf(src, sizeof src, FUZZ_SOURCE_DIR "/../fixtures/tiny-qwen3/%s", name);
    FILE *f = fopen(src, "rb");
    FUZZ_ASSERT(f != NULL);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    FUZZ_ASSERT(buf != NULL);
    for (size_t r; (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            buf = realloc(buf, cap *= 2);
            FUZZ_ASSERT(buf != NULL);
        }
    }
    fclose(f);
    char rel[256];
    snprintf(rel, sizeof rel, "model/%s", name);
    FUZZ_ASSERT(fuzz_write(rel, buf, n, dst, sizeof dst) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[1024];
    if (!dir[0]) {
        FUZZ_ASSERT(fuzz_mkdir("model", dir, sizeof dir) == 0);
        copy_fixture("config.json");
        copy_fixture("model.safetensors");
        copy_fixture("tokenizer.json");
    }
    static const char *const files[] = {"model/generation_config.json", "model/tokenizer_config.json"};
    fuzz_write_files(data, size, files, 2);
    Diag d;
    diag_init(&d, fuzz_out());
    GenModel *m = gen_model_open(&d, dir, NULL);
    FUZZ_ASSERT(m != NULL && d.errors == 0);
    GenOptions o;
    gen_options_init(&o);
    o.max_new = 4;
    o.nstop_ids = gen_model_eos(m, o.stop_ids, GEN_MAX_STOP - 3);
    FUZZ_ASSERT(o.nstop_ids >= 0 && o.nstop_ids <= GEN_MAX_STOP - 3);
    for (int i = 0; i < o.nstop_ids; i++) FUZZ_ASSERT(o.stop_ids[i] >= 0);
    const Tokenizer *tok = gen_model_tokenizer(m);
    FUZZ_ASSERT(tok != NULL);
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    ChatTemplate tpl;
    int rc = chat_from_config(&d, cfg, &tpl);
    FUZZ_ASSERT((rc == 0) == (d.errors == 0));
    if (rc == 0) {
        ChatMsg msgs[2] = {{.role = "system", .content = "Be brief.", .content_len = 9},
                           {.role = "user", .content = "What is 2+2?", .content_len = 12}};
        ChatRender cr = {0};
        const char *err = NULL;
        TokIds ids = {0};
        if (chat_render(&tpl, msgs, 2, true, &cr, &err) == 0 && tok_encode(tok, cr.text, cr.len, false, &ids) == 0 &&
            ids.n > 0) {
            GenSession *s = gen_session_new(m);
            FUZZ_ASSERT(s != NULL);
            GenResult r = {0};
            FUZZ_ASSERT(gen_session_generate(s, ids.v, (int)ids.n, &o, &r) == 0);
            FUZZ_ASSERT(r.len[0] >= 1 && r.len[0] <= o.max_new);
            for (int i = 0; i < r.len[0]; i++) {
                FUZZ_ASSERT(r.ids[0][i] >= 0 && r.ids[0][i] < gen_model_vocab(m));
                bool stop = false;
                for (int k = 0; k < o.nstop_ids; k++) stop = stop || r.ids[0][i] == o.stop_ids[k];
                FUZZ_ASSERT(!stop || i == r.len[0] - 1);   // a stop id ends the row
            }
            gen_result_free(&r);
            gen_session_free(s);
        }
        tok_ids_free(&ids);
        chat_render_free(&cr);
        chat_free(&tpl);
    }
    gen_model_free(m);
    diag_free(&d);
    return 0;
}
