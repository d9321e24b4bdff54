// check_items.c — one block's settings against the schema (compiler/schema.c): unknown keys with
// did-you-mean and "belongs elsewhere" hints, blocks vs settings, duplicates, missing required
// keys, and each value's type, unit, range, enum, list shape or construct; plus the small helpers
// over values and settings the checker shares (check_int.h).
// Not here: rules that tie blocks together, files, architectures (check.c).
#include "check_int.h"
#include <math.h>
#include <string.h>

bool ck_get_number(const Ast *v, double *x, bool *is_int, int64_t *i) {
    if (!v) return false;
    if (v->kind == AST_NUM) {
        *x = v->num;
        *is_int = v->is_int;
        *i = v->inum;
        return true;
    }
    if (v->kind == AST_UNARY && v->op == '-' && v->a && v->a->kind == AST_NUM) {
        *x = -v->a->num;
        *is_int = v->a->is_int && v->a->inum != INT64_MIN;
        *i = *is_int ? -v->a->inum : 0;
        return true;
    }
    return false;
}

bool ck_is_unit(const Ast *v, const char *unit) {
    if (!v || v->kind != AST_QUANTITY || !v->unit) return false;
    size_t n = strlen(unit);
    // `1 step` and `1 epoch` read as well as the plural
    return !strcmp(v->unit, unit) || (unit[n - 1] == 's' && !strncmp(v->unit, unit, n - 1) && !v->unit[n - 1]);
}

// The source text of v, bounded, for messages: `2.5`, `bf61`.
const char *ck_src_text(Ck *c, const Ast *v) {
    const Source *s = diag_source(c->d, v->loc.file);
    if (!s || v->loc.off >= s->len) return "?";
    size_t n = v->loc.len;
    if (n > s->len - v->loc.off) n = s->len - v->loc.off;
    if (n > 40) return arena_printf(c->a, "%.37s...", s->text + v->loc.off);
    if (n == 0) n = 1;
    return arena_strndup(c->a, s->text + v->loc.off, n);
}

// "a string", "a list", "`2.5`" — what the user wrote, for "expects X, got Y".
const char *ck_describe(Ck *c, const Ast *v) {
    if (!v) return "nothing";
    switch (v->kind) {
    case AST_STR: return "a string";
    case AST_LIST: return "a list";
    case AST_CONSTRUCT: case AST_BLOCK: return arena_printf(c->a, "`%s { ... }`", v->name ? v->name : "");
    case AST_CALL: return arena_printf(c->a, "a call of `%s`", v->name ? v->name : "");
    default: return arena_printf(c->a, "`%s`", ck_src_text(c, v));
    }
}

const char *ck_join_names(Ck *c, const char *const *names, int n) {
    const char *s = "";
    for (int i = 0; i < n && names[i]; i++) s = arena_printf(c->a, "%s%s%s", s, i ? ", " : "", names[i]);
    return s;
}

int ck_count_names(const char *const *names) {
    int n = 0;
    while (names && names[n]) n++;
    return n;
}

static const char *key_names(Ck *c, const SchemaBlock *b) {
    const char *names[64];
    int n = 0;
    for (const SchemaKey *k = b->keys; k && k->name && n < 63; k++) names[n++] = k->name;
    names[n] = NULL;
    return ck_join_names(c, names, n);
}

static const char *suggest_key(const SchemaBlock *b, const char *word) {
    const char *names[64];
    int n = 0;
    for (const SchemaKey *k = b->keys; k && k->name && n < 64; k++) names[n++] = k->name;
    return suggest_word(word, names, (size_t)n);
}

Loc ck_head_loc(const Ast *blk) {
    return blk->label ? loc_span(blk->name_loc, blk->label_loc) : blk->name_loc;
}

// "`lora policy`", "`train`", "`optimizer = adamw { }`"
const char *ck_block_title(Ck *c, const Ast *blk) {
    if (blk->kind == AST_CONSTRUCT) return arena_printf(c->a, "`%s { }`", blk->name);
    if (blk->label) return arena_printf(c->a, "`%s %s`", blk->name, blk->label);
    return arena_printf(c->a, "`%s`", blk->name);
}

