// safetensors.c — the .safetensors reader (mmap, zero-copy, every validity rule of the format
// checked before any tensor is handed out), the writer (temp file + rename), dtype conversions,
// and checkpoints (one file, or shards listed by model.safetensors.index.json).
// Does not: allocate tensor data on read (views into the mapping), or read other formats.
// Every read is bounded by the real file size; every size product is overflow-checked.
#include "safetensors.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { ST_MAX_INDEX_BYTES = 64 << 20 };

static const struct {
    const char *name;
    int bits;
} dtypes[ST_NDTYPES] = {
    [ST_BOOL] = {"BOOL", 8},       [ST_U8] = {"U8", 8},          [ST_I8] = {"I8", 8},
    [ST_F8_E5M2] = {"F8_E5M2", 8}, [ST_F8_E4M3] = {"F8_E4M3", 8}, [ST_F8_E8M0] = {"F8_E8M0", 8},
    [ST_I16] = {"I16", 16},        [ST_U16] = {"U16", 16},       [ST_F16] = {"F16", 16},
    [ST_BF16] = {"BF16", 16},      [ST_I32] = {"I32", 32},       [ST_U32] = {"U32", 32},
    [ST_F32] = {"F32", 32},        [ST_F64] = {"F64", 64},       [ST_I64] = {"I64", 64},
    [ST_U64] = {"U64", 64},        [ST_F4] = {"F4", 4},          [ST_F6_E2M3] = {"F6_E2M3", 6},
    [ST_F6_E3M2] = {"F6_E3M2", 6}, [ST_C64] = {"C64", 64},
};

const char *st_dtype_name(StDtype t) { return (unsigned)t < ST_NDTYPES ? dtypes[t].name : "?"; }
int st_dtype_bits(StDtype t) { return (unsigned)t < ST_NDTYPES ? dtypes[t].bits : 0; }
int st_dtype_from_name(const char *s) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) return i;
    return -1;
}

// ---------------------------------------------------------------- scalar conversions

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);   // round to nearest even
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        float f = (float)mant * (1.0f / 16777216.0f);   // subnormal: mant * 2^-24, exact
        return sign ? -f : f;
    }
    if (exp == 31) u = sign | 0x7f800000u | (mant << 13);
    else u = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;            // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00;           // rounds to inf (65520 and up)
    if (a < 0x38800000u) {                                // below 2^-14: subnormal half
        float x;
        memcpy(&x, &a, 4);
        return sign | (uint16_t)rintf(x * 16777216.0f);   // nearest even; 1024 = smallest normal
    }
    a += 0xc8000000u + 0xfffu + ((a >> 13) & 1u);         // rebias 127 → 15, round to nearest even
    return sign | (uint16_t)(a >> 13);
}

// F8 E4M3 "fn" (no inf; S.1111.111 is NaN), bias 7.
static float f8e4m3_to_f32(uint8_t b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7) return NAN;
    if (e == 0) v = ldexpf((float)m, -9);
    else v = ldexpf((float)(8 + m), e - 10);
    return s ? -v : v;
}

// F8 E5M2: IEEE-like, bias 15.
static float f8e5m2_to_f32(uint8_t b) { return st_f16_to_f32((uint16_t)(b << 8)); }

// F8 E8M0: an exponent only, 2^(e-127); 0xFF is NaN.
static float f8e8m0_to_f32(uint8_t b) { return b == 0xff ? NAN : ldexpf(1.0f, (int)b - 127); }

// ---------------------------------------------------------------- reading

struct StFile {
    char *path;
    const uint8_t *base;    // the whole file (or buffer)
    size_t size;
    bool mapped;
    StTensor *t;            // n tensors in data-offset order
    size_t n;
    const StTensor **by_name;   // the n tensors sorted by name
    char **meta_k, **meta_v;
    size_t nmeta;
};

static void file_free(StFile *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_k[i]);
        free(f->meta_v[i]);
    }
    free(f->meta_k);
    free(f->meta_v);
    free(f->t);
    free((void *)f->by_name);
    if (f->mapped && f->base) munmap((void *)f->base, f->size);
    free(f->path);
    free(f);
}

void st_close(StFile *f) { file_free(f); }

