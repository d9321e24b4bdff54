// hfconfig.c — config.json (llama, qwen2, qwen3) → HfConfig, with transformers' defaults
// (LlamaConfig, Qwen2Config, Qwen3Config of transformers 4.51), the RoPE frequencies, the list of
// weights an architecture expects, and the check of a checkpoint against it.
// Does not: read weights (safetensors.c) or tokenizer files. Unknown keys are ignored, as
// transformers does; known keys with a wrong type or an out-of-range value are errors.
#include "hfconfig.h"
#include "safetensors.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { HF_MAX_CONFIG_BYTES = 16 << 20 };
#define HF_MAX_DIM ((int64_t)1 << 30)   // any size beyond this is a broken file, not a model
#define HF_MAX_PARAMS ((int64_t)1 << 44) // nor a model of more parameters (the largest have ~2^41)

static const char *const hf_supported[] = {"llama", "qwen2", "qwen3"};

const char *hf_arch_name(HfArch a) {
    switch (a) {
    case HF_ARCH_LLAMA: return "llama";
    case HF_ARCH_QWEN2: return "qwen2";
    case HF_ARCH_QWEN3: return "qwen3";
    }
    return "?";
}

const char *hf_dtype_name(HfDtype t) {
    switch (t) {
    case HF_DTYPE_F32: return "float32";
    case HF_DTYPE_F16: return "float16";
    case HF_DTYPE_BF16: return "bfloat16";
    case HF_DTYPE_UNSET: break;
    }
    return "unset";
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

// Reads an integer field in [lo, hi]. Absent or null: *out keeps its default. Returns 0 / -1.
static int get_int(Diag *d, const char *path, json_t *obj, const char *key, int64_t lo, int64_t hi,
                   int64_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        diag_file_error(d, path, 0, 0, "`%s` must be an integer, found %s", key, json_kind(v));
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        diag_file_error(d, path, 0, 0, "`%s` = %lld is out of range [%lld, %lld]", key, (long long)x,
                        (long long)lo, (long long)hi);
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

// A positive finite number (integer or real). Absent or null: default kept.
static int get_pos_num(Diag *d, const char *path, json_t *obj, const char *key, double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        diag_file_error(d, path, 0, 0, "`%s` must be a number, found %s", key, json_kind(v));
        return -1;
    }
    double x = json_number_value(v);
    if (!(x > 0) || !isfinite(x)) {
        diag_file_error(d, path, 0, 0, "`%s` must be a positive number, found %g", key, x);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_bool(Diag *d, const char *path, json_t *obj, const char *key, bool *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        diag_file_error(d, path, 0, 0, "`%s` must be true or false, found %s", key, json_kind(v));
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

// bos/pad: an integer or null (-1). eos: an integer, a list of integers, or null.
static int get_token_ids(Diag *d, const char *path, json_t *root, HfConfig *c) {
    int bad = 0;
    bad |= get_int(d, path, root, "bos_token_id", 0, INT32_MAX, &c->bos_token_id);
    bad |= get_int(d, path, root, "pad_token_id", 0, INT32_MAX, &c->pad_token_id);
    json_t *v = json_object_get(root, "eos_token_id");
    if (v && json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n > HF_MAX_EOS) {
            diag_file_error(d, path, 0, 0, "`eos_token_id` lists %zu ids, at most %d are supported", n,
                            HF_MAX_EOS);
            return -1;
        }
        c->n_eos = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
                diag_file_error(d, path, 0, 0, "`eos_token_id[%zu]` must be a non-negative integer", i);
                return -1;
            }
            c->eos_token_ids[c->n_eos++] = json_integer_value(e);
        }
    } else if (v && !json_is_null(v)) {
        int64_t e = -1;
        if (get_int(d, path, root, "eos_token_id", 0, INT32_MAX, &e)) return -1;
        c->eos_token_ids[0] = e;
        c->n_eos = 1;
    }
    return bad ? -1 : 0;
}

static int get_dtype(Diag *d, const char *path, json_t *root, HfConfig *c) {
    // Newer files say `dtype`, older ones `torch_dtype`; `dtype` wins when both are there.
    const char *keys[2] = {"dtype", "torch_dtype"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(root, keys[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) {
            diag_file_error(d, path, 0, 0, "`%s` must be a string, found %s", keys[k], json_kind(v));
            return -1;
        }
        const char *s = json_string_value(v);
        if (!strcmp(s, "float32") || !strcmp(s, "float")) c->dtype = HF_DTYPE_F32;
        else if (!strcmp(s, "float16") || !strcmp(s, "half")) c->dtype = HF_DTYPE_F16;
        else if (!strcmp(s, "bfloat16")) c->dtype = HF_DTYPE_BF16;
        else {
            diag_file_error(d, path, 0, 0, "unsupported %s `%s`; supported: float32, float16, bfloat16",
                            keys[k], s);
            return -1;
        }
        return 0;
    }
    return 0;
}

// rope_scaling (old) or rope_parameters (new: also carries rope_theta). null / absent / type
// "default" = plain RoPE.
static int get_rope(Diag *d, const char *path, json_t *root, HfConfig *c) {
    c->rope.theta = 10000.0;
    c->rope.type = HF_ROPE_DEFAULT;
    c->rope.factor = 1.0;
    if (get_pos_num(d, path, root, "rope_theta", &c->rope.theta)) return -1;
    const char *key = "rope_parameters";
    json_t *rs = json_object_get(root, key);
    if (rs && !json_is_null(rs)) {
        if (!json_is_object(rs)) {
            diag_file_error(d, path, 0, 0, "`%s` must be an object, found %s", key, json_kind(rs));
            return -1;
        }
        if (get_pos_num(d, path, rs, "rope_theta", &c->rope.theta)) return -1;
    } else {
        key = "rope_scaling";
        rs = json_object_get(root, key);
        if (!rs || json_is_null(rs)) return 0;
        if (!json_is_object(rs)) {
            diag_file_error(d, path, 0, 0, "`%s` must be an object or null, found %s", key, json_kind(rs));
            return -1;
        }
    }
    json_t *t = json_object_get(rs, "rope_type");
    if (!t || json_is_null(t)) t = json_object_get(rs, "type");
    if (!t || json_is_null(t)) return 0;
    if (!json_is_string(t)) {
        diag_file_error(d, path, 0, 0, "`%s.rope_type` must be a string, found %s", key, json_kind(t));
        return -1;
    }
    const char *s = json_string_value(t);
    if (!strcmp(s, "default")) return 0;
    if (!strcmp(s, "linear")) c->rope.type = HF_ROPE_LINEAR;
    else if (!strcmp(s, "llama3")) c->rope.type = HF_ROPE_LLAMA3;
    else {
        diag_file_error(d, path, 0, 0, "unsupported `%s.rope_type` `%s`; supported: default, linear, llama3",
                        key, s);
        return -1;
    }
    const char *need[4] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    int nneed = c->rope.type == HF_ROPE_LLAMA3 ? 4 : 1;
    for (int i = 0; i < nneed; i++) {
        json_t *v = json_object_get(rs, need[i]);
        if (!v || json_is_null(v)) {
            diag_file_error(d, path, 0, 0, "`%s` of type `%s` needs `%s`", key, s, need[i]);
            return -1;
        }
    }
    if (get_pos_num(d, path, rs, "factor", &c->rope.factor)) return -1;
    if (c->rope.type == HF_ROPE_LLAMA3) {
        if (get_pos_num(d, path, rs, "low_freq_factor", &c->rope.low_freq_factor) ||
            get_pos_num(d, path, rs, "high_freq_factor", &c->rope.high_freq_factor) ||
            get_int(d, path, rs, "original_max_position_embeddings", 1, HF_MAX_DIM,
                    &c->rope.original_max_position_embeddings))
            return -1;
        if (!(c->rope.high_freq_factor > c->rope.low_freq_factor)) {
            diag_file_error(d, path, 0, 0, "`%s`: high_freq_factor (%g) must be greater than low_freq_factor (%g)",
                            key, c->rope.high_freq_factor, c->rope.low_freq_factor);
            return -1;
        }
    }
    return 0;
}

static void set_defaults(HfConfig *c, HfArch a) {
    // The __init__ defaults of LlamaConfig / Qwen2Config / Qwen3Config.
    c->arch = a;
    snprintf(c->model_type, sizeof c->model_type, "%s", hf_arch_name(a));
    c->vocab_size = a == HF_ARCH_LLAMA ? 32000 : 151936;
    c->hidden_size = 4096;
    c->intermediate_size = a == HF_ARCH_LLAMA ? 11008 : 22016;
    c->num_hidden_layers = 32;
    c->num_attention_heads = 32;
    c->num_key_value_heads = 32;   // llama: = num_attention_heads (set after reading those)
    c->head_dim = a == HF_ARCH_QWEN3 ? 128 : 0;   // 0: hidden / heads, after reading
    c->max_position_embeddings = a == HF_ARCH_LLAMA ? 2048 : 32768;
    c->rms_norm_eps = 1e-6;
    c->tie_word_embeddings = false;
    c->bos_token_id = a == HF_ARCH_LLAMA ? 1 : -1;
    c->pad_token_id = -1;
    c->n_eos = 0;
    if (a == HF_ARCH_LLAMA) {
        c->eos_token_ids[0] = 2;
        c->n_eos = 1;
    }
    c->qk_norm = a == HF_ARCH_QWEN3;
    c->qkv_bias = a == HF_ARCH_QWEN2;
    c->dtype = HF_DTYPE_UNSET;
}

static int parse_root(Diag *d, const char *path, json_t *root, HfConfig *c) {
    if (!json_is_object(root)) {
        diag_file_error(d, path, 0, 0, "config.json must hold a JSON object, found %s", json_kind(root));
        return -1;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (!mt) {
        diag_file_error(d, path, 0, 0, "missing `model_type`; supported: llama, qwen2, qwen3");
        return -1;
    }
    if (!json_is_string(mt)) {
        diag_file_error(d, path, 0, 0, "`model_type` must be a string, found %s", json_kind(mt));
        return -1;
    }
    const char *s = json_string_value(mt);
    HfArch a;
    if (!strcmp(s, "llama")) a = HF_ARCH_LLAMA;
    else if (!strcmp(s, "qwen2")) a = HF_ARCH_QWEN2;
    else if (!strcmp(s, "qwen3")) a = HF_ARCH_QWEN3;
    else {
        const char *sug = suggest_word(s, hf_supported, 3);
        diag_file_error(d, path, 0, 0, "unsupported model_type `%s`; supported: llama, qwen2, qwen3", s);
        if (sug) diag_hint(d, "did you mean `%s`?", sug);
        return -1;
    }
    set_defaults(c, a);

    int bad = 0;
    bad |= get_int(d, path, root, "vocab_size", 1, HF_MAX_DIM, &c->vocab_size);
    bad |= get_int(d, path, root, "hidden_size", 1, HF_MAX_DIM, &c->hidden_size);
    bad |= get_int(d, path, root, "intermediate_size", 1, HF_MAX_DIM, &c->intermediate_size);
    bad |= get_int(d, path, root, "num_hidden_layers", 1, 100000, &c->num_hidden_layers);
    bad |= get_int(d, path, root, "num_attention_heads", 1, 1 << 16, &c->num_attention_heads);
    bad |= get_int(d, path, root, "max_position_embeddings", 1, HF_MAX_DIM, &c->max_position_embeddings);
    // num_key_value_heads: absent → the class default (llama: heads; qwen: 32); null → heads.
    json_t *kv = json_object_get(root, "num_key_value_heads");
    if (a == HF_ARCH_LLAMA || (kv && json_is_null(kv))) c->num_key_value_heads = c->num_attention_heads;
    bad |= get_int(d, path, root, "num_key_value_heads", 1, 1 << 16, &c->num_key_value_heads);
    bad |= get_int(d, path, root, "head_dim", 1, 1 << 16, &c->head_dim);
    if (c->head_dim == 0 || json_is_null(json_object_get(root, "head_dim")))
        c->head_dim = c->hidden_size / c->num_attention_heads;
    bad |= get_pos_num(d, path, root, "rms_norm_eps", &c->rms_norm_eps);
    bad |= get_bool(d, path, root, "tie_word_embeddings", &c->tie_word_embeddings);
    if (a != HF_ARCH_QWEN2) {   // qwen2's q/k/v always carry a bias, its o_proj never
        bool ab = false;
        bad |= get_bool(d, path, root, "attention_bias", &ab);
        c->qkv_bias = c->o_bias = ab;
    }
    if (a == HF_ARCH_LLAMA) bad |= get_bool(d, path, root, "mlp_bias", &c->mlp_bias);
    if (a != HF_ARCH_LLAMA) {   // Qwen2Config / Qwen3Config: use_sliding_window false, 4096, 28
        bool use = false;
        int64_t win = 4096;
        c->max_window_layers = 28;
        bad |= get_bool(d, path, root, "use_sliding_window", &use);
        bad |= get_int(d, path, root, "sliding_window", 1, HF_MAX_DIM, &win);
        bad |= get_int(d, path, root, "max_window_layers", 0, 100000, &c->max_window_layers);
        json_t *w = json_object_get(root, "sliding_window");
        if (use && !(w && json_is_null(w)) && c->max_window_layers < c->num_hidden_layers) c->sliding_window = win;
    }
    if (bad) return -1;
    if (get_rope(d, path, root, c) || get_dtype(d, path, root, c) || get_token_ids(d, path, root, c))
        return -1;

    json_t *qc = json_object_get(root, "quantization_config");
    if (qc && !json_is_null(qc)) {
        json_t *qm = json_is_object(qc) ? json_object_get(qc, "quant_method") : NULL;
        snprintf(c->quant_method, sizeof c->quant_method, "%s", json_is_string(qm) ? json_string_value(qm) : "unknown");
    }
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !json_is_null(act)) {
        if (!json_is_string(act) ||
            (strcmp(json_string_value(act), "silu") && strcmp(json_string_value(act), "swish"))) {
            diag_file_error(d, path, 0, 0, "unsupported `hidden_act` %s%s%s; supported: silu",
                            json_is_string(act) ? "`" : "", json_is_string(act) ? json_string_value(act) : json_kind(act),
                            json_is_string(act) ? "`" : "");
            return -1;
        }
    }
    if (c->head_dim == 0) {
        diag_file_error(d, path, 0, 0, "hidden_size (%lld) is smaller than num_attention_heads (%lld) and no "
                        "head_dim is given", (long long)c->hidden_size, (long long)c->num_attention_heads);
        return -1;
    }
    if (c->num_attention_heads % c->num_key_value_heads) {
        diag_file_error(d, path, 0, 0, "num_attention_heads (%lld) is not a multiple of num_key_value_heads (%lld)",
                        (long long)c->num_attention_heads, (long long)c->num_key_value_heads);
        return -1;
    }
    if (c->head_dim % 2) {
        diag_file_error(d, path, 0, 0, "head_dim (%lld) must be even for rotary embeddings", (long long)c->head_dim);
        return -1;
    }
    if (c->num_attention_heads * c->head_dim > HF_MAX_DIM) {
        diag_file_error(d, path, 0, 0, "num_attention_heads * head_dim = %lld is too large",
                        (long long)(c->num_attention_heads * c->head_dim));
        return -1;
    }
    // Every size may be in range while their product is not: the weights' element count (and
    // bytes, optimizer state, ...) must fit the 64-bit sizes everything downstream computes.
    int64_t params = hf_param_count(c);
    if (params > HF_MAX_PARAMS) {
        if (params == INT64_MAX)
            diag_file_error(d, path, 0, 0, "these sizes make a model of more than 2^63 parameters (at most 2^44)");
        else
            diag_file_error(d, path, 0, 0, "these sizes make a model of %lld parameters, more than 2^44 (17.6 trillion)",
                            (long long)params);
        return -1;
    }
    return 0;
}

static void set_paths(HfConfig *c, const char *path) {
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->dir, sizeof c->dir, "%s", path);
    char *slash = strrchr(c->dir, '/');
    if (!slash) snprintf(c->dir, sizeof c->dir, ".");
    else if (slash == c->dir) slash[1] = 0;
    else *slash = 0;
}

int hf_config_parse(Diag *d, const char *name, const char *json, size_t len, HfConfig *out) {
    memset(out, 0, sizeof *out);
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root) {
        diag_file_error(d, name, err.line, err.column, "invalid JSON: %s", err.text);
        return -1;
    }
    int rc = parse_root(d, name, root, out);
    json_decref(root);
    snprintf(out->path, sizeof out->path, "%s", name);
    snprintf(out->dir, sizeof out->dir, ".");
    return rc;
}

