// dataset.h — training data: reads JSONL (streamed), JSON (array or {"data": [...]}) and CSV (header
// row) files, checks every row once at open (bad rows → `file:line: error`, or skipped and counted
// with skip_errors), turns rows into token ids with a trainable mask through a chat template, and
// hands the trainer batches: truncation, optional packing, seeded shuffling per epoch, and a
// resumable (epoch, index) position.
// Formats: text | prompt_response | messages | preference | prompt_answer (see DsFormat).
// Does not: download datasets, read parquet/arrow, tokenize in background threads, or split a long
// document across several packed rows (it is truncated instead).
#ifndef TRLC_DATASET_H
#define TRLC_DATASET_H
#include "chat.h"
#include "diag.h"
#include "tokenizer.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { DS_IGNORE = -100 };   // target of a position that is not learned (as PyTorch's ignore_index)

typedef enum DsFileType { DS_FILE_AUTO, DS_FILE_JSONL, DS_FILE_JSON, DS_FILE_CSV } DsFileType;

typedef enum DsFormat {
    DS_TEXT,             // {"text"}: every token learned (pretraining); EOS appended
    DS_PROMPT_RESPONSE,  // {"prompt","response"} (also instruction/input/output, prompt/completion,
                         // question/answer); optional "system"
    DS_MESSAGES,         // {"messages": [{"role","content"}...]} (also ShareGPT conversations/from/value)
    DS_PREFERENCE,       // {"prompt","chosen","rejected"}: chosen/rejected strings or message lists
    DS_PROMPT_ANSWER,    // {"question","answer"} (GSM8K): prompt ids + the final answer after "#### "
} DsFormat;

typedef enum DsTruncate {
    DS_TRUNC_RIGHT,      // keep the first max_len tokens (the default, as HF truncation_side="right")
    DS_TRUNC_LEFT,       // keep the last max_len tokens (keeps the response of long prompts)
} DsTruncate;

// Column names. NULL = the defaults, tried in order:
//   text: text | prompt: prompt, instruction, question | input: input |
//   response: response, completion, output, answer | system: system |
//   messages: messages, conversations | chosen: chosen | rejected: rejected |
//   answer (prompt_answer): answer.  A name given here is the only one tried.
typedef struct DsFields {
    const char *text, *prompt, *input, *response, *system, *messages, *chosen, *rejected, *answer;
} DsFields;

typedef struct DsConfig {
    const char *path;
    DsFileType type;            // AUTO: from the extension (.jsonl/.json/.csv)
    DsFormat format;
    DsFields fields;
    const ChatTemplate *tmpl;   // NULL = plain concatenation (copied at open)
    int max_len;                // tokens per sequence; 0 = unlimited (packing needs max_len > 0)
    DsTruncate truncate;
    bool pack;                  // concatenate examples into rows of max_len (text/prompt_response/messages)
    bool mask_prompt;           // true: only trainable spans are targets (SFT); false: every token
    bool shuffle;
    uint64_t seed;
    int epochs;                 // 0 → 1
    bool skip_errors;           // on_error = skip: bad rows are skipped and counted, not fatal
    size_t max_file_bytes;      // JSON/CSV are loaded whole; larger files are refused (0 → 1 GiB)
    size_t max_line_bytes;      // JSONL: longest accepted line; JSON / CSV: most text in one row
                                // (0 → 64 MiB)
    int32_t eos_id;             // -1: detect (<|endoftext|>, </s>, <|end_of_text|>, <|eos|>); else an
                                // id of the tokenizer (not checked); PLAIN/FORMAT templates end
                                // responses with its text only when it is a special token
    int32_t pad_id;             // -1: eos, else 0
} DsConfig;

// "text" | "prompt_response" | "messages" | "preference" | "prompt_answer" → *out; nonzero when
// unknown. ds_format_name is the inverse.
int ds_format_parse(const char *name, DsFormat *out);
const char *ds_format_name(DsFormat f);

// Defaults: JSONL-by-extension, prompt_response, mask_prompt, seed 0, 1 epoch, ids detected.
void ds_config_init(DsConfig *c);

typedef struct DsLoader DsLoader;

