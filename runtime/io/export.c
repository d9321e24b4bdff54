// export.c — PEFT LoRA adapter directories and full Hugging Face model directories (see export.h).
// JSON files are written with sorted keys and 2-space indentation as peft / transformers write them,
// numbers in their shortest round-trip form; every file goes to a temp name and is renamed.
// Does not: compute merged weights, quantize, or upload anything.
#include "fsutil.h"
#include "export.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EX_MAX_JSON_DEPTH = 64 };

int ex_peft_tensor_name(char *buf, size_t cap, const char *module, char which) {
    int n = snprintf(buf, cap, "base_model.model.%s.lora_%c.weight", module, which);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

// mkdir -p
static int make_dirs(Diag *d, const char *dir) {
    char failed[4096];
    if (fs_mkdir_p(dir, 0777, failed, sizeof failed) == 0) return 0;
    if (errno == ENOTDIR && strcmp(failed, dir) == 0) diag_file_error(d, dir, 0, 0, "not a directory");
    else diag_file_error(d, failed, 0, 0, "cannot create directory: %s", strerror(errno));
    return -1;
}

// A regular file of at most 64 MB (a FIFO or a device would block or never end). 0, or -1 reported.
static int small_regular_file(Diag *d, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        diag_file_error(d, path, 0, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (64 << 20)) {
        diag_file_error(d, path, 0, 0, "%s", S_ISREG(st.st_mode) ? "larger than 64 MB" : "not a regular file");
        return -1;
    }
    return 0;
}

// Writes len bytes to path through path.tmp.<pid> + rename.
static int write_atomic(Diag *d, const char *path, const char *data, size_t len) {
    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    if (!tmp) {
        diag_file_error(d, path, 0, 0, "out of memory");
        return -1;
    }
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        diag_file_error(d, path, 0, 0, "cannot create `%s`: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int bad = len && fwrite(data, 1, len, fp) != len;
    if (!bad && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) bad = 1;   // durable before the rename
    if (fclose(fp) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        diag_file_error(d, path, 0, 0, "cannot write: %s", strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

// The fewest significant digits that give back x, as Python's repr does.
static int shortest_digits(double x) {
    char buf[40];
    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return p;
    }
    return 17;
}

static int max_digits(const json_t *v, int depth) {
    int best = 1;
    if (depth > EX_MAX_JSON_DEPTH) return 17;
    if (json_is_real(v)) return shortest_digits(json_real_value(v));
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int p = max_digits(json_array_get(v, i), depth + 1);
            if (p > best) best = p;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            int p = max_digits(x, depth + 1);
            if (p > best) best = p;
        }
    }
    return best;
}

// Sorted keys, indent 2, trailing newline — json.dumps(obj, indent=2, sort_keys=True) + "\n".
static int write_json(Diag *d, const char *path, json_t *root) {
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(max_digits(root, 0)));
    if (!s) {
        diag_file_error(d, path, 0, 0, "out of memory");
        return -1;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        diag_file_error(d, path, 0, 0, "out of memory");
        return -1;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    int rc = write_atomic(d, path, t, n + 1);
    free(t);
    return rc;
}

static json_t *number(double x) {
    if (x == (double)(long long)x && x > -1e15 && x < 1e15) return json_integer((json_int_t)x);
    return json_real(x);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// ---------------------------------------------------------------- PEFT adapter

static json_t *adapter_config(const ExLoraConfig *c, const ExLoraModule *mods, int n) {
    json_t *o = json_object();
    if (!o) return NULL;
    // peft 0.15's LoraConfig fields, with its defaults where trlc has no setting.
    json_object_set_new(o, "alpha_pattern", json_object());
    json_object_set_new(o, "auto_mapping", json_null());
    json_object_set_new(o, "base_model_name_or_path",
                        c->base_model_name_or_path ? json_string(c->base_model_name_or_path) : json_null());
    json_object_set_new(o, "bias", json_string("none"));
    json_object_set_new(o, "corda_config", json_null());
    json_object_set_new(o, "eva_config", json_null());
    json_object_set_new(o, "exclude_modules", json_null());
    json_object_set_new(o, "fan_in_fan_out", json_false());
    json_object_set_new(o, "inference_mode", json_true());
    json_object_set_new(o, "init_lora_weights", json_true());
    json_object_set_new(o, "layer_replication", json_null());
    json_object_set_new(o, "layers_pattern", json_null());
    json_object_set_new(o, "layers_to_transform", json_null());
    json_object_set_new(o, "loftq_config", json_object());
    json_object_set_new(o, "lora_alpha", number(c->lora_alpha));
    json_object_set_new(o, "lora_bias", json_false());
    json_object_set_new(o, "lora_dropout", json_real(c->lora_dropout));
    json_object_set_new(o, "megatron_config", json_null());
    json_object_set_new(o, "megatron_core", json_string("megatron.core"));
    json_object_set_new(o, "modules_to_save", json_null());
    json_object_set_new(o, "peft_type", json_string("LORA"));
    json_object_set_new(o, "r", json_integer(c->r));
    json_object_set_new(o, "rank_pattern", json_object());
    json_object_set_new(o, "revision", json_null());
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(o, "trainable_token_indices", json_null());
    json_object_set_new(o, "use_dora", json_false());
    json_object_set_new(o, "use_rslora", json_boolean(c->use_rslora));
    // target_modules: given, or the last name component of every module; sorted, unique.
    int cap = c->target_modules ? c->n_target_modules : n;
    const char **names = calloc((size_t)(cap > 0 ? cap : 1), sizeof(char *));
    char **owned = calloc((size_t)(cap > 0 ? cap : 1), sizeof(char *));
    json_t *tm = json_array();
    if (!names || !owned || !tm) {
        free(names);
        free(owned);
        json_decref(tm);
        json_decref(o);
        return NULL;
    }
    int k = 0;
    for (int i = 0; i < cap; i++) {
        if (c->target_modules) names[k++] = c->target_modules[i];
        else {
            const char *dot = strrchr(mods[i].module, '.');
            owned[i] = strdup(dot ? dot + 1 : mods[i].module);
            if (owned[i]) names[k++] = owned[i];
        }
    }
    qsort(names, (size_t)k, sizeof(char *), cmp_str);
    for (int i = 0; i < k; i++)
        if (i == 0 || strcmp(names[i], names[i - 1])) json_array_append_new(tm, json_string(names[i]));
    json_object_set_new(o, "target_modules", tm);
    for (int i = 0; i < cap; i++) free(owned[i]);
    free(owned);
    free(names);
    return o;
}

int ex_write_peft_adapter(Diag *d, const char *dir, const ExLoraConfig *cfg, const ExLoraModule *mods,
                          int n_mods) {
    if (cfg->r <= 0 || !(cfg->lora_alpha > 0) || !(cfg->lora_dropout >= 0 && cfg->lora_dropout < 1) ||
        n_mods <= 0 || (cfg->target_modules && cfg->n_target_modules <= 0)) {
        diag_file_error(d, dir, 0, 0, "invalid LoRA adapter: r = %d, alpha = %g, dropout = %g, %d modules", cfg->r,
                        cfg->lora_alpha, cfg->lora_dropout, n_mods);
        return -1;
    }
    StDtype dt = cfg->dtype == ST_BF16 || cfg->dtype == ST_F16 ? cfg->dtype : ST_F32;
    // peft creates LoRA layers only where target_modules match: a module left out would be dropped
    // on load (a silently different model), so every module's last name component must be listed.
    for (int i = 0; cfg->target_modules && i < n_mods; i++) {
        const char *mod = mods[i].module ? mods[i].module : "";
        const char *last = strrchr(mod, '.');
        last = last ? last + 1 : mod;
        bool listed = false;
        for (int k = 0; k < cfg->n_target_modules && !listed; k++)
            listed = cfg->target_modules[k] && !strcmp(cfg->target_modules[k], last);
        if (!listed) {
            diag_file_error(d, dir, 0, 0, "LoRA module `%s` is not covered by target_modules (`%s` is not listed); "
                            "peft would not load it", mod, last);
            return -1;
        }
    }
    if (make_dirs(d, dir)) return -1;
    StWriter *w = st_writer_new();
    if (!w) {
        diag_file_error(d, dir, 0, 0, "out of memory");
        return -1;
    }
    int rc = -1;
    char name[512];
    for (int i = 0; i < n_mods; i++) {
        const ExLoraModule *m = &mods[i];
        if (!m->module || !m->module[0] || m->in <= 0 || m->out <= 0 || !m->A || !m->B) {
            diag_file_error(d, dir, 0, 0, "LoRA module %d (`%s`) has no name, data or a bad shape", i,
                            m->module ? m->module : "");
            goto out;
        }
        int64_t sa[2] = {cfg->r, m->in}, sb[2] = {m->out, cfg->r};
        if (ex_peft_tensor_name(name, sizeof name, m->module, 'A') ||
            st_writer_add_f32(d, w, name, dt, 2, sa, m->A) ||
            ex_peft_tensor_name(name, sizeof name, m->module, 'B') ||
            st_writer_add_f32(d, w, name, dt, 2, sb, m->B))
            goto out;
    }
    char *st = st_path_join(dir, "adapter_model.safetensors"), *cj = st_path_join(dir, "adapter_config.json");
    json_t *conf = adapter_config(cfg, mods, n_mods);
    if (!st || !cj || !conf) diag_file_error(d, dir, 0, 0, "out of memory");
    else if (st_writer_write(d, w, st) == 0 && write_json(d, cj, conf) == 0) rc = 0;
    json_decref(conf);
    free(st);
    free(cj);
out:
    st_writer_free(w);
    return rc;
}

// ---------------------------------------------------------------- full model directories

static const char *const tokenizer_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja",
};

static int copy_file(Diag *d, const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) {
        diag_file_error(d, from, 0, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int rc = -1;
    while (buf) {
        if (len == cap) {
            char *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + len, 1, cap - len, in);
        len += k;
        if (k == 0) break;
    }
    if (!buf) diag_file_error(d, from, 0, 0, "out of memory");
    else if (ferror(in)) diag_file_error(d, from, 0, 0, "cannot read");
    else rc = write_atomic(d, to, buf, len);
    free(buf);
    fclose(in);
    return rc;
}

static const char *torch_dtype_name(StDtype t) {
    return t == ST_BF16 ? "bfloat16" : t == ST_F16 ? "float16" : "float32";
}

static int write_config(Diag *d, const char *base_dir, const char *dir, StDtype dt) {
    char *from = st_path_join(base_dir, "config.json"), *to = st_path_join(dir, "config.json");
    int rc = -1;
    json_error_t err;
    json_t *root = NULL;
    if (!from || !to) {
        diag_file_error(d, dir, 0, 0, "out of memory");
        goto out;
    }
    if (small_regular_file(d, from)) goto out;
    root = json_load_file(from, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        diag_file_error(d, from, err.line, err.column, "cannot read config: %s", err.text);
        goto out;
    }
    if (!json_is_object(root)) {
        diag_file_error(d, from, 0, 0, "config.json must hold a JSON object");
        goto out;
    }
    bool has_dtype = json_object_get(root, "dtype") != NULL;
    if (has_dtype) json_object_set_new(root, "dtype", json_string(torch_dtype_name(dt)));
    if (!has_dtype || json_object_get(root, "torch_dtype"))
        json_object_set_new(root, "torch_dtype", json_string(torch_dtype_name(dt)));
    rc = write_json(d, to, root);
out:
    json_decref(root);
    free(from);
    free(to);
    return rc;
}

// Bytes as written; UINT64_MAX when the product overflows (st_writer_add_f32 then refuses it).
static uint64_t tensor_bytes(const ExTensor *t, StDtype dt) {
    uint64_t n = (uint64_t)st_dtype_bits(dt) / 8;
    for (int k = 0; k < t->ndim; k++)
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[k], &n)) return UINT64_MAX;
    return n;
}

static int write_model(Diag *d, const char *dir, const ExModelOptions *opt, const ExTensor *tensors, int n,
                       ExFillFn fill, void *ctx) {
    StDtype dt = opt->dtype == ST_BF16 || opt->dtype == ST_F16 ? opt->dtype : ST_F32;
    uint64_t max = opt->max_shard_bytes ? opt->max_shard_bytes : 5000000000ull;
    if (!opt->base_dir) {
        diag_file_error(d, dir, 0, 0, "exporting a model needs the base model directory (for config.json)");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const ExTensor *t = &tensors[i];
        bool ok = t->name && t->name[0] && (t->data || fill) && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS;
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] >= 0 && t->shape[k] < ((int64_t)1 << 40);
        if (!ok) {
            diag_file_error(d, dir, 0, 0, "tensor %d (`%s`) has no name, no data or a bad shape", i,
                            t->name ? t->name : "");
            return -1;
        }
    }
    if (make_dirs(d, dir)) return -1;
    // Shards as transformers / huggingface_hub split them: in order; a tensor over the limit gets a
    // shard of its own; otherwise a new shard starts when the next tensor would pass the limit.
    int *shard = calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    if (!shard) {
        diag_file_error(d, dir, 0, 0, "out of memory");
        return -1;
    }
    int nshards = 0, cur = -1;
    uint64_t cur_size = 0, total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = tensor_bytes(&tensors[i], dt);
        if (b == UINT64_MAX || __builtin_add_overflow(total, b, &total)) {
            diag_file_error(d, dir, 0, 0, "tensor `%s`: its size overflows 64 bits", tensors[i].name);
            free(shard);
            return -1;
        }
        if (b > max) {
            shard[i] = nshards++;
            continue;
        }
        if (cur < 0 || cur_size + b > max) {
            cur = nshards++;
            cur_size = 0;
        }
        shard[i] = cur;
        cur_size += b;
    }
    if (nshards == 0) nshards = 1;
    int rc = -1;
    json_t *wm = json_object();
    char fname[64];
    char *path = NULL;
    if (!wm) goto oom;
    for (int s = 0; s < nshards; s++) {
        StWriter *w = st_writer_new();
        if (!w) goto oom;
        if (nshards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, nshards);
        int bad = 0;
        // streaming: the floats of this shard's tensors that the caller produces on demand
        float **made = calloc((size_t)n, sizeof(float *));
        if (!made) bad = 1;
        for (int i = 0; i < n && !bad; i++) {
            if (shard[i] != s) continue;
            const float *data = tensors[i].data;
            if (!data) {
                uint64_t numel = tensor_bytes(&tensors[i], ST_U8);
                made[i] = malloc((size_t)(numel ? numel : 1) * sizeof(float));
                if (!made[i]) {
                    diag_file_error(d, dir, 0, 0, "out of memory for tensor `%s`", tensors[i].name);
                    bad = 1;
                    break;
                }
                if (fill(ctx, i, made[i])) {
                    bad = 1;
                    break;
                }
                data = made[i];
            }
            bad = st_writer_add_f32(d, w, tensors[i].name, dt, tensors[i].ndim, tensors[i].shape, data);
            if (!bad && nshards > 1) bad = json_object_set_new(wm, tensors[i].name, json_string(fname));
        }
        free(path);
        path = st_path_join(dir, fname);
        if (!bad && path) bad = st_writer_write(d, w, path);
        st_writer_free(w);
        for (int i = 0; made && i < n; i++) free(made[i]);
        free(made);
        if (!path) goto oom;
        if (bad) goto out;
    }
    // The other layout must not shadow this one (transformers looks for model.safetensors first).
    free(path);
    path = st_path_join(dir, nshards == 1 ? "model.safetensors.index.json" : "model.safetensors");
    if (!path) goto oom;
    unlink(path);
    if (nshards > 1) {
        json_t *idx = json_object(), *meta = json_object();
        if (!idx || !meta) {
            json_decref(idx);
            json_decref(meta);
            goto oom;
        }
        json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
        json_object_set_new(idx, "metadata", meta);
        json_object_set(idx, "weight_map", wm);
        free(path);
        path = st_path_join(dir, "model.safetensors.index.json");
        int bad = !path || write_json(d, path, idx);
        json_decref(idx);
        if (bad) goto out;
    }
    if (write_config(d, opt->base_dir, dir, dt)) goto out;
    for (size_t i = 0; i < sizeof tokenizer_files / sizeof tokenizer_files[0]; i++) {
        char *from = st_path_join(opt->base_dir, tokenizer_files[i]), *to = st_path_join(dir, tokenizer_files[i]);
        struct stat st;
        int bad = !from || !to;
        if (!bad && stat(from, &st) == 0 && S_ISREG(st.st_mode)) bad = copy_file(d, from, to);
        free(from);
        free(to);
        if (bad) goto out;
    }
    rc = 0;
    goto out;
