// fuzz_util.h — what the fuzz harnesses (tests/fuzz/fuzz_*.c) share: a Diag sink that prints
// nowhere (or to stderr with FUZZ_VERBOSE=1), a private scratch directory for readers that take
// paths, and splitting one input into several files at a separator line.
// Each harness defines LLVMFuzzerTestOneInput; it is linked either with libFuzzer (-DTRLC_FUZZ=ON,
// clang) or with fuzz_replay.c, the driver ctest runs over the committed corpus and regressions.
// Not here: any assertion about a reader's results beyond "no crash, no leak, status consistent".
#ifndef TRLC_FUZZ_UTIL_H
#define TRLC_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Where diagnostics go: /dev/null, or stderr when FUZZ_VERBOSE is set (to read a reproducer's errors).
FILE *fuzz_out(void);
// This process's scratch directory (created on first use under $TMPDIR or /tmp, removed at exit).
const char *fuzz_dir(void);
// Writes len bytes to <fuzz_dir>/<name> and puts that path into path (cap bytes). 0, or -1.
int fuzz_write(const char *name, const void *buf, size_t len, char *path, size_t cap);
// Creates the directory <fuzz_dir>/<name> (parents must exist) unless present; its path into path.
int fuzz_mkdir(const char *name, char *path, size_t cap);
// Removes <fuzz_dir>/<name> (a file) if present.
void fuzz_remove(const char *name);
// A directory's files from one input: data split at "\n@@FILE@@\n" into at most nfiles parts,
// part i written to <fuzz_dir>/<names[i]> (fuzz_write; its directory must exist), the files past
// the last part removed (none left from the previous input). Aborts where a write fails. Returns
// the number of parts (>= 1).
size_t fuzz_write_files(const uint8_t *data, size_t size, const char *const *names, size_t nfiles);
// Splits data at each occurrence of sep (e.g. "\n====\n") into at most maxparts parts; the last
// part takes the rest. Returns the number of parts (>= 1).
size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **parts, size_t *lens,
                  size_t maxparts);
// A malloc'd NUL-terminated copy of len bytes (NULL only on OOM).
char *fuzz_strndup(const uint8_t *data, size_t len);

// Abort (so that both libFuzzer and the replay driver report it) when cond is false.
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz assertion failed: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
