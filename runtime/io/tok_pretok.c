// tok_pretok.c — tokenizer pre-tokenizers: ByteLevel (GPT-2 regex split + byte→char mapping), Split
// (regex or string, with the five delimiter behaviors and invert), Metaspace, Digits,
// WhitespaceSplit. Each splits text pieces into smaller pieces the model encodes one by one.
// Mirrors tokenizers' NormalizedString::split; empty pieces are dropped as tokenizers does.
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct Seg {
    size_t a, b;   // byte range in the piece
    bool m;        // a match of the pattern (a delimiter)
} Seg;
typedef struct Segs {
    Seg *v;
    size_t n, cap;
} Segs;

static int segs_add(Segs *s, size_t a, size_t b, bool m) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(Seg)) return -1;
        Seg *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (Seg){a, b, m};
    return 0;
}

// Matches of `re` over s[0..n) as a cover of the string: gaps (m=false) and matches (m=true).
static int regex_segs(const pcre2_code *re, const char *s, size_t n, Segs *out, pcre2_match_data *md) {
    size_t pos = 0, prev = 0;
    while (pos <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return -1;   // match limit, out of memory: fail rather than split wrongly
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (a < prev) a = prev;   // \K could move the start back; never overlap
        if (b < a) b = a;
        if (prev != a && segs_add(out, prev, a, false)) return -1;
        if (segs_add(out, a, b, true)) return -1;
        prev = b;
        if (b > a) pos = b;
        else {
            if (b >= n) break;
            int32_t cp;
            int k = tok_utf8_next((const unsigned char *)s + b, n - b, &cp);
            pos = b + (size_t)(k > 0 ? k : 1);
        }
    }
    if (prev != n && segs_add(out, prev, n, false)) return -1;
    return 0;
}

// Appends s[0..n) to out, mapping each byte to its ByteLevel character when bytemap.
static int emit(const struct Tokenizer *t, TokPieces *out, const char *s, size_t n, bool first, bool bytemap) {
    if (n == 0) return 0;
    if (!bytemap) return tokpieces_add(out, s, n, -1, first);
    if (n > SIZE_MAX / 2 || tokpieces_add(out, "", 0, -1, first)) return -1;
    TokPiece *p = &out->p[out->n - 1];
    if (tokbuf_reserve(&out->buf, 2 * n)) return -1;
    char *o = out->buf.p + out->buf.n;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)tok_utf8_put(t->byte_char[(unsigned char)s[i]], o + k);
    out->buf.n += k;
    out->buf.p[out->buf.n] = 0;
    p->len = k;
    return 0;
}

// Applies a delimiter behavior to the cover `sg` of s and emits the resulting pieces.
static int apply_behavior(const struct Tokenizer *t, const char *s, Segs *sg, TokSplitBehavior beh,
                          bool first, bool bytemap, TokPieces *out) {
    Segs r = {0};
    int rc = 0;
    bool prevm = false;
    switch (beh) {
    case SPLIT_ISOLATED:
    case SPLIT_REMOVED:
        for (size_t i = 0; i < sg->n && !rc; i++)
            if (!(beh == SPLIT_REMOVED && sg->v[i].m)) rc = segs_add(&r, sg->v[i].a, sg->v[i].b, false);
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < sg->n && !rc; i++) {
            if (r.n && sg->v[i].m == prevm) r.v[r.n - 1].b = sg->v[i].b;
            else rc = segs_add(&r, sg->v[i].a, sg->v[i].b, false);
            prevm = sg->v[i].m;
        }
        break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < sg->n && !rc; i++) {
            if (sg->v[i].m && !prevm && r.n) r.v[r.n - 1].b = sg->v[i].b;
            else rc = segs_add(&r, sg->v[i].a, sg->v[i].b, false);
            prevm = sg->v[i].m;
        }
        break;
    case SPLIT_MERGED_NEXT:
        for (size_t i = sg->n; i-- > 0 && !rc;) {
            if (sg->v[i].m && !prevm && r.n) r.v[r.n - 1].a = sg->v[i].a;
            else rc = segs_add(&r, sg->v[i].a, sg->v[i].b, false);
            prevm = sg->v[i].m;
        }
        for (size_t i = 0; i < r.n / 2; i++) {   // built backwards
            Seg x = r.v[i];
            r.v[i] = r.v[r.n - 1 - i];
            r.v[r.n - 1 - i] = x;
        }
        break;
    }
    for (size_t i = 0; i < r.n && !rc; i++)
        rc = emit(t, out, s + r.v[i].a, r.v[i].b - r.v[i].a, first && r.v[i].a == 0, bytemap);
    free(r.v);
    return rc;
}