oom:
    diag_file_error(d, dir, 0, 0, "out of memory");
out:
    free(path);
    free(shard);
    json_decref(wm);
    return rc;
}

int ex_write_hf_model(Diag *d, const char *dir, const ExModelOptions *opt, const ExTensor *tensors, int n) {
    return write_model(d, dir, opt, tensors, n, NULL, NULL);
}

int ex_write_hf_model_stream(Diag *d, const char *dir, const ExModelOptions *opt, const ExTensor *tensors, int n,
                             ExFillFn fill, void *ctx) {
    return write_model(d, dir, opt, tensors, n, fill, ctx);
}

// ---------------------------------------------------------------- reading a PEFT adapter back

void ex_lora_adapter_free(ExLoraAdapter *a) {
    if (!a) return;
    for (int i = 0; i < a->n_mods; i++) {
        free((char *)a->mods[i].module);
        free((float *)a->mods[i].A);
        free((float *)a->mods[i].B);
    }
    free(a->mods);
    for (int i = 0; i < a->cfg.n_target_modules; i++) free(a->targets[i]);
    free(a->targets);
    free(a->base_model);
    memset(a, 0, sizeof *a);
}

static const char *jkind(const json_t *v) {
    return json_is_object(v) ? "an object" : json_is_array(v) ? "an array" : json_is_string(v) ? "a string"
         : json_is_integer(v) ? "an integer" : json_is_real(v) ? "a number" : json_is_boolean(v) ? "a boolean"
         : "null";
}