// The value of setting `key` in a block or construct (the first one), or NULL.
const Ast *ck_setting(const Ast *blk, const char *key) {
    if (!blk || blk->kind == AST_IDENT) return NULL;
    for (int i = 0; i < blk->nkids; i++) {
        const Ast *k = blk->kids[i];
        if (k && k->kind == AST_ASSIGN && k->name && !strcmp(k->name, key)) return k->a;
    }
    return NULL;
}

const Ast *ck_setting_item(const Ast *blk, const char *key) {
    for (int i = 0; blk && i < blk->nkids; i++) {
        const Ast *k = blk->kids[i];
        if (k && k->kind == AST_ASSIGN && k->name && !strcmp(k->name, key)) return k;
    }
    return NULL;
}

const Ast *ck_sub_block(const Ast *blk, const char *name) {
    for (int i = 0; blk && i < blk->nkids; i++) {
        const Ast *k = blk->kids[i];
        if (k && k->kind == AST_BLOCK && k->name && !strcmp(k->name, name)) return k;
    }
    return NULL;
}

double ck_num_or(const Ast *blk, const char *key, double def) {
    double x;
    bool is_int;
    int64_t i;
    return ck_get_number(ck_setting(blk, key), &x, &is_int, &i) ? x : def;
}

int64_t ck_int_or(const Ast *blk, const char *key, int64_t def) {
    const Ast *v = ck_setting(blk, key);
    if (v && v->kind == AST_QUANTITY && v->is_int) return v->inum;
    double x;
    bool is_int;
    int64_t i;
    return ck_get_number(v, &x, &is_int, &i) && is_int ? i : def;
}

bool ck_bool_or(const Ast *blk, const char *key, bool def) {
    const Ast *v = ck_setting(blk, key);
    return v && v->kind == AST_BOOL ? v->boolean : def;
}

const char *ck_name_or(const Ast *blk, const char *key, const char *def) {
    const Ast *v = ck_setting(blk, key);
    return v && v->kind == AST_IDENT ? v->name : def;
}

const char *ck_str_or(const Ast *blk, const char *key, const char *def) {
    const Ast *v = ck_setting(blk, key);
    return v && v->kind == AST_STR ? v->str : def;
}

const char *ck_join_path(Ck *c, const char *rel) {
    if (rel[0] == '/' || !strcmp(c->dir, ".")) return rel;
    return arena_printf(c->a, "%s/%s", c->dir, rel);
}

int ck_model_index(Ck *c, const char *name) {
    for (int i = 0; i < c->nmodels; i++)
        if (!strcmp(c->models[i]->label, name)) return i;
    return -1;
}

void ck_add_ghost(Ck *c, const char *kind, const char *label) {
    if (c->nghosts < 16) {
        c->ghost_kind[c->nghosts] = kind;
        c->ghost_label[c->nghosts++] = label;
    }
}

// A misspelt block of this kind (and label, unless NULL) was reported already.
bool ck_ghost(Ck *c, const char *kind, const char *label) {
    for (int i = 0; i < c->nghosts; i++)
        if (!strcmp(c->ghost_kind[i], kind) && (!label || (c->ghost_label[i] && !strcmp(c->ghost_label[i], label))))
            return true;
    return false;
}

// ---------------------------------------------------------------------------------------------
// One value against its schema key

bool ck_in_enum(const char *const *enums, const char *s) {
    for (int i = 0; enums && enums[i]; i++)
        if (!strcmp(enums[i], s)) return true;
    return false;
}

static void range_error(Ck *c, const SchemaKey *k, const char *what, const Ast *v) {
    unsigned f = k->flags;
    const char *r;
    if ((f & SF_LO) && (f & SF_HI))
        r = arena_printf(c->a, "in %s%.15g, %.15g%s", f & SF_LO_OPEN ? "(" : "[", k->lo, k->hi, f & SF_HI_OPEN ? ")" : "]");
    else if (f & SF_LO) r = arena_printf(c->a, f & SF_LO_OPEN ? "greater than %.15g" : "at least %.15g", k->lo);
    else r = arena_printf(c->a, f & SF_HI_OPEN ? "less than %.15g" : "at most %.15g", k->hi);
    if (f & SF_POW2) r = arena_printf(c->a, "a power of two %s", r);
    diag_error(c->d, v->loc, "%s must be %s, got %s", what, r, ck_src_text(c, v));
}

