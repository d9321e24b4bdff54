// test_tok_misc.c — the rest of the tokenizer's contract:
//  - llama.cpp's GPT-2 expected ids (shared/data/tokenizers/expected/gpt-2.*) with phi-2's vocabulary
//    (its extra whitespace added tokens removed, as the expected ids come from plain GPT-2);
//  - every malformed tokenizer.json in bad/ is refused with the exact message of bad/EXPECTED.txt;
//  - the byte tokenizer; vocabulary queries; invalid UTF-8 input; long inputs;
//  - four threads encoding with one Tokenizer get the reference ids (per-thread BPE cache);
//  - random inputs and damaged tokenizer.json files never crash.
// usage: test_tok_misc SHARED_TOKENIZERS_DIR TESTS_TOKENIZER_DIR
#include "diag.h"
#include "test.h"
#include "tokenizer.h"
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char *s = malloc(cap);
    while ((k = fread(s + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) s = realloc(s, cap *= 2);
    }
    fclose(f);
    s[n] = 0;
    *len = n;
    return s;
}

static Tokenizer *load_quiet(const char *path) {
    Diag d;
    diag_init(&d, stderr);
    Tokenizer *t = tok_load(&d, path);
    diag_free(&d);
    return t;
}

// phi-2 with only <|endoftext|> as added token = the GPT-2 tokenizer
static void test_gpt2_expected(const char *tokdir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/phi-2/tokenizer.json", tokdir);
    json_error_t err;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &err);
    CHECK_MSG(root != NULL, "%s: %s", path, err.text);
    if (!root) return;
    json_t *keep = json_array();
    json_t *added = json_object_get(root, "added_tokens");
    for (size_t i = 0; i < json_array_size(added); i++)
        if (json_integer_value(json_object_get(json_array_get(added, i), "id")) == 50256)
            json_array_append(keep, json_array_get(added, i));
    json_object_set_new(root, "added_tokens", keep);
    char *js = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    Diag d;
    diag_init(&d, stderr);
    Tokenizer *t = tok_load_json(&d, "gpt-2", js, strlen(js));
    free(js);
    diag_free(&d);
    CHECK(t != NULL);
    if (!t) return;
    size_t il, ol;
    snprintf(path, sizeof path, "%s/expected/gpt-2.inp", tokdir);
    char *inp = slurp(path, &il);
    snprintf(path, sizeof path, "%s/expected/gpt-2.out", tokdir);
    char *out = slurp(path, &ol);
    CHECK(inp && out);
    if (!inp || !out) return;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = inp, *o = out;
    int n = 0, bad = 0;
    TokIds ids = {0};
    while (*p || *o) {
        char *e = strstr(p, sep), *oe = strchr(o, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!oe) oe = o + strlen(o);
        ids.n = 0;
        CHECK(tok_encode(t, p, len, false, &ids) == 0);
        char *q = o;
        size_t k = 0;
        bool ok = true;
        for (;;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q || end > oe) break;
            if (k >= ids.n || ids.v[k] != v) ok = false;
            k++;
            q = end;
        }
        if (k != ids.n) ok = false;
        if (!ok && bad++ < 3) fprintf(stderr, "  gpt-2 expected input %d: `%.*s` differs\n", n, (int)len, p);
        n++;
        if (!e) break;
        p = e + strlen(sep);
        o = *oe ? oe + 1 : oe;
    }
    printf("gpt-2 expected (llama.cpp): %d inputs, %d mismatches\n", n, bad);
    CHECK(n >= 40);
    CHECK(bad == 0);
    tok_ids_free(&ids);
    free(inp);
    free(out);
    tok_free(t);
}

static void test_malformed(const char *here) {
    char path[4096];
    snprintf(path, sizeof path, "%s/bad/EXPECTED.txt", here);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "%s missing", path);
    if (!f) return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char file[512], want[2048];
        snprintf(file, sizeof file, "%s/bad/%.*s", here, (int)(colon - line), line);
        snprintf(want, sizeof want, "%s/bad/%s", here, line);
        char *buf = NULL;
        size_t blen = 0;
        FILE *mem = open_memstream(&buf, &blen);
        Diag d;
        diag_init(&d, mem);
        Tokenizer *t = tok_load(&d, file);
        int errors = d.errors;
        diag_free(&d);
        fclose(mem);
        buf[strcspn(buf, "\n")] = 0;
        CHECK_MSG(t == NULL && errors > 0, "%s was accepted", file);
        CHECK_MSG(!strcmp(buf, want), "\n  got  %s\n  want %s", buf, want);
        tok_free(t);
        free(buf);
        n++;
    }
    fclose(f);
    printf("malformed tokenizer.json files refused: %d\n", n);
    CHECK(n >= 10);
    // a file that does not exist
    Diag d;
    char *buf = NULL;
    size_t blen = 0;
    FILE *mem = open_memstream(&buf, &blen);
    diag_init(&d, mem);
    CHECK(tok_load(&d, "/nonexistent/tokenizer.json") == NULL);
    diag_free(&d);
    fclose(mem);
    CHECK(strstr(buf, "/nonexistent/tokenizer.json: error: cannot open tokenizer") != NULL);
    free(buf);
}

