// check.c — the semantic checker of the top-level blocks of a spec (model, quantize, lora, data,
// objective, train): names, types, units, ranges, enums, files, and the rules that tie blocks
// together (a `lora` needs its model, a teacher must exist, data formats fit the objective, LoRA
// targets exist in the architecture). Every problem is reported, with a hint where one helps;
// nothing stops at the first error. Then it fills a CheckedSpec with every value and default.
// Each block's own settings are validated by check_items.c (against compiler/schema.c).
// Not here: syntax and imports (the front end reports those before we run), graph code inside
// `def`/`arch` (lower.c), the contents of data files and checkpoints (runtime/io).
#include "check_int.h"
#include "tokenizer.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const builtin_archs[] = {"llama", "qwen2", "qwen3"};
static const char *const builtin_linear[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                             "gate_proj", "up_proj", "down_proj", "lm_head"};
static const char *const planned_objectives[] = {"reward", "ppo", NULL};

// ---------------------------------------------------------------------------------------------
// Architectures and their linear layers

// The value of an `if` condition on a boolean config field (`cfg.tie`, `!cfg.tie`): 1, 0, or -1
// when unknown (no config, or any other expression: both branches count).
static int cfg_cond(const Ast *e, const CheckedConfig *cfg) {
    if (!e || !cfg) return -1;
    if (e->kind == AST_UNARY && e->op == '!') {
        int v = cfg_cond(e->a, cfg);
        return v < 0 ? -1 : !v;
    }
    if (e->kind == AST_MEMBER && e->a && e->a->kind == AST_IDENT && !strcmp(e->a->name, "cfg") && e->name &&
        !strcmp(e->name, "tie"))
        return cfg->tie;
    return -1;
}

static void collect_linear(const Ast *n, const CheckedConfig *cfg, const char **names, int *count, int cap,
                           int depth) {
    if (!n || depth > 64) return;
    if (n->kind == AST_IF) {
        int v = cfg_cond(n->a, cfg);
        if (v != 0) collect_linear(n->body, cfg, names, count, cap, depth + 1);
        if (v != 1) collect_linear(n->c, cfg, names, count, cap, depth + 1);
        return;
    }
    if (n->kind == AST_PARAM) {
        const Ast *path = n->a, *shape = n->b;
        if (!path || !shape || shape->kind != AST_LIST || shape->nkids != 2) return;
        if (path->kind != AST_MEMBER || !path->name || strcmp(path->name, "weight") || !path->a) return;
        const Ast *owner = path->a;
        const char *name = (owner->kind == AST_MEMBER || owner->kind == AST_IDENT) ? owner->name : NULL;
        if (!name || strstr(name, "embed")) return;
        for (int i = 0; i < *count; i++)
            if (!strcmp(names[i], name)) return;
        if (*count < cap) names[(*count)++] = name;
        return;
    }
    if (n->body) collect_linear(n->body, cfg, names, count, cap, depth + 1);
    if (n->kind == AST_STMTS)
        for (int i = 0; i < n->nkids; i++) collect_linear(n->kids[i], cfg, names, count, cap, depth + 1);
}

static int linear_names(const Ast *arch, const CheckedConfig *cfg, const char **names, int cap) {
    int n = 0;
    if (arch) collect_linear(arch, cfg, names, &n, cap, 0);
    if (n == 0) {
        for (size_t i = 0; i < sizeof builtin_linear / sizeof *builtin_linear && n < cap; i++)
            if (!(cfg && cfg->tie && !strcmp(builtin_linear[i], "lm_head"))) names[n++] = builtin_linear[i];
    }
    return n;
}

int check_linear_names(const Ast *arch, const char **names, int cap) {
    return linear_names(arch, NULL, names, cap);
}

static const Ast *find_arch(Ck *c, const char *name) {
    for (int i = 0; i < c->narchs; i++)
        if (c->archs[i]->name && !strcmp(c->archs[i]->name, name)) return c->archs[i];
    return NULL;
}

static bool builtin_arch(const char *name) {
    for (size_t i = 0; i < sizeof builtin_archs / sizeof *builtin_archs; i++)
        if (!strcmp(builtin_archs[i], name)) return true;
    return false;
}

static bool known_arch(Ck *c, const char *name) {
    return builtin_arch(name) || find_arch(c, name) != NULL;
}

static void add_archs(Ck *c, const Ast *spec) {
    for (int i = 0; spec && i < spec->nkids; i++)
        if (spec->kids[i] && spec->kids[i]->kind == AST_ARCH && c->narchs < MAX_ARCHS)
            c->archs[c->narchs++] = spec->kids[i];
}

// ---------------------------------------------------------------------------------------------
// Files