static int read_adapter_config(Diag *d, const char *path, ExLoraAdapter *a) {
    json_error_t err;
    if (small_regular_file(d, path)) return -1;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        if (err.line > 0) diag_file_error(d, path, err.line, err.column, "invalid JSON: %s", err.text);
        else diag_file_error(d, path, 0, 0, "cannot read: %s", err.text);
        return -1;
    }
    int rc = -1;
    json_t *v;
    if (!json_is_object(o)) {
        diag_file_error(d, path, 0, 0, "adapter_config.json must hold a JSON object, found %s", jkind(o));
        goto out;
    }
    v = json_object_get(o, "peft_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "LORA")) {
        diag_file_error(d, path, 0, 0, "unsupported peft_type %s%s%s; trlc reads LORA adapters", v && json_is_string(v) ? "`" : "",
                        v ? (json_is_string(v) ? json_string_value(v) : jkind(v)) : "(missing)",
                        v && json_is_string(v) ? "`" : "");
        goto out;
    }
    v = json_object_get(o, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536) {
        diag_file_error(d, path, 0, 0, "`r` must be an integer in [1, 65536]");
        goto out;
    }
    a->cfg.r = (int)json_integer_value(v);
    v = json_object_get(o, "lora_alpha");
    a->cfg.lora_alpha = 8;   // LoraConfig's defaults: lora_alpha 8, lora_dropout 0
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) > 0)) {
            diag_file_error(d, path, 0, 0, "`lora_alpha` must be a positive number");
            goto out;
        }
        a->cfg.lora_alpha = json_number_value(v);
    }
    v = json_object_get(o, "lora_dropout");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) < 1)) {
            diag_file_error(d, path, 0, 0, "`lora_dropout` must be a number in [0, 1)");
            goto out;
        }
        a->cfg.lora_dropout = json_number_value(v);
    }
    const char *flags[3] = {"use_rslora", "use_dora", "fan_in_fan_out"};
    for (int i = 0; i < 3; i++) {
        v = json_object_get(o, flags[i]);
        if (v && !json_is_null(v) && !json_is_boolean(v)) {
            diag_file_error(d, path, 0, 0, "`%s` must be true or false, found %s", flags[i], jkind(v));
            goto out;
        }
        bool on = v && json_is_true(v);
        if (i == 0) a->cfg.use_rslora = on;
        else if (on) {
            diag_file_error(d, path, 0, 0, "`%s` adapters are not supported", i == 1 ? "use_dora" : "fan_in_fan_out");
            goto out;
        }
    }
    v = json_object_get(o, "bias");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "none"))) {
        diag_file_error(d, path, 0, 0, "`bias` must be \"none\" (trained biases are not supported)");
        goto out;
    }
    const char *patterns[2] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(o, patterns[i]);
        if (v && !json_is_null(v) && (!json_is_object(v) || json_object_size(v))) {
            diag_file_error(d, path, 0, 0, "`%s` (per-module ranks or alphas) is not supported", patterns[i]);
            goto out;
        }
    }
    v = json_object_get(o, "modules_to_save");
    if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) {
        diag_file_error(d, path, 0, 0, "`modules_to_save` (fully trained extra modules) is not supported");
        goto out;
    }
    v = json_object_get(o, "base_model_name_or_path");
    if (v && json_is_string(v) && !(a->base_model = strdup(json_string_value(v)))) goto oom;
    a->cfg.base_model_name_or_path = a->base_model;
    v = json_object_get(o, "target_modules");
    if (v && !json_is_null(v)) {
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        if (!json_is_array(v) && !json_is_string(v)) {
            diag_file_error(d, path, 0, 0, "`target_modules` must be a list of names or a string");
            goto out;
        }
        if (n > 4096 || !(a->targets = calloc(n ? n : 1, sizeof(char *)))) goto oom;
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
            if (!json_is_string(x)) {
                diag_file_error(d, path, 0, 0, "`target_modules[%zu]` must be a string", i);
                goto out;
            }
            if (!(a->targets[i] = strdup(json_string_value(x)))) goto oom;
            a->cfg.n_target_modules = (int)i + 1;
        }
        a->cfg.target_modules = (const char *const *)a->targets;
    }
    a->cfg.dtype = ST_F32;
    rc = 0;
    goto out;