// One tokenized example (ds_get). labels[i] = ids[i] where learned, DS_IGNORE elsewhere.
typedef struct DsExample {
    int32_t *ids, *labels;          // (n)
    size_t n;
    int32_t *rej_ids, *rej_labels;  // (rej_n) preference: the rejected sequence
    size_t rej_n;
    char *answer;                   // prompt_answer: the final answer (after "#### "), else NULL
    long line;                      // 1-based line of the row in the file
    bool truncated;
} DsExample;

// A batch. Rows are right-padded with pad_id to T. Packed rows hold several sequences.
// preference: rows [0, B/2) are chosen, [B/2, B) the rejected of the same pairs (n_examples = B/2).
typedef struct DsBatch {
    int B, T;
    int32_t *tokens;     // (B, T)
    int32_t *targets;    // (B, T) the token to predict at t (= tokens[t+1]), or DS_IGNORE: the loss
                         // is CE(logits[b, t], targets[b, t]) over targets != DS_IGNORE. Never crosses
                         // a packed-sequence boundary or into padding.
    int32_t *positions;  // (B, T) position ids; restart at 0 for each packed sequence; 0 on padding
    int32_t *seq_id;     // (B, T) sequence number within the row (0, 1, ...), -1 on padding: attend
                         // only where seq_id[q] == seq_id[k] (and k <= q)
    int32_t *lengths;    // (B) non-padding tokens per row
    long n_targets;      // targets != DS_IGNORE
    int n_examples;      // dataset rows in this batch
    char **answers;      // (B) prompt_answer: the final answers, else NULL entries
    size_t cap;          // allocated B*T
    int capB;
} DsBatch;

typedef struct DsStats {
    size_t rows;         // valid rows (examples per epoch)
    size_t skipped;      // bad rows skipped (skip_errors)
    size_t truncated;    // examples truncated so far (each counted once per read)
    size_t emptied;      // ... of which truncation removed every target (nothing left to learn;
                         // the first gives a warning)
    size_t tokens;       // tokens delivered so far (without padding)
} DsStats;

// Opens and checks the whole file (streaming for JSONL). NULL with diagnostics on any error
// (unless skip_errors, when bad rows are skipped and counted; zero valid rows is still an error).
DsLoader *ds_open(Diag *d, const DsConfig *cfg, const Tokenizer *tok);
void ds_close(DsLoader *l);

size_t ds_num_rows(const DsLoader *l);
DsStats ds_stats(const DsLoader *l);
// The pad and eos ids in use.
int32_t ds_pad_id(const DsLoader *l);
int32_t ds_eos_id(const DsLoader *l);

// Tokenizes valid row i (0-based, file order, no shuffling) into ex (free with ds_example_free).
// Returns 0, or nonzero with a diagnostic.
int ds_get(DsLoader *l, size_t i, DsExample *ex);
void ds_example_free(DsExample *ex);

// Fills out with up to `batch` examples (2*batch rows for preference; packed rows for pack).
// Returns the number of rows (> 0), 0 when all epochs are done, -1 on error (diagnosed).
// out is reused between calls (zero-initialise it once; free with ds_batch_free).
int ds_next_batch(DsLoader *l, int batch, DsBatch *out);
void ds_batch_free(DsBatch *b);

// The number of batches ds_next_batch returns over all epochs from the start, for LR schedules.
// Without packing: ceil(rows * epochs / batch) (batches run on across epoch ends). With packing it
// depends on the token lengths: every row is tokenized once (the lengths are kept, 4 bytes per
// row) and the packing of each epoch's order is simulated. -1 on error (diagnosed).
int64_t ds_count_batches(DsLoader *l, int batch);

// Where the next batch starts: epoch (0-based) and index into that epoch's (shuffled) order.
void ds_position(const DsLoader *l, int *epoch, size_t *index);
// Resumes at a position from ds_position. Nonzero (diagnosed) when out of range.
int ds_seek(DsLoader *l, int epoch, size_t index);

// The final answer of a GSM8K solution: the text after the last "#### ", trimmed, commas removed
// from numbers ("1,234" → "1234"). NULL when there is no "#### ". Caller frees.
char *ds_gsm8k_answer(const char *solution, size_t len);

#endif
