// tok_norm.c — tokenizer normalizers: Unicode NFC/NFD/NFKC/NFKD (utf8proc), Prepend, Replace
// (literal or regex), Strip, Lowercase, StripAccents. Each step maps a valid UTF-8 string to another; offsets
// are not tracked (trlc needs ids only). Parsing them from JSON is in tokenizer.c.
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int unicode_chunk(int opt, const char *s, size_t n, TokBuf *out) {
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
    if (r < 0) {
        free(dst);
        return -1;
    }
    int rc = tokbuf_add(out, dst, (size_t)r);
    free(dst);
    return rc;
}

// ASCII characters never decompose, never compose with what precedes them and have combining
// class 0, so a string can be cut before an ASCII character that is followed by another ASCII
// character (or the end): only the stretches around non-ASCII text go through utf8proc.
static int unicode_form(TokNormKind k, const TokBuf *in, TokBuf *out) {
    int opt = UTF8PROC_STABLE;
    if (k == NORM_NFC || k == NORM_NFKC) opt |= UTF8PROC_COMPOSE;
    else opt |= UTF8PROC_DECOMPOSE;
    if (k == NORM_NFKC || k == NORM_NFKD) opt |= UTF8PROC_COMPAT;
    const unsigned char *u = (const unsigned char *)in->p;
    size_t n = in->n, i = 0;
    if (tokbuf_reserve(out, n)) return -1;
    while (i < n) {
        size_t j = i;
        while (j < n && u[j] < 0x80) j++;
        if (j == n) return tokbuf_add(out, in->p + i, n - i);
        size_t start = j > i ? j - 1 : j;   // the ASCII character before may compose with what follows
        if (tokbuf_add(out, in->p + i, start - i)) return -1;
        size_t e = j;
        while (e < n && !(u[e] < 0x80 && (e + 1 == n || u[e + 1] < 0x80))) e++;
        if (unicode_chunk(opt, in->p + start, e - start, out)) return -1;
        i = e;
    }
    return tokbuf_add(out, "", 0);
}

static int replace_literal(const TokNorm *s, const TokBuf *in, TokBuf *out) {
    if (s->alen == 0) return tokbuf_add(out, in->p, in->n);
    size_t i = 0, run = 0;
    while (i + s->alen <= in->n) {
        if (memcmp(in->p + i, s->a, s->alen) == 0) {
            if (tokbuf_add(out, in->p + run, i - run) || tokbuf_add(out, s->b, s->blen)) return -1;
            i += s->alen;
            run = i;
        } else i++;
    }
    return tokbuf_add(out, in->p + run, in->n - run);
}

static int replace_regex(const TokNorm *s, const TokBuf *in, TokBuf *out, pcre2_match_data *md) {
    size_t pos = 0, run = 0;
    while (pos <= in->n) {
        int rc = pcre2_match(s->re, (PCRE2_SPTR)in->p, in->n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (tokbuf_add(out, in->p + run, ov[0] - run) || tokbuf_add(out, s->b, s->blen)) return -1;
        run = ov[1];
        if (ov[1] > ov[0]) pos = ov[1];
        else {   // empty match: step over one character
            if (ov[1] >= in->n) break;
            int32_t cp;
            int k = tok_utf8_next((const unsigned char *)in->p + ov[1], in->n - ov[1], &cp);
            pos = ov[1] + (size_t)(k > 0 ? k : 1);
        }
    }
    return tokbuf_add(out, in->p + run, in->n - run);
}

static int strip(const TokNorm *s, const TokBuf *in, TokBuf *out) {
    const unsigned char *u = (const unsigned char *)in->p;
    size_t a = 0, b = in->n;
    if (s->left)
        while (a < b) {
            int32_t cp;
            int k = tok_utf8_next(u + a, b - a, &cp);
            if (k <= 0 || !tok_is_whitespace(cp)) break;
            a += (size_t)k;
        }
    if (s->right)
        while (b > a) {
            size_t c = b - 1;
            while (c > a && (u[c] & 0xC0) == 0x80) c--;
            int32_t cp;
            int k = tok_utf8_next(u + c, b - c, &cp);
            if (k <= 0 || !tok_is_whitespace(cp)) break;
            b = c;
        }
    return tokbuf_add(out, in->p + a, b - a);
}

static int lowercase(const TokBuf *in, TokBuf *out) {
    const unsigned char *u = (const unsigned char *)in->p;
    size_t i = 0;
    if (tokbuf_reserve(out, in->n)) return -1;
    while (i < in->n) {
        int32_t cp;
        int k = tok_utf8_next(u + i, in->n - i, &cp);
        if (k <= 0) return -1;
        char tmp[4];
        int m = tok_utf8_put(utf8proc_tolower(cp), tmp);
        if (tokbuf_add(out, tmp, (size_t)m)) return -1;
        i += (size_t)k;
    }
    return 0;
}

// StripAccents: drops every combining mark (Mn, Mc, Me), as tokenizers does.
static int strip_accents(const TokBuf *in, TokBuf *out) {
    const unsigned char *u = (const unsigned char *)in->p;
    size_t i = 0;
    if (tokbuf_reserve(out, in->n)) return -1;
    while (i < in->n) {
        int32_t cp;
        int k = tok_utf8_next(u + i, in->n - i, &cp);
        if (k <= 0) return -1;
        utf8proc_category_t c = cp < 0x80 ? UTF8PROC_CATEGORY_LL : utf8proc_category(cp);
        if (c != UTF8PROC_CATEGORY_MN && c != UTF8PROC_CATEGORY_MC && c != UTF8PROC_CATEGORY_ME &&
            tokbuf_add(out, in->p + i, (size_t)k))
            return -1;
        i += (size_t)k;
    }
    return tokbuf_add(out, "", 0);
}

int tok_normalize(const TokNorm *steps, int nsteps, const char *s, size_t n, TokBuf *out,
                  pcre2_match_data *md) {
    TokBuf a = {0}, b = {0};
    int rc = tokbuf_add(&a, s, n);
    for (int i = 0; i < nsteps && !rc; i++) {
        const TokNorm *st = &steps[i];
        b.n = 0;
        switch (st->kind) {
        case NORM_NFC: case NORM_NFD: case NORM_NFKC: case NORM_NFKD:
            rc = unicode_form(st->kind, &a, &b);
            break;
        case NORM_PREPEND:
            // tokenizers prepends only to a non-empty string
            rc = a.n ? (tokbuf_add(&b, st->a, st->alen) || tokbuf_add(&b, a.p, a.n)) : tokbuf_add(&b, "", 0);
            break;
        case NORM_REPLACE:
            rc = st->re ? replace_regex(st, &a, &b, md) : replace_literal(st, &a, &b);
            break;
        case NORM_STRIP:
            rc = strip(st, &a, &b);
            break;
        case NORM_LOWERCASE:
            rc = lowercase(&a, &b);
            break;
        case NORM_STRIP_ACCENTS:
            rc = strip_accents(&a, &b);
            break;
        }
        TokBuf t = a;
        a = b;
        b = t;
    }
    out->n = 0;
    if (!rc) rc = tokbuf_add(out, a.p, a.n);
    free(a.p);
    free(b.p);
    return rc ? -1 : 0;
}
