// check_override.c — `--set KEY=VALUE` for the checker: applies one override to the main spec's
// AST before check_spec runs, so that an overridden value is validated (and located) exactly like
// a written one. KEY is a dotted settings path (schema.h); missing blocks and constructs are made.
// `train.steps` and `train.epochs` exclude each other: overriding one drops the other from the spec
// (`--set train.steps=2` shortens an `epochs` run).
// Not here: parsing VALUE (the caller parses it as spec text), validating it (check.c).
#include "check.h"
#include "schema.h"
#include <string.h>

static Ast *find_kid(Ast *owner, AstKind kind, const char *name, const char *label) {
    for (int i = 0; owner && i < owner->nkids; i++) {
        Ast *k = owner->kids[i];
        if (!k || k->kind != kind || !k->name || strcmp(k->name, name)) continue;
        if (label && (!k->label || strcmp(k->label, label))) continue;
        return k;
    }
    return NULL;
}

static Ast *new_block(Arena *a, Ast *owner, const char *name, const char *label, Loc loc) {
    Ast *b = ast_new(a, AST_BLOCK, loc);
    b->name = arena_strdup(a, name);
    b->name_loc = loc;
    if (label) {
        b->label = arena_strdup(a, label);
        b->label_loc = loc;
    }
    ast_push(a, owner, b);
    return b;
}

// Removes kid k (when not NULL) from owner's kids.
static void drop_kid(Ast *owner, const Ast *k) {
    int j = 0;
    for (int i = 0; k && i < owner->nkids; i++)
        if (owner->kids[i] != k) owner->kids[j++] = owner->kids[i];
    if (k) owner->nkids = j;
}

// Reports an unknown part of an override path with did-you-mean over the candidates.
static int bad_path(Diag *d, const char *path, const char *what, const char *part, const char *const *cands, int n) {
    diag_plain_error(d, "`%s`: unknown %s `%s`", path, what, part);
    const char *s = suggest_word(part, cands, (size_t)n);
    if (s) diag_hint(d, "did you mean `%s`?", s);
    return -1;
}

