// tokenizer.c — loads Hugging Face tokenizer.json and runs the encode/decode pipeline the way the
// `tokenizers` library does: added tokens are split out first (non-normalized ones on the raw text,
// normalized ones after normalization, leftmost-longest, with lstrip/rstrip/single_word), then
// the normalizer, the pre-tokenizers, the BPE model and the post-processor (BOS and friends).
// Also the plain byte tokenizer for models made from scratch. Supports BPE models only; any other
// model/normalizer/pre-tokenizer/decoder type is refused with an "unsupported" error.
#include "tok_internal.h"
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { TOK_MAX_IDS = 1 << 22, TOK_MAX_DEPTH = 8 };   // ids: real vocabularies stay under 300k
static atomic_uint_fast64_t next_serial = 1;   // Tokenizer.serial, never 0
#define TOK_MAX_FILE ((size_t)1 << 30)

// ---------------------------------------------------------------------------------------------
// public small helpers

void tok_ids_free(TokIds *ids) {
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

int tok_ids_push(TokIds *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t)) return -1;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    tokmap_free(&t->vocab);
    free(t->id_off);
    free(t->id_len);
    free(t->merges);
    for (int i = 0; i < t->nadded; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    free(t->raw_set);
    free(t->norm_set);
    free(t->added_of_id);
    for (int i = 0; i < t->nnorms; i++) {
        free(t->norms[i].a);
        free(t->norms[i].b);
        pcre2_code_free(t->norms[i].re);
    }
    free(t->norms);
    for (int i = 0; i < t->npres; i++) pcre2_code_free(t->pres[i].re);
    free(t->pres);
    for (int i = 0; i < t->ndecs; i++) {
        free(t->decs[i].a);
        free(t->decs[i].b);
    }
    free(t->decs);
    free(t->pre_ids);
    free(t->post_ids);
    free(t);
}

// ---------------------------------------------------------------------------------------------
// loading: context and JSON helpers

typedef struct Load {
    Diag *d;
    const char *name;
    Tokenizer *t;
} Load;

#define LERR(L, ...) diag_file_error((L)->d, (L)->name, 0, 0, __VA_ARGS__)

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