static int cmp_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static const char *kind_of(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

// One header entry → t (name not yet set). Reports `path: error: tensor `name`: ...`.
static int parse_entry(Diag *d, const char *path, const char *name, json_t *v, StTensor *t) {
    if (!json_is_object(v)) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: header entry must be an object, found %s", name, kind_of(v));
        return -1;
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    const char *miss = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (miss) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: missing `%s`", name, miss);
        return -1;
    }
    if (!json_is_string(dt)) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: `dtype` must be a string, found %s", name, kind_of(dt));
        return -1;
    }
    int k = st_dtype_from_name(json_string_value(dt));
    if (k < 0) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: unknown dtype `%s`", name, json_string_value(dt));
        diag_hint(d, "known dtypes: BOOL U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64 "
                     "F4 F6_E2M3 F6_E3M2 C64");
        return -1;
    }
    t->dtype = (StDtype)k;
    if (!json_is_array(sh)) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: `shape` must be an array, found %s", name, kind_of(sh));
        return -1;
    }
    size_t nd = json_array_size(sh);
    if (nd > ST_MAX_DIMS) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: %zu dimensions, at most %d are supported", name, nd, ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *x = json_array_get(sh, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0) {
            diag_file_error(d, path, 0, 0, "tensor `%s`: shape[%zu] must be a non-negative integer", name, i);
            return -1;
        }
        t->shape[i] = (int64_t)json_integer_value(x);
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel) || numel > (uint64_t)INT64_MAX) {
            diag_file_error(d, path, 0, 0, "tensor `%s`: the shape's element count overflows 64 bits", name);
            return -1;
        }
    }
    t->numel = (int64_t)numel;
    uint64_t bits;
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[k].bits, &bits)) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: the shape's byte size overflows 64 bits", name);
        return -1;
    }
    if (bits % 8) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: %llu elements of %s do not fill a whole number of bytes",
                        name, (unsigned long long)numel, dtypes[k].name);
        return -1;
    }
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1)) || json_integer_value(json_array_get(off, 0)) < 0 ||
        json_integer_value(json_array_get(off, 1)) < 0) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: `data_offsets` must be [begin, end] with non-negative integers",
                        name);
        return -1;
    }
    uint64_t b = (uint64_t)json_integer_value(json_array_get(off, 0));
    uint64_t e = (uint64_t)json_integer_value(json_array_get(off, 1));
    if (e < b) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: data_offsets [%llu, %llu] end before they begin", name,
                        (unsigned long long)b, (unsigned long long)e);
        return -1;
    }
    if (e - b != bits / 8) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: data_offsets [%llu, %llu] span %llu bytes, but %s shape of "
                        "%llu elements needs %llu", name, (unsigned long long)b, (unsigned long long)e,
                        (unsigned long long)(e - b), dtypes[k].name, (unsigned long long)numel,
                        (unsigned long long)(bits / 8));
        return -1;
    }
    if (b > SIZE_MAX || e > SIZE_MAX) {
        diag_file_error(d, path, 0, 0, "tensor `%s`: data_offsets too large", name);
        return -1;
    }
    t->offset = (size_t)b;
    t->nbytes = (size_t)(e - b);
    return 0;
}

static int parse_metadata(Diag *d, const char *path, json_t *m, StFile *f) {
    if (!json_is_object(m)) {
        diag_file_error(d, path, 0, 0, "`__metadata__` must be an object of strings, found %s", kind_of(m));
        return -1;
    }
    size_t n = json_object_size(m);
    f->meta_k = calloc(n ? n : 1, sizeof(char *));
    f->meta_v = calloc(n ? n : 1, sizeof(char *));
    if (!f->meta_k || !f->meta_v) {
        diag_file_error(d, path, 0, 0, "out of memory");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v)) {
            diag_file_error(d, path, 0, 0, "`__metadata__`: value of `%s` must be a string, found %s", k, kind_of(v));
            return -1;
        }
        f->meta_k[f->nmeta] = strdup(k);
        f->meta_v[f->nmeta] = strdup(json_string_value(v));
        if (!f->meta_k[f->nmeta] || !f->meta_v[f->nmeta]) {
            free(f->meta_k[f->nmeta]);
            free(f->meta_v[f->nmeta]);
            diag_file_error(d, path, 0, 0, "out of memory");
            return -1;
        }
        f->nmeta++;
    }
    return 0;
}

