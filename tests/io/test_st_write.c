// test_st_write.c — the safetensors writer: a round trip of every tensor of the python-written
// dtypes.safetensors (same bytes, shapes, metadata), byte-identical to the committed
// fixtures/dtypes.trlc.safetensors (which tests/io/check_trlc_written.py verifies python reads
// identically), header padding and tensor alignment, f32 → bf16/f16 at write time bit-identical to
// torch, and the writer's errors.
#include "safetensors.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char src[1024], bin[1024];

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void test_roundtrip(Diag *d) {
    char in[2048], out[2048], golden[2048];
    snprintf(in, sizeof in, "%s/fixtures/dtypes.safetensors", src);
    snprintf(out, sizeof out, "%s/dtypes.trlc.safetensors", bin);
    snprintf(golden, sizeof golden, "%s/fixtures/dtypes.trlc.safetensors", src);
    StFile *f = st_open(d, in);
    CHECK(f != NULL);
    if (!f) return;
    StWriter *w = st_writer_new();
    for (size_t i = 0; i < st_count(f); i++) {
        const StTensor *t = st_tensor(f, i);
        CHECK(st_writer_add(d, w, t->name, t->dtype, t->ndim, t->shape, t->data) == 0);
    }
    for (size_t i = 0; i < st_metadata_count(f); i++)
        CHECK(st_writer_set_metadata(w, st_metadata_key(f, i), st_metadata_value(f, i)) == 0);
    CHECK(st_writer_count(w) == st_count(f));
    CHECK(st_writer_write(d, w, out) == 0);
    st_writer_free(w);

    StFile *g = st_open(d, out);
    CHECK(g != NULL);
    if (g) {
        CHECK(st_count(g) == st_count(f));
        for (size_t i = 0; i < st_count(f); i++) {
            const StTensor *a = st_tensor(f, i), *b = st_find(g, a->name);
            CHECK_MSG(b != NULL, "%s", a->name);
            if (!b) continue;
            CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes);
            for (int k = 0; k < a->ndim; k++) CHECK(a->shape[k] == b->shape[k]);
            CHECK_MSG(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0, "%s: bytes differ", a->name);
        }
        CHECK(st_metadata_count(g) == 3);
        CHECK(!strcmp(st_metadata(g, "format"), "pt") && !strcmp(st_metadata(g, "unicode"), "é✓ 你好"));
        // tensors ordered by element size (largest first) then name: each lies aligned
        for (size_t i = 0; i < st_count(g); i++) {
            const StTensor *t = st_tensor(g, i);
            int bytes = st_dtype_bits(t->dtype) / 8;
            CHECK_MSG(bytes == 0 || t->offset % (size_t)bytes == 0, "%s misaligned", t->name);
            if (i > 0) {
                const StTensor *p = st_tensor(g, i - 1);
                if (t->nbytes && p->nbytes)
                    CHECK(st_dtype_bits(p->dtype) > st_dtype_bits(t->dtype) ||
                          (st_dtype_bits(p->dtype) == st_dtype_bits(t->dtype) && strcmp(p->name, t->name) < 0));
            }
        }
        st_close(g);
    }
    size_t n = 0, m = 0;
    uint8_t *x = slurp(out, &n), *y = slurp(golden, &m);
    CHECK(x && n >= 8);
    uint64_t hlen = 0;
    for (int i = 7; x && i >= 0; i--) hlen = hlen << 8 | x[i];
    CHECK(hlen % 8 == 0);
    CHECK(x && hlen > 0 && 8 + hlen <= n && (x[8 + hlen - 1] == ' ' || x[8 + hlen - 1] == '}'));
    CHECK_MSG(y != NULL, "missing %s (copy %s there, then run tests/io/check_trlc_written.py)", golden, out);
    CHECK_MSG(x && y && n == m && memcmp(x, y, n) == 0, "%s differs from the committed %s", out, golden);
    free(x);
    free(y);
    st_close(f);
}

