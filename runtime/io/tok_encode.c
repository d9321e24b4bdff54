// tok_encode.c — tok_encode / tok_decode and the vocabulary queries. Encoding follows tokenizers'
// TokenizerImpl::encode for one sequence: added-token extraction (AddedVocabulary::find_matches:
// leftmost-longest, single_word, lstrip, rstrip), normalization, pre-tokenization, BPE, then the
// post-processor's ids. Decoding maps ids to token strings and runs the decoder chain.
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>

static bool ends_with_word(const char *s, size_t n) {
    if (!n) return false;
    size_t c = n - 1;
    while (c > 0 && ((unsigned char)s[c] & 0xC0) == 0x80) c--;
    int32_t cp;
    return tok_utf8_next((const unsigned char *)s + c, n - c, &cp) > 0 && tok_is_alnum(cp);
}

static bool starts_with_word(const char *s, size_t n) {
    int32_t cp;
    return n && tok_utf8_next((const unsigned char *)s, n, &cp) > 0 && tok_is_alnum(cp);
}

// Splits s[0..n) on the added tokens of `set` (indices into t->added, longest first) and appends the
// pieces to out (tokens as id pieces). `first`: s starts at offset 0 of the input.
static int split_added(const struct Tokenizer *t, const int *set, int nset, const unsigned char *firstmap,
                       bool normalized, const char *s, size_t n, bool first, TokPieces *out) {
    if (n == 0) return 0;
    if (nset == 0) return tokpieces_add(out, s, n, -1, first);
    const unsigned char *u = (const unsigned char *)s;
    size_t start_off = 0, pos = 0;
    int rc = 0;
    while (pos < n && !rc) {
        // leftmost-longest: the earliest position where some token matches, its longest token
        size_t mstart = n, mend = n;
        int hit = -1;
        for (size_t i = pos; i < n && hit < 0; i++) {
            if (!(firstmap[u[i] / 8] & (1u << (u[i] % 8)))) continue;
            for (int k = 0; k < nset; k++) {
                const TokAdded *a = &t->added[set[k]];
                const char *m = normalized ? a->norm : a->content;
                size_t ml = normalized ? a->normlen : a->len;
                if (ml <= n - i && (ml < 2 || m[1] == s[i + 1]) && memcmp(s + i, m, ml) == 0) {
                    hit = set[k], mstart = i, mend = i + ml;
                    break;
                }
            }
        }
        if (hit < 0) break;
        pos = mend;
        const TokAdded *a = &t->added[hit];
        size_t start = mstart, stop = mend;
        if (a->single_word) {
            bool sp0 = start == 0 || !ends_with_word(s, start);
            bool sp1 = stop == n || !starts_with_word(s + stop, n - stop);
            if (!sp0 || !sp1) continue;
        }
        if (a->lstrip) {   // swallow the whitespace before the token
            size_t ns = start;
            while (ns > 0) {
                size_t c = ns - 1;
                while (c > 0 && (u[c] & 0xC0) == 0x80) c--;
                int32_t cp;
                if (tok_utf8_next(u + c, ns - c, &cp) <= 0 || !tok_is_whitespace(cp)) break;
                ns = c;
            }
            start = ns > start_off ? ns : start_off;
        }
        if (a->rstrip)   // and after it
            while (stop < n) {
                int32_t cp;
                int k = tok_utf8_next(u + stop, n - stop, &cp);
                if (k <= 0 || !tok_is_whitespace(cp)) break;
                stop += (size_t)k;
            }
        if (start_off < start) rc = tokpieces_add(out, s + start_off, start - start_off, -1, first && start_off == 0);
        if (!rc) rc = tokpieces_add(out, "", 0, a->id, first && start == 0);
        start_off = stop;
    }
    if (!rc && start_off < n) rc = tokpieces_add(out, s + start_off, n - start_off, -1, first && start_off == 0);
    return rc;
}

static int encode_bytes(const struct Tokenizer *t, const TokPieces *pc, TokIds *out) {
    for (size_t i = 0; i < pc->n; i++) {
        if (pc->p[i].id >= 0) {
            if (tok_ids_push(out, pc->p[i].id)) return -1;
            continue;
        }
        const unsigned char *s = (const unsigned char *)pc->buf.p + pc->p[i].off;
        for (size_t k = 0; k < pc->p[i].len; k++)
            if (tok_ids_push(out, s[k])) return -1;
    }
    (void)t;
    return 0;
}

