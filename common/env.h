// env.h — enum-like environment variables (TRLC_GEMM_ACC=0|nobias|1, TRLC_CUDA_GRAPHS=0|1, ...):
// one reader, so that a value outside the accepted set is an error that names the variable, the
// value and the accepted values, never silently some default.
// Not here: variables that hold a path or a number (TRLC_CACHE_DIR, TRLC_CUDA_DRIVER, ...).
#ifndef TRLC_ENV_H
#define TRLC_ENV_H
#include "diag.h"

// The index in `values` (a NULL-terminated list) of $name's value; `dflt` when the variable is
// unset or empty. Anything else: reported through d (when d is not NULL) and -1.
int env_choice(Diag *d, const char *name, const char *const *values, int dflt);

// The common case: unset, empty or `0` -> 0; `1` -> 1; anything else -1 (reported).
int env_flag(Diag *d, const char *name);

#endif