// Cover of s by characters for which pred holds (matches; one per character when each, else
// runs) and runs of the other characters.
static int class_segs(const char *s, size_t n, bool (*pred)(int32_t), bool each, Segs *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int k = tok_utf8_next(u + i, n - i, &cp);
        if (k <= 0) k = 1, cp = 0xFFFD;
        bool m = pred(cp);
        bool join = out->n && out->v[out->n - 1].m == m && (!m || !each);
        if (join) out->v[out->n - 1].b += (size_t)k;
        else if (segs_add(out, i, i + (size_t)k, m)) return -1;
        i += (size_t)k;
    }
    return 0;
}

static bool is_numeric(int32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t k = utf8proc_category(cp);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

static int metaspace(const struct Tokenizer *t, const TokPre *p, const char *s, size_t n, bool first,
                     TokPieces *out) {
    TokBuf b = {0};
    int rc = 0;
    bool starts = n >= (size_t)p->replen && memcmp(s, p->rep, (size_t)p->replen) == 0;
    if (!(n && s[0] == ' ') && !starts &&
        (p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && first)))
        rc = tokbuf_add(&b, p->rep, (size_t)p->replen);
    for (size_t i = 0; i < n && !rc; i++)
        rc = s[i] == ' ' ? tokbuf_add(&b, p->rep, (size_t)p->replen) : tokbuf_add(&b, s + i, 1);
    if (!rc && p->split) {
        Segs sg = {0};
        size_t i = 0, prev = 0;
        while (!rc && i + (size_t)p->replen <= b.n) {
            if (memcmp(b.p + i, p->rep, (size_t)p->replen) == 0) {
                if (prev != i) rc = segs_add(&sg, prev, i, false);
                if (!rc) rc = segs_add(&sg, i, i + (size_t)p->replen, true);
                i += (size_t)p->replen;
                prev = i;
            } else i++;
        }
        if (!rc && prev != b.n) rc = segs_add(&sg, prev, b.n, false);
        if (!rc) rc = apply_behavior(t, b.p, &sg, SPLIT_MERGED_NEXT, first, false, out);
        free(sg.v);
    } else if (!rc) rc = emit(t, out, b.p ? b.p : "", b.n, first, false);
    free(b.p);
    return rc;
}

int tok_pretokenize(const struct Tokenizer *t, const TokPre *p, const TokPieces *in, TokPieces *out,
                    pcre2_match_data *md) {
    Segs sg = {0};
    TokBuf tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const TokPiece *pc = &in->p[i];
        if (pc->id >= 0) {
            rc = tokpieces_add(out, "", 0, pc->id, pc->first);
            continue;
        }
        const char *s = in->buf.p + pc->off;
        size_t n = pc->len;
        sg.n = 0;
        switch (p->kind) {
        case PRE_BYTELEVEL:
            if (p->add_prefix_space && !(n && s[0] == ' ')) {
                tmp.n = 0;
                rc = tokbuf_add(&tmp, " ", 1) || tokbuf_add(&tmp, s, n);
                s = tmp.p, n = tmp.n;
            }
            if (rc) break;
            if (p->use_regex) {
                rc = regex_segs(p->re, s, n, &sg, md);
                if (!rc) rc = apply_behavior(t, s, &sg, SPLIT_ISOLATED, pc->first, true, out);
            } else rc = emit(t, out, s, n, pc->first, true);
            break;
        case PRE_SPLIT:
            rc = regex_segs(p->re, s, n, &sg, md);
            if (!rc && p->invert)
                for (size_t j = 0; j < sg.n; j++) sg.v[j].m = !sg.v[j].m;
            if (!rc) rc = apply_behavior(t, s, &sg, p->behavior, pc->first, false, out);
            break;
        case PRE_METASPACE:
            rc = metaspace(t, p, s, n, pc->first, out);
            break;
        case PRE_DIGITS:
            rc = class_segs(s, n, is_numeric, p->individual_digits, &sg);
            if (!rc) rc = apply_behavior(t, s, &sg, p->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS,
                                         pc->first, false, out);
            break;
        case PRE_WHITESPACE_SPLIT:
            rc = class_segs(s, n, tok_is_whitespace, false, &sg);
            if (!rc) rc = apply_behavior(t, s, &sg, SPLIT_REMOVED, pc->first, false, out);
            break;
        }
    }
    free(sg.v);
    free(tmp.p);
    return rc;
}
