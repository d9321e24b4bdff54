// test_tokenizer.c — trlc's tokenizer against reference ids and decodes from Hugging Face `tokenizers`
// (fixtures by make_fixtures.py). For every corpus text: encode with and without special tokens
// must equal the reference ids exactly; decode(reference ids) must equal the reference decode (with
// and without skip_special); decode(encode(x)) == x wherever the reference's
// decode(encode(x)) gives x back.
// usage: test_tokenizer TOKENIZER.json CORPUS.jsonl REF_PREFIX [--patch PATCH.json] [--no-decskip]
//   --patch: replace top-level members of the tokenizer.json by those of PATCH.json first (variants of
//   the shared tokenizers without copying 2 MB files; make_fixtures.py applies the same patches).
//   --no-decskip: skip the skip_special comparison (llama2: tokenizers 0.23 prints normalized
//   added tokens as "▁<s>" and then fails to recognise them as special; trlc does skip them).
#include "diag.h"
#include "test.h"
#include "tokenizer.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct Lines {
    char **v;
    size_t n;
} Lines;

static int read_lines(const char *path, Lines *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    out->v = NULL;
    out->n = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        out->v = realloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = strdup(line);
    }
    free(line);
    fclose(f);
    return 0;
}

static void free_lines(Lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static void parse_ids(const char *s, TokIds *ids) {
    ids->n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        tok_ids_push(ids, (int32_t)v);
        s = end;
    }
}

// JSON string line → malloc'd bytes
static char *json_str(const char *line, size_t *len) {
    json_error_t err;
    json_t *v = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!json_is_string(v)) {
        json_decref(v);
        return NULL;
    }
    *len = json_string_length(v);
    char *s = malloc(*len + 1);
    memcpy(s, json_string_value(v), *len + 1);
    json_decref(v);
    return s;
}

