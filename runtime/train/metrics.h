// metrics.h — what the trainer reports while it runs: RUN/metrics.jsonl (one JSON object per log
// line: {"step": 120, "loss": 1.2345, "lr": 0.00019, "grad_norm": 0.8, "tokens_per_s": 12345,
// "elapsed": 61.2, ...}; NaN/Inf are written as null, since JSON has no such numbers), the progress
// line `step 120/1000  loss 1.2345  lr 1.9e-04  12,345 tok/s  ETA 3:21` (redrawn in place with \r
// when the stream is a terminal, one plain line per call when piped), a monotonic clock and a
// non-finite loss check, tokens/s and ETA. Does not: write TensorBoard files (tensorboard.h) or aggregate over ranks.
#ifndef TRLC_METRICS_H
#define TRLC_METRICS_H
#include "diag.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// ---- metrics.jsonl ----
typedef struct MetField {
    const char *key;   // JSON key; written escaped
    double value;      // NaN / Inf → null
} MetField;

typedef struct MetLog MetLog;

// Opens (creating or appending to) path; parent directories must exist. NULL after reporting.
MetLog *met_open(Diag *d, const char *path, bool append);
// Writes {"step": step, fields...} and a newline, flushed so a killed run keeps every finished line.
// Returns 0, or -1 after reporting (once) a write error.
int met_log(MetLog *m, int64_t step, const MetField *fields, size_t n);
// Flushes, fsyncs and closes; nonzero when any write failed. Accepts NULL.
int met_close(MetLog *m);
// Formats one line (without the newline) into buf; returns the length it needs (like snprintf).
size_t met_format_json(char *buf, size_t cap, int64_t step, const MetField *fields, size_t n);

// ---- progress line ----
typedef struct MetProgress {
    FILE *out;         // usually stderr
    bool tty;          // redraw in place
    bool dirty;        // a line without its newline is on screen
    int last_len;      // length of that line (padding erases a longer previous one)
} MetProgress;

// tty = isatty(fileno(out)); tests may set it afterwards.
void met_progress_init(MetProgress *p, FILE *out);
// `step 120/1000  loss 1.2345  lr 1.9e-04  12,345 tok/s  ETA 3:21` into buf (total <= 0: no
// "/total"; eta_s < 0 or non-finite: no ETA; tokens_per_s < 0: no tok/s). Returns the length.
size_t met_progress_format(char *buf, size_t cap, int64_t step, int64_t total, double loss,
                           double lr, double tokens_per_s, double eta_s);
// Draws the line: "\r" + line + padding on a terminal, line + "\n" otherwise.
void met_progress_draw(MetProgress *p, int64_t step, int64_t total, double loss, double lr,
                       double tokens_per_s, double eta_s);
// Ends a redrawn line with a newline (before other output or at the end). No-op when piped.
void met_progress_end(MetProgress *p);

// 12345 → "12,345" (negative and zero too). Returns the length.
size_t met_group_thousands(char *buf, size_t cap, long long v);
// Seconds → "3:21", "1:02:03" (ceil to whole seconds; "?" for negative or non-finite).
size_t met_format_duration(char *buf, size_t cap, double seconds);

// ---- throughput and ETA ----
typedef struct MetRate {
    double t0;             // when counting began (met_now seconds)
    int64_t step0;         // the step then (non-zero after a resume)
    double last_t;         // the previous update
    int64_t last_tokens;   // tokens seen at the previous update
} MetRate;

void met_rate_start(MetRate *r, double now, int64_t step, int64_t tokens_seen);
// Tokens per second since the previous update (or the start), and the ETA: the average time per
// step since the start times the steps left (total_steps <= 0 or no step done yet: -1).
void met_rate_update(MetRate *r, double now, int64_t step, int64_t tokens_seen,
                     int64_t total_steps, double *tokens_per_s, double *eta_s);

// ---- helpers ----
// Seconds on a monotonic clock.
double met_now(void);
// 0 when x is finite; otherwise reports `trlc: error: <what> is NaN|inf at step N` with a hint and
// returns -1.
int met_check_finite(Diag *d, const char *what, double x, int64_t step);

#endif