// Validates f->base[0..size) and fills the tensor table.
static int parse_file(Diag *d, StFile *f) {
    const char *path = f->path;
    if (f->size < 8) {
        diag_file_error(d, path, 0, 0, "%zu bytes is too short for a safetensors file (the header length "
                        "alone is 8 bytes)", f->size);
        return -1;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | f->base[i];
    if (n > ST_MAX_HEADER) {
        diag_file_error(d, path, 0, 0, "header length %llu exceeds the limit of %u bytes (not a safetensors "
                        "file?)", (unsigned long long)n, ST_MAX_HEADER);
        return -1;
    }
    if (n > f->size - 8) {
        diag_file_error(d, path, 0, 0, "header length %llu runs past the end of the file (%zu bytes)",
                        (unsigned long long)n, f->size);
        return -1;
    }
    const char *hdr = (const char *)f->base + 8;
    if (n == 0 || hdr[0] != '{') {
        diag_file_error(d, path, 0, 0, "the header must be a JSON object starting with `{`");
        return -1;
    }
    json_error_t err;
    json_t *root = json_loadb(hdr, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (strstr(err.text, "\\u0000"))   // valid JSON, but a C string cannot hold it
            diag_file_error(d, path, 0, 0, "a name or metadata string in the header contains \\u0000 (NUL), "
                            "which trlc does not support");
        else
            diag_file_error(d, path, 0, 0, "invalid header JSON at byte %d of the header: %s", err.position,
                            err.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        diag_file_error(d, path, 0, 0, "the header must be a JSON object, found %s", kind_of(root));
        goto out;
    }
    size_t cap = json_object_size(root);
    f->t = calloc(cap ? cap : 1, sizeof(StTensor));
    if (!f->t) {
        diag_file_error(d, path, 0, 0, "out of memory for %zu header entries", cap);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {   // null is allowed (an absent map, as the reference reads it)
            if (!json_is_null(v) && parse_metadata(d, path, v, f)) goto out;
            continue;
        }
        StTensor *t = &f->t[f->n];
        memset(t, 0, sizeof *t);
        if (parse_entry(d, path, key, v, t)) goto out;
        t->name = strdup(key);
        if (!t->name) {
            diag_file_error(d, path, 0, 0, "out of memory");
            goto out;
        }
        t->file = f->path;
        f->n++;
    }
    qsort(f->t, f->n, sizeof(StTensor), cmp_offset);
    // The tensors must tile the data section exactly: start at 0, no gap, no overlap.
    size_t end = 0;
    for (size_t i = 0; i < f->n; i++) {
        StTensor *t = &f->t[i];
        if (t->offset > end) {
            if (i == 0)
                diag_file_error(d, path, 0, 0, "tensor `%s`: data starts at offset %zu, but the first tensor must "
                                "start at 0", t->name, t->offset);
            else
                diag_file_error(d, path, 0, 0, "tensor `%s`: gap of %zu bytes before its data_offsets [%zu, %zu] "
                                "(tensor `%s` ends at %zu)", t->name, t->offset - end, t->offset,
                                t->offset + t->nbytes, f->t[i - 1].name, end);
            goto out;
        }
        if (t->offset < end) {
            diag_file_error(d, path, 0, 0, "tensor `%s`: data_offsets [%zu, %zu] overlap tensor `%s`, which ends "
                            "at %zu", t->name, t->offset, t->offset + t->nbytes, f->t[i - 1].name, end);
            goto out;
        }
        end = t->offset + t->nbytes;
    }
    size_t data = f->size - 8 - (size_t)n;
    if (end != data) {
        if (end > data)
            diag_file_error(d, path, 0, 0, "truncated: the tensors need %zu bytes of data, the file has %zu%s%s%s",
                            end, data, f->n ? " (last tensor `" : "", f->n ? f->t[f->n - 1].name : "",
                            f->n ? "`)" : "");
        else
            diag_file_error(d, path, 0, 0, "%zu trailing bytes after the last tensor's data (the tensors cover "
                            "%zu of %zu bytes)", data - end, end, data);
        goto out;
    }
    const uint8_t *base = f->base + 8 + n;
    for (size_t i = 0; i < f->n; i++) f->t[i].data = base + f->t[i].offset;
    f->by_name = malloc((f->n ? f->n : 1) * sizeof(StTensor *));
    if (!f->by_name) {
        diag_file_error(d, path, 0, 0, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->t[i];
    qsort((void *)f->by_name, f->n, sizeof(StTensor *), cmp_tensor_ptr);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

StFile *st_open_buffer(Diag *d, const char *name, const void *buf, size_t len) {
    StFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        free(f);
        diag_file_error(d, name, 0, 0, "out of memory");
        return NULL;
    }
    f->base = buf;
    f->size = len;
    if (parse_file(d, f)) {
        file_free(f);
        return NULL;
    }
    return f;
}

StFile *st_open(Diag *d, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);   // a FIFO must not block the open
    if (fd < 0) {
        diag_file_error(d, path, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        diag_file_error(d, path, 0, 0, "not a regular file");
        close(fd);
        return NULL;
    }
    StFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        diag_file_error(d, path, 0, 0, "out of memory");
        return NULL;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            diag_file_error(d, path, 0, 0, "cannot map %zu bytes: %s", f->size, strerror(errno));
            close(fd);
            file_free(f);
            return NULL;
        }
        f->base = m;
        f->mapped = true;
    }
    close(fd);
    if (parse_file(d, f)) {
        file_free(f);
        return NULL;
    }
    return f;
}

const char *st_file_path(const StFile *f) { return f->path; }
size_t st_count(const StFile *f) { return f->n; }
const StTensor *st_tensor(const StFile *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }

const StTensor *st_find(const StFile *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *st_metadata(const StFile *f, const char *key) {
    for (size_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_k[i], key)) return f->meta_v[i];
    return NULL;
}
size_t st_metadata_count(const StFile *f) { return f->nmeta; }
const char *st_metadata_key(const StFile *f, size_t i) { return i < f->nmeta ? f->meta_k[i] : NULL; }
const char *st_metadata_value(const StFile *f, size_t i) { return i < f->nmeta ? f->meta_v[i] : NULL; }

// n little-endian integers of `bytes` bytes each (2, 4 or 8; two's complement where is_signed)
// as floats: each value rounded to the nearest float.
static void ints_to_f32(const uint8_t *p, size_t n, int bytes, bool is_signed, float *out /* (n) */) {
    const int bits = 8 * bytes;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        for (int b = bytes - 1; b >= 0; b--) u = u << 8 | p[(size_t)bytes * i + (size_t)b];
        if (is_signed && bits < 64 && (u >> (bits - 1) & 1)) u |= ~(uint64_t)0 << bits;   // sign extension
        out[i] = is_signed ? (float)(int64_t)u : (float)u;
    }
}

int st_to_f32(Diag *d, const StTensor *t, float *out /* (numel) */) {
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, n * 4); return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) out[i] = st_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++) out[i] = st_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double x;
            memcpy(&x, p + 8 * i, 8);
            out[i] = (float)x;
        }
        return 0;
    case ST_BOOL:
        for (size_t i = 0; i < n; i++) out[i] = p[i] ? 1.0f : 0.0f;
        return 0;
    case ST_U8:
        for (size_t i = 0; i < n; i++) out[i] = (float)p[i];
        return 0;
    case ST_I8:
        for (size_t i = 0; i < n; i++) out[i] = (float)(int8_t)p[i];
        return 0;
    case ST_F8_E4M3:
        for (size_t i = 0; i < n; i++) out[i] = f8e4m3_to_f32(p[i]);
        return 0;
    case ST_F8_E5M2:
        for (size_t i = 0; i < n; i++) out[i] = f8e5m2_to_f32(p[i]);
        return 0;
    case ST_F8_E8M0:
        for (size_t i = 0; i < n; i++) out[i] = f8e8m0_to_f32(p[i]);
        return 0;
    case ST_I16:
    case ST_U16: ints_to_f32(p, n, 2, t->dtype == ST_I16, out); return 0;
    case ST_I32:
    case ST_U32: ints_to_f32(p, n, 4, t->dtype == ST_I32, out); return 0;
    case ST_I64:
    case ST_U64: ints_to_f32(p, n, 8, t->dtype == ST_I64, out); return 0;
    case ST_F4:
    case ST_F6_E2M3:
    case ST_F6_E3M2:
    case ST_C64:
    case ST_NDTYPES: break;
    }
    diag_file_error(d, t->file, 0, 0, "tensor `%s`: cannot convert dtype %s to float32", t->name,
                    st_dtype_name(t->dtype));
    return -1;
}

