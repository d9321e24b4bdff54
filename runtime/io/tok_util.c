// tok_util.c — small containers and UTF-8 helpers for the tokenizer: a string→id hash map, a byte
// buffer, piece lists, lossy UTF-8 decoding (as Rust's String::from_utf8_lossy), the GPT-2
// bytes_to_unicode tables. No tokenization logic lives here.
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// ---------------------------------------------------------------------------------------------
// byte buffer

int tokbuf_reserve(TokBuf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->n) return -1;
    size_t need = b->n + extra + 1;   // keep room for a NUL terminator
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tokbuf_add(TokBuf *b, const void *s, size_t n) {
    if (tokbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// pieces

int tokpieces_add(TokPieces *l, const char *s, size_t len, int32_t id, bool first) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof(TokPiece)) return -1;
        TokPiece *p = realloc(l->p, cap * sizeof *p);
        if (!p) return -1;
        l->p = p;
        l->cap = cap;
    }
    size_t off = l->buf.n;
    if (len && tokbuf_add(&l->buf, s, len)) return -1;
    l->p[l->n++] = (TokPiece){off, len, id, first};
    return 0;
}

void tokpieces_clear(TokPieces *l) {
    l->n = 0;
    l->buf.n = 0;
}

void tokpieces_free(TokPieces *l) {
    free(l->p);
    free(l->buf.p);
    memset(l, 0, sizeof *l);
}

// ---------------------------------------------------------------------------------------------
// string map (FNV-1a, linear probing)

static uint32_t hash_bytes(const char *k, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

static int map_grow_slots(TokMap *m) {
    size_t ns = m->nslot ? m->nslot * 2 : 64;
    if (ns > SIZE_MAX / sizeof(uint32_t)) return -1;
    uint32_t *slot = calloc(ns, sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = hash_bytes(m->pool + m->off[i], m->len[i]) & (ns - 1);
        while (slot[j]) j = (j + 1) & (ns - 1);
        slot[j] = (uint32_t)i + 1;
    }
    free(m->slot);
    m->slot = slot;
    m->nslot = ns;
    return 0;
}

int32_t tokmap_get(const TokMap *m, const char *k, size_t len) {
    if (!m->nslot) return -1;
    size_t j = hash_bytes(k, len) & (m->nslot - 1);
    while (m->slot[j]) {
        uint32_t e = m->slot[j] - 1;
        if (m->len[e] == len && memcmp(m->pool + m->off[e], k, len) == 0) return m->val[e];
        j = (j + 1) & (m->nslot - 1);
    }
    return -1;
}

int tokmap_put(TokMap *m, const char *k, size_t len, int32_t v) {
    if (len > UINT32_MAX / 2 || m->n >= UINT32_MAX / 2) return -1;
    if (m->nslot) {
        size_t j = hash_bytes(k, len) & (m->nslot - 1);
        while (m->slot[j]) {
            uint32_t e = m->slot[j] - 1;
            if (m->len[e] == len && memcmp(m->pool + m->off[e], k, len) == 0) {
                m->val[e] = v;
                return 0;
            }
            j = (j + 1) & (m->nslot - 1);
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        uint32_t *off = realloc(m->off, cap * sizeof *off);
        if (!off) return -1;
        m->off = off;
        uint32_t *ln = realloc(m->len, cap * sizeof *ln);
        if (!ln) return -1;
        m->len = ln;
        int32_t *val = realloc(m->val, cap * sizeof *val);
        if (!val) return -1;
        m->val = val;
        m->cap = cap;
    }
    if (m->pool_len + len + 1 > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap < m->pool_len + len + 1) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        char *p = realloc(m->pool, cap);
        if (!p) return -1;
        m->pool = p;
        m->pool_cap = cap;
    }
    if (len) memcpy(m->pool + m->pool_len, k, len);
    m->pool[m->pool_len + len] = 0;   // keys stay NUL-terminated for printing
    m->off[m->n] = (uint32_t)m->pool_len;
    m->len[m->n] = (uint32_t)len;
    m->val[m->n] = v;
    m->pool_len += len + 1;
    m->n++;
    if (m->n * 2 > m->nslot) return map_grow_slots(m);
    size_t j = hash_bytes(k, len) & (m->nslot - 1);
    while (m->slot[j]) j = (j + 1) & (m->nslot - 1);
    m->slot[j] = (uint32_t)m->n;
    return 0;
}

void tokmap_free(TokMap *m) {
    free(m->pool);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// UTF-8

static bool cont(unsigned char c) { return (c & 0xC0) == 0x80; }

int tok_utf8_next(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return -1;
    if (n < 2 || s[1] < lo || s[1] > hi) return -1;
    for (int i = 2; i <= need; i++)
        if ((size_t)i >= n || !cont(s[i])) return -i;
    int32_t v = need == 1 ? (c & 0x1F) : need == 2 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i <= need; i++) v = (v << 6) | (s[i] & 0x3F);
    *cp = v;
    return need + 1;
}

int tok_utf8_put(int32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool tok_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        int k = tok_utf8_next(u + i, n - i, &cp);
        if (k < 0) return false;
        i += (size_t)k;
    }
    return true;
}

int tok_utf8_lossy(TokBuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (tokbuf_reserve(b, n)) return -1;
    size_t i = 0, run = 0;   // run: start of the current valid stretch
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        int k = tok_utf8_next(u + i, n - i, &cp);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (tokbuf_add(b, s + run, i - run) || tokbuf_add(b, "\xEF\xBF\xBD", 3)) return -1;
        i += (size_t)(-k);
        run = i;
    }
    return tokbuf_add(b, s + run, n - run);
}

bool tok_is_whitespace(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

bool tok_is_alnum(int32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    utf8proc_category_t k = utf8proc_category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 + n in order.
void tok_bytelevel_tables(struct Tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 324; i++) t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int32_t cp = keep ? b : 256 + n++;
        t->byte_char[b] = cp;
        t->char_byte[cp] = (int16_t)b;
    }
}
