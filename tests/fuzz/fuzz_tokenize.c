// fuzz_tokenize.c — fuzz text through real vocabularies: input byte 0 picks the tokenizer
// (tests/tokenizer/llama3_tokenizer.json, qwen2_tokenizer.json, and Llama-2's from the shared data
// when present), byte 1 the flags, the rest is the text. Oracles: every id inside the vocabulary,
// and for the byte-level tokenizers decode(encode(text)) == text (NFC-normalised for Qwen2) when
// the text is valid UTF-8 and no special token came out (those may strip the whitespace around
// them, as tokenizers does) — a tokenizer that loses or invents bytes is "silent garbage".
// Not fuzzed here: the tokenizer.json reader (fuzz_tokenizer).
#include "diag.h"
#include "fuzz_util.h"
#include "tokenizer.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif
#ifndef FUZZ_SHARED_DATA
#define FUZZ_SHARED_DATA "../shared/data"
#endif

enum { NTOK = 3 };
static Tokenizer *g_tok[NTOK];
static int g_loaded;

static void load_all(void) {
    if (g_loaded) return;
    g_loaded = 1;
    static const char *paths[NTOK] = {FUZZ_SOURCE_DIR "/../tokenizer/llama3_tokenizer.json",
                                      FUZZ_SOURCE_DIR "/../tokenizer/qwen2_tokenizer.json",
                                      FUZZ_SHARED_DATA "/tokenizers/llama2/tokenizer.json"};
    Diag d;
    diag_init(&d, fuzz_out());
    for (int i = 0; i < NTOK; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            FUZZ_ASSERT(i == 2);   // the shared data are optional; the in-tree files are not
            continue;
        }
        fclose(f);
        g_tok[i] = tok_load(&d, paths[i]);
        FUZZ_ASSERT(g_tok[i] != NULL);
    }
    diag_free(&d);
}

// Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), no NUL.
static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || cp == 0) return false;
        i += (size_t)k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_all();
    if (size < 2) return 0;
    int which = data[0] % NTOK;
    bool add_special = data[1] & 1, skip_special = data[1] & 2;
    const Tokenizer *t = g_tok[which];
    if (!t) return 0;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    TokIds ids = {0};
    int rc = tok_encode(t, text, len, add_special, &ids);
    int32_t v = tok_vocab_size(t);
    for (size_t i = 0; i < ids.n; i++) FUZZ_ASSERT(ids.v[i] >= 0 && ids.v[i] < v);
    size_t n = 0;
    char *s = tok_decode(t, ids.v, ids.n, skip_special, &n);
    FUZZ_ASSERT(s != NULL);
    // Special added tokens may strip the whitespace around them (Qwen2's [MASK]: lstrip, rstrip),
    // as tokenizers does: no round trip through them.
    bool any_special = false;
    for (size_t i = 0; i < ids.n && !any_special; i++) any_special = tok_is_special(t, ids.v[i]);
    if (rc == 0 && which < 2 && !add_special && !skip_special && !any_special && valid_utf8(data + 2, len)) {
        const char *want = text;
        size_t wlen = len;
        utf8proc_uint8_t *nfc = NULL;
        if (which == 1) {
            char *z = fuzz_strndup(data + 2, len);
            FUZZ_ASSERT(z != NULL);
            nfc = utf8proc_NFC((const utf8proc_uint8_t *)z);
            free(z);
            FUZZ_ASSERT(nfc != NULL);
            want = (const char *)nfc;
            wlen = strlen(want);
        }
        if (n != wlen || memcmp(s, want, n) != 0) {
            fprintf(stderr, "fuzz_tokenize: round trip differs (tokenizer %d): %zu bytes in, %zu out\n", which,
                    wlen, n);
            abort();
        }
        free(nfc);
    }
    free(s);
    tok_ids_free(&ids);
    return 0;
}