// 0: a regular file (want_dir false) or a directory (want_dir true); reports and returns -1 else.
static int check_file(Ck *c, const Ast *v, const char *what, bool want_dir, const char **joined) {
    const char *path = ck_join_path(c, v->str);
    *joined = path;
    struct stat st;
    if (stat(path, &st) != 0) {
        diag_error(c->d, v->loc, "%s `%s` %s", what, v->str, errno == ENOENT ? "does not exist" : strerror(errno));
        if (strcmp(path, v->str)) diag_hint(c->d, "paths are relative to the spec's directory: looked for `%s`", path);
        return -1;
    }
    if (want_dir && !S_ISDIR(st.st_mode)) {
        diag_error(c->d, v->loc, "%s `%s` is not a directory", what, v->str);
        diag_hint(c->d, "`from` names a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)");
        return -1;
    }
    if (!want_dir && S_ISDIR(st.st_mode)) {
        diag_error(c->d, v->loc, "%s `%s` is a directory, not a file", what, v->str);
        return -1;
    }
    return 0;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

// ---------------------------------------------------------------------------------------------
// model, quantize, lora

static void set_cfg_from_hf(CheckedConfig *cfg, const HfConfig *hf) {
    cfg->vocab = hf->vocab_size;
    cfg->hidden = hf->hidden_size;
    cfg->layers = hf->num_hidden_layers;
    cfg->heads = hf->num_attention_heads;
    cfg->kv_heads = hf->num_key_value_heads;
    cfg->head_dim = hf->head_dim;
    cfg->ffn = hf->intermediate_size;
    cfg->max_pos = hf->max_position_embeddings;
    cfg->eps = hf->rms_norm_eps;
    cfg->rope_theta = hf->rope.theta;
    cfg->tie = hf->tie_word_embeddings;
    cfg->init_std = 0.02;
}

static void check_model(Ck *c, const Ast *blk, CheckedModel *m) {
    m->name = blk->label;
    m->loc = blk->label_loc;
    m->dtype = ck_name_or(blk, "dtype", "bf16");
    const Ast *from = ck_setting(blk, "from"), *arch = ck_setting(blk, "arch"), *config = ck_sub_block(blk, "config");
    const Ast *init = ck_setting(blk, "init"), *tok = ck_setting(blk, "tokenizer");
    if (arch && arch->kind == AST_IDENT) {
        if (!known_arch(c, arch->name)) {
            const char *names[MAX_ARCHS + 4];
            int n = 0;
            for (size_t i = 0; i < sizeof builtin_archs / sizeof *builtin_archs; i++) names[n++] = builtin_archs[i];
            for (int i = 0; i < c->narchs && n < MAX_ARCHS + 3; i++) names[n++] = c->archs[i]->name;
            // dedupe (a module may define llama too)
            int u = 0;
            for (int i = 0; i < n; i++) {
                bool dup = false;
                for (int j = 0; j < u; j++) dup |= !strcmp(names[j], names[i]);
                if (!dup) names[u++] = names[i];
            }
            names[u] = NULL;
            ck_enum_error(c, "`arch`", names, arch, arch->name);
        } else {
            m->arch = arch->name;
        }
    }
    if (from && from->kind == AST_STR && from->str_len > 0) {
        const char *dir;
        if (check_file(c, from, "model directory", true, &dir) == 0) {
            m->from = dir;
            const char *cfgpath = arena_printf(c->a, "%s/config.json", dir);
            struct stat st;
            if (stat(cfgpath, &st) != 0 || !S_ISREG(st.st_mode)) {
                diag_error(c->d, from->loc, "model directory `%s` has no config.json", from->str);
                diag_hint(c->d, "`from` names a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)");
            } else {
                bool *ok = &c->dir_ok[m - c->out->models];
#ifdef TRLC_HAVE_HFCONFIG
                if (hf_config_load(c->d, dir, &m->hf) == 0) {
                    *ok = true;
                    m->has_hf = true;
                    m->has_config = true;
                    set_cfg_from_hf(&m->cfg, &m->hf);
                    if (!m->arch) m->arch = hf_arch_name(m->hf.arch);
                } else {
                    diag_note(c->d, from->loc, "while reading the model `%s`", blk->label);
                }
#else
                *ok = true;
                (void)set_cfg_from_hf;   // config.json is read once runtime/io/hfconfig.c lands
#endif
            }
        }
        if (config) {
            diag_error(c->d, config->name_loc, "model `%s` has both `from` and `config`", blk->label);
            diag_hint(c->d, "with `from`, the dimensions come from config.json; `config { }` is for models without checkpoint");
        }
        if (init) {
            diag_error(c->d, ck_setting_item(blk, "init")->name_loc, "`init` is for models without checkpoint; `%s` loads its weights from `from`",
                       blk->label);
        }
    } else if (!from) {
        if (!arch) {
            diag_error(c->d, ck_head_loc(blk), "model `%s` needs `from` or `arch`", blk->label);
            diag_hint(c->d, "write `from = \"path/to/hf-model\";`, or `arch = llama;` with `config { ... }` for a model from scratch");
        } else if (!config) {
            diag_error(c->d, ck_head_loc(blk), "model `%s` has no checkpoint: give its dimensions in `config { ... }`", blk->label);
            diag_hint(c->d, "`config { vocab = ...; hidden = ...; layers = ...; heads = ...; ffn = ...; }`");
        }
        if (!tok && arch) {
            diag_error(c->d, ck_head_loc(blk), "model `%s` has no checkpoint, so it needs a `tokenizer`", blk->label);
            diag_hint(c->d, "write `tokenizer = bytes;` or `tokenizer = \"path/to/tokenizer.json\";`");
        }
    }
    if (config && !from) {   // with `from` the dimensions are config.json's (a `config` was reported above)
        CheckedConfig *g = &m->cfg;
        g->vocab = ck_int_or(config, "vocab", 0);
        g->hidden = ck_int_or(config, "hidden", 0);
        g->layers = ck_int_or(config, "layers", 0);
        g->heads = ck_int_or(config, "heads", 0);
        g->kv_heads = ck_int_or(config, "kv_heads", g->heads);
        g->ffn = ck_int_or(config, "ffn", 0);
        g->max_pos = ck_int_or(config, "max_pos", 2048);
        g->eps = ck_num_or(config, "eps", 1e-6);
        g->rope_theta = ck_num_or(config, "rope_theta", 10000);
        g->tie = ck_bool_or(config, "tie", false);
        const Ast *hd = ck_setting(config, "head_dim");
        g->head_dim = ck_int_or(config, "head_dim", 0);
        if (!hd && g->heads > 0 && g->hidden > 0) {
            if (g->hidden % g->heads) {
                diag_error(c->d, ck_setting(config, "heads")->loc, "`heads` (%lld) does not divide `hidden` (%lld)",
                           (long long)g->heads, (long long)g->hidden);
                diag_hint(c->d, "choose `heads` dividing `hidden`, or set `head_dim`");
            } else {
                g->head_dim = g->hidden / g->heads;
            }
        }
        const Ast *kv = ck_setting(config, "kv_heads");
        if (kv && g->kv_heads > 0 && g->heads > 0 && g->heads % g->kv_heads) {
            diag_error(c->d, kv->loc, "`kv_heads` (%lld) does not divide `heads` (%lld)", (long long)g->kv_heads,
                       (long long)g->heads);
            diag_hint(c->d, "grouped-query attention shares each key/value head among heads / kv_heads query heads");
        }
        m->has_config = g->vocab > 0 && g->hidden > 0 && g->layers > 0 && g->heads > 0 && g->ffn > 0;
        if (m->arch && !builtin_arch(m->arch)) m->has_config = g->vocab > 0;   // the spec's own arch
        else if (m->has_config && g->head_dim > 0 && g->kv_heads > 0) {
            // Each size is bounded, their product is not: the decoder's weights (computed in double,
            // so that nothing overflows) must fit the 64-bit sizes lowering and the runtime use, as
            // hf_config_parse requires of config.json (at most 2^44 parameters).
            double H = (double)g->hidden, q = (double)g->heads * g->head_dim, kv = (double)g->kv_heads * g->head_dim;
            double n = (double)g->vocab * H * (g->tie ? 1 : 2) + H +
                       (double)g->layers * (2 * H * q + 2 * H * kv + 3 * H * g->ffn + 2 * H + 2 * (double)g->head_dim);
            if (n > 17592186044416.0) {
                diag_error(c->d, ck_setting(config, "layers") ? ck_setting(config, "layers")->loc : config->loc,
                           "model `%s` would have %.3g parameters, more than 2^44 (17.6 trillion)", m->name, n);
                diag_hint(c->d, "check `vocab`, `hidden`, `layers`, `heads`, `head_dim` and `ffn`");
            }
        }
        g->init_std = 0.02;
    }
    if (init && init->kind == AST_CALL) {
        const Ast *std = init->nkids > 0 ? init->kids[0]->a : NULL;
        double x;
        bool is_int;
        int64_t iv;
        if (ck_get_number(std, &x, &is_int, &iv) && x > 0) m->cfg.init_std = x;
    } else if (init && init->kind == AST_IDENT) {
        m->cfg.init_std = 0;
    }
    if (tok && tok->kind == AST_IDENT) m->tokenizer = tok->name;
    if (tok && tok->kind == AST_STR) {
        const char *path;
        if (tok->str_len == 0) diag_error(c->d, tok->loc, "`tokenizer` is empty");
        else if (check_file(c, tok, "tokenizer file", false, &path) == 0) m->tokenizer = path;
    }
    const Ast *freeze = ck_setting(blk, "freeze");
    if (freeze && (freeze->kind == AST_SLICE || freeze->kind == AST_INDEX)) {
        double x;
        bool is_int;
        int64_t lo = 0, hi = -1, iv;
        if (freeze->b && ck_get_number(freeze->b, &x, &is_int, &iv) && is_int) lo = iv;
        if (freeze->kind == AST_INDEX) hi = lo + 1;
        else if (!freeze->c) hi = m->has_config ? m->cfg.layers : -1;
        else if (ck_get_number(freeze->c, &x, &is_int, &iv) && is_int) hi = iv;
        if (hi >= 0 && lo >= hi && freeze->kind == AST_SLICE) {
            diag_error(c->d, freeze->loc, "`freeze` names no layer: %lld >= %lld", (long long)lo, (long long)hi);
        } else if (m->has_config && hi > m->cfg.layers) {
            diag_error(c->d, freeze->loc, "`freeze` goes past the last layer: model `%s` has %lld layers (0 .. %lld)",
                       blk->label, (long long)m->cfg.layers, (long long)m->cfg.layers - 1);
        } else if (hi >= 0 && lo >= 0 && lo <= INT_MAX && hi <= INT_MAX) {
            m->freeze_lo = (int)lo;
            m->freeze_hi = (int)hi;
        }
    }
    if (!m->arch && !from) m->arch = NULL;
    m->arch_ast = m->arch ? find_arch(c, m->arch) : NULL;
}

static void check_quantize(Ck *c, const Ast *blk, CheckedModel *m) {
    m->quantized = true;
    m->quant_format = ck_name_or(blk, "format", "nf4");
    m->quant_block = (int)ck_int_or(blk, "block", 64);
    m->double_quant = ck_bool_or(blk, "double_quant", false);
    (void)c;
}

static void check_lora(Ck *c, const Ast *blk, CheckedModel *m) {
    m->has_lora = true;
    m->lora_rank = (int)ck_int_or(blk, "rank", 16);
    if (m->lora_rank < 1) m->lora_rank = 1;
    m->lora_alpha = ck_num_or(blk, "alpha", 2.0 * m->lora_rank);
    m->lora_dropout = ck_num_or(blk, "dropout", 0);
    m->lora_rslora = ck_bool_or(blk, "rslora", false);
    const Ast *rank = ck_setting(blk, "rank");
    if (rank && m->has_config && m->cfg.hidden > 0 && m->lora_rank > m->cfg.hidden)
        diag_warning(c->d, rank->loc, "rank %d is larger than model `%s`'s hidden size (%lld): the adapters cannot use it",
                     m->lora_rank, m->name, (long long)m->cfg.hidden);
    const char *names[CHECK_MAX_TARGETS];
    int n = linear_names(m->arch_ast, m->has_config ? &m->cfg : NULL, names, CHECK_MAX_TARGETS);
    const Ast *t = ck_setting(blk, "targets");
    if (!t || (t->kind == AST_IDENT && !strcmp(t->name, "all_linear"))) {
        m->lora_all_linear = true;
        for (int i = 0; i < n; i++)
            if (strcmp(names[i], "lm_head")) m->lora_targets[m->lora_ntargets++] = names[i];
        if (m->lora_ntargets == 0) {
            diag_error(c->d, t ? t->loc : blk->label_loc, "`all_linear` finds no linear layer in model `%s` (%s) but `lm_head`",
                       m->name, m->arch ? m->arch : "?");
            diag_hint(c->d, "name the layers to adapt: `targets = [lm_head];`");
        }
        return;
    }
    if (t->kind != AST_LIST) return;
    for (int i = 0; i < t->nkids; i++) {
        const Ast *e = t->kids[i];
        if (e->kind != AST_IDENT) continue;
        if (!strcmp(e->name, "all_linear")) {
            diag_error(c->d, e->loc, "`all_linear` stands alone: write `targets = all_linear;`");
            continue;
        }
        bool found = false;
        for (int j = 0; j < n; j++) found |= !strcmp(names[j], e->name);
        if (!found) {
            if (m->arch) diag_error(c->d, e->loc, "model `%s` (%s) has no linear layer `%s`", m->name, m->arch, e->name);
            else diag_error(c->d, e->loc, "model `%s` has no linear layer `%s`", m->name, e->name);
            const char *s = suggest_word(e->name, names, (size_t)n);
            if (!strcmp(e->name, "lm_head") && m->has_config && m->cfg.tie)
                diag_hint(c->d, "model `%s` ties its output projection to the embedding (tie_word_embeddings): it has no separate lm_head",
                          m->name);
            else if (s) diag_hint(c->d, "did you mean `%s`?", s);
            else diag_hint(c->d, "its linear layers: %s", ck_join_names(c, names, n));
            continue;
        }
        bool dup = false;
        for (int j = 0; j < m->lora_ntargets; j++) dup |= !strcmp(m->lora_targets[j], e->name);
        if (dup) diag_error(c->d, e->loc, "LoRA target `%s` is listed twice", e->name);
        else if (m->lora_ntargets < CHECK_MAX_TARGETS) m->lora_targets[m->lora_ntargets++] = e->name;
    }
}

// ---------------------------------------------------------------------------------------------
// data

typedef struct FormatInfo {
    const char *format;
    int nrequired;           // the first fields every row has; the others are optional
    const char *fields[5];   // NULL-terminated
} FormatInfo;

static const FormatInfo format_fields[] = {
    {"text", 1, {"text"}},
    {"prompt_response", 2, {"prompt", "response", "input", "system"}},
    {"messages", 1, {"messages"}},
    {"preference", 3, {"prompt", "chosen", "rejected", "system"}},
    {"prompt_answer", 2, {"prompt", "answer", "system"}},
};

static const FormatInfo *format_info(const char *format) {
    for (size_t i = 0; i < sizeof format_fields / sizeof *format_fields; i++)
        if (!strcmp(format_fields[i].format, format)) return &format_fields[i];
    return NULL;
}

// errors_before: the error count before this block's settings were checked (the data file is
// looked at only when the block itself is clean).
static void check_data(Ck *c, const Ast *blk, CheckedData *dt, int errors_before) {
    dt->name = blk->label;
    dt->loc = blk->label_loc;
    dt->format = ck_name_or(blk, "format", NULL);
    const Ast *from = ck_setting(blk, "from");
    if (from && from->kind == AST_STR && from->str_len > 0) {
        const char *path;
        if (!has_suffix(from->str, ".jsonl") && !has_suffix(from->str, ".json") && !has_suffix(from->str, ".csv")) {
            diag_error(c->d, from->loc, "unsupported data file `%s`", from->str);
            diag_hint(c->d, "trlc reads .jsonl, .json and .csv files");
        } else if (check_file(c, from, "data file", false, &path) == 0) {
            dt->from = path;
        }
    }
    const FormatInfo *fi = dt->format ? format_info(dt->format) : NULL;
    const Ast *fields = ck_sub_block(blk, "fields");
    for (int i = 0; fi && fields && i < fields->nkids; i++) {
        const Ast *it = fields->kids[i];
        if (!it || it->kind != AST_ASSIGN || !schema_key(schema_key(schema_block("data"), "fields")->subs[0], it->name)) continue;
        bool ok = false;
        for (int j = 0; fi->fields[j]; j++) ok |= !strcmp(fi->fields[j], it->name);
        if (!ok) {
            diag_error(c->d, it->name_loc, "format `%s` has no field `%s`", fi->format, it->name);
            diag_hint(c->d, "its fields: %s", ck_join_names(c, fi->fields, ck_count_names(fi->fields)));
        }
    }
    dt->f_text = ck_str_or(fields, "text", NULL);
    dt->f_prompt = ck_str_or(fields, "prompt", NULL);
    dt->f_input = ck_str_or(fields, "input", NULL);
    dt->f_response = ck_str_or(fields, "response", NULL);
    dt->f_system = ck_str_or(fields, "system", NULL);
    dt->f_messages = ck_str_or(fields, "messages", NULL);
    dt->f_chosen = ck_str_or(fields, "chosen", NULL);
    dt->f_rejected = ck_str_or(fields, "rejected", NULL);
    dt->f_answer = ck_str_or(fields, "answer", NULL);
    const Ast *tpl = ck_setting(blk, "template");
    dt->template_kind = "chat";
    if (tpl && tpl->kind == AST_IDENT) dt->template_kind = tpl->name;
    if (tpl && tpl->kind == AST_STR) {   // a format string, or a template name (validated later)
        dt->template_kind = "string";
        dt->template_str = tpl->str;
        // a name written as a string ("qwen2.5", "llama3.1": a dot makes them no bare names)
        const char *const *names = schema_key(schema_block("data"), "template")->enums;
        if (!strchr(tpl->str, '{') && ck_in_enum(names, tpl->str)) {
            dt->template_kind = tpl->str;
            dt->template_str = NULL;
        }
    }
    // what the reader would refuse when it opens the file
    const Ast *fv = ck_setting(blk, "format"), *pk = ck_setting(blk, "pack");
    if (fi && pk && pk->kind == AST_BOOL && pk->boolean && (!strcmp(fi->format, "preference") || !strcmp(fi->format, "prompt_answer"))) {
        diag_error(c->d, pk->loc, "format `%s` cannot be packed: %s", fi->format,
                   !strcmp(fi->format, "preference") ? "each chosen answer is scored against its rejected one"
                                                     : "its rows are prompts to generate from");
        diag_hint(c->d, "packing applies to text, prompt_response and messages; remove `pack = true;`");
    }
    if (fi && dt->from && has_suffix(dt->from, ".csv") && !strcmp(fi->format, "messages") && fv) {
        diag_error(c->d, fv->loc, "format `messages` needs a list of messages in each row, but every value of a .csv file is a string");
        diag_hint(c->d, "write the data as .jsonl, one `{\"messages\": [{\"role\": ..., \"content\": ...}]}` per line, "
                        "or use `format = prompt_response`");
    }
    if (fi && tpl && !strcmp(fi->format, "text")) {
        diag_warning(c->d, ck_setting_item(blk, "template")->name_loc,
                     "`template` has no effect on format `text`: raw text is tokenized as it is");
    }
    c->data_clean[dt - c->out->data] = c->d->errors == errors_before;
    if (dt->from && fi && c->d->errors == errors_before) ck_check_data_columns(c, blk, dt);
    dt->max_len = ck_int_or(blk, "max_len", 2048);
    dt->pack = ck_bool_or(blk, "pack", false);
    dt->shuffle = ck_bool_or(blk, "shuffle", true);
    dt->skip_errors = !strcmp(ck_name_or(blk, "on_error", "fail"), "skip");
    dt->truncate_left = !strcmp(ck_name_or(blk, "truncate", "right"), "left");
}

// ---------------------------------------------------------------------------------------------
// objective

static const char *const formats_sft[] = {"prompt_response", "messages", "text", NULL};
static const char *const formats_text[] = {"text", NULL};
static const char *const formats_pref[] = {"preference", NULL};
static const char *const formats_kd[] = {"text", "prompt_response", "messages", NULL};
static const char *const formats_grpo[] = {"prompt_answer", NULL};

static const char *const *objective_formats(const char *kind) {
    if (!strcmp(kind, "sft")) return formats_sft;
    if (!strcmp(kind, "pretrain")) return formats_text;
    if (!strcmp(kind, "dpo") || !strcmp(kind, "orpo")) return formats_pref;
    if (!strcmp(kind, "kd")) return formats_kd;
    if (!strcmp(kind, "grpo")) return formats_grpo;
    return NULL;
}

static void check_reward(Ck *c, const Ast *blk, CheckedReward *r) {
    r->name = blk->label;
    r->loc = blk->label_loc;
    r->fn = ck_name_or(blk, "fn", NULL);
    r->field = ck_str_or(blk, "field", "answer");
    r->pattern = ck_str_or(blk, "pattern", NULL);
    r->command = ck_str_or(blk, "command", NULL);
    r->weight = ck_num_or(blk, "weight", 1.0);
    if (!r->fn || !ck_in_enum(schema_key(schema_objective("grpo"), "reward")->subs[0]->keys[0].enums, r->fn)) return;
    // settings that belong to another fn
    static const struct { const char *key, *fn; } owner[] = {
        {"field", "exact_number"}, {"pattern", "regex"}, {"command", "exec"}};
    for (size_t i = 0; i < sizeof owner / sizeof *owner; i++) {
        const Ast *it = ck_setting_item(blk, owner[i].key);
        if (it && strcmp(r->fn, owner[i].fn)) {
            diag_error(c->d, it->name_loc, "`%s` is a setting of `fn = %s`, but reward `%s` uses `fn = %s`", owner[i].key,
                       owner[i].fn, blk->label, r->fn);
        }
    }
    if (!strcmp(r->fn, "regex")) {
        const Ast *p = ck_setting(blk, "pattern");
        if (!p) {
            diag_error(c->d, ck_head_loc(blk), "reward `%s` uses `fn = regex` but has no `pattern`", blk->label);
            diag_hint(c->d, "write `pattern = \"<think>.*</think>\";`");
        } else if (p->kind == AST_STR) {
            int err;
            PCRE2_SIZE off;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)p->str, p->str_len, PCRE2_UTF, &err, &off, NULL);
            if (!re) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(err, msg, sizeof msg);
                diag_error(c->d, p->loc, "invalid regular expression: %s (at offset %zu)", (const char *)msg, (size_t)off);
            }
            pcre2_code_free(re);
        }
    }
    if (!strcmp(r->fn, "exec") && !ck_setting(blk, "command")) {
        diag_error(c->d, ck_head_loc(blk), "reward `%s` uses `fn = exec` but has no `command`", blk->label);
        diag_hint(c->d, "write `command = \"python3 reward.py\";` (JSON lines over stdin/stdout)");
    }
}

