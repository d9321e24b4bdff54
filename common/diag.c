// diag.c — the diagnostic reporter: source registry, line/column mapping, excerpts with carets,
// did-you-mean suggestions. Long lines are shown as a window around the caret so that a 1 MB line
// never floods the terminal.
#include "diag.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { EXCERPT_WIDTH = 120 };

// Out of memory is fatal here as in the arena: status 3 (runtime failure), nothing to recover.
static void *diag_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "trlc: out of memory (diagnostics, %zu bytes)\n", n);
        exit(3);
    }
    return q;
}

void diag_init(Diag *d, FILE *out) {
    memset(d, 0, sizeof *d);
    d->out = out ? out : stderr;
    d->capsrc = 8;
    d->src = diag_xrealloc(NULL, (size_t)d->capsrc * sizeof(Source *));
    d->nsrc = 1;
}

void diag_free(Diag *d) {
    for (int i = 1; i < d->nsrc; i++) {
        free(d->src[i]->path);
        free(d->src[i]->text);
        free(d->src[i]->line_start);
        free(d->src[i]);
    }
    free(d->src);
    memset(d, 0, sizeof *d);
}

uint32_t diag_add_source(Diag *d, const char *path, const char *text, size_t len) {
    if (d->nsrc == d->capsrc) {
        d->capsrc *= 2;
        d->src = diag_xrealloc(d->src, (size_t)d->capsrc * sizeof(Source *));
    }
    Source *s = diag_xrealloc(NULL, sizeof *s);
    d->src[d->nsrc] = s;
    size_t plen = strlen(path);
    s->path = diag_xrealloc(NULL, plen + 1);
    memcpy(s->path, path, plen + 1);
    s->text = diag_xrealloc(NULL, len + 1);
    memcpy(s->text, text, len);
    s->text[len] = 0;
    s->len = len;
    s->nlines = 1;
    for (size_t i = 0; i < len; i++) s->nlines += s->text[i] == '\n';
    s->line_start = diag_xrealloc(NULL, s->nlines * sizeof *s->line_start);
    s->line_start[0] = 0;
    for (size_t i = 0, k = 1; i < len; i++)
        if (s->text[i] == '\n') s->line_start[k++] = i + 1;
    return (uint32_t)d->nsrc++;
}

uint32_t diag_load_file(Diag *d, const char *path, Loc from, size_t max_bytes) {
    // a FIFO or device would block fopen or never end: only regular files are sources
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        const char *what = S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file";
        if (from.file) diag_error(d, from, "cannot read `%s`: it %s", path, what);
        else diag_plain_error(d, "cannot read `%s`: it %s", path, what);
        return 0;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (from.file) diag_error(d, from, "cannot open `%s`: %s", path, strerror(errno));
        else diag_plain_error(d, "cannot open `%s`: %s", path, strerror(errno));
        return 0;
    }
    size_t cap = 4096, len = 0;
    char *buf = diag_xrealloc(NULL, cap);
    for (;;) {
        if (len == cap) {
            if (cap >= max_bytes + 1) break;
            cap *= 2;
            buf = diag_xrealloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || len > max_bytes) {
        if (bad) {
            if (from.file) diag_error(d, from, "cannot read `%s`", path);
            else diag_plain_error(d, "cannot read `%s`", path);
        } else {
            if (from.file) diag_error(d, from, "`%s` is larger than %zu bytes", path, max_bytes);
            else diag_plain_error(d, "`%s` is larger than %zu bytes", path, max_bytes);
        }
        free(buf);
        return 0;
    }
    uint32_t id = diag_add_source(d, path, buf, len);
    free(buf);
    return id;
}

const Source *diag_source(const Diag *d, uint32_t file) {
    return (file >= 1 && (int)file < d->nsrc) ? d->src[file] : NULL;
}

static int is_utf8_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the valid UTF-8 character starting at p (at most n bytes available), or 0 when the
// bytes there are not one (stray continuation, overlong form, surrogate, > U+10FFFF, truncated).
static size_t utf8_valid_len(const char *p, size_t n) {
    const unsigned char *u = (const unsigned char *)p;
    if (u[0] < 0x80) return 1;
    size_t len = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || u[0] > 0xF4 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if (!is_utf8_cont(u[i])) return 0;
    if (len == 3 && ((u[0] == 0xE0 && u[1] < 0xA0) || (u[0] == 0xED && u[1] >= 0xA0))) return 0;
    if (len == 4 && ((u[0] == 0xF0 && u[1] < 0x90) || (u[0] == 0xF4 && u[1] >= 0x90))) return 0;
    return len;
}

void diag_linecol(const Diag *d, Loc loc, int *line, int *col) {
    const Source *s = diag_source(d, loc.file);
    *line = 0;
    *col = 0;
    if (!s) return;
    size_t off = loc.off > s->len ? s->len : loc.off;
    size_t lo = 0, hi = s->nlines;   // the last line starting at or before off
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->line_start[mid] <= off) lo = mid;
        else hi = mid;
    }
    int c = 1;
    for (size_t i = s->line_start[lo]; i < off; i++) c += !is_utf8_cont((unsigned char)s->text[i]);
    *line = (int)(lo + 1);
    *col = c;
}