oom:
    diag_file_error(d, path, 0, 0, "out of memory");
out:
    json_decref(o);
    return rc;
}

static int cmp_module(const void *x, const void *y) {
    return strcmp(((const ExLoraModule *)x)->module, ((const ExLoraModule *)y)->module);
}

int ex_load_peft_adapter(Diag *d, const char *dir, ExLoraAdapter *out) {
    memset(out, 0, sizeof *out);
    char *cj = st_path_join(dir, "adapter_config.json"), *sp = st_path_join(dir, "adapter_model.safetensors");
    StFile *f = NULL;
    int rc = -1;
    struct stat st;
    if (!cj || !sp) {
        diag_file_error(d, dir, 0, 0, "out of memory");
        goto out;
    }
    if (stat(cj, &st) != 0) {
        diag_file_error(d, dir, 0, 0, "not a PEFT adapter directory: no adapter_config.json in it");
        goto out;
    }
    if (stat(sp, &st) != 0) {
        diag_file_error(d, dir, 0, 0, "no adapter_model.safetensors in this directory (adapter_model.bin "
                        "pickles are not read)");
        goto out;
    }
    if (read_adapter_config(d, cj, out)) goto out;
    if (!(f = st_open(d, sp))) goto out;
    size_t n = st_count(f);
    if (n == 0 || n % 2) {
        diag_file_error(d, sp, 0, 0, "%zu tensors: a LoRA adapter holds lora_A / lora_B pairs", n);
        goto out;
    }
    out->mods = calloc(n / 2, sizeof(ExLoraModule));
    if (!out->mods) {
        diag_file_error(d, sp, 0, 0, "out of memory");
        goto out;
    }
    const char *pre = "base_model.model.", *sa = ".lora_A.weight", *sb = ".lora_B.weight";
    size_t lp = strlen(pre), ls = strlen(sa);
    for (size_t i = 0; i < n; i++) {
        const StTensor *t = st_tensor(f, i);
        size_t L = strlen(t->name);
        bool is_a = L > lp + ls && !strncmp(t->name, pre, lp) && !strcmp(t->name + L - ls, sa);
        bool is_b = L > lp + ls && !strncmp(t->name, pre, lp) && !strcmp(t->name + L - ls, sb);
        if (!is_a && !is_b) {
            diag_file_error(d, sp, 0, 0, "tensor `%s` is not a LoRA matrix (expected "
                            "base_model.model.<module>.lora_A.weight or .lora_B.weight)", t->name);
            goto out;
        }
        if (!is_a) continue;
        char *bname = malloc(L + 1);
        if (!bname) {
            diag_file_error(d, sp, 0, 0, "out of memory");
            goto out;
        }
        memcpy(bname, t->name, L + 1);
        bname[L - ls + 6] = 'B';   // ".lora_A" → ".lora_B"
        const StTensor *b = st_find(f, bname);
        free(bname);
        if (!b) {
            diag_file_error(d, sp, 0, 0, "tensor `%s` has no lora_B partner", t->name);
            goto out;
        }
        const StTensor *ab[2] = {t, b};
        for (int k = 0; k < 2; k++)
            if (ab[k]->dtype != ST_F32 && ab[k]->dtype != ST_BF16 && ab[k]->dtype != ST_F16) {
                diag_file_error(d, sp, 0, 0, "tensor `%s` has dtype %s; LoRA matrices must be F32, BF16 or F16",
                                ab[k]->name, st_dtype_name(ab[k]->dtype));
                goto out;
            }
        int64_t r = out->cfg.r;
        if (t->ndim != 2 || b->ndim != 2 || t->shape[0] != r || b->shape[1] != r || t->shape[1] < 1 ||
            b->shape[0] < 1) {
            diag_file_error(d, sp, 0, 0, "tensor `%s`: lora_A must be [r, in] and lora_B [out, r] with r = %lld "
                            "from adapter_config.json", t->name, (long long)r);
            goto out;
        }
        if (out->n_mods >= (int)(n / 2)) {
            diag_file_error(d, sp, 0, 0, "unpaired LoRA tensors");
            goto out;
        }
        ExLoraModule *m = &out->mods[out->n_mods];
        char *name = malloc(L - lp - ls + 1);
        float *A = malloc((size_t)t->numel * sizeof(float)), *B = malloc((size_t)b->numel * sizeof(float));
        if (name) {
            memcpy(name, t->name + lp, L - lp - ls);
            name[L - lp - ls] = 0;
        }
        m->module = name;
        m->A = A;
        m->B = B;
        m->in = t->shape[1];
        m->out = b->shape[0];
        out->n_mods++;
        if (!name || !A || !B) {
            diag_file_error(d, sp, 0, 0, "out of memory");
            goto out;
        }
        if (st_to_f32(d, t, A) || st_to_f32(d, b, B)) goto out;
    }
    if ((size_t)out->n_mods * 2 != n) {
        diag_file_error(d, sp, 0, 0, "%zu tensors but %d lora_A / lora_B pairs", n, out->n_mods);
        goto out;
    }
    qsort(out->mods, (size_t)out->n_mods, sizeof(ExLoraModule), cmp_module);
    rc = 0;
out:
    st_close(f);
    if (rc) ex_lora_adapter_free(out);
    free(cj);
    free(sp);
    return rc;
}

