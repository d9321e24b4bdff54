// fuzz_chat.c — chat templates: input = TEMPLATE "\n@@\n" MSG "\n@@\n" MSG ... TEMPLATE's first byte
// picks how it is read (tokenizer_config.json via a file, a Jinja text, a format string, a name,
// or the spec's `template =` value); each MSG's first byte picks the role (and an invalid one),
// a "\x01" in it starts Qwen3 reasoning. The conversation is rendered; when that succeeds it is
// tokenized with Qwen2's and Llama-3's tokenizers (in-tree fixtures). Oracles: spans sorted,
// disjoint and inside the text; chat_tokenize's ids equal tok_encode's of the text, and equal
// chat_tokenize_general's ids and mask.
// Not fuzzed here: datasets built from chats (fuzz_dataset).
#include "chat.h"
#include "diag.h"
#include "fuzz_util.h"
#include "tokenizer.h"
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif

enum { MAXMSG = 16, NTOK = 2 };
static Tokenizer *g_tok[NTOK];

static void load_all(void) {
    static int loaded;
    if (loaded) return;
    loaded = 1;
    static const char *paths[NTOK] = {FUZZ_SOURCE_DIR "/../tokenizer/qwen2_tokenizer.json",
                                      FUZZ_SOURCE_DIR "/../tokenizer/llama3_tokenizer.json"};
    Diag d;
    diag_init(&d, fuzz_out());
    for (int i = 0; i < NTOK; i++) {
        g_tok[i] = tok_load(&d, paths[i]);
        FUZZ_ASSERT(g_tok[i] != NULL);
    }
    diag_free(&d);
}

static int read_template(Diag *d, const uint8_t *p, size_t n, ChatTemplate *t) {
    if (n == 0) return chat_named(d, "chatml", t);
    int mode = p[0] % 5;
    char *s = fuzz_strndup(p + 1, n - 1);
    FUZZ_ASSERT(s != NULL);
    int rc;
    if (mode == 0) {
        char path[1024];
        FUZZ_ASSERT(fuzz_write("tokenizer_config.json", p + 1, n - 1, path, sizeof path) == 0);
        rc = chat_from_config(d, path, t);
    } else if (mode == 1) {
        rc = chat_from_jinja(d, "chat_template", s, t);
    } else if (mode == 2) {
        rc = chat_format(d, s, t);
    } else if (mode == 3) {
        rc = chat_named(d, s, t);
    } else {
        char path[1024];
        FUZZ_ASSERT(fuzz_write("tokenizer_config.json", "{}", 2, path, sizeof path) == 0);
        rc = chat_from_spec(d, s, path, t);
    }
    free(s);
    if (rc == 0 && n > 1 && (p[1] & 1) && chat_set_eos(t, "<|endoftext|>") != 0) return -2;   // OOM only
    return rc;
}

static void check_tokens(const Tokenizer *tok, const ChatRender *r) {
    TokIds ids = {0}, ids2 = {0}, want = {0};
    uint8_t *tr = NULL, *tr2 = NULL;
    int rc = chat_tokenize(tok, r, &ids, &tr);
    int rc2 = chat_tokenize_general(tok, r, &ids2, &tr2);
    int rcw = tok_encode(tok, r->text, r->len, false, &want);
    if (rc == 0 && rc2 == 0 && rcw == 0) {
        FUZZ_ASSERT(ids.n == want.n && (ids.n == 0 || !memcmp(ids.v, want.v, ids.n * sizeof *ids.v)));
        FUZZ_ASSERT(ids2.n == want.n && (ids2.n == 0 || !memcmp(ids2.v, want.v, ids2.n * sizeof *ids2.v)));
        FUZZ_ASSERT(ids.n == 0 || !memcmp(tr, tr2, ids.n));
    }
    free(tr);
    free(tr2);
    tok_ids_free(&ids);
    tok_ids_free(&ids2);
    tok_ids_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_all();
    const uint8_t *parts[MAXMSG + 1];
    size_t lens[MAXMSG + 1];
    size_t np = fuzz_split(data, size, "\n@@\n", parts, lens, MAXMSG + 1);
    Diag d;
    diag_init(&d, fuzz_out());
    ChatTemplate t;
    int trc = read_template(&d, parts[0], lens[0], &t);
    if (trc != 0) {
        FUZZ_ASSERT(trc == -2 || d.errors > 0);
        chat_free(&t);
        diag_free(&d);
        return 0;
    }
    ChatTemplate copy;
    FUZZ_ASSERT(chat_copy(&copy, &t) == 0);
    static const char *roles[] = {"system", "user", "assistant", "tool", "bogus"};
    ChatMsg msgs[MAXMSG];
    size_t nm = 0;
    bool gen = false;
    for (size_t i = 1; i < np; i++) {
        if (lens[i] == 0) {
            gen = true;
            continue;
        }
        ChatMsg *m = &msgs[nm++];
        memset(m, 0, sizeof *m);
        m->role = roles[parts[i][0] % 5];
        m->content = (const char *)parts[i] + 1;
        m->content_len = lens[i] - 1;
        const uint8_t *sep = memchr(parts[i] + 1, 1, lens[i] - 1);
        if (sep) {
            m->content_len = (size_t)(sep - parts[i] - 1);
            m->reasoning = (const char *)sep + 1;
            m->reasoning_len = lens[i] - 1 - m->content_len - 1;
        }
    }
    ChatRender r = {0};
    const char *err = NULL;
    if (chat_render(&copy, msgs, nm, gen, &r, &err) == 0) {
        FUZZ_ASSERT(r.text && r.text[r.len] == 0);
        for (size_t i = 0; i < r.nspans; i++) {
            FUZZ_ASSERT(r.spans[i].begin <= r.spans[i].end && r.spans[i].end <= r.len);
            if (i) FUZZ_ASSERT(r.spans[i - 1].end <= r.spans[i].begin);
        }
        for (int k = 0; k < NTOK; k++) check_tokens(g_tok[k], &r);
    } else {
        FUZZ_ASSERT(err != NULL);
    }
    chat_render_free(&r);
    chat_free(&copy);
    chat_free(&t);
    diag_free(&d);
    return 0;
}