static bool same_ids(const TokIds *a, const TokIds *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

static void show(const char *what, size_t line, const TokIds *got, const TokIds *want) {
    fprintf(stderr, "  corpus line %zu %s:\n    got ", line + 1, what);
    for (size_t i = 0; i < got->n && i < 40; i++) fprintf(stderr, " %d", got->v[i]);
    fprintf(stderr, "\n    want");
    for (size_t i = 0; i < want->n && i < 40; i++) fprintf(stderr, " %d", want->v[i]);
    fprintf(stderr, "\n");
}

static Tokenizer *load_patched(Diag *d, const char *path, const char *patch) {
    json_error_t err;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &err), *p = json_load_file(patch, JSON_ALLOW_NUL, &err);
    Tokenizer *t = NULL;
    if (root && p && !json_object_update(root, p)) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (s) t = tok_load_json(d, patch, s, strlen(s));
        free(s);
    } else fprintf(stderr, "%s or %s: %s\n", path, patch, err.text);
    json_decref(root);
    json_decref(p);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_tokenizer TOKENIZER.json CORPUS.jsonl REF_PREFIX [--patch P.json] [--no-decskip]\n");
        return 2;
    }
    bool decskip = true;
    const char *patch = NULL;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--no-decskip")) decskip = false;
        else if (!strcmp(argv[i], "--patch") && i + 1 < argc) patch = argv[++i];
    }
    Diag d;
    diag_init(&d, stderr);
    Tokenizer *t = patch ? load_patched(&d, argv[1], patch) : tok_load(&d, argv[1]);
    CHECK_MSG(t != NULL, "cannot load %s (run from a checkout with ../shared beside it?)", argv[1]);
    if (!t) return test_done("tokenizer");
    char path[4096];
    Lines corpus, ids, plain, dec, dskip, rt;
    int bad = read_lines(argv[2], &corpus);
    snprintf(path, sizeof path, "%s.ids", argv[3]);
    bad |= read_lines(path, &ids);
    snprintf(path, sizeof path, "%s.plain", argv[3]);
    bad |= read_lines(path, &plain);
    snprintf(path, sizeof path, "%s.dec", argv[3]);
    bad |= read_lines(path, &dec);
    snprintf(path, sizeof path, "%s.decskip", argv[3]);
    bad |= read_lines(path, &dskip);
    snprintf(path, sizeof path, "%s.rt", argv[3]);
    bad |= read_lines(path, &rt);
    CHECK(!bad);
    if (bad) return test_done("tokenizer");
    CHECK(corpus.n >= 200 && ids.n == corpus.n && plain.n == corpus.n && dec.n == corpus.n && dskip.n == corpus.n &&
          rt.n == corpus.n);
    size_t n = corpus.n < ids.n ? corpus.n : ids.n;
    int enc_bad = 0, plain_bad = 0, dec_bad = 0, skip_bad = 0, rt_bad = 0, rt_checked = 0;
    size_t total_ids = 0;
    TokIds got = {0}, want = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *text = json_str(corpus.v[i], &len);
        CHECK_MSG(text != NULL, "corpus line %zu is not a JSON string", i + 1);
        if (!text) continue;
        // encode with the post-processor
        got.n = 0;
        CHECK(tok_encode(t, text, len, true, &got) == 0);
        parse_ids(ids.v[i], &want);
        total_ids += want.n;
        if (!same_ids(&got, &want)) {
            if (enc_bad++ < 5) show("encode", i, &got, &want);
        }
        // without it
        got.n = 0;
        CHECK(tok_encode(t, text, len, false, &got) == 0);
        parse_ids(plain.v[i], &want);
        if (!same_ids(&got, &want)) {
            if (plain_bad++ < 5) show("encode (no special)", i, &got, &want);
        }
        // decode the reference ids
        parse_ids(ids.v[i], &want);
        size_t rl, dl;
        char *ref = json_str(dec.v[i], &rl);
        char *s = tok_decode(t, want.v, want.n, false, &dl);
        if (!s || !ref || dl != rl || memcmp(s, ref, rl)) {
            if (dec_bad++ < 5) fprintf(stderr, "  corpus line %zu decode: got %s want %s\n", i + 1, s, dec.v[i]);
        }
        free(s);
        free(ref);
        ref = json_str(dskip.v[i], &rl);
        s = tok_decode(t, want.v, want.n, true, &dl);
        if (decskip && (!s || !ref || dl != rl || memcmp(s, ref, rl))) {
            if (skip_bad++ < 5) fprintf(stderr, "  corpus line %zu decode(skip): got %s want %s\n", i + 1, s, dskip.v[i]);
        }
        // round trip (no special tokens added, none skipped) where the reference round-trips
        free(ref);
        ref = json_str(rt.v[i], &rl);
        if (ref && rl == len && !memcmp(ref, text, len)) {
            rt_checked++;
            got.n = 0;
            tok_encode(t, text, len, false, &got);
            free(s);
            s = tok_decode(t, got.v, got.n, false, &dl);
            if (!s || dl != len || memcmp(s, text, len)) rt_bad++;
        }
        free(s);
        free(ref);
        free(text);
    }
    printf("%s: %zu texts, %zu reference ids; mismatches: encode %d, encode(no special) %d, decode %d, "
           "decode(skip) %d%s, round trip %d of %d\n",
           argv[1], n, total_ids, enc_bad, plain_bad, dec_bad, skip_bad, decskip ? "" : " (not compared)", rt_bad,
           rt_checked);
    CHECK(enc_bad == 0);
    CHECK(plain_bad == 0);
    CHECK(dec_bad == 0);
    CHECK(skip_bad == 0);
    CHECK(rt_bad == 0);
    CHECK(rt_checked > 0);
    tok_ids_free(&got);
    tok_ids_free(&want);
    free_lines(&corpus);
    free_lines(&ids);
    free_lines(&plain);
    free_lines(&dec);
    free_lines(&dskip);
    free_lines(&rt);
    tok_free(t);
    diag_free(&d);
    return test_done("tokenizer");
}
