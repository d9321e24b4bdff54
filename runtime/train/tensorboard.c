// tensorboard.c — TensorBoard event files: CRC-32C, TFRecord framing, a hand-rolled encoder for the
// few protobuf fields a scalar Event needs (FORMATS.md "TensorBoard event files"), and the writer.
// Does not: depend on protobuf, write anything but scalars, or read event files back.
#include "tensorboard.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

enum { TB_MAX_TAG = 4096 };

struct TbWriter {
    Diag *d;
    FILE *f;
    char *path;
    int failed;     // a write failed (reported once)
};

// ---- CRC-32C -------------------------------------------------------------------------------

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t tb_crc32c(const void *data, size_t n) {
    if (!crc_ready) crc_init();   // idempotent: a race only recomputes the same table
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t tb_masked_crc(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xA282EAD8u; }

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

size_t tb_frame_record(const void *data, size_t n, uint8_t *out) {
    put_u64(out, (uint64_t)n);
    put_u32(out + 8, tb_masked_crc(tb_crc32c(out, 8)));
    memcpy(out + 12, data, n);
    put_u32(out + 12 + n, tb_masked_crc(tb_crc32c(data, n)));
    return n + 16;
}

// ---- protobuf encoding (only what Event needs) ------------------------------------------------

typedef struct Buf {
    uint8_t *p;
    size_t n, cap;
    int overflow;
} Buf;

static void put_byte(Buf *b, uint8_t v) {
    if (b->n < b->cap) b->p[b->n++] = v;
    else b->overflow = 1;
}
static void put_varint(Buf *b, uint64_t v) {
    while (v >= 0x80) {
        put_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(b, (uint8_t)v);
}
static void put_bytes(Buf *b, const void *s, size_t n) {
    for (size_t i = 0; i < n; i++) put_byte(b, ((const uint8_t *)s)[i]);
}
static void put_double(Buf *b, double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    uint8_t t[8];
    put_u64(t, u);
    put_bytes(b, t, 8);
}
static void put_float(Buf *b, float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint8_t t[4];
    put_u32(t, u);
    put_bytes(b, t, 4);
}
static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t tb_encode_scalar(double wall_time, int64_t step, const char *tag, float value, uint8_t *out,
                        size_t cap) {
    size_t tl = strlen(tag);
    if (tl > TB_MAX_TAG) return 0;
    size_t value_len = 1 + varint_len(tl) + tl + 1 + 4;        // Value{tag, simple_value}
    size_t summary_len = 1 + varint_len(value_len) + value_len;  // Summary{value}
    Buf b = {out, 0, cap, 0};
    put_byte(&b, 0x09);  // Event.wall_time (1, fixed64)
    put_double(&b, wall_time);
    if (step != 0) {
        put_byte(&b, 0x10);  // Event.step (2, varint)
        put_varint(&b, (uint64_t)step);
    }
    put_byte(&b, 0x2A);  // Event.summary (5, bytes)
    put_varint(&b, summary_len);
    put_byte(&b, 0x0A);  // Summary.value (1, bytes)
    put_varint(&b, value_len);
    put_byte(&b, 0x0A);  // Value.tag (1, string)
    put_varint(&b, tl);
    put_bytes(&b, tag, tl);
    put_byte(&b, 0x15);  // Value.simple_value (2, float)
    put_float(&b, value);
    return b.overflow ? 0 : b.n;
}

static size_t encode_version(double wall_time, uint8_t *out, size_t cap) {
    static const char ver[] = "brain.Event:2";
    Buf b = {out, 0, cap, 0};
    put_byte(&b, 0x09);
    put_double(&b, wall_time);
    put_byte(&b, 0x1A);  // Event.file_version (3, string)
    put_varint(&b, sizeof ver - 1);
    put_bytes(&b, ver, sizeof ver - 1);
    return b.overflow ? 0 : b.n;
}

// ---- the writer --------------------------------------------------------------------------------

static double now_seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

// mkdir -p. 0 ok; on failure errno is set.
static int make_dirs(const char *path) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return -1;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                free(p);
                return -1;
            }
            p[i] = c;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int write_record(TbWriter *w, const uint8_t *data, size_t n) {
    uint8_t frame[TB_MAX_TAG + 128];
    if (n + 16 > sizeof frame) return -1;
    size_t m = tb_frame_record(data, n, frame);
    if (fwrite(frame, 1, m, w->f) != m) {
        if (!w->failed) diag_file_error(w->d, w->path, 0, 0, "cannot write: %s", strerror(errno));
        w->failed = 1;
        return -1;
    }
    return 0;
}

TbWriter *tb_open_at(Diag *d, const char *logdir, double wall_time, const char *host) {
    if (make_dirs(logdir) != 0) {
        diag_file_error(d, logdir, 0, 0, "cannot create the TensorBoard log directory: %s",
                        strerror(errno));
        return NULL;
    }
    TbWriter *w = calloc(1, sizeof *w);
    size_t n = strlen(logdir) + strlen(host) + 96;
    if (w) w->path = malloc(n);
    if (!w || !w->path) {
        free(w);
        diag_plain_error(d, "out of memory opening a TensorBoard writer");
        return NULL;
    }
    w->d = d;
    snprintf(w->path, n, "%s/events.out.tfevents.%010lld.%s.%ld", logdir, (long long)wall_time, host,
             (long)getpid());
    w->f = fopen(w->path, "wb");
    if (!w->f) {
        diag_file_error(d, w->path, 0, 0, "cannot create: %s", strerror(errno));
        free(w->path);
        free(w);
        return NULL;
    }
    uint8_t rec[64];
    size_t m = encode_version(wall_time, rec, sizeof rec);
    if (write_record(w, rec, m) != 0 || fflush(w->f) != 0) {
        tb_close(w);
        return NULL;
    }
    return w;
}

TbWriter *tb_open(Diag *d, const char *logdir) {
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    return tb_open_at(d, logdir, now_seconds(), host);
}

const char *tb_path(const TbWriter *w) { return w->path; }

int tb_scalar_at(TbWriter *w, const char *tag, int64_t step, float value, double wall_time) {
    uint8_t rec[TB_MAX_TAG + 64];
    size_t n = tb_encode_scalar(wall_time, step, tag, value, rec, sizeof rec);
    if (n == 0) {
        diag_file_error(w->d, w->path, 0, 0, "TensorBoard tag too long (%zu bytes)", strlen(tag));
        return -1;
    }
    return write_record(w, rec, n);
}

int tb_scalar(TbWriter *w, const char *tag, int64_t step, float value) {
    return tb_scalar_at(w, tag, step, value, now_seconds());
}

int tb_flush(TbWriter *w) {
    if (fflush(w->f) != 0) {
        if (!w->failed) diag_file_error(w->d, w->path, 0, 0, "cannot write: %s", strerror(errno));
        w->failed = 1;
        return -1;
    }
    return 0;
}

int tb_close(TbWriter *w) {
    if (!w) return 0;
    int st = w->failed;
    if (fclose(w->f) != 0) {
        if (!w->failed) diag_file_error(w->d, w->path, 0, 0, "cannot write: %s", strerror(errno));
        st = 1;
    }
    free(w->path);
    free(w);
    return st ? -1 : 0;
}