// Optional boolean member: default when absent or null; error when of another type.
static int get_bool(Load *L, const json_t *o, const char *key, bool dflt, bool *out, const char *where) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) {
        LERR(L, "%s.%s: expected true or false", where, key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int get_int(Load *L, const json_t *o, const char *key, long long lo, long long hi, long long dflt,
                   long long *out, const char *where) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        LERR(L, "%s.%s: expected an integer in [%lld, %lld]", where, key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

// String member: NULL with an error when missing, or silently NULL when `optional`.
static const char *get_str(Load *L, const json_t *o, const char *key, size_t *len, const char *where,
                           bool optional) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (!optional) LERR(L, "%s: missing string `%s`", where, key);
        return NULL;
    }
    if (!json_is_string(v)) {
        LERR(L, "%s.%s: expected a string", where, key);
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

static const char *type_of(Load *L, const json_t *o, const char *where) {
    if (!json_is_object(o)) {
        LERR(L, "%s: expected an object", where);
        return NULL;
    }
    size_t n;
    return get_str(L, o, "type", &n, where, false);
}

static pcre2_code *compile_regex(Load *L, const char *pat, size_t n, bool literal, const char *where) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP), &err,
                                   &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        LERR(L, "%s: invalid regex at offset %zu: %s", where, (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   // falls back to the interpreter when unavailable
    return re;
}

// {"String": s} or {"Regex": r}
static pcre2_code *pattern(Load *L, const json_t *o, const char *where, char **lit, size_t *litlen) {
    char w[256];
    snprintf(w, sizeof w, "%s.pattern", where);
    json_t *p = json_object_get(o, "pattern");
    if (!json_is_object(p)) {
        LERR(L, "%s: expected {\"String\": ...} or {\"Regex\": ...}", w);
        return NULL;
    }
    json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
    if (json_is_string(s)) {
        if (lit) {
            *lit = dupn(json_string_value(s), json_string_length(s));
            *litlen = json_string_length(s);
            if (!*lit) LERR(L, "out of memory");
            return NULL;
        }
        if (json_string_length(s) == 0) return compile_regex(L, "(?!)", 4, false, w);   // "" never splits
        return compile_regex(L, json_string_value(s), json_string_length(s), true, w);
    }
    if (json_is_string(r)) return compile_regex(L, json_string_value(r), json_string_length(r), false, w);
    LERR(L, "%s: expected {\"String\": ...} or {\"Regex\": ...}", w);
    return NULL;
}

static void *grow(void *p, int *cap, int n, size_t elem) {
    if (n < *cap) return p;
    int c = *cap ? *cap * 2 : 4;
    void *q = realloc(p, (size_t)c * elem);
    if (q) *cap = c;
    return q;
}

// ---------------------------------------------------------------------------------------------
// "Sequence" components (normalizers, pre-tokenizers, decoders): each element loaded in order by
// the component's own loader, nesting bounded by TOK_MAX_DEPTH.

typedef int (*ComponentLoader)(Load *L, const json_t *o, int depth, int *cap, const char *where);

// The component's type; NULL (reported) when it has none or nests too deeply.
static const char *component_type(Load *L, const json_t *o, int depth, const char *where) {
    const char *ty = type_of(L, o, where);
    if (ty && depth > TOK_MAX_DEPTH) {
        LERR(L, "%s: Sequence nested too deeply", where);
        return NULL;
    }
    return ty;
}

static int load_sequence(Load *L, const json_t *o, const char *key, int depth, int *cap, const char *where,
                         ComponentLoader one) {
    json_t *a = json_object_get(o, key);
    if (!json_is_array(a)) {
        LERR(L, "%s.%s: expected an array", where, key);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        char w[256];
        snprintf(w, sizeof w, "%s.%s[%zu]", where, key, i);
        if (one(L, json_array_get(a, i), depth + 1, cap, w)) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// normalizers

static int load_normalizer(Load *L, const json_t *o, int depth, int *cap, const char *where) {
    Tokenizer *t = L->t;
    const char *ty = component_type(L, o, depth, where);
    if (!ty) return -1;
    if (!strcmp(ty, "Sequence")) return load_sequence(L, o, "normalizers", depth, cap, where, load_normalizer);
    TokNorm n = {0};
    size_t len;
    const char *s;
    if (!strcmp(ty, "NFC")) n.kind = NORM_NFC;
    else if (!strcmp(ty, "NFD")) n.kind = NORM_NFD;
    else if (!strcmp(ty, "NFKC")) n.kind = NORM_NFKC;
    else if (!strcmp(ty, "NFKD")) n.kind = NORM_NFKD;
    else if (!strcmp(ty, "Lowercase")) n.kind = NORM_LOWERCASE;
    else if (!strcmp(ty, "StripAccents")) n.kind = NORM_STRIP_ACCENTS;
    else if (!strcmp(ty, "Prepend")) {
        n.kind = NORM_PREPEND;
        if (!(s = get_str(L, o, "prepend", &len, where, false)) || !(n.a = dupn(s, len))) return -1;
        n.alen = len;
    } else if (!strcmp(ty, "Replace")) {
        n.kind = NORM_REPLACE;
        n.re = pattern(L, o, where, &n.a, &n.alen);
        if (!n.re && !n.a) return -1;
        if (!(s = get_str(L, o, "content", &len, where, false)) || !(n.b = dupn(s, len))) {
            free(n.a);
            pcre2_code_free(n.re);
            return -1;
        }
        n.blen = len;
    } else if (!strcmp(ty, "Strip")) {
        n.kind = NORM_STRIP;
        if (get_bool(L, o, "strip_left", true, &n.left, where) || get_bool(L, o, "strip_right", true, &n.right, where))
            return -1;
    } else {
        LERR(L, "%s: normalizer type `%s` is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
                "StripAccents, Prepend, Replace, Strip, Sequence)", where, ty);
        return -1;
    }
    TokNorm *v = grow(t->norms, cap, t->nnorms, sizeof *v);
    if (!v) {
        free(n.a);
        free(n.b);
        pcre2_code_free(n.re);
        LERR(L, "out of memory");
        return -1;
    }
    t->norms = v;
    t->norms[t->nnorms++] = n;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizers

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int prepend_scheme(Load *L, const json_t *o, TokPrepend *out, const char *where) {
    size_t len;
    json_t *ps = json_object_get(o, "prepend_scheme");
    if (ps && !json_is_null(ps)) {
        const char *s = get_str(L, o, "prepend_scheme", &len, where, false);
        if (!s) return -1;
        if (!strcmp(s, "always")) *out = PREPEND_ALWAYS;
        else if (!strcmp(s, "never")) *out = PREPEND_NEVER;
        else if (!strcmp(s, "first")) *out = PREPEND_FIRST;
        else {
            LERR(L, "%s.prepend_scheme: expected \"always\", \"never\" or \"first\"", where);
            return -1;
        }
        return 0;
    }
    bool aps;   // legacy files: add_prefix_space
    if (get_bool(L, o, "add_prefix_space", true, &aps, where)) return -1;
    *out = aps ? PREPEND_ALWAYS : PREPEND_NEVER;
    return 0;
}

static int replacement(Load *L, const json_t *o, char *rep, int *replen, const char *where) {
    size_t len;
    const char *s = get_str(L, o, "replacement", &len, where, false);
    if (!s) return -1;
    int32_t cp;
    if (len == 0 || len > 4 || tok_utf8_next((const unsigned char *)s, len, &cp) != (int)len) {
        LERR(L, "%s.replacement: expected one character", where);
        return -1;
    }
    memcpy(rep, s, len);
    *replen = (int)len;
    return 0;
}

static int load_pretok(Load *L, const json_t *o, int depth, int *cap, const char *where) {
    Tokenizer *t = L->t;
    const char *ty = component_type(L, o, depth, where);
    if (!ty) return -1;
    if (!strcmp(ty, "Sequence")) return load_sequence(L, o, "pretokenizers", depth, cap, where, load_pretok);
    TokPre p = {0};
    if (!strcmp(ty, "ByteLevel")) {
        p.kind = PRE_BYTELEVEL;
        if (get_bool(L, o, "add_prefix_space", true, &p.add_prefix_space, where) ||
            get_bool(L, o, "use_regex", true, &p.use_regex, where))
            return -1;
        if (p.use_regex && !(p.re = compile_regex(L, GPT2_REGEX, sizeof GPT2_REGEX - 1, false, where))) return -1;
    } else if (!strcmp(ty, "Split")) {
        p.kind = PRE_SPLIT;
        size_t len;
        const char *b = get_str(L, o, "behavior", &len, where, false);
        if (!b) return -1;
        if (!strcmp(b, "Removed")) p.behavior = SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) p.behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) p.behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) p.behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) p.behavior = SPLIT_CONTIGUOUS;
        else {
            LERR(L, "%s.behavior: unknown split behavior `%s` (expected Removed, Isolated, MergedWithPrevious, "
                    "MergedWithNext or Contiguous)", where, b);
            return -1;
        }
        if (get_bool(L, o, "invert", false, &p.invert, where)) return -1;
        if (!(p.re = pattern(L, o, where, NULL, NULL))) return -1;
    } else if (!strcmp(ty, "Metaspace")) {
        p.kind = PRE_METASPACE;
        if (replacement(L, o, p.rep, &p.replen, where) || prepend_scheme(L, o, &p.prepend, where) ||
            get_bool(L, o, "split", true, &p.split, where))
            return -1;
    } else if (!strcmp(ty, "Digits")) {
        p.kind = PRE_DIGITS;
        if (get_bool(L, o, "individual_digits", false, &p.individual_digits, where)) return -1;
    } else if (!strcmp(ty, "WhitespaceSplit")) {
        p.kind = PRE_WHITESPACE_SPLIT;
    } else {
        LERR(L, "%s: pre-tokenizer type `%s` is not supported (supported: ByteLevel, Split, Metaspace, Digits, "
                "WhitespaceSplit, Sequence)", where, ty);
        return -1;
    }
    TokPre *v = grow(t->pres, cap, t->npres, sizeof *v);
    if (!v) {
        pcre2_code_free(p.re);
        LERR(L, "out of memory");
        return -1;
    }
    t->pres = v;
    t->pres[t->npres++] = p;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// decoders

static int load_decoder(Load *L, const json_t *o, int depth, int *cap, const char *where) {
    Tokenizer *t = L->t;
    const char *ty = component_type(L, o, depth, where);
    if (!ty) return -1;
    if (!strcmp(ty, "Sequence")) return load_sequence(L, o, "decoders", depth, cap, where, load_decoder);
    TokDec d = {0};
    if (!strcmp(ty, "ByteLevel")) d.kind = DEC_BYTELEVEL;
    else if (!strcmp(ty, "ByteFallback")) d.kind = DEC_BYTEFALLBACK;
    else if (!strcmp(ty, "Fuse")) d.kind = DEC_FUSE;
    else if (!strcmp(ty, "Replace")) {
        d.kind = DEC_REPLACE;
        json_t *p = json_object_get(o, "pattern");
        if (json_is_object(p) && json_object_get(p, "Regex")) {
            LERR(L, "%s.pattern: Replace decoders with a Regex pattern are not supported", where);
            return -1;
        }
        pattern(L, o, where, &d.a, &d.alen);
        size_t len;
        const char *s = d.a ? get_str(L, o, "content", &len, where, false) : NULL;
        if (!s || !(d.b = dupn(s, len))) {
            free(d.a);
            return -1;
        }
        d.blen = len;
    } else if (!strcmp(ty, "Strip")) {
        d.kind = DEC_STRIP;
        size_t len;
        const char *s = get_str(L, o, "content", &len, where, false);
        long long a, b;
        if (!s || get_int(L, o, "start", 0, 1 << 20, 0, &a, where) || get_int(L, o, "stop", 0, 1 << 20, 0, &b, where))
            return -1;
        if (len == 0 || tok_utf8_next((const unsigned char *)s, len, &d.ch) != (int)len) {
            LERR(L, "%s.content: expected one character", where);
            return -1;
        }
        d.start = (int)a;
        d.stop = (int)b;
    } else if (!strcmp(ty, "Metaspace")) {
        d.kind = DEC_METASPACE;
        char rep[8];
        int replen;
        if (replacement(L, o, rep, &replen, where) || prepend_scheme(L, o, &d.prepend, where)) return -1;
        if (!(d.a = dupn(rep, (size_t)replen))) return -1;
        d.alen = (size_t)replen;
    } else {
        LERR(L, "%s: decoder type `%s` is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, "
                "Strip, Metaspace, Sequence)", where, ty);
        return -1;
    }
    TokDec *v = grow(t->decs, cap, t->ndecs, sizeof *v);
    if (!v) {
        free(d.a);
        free(d.b);
        LERR(L, "out of memory");
        return -1;
    }
    t->decs = v;
    t->decs[t->ndecs++] = d;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// post-processors: for a single sequence they add ids before and after it

static int push_id(int32_t **v, int *n, int32_t id) {
    int32_t *p = realloc(*v, (size_t)(*n + 1) * sizeof *p);
    if (!p) return -1;
    *v = p;
    p[(*n)++] = id;
    return 0;
}

// ["<s>", 1] as used by RobertaProcessing and BertProcessing
static int pair_id(Load *L, const json_t *o, const char *key, int32_t *id, const char *where) {
    json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(json_array_get(a, 1)) ||
        json_integer_value(json_array_get(a, 1)) < 0 || json_integer_value(json_array_get(a, 1)) >= TOK_MAX_IDS) {
        LERR(L, "%s.%s: expected [token, id]", where, key);
        return -1;
    }
    *id = (int32_t)json_integer_value(json_array_get(a, 1));
    return 0;
}

static int load_post(Load *L, const json_t *o, int depth, int32_t **pre, int *npre, int32_t **post, int *npost,
                     const char *where) {
    const char *ty = component_type(L, o, depth, where);
    if (!ty) return -1;
    if (!strcmp(ty, "ByteLevel")) return 0;
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(o, "processors");
        if (!json_is_array(a)) {
            LERR(L, "%s.processors: expected an array", where);
            return -1;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            char w[256];
            snprintf(w, sizeof w, "%s.processors[%zu]", where, i);
            int32_t *p2 = NULL, *q2 = NULL;
            int np2 = 0, nq2 = 0, rc = load_post(L, json_array_get(a, i), depth + 1, &p2, &np2, &q2, &nq2, w);
            // a later processor wraps the result of the earlier ones
            for (int k = 0; k < *npre && !rc; k++) rc = push_id(&p2, &np2, (*pre)[k]);
            for (int k = 0; k < nq2 && !rc; k++) rc = push_id(post, npost, q2[k]);
            if (!rc) {
                free(*pre);
                *pre = p2;
                *npre = np2;
                p2 = NULL;
            }
            free(p2);
            free(q2);
            if (rc) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        int32_t cls, sep;
        if (pair_id(L, o, "cls", &cls, where) || pair_id(L, o, "sep", &sep, where)) return -1;
        return push_id(pre, npre, cls) || push_id(post, npost, sep) ? -1 : 0;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        json_t *single = json_object_get(o, "single"), *sp = json_object_get(o, "special_tokens");
        if (!json_is_array(single)) {
            LERR(L, "%s.single: expected an array", where);
            return -1;
        }
        bool seen_a = false;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *it = json_array_get(single, i), *s;
            if ((s = json_object_get(it, "Sequence"))) {
                seen_a = true;
                continue;
            }
            s = json_object_get(it, "SpecialToken");
            json_t *name = json_object_get(s, "id");
            json_t *tok = json_is_string(name) ? json_object_get(sp, json_string_value(name)) : NULL;
            json_t *ids = json_object_get(tok, "ids");
            if (!json_is_array(ids)) {
                LERR(L, "%s.single[%zu]: expected a SpecialToken listed in special_tokens (with ids) or a Sequence",
                     where, i);
                return -1;
            }
            for (size_t k = 0; k < json_array_size(ids); k++) {
                json_t *x = json_array_get(ids, k);
                if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= TOK_MAX_IDS) {
                    LERR(L, "%s.special_tokens: bad id", where);
                    return -1;
                }
                if (push_id(seen_a ? post : pre, seen_a ? npost : npre, (int32_t)json_integer_value(x))) return -1;
            }
        }
        return 0;
    }
    LERR(L, "%s: post-processor type `%s` is not supported (supported: TemplateProcessing, ByteLevel, "
            "RobertaProcessing, BertProcessing, Sequence)", where, ty);
    return -1;
}

// ---------------------------------------------------------------------------------------------
// model

static void set_id_string(Tokenizer *t, int32_t id, uint32_t off, uint32_t len) {
    t->id_off[id] = off;
    t->id_len[id] = len;
}

// Legacy merges "a b": when a token itself contains spaces the line is ambiguous; take the unique
// split whose halves and concatenation are all in the vocabulary.
static int split_legacy(Load *L, const char *s, size_t n, size_t *cut, size_t i) {
    size_t found = 0, nfound = 0;
    for (size_t k = 1; k + 1 < n; k++) {
        if (s[k] != ' ') continue;
        if (tokmap_get(&L->t->vocab, s, k) < 0 || tokmap_get(&L->t->vocab, s + k + 1, n - k - 1) < 0) continue;
        char *cat = malloc(n);
        if (!cat) return -1;
        memcpy(cat, s, k);
        memcpy(cat + k, s + k + 1, n - k - 1);
        bool ok = tokmap_get(&L->t->vocab, cat, n - 1) >= 0;
        free(cat);
        if (ok) found = k, nfound++;
    }
    if (nfound == 1) {
        *cut = found;
        return 0;
    }
    LERR(L, "model.merges[%zu]: `%s` is not a merge of two vocabulary tokens \"a b\"%s", i, s,
         nfound > 1 ? " (ambiguous)" : "");
    return -1;
}

static int load_model(Load *L, const json_t *m) {
    Tokenizer *t = L->t;
    if (!json_is_object(m)) {
        LERR(L, "model: missing or not an object");
        return -1;
    }
    json_t *ty = json_object_get(m, "type");
    if (ty && !json_is_null(ty)) {
        if (!json_is_string(ty)) {
            LERR(L, "model.type: expected a string");
            return -1;
        }
        if (strcmp(json_string_value(ty), "BPE")) {
            LERR(L, "model.type: model `%s` is not supported (only BPE)", json_string_value(ty));
            return -1;
        }
    }
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab)) {
        LERR(L, "model.vocab: missing or not an object");
        return -1;
    }
    if (!json_is_array(merges)) {
        LERR(L, "model.merges: missing or not an array");
        return -1;
    }
    json_t *dr = json_object_get(m, "dropout");
    if (dr && !json_is_null(dr) && !(json_is_number(dr) && json_number_value(dr) == 0.0)) {
        LERR(L, "model.dropout: BPE dropout is not supported (must be null)");
        return -1;
    }
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(m, keys[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
            LERR(L, "model.%s: not supported (must be null or empty)", keys[i]);
            return -1;
        }
    }
    if (get_bool(L, m, "byte_fallback", false, &t->byte_fallback, "model") ||
        get_bool(L, m, "fuse_unk", false, &t->fuse_unk, "model") ||
        get_bool(L, m, "ignore_merges", false, &t->ignore_merges, "model"))
        return -1;
    const char *key;
    size_t klen;
    json_t *val;
    int32_t maxid = -1;
    json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TOK_MAX_IDS) {
            LERR(L, "model.vocab[\"%s\"]: expected an id in [0, %d)", key, TOK_MAX_IDS);
            return -1;
        }
        int32_t id = (int32_t)json_integer_value(val);
        if (tokmap_put(&t->vocab, key, klen, id)) {
            LERR(L, "out of memory");
            return -1;
        }
        if (id > maxid) maxid = id;
    }
    t->nids = maxid + 1;
    // merges
    size_t nm = json_array_size(merges), slots = 16;
    if (nm >= TOK_MAX_IDS) {
        LERR(L, "model.merges: too many merges (%zu)", nm);
        return -1;
    }
    while (slots < 2 * nm) slots *= 2;
    t->merges = malloc(slots * sizeof *t->merges);
    if (!t->merges) {
        LERR(L, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < slots; i++) t->merges[i].key = UINT64_MAX;
    t->nmerge_slots = slots;
    TokBuf cat = {0};
    int rc = 0;
    for (size_t i = 0; i < nm && !rc; i++) {
        json_t *e = json_array_get(merges, i);
        const char *a, *b;
        size_t alen, blen;
        if (json_is_string(e)) {
            const char *s = json_string_value(e);
            size_t n = json_string_length(e), cut = 0;
            const char *sp = memchr(s, ' ', n);
            if (sp && !memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1)) cut = (size_t)(sp - s);
            else if ((rc = split_legacy(L, s, n, &cut, i))) break;
            a = s, alen = cut, b = s + cut + 1, blen = n - cut - 1;
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            a = json_string_value(json_array_get(e, 0)), alen = json_string_length(json_array_get(e, 0));
            b = json_string_value(json_array_get(e, 1)), blen = json_string_length(json_array_get(e, 1));
        } else {
            LERR(L, "model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", i);
            rc = -1;
            break;
        }
        int32_t ia = tokmap_get(&t->vocab, a, alen), ib = tokmap_get(&t->vocab, b, blen);
        if (ia < 0 || ib < 0) {
            LERR(L, "model.merges[%zu]: token `%.*s` is not in the vocabulary", i, (int)(ia < 0 ? alen : blen),
                 ia < 0 ? a : b);
            rc = -1;
            break;
        }
        cat.n = 0;
        if (tokbuf_add(&cat, a, alen) || tokbuf_add(&cat, b, blen)) {
            LERR(L, "out of memory");
            rc = -1;
            break;
        }
        int32_t nid = tokmap_get(&t->vocab, cat.p, cat.n);
        if (nid < 0) {
            LERR(L, "model.merges[%zu]: the merged token `%s` is not in the vocabulary", i, cat.p);
            rc = -1;
            break;
        }
        tok_merge_put(t, ia, ib, (int32_t)i, nid);
    }
    free(cat.p);
    if (rc) return -1;
    size_t len;
    const char *unk = get_str(L, m, "unk_token", &len, "model", true);
    t->unk_id = unk ? tokmap_get(&t->vocab, unk, len) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = t->byte_fallback ? tokmap_get(&t->vocab, name, 6) : -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// added tokens