int hf_config_load(Diag *d, const char *dir_or_file, HfConfig *out) {
    memset(out, 0, sizeof *out);
    char path[HF_PATH_MAX];
    struct stat st;
    if (stat(dir_or_file, &st) != 0) {
        diag_file_error(d, dir_or_file, 0, 0, "no such file or directory");
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(dir_or_file);
        int w = snprintf(path, sizeof path, "%s%sconfig.json", dir_or_file,
                         n && dir_or_file[n - 1] == '/' ? "" : "/");
        if (w < 0 || (size_t)w >= sizeof path) {
            diag_file_error(d, dir_or_file, 0, 0, "path too long");
            return -1;
        }
        if (stat(path, &st) != 0) {
            diag_file_error(d, dir_or_file, 0, 0, "not a model directory: no config.json in it");
            return -1;
        }
    } else {
        if (strlen(dir_or_file) >= sizeof path) {
            diag_file_error(d, dir_or_file, 0, 0, "path too long");
            return -1;
        }
        snprintf(path, sizeof path, "%s", dir_or_file);
    }
    if (!S_ISREG(st.st_mode)) {
        diag_file_error(d, path, 0, 0, "not a regular file");
        return -1;
    }
    if (st.st_size > HF_MAX_CONFIG_BYTES) {
        diag_file_error(d, path, 0, 0, "%lld bytes is too large for a config.json", (long long)st.st_size);
        return -1;
    }
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root) {
        if (err.line > 0) diag_file_error(d, path, err.line, err.column, "invalid JSON: %s", err.text);
        else diag_file_error(d, path, 0, 0, "cannot read: %s", err.text);
        return -1;
    }
    int rc = parse_root(d, path, root, out);
    json_decref(root);
    set_paths(out, path);
    return rc;
}