// ---------------------------------------------------------------- writing

typedef struct StWEntry {
    char *name;
    StDtype dtype;          // as written
    bool from_f32;          // data are floats converted at write time
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    uint64_t nbytes;        // as written
} StWEntry;

struct StWriter {
    StWEntry *e;
    size_t n, cap;
    char **meta_k, **meta_v;
    size_t nmeta, capmeta;
    size_t *slot;       // (nslot) open-addressing index of e by name: i + 1, 0 = empty
    size_t nslot;       // a power of two, at least 2 * n (the duplicate check was O(n) per add)
};

static size_t name_hash(const char *s) {
    size_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

// The slot holding `name`, or the empty slot where it goes. nslot > n, so there is one.
static size_t *writer_slot(const StWriter *w, const char *name) {
    size_t m = w->nslot - 1, i = name_hash(name) & m;
    while (w->slot[i] && strcmp(w->e[w->slot[i] - 1].name, name)) i = (i + 1) & m;
    return &w->slot[i];
}

// Keeps nslot >= 2 * (n + 1). 0, or -1 when out of memory.
static int writer_grow_index(StWriter *w) {
    if (w->nslot >= 2 * (w->n + 1)) return 0;
    size_t ns = w->nslot ? 2 * w->nslot : 128;
    size_t *slot = calloc(ns, sizeof *slot);
    if (!slot) return -1;
    free(w->slot);
    w->slot = slot;
    w->nslot = ns;
    for (size_t i = 0; i < w->n; i++) *writer_slot(w, w->e[i].name) = i + 1;
    return 0;
}

StWriter *st_writer_new(void) { return calloc(1, sizeof(StWriter)); }

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->meta_k[i]);
        free(w->meta_v[i]);
    }
    free(w->e);
    free(w->slot);
    free(w->meta_k);
    free(w->meta_v);
    free(w);
}