// Match sets are scanned longest first (leftmost-longest matching); stable insertion sort.
static void sort_by_len(const Tokenizer *t, int *set, int n) {
    for (int i = 1; i < n; i++) {
        int x = set[i], j = i;
        const TokAdded *ax = &t->added[x];
        size_t lx = ax->normalized ? ax->normlen : ax->len;
        while (j > 0) {
            const TokAdded *ay = &t->added[set[j - 1]];
            if ((ay->normalized ? ay->normlen : ay->len) >= lx) break;
            set[j] = set[j - 1];
            j--;
        }
        set[j] = x;
    }
}

static int load_added(Load *L, const json_t *arr) {
    Tokenizer *t = L->t;
    if (arr && !json_is_null(arr) && !json_is_array(arr)) {
        LERR(L, "added_tokens: expected an array");
        return -1;
    }
    size_t n = arr ? json_array_size(arr) : 0;
    if (n >= TOK_MAX_IDS) {
        LERR(L, "added_tokens: too many");
        return -1;
    }
    t->added = calloc(n + 1, sizeof *t->added);
    t->raw_set = calloc(n + 1, sizeof(int));
    t->norm_set = calloc(n + 1, sizeof(int));
    if (!t->added || !t->raw_set || !t->norm_set) {
        LERR(L, "out of memory");
        return -1;
    }
    TokBuf nb = {0};
    int32_t maxadded = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char w[64];
        snprintf(w, sizeof w, "added_tokens[%zu]", i);
        if (!json_is_object(o)) {
            LERR(L, "%s: expected an object", w);
            free(nb.p);
            return -1;
        }
        TokAdded *a = &t->added[t->nadded];
        long long id;
        size_t len;
        const char *s = get_str(L, o, "content", &len, w, false);
        if (!s || get_int(L, o, "id", 0, TOK_MAX_IDS - 1, -1, &id, w) || get_bool(L, o, "special", false, &a->special, w) ||
            get_bool(L, o, "lstrip", false, &a->lstrip, w) || get_bool(L, o, "rstrip", false, &a->rstrip, w) ||
            get_bool(L, o, "single_word", false, &a->single_word, w) ||
            get_bool(L, o, "normalized", !a->special, &a->normalized, w)) {
            free(nb.p);
            return -1;
        }
        if (id < 0) {
            LERR(L, "%s: missing `id`", w);
            free(nb.p);
            return -1;
        }
        if (len == 0) continue;   // tokenizers ignores empty added tokens
        // tokenizers does not trust the file's ids: an added token gets its vocabulary id, else the
        // next id after the vocabulary and the added tokens so far (AddedVocabulary::add_tokens).
        // For consistent files this is the id written there.
        bool dup = false;
        for (int k = 0; k < t->nadded && !dup; k++) dup = t->added[k].len == len && !memcmp(t->added[k].content, s, len);
        if (dup) continue;
        int32_t vid = tokmap_get(&t->vocab, s, len);
        int32_t vlen = (int32_t)t->vocab.n;
        if (vid >= 0) id = vid;
        else if (maxadded < 0) id = vlen;
        else id = (maxadded >= vlen || vlen == 0) ? maxadded + 1 : vlen;
        if (id >= TOK_MAX_IDS) {
            LERR(L, "%s: id out of range", w);
            free(nb.p);
            return -1;
        }
        if (id > maxadded) maxadded = (int32_t)id;
        a->id = (int32_t)id;
        a->len = len;
        if (!(a->content = dupn(s, len))) {
            LERR(L, "out of memory");
            free(nb.p);
            return -1;
        }
        // tokenizers matches normalized tokens by their normalized form (and prints that form)
        if (a->normalized && t->nnorms) {
            pcre2_match_data *md = pcre2_match_data_create(4, NULL);
            int bad = !md || tok_normalize(t->norms, t->nnorms, s, len, &nb, md);
            pcre2_match_data_free(md);
            if (bad) {
                LERR(L, "out of memory");
                free(nb.p);
                return -1;
            }
        } else {
            nb.n = 0;
            tokbuf_add(&nb, s, len);
        }
        a->norm = dupn(nb.p ? nb.p : "", nb.n);
        a->normlen = nb.n;
        if (!a->norm) {
            LERR(L, "out of memory");
            free(nb.p);
            return -1;
        }
        if (a->id >= t->nids) t->nids = a->id + 1;
        int idx = t->nadded++;
        const char *m = a->normalized ? a->norm : a->content;
        if (a->normalized) t->norm_set[t->nnorm++] = idx, t->norm_first[(unsigned char)m[0] / 8] |= (unsigned char)(1u << ((unsigned char)m[0] % 8));
        else t->raw_set[t->nraw++] = idx, t->raw_first[(unsigned char)m[0] / 8] |= (unsigned char)(1u << ((unsigned char)m[0] % 8));
    }
    free(nb.p);
    sort_by_len(t, t->raw_set, t->nraw);
    sort_by_len(t, t->norm_set, t->nnorm);
    return 0;
}

