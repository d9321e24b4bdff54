// metrics.c — metrics.jsonl lines, the progress line, a monotonic clock and the non-finite check.
// See metrics.h. Does not: buffer metrics in memory or decide how often to log (the trainer does).
#include "metrics.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct MetLog {
    Diag *d;
    FILE *f;
    char *path;
    bool failed;
};

// Appends to buf at *len, never past cap (keeps counting what would be needed).
static void put(char *buf, size_t cap, size_t *len, const char *s, size_t n) {
    if (*len < cap) {
        size_t room = cap - *len;
        memcpy(buf + *len, s, n < room ? n : room);
    }
    *len += n;
}

static void put_json_string(char *buf, size_t cap, size_t *len, const char *s) {
    put(buf, cap, len, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            put(buf, cap, len, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            put(buf, cap, len, esc, 6);
        } else
            put(buf, cap, len, (const char *)c, 1);
    }
    put(buf, cap, len, "\"", 1);
}

size_t met_format_json(char *buf, size_t cap, int64_t step, const MetField *fields, size_t n) {
    size_t len = 0;
    char num[64];
    int k = snprintf(num, sizeof num, "{\"step\": %lld", (long long)step);
    put(buf, cap, &len, num, (size_t)k);
    for (size_t i = 0; i < n; i++) {
        put(buf, cap, &len, ", ", 2);
        put_json_string(buf, cap, &len, fields[i].key ? fields[i].key : "");
        double v = fields[i].value;
        if (!isfinite(v)) k = snprintf(num, sizeof num, ": null");
        else if (v == floor(v) && fabs(v) < 1e15) k = snprintf(num, sizeof num, ": %.0f", v);
        else k = snprintf(num, sizeof num, ": %.10g", v);
        put(buf, cap, &len, num, (size_t)k);
    }
    put(buf, cap, &len, "}", 1);
    if (cap) buf[len < cap ? len : cap - 1] = 0;
    return len;
}

MetLog *met_open(Diag *d, const char *path, bool append) {
    MetLog *m = calloc(1, sizeof *m);
    char *p = strdup(path);
    FILE *f = (m && p) ? fopen(path, append ? "a" : "w") : NULL;
    if (!f) {
        if (m && p) diag_file_error(d, path, 0, 0, "cannot open metrics file: %s", strerror(errno));
        else diag_plain_error(d, "out of memory opening %s", path);
        free(m);
        free(p);
        return NULL;
    }
    m->d = d;
    m->f = f;
    m->path = p;
    return m;
}

int met_log(MetLog *m, int64_t step, const MetField *fields, size_t n) {
    char small[1024];
    size_t need = met_format_json(small, sizeof small, step, fields, n);
    char *line = small;
    if (need >= sizeof small) {
        line = malloc(need + 1);
        if (!line) {
            diag_plain_error(m->d, "out of memory writing %s", m->path);
            return -1;
        }
        met_format_json(line, need + 1, step, fields, n);
    }
    int bad = fputs(line, m->f) == EOF || fputc('\n', m->f) == EOF || fflush(m->f) != 0;
    if (line != small) free(line);
    if (bad) {
        if (!m->failed) diag_file_error(m->d, m->path, 0, 0, "write failed: %s", strerror(errno));
        m->failed = true;
        return -1;
    }
    return 0;
}

int met_close(MetLog *m) {
    if (!m) return 0;
    int bad = m->failed;
    if (fflush(m->f) != 0) bad = 1;
    fsync(fileno(m->f));
    if (fclose(m->f) != 0) bad = 1;
    if (bad && !m->failed) diag_file_error(m->d, m->path, 0, 0, "write failed: %s", strerror(errno));
    free(m->path);
    free(m);
    return bad;
}

size_t met_group_thousands(char *buf, size_t cap, long long v) {
    char digits[32];
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    int nd = snprintf(digits, sizeof digits, "%llu", u);
    char out[48];
    size_t len = 0;
    if (v < 0) out[len++] = '-';
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0) out[len++] = ',';
        out[len++] = digits[i];
    }
    out[len] = 0;
    if (cap) snprintf(buf, cap, "%s", out);
    return len;
}