// Is x within k's bounds (and a power of two when asked)?
static bool in_range(const SchemaKey *k, double x) {
    unsigned f = k->flags;
    if (isnan(x)) return false;
    if (f & SF_LO) {
        if (x < k->lo || ((f & SF_LO_OPEN) && x == k->lo)) return false;
    }
    if (f & SF_HI) {
        if (x > k->hi || ((f & SF_HI_OPEN) && x == k->hi)) return false;
    }
    if (f & SF_POW2) {
        if (x < 1 || x != floor(x) || x > 9.0e15) return false;
        int64_t n = (int64_t)x;
        if (n & (n - 1)) return false;
    }
    return true;
}

void ck_enum_error(Ck *c, const char *what, const char *const *enums, const Ast *v, const char *word) {
    diag_error(c->d, v->loc, "%s expects one of %s; got `%s`", what, ck_join_names(c, enums, ck_count_names(enums)), word);
    const char *s = suggest_word(word, enums, (size_t)ck_count_names(enums));
    if (s) diag_hint(c->d, "did you mean `%s`?", s);
}


// `500 stpes`: did you mean `steps`?
static void unit_hint(Ck *c, const char *unit) {
    static const char *const units[] = {"steps", "epochs", "tokens", "step", "epoch", "token"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(unit, units[i])) return;   // a real unit, just not the one expected here
    const char *s = suggest_word(unit, units, 3);
    if (s) diag_hint(c->d, "did you mean `%s`?", s);
}

static void check_construct(Ck *c, const SchemaKey *k, const char *what, const Ast *v, int depth) {
    const char *names[16];
    int n = 0;
    for (int i = 0; k->subs[i] && n < 16; i++) names[n++] = k->subs[i]->name;
    if (v->kind != AST_CONSTRUCT && v->kind != AST_IDENT) {
        diag_error(c->d, v->loc, "%s expects %s, got %s", what, ck_join_names(c, names, n), ck_describe(c, v));
        diag_hint(c->d, "write `%s = %s { ... };`", k->name, names[0]);
        return;
    }
    const SchemaBlock *variant = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(k->subs[i]->name, v->name)) variant = k->subs[i];
    if (!variant) {
        Loc at = v->kind == AST_CONSTRUCT ? v->name_loc : v->loc;
        if (at.len == 0) at = v->loc;
        diag_error(c->d, at, "%s expects one of %s; got `%s`", what, ck_join_names(c, names, n), v->name);
        const char *s = suggest_word(v->name, names, (size_t)n);
        if (s) diag_hint(c->d, "did you mean `%s`?", s);
        return;
    }
    if (v->kind == AST_CONSTRUCT) {
        const SchemaKey *outer = c->construct;
        c->construct = k;
        ck_check_items(c, v, variant, depth + 1);
        c->construct = outer;
    }
    else {   // a bare name: its required settings are missing
        for (const SchemaKey *r = variant->keys; r && r->name; r++)
            if (r->flags & SF_REQUIRED) {
                diag_error(c->d, v->loc, "`%s` needs `%s`", v->name, r->name);
                diag_hint(c->d, "write `%s = %s { %s = ...; }`", k->name, v->name, r->name);
            }
    }
}

