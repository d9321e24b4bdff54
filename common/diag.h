// diag.h — source files and the one diagnostic reporter.
// Locations are byte offsets into a registered source; they become line:column only when printed.
// Passes report through a Diag and count errors; they never exit. Only main() decides the status.
#ifndef TRLC_DIAG_H
#define TRLC_DIAG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct Loc {
    uint32_t file;   // source id from diag_add_source; 0 = no location
    uint32_t off;    // byte offset of the first byte
    uint32_t len;    // bytes covered (0 or 1 = a single caret)
} Loc;

typedef struct Source {
    char *path;      // as the user named it (or as resolved for imports)
    char *text;      // NUL-terminated copy
    size_t len;
    size_t *line_start;   // byte offset of each line (nlines of them): line:col without a scan
    size_t nlines;        // from the file's start per location (quadratic over a big file's nodes)
} Source;

typedef struct Diag {
    Source **src;    // src[0] is unused so that file id 0 means "none"; each Source is allocated
                     // once, so a pointer from diag_source stays valid while more are added
    int nsrc, capsrc;
    FILE *out;       // stderr normally; tests may redirect
    int errors, warnings;
} Diag;

void diag_init(Diag *d, FILE *out);
void diag_free(Diag *d);

// Registers a copy of text; returns its file id (>= 1).
uint32_t diag_add_source(Diag *d, const char *path, const char *text, size_t len);
// Reads a whole file and registers it. On failure reports an error at `from` (or without a location
// when from.file == 0) and returns 0. Files larger than max_bytes are refused with an error.
uint32_t diag_load_file(Diag *d, const char *path, Loc from, size_t max_bytes);
const Source *diag_source(const Diag *d, uint32_t file);

// 1-based line and column (column counted in UTF-8 characters).
void diag_linecol(const Diag *d, Loc loc, int *line, int *col);
Loc  loc_span(Loc a, Loc b);   // from the start of a to the end of b (same file)

// `path:line:col: error: message`, the source line, a ^~~~ underline.
void diag_error(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// `hint: ...` — follows the diagnostic printed last.
void diag_hint(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Errors in external files (data, checkpoints, tokenizers): `path:line:col: error: ...`,
// `path:line: error: ...` when col <= 0, `path: error: ...` when line <= 0. No source excerpt.
void diag_file_error(Diag *d, const char *path, long line, long col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
// `trlc: error: ...` — no location at all (usage, environment).
void diag_plain_error(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The closest candidate to `word` by edit distance (transpositions count 1), or NULL when none is
// close enough to be a plausible misspelling. Used for "did you mean `alpha`?".
const char *suggest_word(const char *word, const char *const *cands, size_t n);

#endif