// id → string tables over the model vocabulary and the added tokens
static int build_id_tables(Load *L) {
    Tokenizer *t = L->t;
    size_t n = (size_t)t->nids;
    t->id_off = malloc((n + 1) * sizeof *t->id_off);
    t->id_len = malloc((n + 1) * sizeof *t->id_len);
    t->added_of_id = malloc((n + 1) * sizeof *t->added_of_id);
    if (!t->id_off || !t->id_len || !t->added_of_id) {
        LERR(L, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) t->id_len[i] = UINT32_MAX, t->added_of_id[i] = -1;
    for (size_t i = 0; i < t->vocab.n; i++) set_id_string(t, t->vocab.val[i], t->vocab.off[i], t->vocab.len[i]);
    for (int i = 0; i < t->nadded; i++) t->added_of_id[t->added[i].id] = i;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// tok_load

Tokenizer *tok_load_json(Diag *d, const char *name, const char *json, size_t len) {
    Load L = {d, name, NULL};
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &err);
    if (!root) {
        diag_file_error(d, name, err.line, err.column, "invalid JSON: %s", err.text);
        return NULL;
    }
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        LERR(&L, "out of memory");
        json_decref(root);
        return NULL;
    }
    L.t = t;
    t->serial = atomic_fetch_add(&next_serial, 1);
    t->model = TOK_MODEL_BPE;
    t->unk_id = -1;
    tok_bytelevel_tables(t);
    int rc = 0, cap = 0;
    if (!json_is_object(root)) {
        LERR(&L, "expected a JSON object (a tokenizer.json file)");
        rc = -1;
    }
    json_t *x;
    if (!rc) rc = load_model(&L, json_object_get(root, "model"));
    if (!rc && (x = json_object_get(root, "normalizer")) && !json_is_null(x)) rc = load_normalizer(&L, x, 0, &cap, "normalizer");
    cap = 0;
    if (!rc && (x = json_object_get(root, "pre_tokenizer")) && !json_is_null(x)) rc = load_pretok(&L, x, 0, &cap, "pre_tokenizer");
    cap = 0;
    if (!rc && (x = json_object_get(root, "decoder")) && !json_is_null(x)) {
        t->has_decoder = true;
        rc = load_decoder(&L, x, 0, &cap, "decoder");
    }
    if (!rc && (x = json_object_get(root, "post_processor")) && !json_is_null(x))
        rc = load_post(&L, x, 0, &t->pre_ids, &t->npre_ids, &t->post_ids, &t->npost_ids, "post_processor");
    if (!rc) rc = load_added(&L, json_object_get(root, "added_tokens"));
    for (int i = 0; !rc && i < t->npre_ids; i++)
        if (t->pre_ids[i] >= t->nids) LERR(&L, "post_processor: id %d is outside the vocabulary", t->pre_ids[i]), rc = -1;
    for (int i = 0; !rc && i < t->npost_ids; i++)
        if (t->post_ids[i] >= t->nids) LERR(&L, "post_processor: id %d is outside the vocabulary", t->post_ids[i]), rc = -1;
    if (!rc) rc = build_id_tables(&L);
    json_decref(root);
    if (rc) {
        tok_free(t);
        return NULL;
    }
    return t;
}