size_t met_format_duration(char *buf, size_t cap, double seconds) {
    int k;
    if (!(seconds >= 0) || seconds > 1e12) k = snprintf(buf, cap, "?");
    else {
        long long s = (long long)ceil(seconds);
        if (s >= 3600)
            k = snprintf(buf, cap, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
        else
            k = snprintf(buf, cap, "%lld:%02lld", s / 60, s % 60);
    }
    return k < 0 ? 0 : (size_t)k;
}

size_t met_progress_format(char *buf, size_t cap, int64_t step, int64_t total, double loss,
                           double lr, double tokens_per_s, double eta_s) {
    size_t len = 0;
    char part[96];
    int k = total > 0 ? snprintf(part, sizeof part, "step %lld/%lld", (long long)step, (long long)total)
                      : snprintf(part, sizeof part, "step %lld", (long long)step);
    put(buf, cap, &len, part, (size_t)k);
    k = snprintf(part, sizeof part, "  loss %.4f  lr %.1e", loss, lr);
    put(buf, cap, &len, part, (size_t)k);
    if (tokens_per_s >= 0 && isfinite(tokens_per_s)) {
        char num[40];
        size_t nl = met_group_thousands(num, sizeof num, (long long)(tokens_per_s + 0.5));
        put(buf, cap, &len, "  ", 2);
        put(buf, cap, &len, num, nl);
        put(buf, cap, &len, " tok/s", 6);
    }
    if (eta_s >= 0 && isfinite(eta_s)) {
        char dur[40];
        size_t dl = met_format_duration(dur, sizeof dur, eta_s);
        put(buf, cap, &len, "  ETA ", 6);
        put(buf, cap, &len, dur, dl);
    }
    if (cap) buf[len < cap ? len : cap - 1] = 0;
    return len;
}

void met_progress_init(MetProgress *p, FILE *out) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out && isatty(fileno(out));
}

void met_progress_draw(MetProgress *p, int64_t step, int64_t total, double loss, double lr,
                       double tokens_per_s, double eta_s) {
    char line[256];
    size_t n = met_progress_format(line, sizeof line, step, total, loss, lr, tokens_per_s, eta_s);
    if (n >= sizeof line) n = sizeof line - 1;
    if (p->tty) {
        int pad = p->last_len > (int)n ? p->last_len - (int)n : 0;
        fprintf(p->out, "\r%s%*s", line, pad, "");
        p->dirty = true;
        p->last_len = (int)n;
    } else
        fprintf(p->out, "%s\n", line);
    fflush(p->out);
}

void met_progress_end(MetProgress *p) {
    if (p->tty && p->dirty) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    p->dirty = false;
    p->last_len = 0;
}

void met_rate_start(MetRate *r, double now, int64_t step, int64_t tokens_seen) {
    r->t0 = r->last_t = now;
    r->step0 = step;
    r->last_tokens = tokens_seen;
}

void met_rate_update(MetRate *r, double now, int64_t step, int64_t tokens_seen,
                     int64_t total_steps, double *tokens_per_s, double *eta_s) {
    double dt = now - r->last_t;
    *tokens_per_s = dt > 0 ? (double)(tokens_seen - r->last_tokens) / dt : -1;
    int64_t done = step - r->step0;
    *eta_s = total_steps > 0 && done > 0 && now > r->t0
                 ? (now - r->t0) / (double)done * (double)(total_steps > step ? total_steps - step : 0)
                 : -1;
    r->last_t = now;
    r->last_tokens = tokens_seen;
}

double met_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int met_check_finite(Diag *d, const char *what, double x, int64_t step) {
    if (isfinite(x)) return 0;
    diag_plain_error(d, "%s is %s at step %lld", what, isnan(x) ? "NaN" : (x > 0 ? "+inf" : "-inf"),
                     (long long)step);
    diag_hint(d, "lower the learning rate, raise warmup or clip_norm, or use fp32/bf16 precision; "
                 "the last checkpoint is intact");
    return -1;
}