int check_override(Diag *d, Arena *a, Ast *spec, const char *path, Ast *value) {
    char *buf = arena_strdup(a, path);
    char *parts[16];
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
        if (n == 16) {
            diag_plain_error(d, "`%s`: the path is too long", path);
            return -1;
        }
        parts[n++] = p;
    }
    if (n < 2) {
        diag_plain_error(d, "`%s`: expected BLOCK.SETTING, e.g. `train.optimizer.lr`", path);
        return -1;
    }
    const SchemaBlock *sb = schema_block(parts[0]);
    if (!sb) {
        const char *kinds[16];
        int nk = 0;
        for (int j = 0; schema_blocks[j] && nk < 16; j++) kinds[nk++] = schema_blocks[j]->name;
        return bad_path(d, path, "block", parts[0], kinds, nk);
    }
    int i = 1;
    const char *label = NULL;
    if (sb->label) {
        label = parts[i++];
        if (!strcmp(sb->name, "objective") && !(sb = schema_objective(label))) {
            const char *kinds[8];
            int nk = 0;
            for (int j = 0; schema_objectives[j] && nk < 8; j++) kinds[nk++] = schema_objectives[j]->name;
            return bad_path(d, path, "objective", label, kinds, nk);
        }
        if (i >= n) {
            diag_plain_error(d, "`%s`: expected a setting after `%s.%s`", path, parts[0], label);
            return -1;
        }
    }
    Ast *owner = find_kid(spec, AST_BLOCK, parts[0], label);
    if (!owner) owner = new_block(a, spec, parts[0], label, value->loc);
    for (; i < n; i++) {
        const SchemaKey *k = schema_key(sb, parts[i]);
        if (!k) {
            const char *names[64];
            int nn = 0;
            for (const SchemaKey *q = sb->keys; q && q->name && nn < 64; q++) names[nn++] = q->name;
            return bad_path(d, path, "setting", parts[i], names, nn);
        }
        bool last = i == n - 1;
        if (k->type == SK_BLOCK || k->type == SK_BLOCKS) {
            const char *name = parts[i], *lbl = NULL;
            if (k->type == SK_BLOCKS) {
                if (i + 1 >= n) {
                    diag_plain_error(d, "`%s`: expected the name of a `%s` block after `%s`", path, name, name);
                    return -1;
                }
                lbl = parts[++i];
            }
            if (i + 1 >= n) {
                diag_plain_error(d, "`%s` is a block: name one of its settings", path);
                return -1;
            }
            Ast *sub = find_kid(owner, AST_BLOCK, name, lbl);
            owner = sub ? sub : new_block(a, owner, name, lbl, value->loc);
            sb = k->subs[0];
            continue;
        }
        Ast *item = find_kid(owner, AST_ASSIGN, parts[i], NULL);
        if (last && !strcmp(sb->name, "train") && (!strcmp(parts[i], "steps") || !strcmp(parts[i], "epochs")))
            drop_kid(owner, find_kid(owner, AST_ASSIGN, !strcmp(parts[i], "steps") ? "epochs" : "steps", NULL));
        if (last) {
            if (item) {
                item->a = value;
            } else {
                item = ast_new(a, AST_ASSIGN, value->loc);
                item->name = arena_strdup(a, parts[i]);
                item->name_loc = value->loc;
                item->a = value;
                ast_push(a, owner, item);
            }
            return 0;
        }
        if (k->type != SK_CONSTRUCT) {
            diag_plain_error(d, "`%s`: `%s` has no settings inside", path, parts[i]);
            return -1;
        }
        // descend into `name = variant { ... }`, making one when the setting is absent or bare
        const SchemaBlock *variant = NULL;
        if (item && item->a && (item->a->kind == AST_CONSTRUCT || item->a->kind == AST_IDENT)) {
            for (int j = 0; k->subs[j]; j++)
                if (!strcmp(k->subs[j]->name, item->a->name)) variant = k->subs[j];
        }
        if (!variant)
            for (int j = 0; k->subs[j] && !variant; j++)
                if (schema_key(k->subs[j], parts[i + 1])) variant = k->subs[j];
        if (!variant) variant = k->subs[0];
        if (!item) {
            item = ast_new(a, AST_ASSIGN, value->loc);
            item->name = arena_strdup(a, parts[i]);
            item->name_loc = value->loc;
            ast_push(a, owner, item);
        }
        if (!item->a || item->a->kind != AST_CONSTRUCT) {
            Ast *con = ast_new(a, AST_CONSTRUCT, item->a ? item->a->loc : value->loc);
            con->name = variant->name;
            con->name_loc = con->loc;
            item->a = con;
        }
        owner = item->a;
        sb = variant;
    }
    diag_plain_error(d, "`%s`: expected a setting at the end of the path", path);
    return -1;
}

int check_override_arg(Diag *d, Arena *a, Ast *spec, const char *set) {
    const char *eq = strchr(set, '=');
    if (!eq || eq == set) {
        diag_plain_error(d, "`--set %s`: expected KEY=VALUE", set);
        return -1;
    }
    char *key = arena_strndup(a, set, (size_t)(eq - set));
    const char *last = strrchr(key, '.');
    last = last ? last + 1 : key;
    char *text = arena_printf(a, "%s = %s;", *last ? last : "_", eq + 1);
    uint32_t file = diag_add_source(d, "--set", text, strlen(text));
    int errors = d->errors;
    Ast *parsed = parse_source(d, a, file);
    if (!parsed || d->errors > errors) return -1;
    if (parsed->nkids != 1 || parsed->kids[0]->kind != AST_ASSIGN || !parsed->kids[0]->a) {
        diag_plain_error(d, "`--set %s`: expected KEY=VALUE with one value", set);
        return -1;
    }
    return check_override(d, a, spec, key, parsed->kids[0]->a);
}