// Checks one value; `what` names the setting in messages ("`rank`").
static void check_value(Ck *c, const SchemaKey *k, const Ast *v, int depth) {
    const char *what = arena_printf(c->a, "`%s`", k->name);
    double x = 0;
    bool is_int = false;
    int64_t iv = 0;
    switch (k->type) {
    case SK_INT:
    case SK_NUM:
        if (!ck_get_number(v, &x, &is_int, &iv)) {
            diag_error(c->d, v->loc, "%s expects %s, got %s", what, k->type == SK_INT ? "an integer" : "a number",
                       ck_describe(c, v));
            if (v->kind == AST_QUANTITY) diag_hint(c->d, "write a plain number, without `%s`", v->unit);
            else if (v->kind == AST_STR) diag_hint(c->d, "write the number without quotes");
            return;
        }
        if (k->type == SK_INT && !is_int) {
            diag_error(c->d, v->loc, "%s expects an integer, got %s", what, ck_src_text(c, v));
            return;
        }
        if (!in_range(k, x)) range_error(c, k, what, v);
        return;
    case SK_BOOL:
        if (v->kind != AST_BOOL) {
            diag_error(c->d, v->loc, "%s expects `true` or `false`, got %s", what, ck_describe(c, v));
        }
        return;
    case SK_STR:
    case SK_PATH:
        if (v->kind != AST_STR) {
            diag_error(c->d, v->loc, "%s expects a %s in quotes, got %s", what, k->type == SK_PATH ? "path" : "string",
                       ck_describe(c, v));
            if (v->kind == AST_IDENT) diag_hint(c->d, "write `%s = \"%s\";`", k->name, v->name);
        } else if (v->str_len == 0 && k->type == SK_PATH) {
            diag_error(c->d, v->loc, "%s is empty", what);
        }
        return;
    case SK_ENUM:
        if (v->kind == AST_STR && k->enums) {
            diag_error(c->d, v->loc, "%s expects a name, not a string", what);
            if (ck_in_enum(k->enums, v->str)) diag_hint(c->d, "write `%s = %s;` without quotes", k->name, v->str);
            else diag_hint(c->d, "one of %s", ck_join_names(c, k->enums, ck_count_names(k->enums)));
        } else if (v->kind != AST_IDENT) {
            diag_error(c->d, v->loc, "%s expects a name, got %s", what, ck_describe(c, v));
            if (k->enums) diag_hint(c->d, "one of %s", ck_join_names(c, k->enums, ck_count_names(k->enums)));
        } else if (k->enums && !ck_in_enum(k->enums, v->name)) {
            ck_enum_error(c, what, k->enums, v, v->name);
        }
        return;
    case SK_TEMPLATE:
        if (v->kind == AST_IDENT) {
            if (!ck_in_enum(k->enums, v->name)) {
                diag_error(c->d, v->loc, "%s expects %s or a string; got `%s`", what,
                           ck_join_names(c, k->enums, ck_count_names(k->enums)), v->name);
                const char *s = suggest_word(v->name, k->enums, (size_t)ck_count_names(k->enums));
                if (s && strchr(s, '.')) diag_hint(c->d, "did you mean `\"%s\"`? (a name with a dot is written in quotes)", s);
                else if (s) diag_hint(c->d, "did you mean `%s`?", s);
            }
        } else if (v->kind != AST_STR) {
            diag_error(c->d, v->loc, "%s expects %s or a string, got %s", what,
                       ck_join_names(c, k->enums, ck_count_names(k->enums)), ck_describe(c, v));
        }
        return;
    case SK_STEPS:
        if (v->kind == AST_QUANTITY && (ck_is_unit(v, "steps") || ck_is_unit(v, "epochs"))) {
            if (!v->is_int) diag_error(c->d, v->loc, "%s expects a whole number of %s, got %s", what, v->unit, ck_src_text(c, v));
            else if (!in_range(k, v->num)) range_error(c, k, what, v);
        } else if (ck_get_number(v, &x, &is_int, &iv)) {
            diag_error(c->d, v->loc, "%s needs a unit: steps or epochs", what);
            diag_hint(c->d, "write `%s steps`", ck_src_text(c, v));
        } else if (v->kind == AST_QUANTITY) {
            diag_error(c->d, v->loc, "%s counts steps or epochs, not `%s`", what, v->unit);
            unit_hint(c, v->unit);
        } else {
            diag_error(c->d, v->loc, "%s expects a count of steps or epochs, got %s", what, ck_describe(c, v));
        }
        return;
    case SK_TOKENS:
        if (ck_is_unit(v, "tokens")) {
            if (!v->is_int) diag_error(c->d, v->loc, "%s expects a whole number of tokens, got %s", what, ck_src_text(c, v));
            else if (!in_range(k, v->num)) range_error(c, k, what, v);
        } else if (ck_get_number(v, &x, &is_int, &iv)) {
            diag_error(c->d, v->loc, "%s needs a unit: tokens", what);
            diag_hint(c->d, "write `%s tokens`", ck_src_text(c, v));
        } else if (v->kind == AST_QUANTITY) {
            diag_error(c->d, v->loc, "%s counts tokens, not `%s`", what, v->unit);
            unit_hint(c, v->unit);
        } else {
            diag_error(c->d, v->loc, "%s expects a count of tokens, got %s", what, ck_describe(c, v));
        }
        return;
    case SK_RATIO:
    case SK_RATIO_OR_STEPS:
        if (ck_is_unit(v, "%")) {
            if (!(v->num >= 0 && v->num <= 100)) diag_error(c->d, v->loc, "%s must be in [0%%, 100%%], got %s", what, ck_src_text(c, v));
        } else if (k->type == SK_RATIO_OR_STEPS && ck_is_unit(v, "steps")) {
            if (!v->is_int || v->num < 0) diag_error(c->d, v->loc, "%s expects a whole number of steps, got %s", what, ck_src_text(c, v));
        } else if (ck_get_number(v, &x, &is_int, &iv)) {
            if (!(x >= 0 && x <= 1)) {
                diag_error(c->d, v->loc, "%s as a plain number is a ratio in [0, 1], got %s", what, ck_src_text(c, v));
                if (x > 1 && k->type == SK_RATIO_OR_STEPS) diag_hint(c->d, "write `%s steps` or `%s%%`", ck_src_text(c, v), ck_src_text(c, v));
            }
        } else {
            diag_error(c->d, v->loc, "%s expects a ratio (`3%%` or 0.03)%s, got %s", what,
                       k->type == SK_RATIO_OR_STEPS ? " or `N steps`" : "", ck_describe(c, v));
        }
        return;
    case SK_NUMS:
        if (v->kind != AST_LIST) {
            diag_error(c->d, v->loc, "%s expects a list of %d numbers, got %s", what, k->count, ck_describe(c, v));
            return;
        }
        if (v->nkids != k->count) {
            diag_error(c->d, v->loc, "%s expects a list of %d numbers, got a list of %d", what, k->count, v->nkids);
            return;
        }
        for (int i = 0; i < v->nkids; i++) {
            const Ast *e = v->kids[i];
            if (!ck_get_number(e, &x, &is_int, &iv)) diag_error(c->d, e->loc, "%s expects numbers, got %s", what, ck_describe(c, e));
            else if (!in_range(k, x)) range_error(c, k, arena_printf(c->a, "each of %s", what), e);
        }
        return;
    case SK_NAMES:
        if (v->kind == AST_IDENT) {
            if (!ck_in_enum(k->enums, v->name)) {
                diag_error(c->d, v->loc, "%s expects a list of names or `%s`, got `%s`", what,
                           ck_join_names(c, k->enums, ck_count_names(k->enums)), v->name);
                diag_hint(c->d, "write `%s = [%s];`", k->name, v->name);
            }
            return;
        }
        if (v->kind != AST_LIST) {
            diag_error(c->d, v->loc, "%s expects a list of names, got %s", what, ck_describe(c, v));
            return;
        }
        if (v->nkids == 0) diag_error(c->d, v->loc, "%s is empty", what);
        for (int i = 0; i < v->nkids; i++) {
            const Ast *e = v->kids[i];
            if (e->kind == AST_STR) {
                diag_error(c->d, e->loc, "%s expects names, not strings", what);
                diag_hint(c->d, "write `%s` without quotes", e->str);
            } else if (e->kind != AST_IDENT) {
                diag_error(c->d, e->loc, "%s expects names, got %s", what, ck_describe(c, e));
            }
        }
        return;
    case SK_MODEL:
        if (v->kind != AST_IDENT) {
            diag_error(c->d, v->loc, "%s expects the name of a model, got %s", what, ck_describe(c, v));
            if (v->kind == AST_STR) diag_hint(c->d, "write `%s = %s;` without quotes", k->name, v->str);
        } else if (ck_model_index(c, v->name) < 0 && !ck_ghost(c, "model", v->name)) {
            diag_error(c->d, v->loc, "%s names `%s`, but there is no `model %s`", what, v->name, v->name);
            const char *s = suggest_word(v->name, c->model_names, (size_t)c->nmodels);
            if (s) diag_hint(c->d, "did you mean `%s`?", s);
            else diag_hint(c->d, "models in this spec: %s", ck_join_names(c, c->model_names, c->nmodels));
        }
        return;
    case SK_CONSTRUCT:
        check_construct(c, k, what, v, depth);
        return;
    case SK_INIT:
        if (v->kind == AST_IDENT && !strcmp(v->name, "zeros")) return;
        if (v->kind == AST_CALL && v->name && !strcmp(v->name, "normal")) {
            for (int i = 0; i < v->nkids; i++) {
                const Ast *arg = v->kids[i];
                double s;
                if (arg->kind != AST_NAMED_ARG || strcmp(arg->name, "std")) {
                    diag_error(c->d, arg->loc, "`normal` takes one argument, `std = ...`");
                } else if (!ck_get_number(arg->a, &s, &is_int, &iv) || !(s > 0)) {
                    diag_error(c->d, arg->a ? arg->a->loc : arg->loc, "`std` must be a number greater than 0");
                }
            }
            return;
        }
        diag_error(c->d, v->loc, "%s expects `normal(std = ...)` or `zeros`, got %s", what, ck_describe(c, v));
        return;
    case SK_LAYERS: {
        const Ast *obj = (v->kind == AST_SLICE || v->kind == AST_INDEX) ? v->a : NULL;
        if (!obj || obj->kind != AST_IDENT || strcmp(obj->name, "layers")) {
            diag_error(c->d, v->loc, "%s expects `layers[i:j]` or `layers[i]`, got %s", what, ck_describe(c, v));
            return;
        }
        const Ast *ends[2] = {v->b, v->kind == AST_SLICE ? v->c : NULL};
        for (int i = 0; i < 2; i++) {
            if (!ends[i]) continue;
            if (!ck_get_number(ends[i], &x, &is_int, &iv) || !is_int || iv < 0)
                diag_error(c->d, ends[i]->loc, "a layer index is a whole number >= 0, got %s", ck_describe(c, ends[i]));
        }
        return;
    }
    case SK_BLOCK:
    case SK_BLOCKS:
        break;   // handled by check_items
    }
}

