// test_st_read.c — reading files written by the python `safetensors` library (every dtype, a
// scalar, zero-size dims, metadata) and checking values against torch's float64 conversion;
// torch's f32 → bf16/f16 rounding; sharded and single-file checkpoints saved by transformers.
#include "safetensors.h"
#include "test.h"
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char src[1024], bin[1024];

static const char *fx(const char *rel) {
    static char buf[8][8192 + 64];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%.4096s/%.4096s", src, rel);
    return b;
}

static uint16_t u16_at(const StTensor *t, int64_t i) {
    const uint8_t *p = t->data;
    return (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
}

static void test_dtypes(Diag *d) {
    StFile *f = st_open(d, fx("fixtures/dtypes.safetensors"));
    StFile *e = st_open(d, fx("fixtures/dtypes_expected.safetensors"));
    CHECK(f && e);
    if (!f || !e) return;
    CHECK(st_count(f) == 21);
    CHECK(!strcmp(st_metadata(f, "format"), "pt"));
    CHECK(!strcmp(st_metadata(f, "author"), "trlc tests"));
    CHECK(!strcmp(st_metadata(f, "unicode"), "é✓ 你好"));
    CHECK(st_metadata(f, "nope") == NULL);
    CHECK(st_metadata_count(f) == 3);
    static const struct { const char *name, *dtype; } dt[] = {
        {"f32", "F32"}, {"f16", "F16"}, {"bf16", "BF16"}, {"f64", "F64"}, {"i8", "I8"}, {"u8", "U8"},
        {"i16", "I16"}, {"u16", "U16"}, {"i32", "I32"}, {"u32", "U32"}, {"i64", "I64"}, {"u64", "U64"},
        {"bool", "BOOL"}, {"f8_e4m3", "F8_E4M3"}, {"f8_e5m2", "F8_E5M2"}, {"scalar", "F32"},
        {"empty_f32", "F32"}, {"empty_i64", "I64"}};
    int nconv = 0;
    double maxerr = 0;
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        const StTensor *t = st_find(f, dt[i].name), *x = st_find(e, dt[i].name);
        CHECK_MSG(t && x, "%s", dt[i].name);
        if (!t || !x) continue;
        CHECK_MSG(!strcmp(st_dtype_name(t->dtype), dt[i].dtype), "%s: %s", dt[i].name, st_dtype_name(t->dtype));
        CHECK(x->dtype == ST_F64);
        CHECK(t->ndim == x->ndim && t->numel == x->numel);
        for (int k = 0; k < t->ndim && k < x->ndim; k++) CHECK(t->shape[k] == x->shape[k]);
        CHECK(t->nbytes == (size_t)t->numel * (size_t)st_dtype_bits(t->dtype) / 8);
        float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        CHECK(st_to_f32(d, t, v) == 0);
        for (int64_t k = 0; k < t->numel; k++) {
            double want;
            memcpy(&want, (const char *)x->data + 8 * k, 8);
            CHECK_MSG(v[k] == (float)want, "%s[%lld]: %.9g vs %.9g", dt[i].name, (long long)k, v[k], want);
            if (fabs(v[k] - (float)want) > maxerr) maxerr = fabs(v[k] - (float)want);
            nconv++;
        }
        free(v);
    }
    printf("dtypes: %d values compared with torch, max |diff| %g\n", nconv, maxerr);
    const StTensor *s = st_find(f, "scalar");
    CHECK(s && s->ndim == 0 && s->numel == 1 && s->nbytes == 4);
    const StTensor *z = st_find(f, "empty_f32");
    CHECK(z && z->ndim == 2 && z->shape[0] == 0 && z->shape[1] == 4 && z->numel == 0 && z->nbytes == 0);
    z = st_find(f, "empty_i64");
    CHECK(z && z->shape[0] == 3 && z->shape[1] == 0 && z->numel == 0);

    // f32 → bf16 / f16 exactly as torch rounds (ties to even, subnormals, overflow, NaN).
    const StTensor *cs = st_find(f, "conv_src"), *cb = st_find(f, "conv_bf16"), *ch = st_find(f, "conv_f16");
    CHECK(cs && cb && ch && cs->numel == cb->numel && cs->numel == ch->numel);
    int nb = 0;
    for (int64_t i = 0; cs && cb && ch && i < cs->numel; i++) {
        float x;
        memcpy(&x, (const char *)cs->data + 4 * i, 4);
        uint16_t b = st_f32_to_bf16(x), h = st_f32_to_f16(x);
        if (isnan(x)) {   // torch's vectorised path gives 0xffff, its scalar path 0x7fc0: any NaN
            CHECK(isnan(st_bf16_to_f32(b)) && isnan(st_bf16_to_f32(u16_at(cb, i))));
            CHECK(isnan(st_f16_to_f32(h)) && isnan(st_f16_to_f32(u16_at(ch, i))));
            nb++;
            continue;
        }
        CHECK_MSG(b == u16_at(cb, i), "bf16(%.9g): %04x vs torch %04x", x, b, u16_at(cb, i));
        CHECK_MSG(h == u16_at(ch, i), "f16(%.9g): %04x vs torch %04x", x, h, u16_at(ch, i));
        if (!isnan(x)) {
            // decoding: the rounded value, as float, is what torch's .float() gives back
            CHECK(st_bf16_to_f32(b) == st_bf16_to_f32(u16_at(cb, i)));
        }
        nb++;
    }
    printf("conversions: %d f32 values rounded to bf16 and f16 bit-identically to torch\n", nb);
    // f16 → f32 → f16 is the identity on every non-NaN pattern; bf16 likewise.
    int bad = 0;
    for (uint32_t u = 0; u < 65536; u++) {
        float a = st_f16_to_f32((uint16_t)u), b = st_bf16_to_f32((uint16_t)u);
        if (!isnan(a) && st_f32_to_f16(a) != u) bad++;
        if (!isnan(b) && st_f32_to_bf16(b) != u) bad++;
    }
    CHECK_MSG(bad == 0, "%d patterns do not round-trip", bad);
    st_close(f);
    st_close(e);
}