size_t st_writer_count(const StWriter *w) { return w->n; }

uint64_t st_writer_data_bytes(const StWriter *w) {
    uint64_t s = 0;
    for (size_t i = 0; i < w->n; i++) s += w->e[i].nbytes;
    return s;
}

static int writer_add(Diag *d, StWriter *w, const char *name, StDtype dtype, bool from_f32, int ndim,
                      const int64_t *shape, const void *data) {
    if ((unsigned)dtype >= ST_NDTYPES) {
        diag_plain_error(d, "safetensors writer: tensor `%s`: bad dtype %d", name, (int)dtype);
        return -1;
    }
    if (!name[0] || !strcmp(name, "__metadata__")) {
        diag_plain_error(d, "safetensors writer: invalid tensor name `%s`", name);
        return -1;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS) {
        diag_plain_error(d, "safetensors writer: tensor `%s`: %d dimensions (0 to %d allowed)", name, ndim,
                         ST_MAX_DIMS);
        return -1;
    }
    uint64_t numel = 1, bits;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(numel, (uint64_t)shape[i], &numel)) {
            diag_plain_error(d, "safetensors writer: tensor `%s`: bad shape", name);
            return -1;
        }
    }
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[dtype].bits, &bits) || bits % 8 || numel > INT64_MAX) {
        diag_plain_error(d, "safetensors writer: tensor `%s`: size is not a whole number of bytes or overflows",
                         name);
        return -1;
    }
    if (writer_grow_index(w)) {
        diag_plain_error(d, "out of memory");
        return -1;
    }
    size_t *slot = writer_slot(w, name);
    if (*slot) {
        diag_plain_error(d, "safetensors writer: tensor `%s` added twice", name);
        return -1;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 64;
        StWEntry *ne = realloc(w->e, nc * sizeof *ne);
        if (!ne) {
            diag_plain_error(d, "out of memory");
            return -1;
        }
        w->e = ne;
        w->cap = nc;
    }
    StWEntry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) {
        diag_plain_error(d, "out of memory");
        return -1;
    }
    e->dtype = dtype;
    e->from_f32 = from_f32;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = bits / 8;
    *slot = ++w->n;
    return 0;
}

int st_writer_add(Diag *d, StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *data) {
    return writer_add(d, w, name, dtype, false, ndim, shape, data);
}

int st_writer_add_f32(Diag *d, StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                      const float *data) {
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16) {
        diag_plain_error(d, "safetensors writer: tensor `%s`: float data can be written as F32, F16 or BF16, "
                         "not %s", name, st_dtype_name(dtype));
        return -1;
    }
    return writer_add(d, w, name, dtype, dtype != ST_F32, ndim, shape, data);
}