// ---------------------------------------------------------------- merging an adapter into its base

typedef struct MergeCtx {
    Diag *d;
    StCheckpoint *ck;
    const ExTensor *tensors;
    const int *lora_of;            // tensor index → adapter module index, or -1
    const ExLoraAdapter *a;
    float scale;
} MergeCtx;

static int merge_fill(void *vctx, int i, float *out) {
    MergeCtx *m = vctx;
    const ExTensor *t = &m->tensors[i];
    if (st_checkpoint_read_f32(m->d, m->ck, t->name, t->ndim, t->shape, out)) return -1;
    if (m->lora_of[i] < 0) return 0;
    const ExLoraModule *mod = &m->a->mods[m->lora_of[i]];
    int64_t r = m->a->cfg.r, in = mod->in;
    float *row = malloc((size_t)in * sizeof(float));   // (in) one row of B A
    if (!row) {
        diag_file_error(m->d, st_checkpoint_path(m->ck), 0, 0, "out of memory merging `%s`", t->name);
        return -1;
    }
    for (int64_t o = 0; o < mod->out; o++) {   // W[o, :] += s * sum_k B[o, k] A[k, :]
        memset(row, 0, (size_t)in * sizeof(float));
        for (int64_t k = 0; k < r; k++) {
            float b = mod->B[o * r + k];
            const float *arow = mod->A + k * in;
            for (int64_t j = 0; j < in; j++) row[j] += b * arow[j];
        }
        float *w = out + o * in;
        for (int64_t j = 0; j < in; j++) w[j] += row[j] * m->scale;
    }
    free(row);
    return 0;
}