static void check_objective(Ck *c, const Ast *blk, CheckedObjective *o) {
    o->kind = blk->label;
    o->loc = blk->label_loc;
    o->ref = o->teacher = -1;
    o->mask_prompt = ck_bool_or(blk, "mask_prompt", true);
    o->label_smoothing = ck_num_or(blk, "label_smoothing", 0);
    o->beta = ck_num_or(blk, "beta", !strcmp(o->kind, "grpo") ? 0.04 : 0.1);
    o->loss = ck_name_or(blk, "loss", !strcmp(o->kind, "grpo") ? "grpo" : !strcmp(o->kind, "dpo") ? "sigmoid" : NULL);
    const Ast *ref = ck_setting(blk, "ref"), *teacher = ck_setting(blk, "teacher");
    if (ref && ref->kind == AST_IDENT) o->ref = ck_model_index(c, ref->name);
    if (teacher && teacher->kind == AST_IDENT) o->teacher = ck_model_index(c, teacher->name);
    o->temperature = ck_num_or(blk, "temperature", 1.0);
    o->alpha = ck_num_or(blk, "alpha", 0.5);
    o->group = (int)ck_int_or(blk, "group", 8);
    o->max_new = ck_int_or(blk, "max_new", 512);
    o->top_p = ck_num_or(blk, "top_p", 1.0);
    o->clip = ck_num_or(blk, "clip", 0.2);
    o->scale_rewards = ck_name_or(blk, "scale_rewards", "group");
    for (int i = 0; i < blk->nkids; i++) {
        const Ast *it = blk->kids[i];
        if (!it || it->kind != AST_BLOCK || strcmp(it->name, "reward") || !it->label) continue;
        if (o->nrewards == CHECK_MAX_REWARDS) {
            diag_error(c->d, ck_head_loc(it), "too many rewards (at most %d)", CHECK_MAX_REWARDS);
            break;
        }
        bool dup = false;
        for (int j = 0; j < o->nrewards; j++) dup |= !strcmp(o->rewards[j].name, it->label);
        if (!dup) check_reward(c, it, &o->rewards[o->nrewards++]);
    }
}