static void test_f32_conversion(Diag *d) {
    char in[2048], out[2048];
    snprintf(in, sizeof in, "%s/fixtures/dtypes.safetensors", src);
    snprintf(out, sizeof out, "%s/conv.safetensors", bin);
    StFile *f = st_open(d, in);
    if (!f) {
        CHECK(0);
        return;
    }
    const StTensor *s = st_find(f, "conv_src");
    float *v = malloc((size_t)s->numel * sizeof(float));
    CHECK(st_to_f32(d, s, v) == 0);
    StWriter *w = st_writer_new();
    CHECK(st_writer_add_f32(d, w, "as_bf16", ST_BF16, 1, s->shape, v) == 0);
    CHECK(st_writer_add_f32(d, w, "as_f16", ST_F16, 1, s->shape, v) == 0);
    CHECK(st_writer_add_f32(d, w, "as_f32", ST_F32, 1, s->shape, v) == 0);
    CHECK(st_writer_data_bytes(w) == (uint64_t)s->numel * 8);
    CHECK(st_writer_write(d, w, out) == 0);
    st_writer_free(w);
    StFile *g = st_open(d, out);
    CHECK(g != NULL);
    if (g) {
        const char *pairs[3][2] = {{"as_bf16", "conv_bf16"}, {"as_f16", "conv_f16"}, {"as_f32", "conv_src"}};
        for (int k = 0; k < 3; k++) {
            const StTensor *a = st_find(g, pairs[k][0]), *b = st_find(f, pairs[k][1]);
            CHECK(a && b && a->nbytes == b->nbytes && a->dtype == b->dtype);
            int diff = 0;
            for (int64_t i = 0; a && b && i < a->numel; i++) {
                if (isnan(v[i])) continue;   // any NaN will do (torch's vector path writes 0xffff)
                size_t e = a->nbytes / (size_t)a->numel;
                diff += memcmp((const char *)a->data + e * i, (const char *)b->data + e * i, e) != 0;
            }
            CHECK_MSG(diff == 0, "%s: %d values differ from torch", pairs[k][0], diff);
        }
        st_close(g);
    }
    free(v);
    st_close(f);
}

static void test_errors(Diag *d) {
    FILE *devnull = fopen("/dev/null", "w");
    Diag q;
    diag_init(&q, devnull);
    float x[4] = {1, 2, 3, 4};
    int64_t sh[2] = {2, 2}, neg[1] = {-1};
    StWriter *w = st_writer_new();
    CHECK(st_writer_add_f32(&q, w, "a", ST_F32, 2, sh, x) == 0);
    CHECK(st_writer_add_f32(&q, w, "a", ST_F32, 2, sh, x) != 0);          // duplicate
    CHECK(st_writer_add_f32(&q, w, "b", ST_I32, 2, sh, x) != 0);          // floats as I32
    CHECK(st_writer_add(&q, w, "c", ST_F32, 1, neg, x) != 0);             // negative dim
    CHECK(st_writer_add(&q, w, "__metadata__", ST_F32, 2, sh, x) != 0);   // reserved name
    CHECK(st_writer_add(&q, w, "", ST_F32, 2, sh, x) != 0);
    CHECK(st_writer_add(&q, w, "d", ST_F4, 1, (int64_t[]){3}, x) != 0);   // 12 bits
    CHECK(q.errors == 6);
    char out[2048];
    snprintf(out, sizeof out, "%s/no/such/dir/x.safetensors", bin);
    CHECK(st_writer_write(&q, w, out) != 0);
    CHECK(q.errors == 7);
    st_writer_free(w);
    // An empty writer gives a valid file with only the metadata.
    snprintf(out, sizeof out, "%s/empty.safetensors", bin);
    w = st_writer_new();
    CHECK(st_writer_write(d, w, out) == 0);
    st_writer_free(w);
    StFile *f = st_open(d, out);
    CHECK(f && st_count(f) == 0 && !strcmp(st_metadata(f, "format"), "pt"));
    st_close(f);
    diag_free(&q);
    fclose(devnull);
}

int main(int argc, char **argv) {
    snprintf(src, sizeof src, "%s", argc > 1 ? argv[1] : ".");
    snprintf(bin, sizeof bin, "%s", argc > 2 ? argv[2] : ".");
    Diag d;
    diag_init(&d, stderr);
    test_roundtrip(&d);
    test_f32_conversion(&d);
    test_errors(&d);
    CHECK(d.errors == 0);
    diag_free(&d);
    return test_done("io.st_write");
}
