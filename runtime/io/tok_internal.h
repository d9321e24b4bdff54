// tok_internal.h — the insides of a Tokenizer, shared by the tok_*.c files only (not public API).
// tokenizer.c loads tokenizer.json and runs the pipeline; tok_util.c has the string map, UTF-8 and
// piece lists; tok_norm.c the normalizers; tok_pretok.c the pre-tokenizers; tok_bpe.c the BPE model;
// tok_decode.c the decoders.
#ifndef TRLC_TOK_INTERNAL_H
#define TRLC_TOK_INTERNAL_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// --- string → int32 hash map (keys copied into an owned pool) ---
typedef struct TokMap {
    char *pool;              // all keys back to back
    size_t pool_len, pool_cap;
    uint32_t *off, *len;     // (n) key position in pool
    int32_t *val;            // (n)
    size_t n, cap;
    uint32_t *slot;          // (nslot) entry index + 1, 0 = empty; nslot a power of two
    size_t nslot;
} TokMap;

int tokmap_put(TokMap *m, const char *k, size_t len, int32_t v);   // inserts or overwrites; 0 ok
int32_t tokmap_get(const TokMap *m, const char *k, size_t len);     // -1 when absent
void tokmap_free(TokMap *m);

// --- growable byte buffer ---
typedef struct TokBuf {
    char *p;
    size_t n, cap;
} TokBuf;
int tokbuf_add(TokBuf *b, const void *s, size_t n);   // 0 ok, -1 on OOM
int tokbuf_reserve(TokBuf *b, size_t extra);

// --- a list of text pieces (split results), texts stored in one buffer ---
typedef struct TokPiece {
    size_t off, len;   // bytes in the list's buffer
    int32_t id;        // >= 0: an added token already resolved (no text needed)
    bool first;        // starts at original offset 0 (Metaspace prepend_scheme "first")
} TokPiece;
typedef struct TokPieces {
    TokPiece *p;
    size_t n, cap;
    TokBuf buf;
} TokPieces;
int tokpieces_add(TokPieces *l, const char *s, size_t len, int32_t id, bool first);
void tokpieces_clear(TokPieces *l);
void tokpieces_free(TokPieces *l);

// --- UTF-8 ---
// Decodes one code point at s[0..n) (n >= 1). Returns its length (1..4) and sets *cp, or returns
// -k (k >= 1) for an invalid sequence whose maximal valid prefix is k bytes (Rust's lossy rule).
int tok_utf8_next(const unsigned char *s, size_t n, int32_t *cp);
int tok_utf8_put(int32_t cp, char *out);   // writes 1..4 bytes
// Appends s to b with each invalid sequence replaced by U+FFFD (String::from_utf8_lossy).
int tok_utf8_lossy(TokBuf *b, const char *s, size_t n);
bool tok_utf8_valid(const char *s, size_t n);
bool tok_is_whitespace(int32_t cp);   // Unicode White_Space (Rust char::is_whitespace)
bool tok_is_alnum(int32_t cp);        // Rust char::is_alphanumeric (L* or N*)

// --- normalizers ---
typedef enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_PREPEND, NORM_REPLACE, NORM_STRIP,
               NORM_LOWERCASE, NORM_STRIP_ACCENTS } TokNormKind;
typedef struct TokNorm {
    TokNormKind kind;
    char *a; size_t alen;        // PREPEND: text; REPLACE: literal pattern (when re == NULL)
    char *b; size_t blen;        // REPLACE: content
    pcre2_code *re;              // REPLACE with a Regex pattern
    bool left, right;            // STRIP
} TokNorm;
// Applies the normalizers in order to s[0..n), result in out (cleared first). 0 ok, -1 OOM.
int tok_normalize(const TokNorm *steps, int nsteps, const char *s, size_t n, TokBuf *out,
                  pcre2_match_data *md);