Tokenizer *tok_load(Diag *d, const char *path) {
    // a FIFO or device would block fopen or never end: only regular files are tokenizers
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        diag_file_error(d, path, 0, 0, "cannot read tokenizer: not a regular file");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_file_error(d, path, 0, 0, "cannot open tokenizer: %s", strerror(errno));
        return NULL;
    }
    TokBuf b = {0};
    char chunk[65536];
    size_t k;
    int rc = 0;
    while (!rc && (k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + k > TOK_MAX_FILE) {
            diag_file_error(d, path, 0, 0, "tokenizer file is larger than 1 GiB");
            rc = -1;
        } else if (tokbuf_add(&b, chunk, k)) {
            diag_file_error(d, path, 0, 0, "out of memory");
            rc = -1;
        }
    }
    if (!rc && ferror(f)) {
        diag_file_error(d, path, 0, 0, "read error: %s", strerror(errno));
        rc = -1;
    }
    fclose(f);
    Tokenizer *t = rc ? NULL : tok_load_json(d, path, b.p ? b.p : "", b.n);
    free(b.p);
    return t;
}

Tokenizer *tok_new_bytes(void) {
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->model = TOK_MODEL_BYTES;
    t->serial = atomic_fetch_add(&next_serial, 1);
    t->unk_id = -1;
    tok_bytelevel_tables(t);
    static const char *const specials[] = {"<|bos|>", "<|eos|>", "<|pad|>"};
    int rc = 0;
    for (int b = 0; b < 256 && !rc; b++) {
        char c = (char)b;
        rc = tokmap_put(&t->vocab, &c, 1, b);
    }
    t->nids = 259;
    t->added = calloc(3, sizeof *t->added);
    t->raw_set = calloc(3, sizeof(int));
    t->norm_set = calloc(1, sizeof(int));
    if (rc || !t->added || !t->raw_set || !t->norm_set) {
        tok_free(t);
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        TokAdded *a = &t->added[i];
        a->len = a->normlen = strlen(specials[i]);
        a->content = dupn(specials[i], a->len);
        a->norm = dupn(specials[i], a->len);
        a->id = 256 + i;
        a->special = true;
        if (!a->content || !a->norm) {
            t->nadded = i + 1;
            tok_free(t);
            return NULL;
        }
        t->raw_set[i] = i;
        t->nadded = i + 1;
    }
    t->nraw = 3;
    t->raw_first['<' / 8] |= (unsigned char)(1u << ('<' % 8));
    if (push_id(&t->pre_ids, &t->npre_ids, 256)) {
        tok_free(t);
        return NULL;
    }
    t->id_off = malloc(260 * sizeof *t->id_off);
    t->id_len = malloc(260 * sizeof *t->id_len);
    t->added_of_id = malloc(260 * sizeof *t->added_of_id);
    if (!t->id_off || !t->id_len || !t->added_of_id) {
        tok_free(t);
        return NULL;
    }
    for (int i = 0; i < 259; i++) t->id_len[i] = UINT32_MAX, t->added_of_id[i] = -1;
    for (size_t i = 0; i < t->vocab.n; i++) set_id_string(t, t->vocab.val[i], t->vocab.off[i], t->vocab.len[i]);
    for (int i = 0; i < 3; i++) t->added_of_id[256 + i] = i;
    return t;
}
