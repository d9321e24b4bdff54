// tok_decode.c — tokenizer decoders: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, run as
// a chain over the list of token strings as tokenizers' Decoder::decode_chain does. The caller
// (tok_decode in tokenizer.c) turns ids into token strings and joins the final pieces.
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>

static const char *pstr(const TokPieces *l, size_t i) { return l->buf.p ? l->buf.p + l->p[i].off : ""; }

static int dec_bytelevel(const struct Tokenizer *t, const TokPieces *in, TokPieces *out) {
    TokBuf raw = {0};
    int rc = tokbuf_reserve(&raw, in->buf.n);
    for (size_t i = 0; i < in->n && !rc; i++) {
        const unsigned char *s = (const unsigned char *)pstr(in, i);
        size_t n = in->p[i].len, start = raw.n;
        bool ok = true;
        for (size_t j = 0; j < n && ok;) {
            int32_t cp;
            int k = tok_utf8_next(s + j, n - j, &cp);
            if (k <= 0 || cp >= 324 || t->char_byte[cp] < 0) ok = false;
            else {
                char b = (char)t->char_byte[cp];
                rc = tokbuf_add(&raw, &b, 1);
                j += (size_t)k;
            }
        }
        if (!ok && !rc) {   // not a byte-level token: its own bytes
            raw.n = start;
            rc = tokbuf_add(&raw, s, n);
        }
    }
    TokBuf txt = {0};
    if (!rc) rc = tok_utf8_lossy(&txt, raw.p ? raw.p : "", raw.n);
    if (!rc) rc = tokpieces_add(out, txt.p ? txt.p : "", txt.n, -1, false);
    free(raw.p);
    free(txt.p);
    return rc;
}

static int dec_replace(const TokDec *d, const TokPieces *in, TokPieces *out) {
    TokBuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = pstr(in, i);
        size_t n = in->p[i].len, j = 0, run = 0;
        b.n = 0;
        if (d->alen)
            while (j + d->alen <= n && !rc) {
                if (memcmp(s + j, d->a, d->alen) == 0) {
                    rc = tokbuf_add(&b, s + run, j - run) || tokbuf_add(&b, d->b, d->blen);
                    j += d->alen;
                    run = j;
                } else j++;
            }
        if (!rc) rc = tokbuf_add(&b, s + run, n - run);
        if (!rc) rc = tokpieces_add(out, b.p, b.n, -1, false);
    }
    free(b.p);
    return rc;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int flush_bytes(TokBuf *bytes, TokPieces *out) {
    int rc = 0;
    if (!bytes->n) return 0;
    if (tok_utf8_valid(bytes->p, bytes->n)) rc = tokpieces_add(out, bytes->p, bytes->n, -1, false);
    else
        for (size_t k = 0; k < bytes->n && !rc; k++) rc = tokpieces_add(out, "\xEF\xBF\xBD", 3, -1, false);
    bytes->n = 0;
    return rc;
}

// "<0xNN>" tokens become bytes; a run of them becomes its UTF-8 text, or one U+FFFD per byte.
static int dec_bytefallback(const TokPieces *in, TokPieces *out) {
    TokBuf bytes = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = pstr(in, i);
        size_t n = in->p[i].len;
        int hi = n == 6 ? hexval(s[3]) : -1, lo = n == 6 ? hexval(s[4]) : -1;
        if (n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && hi >= 0 && lo >= 0) {
            char b = (char)(hi * 16 + lo);
            rc = tokbuf_add(&bytes, &b, 1);
        } else {
            rc = flush_bytes(&bytes, out);
            if (!rc) rc = tokpieces_add(out, s, n, -1, false);
        }
    }
    if (!rc) rc = flush_bytes(&bytes, out);
    free(bytes.p);
    return rc;
}

static int dec_fuse(const TokPieces *in, TokPieces *out) {
    TokBuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) rc = tokbuf_add(&b, pstr(in, i), in->p[i].len);
    if (!rc) rc = tokpieces_add(out, b.p ? b.p : "", b.n, -1, false);
    free(b.p);
    return rc;
}

static int dec_strip(const TokDec *d, const TokPieces *in, TokPieces *out) {
    char c[4];
    size_t cl = (size_t)tok_utf8_put(d->ch, c);
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = pstr(in, i);
        size_t a = 0, b = in->p[i].len;
        for (int k = 0; k < d->start && b - a >= cl && !memcmp(s + a, c, cl); k++) a += cl;
        for (int k = 0; k < d->stop && b - a >= cl && !memcmp(s + b - cl, c, cl); k++) b -= cl;
        rc = tokpieces_add(out, s + a, b - a, -1, false);
    }
    return rc;
}

// Replacement characters become spaces, except in the first token (dropped there unless the
// prepend scheme is "never") — tokenizers' Metaspace::decode_chain.
static int dec_metaspace(const TokDec *d, const TokPieces *in, TokPieces *out) {
    TokBuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = pstr(in, i);
        size_t n = in->p[i].len, j = 0;
        b.n = 0;
        while (j < n && !rc) {
            if (d->alen && j + d->alen <= n && !memcmp(s + j, d->a, d->alen)) {
                if (!(i == 0 && d->prepend != PREPEND_NEVER)) rc = tokbuf_add(&b, " ", 1);
                j += d->alen;
            } else rc = tokbuf_add(&b, s + j++, 1);
        }
        if (!rc) rc = tokpieces_add(out, b.p ? b.p : "", b.n, -1, false);
    }
    free(b.p);
    return rc;
}

int tok_decode_chain(const struct Tokenizer *t, TokPieces *l, TokPieces *tmp) {
    for (int i = 0; i < t->ndecs; i++) {
        const TokDec *d = &t->decs[i];
        tokpieces_clear(tmp);
        int rc = 0;
        switch (d->kind) {
        case DEC_BYTELEVEL: rc = dec_bytelevel(t, l, tmp); break;
        case DEC_REPLACE: rc = dec_replace(d, l, tmp); break;
        case DEC_BYTEFALLBACK: rc = dec_bytefallback(l, tmp); break;
        case DEC_FUSE: rc = dec_fuse(l, tmp); break;
        case DEC_STRIP: rc = dec_strip(d, l, tmp); break;
        case DEC_METASPACE: rc = dec_metaspace(d, l, tmp); break;
        }
        if (rc) return -1;
        TokPieces x = *l;
        *l = *tmp;
        *tmp = x;
    }
    return 0;
}