int ex_merge_lora(Diag *d, const char *base_dir, const char *adapter_dir, const char *out_dir, StDtype dtype,
                  uint64_t max_shard_bytes) {
    HfConfig *cfg = calloc(1, sizeof *cfg);
    ExLoraAdapter a;
    memset(&a, 0, sizeof a);
    StCheckpoint *ck = NULL;
    HfTensorSpec *spec = NULL;
    ExTensor *ts = NULL;
    int *lora_of = NULL, rc = -1;
    if (!cfg) {
        diag_file_error(d, base_dir, 0, 0, "out of memory");
        return -1;
    }
    if (hf_config_load(d, base_dir, cfg) || !(ck = st_checkpoint_open(d, cfg->dir)) ||
        hf_config_check_checkpoint(d, cfg, ck) || ex_load_peft_adapter(d, adapter_dir, &a))
        goto out;
    long n = hf_expected_tensors(cfg, NULL, 0);
    if (n > INT32_MAX / 2) {
        diag_file_error(d, base_dir, 0, 0, "%ld tensors is too many", n);
        goto out;
    }
    spec = calloc((size_t)n, sizeof *spec);
    ts = calloc((size_t)n, sizeof *ts);
    lora_of = malloc((size_t)n * sizeof(int));
    if (!spec || !ts || !lora_of) {
        diag_file_error(d, base_dir, 0, 0, "out of memory");
        goto out;
    }
    hf_expected_tensors(cfg, spec, n);
    for (long i = 0; i < n; i++) {
        ts[i].name = spec[i].name;
        ts[i].ndim = spec[i].ndim;
        ts[i].shape[0] = spec[i].shape[0];
        ts[i].shape[1] = spec[i].shape[1];
        lora_of[i] = -1;
    }
    char *apath = st_path_join(adapter_dir, "adapter_model.safetensors");
    for (int k = 0; k < a.n_mods; k++) {
        const ExLoraModule *m = &a.mods[k];
        long hit = -1;
        for (long i = 0; i < n && hit < 0; i++) {
            size_t L = strlen(m->module);
            if (!strncmp(spec[i].name, m->module, L) && !strcmp(spec[i].name + L, ".weight")) hit = i;
        }
        if (hit < 0) {
            diag_file_error(d, apath ? apath : adapter_dir, 0, 0, "LoRA module `%s` has no base weight `%s.weight` in %s",
                            m->module, m->module, base_dir);
            free(apath);
            goto out;
        }
        if (spec[hit].ndim != 2 || spec[hit].shape[0] != m->out || spec[hit].shape[1] != m->in) {
            diag_file_error(d, apath ? apath : adapter_dir, 0, 0, "LoRA module `%s` is [%lld, %lld] (out, in), but the "
                            "base weight is [%lld, %lld]", m->module, (long long)m->out, (long long)m->in,
                            (long long)spec[hit].shape[0], (long long)spec[hit].shape[1]);
            free(apath);
            goto out;
        }
        lora_of[hit] = k;
    }
    free(apath);
    MergeCtx mc = {d, ck, ts, lora_of, &a,
                   (float)(a.cfg.use_rslora ? a.cfg.lora_alpha / sqrt((double)a.cfg.r) : a.cfg.lora_alpha / a.cfg.r)};
    StDtype dt = dtype;
    if (dt == ST_NDTYPES) dt = cfg->dtype == HF_DTYPE_BF16 ? ST_BF16 : cfg->dtype == HF_DTYPE_F16 ? ST_F16 : ST_F32;
    ExModelOptions o = {.base_dir = cfg->dir, .dtype = dt, .max_shard_bytes = max_shard_bytes};
    rc = ex_write_hf_model_stream(d, out_dir, &o, ts, (int)n, merge_fill, &mc);
out:
    free(lora_of);
    free(ts);
    free(spec);
    ex_lora_adapter_free(&a);
    st_checkpoint_close(ck);
    free(cfg);
    return rc;
}