static void test_bytes(void) {
    Tokenizer *t = tok_new_bytes();
    CHECK(t != NULL);
    if (!t) return;
    CHECK(tok_vocab_size(t) == 259);
    CHECK(tok_id(t, "<|bos|>") == 256 && tok_id(t, "<|eos|>") == 257 && tok_id(t, "<|pad|>") == 258);
    CHECK(tok_bos_id(t) == 256);
    CHECK(tok_is_special(t, 257) && !tok_is_special(t, 65));
    const char *s = "h\xc3\xa9<|eos|>\n\x00z";
    TokIds ids = {0};
    CHECK(tok_encode(t, s, 13, true, &ids) == 0);
    int32_t want[] = {256, 'h', 0xc3, 0xa9, 257, '\n', 0, 'z'};
    CHECK(ids.n == 8 && !memcmp(ids.v, want, sizeof want));
    size_t len;
    char *back = tok_decode(t, ids.v, ids.n, false, &len);
    CHECK(back && len == 20 && !memcmp(back, "<|bos|>h\xc3\xa9<|eos|>\n\x00z", 20));
    free(back);
    back = tok_decode(t, ids.v, ids.n, true, &len);
    CHECK(back && len == 6 && !memcmp(back, "h\xc3\xa9\n\x00z", 6));
    free(back);
    int32_t broken[] = {0xe2, 0x82, 'a', 999, -1};   // truncated UTF-8 and ids out of range
    back = tok_decode(t, broken, 5, true, &len);
    CHECK(back && !strcmp(back, "\xef\xbf\xbd" "a"));
    free(back);
    tok_ids_free(&ids);
    tok_free(t);
}

static void test_queries(const char *tokdir, const char *here) {
    char path[4096];
    snprintf(path, sizeof path, "%s/phi-2/tokenizer.json", tokdir);
    Tokenizer *t = load_quiet(path);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(tok_vocab_size(t) == 50295);
    CHECK(tok_id(t, "<|endoftext|>") == 50256);
    CHECK(tok_id(t, "\xc4\xa0the") == 262);   // "Ġthe"
    CHECK(tok_id(t, "no such token") == -1);
    CHECK(tok_token(t, 262) && !strcmp(tok_token(t, 262), "\xc4\xa0the"));
    CHECK(tok_token(t, 50256) && !strcmp(tok_token(t, 50256), "<|endoftext|>"));
    CHECK(tok_token(t, -1) == NULL && tok_token(t, 50295) == NULL);
    CHECK(tok_is_special(t, 50256) && !tok_is_special(t, 50257) && !tok_is_special(t, 262));
    CHECK(tok_bos_id(t) == -1);
    // invalid UTF-8 is read as from_utf8_lossy would: each bad sequence → U+FFFD
    TokIds a = {0}, b = {0};
    CHECK(tok_encode(t, "a\xff" "b\xe2\x82", 5, false, &a) == 0);
    CHECK(tok_encode(t, "a\xef\xbf\xbd" "b\xef\xbf\xbd", 8, false, &b) == 0);
    CHECK(a.n == b.n && a.n > 0 && !memcmp(a.v, b.v, a.n * sizeof *a.v));
    // long inputs: one 300 kB word, a 100 kB whitespace run (BPE must not be quadratic)
    size_t n = 300000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = "abcdefghij"[i % 10 == 9 ? (i / 10) % 10 : i % 10];
    clock_t c0 = clock();
    a.n = 0;
    CHECK(tok_encode(t, big, n, false, &a) == 0);
    memset(big, ' ', 100000);
    b.n = 0;
    CHECK(tok_encode(t, big, 100000, false, &b) == 0);
    double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("long inputs: %zu + %zu ids in %.2f s\n", a.n, b.n, sec);
    CHECK(sec < 10);
    size_t len;
    char *back = tok_decode(t, b.v, b.n, false, &len);
    CHECK(back && len == 100000 && back[0] == ' ' && back[99999] == ' ');
    free(back);
    free(big);
    tok_free(t);
    // the Llama-3-style variant adds <|begin_of_text|>
    snprintf(path, sizeof path, "%s/llama3_tokenizer.json", here);
    t = load_quiet(path);
    CHECK(t != NULL);
    if (t) {
        CHECK(tok_bos_id(t) == 50257);
        a.n = 0;
        CHECK(tok_encode(t, "", 0, true, &a) == 0 && a.n == 1 && a.v[0] == 50257);
        a.n = 0;
        CHECK(tok_encode(t, "", 0, false, &a) == 0 && a.n == 0);
        tok_free(t);
    }
    tok_ids_free(&a);
    tok_ids_free(&b);
}

