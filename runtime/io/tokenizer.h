// tokenizer.h — text ↔ token ids, identical to the Hugging Face `tokenizers` library.
// Loads tokenizer.json (byte-level BPE as in GPT-2/phi-2/Qwen2/Llama-3, and SentencePiece-style BPE
// with byte fallback as in Llama-2), or builds a plain byte tokenizer for models made from scratch.
// Does not: train tokenizers, handle WordPiece/Unigram models, apply chat templates (data/ does).
// A loaded Tokenizer is read-only after tok_load: encode/decode may run from several threads.
#ifndef TRLC_TOKENIZER_H
#define TRLC_TOKENIZER_H
#include "diag.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

// A growable id list. Zero-initialise ({0}); tok_encode appends; free with tok_ids_free.
typedef struct TokIds {
    int32_t *v;
    size_t n, cap;
} TokIds;

// Loads tokenizer.json. Returns NULL with diagnostics (path: error: ...) on any error,
// including unsupported model/normalizer/pre-tokenizer/decoder types.
Tokenizer *tok_load(Diag *d, const char *path);
// Same, from a JSON text already in memory; `name` is used in messages.
Tokenizer *tok_load_json(Diag *d, const char *name, const char *json, size_t len);
// Byte-level tokenizer for models from scratch: ids 0..255 = the bytes, then the specials
// 256 `<|bos|>`, 257 `<|eos|>`, 258 `<|pad|>`. add_special prepends <|bos|>. NULL only on OOM.
Tokenizer *tok_new_bytes(void);
void tok_free(Tokenizer *t);

// Encodes `len` bytes of UTF-8 text (need not be NUL-terminated) and APPENDS the ids to out.
// add_special: apply the post-processor (e.g. BOS for Llama, nothing for GPT-2/Qwen2).
// Added tokens appearing in the text (e.g. "<|im_start|>") are always recognised.
// Invalid UTF-8 is treated as the reference does (bytes replaced by U+FFFD before tokenizing).
// Returns 0, or nonzero on allocation failure or when a regex hits PCRE2's match limit (out keeps what
// was appended so far).
int tok_encode(const Tokenizer *t, const char *text, size_t len, bool add_special, TokIds *out);

// Decodes ids to a malloc'd NUL-terminated UTF-8 string (caller frees); *len (if non-NULL) gets
// its length. skip_special drops special added tokens. Ids out of range are skipped.
// Same text as tokenizers' decode, with one deliberate difference: tokenizers 0.23 does not skip
// special tokens whose normalized form differs (Llama-2's "<s>" prints as "▁<s>"); trlc skips them.
// Returns NULL only on allocation failure.
char *tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool skip_special, size_t *len);

// Vocabulary or added token string → id, or -1. Added tokens get the ids tokenizers gives them
// (their vocabulary id, else the next free id: for consistent files the id written in the file).
int32_t tok_id(const Tokenizer *t, const char *token);
// Id → token string as stored in the vocabulary (e.g. "Ġthe"), or NULL when out of range.
// The string belongs to the tokenizer.
const char *tok_token(const Tokenizer *t, int32_t id);
// One past the highest id (vocabulary plus added tokens).
int32_t tok_vocab_size(const Tokenizer *t);
// True when id is an added token marked "special".
bool tok_is_special(const Tokenizer *t, int32_t id);
// The BOS id the post-processor prepends (add_special), or -1 when it prepends none.
int32_t tok_bos_id(const Tokenizer *t);

void tok_ids_free(TokIds *ids);
// Appends one id; 0 ok, nonzero on allocation failure.
int tok_ids_push(TokIds *ids, int32_t id);

#endif