int st_writer_set_metadata(StWriter *w, const char *key, const char *value) {
    for (size_t i = 0; i < w->nmeta; i++)
        if (!strcmp(w->meta_k[i], key)) {
            char *v = strdup(value);
            if (!v) return -1;
            free(w->meta_v[i]);
            w->meta_v[i] = v;
            return 0;
        }
    if (w->nmeta == w->capmeta) {
        size_t nc = w->capmeta ? 2 * w->capmeta : 8;
        char **nk = realloc(w->meta_k, nc * sizeof(char *));
        if (!nk) return -1;
        w->meta_k = nk;
        char **nv = realloc(w->meta_v, nc * sizeof(char *));
        if (!nv) return -1;
        w->meta_v = nv;
        w->capmeta = nc;
    }
    w->meta_k[w->nmeta] = strdup(key);
    w->meta_v[w->nmeta] = strdup(value);
    if (!w->meta_k[w->nmeta] || !w->meta_v[w->nmeta]) {
        free(w->meta_k[w->nmeta]);
        free(w->meta_v[w->nmeta]);
        return -1;
    }
    w->nmeta++;
    return 0;
}

// Largest element first (keeps every tensor aligned to its element size), then by name.
static int cmp_wentry(const void *a, const void *b) {
    const StWEntry *x = a, *y = b;
    int bx = dtypes[x->dtype].bits, by = dtypes[y->dtype].bits;
    if (bx != by) return bx > by ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int write_data(FILE *fp, const StWEntry *e) {
    if (!e->from_f32) return e->nbytes == 0 || fwrite(e->data, 1, (size_t)e->nbytes, fp) == e->nbytes ? 0 : -1;
    const float *src = e->data;
    size_t n = (size_t)(e->nbytes / 2);
    uint8_t buf[8192];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 2 && i < n; k++, i++) {
            uint16_t h = e->dtype == ST_BF16 ? st_f32_to_bf16(src[i]) : st_f32_to_f16(src[i]);
            buf[2 * k] = (uint8_t)h;
            buf[2 * k + 1] = (uint8_t)(h >> 8);
        }
        if (fwrite(buf, 2, k, fp) != k) return -1;
    }
    return 0;
}