// ---------------------------------------------------------------------------------------------
// The items of one block (or construct) against its schema

// A hint for a key that belongs elsewhere: inside a construct/sub-block here, or another block.
static bool hint_elsewhere(Ck *c, const SchemaBlock *sb, const char *name) {
    for (const SchemaKey *k = sb->keys; k && k->name; k++) {
        if (!k->subs) continue;
        for (int i = 0; k->subs[i]; i++) {
            if (!schema_key(k->subs[i], name)) continue;
            if (k->type == SK_CONSTRUCT)
                diag_hint(c->d, "`%s` is a setting of the %s: `%s = %s { %s = ...; }`", name, k->name, k->name,
                          k->subs[i]->name, name);
            else diag_hint(c->d, "`%s` goes inside `%s { ... }`", name, k->name);
            return true;
        }
    }
    for (int i = 0; schema_blocks[i]; i++)
        if (schema_blocks[i] != sb && schema_key(schema_blocks[i], name)) {
            diag_hint(c->d, "`%s` is a setting of `%s` blocks", name, schema_blocks[i]->name);
            return true;
        }
    return false;
}

void ck_check_items(Ck *c, const Ast *blk, const SchemaBlock *sb, int depth) {
    const char *title = ck_block_title(c, blk);
    if (depth > MAX_DEPTH) {
        diag_error(c->d, blk->loc, "blocks nested too deeply");
        return;
    }
    enum { MAXK = 64 };
    const Ast *seen[MAXK] = {0};
    int nkeys = schema_nkeys(sb);
    for (int i = 0; i < blk->nkids; i++) {
        const Ast *it = blk->kids[i];
        if (!it) continue;
        if (it->kind != AST_ASSIGN && it->kind != AST_BLOCK) {
            diag_error(c->d, it->loc, "expected a setting `key = value;` in %s", title);
            continue;
        }
        const SchemaKey *k = schema_key(sb, it->name);
        if (!k && c->config_open && !strcmp(sb->name, "config") && it->kind == AST_ASSIGN && it->a) {
            double x;
            bool is_int;
            int64_t iv;
            if (!ck_get_number(it->a, &x, &is_int, &iv) && it->a->kind != AST_BOOL)
                diag_error(c->d, it->a->loc, "`%s` expects a number or `true`/`false`, got %s", it->name, ck_describe(c, it->a));
            continue;
        }
        if (!k) {
            diag_error(c->d, it->name_loc, "unknown %s `%s` in %s", it->kind == AST_BLOCK ? "block" : "setting",
                       it->name, title);
            const char *s = suggest_key(sb, it->name);
            const SchemaBlock *sibling = NULL;   // another variant of the same construct has it
            for (int j = 0; c->construct && blk->kind == AST_CONSTRUCT && c->construct->subs[j] && !sibling; j++)
                if (c->construct->subs[j] != sb && schema_key(c->construct->subs[j], it->name)) sibling = c->construct->subs[j];
            if (s) diag_hint(c->d, "did you mean `%s`?", s);
            else if (sibling) diag_hint(c->d, "`%s` is a setting of `%s { }` (%s), not of `%s { }` (%s)", it->name, sibling->name,
                                        sibling->doc, sb->name, sb->doc);
            else if (!hint_elsewhere(c, sb, it->name)) diag_hint(c->d, "%s accepts: %s", title, key_names(c, sb));
            continue;
        }
        int ki = (int)(k - sb->keys);
        bool is_block = k->type == SK_BLOCK || k->type == SK_BLOCKS;
        if (it->kind == AST_ASSIGN && is_block) {
            if (ki < MAXK) seen[ki] = it;
            diag_error(c->d, it->name_loc, "`%s` is a block, not a setting", it->name);
            diag_hint(c->d, "write `%s%s { ... }` without `=`", it->name, k->type == SK_BLOCKS ? " NAME" : "");
            continue;
        }
        if (it->kind == AST_BLOCK && !is_block) {
            if (ki < MAXK) seen[ki] = it;
            diag_error(c->d, it->name_loc, "`%s` is a setting, not a block", it->name);
            if (k->type == SK_CONSTRUCT)
                diag_hint(c->d, "write `%s = %s { ... };`", it->name, it->label ? it->label : k->subs[0]->name);
            else diag_hint(c->d, "write `%s = ...;`", it->name);
            continue;
        }
        if (k->type == SK_BLOCKS) {
            if (!it->label) {
                diag_error(c->d, it->name_loc, "`%s` needs a name: `%s NAME { ... }`", it->name, it->name);
                continue;
            }
            for (int j = 0; j < i; j++) {   // same kind and label earlier?
                const Ast *o = blk->kids[j];
                if (o && o->kind == AST_BLOCK && !strcmp(o->name, it->name) && o->label && !strcmp(o->label, it->label)) {
                    diag_error(c->d, it->label_loc, "`%s %s` is defined twice", it->name, it->label);
                    diag_note(c->d, ck_head_loc(o), "first defined here");
                    break;
                }
            }
            ck_check_items(c, it, k->subs[0], depth + 1);
            seen[ki] = it;
            continue;
        }
        if (ki < MAXK && seen[ki]) {
            diag_error(c->d, it->name_loc, "`%s` is set twice in %s", it->name, title);
            diag_note(c->d, seen[ki]->name_loc, "first set here");
            continue;
        }
        if (ki < MAXK) seen[ki] = it;
        if (k->type == SK_BLOCK) {
            if (it->label) diag_error(c->d, it->label_loc, "`%s` takes no name", it->name);
            ck_check_items(c, it, k->subs[0], depth + 1);
        } else if (it->a) {
            check_value(c, k, it->a, depth);
        }
    }
    for (int ki = 0; ki < nkeys && ki < MAXK; ki++) {
        const SchemaKey *k = &sb->keys[ki];
        if (!(k->flags & SF_REQUIRED) || seen[ki]) continue;
        if (c->config_open && !strcmp(sb->name, "config")) continue;   // the arch decides what it needs
        Loc at = blk->kind == AST_CONSTRUCT ? (blk->name_loc.len ? blk->name_loc : blk->loc) : ck_head_loc(blk);
        if (k->type == SK_BLOCKS) {
            diag_error(c->d, at, "%s has no `%s` block", title, k->name);
            diag_hint(c->d, "add at least one `%s NAME { ... }` block", k->name);
        } else {
            diag_error(c->d, at, "%s is missing `%s`", title, k->name);
            if (k->enums) diag_hint(c->d, "`%s`: %s (one of %s)", k->name, k->doc, ck_join_names(c, k->enums, ck_count_names(k->enums)));
            else diag_hint(c->d, "`%s`: %s", k->name, k->doc);
        }
    }
}