Loc loc_span(Loc a, Loc b) {
    if (a.file != b.file || b.off + b.len < a.off) return a;
    Loc r = a;
    r.len = b.off + b.len - a.off;
    return r;
}

// Prints the source line holding loc, then a caret line under loc.
static void excerpt(Diag *d, Loc loc, int line) {
    const Source *s = diag_source(d, loc.file);
    if (!s) return;
    size_t off = loc.off > s->len ? s->len : loc.off;
    size_t bol = off, eol = off;
    while (bol > 0 && s->text[bol - 1] != '\n') bol--;
    while (eol < s->len && s->text[eol] != '\n') eol++;
    // window [ws, we) of at most EXCERPT_WIDTH bytes around the caret, cut on character starts
    size_t ws = bol, we = eol;
    if (we - ws > EXCERPT_WIDTH) {
        ws = off > bol + EXCERPT_WIDTH / 2 ? off - EXCERPT_WIDTH / 2 : bol;
        while (ws > bol && is_utf8_cont((unsigned char)s->text[ws])) ws--;
        we = ws + EXCERPT_WIDTH < eol ? ws + EXCERPT_WIDTH : eol;
        while (we < eol && is_utf8_cont((unsigned char)s->text[we])) we++;
    }
    const char *pre = ws > bol ? "..." : "";
    const char *post = we < eol ? "..." : "";
    fprintf(d->out, "%5d | %s", line, pre);
    for (size_t i = ws; i < we;) {
        unsigned char ch = (unsigned char)s->text[i];
        size_t n = utf8_valid_len(s->text + i, we - i);
        if (n > 1) {   // a whole, valid multi-byte character
            fwrite(s->text + i, 1, n, d->out);
            i += n;
            continue;
        }
        // control bytes and invalid UTF-8 would garble the terminal: show them as '?'
        fputc(n == 0 || (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : ch, d->out);
        i++;
    }
    fprintf(d->out, "%s\n      | %s", post, pre);
    for (size_t i = ws; i < off; i++) {
        unsigned char ch = (unsigned char)s->text[i];
        if (is_utf8_cont(ch)) continue;
        fputc(ch == '\t' ? '\t' : ' ', d->out);
    }
    fputc('^', d->out);
    size_t end = loc.off + (size_t)loc.len;
    if (end > we) end = we;
    int first = 1;
    for (size_t i = off; i < end; i++) {
        if (is_utf8_cont((unsigned char)s->text[i])) continue;
        if (first) { first = 0; continue; }
        fputc('~', d->out);
    }
    fputc('\n', d->out);
}

static void report(Diag *d, Loc loc, const char *level, const char *fmt, va_list ap) {
    const Source *s = diag_source(d, loc.file);
    if (s) {
        int line, col;
        diag_linecol(d, loc, &line, &col);
        fprintf(d->out, "%s:%d:%d: %s: ", s->path, line, col, level);
        vfprintf(d->out, fmt, ap);
        fputc('\n', d->out);
        excerpt(d, loc, line);
    } else {
        fprintf(d->out, "trlc: %s: ", level);
        vfprintf(d->out, fmt, ap);
        fputc('\n', d->out);
    }
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "error", fmt, ap);
    va_end(ap);
    d->errors++;
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "warning", fmt, ap);
    va_end(ap);
    d->warnings++;
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "note", fmt, ap);
    va_end(ap);
}

void diag_hint(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("hint: ", d->out);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    va_end(ap);
}

void diag_file_error(Diag *d, const char *path, long line, long col, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (line > 0 && col > 0) fprintf(d->out, "%s:%ld:%ld: error: ", path, line, col);
    else if (line > 0) fprintf(d->out, "%s:%ld: error: ", path, line);
    else fprintf(d->out, "%s: error: ", path);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    va_end(ap);
    d->errors++;
}

void diag_plain_error(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("trlc: error: ", d->out);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    va_end(ap);
    d->errors++;
}

// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring).
static size_t edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return (size_t)-1;
    size_t dp[65][65];
    for (size_t i = 0; i <= n; i++) dp[i][0] = i;
    for (size_t j = 0; j <= m; j++) dp[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = dp[i - 1][j] + 1;
            if (dp[i][j - 1] + 1 < best) best = dp[i][j - 1] + 1;
            if (dp[i - 1][j - 1] + cost < best) best = dp[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                dp[i - 2][j - 2] + 1 < best)
                best = dp[i - 2][j - 2] + 1;
            dp[i][j] = best;
        }
    return dp[n][m];
}

const char *suggest_word(const char *word, const char *const *cands, size_t n) {
    size_t len = strlen(word);
    size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    const char *best = NULL;
    size_t bestd = limit + 1;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i]) continue;
        size_t dist = edit_distance(word, cands[i]);
        if (dist < bestd) {
            bestd = dist;
            best = cands[i];
        }
    }
    return best;
}