// Random bytes (mostly invalid UTF-8 and special-token fragments) must encode without error, give ids
// inside the vocabulary, and decode to valid UTF-8; randomly damaged tokenizer.json texts must either
// load or be refused with a diagnostic — never crash (run under ASan+UBSan).
static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void test_fuzz(const char *here) {
    char path[4096];
    snprintf(path, sizeof path, "%s/qwen2_tokenizer.json", here);
    Tokenizer *ts[2] = {load_quiet(path), tok_new_bytes()};
    CHECK(ts[0] && ts[1]);
    static const char *frags[] = {"<|im_start|>", "<|im_end|>", "[MASK]", "qwertyword", " ", "\n", "\xe2\x80",
                                  "\xcc\x81", "a", "1", "\xf0\x9f\x98", "\xff", "\r\n", "\xc3\xa9"};
    char buf[512];
    int bad = 0;
    TokIds ids = {0};
    for (int it = 0; it < 3000; it++) {
        size_t n = 0, want = rnd() % 200;
        while (n < want) {
            if (rnd() % 3) buf[n++] = (char)(rnd() & 0xff);
            else {
                const char *f = frags[rnd() % (sizeof frags / sizeof *frags)];
                size_t fl = strlen(f);
                if (n + fl > sizeof buf) break;
                memcpy(buf + n, f, fl);
                n += fl;
            }
        }
        for (int k = 0; k < 2; k++) {
            Tokenizer *t = ts[k];
            if (!t) continue;
            ids.n = 0;
            if (tok_encode(t, buf, n, it & 1, &ids)) bad++;
            for (size_t i = 0; i < ids.n; i++)
                if (ids.v[i] < 0 || ids.v[i] >= tok_vocab_size(t)) bad++;
            size_t len;
            char *s = tok_decode(t, ids.v, ids.n, it & 2, &len);
            if (!s || strlen(s) > len) bad++;
            // a decode of an arbitrary id list, out-of-range ids included
            int32_t rid[16];
            for (int i = 0; i < 16; i++) rid[i] = (int32_t)(rnd() % 60000) - 100;
            char *r = tok_decode(t, rid, 16, false, &len);
            if (!r) bad++;
            free(s);
            free(r);
        }
    }
    CHECK_MSG(bad == 0, "%d fuzz failures", bad);
    tok_free(ts[0]);
    tok_free(ts[1]);
    tok_ids_free(&ids);
    // damaged tokenizer.json: a small valid one with random edits
    // mini_tokenizer.json: a gap in the vocabulary ids (so tokenizers re-assigns the added token's id
    // from 5 to 6), normalizers, a Split, byte fallback, fused unk, a Strip decoder. Expected values
    // from tokenizers 0.23: encode("ab ab<s>xA") = [5, 2, 3, 2, 6, 4, 3], decoded "abab<s><0x41>".
    snprintf(path, sizeof path, "%s/mini_tokenizer.json", here);
    size_t gl;
    char *good = slurp(path, &gl);
    CHECK(good != NULL);
    if (!good) return;

    Diag d;
    FILE *devnull = fopen("/dev/null", "w");
    diag_init(&d, devnull);
    Tokenizer *t = tok_load_json(&d, "mini", good, gl);
    CHECK_MSG(t != NULL, "the mini tokenizer should load");
    if (t) {
        int32_t want[] = {5, 2, 3, 2, 6, 4, 3}, want2[] = {5, 1, 3, 0, 3, 2};
        ids.n = 0;
        CHECK(tok_encode(t, "ab ab<s>xA", 10, true, &ids) == 0);
        CHECK(ids.n == 7 && !memcmp(ids.v, want, sizeof want));
        ids.n = 0;
        CHECK(tok_encode(t, "b a_ab", 6, true, &ids) == 0);
        CHECK(ids.n == 6 && !memcmp(ids.v, want2, sizeof want2));
        char *s = tok_decode(t, want, 7, false, NULL);
        CHECK(s && !strcmp(s, "abab<s><0x41>"));
        free(s);
        CHECK(tok_id(t, "<s>") == 6);
        tok_free(t);
    }
    char *m = malloc(gl + 1);
    int loaded = 0, refused = 0;
    for (int it = 0; it < 4000; it++) {
        memcpy(m, good, gl + 1);
        int edits = 1 + (int)(rnd() % 3);
        size_t ml = gl;
        for (int e = 0; e < edits && ml > 0; e++) {
            size_t at = rnd() % ml;
            switch (rnd() % 3) {
            case 0: m[at] = "{}[]\",:0123456789atrue-"[rnd() % 24]; break;
            case 1: memmove(m + at, m + at + 1, ml - at), ml--; break;   // delete a character
            default: ml = at; m[ml] = 0; break;                          // truncate
            }
        }
        Diag dd;
        diag_init(&dd, devnull);
        Tokenizer *x = tok_load_json(&dd, "mutant", m, ml);
        if (x) {
            loaded++;
            ids.n = 0;
            tok_encode(x, "ab ab<s>xA\xff", 11, true, &ids);
            char *s = tok_decode(x, ids.v, ids.n, false, NULL);
            free(s);
            tok_free(x);
        } else {
            refused++;
            CHECK(dd.errors > 0);
        }
        diag_free(&dd);
    }
    printf("fuzz: 3000 random inputs x 2 tokenizers; damaged tokenizer.json: %d loaded, %d refused\n", loaded, refused);
    tok_ids_free(&ids);
    free(m);
    free(good);
    diag_free(&d);
    fclose(devnull);
}