int st_writer_write(Diag *d, StWriter *w, const char *path) {
    if (w->n > 1) {
        qsort(w->e, w->n, sizeof(StWEntry), cmp_wentry);
        memset(w->slot, 0, w->nslot * sizeof *w->slot);   // the index follows the new order
        for (size_t i = 0; i < w->n; i++) *writer_slot(w, w->e[i].name) = i + 1;
    }
    json_t *root = json_object(), *meta = json_object();
    int rc = -1;
    char *hdr = NULL, *tmp = NULL;
    FILE *fp = NULL;
    if (!root || !meta) goto oom;
    if (json_object_set_new(meta, "format", json_string("pt"))) goto oom;
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_k[i], "format") && json_object_set_new(meta, w->meta_k[i], json_string(w->meta_v[i])))
            goto oom;
    if (json_object_set_new(root, "__metadata__", meta)) {
        meta = NULL;
        goto oom;
    }
    meta = NULL;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const StWEntry *e = &w->e[i];
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !t || !shape || !offs;
        for (int k = 0; !bad && k < e->ndim; k++) bad |= json_array_append_new(shape, json_integer(e->shape[k]));
        if (!bad) bad |= json_array_append_new(offs, json_integer((json_int_t)off));
        if (!bad) bad |= json_array_append_new(offs, json_integer((json_int_t)(off + e->nbytes)));
        if (!bad) bad |= json_object_set_new(t, "dtype", json_string(dtypes[e->dtype].name));
        if (!bad) {
            bad |= json_object_set_new(t, "shape", shape);
            shape = NULL;
        }
        if (!bad) {
            bad |= json_object_set_new(t, "data_offsets", offs);
            offs = NULL;
        }
        json_decref(shape);
        json_decref(offs);
        if (bad || json_object_set_new(root, e->name, t)) {
            if (bad) json_decref(t);
            goto oom;
        }
        off += e->nbytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) goto oom;
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    size_t plen = strlen(path) + 32;
    tmp = malloc(plen);
    if (!tmp) goto oom;
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    fp = fopen(tmp, "wb");
    if (!fp) {
        diag_file_error(d, path, 0, 0, "cannot create `%s`: %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int bad = fwrite(len8, 1, 8, fp) != 8 || fwrite(hdr, 1, hlen, fp) != hlen;
    for (size_t i = hlen; !bad && i < padded; i++) bad = fputc(' ', fp) == EOF;
    for (size_t i = 0; !bad && i < w->n; i++) bad = write_data(fp, &w->e[i]) != 0;
    if (!bad && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) bad = 1;   // durable before the rename
    if (fclose(fp) != 0) bad = 1;
    fp = NULL;
    if (bad) {
        diag_file_error(d, path, 0, 0, "cannot write `%s`: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        diag_file_error(d, path, 0, 0, "cannot rename `%s` into place: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
    goto out;
oom:
    diag_file_error(d, path, 0, 0, "out of memory writing the header");
out:
    if (fp) {
        fclose(fp);
        unlink(tmp);
    }
    json_decref(meta);
    json_decref(root);
    free(hdr);
    free(tmp);
    return rc;
}

// ---------------------------------------------------------------- checkpoints

struct StCheckpoint {
    char *path;
    StFile **shards;
    size_t nshards;
    const StTensor **t;     // sorted by name
    size_t n;
};

void st_checkpoint_close(StCheckpoint *ck) {
    if (!ck) return;
    for (size_t i = 0; i < ck->nshards; i++) st_close(ck->shards[i]);
    free(ck->shards);
    free((void *)ck->t);
    free(ck->path);
    free(ck);
}

char *st_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir), m = strlen(name);
    char *s = malloc(n + m + 2);
    if (!s) return NULL;
    memcpy(s, dir, n);
    size_t k = n;
    if (n && dir[n - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, m + 1);
    return s;
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int open_index(Diag *d, StCheckpoint *ck, const char *index) {
    struct stat st;
    if (stat(index, &st) != 0) {
        diag_file_error(d, index, 0, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_file_error(d, index, 0, 0, "not a regular file");
        return -1;
    }
    if (st.st_size > ST_MAX_INDEX_BYTES) {
        diag_file_error(d, index, 0, 0, "%lld bytes is too large for a safetensors index", (long long)st.st_size);
        return -1;
    }
    json_error_t err;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        diag_file_error(d, index, err.line, err.column, "invalid JSON: %s", err.text);
        return -1;
    }
    int rc = -1;
    char *dir = strdup(index), **names = NULL;
    json_t *wm = json_object_get(root, "weight_map");
    if (!dir) goto out;
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    if (!json_is_object(root) || !wm || !json_is_object(wm)) {
        diag_file_error(d, index, 0, 0, "missing `weight_map` object (not a safetensors index?)");
        goto out;
    }
    json_t *meta = json_object_get(root, "metadata");
    if (meta && !json_is_null(meta) && !json_is_object(meta)) {
        diag_file_error(d, index, 0, 0, "`metadata` must be an object, found %s", kind_of(meta));
        goto out;
    }
    size_t n = json_object_size(wm);
    names = calloc(n ? n : 1, sizeof(char *));
    ck->shards = calloc(n ? n : 1, sizeof(StFile *));
    ck->t = calloc(n ? n : 1, sizeof(StTensor *));
    if (!names || !ck->shards || !ck->t) {
        diag_file_error(d, index, 0, 0, "out of memory");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            diag_file_error(d, index, 0, 0, "weight_map: tensor `%s` maps to %s, expected a shard file name", key,
                            kind_of(v));
            goto out;
        }
        const char *shard = json_string_value(v);
        if (!shard[0] || strchr(shard, '/') || !strcmp(shard, "..") || !strcmp(shard, ".")) {
            diag_file_error(d, index, 0, 0, "weight_map: tensor `%s`: shard `%s` must be a file name in the same "
                            "directory", key, shard);
            goto out;
        }
        size_t s = 0;
        while (s < ck->nshards && strcmp(names[s], shard)) s++;
        if (s == ck->nshards) {
            char *p = st_path_join(dir, shard);
            if (!p) {
                diag_file_error(d, index, 0, 0, "out of memory");
                goto out;
            }
            if (!is_file(p)) {
                diag_file_error(d, index, 0, 0, "tensor `%s` is in shard `%s`, which does not exist", key, p);
                free(p);
                goto out;
            }
            ck->shards[s] = st_open(d, p);
            free(p);
            if (!ck->shards[s]) goto out;
            names[s] = (char *)shard;
            ck->nshards++;
        }
        const StTensor *t = st_find(ck->shards[s], key);
        if (!t) {
            diag_file_error(d, index, 0, 0, "tensor `%s` is listed in shard `%s`, but that shard does not contain it",
                            key, shard);
            goto out;
        }
        ck->t[ck->n++] = t;
    }
    rc = 0;
out:
    free(names);   // the strings belong to root
    free(dir);
    json_decref(root);
    return rc;
}

static int open_single(Diag *d, StCheckpoint *ck, const char *path) {
    ck->shards = calloc(1, sizeof(StFile *));
    if (!ck->shards) {
        diag_file_error(d, path, 0, 0, "out of memory");
        return -1;
    }
    if (!(ck->shards[0] = st_open(d, path))) return -1;
    ck->nshards = 1;
    size_t n = st_count(ck->shards[0]);
    ck->t = calloc(n ? n : 1, sizeof(StTensor *));
    if (!ck->t) {
        diag_file_error(d, path, 0, 0, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) ck->t[i] = st_tensor(ck->shards[0], i);
    ck->n = n;
    return 0;
}

StCheckpoint *st_checkpoint_open(Diag *d, const char *path) {
    StCheckpoint *ck = calloc(1, sizeof *ck);
    if (!ck) {
        diag_file_error(d, path, 0, 0, "out of memory");
        return NULL;
    }
    struct stat st;
    char *target = NULL;
    bool index = false;
    if (stat(path, &st) != 0) {
        diag_file_error(d, path, 0, 0, "no such file or directory");
    } else if (S_ISDIR(st.st_mode)) {
        char *idx = st_path_join(path, "model.safetensors.index.json"), *one = st_path_join(path, "model.safetensors");
        if (!idx || !one) diag_file_error(d, path, 0, 0, "out of memory");
        else if (is_file(one)) {   // transformers' order: model.safetensors first, then the index
            target = one;
            one = NULL;
        } else if (is_file(idx)) {
            target = idx;
            idx = NULL;
            index = true;
        } else
            diag_file_error(d, path, 0, 0, "no model.safetensors or model.safetensors.index.json in this directory");
        free(idx);
        free(one);
    } else {
        size_t len = strlen(path);
        index = len >= 5 && !strcmp(path + len - 5, ".json");
        if (!(target = strdup(path))) diag_file_error(d, path, 0, 0, "out of memory");
    }
    ck->path = target;
    if (!target || (index ? open_index(d, ck, target) : open_single(d, ck, target))) {
        st_checkpoint_close(ck);
        return NULL;
    }
    qsort((void *)ck->t, ck->n, sizeof(StTensor *), cmp_tensor_ptr);
    return ck;
}

const StTensor *st_checkpoint_find(const StCheckpoint *ck, const char *name) {
    size_t lo = 0, hi = ck->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->t[mid]->name, name);
        if (c == 0) return ck->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

size_t st_checkpoint_count(const StCheckpoint *ck) { return ck->n; }
const StTensor *st_checkpoint_tensor(const StCheckpoint *ck, size_t i) { return i < ck->n ? ck->t[i] : NULL; }
const char *st_checkpoint_path(const StCheckpoint *ck) { return ck->path; }

int st_checkpoint_read_f32(Diag *d, const StCheckpoint *ck, const char *name, int ndim, const int64_t *shape,
                           float *out) {
    const StTensor *t = st_checkpoint_find(ck, name);
    if (!t) {
        diag_file_error(d, ck->path, 0, 0, "no tensor `%s` in this checkpoint", name);
        return -1;
    }
    bool same = t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char want[160], got[160];
        size_t a = 0, b = 0;
        want[0] = got[0] = 0;
        for (int k = 0; k < ndim && k < ST_MAX_DIMS && a < sizeof want; k++)
            a += (size_t)snprintf(want + a, sizeof want - a, "%s%lld", k ? ", " : "", (long long)shape[k]);
        for (int k = 0; k < t->ndim && b < sizeof got; k++)
            b += (size_t)snprintf(got + b, sizeof got - b, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
        diag_file_error(d, t->file, 0, 0, "tensor `%s` has shape [%s], expected [%s]", name, got, want);
        return -1;
    }
    return st_to_f32(d, t, out);
}