// ---------------------------------------------------------------------------------------------
// train

static CheckedEvery every_of(const Ast *blk, const char *key, int64_t def_steps) {
    CheckedEvery e = {def_steps, false};
    const Ast *v = ck_setting(blk, key);
    if (v && v->kind == AST_QUANTITY && v->is_int && v->inum > 0 && (ck_is_unit(v, "steps") || ck_is_unit(v, "epochs"))) {
        e.count = v->inum;
        e.epochs = ck_is_unit(v, "epochs");
    }
    return e;
}

static void check_train(Ck *c, const Ast *blk, CheckedTrain *t, const char *spec_name) {
    const Ast *opt = ck_setting(blk, "optimizer");
    t->optimizer = opt && (opt->kind == AST_CONSTRUCT || opt->kind == AST_IDENT) ? opt->name : "adamw";
    const Ast *ob = opt && opt->kind == AST_CONSTRUCT ? opt : NULL;
    t->lr = ck_num_or(ob, "lr", 0);
    const Ast *betas = ck_setting(ob, "betas");
    t->beta1 = 0.9;
    t->beta2 = 0.999;
    if (betas && betas->kind == AST_LIST && betas->nkids == 2) {
        double x;
        bool is_int;
        int64_t iv;
        if (ck_get_number(betas->kids[0], &x, &is_int, &iv)) t->beta1 = x;
        if (ck_get_number(betas->kids[1], &x, &is_int, &iv)) t->beta2 = x;
    }
    t->eps = ck_num_or(ob, "eps", 1e-8);
    t->weight_decay = ck_num_or(ob, "weight_decay", 0);
    t->momentum = ck_num_or(ob, "momentum", 0);

    const Ast *sch = ck_setting(blk, "schedule");
    t->schedule = sch && (sch->kind == AST_CONSTRUCT || sch->kind == AST_IDENT) ? sch->name : "constant";
    const Ast *sb = sch && sch->kind == AST_CONSTRUCT ? sch : NULL;
    const Ast *warm = ck_setting(sb, "warmup");
    if (warm && ck_is_unit(warm, "%")) t->warmup_ratio = warm->num / 100;
    else if (warm && ck_is_unit(warm, "steps") && warm->is_int) t->warmup_steps = warm->inum;
    else t->warmup_ratio = ck_num_or(sb, "warmup", 0);
    t->min_lr = ck_num_or(sb, "min_lr", 0);
    const Ast *min_lr = ck_setting(sb, "min_lr");
    if (min_lr && t->lr > 0 && t->min_lr > t->lr) {
        diag_error(c->d, min_lr->loc, "`min_lr` (%g) is larger than the optimizer's `lr` (%g)", t->min_lr, t->lr);
        diag_hint(c->d, "the schedule decays from `lr` down to `min_lr`");
    }

    t->batch = ck_int_or(blk, "batch", 1);
    t->grad_accum = ck_int_or(blk, "grad_accum", 1);
    t->epochs = ck_int_or(blk, "epochs", 1);
    t->steps = ck_int_or(blk, "steps", 0);
    const Ast *ep = ck_setting_item(blk, "epochs"), *st = ck_setting_item(blk, "steps");
    if (ep && st) {
        const Ast *second = ep->loc.off > st->loc.off ? ep : st, *first = second == ep ? st : ep;
        diag_error(c->d, second->name_loc, "set either `steps` or `epochs`, not both");
        diag_note(c->d, first->name_loc, "`%s` is set here", first->name);
    }
    t->clip_norm = ck_num_or(blk, "clip_norm", 0);
    t->precision = ck_name_or(blk, "precision", "bf16");
    t->recompute = ck_bool_or(blk, "recompute", false);
    t->eval_every = every_of(blk, "eval_every", 0);
    t->save_every = every_of(blk, "save_every", 0);
    t->log_every = every_of(blk, "log_every", 10);
    t->keep = ck_int_or(blk, "keep", 0);
    const Ast *es = ck_sub_block(blk, "early_stop");
    t->early_stop = es != NULL;
    t->es_metric = ck_name_or(es, "metric", "eval_loss");
    t->es_patience = ck_int_or(es, "patience", 1);
    t->es_min_delta = ck_num_or(es, "min_delta", 0);
    t->seed = ck_int_or(blk, "seed", 0);
    const char *out = ck_str_or(blk, "out", NULL);
    t->out = out ? ck_join_path(c, out) : ck_join_path(c, arena_printf(c->a, "runs/%s", spec_name));
    if (out && !*out) diag_error(c->d, ck_setting(blk, "out")->loc, "`out` is empty");
}