int tok_encode(const Tokenizer *t, const char *text, size_t len, bool add_special, TokIds *out) {
    if (!t || (!text && len)) return -1;
    TokBuf clean = {0}, norm = {0};
    TokPieces a = {0}, b = {0};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int rc = md ? 0 : -1;
    if (!rc && add_special)
        for (int i = 0; i < t->npre_ids && !rc; i++) rc = tok_ids_push(out, t->pre_ids[i]);
    // bytes that are not UTF-8 are read as tokenizers' callers would get them: U+FFFD
    if (!rc) rc = tok_utf8_valid(text, len) ? 0 : tok_utf8_lossy(&clean, text, len);
    const char *s = clean.p ? clean.p : text;
    size_t n = clean.p ? clean.n : len;
    // 1. added tokens matched on the raw text
    if (!rc) rc = split_added(t, t->raw_set, t->nraw, t->raw_first, false, s ? s : "", n, true, &a);
    // 2. normalize the other pieces, then match the normalized added tokens
    for (size_t i = 0; i < a.n && !rc; i++) {
        TokPiece *p = &a.p[i];
        if (p->id >= 0) {
            rc = tokpieces_add(&b, "", 0, p->id, p->first);
            continue;
        }
        const char *ps = a.buf.p + p->off;
        size_t pn = p->len;
        if (t->nnorms) {
            rc = tok_normalize(t->norms, t->nnorms, ps, pn, &norm, md);
            ps = norm.p ? norm.p : "", pn = norm.n;
        }
        if (!rc) rc = split_added(t, t->norm_set, t->nnorm, t->norm_first, true, ps, pn, p->first, &b);
    }
    // 3. pre-tokenizers, each over all pieces
    for (int k = 0; k < t->npres && !rc; k++) {
        tokpieces_clear(&a);
        rc = tok_pretokenize(t, &t->pres[k], &b, &a, md);
        TokPieces x = a;
        a = b;
        b = x;
    }
    // 4. the model
    if (!rc && t->model == TOK_MODEL_BYTES) rc = encode_bytes(t, &b, out);
    else
        for (size_t i = 0; i < b.n && !rc; i++) {
            if (b.p[i].id >= 0) rc = tok_ids_push(out, b.p[i].id);
            else rc = tok_bpe_word(t, b.buf.p + b.p[i].off, b.p[i].len, out);
        }
    // 5. post-processor
    if (!rc && add_special)
        for (int i = 0; i < t->npost_ids && !rc; i++) rc = tok_ids_push(out, t->post_ids[i]);
    pcre2_match_data_free(md);
    free(clean.p);
    free(norm.p);
    tokpieces_free(&a);
    tokpieces_free(&b);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// decoding

// The string tokenizers gives an id when decoding: an added token's (normalized) content, or the
// model's token. NULL when the id has neither.
static const char *id_string(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->nids) return NULL;
    int a = t->added_of_id[id];
    if (a >= 0) {
        *len = t->added[a].normlen;
        return t->added[a].norm;
    }
    if (t->id_len[id] == UINT32_MAX) return NULL;
    *len = t->id_len[id];
    return t->vocab.pool + t->id_off[id];
}

char *tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool skip_special, size_t *len) {
    if (!t) return NULL;
    TokPieces l = {0}, tmp = {0};
    TokBuf res = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (skip_special && tok_is_special(t, id)) continue;
        size_t sl;
        const char *s = id_string(t, id, &sl);
        if (s) rc = tokpieces_add(&l, s, sl, -1, false);
    }
    if (!rc && t->model == TOK_MODEL_BYTES) {
        TokBuf raw = {0};
        // (empty pieces skipped: l.buf.p is NULL when every piece is empty, and NULL + 0 is undefined)
        for (size_t i = 0; i < l.n && !rc; i++)
            if (l.p[i].len) rc = tokbuf_add(&raw, l.buf.p + l.p[i].off, l.p[i].len);
        if (!rc) rc = tok_utf8_lossy(&res, raw.p ? raw.p : "", raw.n);
        free(raw.p);
    } else if (!rc) {
        if (t->has_decoder) rc = tok_decode_chain(t, &l, &tmp);
        for (size_t i = 0; i < l.n && !rc; i++) {
            if (!t->has_decoder && i) rc = tokbuf_add(&res, " ", 1);
            if (!rc && l.p[i].len) rc = tokbuf_add(&res, l.buf.p + l.p[i].off, l.p[i].len);
        }
    }
    if (!rc) rc = tokbuf_add(&res, "", 0);   // make sure there is a buffer and a NUL
    tokpieces_free(&l);
    tokpieces_free(&tmp);
    if (rc) {
        free(res.p);
        return NULL;
    }
    if (len) *len = res.n;
    return res.p;
}

// ---------------------------------------------------------------------------------------------
// queries

int32_t tok_id(const Tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    size_t n = strlen(token);
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, token, n)) return t->added[i].id;
    return tokmap_get(&t->vocab, token, n);
}

const char *tok_token(const Tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->nids) return NULL;
    if (t->added_of_id[id] >= 0) return t->added[t->added_of_id[id]].content;
    return t->id_len[id] == UINT32_MAX ? NULL : t->vocab.pool + t->id_off[id];
}

int32_t tok_vocab_size(const Tokenizer *t) { return t ? t->nids : 0; }

bool tok_is_special(const Tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->nids && t->added_of_id[id] >= 0 && t->added[t->added_of_id[id]].special;
}

int32_t tok_bos_id(const Tokenizer *t) { return t && t->npre_ids > 0 ? t->pre_ids[0] : -1; }
