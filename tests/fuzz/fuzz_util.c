// fuzz_util.c — the helpers of fuzz_util.h: diagnostics sink, scratch directory, input splitting.
// Does not: judge any reader's output (the harnesses do).
#define _XOPEN_SOURCE 700   // nftw
#include "fuzz_util.h"
#include <ftw.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FILE *g_out;
static char g_dir[512];

FILE *fuzz_out(void) {
    if (!g_out) {
        const char *v = getenv("FUZZ_VERBOSE");
        g_out = (v && *v && strcmp(v, "0") != 0) ? stderr : fopen("/dev/null", "w");
        if (!g_out) g_out = stderr;
    }
    return g_out;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    (void)remove(path);
    return 0;
}

static void remove_dir(void) {
    if (g_dir[0]) nftw(g_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void) {
    if (!g_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/trlc-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(g_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    return g_dir;
}

int fuzz_write(const char *name, const void *buf, size_t len, char *path, size_t cap) {
    int n = snprintf(path, cap, "%s/%s", fuzz_dir(), name);
    if (n < 0 || (size_t)n >= cap) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = len ? fwrite(buf, 1, len, f) : 0;
    if (fclose(f) != 0 || w != len) return -1;
    return 0;
}

int fuzz_mkdir(const char *name, char *path, size_t cap) {
    int n = snprintf(path, cap, "%s/%s", fuzz_dir(), name);
    if (n < 0 || (size_t)n >= cap) return -1;
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

void fuzz_remove(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
    unlink(p);
}

size_t fuzz_write_files(const uint8_t *data, size_t size, const char *const *names, size_t nfiles) {
    const uint8_t *parts[8];
    size_t lens[8];
    FUZZ_ASSERT(nfiles >= 1 && nfiles <= 8);
    size_t np = fuzz_split(data, size, "\n@@FILE@@\n", parts, lens, nfiles);
    char path[1024];
    for (size_t i = 0; i < nfiles; i++) {
        if (i < np) FUZZ_ASSERT(fuzz_write(names[i], parts[i], lens[i], path, sizeof path) == 0);
        else fuzz_remove(names[i]);
    }
    return np;
}

size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **parts, size_t *lens,
                  size_t maxparts) {
    size_t seplen = strlen(sep), n = 0, start = 0;
    for (size_t i = 0; n + 1 < maxparts && seplen && i + seplen <= size; i++) {
        if (memcmp(data + i, sep, seplen) != 0) continue;
        parts[n] = data + start;
        lens[n] = i - start;
        n++;
        start = i + seplen;
        i = start - 1;
    }
    parts[n] = data + start;
    lens[n] = size - start;
    return n + 1;
}

char *fuzz_strndup(const uint8_t *data, size_t len) {
    char *s = malloc(len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, data, len);
    s[len] = 0;
    return s;
}