// ---------------------------------------------------------------------------------------------
// The whole spec

static const char *const block_kinds[] = {"model", "quantize", "lora", "data", "objective", "train", NULL};
static const char *const data_roles[] = {"train", "eval", NULL};

// Top-level items: kinds, labels, duplicates. Keeps the valid blocks in c->blocks.
static void check_top(Ck *c, const Ast *spec) {
    const Ast *objective = NULL;
    for (int i = 0; i < spec->nkids; i++) {
        const Ast *it = spec->kids[i];
        if (!it) continue;
        switch (it->kind) {
        case AST_VERSION: {
            const Ast *v = it->a;
            if (!v || v->kind != AST_NUM || !v->is_int || v->inum != 1) {
                diag_error(c->d, v ? v->loc : it->loc, "unsupported language version `%s`", v ? ck_src_text(c, v) : "?");
                diag_hint(c->d, "this trlc reads version 1: write `trl 1;`");
            }
            continue;
        }
        case AST_IMPORT: case AST_DEF: case AST_ARCH:
            continue;
        case AST_ASSIGN: {
            diag_error(c->d, it->name_loc, "setting `%s` is outside any block", it->name);
            bool hinted = false;
            for (int j = 0; schema_blocks[j] && !hinted; j++)
                if (schema_key(schema_blocks[j], it->name)) {
                    diag_hint(c->d, "`%s` is a setting of `%s` blocks: move it inside `%s%s { ... }`", it->name,
                              schema_blocks[j]->name, schema_blocks[j]->name, schema_blocks[j]->label ? " NAME" : "");
                    hinted = true;
                }
            if (!hinted) diag_hint(c->d, "settings go inside a block such as `train { ... }`");
            continue;
        }
        case AST_BLOCK:
            break;
        default:
            diag_error(c->d, it->loc, "expected a block (model, data, objective, train, ...) here");
            continue;
        }
        const SchemaBlock *sb = schema_block(it->name);
        if (!sb) {
            diag_error(c->d, it->name_loc, "unknown block `%s`", it->name);
            const char *s = suggest_word(it->name, block_kinds, 6);
            if (s) ck_add_ghost(c, s, it->label);
            if (s) diag_hint(c->d, "did you mean `%s`?", s);
            else diag_hint(c->d, "the blocks are: %s", ck_join_names(c, block_kinds, 6));
            continue;
        }
        if (sb->label && !it->label) {
            diag_error(c->d, it->name_loc, "`%s` needs a name: `%s %s { ... }`", it->name, it->name, sb->label);
            if (!strcmp(it->name, "objective"))
                diag_hint(c->d, "the name is the kind: %s",
                          ck_join_names(c, (const char *const[]){"sft", "pretrain", "dpo", "orpo", "kd", "grpo"}, 6));
            continue;
        }
        if (!sb->label && it->label) {
            diag_error(c->d, it->label_loc, "`%s` takes no name", it->name);
            diag_hint(c->d, "write `%s { ... }`", it->name);
            continue;
        }
        if (!strcmp(it->name, "objective")) {
            if (!schema_objective(it->label)) {
                ck_add_ghost(c, "objective", NULL);
                const char *kinds[8];
                int n = 0;
                for (int j = 0; schema_objectives[j] && n < 8; j++) kinds[n++] = schema_objectives[j]->name;
                if (ck_in_enum(planned_objectives, it->label)) {
                    diag_error(c->d, it->label_loc, "objective `%s` is not available in this version of trlc", it->label);
                    diag_hint(c->d, "available objectives: %s", ck_join_names(c, kinds, n));
                } else {
                    diag_error(c->d, it->label_loc, "unknown objective `%s`", it->label);
                    const char *s = suggest_word(it->label, kinds, (size_t)n);
                    if (s) diag_hint(c->d, "did you mean `%s`?", s);
                    else diag_hint(c->d, "objectives: %s", ck_join_names(c, kinds, n));
                }
                continue;
            }
            if (objective) {
                diag_error(c->d, ck_head_loc(it), "a spec has one objective; this is a second one");
                diag_note(c->d, ck_head_loc(objective), "the first objective is here");
                continue;
            }
            objective = it;
        }
        if (!strcmp(it->name, "data") && !ck_in_enum(data_roles, it->label)) {
            diag_error(c->d, it->label_loc, "unknown dataset role `%s`", it->label);
            const char *s = suggest_word(it->label, data_roles, 2);
            if (s) ck_add_ghost(c, "data", s);
            if (s) diag_hint(c->d, "did you mean `%s`?", s);
            else diag_hint(c->d, "datasets are `data train { ... }` and `data eval { ... }`");
            continue;
        }
        bool dup = false;
        for (int j = 0; j < c->nblocks && !dup; j++) {
            const Ast *o = c->blocks[j];
            if (strcmp(o->name, it->name) || (o->label == NULL) != (it->label == NULL)) continue;
            if (o->label && strcmp(o->label, it->label)) continue;
            diag_error(c->d, ck_head_loc(it), "`%s%s%s` is defined twice", it->name, it->label ? " " : "",
                       it->label ? it->label : "");
            diag_note(c->d, ck_head_loc(o), "first defined here");
            dup = true;
        }
        if (dup) continue;
        if (c->nblocks == (int)(sizeof c->blocks / sizeof *c->blocks)) {
            diag_error(c->d, ck_head_loc(it), "too many blocks");
            continue;
        }
        c->blocks[c->nblocks++] = it;
    }
}

