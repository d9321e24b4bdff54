// gen.h — text generation with a KV cache: the model's lowered forward graph (tokens, pos →
// logits) is rewritten into a "decode" graph whose every causal attention reads a per-layer KV
// cache (held here, on the CPU) and hands back the new keys and values, so the prompt is run once
// (prefill) and then one token per call. Batched: rows may have different prompt lengths.
// Sampling (sample.c): greedy, temperature, top-k, top-p as transformers' warpers; seeded.
// Generation-based evaluation (eval.c): final-number extraction (GSM8K `#### 18`) and exact match.
// Not here: the chat template (runtime/io/chat.h), training, GPU execution.
#ifndef TRLC_GEN_H
#define TRLC_GEN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arena.h"
#include "diag.h"
#include "hfconfig.h"
#include "ir.h"
#include "rng.h"
#include "tokenizer.h"

// A parameter's float32 values by name (HF path, e.g. "model.norm.weight"; LoRA params
// "<module>.lora_A.weight"); NULL when unknown. *numel gets its element count.
typedef float *(*GenParamFn)(void *ctx, const char *name, int64_t *numel);

typedef struct GenModel GenModel;

// From a forward graph g: inputs "tokens" and "pos" (B, T) i32, output "logits" (B, T, V), LoRA
// already applied, no dropout. g must outlive the model and stay unchanged; the parameter
// buffers get() returns must stay valid (they are read, never written). NULL after reporting.
GenModel *gen_model_from_graph(Diag *d, const IrGraph *g, GenParamFn get, void *ctx);
// From a Hugging Face model directory (config.json, safetensors weights, tokenizer.json when
// present) with an optional PEFT LoRA adapter directory applied on top (adapter_dir may be NULL).
// NULL after reporting.
GenModel *gen_model_open(Diag *d, const char *model_dir, const char *adapter_dir);
// The policy of a checked spec compiled as the trainer compiles its evaluation graph (lowered
// forward, LoRA without dropout; quantized models are refused), its parameters read through get
// (e.g. the Trainer's tr_param: the buffers it trains, read at every generate call).
struct LoadedSpec;
struct CheckedSpec;
GenModel *gen_model_from_spec(Diag *d, Arena *a, struct LoadedSpec *spec, const struct CheckedSpec *cs,
                              GenParamFn get, void *ctx);
void gen_model_free(GenModel *m);
const Tokenizer *gen_model_tokenizer(const GenModel *m);   // NULL when the directory has none
const HfConfig *gen_model_config(const GenModel *m);      // NULL for gen_model_from_graph
int64_t gen_model_vocab(const GenModel *m);
// Lends a tokenizer (for stop strings and evaluation) to a model made by gen_model_from_graph; it
// must outlive the model.
void gen_model_set_tokenizer(GenModel *m, const Tokenizer *tok);
// Adds an end-of-sequence id (e.g. the data set's) to those gen_model_eos returns.
void gen_model_add_eos(GenModel *m, int32_t id);
Diag *gen_model_diag(GenModel *m);                         // where the model reports
// The end-of-sequence ids of the model directory (generation_config.json's eos_token_id, else
// config.json's); returns how many were written to ids (at most cap).
int gen_model_eos(const GenModel *m, int32_t *ids, int cap);

#define GEN_MAX_STOP 16

typedef struct GenOptions {
    int max_new;                // new tokens per row at most (default 64)
    bool sample;                // false: greedy (argmax; temperature/top-k/top-p ignored)
    double temperature;         // > 0 (default 1)
    int top_k;                  // 0: off
    double top_p;               // 1: off
    uint64_t seed;
    int32_t stop_ids[GEN_MAX_STOP];     // EOS / end-of-turn ids: the row stops after emitting one
    int nstop_ids;
    const char *stop_strings[GEN_MAX_STOP];  // the row stops once its decoded text contains one
    int nstop_strings;                        // (needs the model's tokenizer)
    bool no_cache;              // re-run the whole forward for every token (the reference path)
} GenOptions;
void gen_options_init(GenOptions *o);

typedef struct GenResult {
    int B;
    int32_t **ids;              // ids[b]: the generated tokens (a stop id included), len[b] of them
    int *len;
} GenResult;
void gen_result_free(GenResult *r);

// Generates for B prompts (prompts[b]: plens[b] >= 1 token ids) at once. Returns 0, or -1 after
// reporting (bad ids, out of memory, a runtime error).
int gen_generate(GenModel *m, const int32_t *const *prompts, const int *plens, int B, const GenOptions *o,
                 GenResult *out);

// A conversation's cache kept between calls (e.g. `trlc chat`): each call takes the whole prompt
// so far (one row), reuses the cached keys and values of the longest prefix it shares with the
// previous call's prompt and output, and computes the rest. Same ids as gen_generate.
typedef struct GenSession GenSession;
GenSession *gen_session_new(GenModel *m);          // NULL after reporting (out of memory)
void gen_session_free(GenSession *s);
int gen_session_generate(GenSession *s, const int32_t *prompt, int plen, const GenOptions *o, GenResult *out);
int gen_session_cached(const GenSession *s);       // tokens whose keys and values are cached

// --- sampling (sample.c) ---
// In place on logits (V): divides by temperature, then keeps the top_k largest (ties at the k-th
// value kept, as torch.topk's threshold), then the smallest set whose softmax mass exceeds top_p
// (transformers' TopPLogitsWarper, always keeping one); the rest become -inf.
void gen_warp(float *logits /* (V) */, int64_t V, double temperature, int top_k, double top_p);
// argmax (the first of equal maxima, as torch.argmax).
int32_t gen_argmax(const float *logits /* (V) */, int64_t V);
// Greedy, or a draw from softmax(warped logits) with rng. logits is modified.
int32_t gen_pick(float *logits /* (V) */, int64_t V, const GenOptions *o, Rng *rng);

// --- generation-based evaluation (eval.c) ---
// The final number of a response: the text after the last `####` when present, else the whole
// text; its last number, normalised (commas dropped, a leading `+` and trailing zeros of a
// fraction removed: "1,234.50" → "1234.5", "18.0" → "18"). Returns false when there is none.
bool gen_extract_number(const char *text, char *out, size_t cap);
// True when response and answer name the same final number (prompt_answer data).
bool gen_answer_matches(const char *response, const char *answer);

// Greedy generation for n eval prompts in batches of `batch`, compared with the references:
// numbers when numeric and the answer holds one (prompt_answer: gen_answer_matches), else the
// whole decoded response (exact match after trimming whitespace). Stops at the model's eos ids.
// *accuracy = matches / n.
int gen_eval_exact_match(GenModel *m, const int32_t *const *prompts, const int *plens,
                         const char *const *answers, int n, bool numeric, int max_new, int batch,
                         double *accuracy);

// The same over every row of an evaluation data set (ds_get order) — what the trainer's
// evaluation calls. Each example's prompt is its tokens before the first learned label; the
// reference is its answer (prompt_answer: final numbers compared) or else its learned tokens
// decoded, a final end-of-sequence token dropped (exact match of the trimmed text). Rows with no
// learned token and no answer are skipped. max_new <= 0: 256. *correct / *total get the counts.
struct DsLoader;
int gen_eval_dataset(GenModel *m, struct DsLoader *eval, int max_new, int batch, long *correct, long *total);

#endif
