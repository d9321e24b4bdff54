// tok_bpe.c — the BPE model of tokenizers: one pre-token → ids. Starts with one symbol per character
// (vocabulary lookup, <0xNN> byte fallback, unk with optional fusing), then repeatedly applies the
// lowest-rank merge (leftmost on ties) from a binary min-heap, exactly as tokenizers' Word::merge_all
// does, including its handling of stale heap entries. O(n log n) per word. No dropout.
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

int32_t tok_merge_get(const struct Tokenizer *t, int32_t a, int32_t b, int32_t *new_id) {
    if (!t->nmerge_slots) return -1;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = t->nmerge_slots - 1, j = mix64(key) & mask;
    while (t->merges[j].key != UINT64_MAX) {
        if (t->merges[j].key == key) {
            *new_id = t->merges[j].new_id;
            return t->merges[j].rank;
        }
        j = (j + 1) & mask;
    }
    return -1;
}

// The table is sized by the loader (tokenizer.c) to at least twice the number of merges.
int tok_merge_put(struct Tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = t->nmerge_slots - 1, j = mix64(key) & mask;
    while (t->merges[j].key != UINT64_MAX && t->merges[j].key != key) j = (j + 1) & mask;
    t->merges[j] = (TokMerge){key, rank, new_id};   // a repeated pair: the later line wins
    return 0;
}

typedef struct Sym {
    int32_t c;            // token id
    int32_t prev, next;   // neighbours, -1 at the ends
    uint32_t len;         // bytes covered; 0 = merged away
} Sym;

typedef struct Merge {
    int32_t rank, pos, new_id;
} Merge;

static bool merge_less(Merge a, Merge b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static void heap_push(Merge *h, size_t *n, Merge m) {
    size_t i = (*n)++;
    h[i] = m;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(h[i], h[p])) break;
        Merge x = h[i];
        h[i] = h[p];
        h[p] = x;
        i = p;
    }
}

static Merge heap_pop(Merge *h, size_t *n) {
    Merge top = h[0];
    h[0] = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && merge_less(h[l], h[m])) m = l;
        if (r < *n && merge_less(h[r], h[m])) m = r;
        if (m == i) break;
        Merge x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
    return top;
}

static void sym_add(Sym *sy, size_t *n, int32_t c, uint32_t len) {
    size_t i = (*n)++;
    sy[i] = (Sym){c, i ? (int32_t)i - 1 : -1, -1, len};
    if (i) sy[i - 1].next = (int32_t)i;
}

// A small per-thread cache of short words → ids (direct-mapped), keyed by the tokenizer's serial so
// that tokenizers never see each other's entries. Per thread, so encoding stays lock-free.
enum { CACHE_SLOTS = 1024, CACHE_KEY = 22, CACHE_IDS = 8 };
typedef struct CacheEntry {
    uint64_t serial;   // 0 = empty
    uint8_t klen, nids;
    char key[CACHE_KEY];
    int32_t ids[CACHE_IDS];
} CacheEntry;
static _Thread_local CacheEntry bpe_cache[CACHE_SLOTS];

static uint32_t word_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int bpe_word(const struct Tokenizer *t, const char *s, size_t n, TokIds *out);

int tok_bpe_word(const struct Tokenizer *t, const char *s, size_t n, TokIds *out) {
    if (n == 0) return 0;
    if (n > CACHE_KEY) return bpe_word(t, s, n, out);
    CacheEntry *e = &bpe_cache[(word_hash(s, n) ^ (uint32_t)t->serial) % CACHE_SLOTS];
    if (e->serial == t->serial && e->klen == n && !memcmp(e->key, s, n)) {
        for (int i = 0; i < e->nids; i++)
            if (tok_ids_push(out, e->ids[i])) return -1;
        return 0;
    }
    size_t before = out->n;
    if (bpe_word(t, s, n, out)) return -1;
    if (out->n - before <= CACHE_IDS) {
        e->serial = t->serial;
        e->klen = (uint8_t)n;
        e->nids = (uint8_t)(out->n - before);
        memcpy(e->key, s, n);
        if (out->n > before)   // a word may give no ids (out->v still NULL): NULL + 0 is undefined
            memcpy(e->ids, out->v + before, (out->n - before) * sizeof *e->ids);
    }
    return 0;
}