void hf_rope_inv_freq(const HfConfig *c, double *inv_freq /* (hd/2) */) {
    int64_t hd = c->head_dim;
    const HfRope *r = &c->rope;
    for (int64_t i = 0; i < hd / 2; i++) {
        double f = 1.0 / pow(r->theta, (double)(2 * i) / (double)hd);
        if (r->type == HF_ROPE_LINEAR) {
            f /= r->factor;
        } else if (r->type == HF_ROPE_LLAMA3) {
            double L = (double)r->original_max_position_embeddings;
            double wavelen = 2.0 * M_PI / f;
            double low_wl = L / r->low_freq_factor, high_wl = L / r->high_freq_factor;
            if (wavelen > low_wl) {
                f /= r->factor;
            } else if (wavelen >= high_wl) {
                double s = (L / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
                f = (1 - s) * f / r->factor + s * f;
            }
        }
        inv_freq[i] = f;
    }
}

// Walks the expected weights in transformers' state_dict order, calling fn for each.
typedef struct Walk {
    void (*fn)(struct Walk *w, const HfTensorSpec *s);
    long n;
} Walk;

static void spec(Walk *w, int ndim, int64_t d0, int64_t d1, const char *fmt, long layer, const char *part) {
    HfTensorSpec s;
    if (layer >= 0) snprintf(s.name, sizeof s.name, fmt, layer, part);
    else snprintf(s.name, sizeof s.name, "%s", fmt);
    s.ndim = ndim;
    s.shape[0] = d0;
    s.shape[1] = ndim == 2 ? d1 : 0;
    w->fn(w, &s);
    w->n++;
}

static long walk(const HfConfig *c, Walk *w) {
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t q = c->num_attention_heads * c->head_dim, kv = c->num_key_value_heads * c->head_dim;
    const char *L = "model.layers.%ld.%s";
    w->n = 0;
    spec(w, 2, V, H, "model.embed_tokens.weight", -1, NULL);
    for (long l = 0; l < c->num_hidden_layers; l++) {
        spec(w, 2, q, H, L, l, "self_attn.q_proj.weight");
        if (c->qkv_bias) spec(w, 1, q, 0, L, l, "self_attn.q_proj.bias");
        spec(w, 2, kv, H, L, l, "self_attn.k_proj.weight");
        if (c->qkv_bias) spec(w, 1, kv, 0, L, l, "self_attn.k_proj.bias");
        spec(w, 2, kv, H, L, l, "self_attn.v_proj.weight");
        if (c->qkv_bias) spec(w, 1, kv, 0, L, l, "self_attn.v_proj.bias");
        spec(w, 2, H, q, L, l, "self_attn.o_proj.weight");
        if (c->o_bias) spec(w, 1, H, 0, L, l, "self_attn.o_proj.bias");
        if (c->qk_norm) {
            spec(w, 1, c->head_dim, 0, L, l, "self_attn.q_norm.weight");
            spec(w, 1, c->head_dim, 0, L, l, "self_attn.k_norm.weight");
        }
        spec(w, 2, I, H, L, l, "mlp.gate_proj.weight");
        if (c->mlp_bias) spec(w, 1, I, 0, L, l, "mlp.gate_proj.bias");
        spec(w, 2, I, H, L, l, "mlp.up_proj.weight");
        if (c->mlp_bias) spec(w, 1, I, 0, L, l, "mlp.up_proj.bias");
        spec(w, 2, H, I, L, l, "mlp.down_proj.weight");
        if (c->mlp_bias) spec(w, 1, H, 0, L, l, "mlp.down_proj.bias");
        spec(w, 1, H, 0, L, l, "input_layernorm.weight");
        spec(w, 1, H, 0, L, l, "post_attention_layernorm.weight");
    }
    spec(w, 1, H, 0, "model.norm.weight", -1, NULL);
    if (!c->tie_word_embeddings) spec(w, 2, V, H, "lm_head.weight", -1, NULL);
    return w->n;
}

typedef struct ListWalk {
    Walk w;
    HfTensorSpec *out;
    long cap;
} ListWalk;

static void list_one(Walk *w, const HfTensorSpec *s) {
    ListWalk *lw = (ListWalk *)w;
    if (w->n < lw->cap) lw->out[w->n] = *s;
}

typedef struct CountWalk {
    Walk w;
    int64_t params;
} CountWalk;

// Saturates at INT64_MAX: each size is at most 2^30, but their sum over 100000 layers is not bounded
// by 2^63 (a config.json may say anything; hf_config_parse then refuses it).
static void count_one(Walk *w, const HfTensorSpec *s) {
    int64_t n, *p = &((CountWalk *)w)->params;
    if (__builtin_mul_overflow(s->shape[0], s->ndim == 2 ? s->shape[1] : 1, &n) || __builtin_add_overflow(*p, n, p))
        *p = INT64_MAX;
}

int64_t hf_param_count(const HfConfig *c) {
    CountWalk cw = {{count_one, 0}, 0};
    walk(c, &cw.w);
    return cw.params;
}

long hf_expected_tensors(const HfConfig *c, HfTensorSpec *out, long cap) {
    ListWalk lw = {{list_one, 0}, out, out ? cap : 0};
    return walk(c, &lw.w);
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

enum { HF_MAX_REPORTED = 20 };   // problems printed before "... and N more"

typedef struct CheckWalk {
    Walk w;
    Diag *d;
    const HfConfig *c;
    struct StCheckpoint *ck;
    int problems;
} CheckWalk;

static void check_one(Walk *w, const HfTensorSpec *s) {
    CheckWalk *cw = (CheckWalk *)w;
    Diag *d = cw->d;
    const HfConfig *c = cw->c;
    const StTensor *t = st_checkpoint_find(cw->ck, s->name);
    char want[64], got[160];
    shape_str(want, sizeof want, s->ndim, s->shape);
    bool quiet = cw->problems >= HF_MAX_REPORTED;
    if (!t) {
        if (!quiet && !strcmp(s->name, "lm_head.weight"))
            diag_file_error(d, st_checkpoint_path(cw->ck), 0, 0, "missing tensor `lm_head.weight` %s (config.json has "
                            "tie_word_embeddings false)", want);
        else if (!quiet)
            diag_file_error(d, st_checkpoint_path(cw->ck), 0, 0, "missing tensor `%s` %s expected from %s", s->name,
                            want, c->path);
        cw->problems++;
        return;
    }
    bool same = t->ndim == s->ndim;
    for (int k = 0; same && k < s->ndim; k++) same = t->shape[k] == s->shape[k];
    if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16) {
        if (!quiet)
            diag_file_error(d, t->file, 0, 0, "tensor `%s` has dtype %s; a model weight must be F32, BF16 or F16",
                            s->name, st_dtype_name(t->dtype));
        cw->problems++;
    }
    if (!same) {
        shape_str(got, sizeof got, t->ndim, t->shape);
        if (!quiet)
            diag_file_error(d, t->file, 0, 0, "tensor `%s` has shape %s, expected %s from %s", s->name, got, want,
                            c->path);
        cw->problems++;
    }
}

int hf_config_check_checkpoint(Diag *d, const HfConfig *c, struct StCheckpoint *ck) {
    CheckWalk cw = {{check_one, 0}, d, c, ck, 0};
    walk(c, &cw.w);
    if (cw.problems > HF_MAX_REPORTED)
        diag_file_error(d, st_checkpoint_path(ck), 0, 0, "... and %d more problems (%d in all)",
                        cw.problems - HF_MAX_REPORTED, cw.problems);
    if (cw.problems && c->quant_method[0])
        diag_hint(d, "config.json has a quantization_config (%s): this is a pre-quantized checkpoint; give trlc the "
                     "unquantized model and let it quantize", c->quant_method);
    return cw.problems;
}
