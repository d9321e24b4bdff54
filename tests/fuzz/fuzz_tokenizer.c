// fuzz_tokenizer.c — a tokenizer.json text → tok_load_json, then (when it loads) encode a few fixed
// strings and the text after the first "\n@@TEXT@@\n" of the input, decode the ids, and look up
// tokens. Asserts ids stay inside the vocabulary and decode never fails on them.
// Not fuzzed here: encoding with the real vocabularies (fuzz_tokenize does that).
#include "diag.h"
#include "fuzz_util.h"
#include "tokenizer.h"
#include <stdlib.h>
#include <string.h>

static void encode_decode(const Tokenizer *t, const char *text, size_t len, bool special) {
    TokIds ids = {0};
    (void)tok_encode(t, text, len, special, &ids);
    int32_t v = tok_vocab_size(t);
    for (size_t i = 0; i < ids.n; i++) FUZZ_ASSERT(ids.v[i] >= 0 && ids.v[i] < v);
    size_t n = 0;
    char *s = tok_decode(t, ids.v, ids.n, !special, &n);
    FUZZ_ASSERT(s != NULL);
    FUZZ_ASSERT(strlen(s) <= n);
    free(s);
    tok_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *parts[2];
    size_t lens[2];
    size_t np = fuzz_split(data, size, "\n@@TEXT@@\n", parts, lens, 2);
    Diag d;
    diag_init(&d, fuzz_out());
    Tokenizer *t = tok_load_json(&d, "tokenizer.json", (const char *)parts[0], lens[0]);
    if (!t) {
        FUZZ_ASSERT(d.errors > 0);
    } else {
        static const char *fixed[] = {"Hello, world! 123 héllo  \n\t<|im_start|>user\n", "", " ", "\xff\xfe a\xc3",
                                      "<s></s><unk><|endoftext|>"};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
            encode_decode(t, fixed[i], strlen(fixed[i]), i & 1);
        if (np == 2) {
            encode_decode(t, (const char *)parts[1], lens[1], false);
            encode_decode(t, (const char *)parts[1], lens[1], true);
        }
        int32_t v = tok_vocab_size(t);
        FUZZ_ASSERT(v >= 0);
        int32_t probe[] = {-1, 0, 1, v - 1, v, v + 1, INT32_MAX, INT32_MIN};
        for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) {
            const char *tok = tok_token(t, probe[i]);
            if (tok) {
                int32_t id = tok_id(t, tok);
                FUZZ_ASSERT(id >= 0 && id < v);
            }
            (void)tok_is_special(t, probe[i]);
        }
        char *s = tok_decode(t, probe, sizeof probe / sizeof *probe, false, NULL);
        FUZZ_ASSERT(s != NULL);
        free(s);
        (void)tok_bos_id(t);
        tok_free(t);
    }
    diag_free(&d);
    return 0;
}
