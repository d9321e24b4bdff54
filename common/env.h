// env.h — enum-like environment variables (TRLC_GEMM_ACC=0|nobias|1, TRLC_CUDA_GRAPHS=0|1, ...):
// one reader, so that a value outside the accepted set is an error that names the variable, the
// value and the accepted values, never silently some default.
// Also counts (env_count: TRLC_CPU_SDPA_BLOCK_MAX, ...). Not here: variables that hold a path
// (TRLC_CACHE_DIR, TRLC_CUDA_DRIVER, ...).
#ifndef TRLC_ENV_H
#define TRLC_ENV_H
#include "diag.h"
#include <stdint.h>

// The index in `values` (a NULL-terminated list) of $name's value; `dflt` when the variable is
// unset or empty. Anything else: reported through d (when d is not NULL) and -1.
int env_choice(Diag *d, const char *name, const char *const *values, int dflt);

// The common case: unset, empty or `0` -> 0; `1` -> 1; anything else -1 (reported).
int env_flag(Diag *d, const char *name);

// A count (of bytes, ...) in $name: *out gets `dflt` when unset or empty, else the decimal integer
// it holds, which must be at least `min` and nothing else (no sign, suffix or spaces): 0, or -1
// after reporting (when d is not NULL) the variable, the value and what it takes.
int env_count(Diag *d, const char *name, int64_t dflt, int64_t min, int64_t *out);

#endif