static int bpe_word(const struct Tokenizer *t, const char *s, size_t n, TokIds *out) {
    if (t->ignore_merges) {
        int32_t id = tokmap_get(&t->vocab, s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (n > (size_t)INT32_MAX / 8) return -1;
    Sym stack_sym[64];
    Merge stack_heap[3 * 64 + 8];
    // A k-byte character becomes at most k symbols; each merge pushes at most 2 heap entries.
    size_t maxsym = n, maxheap = 3 * maxsym + 8;
    Sym *sy = maxsym <= 64 ? stack_sym : malloc(maxsym * sizeof *sy);
    Merge *heap = maxsym <= 64 ? stack_heap : malloc(maxheap * sizeof *heap);
    if (!sy || !heap) {
        if (sy != stack_sym) free(sy);
        if (heap != stack_heap) free(heap);
        return -1;
    }
    size_t nsym = 0;
    const unsigned char *u = (const unsigned char *)s;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = tok_utf8_next(u + i, n - i, &cp);
        if (k <= 0) k = 1;   // cannot happen on valid UTF-8; treat the byte as one character
        int32_t id = tokmap_get(&t->vocab, s + i, (size_t)k);
        if (id >= 0) {
            if (unk >= 0) sym_add(sy, &nsym, unk, unk_len), unk = -1;
            sym_add(sy, &nsym, id, (uint32_t)k);
        } else {
            bool done = false;
            if (t->byte_fallback) {
                done = true;
                for (int j = 0; j < k; j++)
                    if (t->byte_ids[u[i + j]] < 0) done = false;
                if (done)
                    for (int j = 0; j < k; j++) sym_add(sy, &nsym, t->byte_ids[u[i + j]], 1);
            }
            if (!done && t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) unk_len += (uint32_t)k;
                else {
                    if (unk >= 0) sym_add(sy, &nsym, unk, unk_len);
                    unk = t->unk_id;
                    unk_len = (uint32_t)k;
                }
            }
        }
        i += (size_t)k;
    }
    if (unk >= 0) sym_add(sy, &nsym, unk, unk_len);

    size_t nh = 0;
    for (size_t i = 0; i + 1 < nsym; i++) {
        int32_t nid, r = tok_merge_get(t, sy[i].c, sy[i + 1].c, &nid);
        if (r >= 0) heap_push(heap, &nh, (Merge){r, (int32_t)i, nid});
    }
    while (nh) {
        Merge top = heap_pop(heap, &nh);
        Sym *cur = &sy[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t rpos = cur->next;
        Sym right = sy[rpos];
        int32_t nid;
        if (tok_merge_get(t, cur->c, right.c, &nid) < 0 || nid != top.new_id) continue;   // stale
        cur->c = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        sy[rpos].len = 0;
        if (right.next >= 0) sy[right.next].prev = top.pos;
        if (cur->prev >= 0) {
            int32_t r = tok_merge_get(t, sy[cur->prev].c, cur->c, &nid);
            if (r >= 0) heap_push(heap, &nh, (Merge){r, cur->prev, nid});
        }
        if (cur->next >= 0) {
            int32_t r = tok_merge_get(t, cur->c, sy[cur->next].c, &nid);
            if (r >= 0) heap_push(heap, &nh, (Merge){r, top.pos, nid});
        }
    }
    size_t rc = 0;
    for (size_t i = 0; i < nsym && !rc; i++)
        if (sy[i].len) rc = (size_t)tok_ids_push(out, sy[i].c);
    if (sy != stack_sym) free(sy);
    if (heap != stack_heap) free(heap);
    return rc ? -1 : 0;
}
