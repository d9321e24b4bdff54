// test_export.c — export against the peer libraries' own output: the LoRA adapter that peft wrote
// for tiny-qwen3 (fixtures/peft-tiny-qwen3) is re-exported from its tensors and must match it
// (tensor names, dtypes, shapes, bytes; adapter_config.json keys and values); the tiny-qwen3
// model (saved by transformers) is re-exported as one file and in bf16 shards with an index, and
// read back (checkpoint, config, tensor check, tokenizer files). tests/io/check_export.py loads
// these outputs with transformers/peft (run by hand; CI has no python).
#include "export.h"
#include "hfconfig.h"
#include "safetensors.h"
#include "test.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char src[1024], bin[1024];

static void test_adapter(Diag *d) {
    char p[2048], out[2048];
    snprintf(p, sizeof p, "%s/../fixtures/peft-tiny-qwen3/adapter_model.safetensors", src);
    StFile *f = st_open(d, p);
    CHECK(f != NULL);
    if (!f) return;
    size_t n = st_count(f);
    CHECK(n == 2 * 7 * 2);
    ExLoraModule *mods = calloc(n, sizeof *mods);
    char **names = calloc(n, sizeof(char *));
    float **bufs = calloc(2 * n, sizeof(float *));
    int nm = 0;
    const char *pre = "base_model.model.", *suf = ".lora_A.weight";
    for (size_t i = 0; i < n; i++) {
        const StTensor *a = st_tensor(f, i);
        size_t L = strlen(a->name);
        if (L < strlen(pre) + strlen(suf) || strcmp(a->name + L - strlen(suf), suf)) continue;
        char mod[512];
        snprintf(mod, sizeof mod, "%.*s", (int)(L - strlen(pre) - strlen(suf)), a->name + strlen(pre));
        char bname[600];
        snprintf(bname, sizeof bname, "%s%s.lora_B.weight", pre, mod);
        const StTensor *b = st_find(f, bname);
        CHECK_MSG(b != NULL, "%s", bname);
        if (!b) continue;
        names[nm] = strdup(mod);
        bufs[2 * nm] = malloc((size_t)a->numel * sizeof(float));
        bufs[2 * nm + 1] = malloc((size_t)b->numel * sizeof(float));
        CHECK(st_to_f32(d, a, bufs[2 * nm]) == 0 && st_to_f32(d, b, bufs[2 * nm + 1]) == 0);
        mods[nm] = (ExLoraModule){names[nm], a->shape[1], b->shape[0], bufs[2 * nm], bufs[2 * nm + 1]};
        CHECK(a->shape[0] == 4 && b->shape[1] == 4);
        nm++;
    }
    CHECK(nm == 14);
    ExLoraConfig cfg = {.base_model_name_or_path = "tiny-qwen3", .r = 4, .lora_alpha = 8, .lora_dropout = 0.05,
                        .dtype = ST_F32};
    snprintf(out, sizeof out, "%s/adapter", bin);
    CHECK(ex_write_peft_adapter(d, out, &cfg, mods, nm) == 0);

    // tensors: same names, dtypes, shapes and bytes as peft's
    snprintf(p, sizeof p, "%s/adapter/adapter_model.safetensors", bin);
    StFile *g = st_open(d, p);
    CHECK(g && st_count(g) == n);
    for (size_t i = 0; g && i < n; i++) {
        const StTensor *a = st_tensor(f, i), *b = st_find(g, a->name);
        CHECK_MSG(b != NULL, "missing %s", a->name);
        if (!b) continue;
        CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1]);
        CHECK(a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0);
    }
    CHECK(g && !strcmp(st_metadata(g, "format"), "pt"));
    st_close(g);

    // adapter_config.json: the same keys and values as peft's (target_modules as a set)
    json_error_t err;
    snprintf(p, sizeof p, "%s/../fixtures/peft-tiny-qwen3/adapter_config.json", src);
    json_t *want = json_load_file(p, 0, &err);
    snprintf(p, sizeof p, "%s/adapter/adapter_config.json", bin);
    json_t *got = json_load_file(p, JSON_PRESERVE_ORDER, &err);
    CHECK(want && got);
    if (want && got) {
        CHECK(json_object_size(want) == json_object_size(got));
        const char *k, *prev = "";
        json_t *v;
        json_object_foreach(want, k, v) {
            json_t *x = json_object_get(got, k);
            CHECK_MSG(x != NULL, "adapter_config.json lacks `%s`", k);
            if (!x) continue;
            if (!strcmp(k, "target_modules")) {
                CHECK(json_array_size(x) == json_array_size(v));
                for (size_t i = 0; i < json_array_size(v); i++) {
                    int found = 0;
                    for (size_t j = 0; j < json_array_size(x); j++)
                        found |= json_equal(json_array_get(v, i), json_array_get(x, j));
                    CHECK_MSG(found, "target module %s", json_string_value(json_array_get(v, i)));
                }
            } else
                CHECK_MSG(json_equal(v, x), "`%s` differs from peft's", k);
        }
        json_object_foreach(got, k, v) {   // written with sorted keys
            CHECK_MSG(strcmp(prev, k) < 0, "key order: %s after %s", k, prev);
            prev = k;
        }
    }
    json_decref(want);
    json_decref(got);
    // reading back: peft's own adapter and ours give the same modules
    ExLoraAdapter pa, ta;
    snprintf(p, sizeof p, "%s/../fixtures/peft-tiny-qwen3", src);
    CHECK(ex_load_peft_adapter(d, p, &pa) == 0);
    CHECK(ex_load_peft_adapter(d, out, &ta) == 0);
    CHECK(pa.n_mods == 14 && ta.n_mods == 14 && pa.cfg.r == 4 && pa.cfg.lora_alpha == 8 &&
          pa.cfg.lora_dropout == 0.05 && !pa.cfg.use_rslora && pa.cfg.n_target_modules == 7 &&
          pa.cfg.base_model_name_or_path && !strcmp(pa.cfg.base_model_name_or_path, "tiny-qwen3"));
    for (int i = 0; i < pa.n_mods && i < ta.n_mods; i++) {
        const ExLoraModule *x = &pa.mods[i], *y = &ta.mods[i];
        CHECK(!strcmp(x->module, y->module) && x->in == y->in && x->out == y->out);
        CHECK(memcmp(x->A, y->A, (size_t)(4 * x->in) * sizeof(float)) == 0);
        CHECK(memcmp(x->B, y->B, (size_t)(4 * x->out) * sizeof(float)) == 0);
        if (i) CHECK(strcmp(pa.mods[i - 1].module, x->module) < 0);
    }
    CHECK(!strcmp(pa.mods[0].module, "model.layers.0.mlp.down_proj") && pa.mods[0].in == 64 && pa.mods[0].out == 32);
    ex_lora_adapter_free(&pa);
    ex_lora_adapter_free(&ta);
    // explicit target_modules must cover every module
    FILE *devnull = fopen("/dev/null", "w");
    Diag q;
    diag_init(&q, devnull);
    const char *few[2] = {"q_proj", "v_proj"}, *all[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"};
    ExLoraConfig c2 = cfg;
    c2.target_modules = few;
    c2.n_target_modules = 2;
    snprintf(out, sizeof out, "%s/adapter-few", bin);
    CHECK(ex_write_peft_adapter(&q, out, &c2, mods, nm) != 0 && q.errors == 1);
    c2.target_modules = all;
    c2.n_target_modules = 7;
    snprintf(out, sizeof out, "%s/adapter-all", bin);
    CHECK(ex_write_peft_adapter(&q, out, &c2, mods, nm) == 0 && q.errors == 1);
    diag_free(&q);
    fclose(devnull);
    char buf[128];
    CHECK(ex_peft_tensor_name(buf, sizeof buf, "model.layers.0.self_attn.q_proj", 'A') == 0 &&
          !strcmp(buf, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    CHECK(ex_peft_tensor_name(buf, 20, "model.layers.0.self_attn.q_proj", 'A') != 0);
    for (int i = 0; i < nm; i++) {
        free(names[i]);
        free(bufs[2 * i]);
        free(bufs[2 * i + 1]);
    }
    free(names);
    free(bufs);
    free(mods);
    st_close(f);
}

static int same_file(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int same = x && y;
    while (same) {
        int c = fgetc(x), e = fgetc(y);
        if (c != e) same = 0;
        if (c == EOF || e == EOF) break;
    }
    if (x) fclose(x);
    if (y) fclose(y);
    return same;
}

static void test_model(Diag *d) {
    char base[2048], out[2048], p[2100], q[2100];
    snprintf(base, sizeof base, "%s/../fixtures/tiny-qwen3", src);
    HfConfig c;
    CHECK(hf_config_load(d, base, &c) == 0);
    StCheckpoint *ck = st_checkpoint_open(d, base);
    CHECK(ck != NULL);
    if (!ck) return;
    long n = hf_expected_tensors(&c, NULL, 0);
    HfTensorSpec *spec = calloc((size_t)n, sizeof *spec);
    hf_expected_tensors(&c, spec, n);
    ExTensor *ts = calloc((size_t)n, sizeof *ts);
    for (long i = 0; i < n; i++) {
        const StTensor *t = st_checkpoint_find(ck, spec[i].name);
        CHECK(t != NULL);
        if (!t) return;
        float *v = malloc((size_t)t->numel * sizeof(float));
        st_to_f32(d, t, v);
        ts[i] = (ExTensor){.name = spec[i].name, .ndim = t->ndim, .data = v};
        for (int k = 0; k < t->ndim; k++) ts[i].shape[k] = t->shape[k];
    }
    // (1) one f32 file: identical tensors, config, tokenizer files
    snprintf(out, sizeof out, "%s/model-f32", bin);
    ExModelOptions o = {.base_dir = base, .dtype = ST_F32};
    CHECK(ex_write_hf_model(d, out, &o, ts, (int)n) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
    struct stat st;
    CHECK(stat(p, &st) != 0);
    StCheckpoint *ck2 = st_checkpoint_open(d, out);
    CHECK(ck2 && st_checkpoint_count(ck2) == st_checkpoint_count(ck));
    for (size_t i = 0; ck2 && i < st_checkpoint_count(ck); i++) {
        const StTensor *a = st_checkpoint_tensor(ck, i), *b = st_checkpoint_find(ck2, a->name);
        CHECK(b && a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0);
    }
    st_checkpoint_close(ck2);
    HfConfig c2;
    CHECK(hf_config_load(d, out, &c2) == 0);
    CHECK(c2.dtype == HF_DTYPE_F32 && c2.vocab_size == c.vocab_size && c2.head_dim == c.head_dim &&
          c2.tie_word_embeddings && c2.rope.theta == c.rope.theta && c2.rms_norm_eps == c.rms_norm_eps);
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", base, files[i]);
        snprintf(q, sizeof q, "%s/%s", out, files[i]);
        CHECK_MSG(same_file(p, q), "%s not copied", files[i]);
    }
    // (2) bf16 in shards of at most 20000 bytes, with an index
    snprintf(out, sizeof out, "%s/model-bf16", bin);
    o = (ExModelOptions){.base_dir = base, .dtype = ST_BF16, .max_shard_bytes = 20000};
    CHECK(ex_write_hf_model(d, out, &o, ts, (int)n) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    CHECK(stat(p, &st) != 0);
    ck2 = st_checkpoint_open(d, out);
    CHECK(ck2 != NULL);
    HfConfig c3;
    CHECK(hf_config_load(d, out, &c3) == 0 && c3.dtype == HF_DTYPE_BF16);
    if (ck2) {
        CHECK(hf_config_check_checkpoint(d, &c3, ck2) == 0);
        CHECK(st_checkpoint_count(ck2) == (size_t)n);
        for (long i = 0; i < n; i++) {
            const StTensor *b = st_checkpoint_find(ck2, ts[i].name);
            CHECK(b && b->dtype == ST_BF16);
            if (!b) continue;
            int bad = 0;
            for (int64_t k = 0; k < b->numel; k++) {
                const uint8_t *x = (const uint8_t *)b->data + 2 * k;
                bad += (uint16_t)(x[0] | x[1] << 8) != st_f32_to_bf16(ts[i].data[k]);
            }
            CHECK_MSG(bad == 0, "%s: %d values", ts[i].name, bad);
        }
    }
    st_checkpoint_close(ck2);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
    json_error_t err;
    json_t *idx = json_load_file(p, 0, &err);
    // the same shards as huggingface_hub's split of transformers' state_dict (same order, same limit)
    snprintf(q, sizeof q, "%s/fixtures/shards_tiny_qwen3_bf16_20000.json", src);
    json_t *hf = json_load_file(q, 0, &err);
    CHECK(idx && hf);
    if (idx && hf) {
        json_t *order = json_object_get(hf, "order"), *wm = json_object_get(hf, "weight_map");
        CHECK(json_array_size(order) == (size_t)n);
        for (long i = 0; i < n && i < (long)json_array_size(order); i++)
            CHECK_MSG(!strcmp(json_string_value(json_array_get(order, (size_t)i)), spec[i].name),
                      "order %ld: %s vs transformers' %s", i, spec[i].name,
                      json_string_value(json_array_get(order, (size_t)i)));
        CHECK(json_equal(json_object_get(idx, "weight_map"), wm));
        CHECK(json_equal(json_object_get(json_object_get(idx, "metadata"), "total_size"),
                         json_object_get(hf, "total_size")));
    }
    json_decref(hf);
    json_decref(idx);
    // (3) errors: no base dir, bad tensor
    FILE *devnull = fopen("/dev/null", "w");
    Diag qd;
    diag_init(&qd, devnull);
    o = (ExModelOptions){.base_dir = NULL};
    CHECK(ex_write_hf_model(&qd, out, &o, ts, (int)n) != 0);
    ExTensor badt = {.name = "x", .ndim = 1, .shape = {-3}, .data = ts[0].data};
    o.base_dir = base;
    CHECK(ex_write_hf_model(&qd, out, &o, &badt, 1) != 0);
    CHECK(qd.errors == 2);
    diag_free(&qd);
    fclose(devnull);
    for (long i = 0; i < n; i++) free((void *)ts[i].data);
    free(ts);
    free(spec);
    st_checkpoint_close(ck);
}

// Merging the peft fixture into tiny-qwen3 gives peft's own merge_and_unload weights.
static void test_merge(Diag *d) {
    char base[2048], adapter[2048], out[2048], fx[2048];
    snprintf(base, sizeof base, "%s/../fixtures/tiny-qwen3", src);
    snprintf(adapter, sizeof adapter, "%s/../fixtures/peft-tiny-qwen3", src);
    snprintf(out, sizeof out, "%s/merged", bin);
    snprintf(fx, sizeof fx, "%s/fixtures/merged-tiny-qwen3.safetensors", src);
    CHECK(ex_merge_lora(d, base, adapter, out, ST_NDTYPES, 0) == 0);
    StCheckpoint *got = st_checkpoint_open(d, out), *want = st_checkpoint_open(d, fx), *orig = st_checkpoint_open(d, base);
    CHECK(got && want && orig);
    if (got && want && orig) {
        CHECK(st_checkpoint_count(got) == st_checkpoint_count(want));
        double maxdiff = 0;
        int changed = 0;
        for (size_t i = 0; i < st_checkpoint_count(want); i++) {
            const StTensor *w = st_checkpoint_tensor(want, i), *g = st_checkpoint_find(got, w->name),
                           *o = st_checkpoint_find(orig, w->name);
            CHECK_MSG(g && o && g->numel == w->numel && g->dtype == ST_F32, "%s", w->name);
            if (!g || !o || g->numel != w->numel) continue;
            float x, y;
            for (int64_t k = 0; k < w->numel; k++) {
                memcpy(&x, (const char *)g->data + 4 * k, 4);
                memcpy(&y, (const char *)w->data + 4 * k, 4);
                if (fabs(x - y) > maxdiff) maxdiff = fabs(x - y);
            }
            changed += memcmp(g->data, o->data, g->nbytes) != 0;
        }
        printf("merge: %d of %zu tensors changed, max |diff| vs peft merge_and_unload %.3g\n", changed,
               st_checkpoint_count(want), maxdiff);
        CHECK(changed == 14);
        CHECK(maxdiff <= 1e-6);
    }
    st_checkpoint_close(got);
    st_checkpoint_close(want);
    // rsLoRA scales by alpha/sqrt(r) instead of alpha/r: with r = 4 the merged change doubles
    ExLoraAdapter a;
    CHECK(ex_load_peft_adapter(d, adapter, &a) == 0);
    a.cfg.use_rslora = true;
    char ars[2100], mrs[2100];
    snprintf(ars, sizeof ars, "%s/adapter-rslora", bin);
    snprintf(mrs, sizeof mrs, "%s/merged-rslora", bin);
    CHECK(ex_write_peft_adapter(d, ars, &a.cfg, a.mods, a.n_mods) == 0);
    ex_lora_adapter_free(&a);
    CHECK(ex_merge_lora(d, base, ars, mrs, ST_F32, 0) == 0);
    StCheckpoint *plain = st_checkpoint_open(d, out), *rs = st_checkpoint_open(d, mrs);
    CHECK(plain && rs);
    double worst = 0;
    for (size_t i = 0; plain && rs && orig && i < st_checkpoint_count(orig); i++) {
        const StTensor *o = st_checkpoint_tensor(orig, i), *p = st_checkpoint_find(plain, o->name),
                       *r = st_checkpoint_find(rs, o->name);
        CHECK(p && r);
        for (int64_t k = 0; p && r && k < o->numel; k++) {
            float w0, w1, w2;
            memcpy(&w0, (const char *)o->data + 4 * k, 4);
            memcpy(&w1, (const char *)p->data + 4 * k, 4);
            memcpy(&w2, (const char *)r->data + 4 * k, 4);
            double e = fabs((double)(w2 - w0) - 2.0 * (double)(w1 - w0));
            if (e > worst) worst = e;
        }
    }
    CHECK_MSG(worst < 1e-6, "rsLoRA delta is not twice the LoRA delta: %g", worst);
    st_checkpoint_close(plain);
    st_checkpoint_close(rs);
    st_checkpoint_close(orig);
    // an adapter for another model: the module shapes do not match
    char *msg = NULL;
    size_t len;
    FILE *mem = open_memstream(&msg, &len);
    Diag q;
    diag_init(&q, mem);
    snprintf(base, sizeof base, "%s/../fixtures/tiny-llama", src);
    CHECK(ex_merge_lora(&q, base, adapter, out, ST_BF16, 0) != 0);
    CHECK(q.errors == 1);
    diag_free(&q);
    fclose(mem);
    CHECK_MSG(msg && strstr(msg, "LoRA module `model.layers.0.mlp.down_proj` is [32, 64] (out, in), but the base "
                                 "weight is [32, 48]"), "%s", msg ? msg : "");
    free(msg);
}

int main(int argc, char **argv) {
    snprintf(src, sizeof src, "%s", argc > 1 ? argv[1] : ".");
    snprintf(bin, sizeof bin, "%s", argc > 2 ? argv[2] : ".");
    Diag d;
    diag_init(&d, stderr);
    test_adapter(&d);
    test_model(&d);
    test_merge(&d);
    CHECK(d.errors == 0);
    diag_free(&d);
    return test_done("io.export");
}