// The model whose weights or adapters train: the one not used as teacher or reference, else
// the one named `policy`, else the only one.
static int pick_policy(Ck *c, const CheckedObjective *o) {
    int cand = -1, ncand = 0;
    for (int i = 0; i < c->nmodels; i++)
        if (i != o->teacher && i != o->ref) {
            cand = i;
            ncand++;
        }
    if (ncand == 1) return cand;
    int named = ck_model_index(c, "policy");
    if (named >= 0) return named;
    if (ncand > 1) {
        const Ast *m = c->models[cand];
        diag_error(c->d, ck_head_loc(m), "several models could be the one to train");
        diag_hint(c->d, "name the trained model `policy`, and the others `teacher = ...` (kd) or `ref = ...` (dpo)");
        return -1;
    }
    return c->nmodels > 0 ? 0 : -1;
}

static const char *base_name(Ck *c, const char *path) {
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    size_t n = strlen(s);
    if (n > 4 && !strcmp(s + n - 4, ".trl")) n -= 4;
    return arena_strndup(c->a, s, n);
}

static const char *dir_name(Ck *c, const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return ".";
    if (s == path) return "/";
    return arena_strndup(c->a, path, (size_t)(s - path));
}

int check_spec(Diag *d, Arena *a, const LoadedSpec *spec, CheckedSpec *out) {
    memset(out, 0, sizeof *out);
    out->policy = out->train_data = out->eval_data = -1;
    if (!spec || spec->nmods < 1 || !spec->mods[spec->nmods - 1].root) {
        diag_plain_error(d, "no spec to check");
        return -1;
    }
    const LoadedModule *mainmod = &spec->mods[spec->nmods - 1];
    const Ast *root = mainmod->root;
    int errors0 = d->errors;
    Ck ck = {.d = d, .a = a, .out = out};
    Ck *c = &ck;
    out->path = mainmod->path;
    out->dir = c->dir = dir_name(c, mainmod->path);
    out->spec = root;

    if (root->nkids == 0) {
        diag_file_error(d, mainmod->path, 0, 0, "the spec is empty");
        diag_hint(d, "a spec starts with `trl 1;`, then blocks: model, data, objective, train");
        return -1;
    }
    if (root->kids[0]->kind != AST_VERSION) {
        Loc at = root->kids[0]->loc;
        at.len = 0;
        diag_error(d, at, "a spec starts with the language version `trl 1;`");
        diag_hint(d, "add `trl 1;` as the first line");
    }
    for (int i = 0; i < spec->nmods; i++) add_archs(c, spec->mods[i].root);
    // imported modules hold graph code (def, arch); settings and blocks belong to the main spec
    for (int i = 0; i < spec->nmods - 1; i++) {
        const Ast *mr = spec->mods[i].root;
        for (int j = 0; mr && j < mr->nkids; j++) {
            const Ast *it = mr->kids[j];
            if (!it || (it->kind != AST_BLOCK && it->kind != AST_ASSIGN)) continue;
            diag_error(d, it->name_loc, "`%s` in an imported module: modules hold `def` and `arch` only", it->name);
            diag_hint(d, "move it into the spec that imports `%s`", spec->mods[i].name);
        }
    }

    check_top(c, root);

    // models first: the other blocks refer to them
    for (int i = 0; i < c->nblocks; i++) {
        const Ast *b = c->blocks[i];
        if (strcmp(b->name, "model")) continue;
        if (c->nmodels == CHECK_MAX_MODELS) {
            diag_error(d, ck_head_loc(b), "too many models (at most %d)", CHECK_MAX_MODELS);
            continue;
        }
        c->model_names[c->nmodels] = b->label;
        c->models[c->nmodels++] = b;
    }
    out->nmodels = c->nmodels;
    for (int i = 0; i < c->nmodels; i++) {
        const Ast *arch = ck_setting(c->models[i], "arch");
        c->config_open = arch && arch->kind == AST_IDENT && find_arch(c, arch->name) && !builtin_arch(arch->name);
        ck_check_items(c, c->models[i], schema_block("model"), 0);
        c->config_open = false;
        check_model(c, c->models[i], &out->models[i]);
    }

    const Ast *objective = NULL, *train = NULL;
    for (int i = 0; i < c->nblocks; i++) {
        const Ast *b = c->blocks[i];
        if (!strcmp(b->name, "quantize") || !strcmp(b->name, "lora")) {
            int m = ck_model_index(c, b->label);
            ck_check_items(c, b, schema_block(b->name), 0);
            if (m < 0 && ck_ghost(c, "model", b->label)) continue;
            if (m < 0) {
                diag_error(d, b->label_loc, "`%s %s` refers to model `%s`, which does not exist", b->name, b->label, b->label);
                const char *s = suggest_word(b->label, c->model_names, (size_t)c->nmodels);
                if (s) diag_hint(d, "did you mean `%s`?", s);
                else diag_hint(d, "the label of a `%s` block names the model it applies to: add `model %s { ... }`", b->name,
                               b->label);
                continue;
            }
            if (!strcmp(b->name, "quantize")) check_quantize(c, b, &out->models[m]);
            else check_lora(c, b, &out->models[m]);
        } else if (!strcmp(b->name, "data")) {
            int e0 = d->errors;
            ck_check_items(c, b, schema_block("data"), 0);
            if (out->ndata < CHECK_MAX_DATA) {
                if (!strcmp(b->label, "train")) out->train_data = out->ndata;
                if (!strcmp(b->label, "eval")) out->eval_data = out->ndata;
                check_data(c, b, &out->data[out->ndata++], e0);
            }
        } else if (!strcmp(b->name, "objective")) {
            objective = b;
            ck_check_items(c, b, schema_objective(b->label), 0);
            check_objective(c, b, &out->objective);
        } else if (!strcmp(b->name, "train")) {
            train = b;
            ck_check_items(c, b, schema_block("train"), 0);
            check_train(c, b, &out->train, base_name(c, mainmod->path));
        }
    }

    // what every spec needs
    if (c->nmodels == 0 && !ck_ghost(c, "model", NULL)) {
        diag_file_error(d, mainmod->path, 0, 0, "the spec has no model");
        diag_hint(d, "add `model policy { from = \"path/to/hf-model\"; }`");
    }
    if (out->train_data < 0 && !ck_ghost(c, "data", "train")) {
        diag_file_error(d, mainmod->path, 0, 0, "the spec has no training data");
        diag_hint(d, "add `data train { from = \"train.jsonl\"; format = prompt_response; }`");
    }
    if (!objective && !ck_ghost(c, "objective", NULL)) {
        diag_file_error(d, mainmod->path, 0, 0, "the spec has no objective");
        diag_hint(d, "add an objective such as `objective sft { }`");
    }
    if (!train && !ck_ghost(c, "train", NULL)) {
        diag_file_error(d, mainmod->path, 0, 0, "the spec has no `train` block");
        diag_hint(d, "add `train { optimizer = adamw { lr = 2e-4; }; }`");
    }

    // roles: which model trains, and what the others may carry
    CheckedObjective *o = &out->objective;
    if (objective) {
        const Ast *teacher = ck_setting(objective, "teacher"), *ref = ck_setting(objective, "ref");
        out->policy = pick_policy(c, o);
        if (out->policy >= 0 && o->teacher == out->policy && teacher) {
            diag_error(d, teacher->loc, "the teacher `%s` is the model being trained", teacher->name);
            diag_hint(d, "distillation needs a second model: `model big { from = \"...\"; }` and `teacher = big;`");
        }
        if (out->policy >= 0 && o->ref == out->policy && ref) {
            diag_error(d, ref->loc, "the reference `%s` is the model being trained", ref->name);
            diag_hint(d, "leave `ref` out to use the policy with its adapters switched off");
        }
        // a teacher or reference scores the same tokens as the policy: same vocabulary
        const Ast *other_ast[2] = {teacher, ref};
        int other[2] = {o->teacher, o->ref};
        for (int r = 0; r < 2 && out->policy >= 0; r++) {
            if (other[r] < 0 || other[r] == out->policy || !other_ast[r]) continue;
            const CheckedModel *p = &out->models[out->policy], *q = &out->models[other[r]];
            if (p->has_config && q->has_config && p->cfg.vocab != q->cfg.vocab) {
                diag_error(d, other_ast[r]->loc, "the %s `%s` has a vocabulary of %lld tokens, but the policy `%s` has %lld",
                           r == 0 ? "teacher" : "reference", q->name, (long long)q->cfg.vocab, p->name,
                           (long long)p->cfg.vocab);
                diag_hint(d, "both models must use the same tokenizer: %s compares their distributions token by token",
                          o->kind);
            }
        }
        const char *const *formats = objective_formats(o->kind);
        for (int i = 0; formats && i < out->ndata; i++) {
            const CheckedData *dt = &out->data[i];
            if (!dt->format || ck_in_enum(formats, dt->format)) continue;
            // sft evaluates prompt_answer data (GSM8K) by generation: the final number is compared
            bool sft_answers = !strcmp(o->kind, "sft") && !strcmp(dt->format, "prompt_answer");
            if (sft_answers && i == out->eval_data) continue;
            const Ast *blk = NULL;
            for (int j = 0; j < c->nblocks; j++)
                if (!strcmp(c->blocks[j]->name, "data") && !strcmp(c->blocks[j]->label, dt->name)) blk = c->blocks[j];
            const Ast *fv = ck_setting(blk, "format");
            diag_error(d, fv ? fv->loc : dt->loc, "objective `%s` needs data in format %s; `data %s` is `%s`", o->kind,
                       ck_join_names(c, formats, ck_count_names(formats)), dt->name, dt->format);
            const FormatInfo *fi = format_info(formats[0]);
            diag_hint(d, "`%s` rows hold %s", formats[0], ck_join_names(c, fi->fields, fi->nrequired));
            if (sft_answers)
                diag_hint(d, "`prompt_answer` data can be the `data eval` of sft (scored by the generated final "
                             "number); train on `prompt_response` rows with the full solution as the response");
        }
    } else if (c->nmodels > 0) {
        out->policy = ck_model_index(c, "policy") >= 0 ? ck_model_index(c, "policy") : 0;
    }
    // the chat template each dataset is rendered with (needs the policy: `chat` is its own)
    for (int i = 0; out->policy >= 0 && i < out->ndata; i++) {
        const Ast *blk = NULL;
        for (int j = 0; j < c->nblocks; j++)
            if (!strcmp(c->blocks[j]->name, "data") && !strcmp(c->blocks[j]->label, out->data[i].name)) blk = c->blocks[j];
        const CheckedModel *pm = &out->models[out->policy];
        bool model_ok = pm->from ? c->dir_ok[out->policy] : !ck_setting(c->models[out->policy], "from") && pm->arch;
        if (blk && c->data_clean[i] && model_ok) ck_check_template(c, blk, &out->data[i], pm);
    }
    // GRPO rewards that read a column of the training data: it is in the first row
    if (objective && !strcmp(o->kind, "grpo") && out->train_data >= 0 && c->data_clean[out->train_data]) {
        const Ast *blk = NULL;
        for (int j = 0; j < c->nblocks; j++)
            if (!strcmp(c->blocks[j]->name, "data") && !strcmp(c->blocks[j]->label, "train")) blk = c->blocks[j];
        for (int i = 0; blk && i < objective->nkids; i++) {
            const Ast *it = objective->kids[i];
            if (!it || it->kind != AST_BLOCK || strcmp(it->name, "reward") || !it->label) continue;
            const char *fn = ck_name_or(it, "fn", NULL);
            if (fn && !strcmp(fn, "exact_number")) ck_check_reward_field(c, it, blk, &out->data[out->train_data]);
        }
    }
    for (int i = 0; i < c->nmodels; i++) {
        CheckedModel *m = &out->models[i];
        m->trainable = i == out->policy;
        if (!m->trainable && m->has_lora && out->policy >= 0) {
            const Ast *lb = NULL;
            for (int j = 0; j < c->nblocks; j++)
                if (!strcmp(c->blocks[j]->name, "lora") && !strcmp(c->blocks[j]->label, m->name)) lb = c->blocks[j];
            diag_error(d, lb ? lb->label_loc : m->loc, "model `%s` does not train (it is the %s), so it takes no LoRA adapters",
                       m->name, i == o->teacher ? "teacher" : i == o->ref ? "reference" : "second model");
        }
        if (m->trainable && m->from && c->dir_ok[i] && !ck_setting(c->models[i], "tokenizer")) {
            struct stat st;
            const char *tj = arena_printf(a, "%s/tokenizer.json", m->from);
            if (stat(tj, &st) != 0 || !S_ISREG(st.st_mode)) {
                const Ast *from = ck_setting(c->models[i], "from");
                diag_error(d, from->loc, "model directory `%s` has no tokenizer.json", from->str);
                diag_hint(d, "the trained model needs its tokenizer: add tokenizer.json there, or set `tokenizer = \"path/to/tokenizer.json\";`");
            } else {
                m->tokenizer = tj;
            }
        }
        // the trained model's tokenizer must fit its embedding (the trainer would stop at start)
        if (m->trainable && m->tokenizer && m->has_config && (!m->from || c->dir_ok[i])) {
            const Ast *tv = ck_setting(c->models[i], "tokenizer");
            int errs = d->errors;
            Tokenizer *tk = !strcmp(m->tokenizer, "bytes") ? tok_new_bytes() : tok_load(d, m->tokenizer);
            if (tk && tok_vocab_size(tk) > m->cfg.vocab) {
                diag_error(d, tv ? tv->loc : m->loc, "the tokenizer has %d ids, but model `%s` has a vocabulary of %lld",
                           (int)tok_vocab_size(tk), m->name, (long long)m->cfg.vocab);
                if (m->from) diag_hint(d, "use the tokenizer that comes with the checkpoint");
                else diag_hint(d, "make `config { vocab = ...; }` at least %d", (int)tok_vocab_size(tk));
            } else if (!tk && d->errors > errs && tv) {
                diag_note(d, tv->loc, "the tokenizer of model `%s`", m->name);
            }
            tok_free(tk);
        }
        if (m->trainable && m->quantized && !m->has_lora) {
            diag_error(d, m->loc, "model `%s` is quantized but has no `lora %s` block", m->name, m->name);
            diag_hint(d, "quantized weights stay frozen: train adapters with `lora %s { rank = 16; }` (QLoRA)", m->name);
        }
    }
    // settings that do nothing, or more than the model can take: warnings
    if (out->policy >= 0) {
        const CheckedModel *m = &out->models[out->policy];
        const Ast *fz = ck_setting_item(c->models[out->policy], "freeze");
        if (fz && m->has_lora) {
            diag_warning(d, fz->name_loc, "`freeze` has no effect on model `%s`: with LoRA every base weight is frozen",
                         m->name);
        }
        for (int i = 0; i < out->ndata && m->has_config && m->cfg.max_pos > 0; i++) {
            const Ast *blk = NULL;
            for (int j = 0; j < c->nblocks; j++)
                if (!strcmp(c->blocks[j]->name, "data") && !strcmp(c->blocks[j]->label, out->data[i].name)) blk = c->blocks[j];
            const Ast *ml = ck_setting(blk, "max_len");
            if (ml && out->data[i].max_len > m->cfg.max_pos) {
                diag_warning(d, ml->loc, "`max_len` (%lld) is longer than model `%s` was made for (%lld positions)",
                             (long long)out->data[i].max_len, m->name, (long long)m->cfg.max_pos);
            }
        }
    }
    if (train && ck_setting(train, "keep") && !ck_setting(train, "save_every")) {
        diag_warning(d, ck_setting_item(train, "keep")->name_loc, "`keep` has no effect without `save_every`");
    }
    if (train && out->eval_data < 0) {
        const Ast *ev = ck_setting_item(train, "eval_every");
        const Ast *es = ck_sub_block(train, "early_stop");
        if (ev) {
            diag_error(d, ev->name_loc, "`eval_every` is set but there is no `data eval` block");
            diag_hint(d, "add `data eval { from = \"eval.jsonl\"; format = ...; }`");
        } else if (es && !strcmp(out->train.es_metric, "eval_loss")) {
            diag_error(d, es->name_loc, "`early_stop` watches `eval_loss`, but there is no `data eval` block");
            diag_hint(d, "add `data eval { ... }` and `eval_every = N steps;`");
        }
    }
    return d->errors > errors0 ? -1 : 0;
}