typedef struct ThreadJob {
    const Tokenizer *t;
    char **texts, **want;   // (n) JSON strings, reference id lines
    size_t n;
    int offset, mismatches;
} ThreadJob;

static void *thread_run(void *arg) {
    ThreadJob *j = arg;
    TokIds ids = {0};
    for (int round = 0; round < 3; round++)
        for (size_t k = 0; k < j->n; k++) {
            size_t i = (k + (size_t)j->offset * 37) % j->n;   // each thread in its own order
            json_t *v = json_loads(j->texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            ids.n = 0;
            tok_encode(j->t, json_string_value(v), json_string_length(v), true, &ids);
            json_decref(v);
            char line[65536];
            size_t o = 0;
            for (size_t q = 0; q < ids.n && o + 16 < sizeof line; q++)
                o += (size_t)snprintf(line + o, sizeof line - o, q ? " %d" : "%d", ids.v[q]);
            line[o] = 0;
            if (strcmp(line, j->want[i])) j->mismatches++;
        }
    tok_ids_free(&ids);
    return NULL;
}

static char **read_all_lines(const char *path, size_t *n) {
    size_t len;
    char *s = slurp(path, &len), **v = NULL;
    *n = 0;
    if (!s) return NULL;
    for (char *p = s, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        v = realloc(v, (*n + 1) * sizeof *v);
        v[(*n)++] = strndup(p, (size_t)(e - p));
        if (!*e) break;
    }
    free(s);
    return v;
}

static void test_threads(const char *here) {
    char path[4096];
    snprintf(path, sizeof path, "%s/qwen2_tokenizer.json", here);
    Tokenizer *t = load_quiet(path);
    size_t nt, nw;
    snprintf(path, sizeof path, "%s/corpus.jsonl", here);
    char **texts = read_all_lines(path, &nt);
    snprintf(path, sizeof path, "%s/ref/qwen2.ids", here);
    char **want = read_all_lines(path, &nw);
    CHECK(t && texts && want && nt == nw);
    if (!t || !texts || !want || nt != nw) return;
    ThreadJob jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (ThreadJob){t, texts, want, nt, i, 0};
        CHECK(pthread_create(&th[i], NULL, thread_run, &jobs[i]) == 0);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += jobs[i].mismatches;
    }
    printf("threads: 4 x 3 x %zu encodes, %d mismatches\n", nt, bad);
    CHECK(bad == 0);
    for (size_t i = 0; i < nt; i++) free(texts[i]), free(want[i]);
    free(texts);
    free(want);
    tok_free(t);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_tok_misc SHARED_TOKENIZERS_DIR TESTS_TOKENIZER_DIR\n");
        return 2;
    }
    test_gpt2_expected(argv[1]);
    test_malformed(argv[2]);
    test_bytes();
    test_queries(argv[1], argv[2]);
    test_threads(argv[2]);
    test_fuzz(argv[2]);
    return test_done("tokenizer.misc");
}
