// fixture.h — reading the text fixtures of tests/train (written by the gen_*_fixtures.py scripts):
// the whole file into memory, then one line at a time. Test-only helpers (static inline).
#ifndef TRLC_TEST_TRAIN_FIXTURE_H
#define TRLC_TEST_TRAIN_FIXTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The file's bytes, NUL-terminated; NULL (with a message) when unreadable.
static inline char *fx_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read fixture %s\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    return buf;
}

// Everything written to a (tmpfile) stream so far, NUL-terminated, in a static buffer (8 KiB).
static inline const char *fx_stream_text(FILE *f) {
    static char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

// Cuts the next line out of *cur (replacing its newline by NUL); NULL at the end.
static inline char *fx_line(char **cur) {
    char *s = *cur;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = 0;
        *cur = nl + 1;
    } else
        *cur = s + strlen(s);
    return s;
}

// Parses up to max whitespace-separated doubles from s; returns how many.
static inline int fx_doubles(const char *s, double *out, int max) {
    int n = 0;
    char *end;
    while (n < max) {
        double v = strtod(s, &end);
        if (end == s) break;
        out[n++] = v;
        s = end;
    }
    return n;
}

// Skips `k` whitespace-separated words of s.
static inline const char *fx_skip(const char *s, int k) {
    for (int i = 0; i < k; i++) {
        while (*s == ' ') s++;
        while (*s && *s != ' ') s++;
    }
    return s;
}

#endif