// --- pre-tokenizers ---
typedef enum { PRE_BYTELEVEL, PRE_SPLIT, PRE_METASPACE, PRE_DIGITS, PRE_WHITESPACE_SPLIT } TokPreKind;
typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT,
               SPLIT_CONTIGUOUS } TokSplitBehavior;
typedef enum { PREPEND_ALWAYS, PREPEND_NEVER, PREPEND_FIRST } TokPrepend;
typedef struct TokPre {
    TokPreKind kind;
    bool add_prefix_space, use_regex;   // BYTELEVEL
    pcre2_code *re;                     // SPLIT (regex or escaped string); BYTELEVEL use_regex
    TokSplitBehavior behavior;          // SPLIT
    bool invert;                        // SPLIT
    char rep[8]; int replen;            // METASPACE replacement (UTF-8)
    TokPrepend prepend;                 // METASPACE
    bool split;                         // METASPACE
    bool individual_digits;             // DIGITS
} TokPre;
// Runs one pre-tokenizer over every text piece of in, appending the results to out.
int tok_pretokenize(const struct Tokenizer *t, const TokPre *p, const TokPieces *in, TokPieces *out,
                    pcre2_match_data *md);

// --- decoders ---
typedef enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE }
    TokDecKind;
typedef struct TokDec {
    TokDecKind kind;
    char *a; size_t alen;     // REPLACE pattern; METASPACE replacement
    char *b; size_t blen;     // REPLACE content
    int32_t ch;               // STRIP content character
    int start, stop;          // STRIP counts
    TokPrepend prepend;       // METASPACE
} TokDec;
// Runs the decoder chain over the token strings in *l (in place, may swap buffers).
int tok_decode_chain(const struct Tokenizer *t, TokPieces *l, TokPieces *tmp);

// --- the tokenizer ---
typedef struct TokAdded {
    char *content; size_t len;     // as in the file
    char *norm; size_t normlen;    // normalized content (matching text for `normalized` tokens)
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} TokAdded;

typedef struct TokMerge {
    uint64_t key;                  // (left id << 32) | right id; UINT64_MAX = empty slot
    int32_t rank, new_id;
} TokMerge;

enum { TOK_MODEL_BPE, TOK_MODEL_BYTES };

struct Tokenizer {
    int model;
    uint64_t serial;               // unique per tokenizer: keys the per-thread BPE cache
    // vocabulary (model) and id → string
    TokMap vocab;
    int32_t nids;                  // one past the highest id (model + added)
    uint32_t *id_off, *id_len;     // (nids) into vocab.pool; id_len UINT32_MAX = no model token
    // BPE
    TokMerge *merges;              // open addressing, nmerge_slots a power of two
    size_t nmerge_slots;
    int32_t unk_id;                // -1 none
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_ids[256];         // <0xNN> ids for byte fallback (-1 absent)
    // added tokens; match sets are index lists sorted longest first
    TokAdded *added;
    int nadded;
    int *raw_set, nraw;            // non-normalized tokens, matched before normalization
    int *norm_set, nnorm;          // normalized tokens, matched after
    unsigned char raw_first[32], norm_first[32];   // bitmaps of possible first bytes
    int32_t *added_of_id;          // (nids) index into added, or -1
    // pipeline
    TokNorm *norms; int nnorms;
    TokPre *pres; int npres;
    TokDec *decs; int ndecs;
    bool has_decoder;
    int32_t *pre_ids, *post_ids; int npre_ids, npost_ids;   // post-processor, single sequence
    // ByteLevel tables
    int32_t byte_char[256];        // byte → code point (GPT-2 bytes_to_unicode)
    int16_t char_byte[324];        // code point → byte, -1 when unmapped
};

// BPE: tokenizes one pre-token (already byte-mapped where relevant), appending ids.
int tok_bpe_word(const struct Tokenizer *t, const char *s, size_t n, TokIds *out);
int32_t tok_merge_get(const struct Tokenizer *t, int32_t a, int32_t b, int32_t *new_id);
int tok_merge_put(struct Tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t new_id);
void tok_bytelevel_tables(struct Tokenizer *t);

#endif
