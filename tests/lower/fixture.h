// fixture.h — a small reader for the safetensors fixtures of tests/lower (written by
// gen_fixtures.py): the whole file in memory, the JSON header parsed with jansson, every tensor's
// offsets checked against the file size. Test code only (the product's reader is runtime/io).
#ifndef TRLC_TEST_LOWER_FIXTURE_H
#define TRLC_TEST_LOWER_FIXTURE_H
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Fx {
    unsigned char *buf;
    size_t len;
    json_t *hdr;
    size_t data;     // offset of the data section
} Fx;

static inline int fx_open(Fx *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (n < 8) {
        fclose(fp);
        return -1;
    }
    f->buf = malloc((size_t)n);
    f->len = (size_t)n;
    if (!f->buf || fread(f->buf, 1, f->len, fp) != f->len) {
        fclose(fp);
        return -1;
    }
    fclose(fp);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | f->buf[i];
    if (h > f->len - 8) return -1;
    json_error_t err;
    f->hdr = json_loadb((const char *)f->buf + 8, (size_t)h, 0, &err);
    f->data = 8 + (size_t)h;
    return f->hdr ? 0 : -1;
}

static inline void fx_close(Fx *f) {
    if (f->hdr) json_decref(f->hdr);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

// The data of tensor `name` if its dtype is `dtype`; *numel set. NULL when absent or invalid.
static inline const void *fx_get(const Fx *f, const char *name, const char *dtype, int64_t *numel) {
    json_t *t = json_object_get(f->hdr, name);
    if (!t) return NULL;
    const char *dt = json_string_value(json_object_get(t, "dtype"));
    if (!dt || strcmp(dt, dtype)) return NULL;
    json_t *shape = json_object_get(t, "shape"), *off = json_object_get(t, "data_offsets");
    int64_t n = 1;
    for (size_t i = 0; i < json_array_size(shape); i++) n *= json_integer_value(json_array_get(shape, i));
    json_int_t b = json_integer_value(json_array_get(off, 0)), e = json_integer_value(json_array_get(off, 1));
    size_t esz = !strcmp(dtype, "F64") || !strcmp(dtype, "I64") ? 8 : 4;
    if (b < 0 || e < b || (size_t)e > f->len - f->data || (size_t)(e - b) != (size_t)n * esz) return NULL;
    *numel = n;
    return f->buf + f->data + b;
}

static inline const char *fx_meta(const Fx *f, const char *key) {
    return json_string_value(json_object_get(json_object_get(f->hdr, "__metadata__"), key));
}

#endif
