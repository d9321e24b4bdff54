// env.c — enum-like environment variables (see env.h).
#include "env.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int env_choice(Diag *d, const char *name, const char *const *values, int dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    size_t n = 0;
    for (; values[n]; n++)
        if (!strcmp(v, values[n])) return (int)n;
    if (d) {
        char list[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s`%s`", i ? ", " : "", values[i]);
        diag_plain_error(d, "environment variable %s is `%.80s`: expected one of %s (or unset)", name, v, list);
        const char *near = suggest_word(v, values, n);
        if (near) diag_hint(d, "did you mean %s=%s?", name, near);
    }
    return -1;
}

int env_flag(Diag *d, const char *name) {
    static const char *const values[] = {"0", "1", NULL};
    return env_choice(d, name, values, 0);
}

int env_count(Diag *d, const char *name, int64_t dflt, int64_t min, int64_t *out) {
    const char *v = getenv(name);
    *out = dflt;
    if (!v || !*v) return 0;
    char *end = NULL;
    errno = 0;
    long long x = v[0] >= '0' && v[0] <= '9' ? strtoll(v, &end, 10) : 0;
    if (end && !*end && errno == 0 && x >= min) {
        *out = (int64_t)x;
        return 0;
    }
    if (d) diag_plain_error(d, "environment variable %s is `%.80s`: expected a whole number of at least %lld (or unset)", name, v, (long long)min);
    return -1;
}