static void test_buffer(Diag *d) {
    // st_open_buffer on an exact-size heap copy: any read past the end is an ASan error.
    FILE *fp = fopen(fx("fixtures/dtypes.safetensors"), "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    char *exact = malloc(n);
    memcpy(exact, buf, n);
    StFile *f = st_open_buffer(d, "mem", exact, n);
    CHECK(f && st_count(f) == 21);
    const StTensor *t = f ? st_find(f, "i64") : NULL;
    CHECK(t && !strcmp(t->file, "mem"));
    st_close(f);
    free(exact);
    free(buf);
}

// Edge cases the reference accepts: no tensors, `__metadata__: null`, an unpadded header, extra
// keys in an entry, zero-size tensors sharing an offset.
static void test_edge_valid(Diag *d) {
    static const char *hdrs[] = {
        "{}",
        "{\"__metadata__\":null}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"extra\":[1,2,3]}}",
        "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
        "\"y\":{\"dtype\":\"F32\",\"shape\":[4,0],\"data_offsets\":[2,2]}}   ",
    };
    size_t ntens[] = {0, 0, 1, 3};
    for (int k = 0; k < 4; k++) {
        size_t hl = strlen(hdrs[k]), data = k >= 2 ? 2 : 0, n = 8 + hl + data;
        uint8_t *b = malloc(n);
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
        memcpy(b + 8, hdrs[k], hl);
        memset(b + 8 + hl, 7, data);
        StFile *f = st_open_buffer(d, "edge", b, n);
        CHECK_MSG(f && st_count(f) == ntens[k], "edge case %d", k);
        if (f && k == 3) {
            const StTensor *a = st_find(f, "a");
            CHECK(a && a->nbytes == 2 && ((const uint8_t *)a->data)[1] == 7 && st_find(f, "y")->numel == 0);
        }
        st_close(f);
        free(b);
    }
}

static void test_checkpoints(Diag *d) {
    StCheckpoint *ck = st_checkpoint_open(d, fx("../fixtures/tiny-llama"));
    CHECK(ck != NULL);
    if (ck) {
        CHECK(strstr(st_checkpoint_path(ck), "model.safetensors.index.json") != NULL);
        CHECK(st_checkpoint_count(ck) == 3 + 2 * 9);
        const StTensor *t = st_checkpoint_find(ck, "lm_head.weight");
        CHECK(t && t->dtype == ST_BF16 && t->shape[0] == 300 && t->shape[1] == 32);
        t = st_checkpoint_find(ck, "model.layers.1.mlp.down_proj.weight");
        CHECK(t && t->shape[0] == 32 && t->shape[1] == 48);
        CHECK(st_checkpoint_find(ck, "model.layers.2.mlp.down_proj.weight") == NULL);
        // tensors come from different shards
        const StTensor *a = st_checkpoint_find(ck, "model.embed_tokens.weight");
        CHECK(a && t && strcmp(a->file, t->file) != 0);
        for (size_t i = 1; i < st_checkpoint_count(ck); i++)
            CHECK(strcmp(st_checkpoint_tensor(ck, i - 1)->name, st_checkpoint_tensor(ck, i)->name) < 0);
        st_checkpoint_close(ck);
    }
    {   // both layouts in one directory: model.safetensors wins, as in transformers
        char dir[1100], a[1200], b[4096];
        snprintf(dir, sizeof dir, "%s/both-layouts", bin);
        mkdir(dir, 0777);
        snprintf(a, sizeof a, "%s/model.safetensors", dir);
        unlink(a);
        CHECK(realpath(fx("../fixtures/tiny-qwen3/model.safetensors"), b) && symlink(b, a) == 0);
        snprintf(a, sizeof a, "%s/model.safetensors.index.json", dir);
        unlink(a);
        CHECK(realpath(fx("../fixtures/tiny-llama/model.safetensors.index.json"), b) && symlink(b, a) == 0);
        ck = st_checkpoint_open(d, dir);
        CHECK(ck && st_checkpoint_count(ck) == 24 && strstr(st_checkpoint_path(ck), "/model.safetensors"));
        st_checkpoint_close(ck);
    }
    ck = st_checkpoint_open(d, fx("../fixtures/tiny-llama/model.safetensors.index.json"));
    CHECK(ck && st_checkpoint_count(ck) == 21);
    st_checkpoint_close(ck);
    ck = st_checkpoint_open(d, fx("../fixtures/tiny-qwen3"));
    CHECK(ck && st_checkpoint_count(ck) == 1 + 2 * 11 + 1);   // tied: no lm_head
    if (ck) {
        CHECK(st_checkpoint_find(ck, "lm_head.weight") == NULL);
        const StTensor *t = st_checkpoint_find(ck, "model.layers.0.self_attn.k_norm.weight");
        CHECK(t && t->dtype == ST_F32 && t->ndim == 1 && t->shape[0] == 8);
        st_checkpoint_close(ck);
    }
    ck = st_checkpoint_open(d, fx("../fixtures/tiny-qwen3/model.safetensors"));
    CHECK(ck && st_checkpoint_count(ck) == 24);
    if (ck) {
        float w[64 * 32];
        int64_t sh[2] = {64, 32}, bad[2] = {32, 64};
        CHECK(st_checkpoint_read_f32(d, ck, "model.layers.1.mlp.up_proj.weight", 2, sh, w) == 0);
        const StTensor *t = st_checkpoint_find(ck, "model.layers.1.mlp.up_proj.weight");
        CHECK(t && memcmp(t->data, w, sizeof w) == 0);
        char *msg = NULL;
        size_t len;
        FILE *mem = open_memstream(&msg, &len);
        Diag q;
        diag_init(&q, mem);
        CHECK(st_checkpoint_read_f32(&q, ck, "model.layers.1.mlp.up_proj.weight", 2, bad, w) != 0);
        CHECK(st_checkpoint_read_f32(&q, ck, "model.layers.7.mlp.up_proj.weight", 2, sh, w) != 0);
        CHECK(q.errors == 2);
        diag_free(&q);
        fclose(mem);
        CHECK(msg && strstr(msg, "model.safetensors: error: tensor `model.layers.1.mlp.up_proj.weight` has shape "
                                 "[64, 32], expected [32, 64]"));
        CHECK(msg && strstr(msg, "no tensor `model.layers.7.mlp.up_proj.weight` in this checkpoint"));
        free(msg);
    }
    st_checkpoint_close(ck);
}

int main(int argc, char **argv) {
    snprintf(src, sizeof src, "%s", argc > 1 ? argv[1] : ".");
    snprintf(bin, sizeof bin, "%s", argc > 2 ? argv[2] : ".");
    Diag d;
    diag_init(&d, stderr);
    test_dtypes(&d);
    test_buffer(&d);
    test_edge_valid(&d);
    test_checkpoints(&d);
    CHECK(d.errors == 0);
    diag_free(&d);
    return test_done("io.st_read");
}
