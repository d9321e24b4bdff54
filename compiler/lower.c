// lower.c — the lowering pass: an interpreter of graph code that emits IR instead of computing.
// Config values, numbers, booleans, lists and parameter paths are evaluated at compile time;
// tensors are IR nodes. Defs are inlined (call depth limited), `for` over constant ranges is
// unrolled and `if` on compile-time values picks a branch. An arch's body runs first, declaring
// its parameters (`param PATH : [shape] = init;`) as IR params named by their HF paths; then its
// `forward(tokens, pos)` produces the logits, and the objective's def adds the loss.
// Not here: the built-in functions (lower_prims.c), spec validation (check.c), autodiff.
#include "lower_int.h"
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEFAULT_MAX_DEPTH = 64,       // nested def calls
    MAX_EVAL_DEPTH = 4000,        // C recursion through eval/exec (expressions nest <= 1000)
    MAX_LOOP = 1000000,           // iterations of one `for`
    MAX_NOTES = 8,                // call-stack notes after an error
};
static const int64_t EVAL_BUDGET = 1000000;    // evaluation steps per lowering (each expression
                                               // and statement evaluated: ~240 a stdlib decoder
                                               // layer, so ~4,100 layers fit); bounds time and memory
enum { MAX_NODES = 200000 };                   // IR nodes lowering may create (Qwen3-8B: ~2,000)
static const int64_t MAX_DIM = (int64_t)1 << 40;

// ---------------------------------------------------------------------------------------------
// errors

const char *lower_kind_name(LvKind k) {
    switch (k) {
    case LV_NONE: return "nothing";
    case LV_NUM: return "number";
    case LV_BOOL: return "boolean";
    case LV_STR: return "string";
    case LV_TENSOR: return "tensor";
    case LV_PATH: return "parameter path";
    case LV_RECORD: return "record";
    case LV_LIST: return "list";
    }
    return "value";
}

void lower_notes(Lower *L) {
    if (L->noted) return;
    L->noted = true;
    int k = 0;
    for (LFrame *f = L->top; f && k < MAX_NOTES; f = f->caller) {
        if (!f->fn || f->call.file == 0) continue;
        int same = 1;   // a recursion repeats one call site: one note with a count
        while (f->caller && f->caller->fn && !strcmp(f->caller->fn, f->fn) && f->caller->call.file == f->call.file &&
               f->caller->call.off == f->call.off) {
            f = f->caller;
            same++;
        }
        if (same > 1) diag_note(L->d, f->call, "in `%s`, called here (%d times)", f->fn, same);
        else diag_note(L->d, f->call, "in `%s`, called here", f->fn);
        k++;
    }
}

void lower_err(Lower *L, Loc loc, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(L->d, loc, "%s", msg);
    lower_notes(L);
}

// ---------------------------------------------------------------------------------------------
// values

static LVal v_num(double x) {
    LVal v = {.kind = LV_NUM, .num = x};
    if (x == floor(x) && fabs(x) < 9.0e15) {
        v.is_int = true;
        v.inum = (int64_t)x;
    }
    return v;
}
static LVal v_int(int64_t i) { return (LVal){.kind = LV_NUM, .is_int = true, .inum = i, .num = (double)i}; }
static LVal v_bool(bool b) { return (LVal){.kind = LV_BOOL, .b = b}; }
static LVal v_tensor(IrId t) { return (LVal){.kind = LV_TENSOR, .t = t}; }
static LVal v_path(const char *p) { return (LVal){.kind = LV_PATH, .s = p}; }

int lower_as_int(Lower *L, const LVal *v, Loc loc, const char *what, int64_t *out) {
    if (v->kind != LV_NUM || !v->is_int) {
        lower_err(L, loc, "%s must be an integer known at compile time, got %s", what,
                  v->kind == LV_NUM ? "a fractional number" : lower_kind_name(v->kind));
        return -1;
    }
    *out = v->inum;
    return 0;
}

int lower_as_num(Lower *L, const LVal *v, Loc loc, const char *what, double *out) {
    if (v->kind != LV_NUM) {
        lower_err(L, loc, "%s must be a number known at compile time, got a %s", what, lower_kind_name(v->kind));
        return -1;
    }
    *out = v->num;
    return 0;
}

int lower_as_bool(Lower *L, const LVal *v, Loc loc, const char *what, bool *out) {
    if (v->kind != LV_BOOL) {
        lower_err(L, loc, "%s must be true or false at compile time, got a %s", what, lower_kind_name(v->kind));
        if (v->kind == LV_TENSOR) diag_hint(L->d, "`if` is resolved while compiling; use where(mask, a, b) on tensors");
        return -1;
    }
    *out = v->b;
    return 0;
}

// The name tables (LowerNameTab): FNV-1a over the first n bytes of s.
static size_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}
// The slot of s[0..n) in t, or of the empty slot where it would go (t->cap > 0).
static size_t name_slot(const LowerNameTab *t, const char *s, size_t n) {
    size_t i = name_hash(s, n) & (t->cap - 1);
    while (t->key[i] && (strncmp(t->key[i], s, n) != 0 || t->key[i][n] != 0)) i = (i + 1) & (t->cap - 1);
    return i;
}
static const int *name_find(const LowerNameTab *t, const char *s, size_t n) {
    if (!t->cap) return NULL;
    size_t i = name_slot(t, s, n);
    return t->key[i] ? &t->val[i] : NULL;
}
// Adds s[0..n) -> v unless present (copied into the arena unless s[n] ends the string). 0, or -1
// when out of memory (the table stays as it was).
static int name_put(Arena *a, LowerNameTab *t, const char *s, size_t n, int v) {
    if (2 * (t->n + 1) > t->cap) {   // at most half full
        LowerNameTab u = {.cap = t->cap ? 2 * t->cap : 256, .n = t->n};
        u.key = arena_alloc(a, u.cap * sizeof *u.key), u.val = arena_alloc(a, u.cap * sizeof *u.val);
        if (!u.key || !u.val) return -1;
        memset(u.key, 0, u.cap * sizeof *u.key);
        for (size_t i = 0; i < t->cap; i++)
            if (t->key[i]) {
                size_t j = name_slot(&u, t->key[i], strlen(t->key[i]));
                u.key[j] = t->key[i], u.val[j] = t->val[i];
            }
        *t = u;
    }
    size_t i = name_slot(t, s, n);
    if (t->key[i]) return 0;
    const char *k = s;
    if (s[n] != 0 && !(k = arena_printf(a, "%.*s", (int)n, s))) return -1;
    t->key[i] = k, t->val[i] = v, t->n++;
    return 0;
}

IrId lower_param_id(Lower *L, const char *name) {
    const int *i = name_find(&L->param_index, name, strlen(name));
    return i ? L->params[*i].id : IR_NONE;
}

// True when some declared parameter is `root` or lies under `root.`.
static bool is_param_root(Lower *L, const char *root) {
    return name_find(&L->param_roots, root, strlen(root)) != NULL;
}

static IrId implicit_param(Lower *L, const char *path, Loc loc);

int lower_as_tensor(Lower *L, const LVal *v, Loc loc, const char *what, IrId *out) {
    switch (v->kind) {
    case LV_TENSOR:
        *out = v->t;
        return 0;
    case LV_NUM:
        *out = ir_scalar(L->g, v->num, loc);
        if (*out == IR_NONE) { lower_notes(L); return -1; }
        return 0;
    case LV_PATH: {
        IrId id = lower_param_id(L, v->s);
        if (id == IR_NONE) id = lower_param_id(L, arena_printf(L->a, "%s.weight", v->s));
        if (id == IR_NONE && L->implicit) {
            int e0 = L->d->errors;
            id = implicit_param(L, v->s, loc);
            if (id == IR_NONE && L->d->errors != e0) return -1;
        }
        if (id != IR_NONE) {
            *out = id;
            return 0;
        }
        lower_err(L, loc, "parameter `%s` is used but not declared", v->s);
        const char **names = malloc((size_t)L->nparams * sizeof *names);
        if (names) {
            for (int i = 0; i < L->nparams; i++) names[i] = L->params[i].name;
            const char *w = arena_printf(L->a, "%s.weight", v->s);
            const char *s = suggest_word(w, names, (size_t)L->nparams);
            if (!s) s = suggest_word(v->s, names, (size_t)L->nparams);
            if (!s) {   // the same module under another prefix: model.lm_head → lm_head.weight
                const char *last = strrchr(v->s, '.');
                last = last ? last + 1 : v->s;
                const char *want = arena_printf(L->a, "%s.weight", last);
                size_t nw = strlen(want);
                for (int i = 0; i < L->nparams && !s; i++) {
                    size_t n = strlen(names[i]);
                    if (n >= nw && !strcmp(names[i] + n - nw, want) && (n == nw || names[i][n - nw - 1] == '.'))
                        s = names[i];
                }
            }
            if (s) diag_hint(L->d, "did you mean `%s`?", s);
            else diag_hint(L->d, "declare it in the arch with `param %s.weight : [...];`", v->s);
            free(names);
        }
        return -1;
    }
    default:
        lower_err(L, loc, "%s must be a tensor, got a %s", what, lower_kind_name(v->kind));
        return -1;
    }
}

// ---------------------------------------------------------------------------------------------
// frames

static LVal *frame_get(LFrame *f, const char *name) {
    for (; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (!strcmp(f->vars[i].name, name)) return &f->vars[i].v;
    return NULL;
}

static void frame_set(Lower *L, LFrame *f, const char *name, LVal v) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->vars[i].name, name)) {
            f->vars[i].v = v;
            return;
        }
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        LVar *nv = arena_alloc(L->a, (size_t)cap * sizeof *nv);
        if (f->n) memcpy(nv, f->vars, (size_t)f->n * sizeof *nv);
        f->vars = nv;
        f->cap = cap;
    }
    f->vars[f->n++] = (LVar){name, v};
}

// ---------------------------------------------------------------------------------------------
// definitions in the loaded modules (the main spec last: its defs win)

static const Ast *find_top(Lower *L, AstKind kind, const char *name) {
    for (int m = L->spec->nmods - 1; m >= 0; m--) {
        const Ast *root = L->spec->mods[m].root;
        for (int i = 0; root && i < root->nkids; i++) {
            const Ast *k = root->kids[i];
            if (k && k->kind == kind && k->name && !strcmp(k->name, name)) return k;
        }
    }
    return NULL;
}

// Every def and built-in name, for did-you-mean.
static const char *suggest_function(Lower *L, const char *name) {
    int cap = lower_prim_count();
    for (int m = 0; m < L->spec->nmods; m++)
        if (L->spec->mods[m].root) cap += L->spec->mods[m].root->nkids;
    const char **names = malloc((size_t)(cap + 1) * sizeof *names);
    if (!names) return NULL;
    int n = 0;
    for (int i = 0; i < lower_prim_count(); i++) names[n++] = lower_prim_name(i);
    for (int m = 0; m < L->spec->nmods; m++) {
        const Ast *root = L->spec->mods[m].root;
        for (int i = 0; root && i < root->nkids; i++)
            if (root->kids[i] && root->kids[i]->kind == AST_DEF && root->kids[i]->name) names[n++] = root->kids[i]->name;
    }
    const char *s = suggest_word(name, names, (size_t)n);
    free(names);
    return s;
}

// ---------------------------------------------------------------------------------------------
// expressions

static int eval(Lower *L, LFrame *F, const Ast *e, LVal *out);
static int exec(Lower *L, LFrame *F, const Ast *stmts, LVal *ret);
static int call_def(Lower *L, const Ast *def, LFrame *parent, const char **names, const LVal *vals,
                    const Loc *locs, int n, Loc call, LVal *out);

static bool step(Lower *L, Loc loc) {
    if (L->g->n > MAX_NODES && L->budget >= 0) {
        lower_err(L, loc, "the graph grows past %d IR nodes", MAX_NODES);
        L->budget = -2;
        return false;
    }
    if (--L->budget >= 0) return true;
    if (L->budget == -1) {
        lower_err(L, loc, "graph code takes more than %" PRId64 " evaluation steps to lower", EVAL_BUDGET);
        if (L->m && L->m->cfg.layers > 0)
            diag_hint(L->d, "lowering unrolls every loop and call: model `%s` has %" PRId64 " layers, and a stdlib "
                      "decoder layer takes about 240 steps (about 4,000 layers fit)",
                      L->m->name ? L->m->name : "?", L->m->cfg.layers);
    }
    return false;
}

static int eval_ident(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    LVal *v = frame_get(F, e->name);
    if (v) {
        *out = *v;
        return 0;
    }
    if (is_param_root(L, e->name) || (L->implicit && (!strcmp(e->name, "model") || !strcmp(e->name, "lm_head")))) {
        *out = v_path(e->name);
        return 0;
    }
    lower_err(L, e->loc, "unknown variable `%s`", e->name);
    const char *names[64];
    int n = 0;
    for (LFrame *f = F; f; f = f->parent)
        for (int i = 0; i < f->n && n < 48; i++) names[n++] = f->vars[i].name;
    for (int i = 0; i < L->nparams && n < 64; i++) {   // parameter roots: model, lm_head
        const char *p = L->params[i].name, *dot = strchr(p, '.');
        const char *root = dot ? arena_strndup(L->a, p, (size_t)(dot - p)) : p;
        bool dup = false;
        for (int j = 0; j < n && !dup; j++) dup = !strcmp(names[j], root);
        if (!dup) names[n++] = root;
    }
    const char *s = suggest_word(e->name, names, (size_t)n);
    if (s) diag_hint(L->d, "did you mean `%s`?", s);
    else if (find_top(L, AST_DEF, e->name)) diag_hint(L->d, "`%s` is a def: call it with `%s(...)`", e->name, e->name);
    return -1;
}

static int eval_member(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    LVal obj;
    if (eval(L, F, e->a, &obj)) return -1;
    if (obj.kind == LV_PATH) {
        *out = v_path(arena_printf(L->a, "%s.%s", obj.s, e->name));
        return 0;
    }
    if (obj.kind == LV_RECORD) {
        for (int i = 0; i < obj.nfields; i++)
            if (!strcmp(obj.fields[i].name, e->name)) {
                *out = obj.fields[i].v;
                return 0;
            }
        lower_err(L, e->name_loc, "the config has no field `%s`", e->name);
        const char *names[64];
        int n = 0;
        for (int i = 0; i < obj.nfields && n < 64; i++) names[n++] = obj.fields[i].name;
        const char *s = suggest_word(e->name, names, (size_t)n);
        if (s) diag_hint(L->d, "did you mean `%s`?", s);
        return -1;
    }
    lower_err(L, e->name_loc, "`.%s` on a %s: only parameter paths and the config have members", e->name,
              lower_kind_name(obj.kind));
    return -1;
}

static int eval_index(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    LVal obj, idx;
    if (eval(L, F, e->a, &obj) || eval(L, F, e->b, &idx)) return -1;
    int64_t i;
    if (obj.kind == LV_PATH) {
        if (lower_as_int(L, &idx, e->b->loc, "a layer index", &i)) return -1;
        if (i < 0) {
            lower_err(L, e->b->loc, "index %" PRId64 " is negative", i);
            return -1;
        }
        *out = v_path(arena_printf(L->a, "%s.%" PRId64, obj.s, i));
        return 0;
    }
    if (obj.kind == LV_LIST) {
        if (lower_as_int(L, &idx, e->b->loc, "a list index", &i)) return -1;
        if (i < 0) i += obj.nitems;
        if (i < 0 || i >= obj.nitems) {
            lower_err(L, e->b->loc, "index %" PRId64 " is out of range for a list of %d", idx.inum, obj.nitems);
            return -1;
        }
        *out = obj.items[i];
        return 0;
    }
    lower_err(L, e->loc, "cannot index a %s", lower_kind_name(obj.kind));
    if (obj.kind == LV_TENSOR) diag_hint(L->d, "use slice(x, axis, start, end) or gather(x, idx, axis)");
    return -1;
}

static int num_binop(Lower *L, const Ast *e, const LVal *a, const LVal *b, LVal *out) {
    int op = e->op;
    if (a->is_int && b->is_int && (op == OP_ADD || op == OP_SUB || op == OP_MUL)) {
        int64_t r;
        bool ovf = op == OP_ADD ? __builtin_add_overflow(a->inum, b->inum, &r)
                 : op == OP_SUB ? __builtin_sub_overflow(a->inum, b->inum, &r)
                                : __builtin_mul_overflow(a->inum, b->inum, &r);
        if (ovf) {
            lower_err(L, e->loc, "integer overflow in a compile-time expression");
            return -1;
        }
        *out = v_int(r);
        return 0;
    }
    double x = a->num, y = b->num;
    switch (op) {
    case OP_ADD: *out = v_num(x + y); return 0;
    case OP_SUB: *out = v_num(x - y); return 0;
    case OP_MUL: *out = v_num(x * y); return 0;
    case OP_DIV:
        if (y == 0) {
            lower_err(L, e->loc, "division by zero in a compile-time expression");
            return -1;
        }
        if (a->is_int && b->is_int && !(a->inum == INT64_MIN && b->inum == -1) && a->inum % b->inum == 0)
            *out = v_int(a->inum / b->inum);
        else
            *out = v_num(x / y);
        return 0;
    case OP_LT: *out = v_bool(x < y); return 0;
    case OP_GT: *out = v_bool(x > y); return 0;
    case OP_LE: *out = v_bool(x <= y); return 0;
    case OP_GE: *out = v_bool(x >= y); return 0;
    case OP_EQ: *out = v_bool(a->is_int && b->is_int ? a->inum == b->inum : x == y); return 0;
    case OP_NE: *out = v_bool(a->is_int && b->is_int ? a->inum != b->inum : x != y); return 0;
    }
    lower_err(L, e->loc, "`&&` and `||` need booleans, got numbers");
    return -1;
}

static const char *op_text(int op) {
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_LT: return "<";
    case OP_GT: return ">";
    case OP_LE: return "<=";
    case OP_GE: return ">=";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case OP_AND: return "&&";
    case OP_OR: return "||";
    }
    return "?";
}

static int eval_binary(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    LVal a, b;
    if (e->op == OP_AND || e->op == OP_OR) {   // short-circuit, compile-time booleans only
        bool x, y;
        if (eval(L, F, e->a, &a) || lower_as_bool(L, &a, e->a->loc, "an operand of `&&`/`||`", &x)) return -1;
        if (e->op == OP_AND ? !x : x) {
            *out = v_bool(x);
            return 0;
        }
        if (eval(L, F, e->b, &b) || lower_as_bool(L, &b, e->b->loc, "an operand of `&&`/`||`", &y)) return -1;
        *out = v_bool(y);
        return 0;
    }
    if (eval(L, F, e->a, &a) || eval(L, F, e->b, &b)) return -1;
    if (a.kind == LV_NUM && b.kind == LV_NUM) return num_binop(L, e, &a, &b, out);
    if ((e->op == OP_EQ || e->op == OP_NE) && a.kind == b.kind &&
        (a.kind == LV_BOOL || a.kind == LV_STR || a.kind == LV_PATH)) {
        bool eq = a.kind == LV_BOOL ? a.b == b.b : !strcmp(a.s, b.s);
        *out = v_bool(e->op == OP_EQ ? eq : !eq);
        return 0;
    }
    bool tensors = (a.kind == LV_TENSOR || a.kind == LV_NUM || a.kind == LV_PATH) &&
                   (b.kind == LV_TENSOR || b.kind == LV_NUM || b.kind == LV_PATH);
    if (!tensors) {
        lower_err(L, e->loc, "`%s` between a %s and a %s", op_text(e->op), lower_kind_name(a.kind),
                  lower_kind_name(b.kind));
        return -1;
    }
    IrId x, y;
    if (lower_as_tensor(L, &a, e->a->loc, "the left operand", &x) ||
        lower_as_tensor(L, &b, e->b->loc, "the right operand", &y))
        return -1;
    IrOp op;
    switch (e->op) {
    case OP_ADD: op = IR_ADD; break;
    case OP_SUB: op = IR_SUB; break;
    case OP_MUL: op = IR_MUL; break;
    case OP_DIV: op = IR_DIV; break;
    case OP_LT: op = IR_LT; break;
    case OP_GT: op = IR_GT; break;
    case OP_LE: op = IR_LE; break;
    case OP_GE: op = IR_GE; break;
    case OP_EQ: op = IR_EQ; break;
    case OP_NE: op = IR_NE; break;
    default:
        lower_err(L, e->loc, "unknown operator");
        return -1;
    }
    IrId r = ir_binary(L->g, op, x, y, e->loc);
    if (r == IR_NONE) {
        lower_notes(L);
        return -1;
    }
    *out = v_tensor(r);
    return 0;
}

static int eval_unary(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    LVal a;
    if (eval(L, F, e->a, &a)) return -1;
    if (e->op == OP_NOT) {
        bool b;
        if (lower_as_bool(L, &a, e->a->loc, "the operand of `!`", &b)) return -1;
        *out = v_bool(!b);
        return 0;
    }
    if (a.kind == LV_NUM) {
        *out = a.is_int && a.inum != INT64_MIN ? v_int(-a.inum) : v_num(-a.num);
        return 0;
    }
    IrId x;
    if (lower_as_tensor(L, &a, e->a->loc, "the operand of `-`", &x)) return -1;
    IrId r = ir_unary(L->g, IR_NEG, x, e->loc);
    if (r == IR_NONE) {
        lower_notes(L);
        return -1;
    }
    *out = v_tensor(r);
    return 0;
}

static const char *sig_text(Lower *L, const char *fn, const char *const *names, int n) {
    char buf[512];
    size_t k = (size_t)snprintf(buf, sizeof buf, "%s(", fn);
    for (int i = 0; i < n && k < sizeof buf; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "", names[i]);
    if (k < sizeof buf) snprintf(buf + k, sizeof buf - k, ")");
    return arena_strdup(L->a, buf);
}

// Matches call arguments (names[i] == NULL: positional) to parameter names. slot[i] receives the
// parameter index of argument i. Reports too many arguments, unknown and repeated names.
static int match_args(Lower *L, const char *fn, const char *const *pnames, int np, const char **names,
                      const Loc *locs, int n, Loc call, int *slot) {
    bool taken[64] = {0};
    if (np > 64) np = 64;
    int pos = 0;
    for (int i = 0; i < n; i++) {
        if (!names[i]) {
            if (pos >= np) {
                lower_err(L, locs[i], "`%s` takes %d argument%s, got more", fn, np, np == 1 ? "" : "s");
                diag_hint(L->d, "%s", sig_text(L, fn, pnames, np));
                return -1;
            }
            slot[i] = pos;
            taken[pos++] = true;
            continue;
        }
        int k = -1;
        for (int j = 0; j < np; j++)
            if (!strcmp(pnames[j], names[i])) k = j;
        if (k < 0) {
            lower_err(L, locs[i], "`%s` has no parameter `%s`", fn, names[i]);
            const char *s = suggest_word(names[i], pnames, (size_t)np);
            if (s) diag_hint(L->d, "did you mean `%s`?", s);
            else diag_hint(L->d, "%s", sig_text(L, fn, pnames, np));
            return -1;
        }
        if (taken[k]) {
            lower_err(L, locs[i], "argument `%s` of `%s` is given twice", names[i], fn);
            return -1;
        }
        slot[i] = k;
        taken[k] = true;
    }
    (void)call;
    return 0;
}

static int call_prim(Lower *L, const LPrim *p, const char **names, const LVal *vals, const Loc *locs, int n,
                     Loc call, LVal *out) {
    int np = 0;
    while (np < LPRIM_MAX_PARAMS && p->params[np]) np++;
    int slot[64];
    if (n > 64) {
        lower_err(L, call, "too many arguments");
        return -1;
    }
    if (match_args(L, p->name, p->params, np, names, locs, n, call, slot)) return -1;
    LVal v[LPRIM_MAX_PARAMS];
    Loc l[LPRIM_MAX_PARAMS];
    for (int j = 0; j < LPRIM_MAX_PARAMS; j++) {
        v[j] = (LVal){.kind = LV_NONE};
        l[j] = call;
    }
    for (int i = 0; i < n; i++) {
        v[slot[i]] = vals[i];
        l[slot[i]] = locs[i];
    }
    for (int j = 0; j < p->nreq; j++)
        if (v[j].kind == LV_NONE) {
            lower_err(L, call, "missing argument `%s` in the call of `%s`", p->params[j], p->name);
            diag_hint(L->d, "%s", sig_text(L, p->name, p->params, np));
            return -1;
        }
    LArgs args = {v, l, np, call, p->name};
    return p->fn(L, &args, out);
}

static int eval_call(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    int n = e->nkids;
    const char **names = arena_alloc(L->a, (size_t)(n + 1) * sizeof *names);
    LVal *vals = arena_alloc(L->a, (size_t)(n + 1) * sizeof *vals);
    Loc *locs = arena_alloc(L->a, (size_t)(n + 1) * sizeof *locs);
    bool named_seen = false;
    for (int i = 0; i < n; i++) {
        const Ast *k = e->kids[i];
        if (k->kind == AST_NAMED_ARG) {
            names[i] = k->name;
            locs[i] = k->loc;
            named_seen = true;
            if (eval(L, F, k->a, &vals[i])) return -1;
        } else {
            if (named_seen) {
                lower_err(L, k->loc, "a positional argument after a named one");
                return -1;
            }
            locs[i] = k->loc;
            if (eval(L, F, k, &vals[i])) return -1;
        }
    }
    const Ast *def = find_top(L, AST_DEF, e->name);
    if (def) return call_def(L, def, NULL, names, vals, locs, n, e->loc, out);
    const LPrim *p = lower_prim_find(e->name);
    if (p) return call_prim(L, p, names, vals, locs, n, e->loc, out);
    // stdlib/nn.trl is the prelude: its defs (heads, merge_heads, rmsnorm ...) need no import
    if (!L->prelude) {
        L->prelude = true;
        if (load_stdlib_module(L->d, L->a, L->spec, "nn") < 0) return -1;
        def = find_top(L, AST_DEF, e->name);
        if (def) return call_def(L, def, NULL, names, vals, locs, n, e->loc, out);
    }
    lower_err(L, e->name_loc, "unknown function `%s`", e->name);
    const char *s = suggest_function(L, e->name);
    if (s) diag_hint(L->d, "did you mean `%s`?", s);
    return -1;
}

static int eval(Lower *L, LFrame *F, const Ast *e, LVal *out) {
    if (!e) {
        *out = (LVal){.kind = LV_NONE};
        return 0;
    }
    if (!step(L, e->loc)) return -1;
    if (L->eval_depth >= MAX_EVAL_DEPTH) {
        lower_err(L, e->loc, "graph code nests too deeply (more than %d levels)", MAX_EVAL_DEPTH);
        return -1;
    }
    L->eval_depth++;
    int rc = 0;
    switch (e->kind) {
    case AST_NUM:
        *out = e->is_int ? v_int(e->inum) : v_num(e->num);
        break;
    case AST_BOOL:
        *out = v_bool(e->boolean);
        break;
    case AST_STR:
        *out = (LVal){.kind = LV_STR, .s = e->str};
        break;
    case AST_QUANTITY:
        lower_err(L, e->loc, "a quantity with a unit (`%s`) has no meaning in graph code", e->unit ? e->unit : "?");
        rc = -1;
        break;
    case AST_IDENT: rc = eval_ident(L, F, e, out); break;
    case AST_MEMBER: rc = eval_member(L, F, e, out); break;
    case AST_INDEX: rc = eval_index(L, F, e, out); break;
    case AST_BINARY: rc = eval_binary(L, F, e, out); break;
    case AST_UNARY: rc = eval_unary(L, F, e, out); break;
    case AST_CALL: rc = eval_call(L, F, e, out); break;
    case AST_LIST: {
        LVal *items = arena_alloc(L->a, (size_t)(e->nkids + 1) * sizeof *items);
        for (int i = 0; i < e->nkids && rc == 0; i++) rc = eval(L, F, e->kids[i], &items[i]);
        *out = (LVal){.kind = LV_LIST, .items = items, .nitems = e->nkids};
        break;
    }
    case AST_SLICE:
        lower_err(L, e->loc, "slices `a[i:j]` are not supported in graph code");
        diag_hint(L->d, "use slice(x, axis, start, end)");
        rc = -1;
        break;
    case AST_CONSTRUCT:
    case AST_NAMED_ARG:
    case AST_RANGE:
    default:
        lower_err(L, e->loc, "a %s is not an expression of graph code", ast_kind_name(e->kind));
        rc = -1;
        break;
    }
    L->eval_depth--;
    return rc;
}

// ---------------------------------------------------------------------------------------------
// parameter declarations

// path = NAME ( "." NAME | "[" int "]" )*  →  "model.layers.3.mlp.up_proj.weight"
static int param_path(Lower *L, LFrame *F, const Ast *e, const char **out) {
    if (e->kind == AST_IDENT) {
        *out = e->name;
        return 0;
    }
    const char *base;
    if ((e->kind == AST_MEMBER || e->kind == AST_INDEX) && e->a) {
        if (param_path(L, F, e->a, &base)) return -1;
        if (e->kind == AST_MEMBER) {
            *out = arena_printf(L->a, "%s.%s", base, e->name);
            return 0;
        }
        LVal idx;
        int64_t i;
        if (eval(L, F, e->b, &idx) || lower_as_int(L, &idx, e->b->loc, "an index in a parameter path", &i)) return -1;
        if (i < 0) {
            lower_err(L, e->b->loc, "index %" PRId64 " in a parameter path is negative", i);
            return -1;
        }
        *out = arena_printf(L->a, "%s.%" PRId64, base, i);
        return 0;
    }
    lower_err(L, e->loc, "a parameter path is written like `model.layers[i].mlp.up_proj.weight`");
    return -1;
}

static int eval_init(Lower *L, LFrame *F, const Ast *e, LowerParam *p) {
    static const char *const inits[] = {"normal", "ones", "zeros"};
    if (!e) return 0;
    if (e->kind == AST_IDENT && (!strcmp(e->name, "ones") || !strcmp(e->name, "zeros"))) {
        p->init = e->name[0] == 'o' ? LOWER_INIT_ONES : LOWER_INIT_ZEROS;
        return 0;
    }
    if (e->kind == AST_CALL && !strcmp(e->name, "normal")) {
        if (e->nkids != 1 || (e->kids[0]->kind == AST_NAMED_ARG && strcmp(e->kids[0]->name, "std"))) {
            lower_err(L, e->loc, "`normal` takes one argument, the standard deviation: normal(std)");
            return -1;
        }
        const Ast *x = e->kids[0]->kind == AST_NAMED_ARG ? e->kids[0]->a : e->kids[0];
        LVal v;
        double std;
        if (eval(L, F, x, &v) || lower_as_num(L, &v, x->loc, "the standard deviation", &std)) return -1;
        if (!(std >= 0) || !isfinite(std)) {
            lower_err(L, x->loc, "the standard deviation must be finite and >= 0, got %g", std);
            return -1;
        }
        p->init = LOWER_INIT_NORMAL;
        p->std = std;
        return 0;
    }
    const char *name = (e->kind == AST_IDENT || e->kind == AST_CALL) ? e->name : NULL;
    if (e->kind == AST_CALL && (!strcmp(name, "ones") || !strcmp(name, "zeros"))) {   // not "did you mean `ones`?"
        lower_err(L, e->loc, "`%s` takes no arguments: write `= %s;`", name, name);
        return -1;
    }
    lower_err(L, e->loc, "unknown initializer%s%s%s: expected normal(std), ones or zeros", name ? " `" : "",
              name ? name : "", name ? "`" : "");
    const char *s = name ? suggest_word(name, inits, 3) : NULL;
    if (s) diag_hint(L->d, "did you mean `%s`?", s);
    return -1;
}

// Appends parameter p (name, init, loc set) of the given shape as an IR param.
static int add_param(Lower *L, LowerParam p, int rank, const IrDim *dims) {
    p.layer = ir_layer_of(p.name);
    p.trainable = !L->m->frozen && !(p.layer >= 0 && p.layer >= L->m->freeze_lo && p.layer < L->m->freeze_hi);
    p.id = ir_param(L->g, p.name, L->g->float_dtype, ir_shape_of(rank, dims), p.trainable, p.loc);
    if (p.id == IR_NONE) {
        lower_notes(L);
        return -1;
    }
    if (L->nparams == L->capparams) {
        int cap = L->capparams ? 2 * L->capparams : 64;
        LowerParam *np = arena_alloc(L->a, (size_t)cap * sizeof *np);
        if (L->nparams) memcpy(np, L->params, (size_t)L->nparams * sizeof *np);
        L->params = np;
        L->capparams = cap;
    }
    // the name and each of its dotted prefixes, for lower_param_id and is_param_root
    size_t n = strlen(p.name);
    int rc = name_put(L->a, &L->param_index, p.name, n, L->nparams);
    for (size_t k = 0; k <= n && rc == 0; k++)
        if (p.name[k] == '.' || p.name[k] == 0) rc = name_put(L->a, &L->param_roots, p.name, k, 0);
    if (rc != 0) {
        lower_err(L, p.loc, "out of memory declaring parameter `%s`", p.name);
        return -1;
    }
    L->params[L->nparams++] = p;
    return 0;
}

static int decl_param(Lower *L, LFrame *F, const Ast *s) {
    if (!L->decl) {
        lower_err(L, s->loc, "`param` declarations belong in an arch body, not in a def");
        return -1;
    }
    LowerParam p = {.id = IR_NONE, .loc = s->loc};
    if (param_path(L, F, s->a, &p.name)) return -1;
    const int *first = name_find(&L->param_index, p.name, strlen(p.name));
    if (first) {
        lower_err(L, s->a->loc, "parameter `%s` is declared twice", p.name);
        diag_note(L->d, L->params[*first].loc, "first declared here");
        return -1;
    }
    const Ast *sh = s->b;
    if (!sh || sh->kind != AST_LIST || sh->nkids > IR_MAX_RANK) {
        lower_err(L, sh ? sh->loc : s->loc, "a parameter shape is a list of at most %d sizes", IR_MAX_RANK);
        return -1;
    }
    IrDim dims[IR_MAX_RANK];
    int64_t numel = 1;
    for (int i = 0; i < sh->nkids; i++) {
        LVal v;
        int64_t n;
        if (eval(L, F, sh->kids[i], &v) || lower_as_int(L, &v, sh->kids[i]->loc, "a parameter size", &n)) return -1;
        if (n <= 0 || n > MAX_DIM) {
            lower_err(L, sh->kids[i]->loc, "parameter size %" PRId64 " is out of range (1 .. 2^40)", n);
            return -1;
        }
        if (__builtin_mul_overflow(numel, n, &numel) || numel > MAX_DIM) {
            lower_err(L, sh->loc, "parameter `%s` has more than 2^40 elements", p.name);
            return -1;
        }
        dims[i] = ir_dim(n);
    }
    if (eval_init(L, F, s->c, &p)) return -1;
    return add_param(L, p, sh->nkids, dims);
}

// An arch without `param` declarations (as in LANGUAGE.md's example) gets the parameters of the
// usual decoder on first use, shaped as config.json implies: `X.q_proj` → `X.q_proj.weight`
// [heads*head_dim, hidden], norms [hidden] (q_norm/k_norm [head_dim]), ... No biases. Returns the
// param, or IR_NONE (no report) when the name is not one of those modules.
static IrId implicit_param(Lower *L, const char *path, Loc loc) {
    const CheckedConfig *c = &L->m->cfg;
    size_t n = strlen(path);
    const char *name = n > 7 && !strcmp(path + n - 7, ".weight") ? arena_printf(L->a, "%s", path)
                                                                   : arena_printf(L->a, "%s.weight", path);
    size_t nn = strlen(name) - 7;   // the module path without ".weight"
    const char *mod = name;
    for (size_t i = 0; i < nn; i++)
        if (name[i] == '.') mod = name + i + 1;
    size_t ml = (size_t)(name + nn - mod);
    int64_t q = c->heads * c->head_dim, kv = c->kv_heads * c->head_dim;
    static const char *const norms[] = {"input_layernorm", "post_attention_layernorm", "norm"};
    struct { const char *m; int64_t d0, d1; } linear[] = {
        {"embed_tokens", c->vocab, c->hidden}, {"lm_head", c->vocab, c->hidden}, {"q_proj", q, c->hidden},
        {"k_proj", kv, c->hidden}, {"v_proj", kv, c->hidden}, {"o_proj", c->hidden, q},
        {"gate_proj", c->ffn, c->hidden}, {"up_proj", c->ffn, c->hidden}, {"down_proj", c->hidden, c->ffn},
    };
    LowerParam p = {.id = IR_NONE, .name = name, .loc = loc};
    IrDim dims[2];
    int rank = 0;
    for (size_t i = 0; i < sizeof linear / sizeof *linear && !rank; i++)
        if (strlen(linear[i].m) == ml && !strncmp(mod, linear[i].m, ml)) {
            dims[0] = ir_dim(linear[i].d0);
            dims[1] = ir_dim(linear[i].d1);
            rank = 2;
            p.init = LOWER_INIT_NORMAL;
            p.std = c->init_std;
        }
    for (size_t i = 0; i < 3 && !rank; i++)
        if (strlen(norms[i]) == ml && !strncmp(mod, norms[i], ml)) {
            dims[0] = ir_dim(c->hidden);
            rank = 1;
            p.init = LOWER_INIT_ONES;
        }
    if (!rank && ((ml == 6 && !strncmp(mod, "q_norm", 6)) || (ml == 6 && !strncmp(mod, "k_norm", 6)))) {
        dims[0] = ir_dim(c->head_dim);
        rank = 1;
        p.init = LOWER_INIT_ONES;
    }
    if (!rank) return IR_NONE;
    for (int i = 0; i < rank; i++)
        if (dims[i].coef <= 0 || dims[i].coef > MAX_DIM) {
            lower_err(L, loc, "parameter `%s` would have size %" PRId64 " from the config", name, dims[i].coef);
            return IR_NONE;
        }
    if (add_param(L, p, rank, dims)) return IR_NONE;
    return L->params[L->nparams - 1].id;
}

// ---------------------------------------------------------------------------------------------
// statements: 0 = fell through, 1 = returned (*ret set), -1 = error

static int exec_stmt(Lower *L, LFrame *F, const Ast *s, LVal *ret) {
    switch (s->kind) {
    case AST_ASSIGN: {
        LVal v;
        if (eval(L, F, s->a, &v)) return -1;
        frame_set(L, F, s->name, v);
        return 0;
    }
    case AST_RETURN:
        if (L->decl && !L->top->fn) {
            lower_err(L, s->loc, "`return` in an arch body: results come from `forward(...)`");
            return -1;
        }
        return eval(L, F, s->a, ret) ? -1 : 1;
    case AST_FOR: {
        LVal lo, hi;
        int64_t a, b;
        if (eval(L, F, s->a->a, &lo) || lower_as_int(L, &lo, s->a->a->loc, "the start of a `for` range", &a))
            return -1;
        if (eval(L, F, s->a->b, &hi) || lower_as_int(L, &hi, s->a->b->loc, "the end of a `for` range", &b))
            return -1;
        int64_t count;
        if (b > a && (__builtin_sub_overflow(b, a, &count) || count > MAX_LOOP)) {
            lower_err(L, s->a->loc, "a `for` range of more than %d iterations", MAX_LOOP);
            return -1;
        }
        for (int64_t i = a; i < b; i++) {
            frame_set(L, F, s->name, v_int(i));
            int rc = exec(L, F, s->body, ret);
            if (rc) return rc;
        }
        return 0;
    }
    case AST_IF: {
        LVal c;
        bool b;
        if (eval(L, F, s->a, &c) || lower_as_bool(L, &c, s->a->loc, "an `if` condition", &b)) return -1;
        if (b) return exec(L, F, s->body, ret);
        if (!s->c) return 0;
        if (s->c->kind == AST_IF) return exec_stmt(L, F, s->c, ret);
        return exec(L, F, s->c, ret);
    }
    case AST_PARAM:
        return decl_param(L, F, s) ? -1 : 0;
    case AST_DEF:
        if (L->decl && !L->top->fn) return 0;   // an arch method: run on request
        lower_err(L, s->loc, "a def inside a def body");
        return -1;
    default:
        lower_err(L, s->loc, "a %s is not a statement of graph code", ast_kind_name(s->kind));
        return -1;
    }
}

static int exec(Lower *L, LFrame *F, const Ast *stmts, LVal *ret) {
    if (!stmts) return 0;
    if (L->eval_depth >= MAX_EVAL_DEPTH) {
        lower_err(L, stmts->loc, "graph code nests too deeply (more than %d levels)", MAX_EVAL_DEPTH);
        return -1;
    }
    L->eval_depth++;
    int rc = 0;
    for (int i = 0; i < stmts->nkids && rc == 0; i++) {
        if (!step(L, stmts->kids[i]->loc)) rc = -1;
        else rc = exec_stmt(L, F, stmts->kids[i], ret);
    }
    L->eval_depth--;
    return rc;
}

// Inlines `def` with the given arguments. parent: the arch frame for arch methods, else NULL
// (defs see only their parameters and the parameter paths).
static int call_def(Lower *L, const Ast *def, LFrame *parent, const char **names, const LVal *vals,
                    const Loc *locs, int n, Loc call, LVal *out) {
    if (L->depth >= L->max_depth) {
        lower_err(L, call, "def calls nest more than %d deep (is `%s` recursive?)", L->max_depth, def->name);
        return -1;
    }
    int np = def->nparams;
    if (np > 64 || n > 64) {
        lower_err(L, def->loc, "more than 64 parameters");
        return -1;
    }
    const char *pnames[64];
    for (int j = 0; j < np; j++) pnames[j] = def->params[j]->name;
    int slot[64];
    if (match_args(L, def->name, pnames, np, names, locs, n, call, slot)) return -1;
    LFrame G = {.parent = parent, .fn = def->name, .call = call, .caller = L->top};
    bool given[64] = {0};
    for (int i = 0; i < n; i++) given[slot[i]] = true;
    for (int i = 0; i < n; i++) frame_set(L, &G, pnames[slot[i]], vals[i]);
    L->top = &G;
    L->depth++;
    int rc = 0;
    for (int j = 0; j < np && rc == 0; j++) {
        if (given[j]) continue;
        const Ast *pr = def->params[j];
        if (pr->kind != AST_NAMED_ARG) {
            L->top = G.caller;   // the error is at the call: don't name the callee as a frame
            lower_err(L, call, "missing argument `%s` in the call of `%s`", pnames[j], def->name);
            diag_hint(L->d, "%s", sig_text(L, def->name, pnames, np));
            L->top = &G;
            rc = -1;
            break;
        }
        LVal v;
        rc = eval(L, &G, pr->a, &v);
        if (rc == 0) frame_set(L, &G, pnames[j], v);
    }
    if (rc == 0) {
        if (def->a) {
            rc = eval(L, &G, def->a, out);
        } else {
            rc = exec(L, &G, def->body, out);
            if (rc == 0) {
                lower_err(L, def->loc, "`%s` ends without `return`", def->name);
                rc = -1;
            } else if (rc == 1) {
                rc = 0;
            }
        }
    }
    L->depth--;
    L->top = G.caller;
    return rc;
}

// ---------------------------------------------------------------------------------------------
// the model configuration as the record `cfg`

static void add_field(LField *f, int *n, const char *name, LVal v) {
    f[*n].name = name;
    f[*n].v = v;
    (*n)++;
}

static LVal make_cfg(Lower *L) {
    const LowerModel *m = L->m;
    const CheckedConfig *c = &m->cfg;
    int cap = 32 + (m->config_block ? m->config_block->nkids : 0);
    LField *f = arena_alloc(L->a, (size_t)cap * sizeof *f);
    int n = 0;
    add_field(f, &n, "vocab", v_int(c->vocab));
    add_field(f, &n, "hidden", v_int(c->hidden));
    add_field(f, &n, "layers", v_int(c->layers));
    add_field(f, &n, "heads", v_int(c->heads));
    add_field(f, &n, "kv_heads", v_int(c->kv_heads));
    add_field(f, &n, "head_dim", v_int(c->head_dim));
    add_field(f, &n, "ffn", v_int(c->ffn));
    add_field(f, &n, "max_pos", v_int(c->max_pos));
    add_field(f, &n, "eps", v_num(c->eps));
    add_field(f, &n, "rope_theta", v_num(c->rope_theta));
    add_field(f, &n, "init_std", v_num(c->init_std));
    add_field(f, &n, "tie", v_bool(c->tie));
    const HfConfig *hf = m->hf;
    add_field(f, &n, "attention_bias", v_bool(hf && hf->o_bias));
    add_field(f, &n, "mlp_bias", v_bool(hf && hf->mlp_bias));
    // cfg.rope: what rope() needs (theta and the Llama-3 scaling)
    LField *r = arena_alloc(L->a, 5 * sizeof *r);
    int nr = 0;
    add_field(r, &nr, "theta", v_num(c->rope_theta));
    bool l3 = hf && hf->rope.type == HF_ROPE_LLAMA3;
    add_field(r, &nr, "factor", v_num(l3 ? hf->rope.factor : 0));
    add_field(r, &nr, "low_freq_factor", v_num(l3 ? hf->rope.low_freq_factor : 0));
    add_field(r, &nr, "high_freq_factor", v_num(l3 ? hf->rope.high_freq_factor : 0));
    add_field(r, &nr, "original_max_pos", v_num(l3 ? (double)hf->rope.original_max_position_embeddings : 0));
    add_field(f, &n, "rope", (LVal){.kind = LV_RECORD, .fields = r, .nfields = nr});
    // the keys of the spec's config { } as written (numbers and booleans): custom archs' own keys
    const Ast *cb = m->config_block;
    for (int i = 0; cb && i < cb->nkids && n < cap; i++) {
        const Ast *k = cb->kids[i];
        if (!k || k->kind != AST_ASSIGN || !k->name || !k->a) continue;
        LVal v;
        if (k->a->kind == AST_NUM) v = k->a->is_int ? v_int(k->a->inum) : v_num(k->a->num);
        else if (k->a->kind == AST_BOOL) v = v_bool(k->a->boolean);
        else continue;
        int at = -1;   // a key written in the spec wins (`rope = 10000;` of a custom arch)
        for (int j = 0; j < n; j++)
            if (!strcmp(f[j].name, k->name)) at = j;
        if (at >= 0) f[at].v = v;
        else add_field(f, &n, k->name, v);
    }
    return (LVal){.kind = LV_RECORD, .fields = f, .nfields = n};
}

// ---------------------------------------------------------------------------------------------
// entry points

void lower_options_init(LowerOptions *o) {
    memset(o, 0, sizeof *o);
    o->objective = "sft";
    o->beta = 0.1;
    o->clip = 0.2;
    o->temperature = 1;
    o->alpha = 0.5;
    o->dpo_loss = "sigmoid";
    o->max_def_depth = DEFAULT_MAX_DEPTH;
}

void lower_options_from_spec(const CheckedSpec *cs, LowerOptions *o) {
    lower_options_init(o);
    const CheckedObjective *ob = &cs->objective;
    const char *k = ob->kind;
    o->objective = k && (!strcmp(k, "sft") || !strcmp(k, "pretrain") || !strcmp(k, "dpo") || !strcmp(k, "grpo") ||
                  !strcmp(k, "kd") || !strcmp(k, "orpo"))
                       ? k : "none";
    o->label_smoothing = ob->label_smoothing;
    for (int i = 0; i < cs->ndata; i++) o->pack |= cs->data[i].pack;
    if (k && !strcmp(k, "orpo")) o->beta = ob->beta;
    if (k && !strcmp(k, "dpo")) {
        o->beta = ob->beta;
        if (ob->loss) o->dpo_loss = ob->loss;
    }
    if (k && !strcmp(k, "kd")) {
        o->temperature = ob->temperature > 0 ? ob->temperature : 1;
        o->alpha = ob->alpha;
    }
    if (k && !strcmp(k, "grpo")) {
        o->beta = ob->beta;
        o->clip = ob->clip;
        o->temperature = ob->temperature > 0 ? ob->temperature : 1;
    }
}

static const Ast *find_arch(Lower *L, const char *name) {
    const Ast *a = find_top(L, AST_ARCH, name);
    if (a || !load_stdlib_text(name, NULL)) return a;
    if (load_stdlib_module(L->d, L->a, L->spec, name) < 0) return NULL;
    return find_top(L, AST_ARCH, name);
}

static const Ast *find_method(const Ast *arch, const char *name) {
    for (int i = 0; arch->body && i < arch->body->nkids; i++) {
        const Ast *k = arch->body->kids[i];
        if (k && k->kind == AST_DEF && k->name && !strcmp(k->name, name)) return k;
    }
    return NULL;
}

// Calls `fn` of stdlib/objectives.trl (or the spec's own def of that name) on vals; the result
// must be a tensor.
static int call_objective(Lower *L, const char *fn, const char **names, const LVal *vals, int n, IrId *res) {
    const Ast *def = find_top(L, AST_DEF, fn);
    if (!def) {
        if (load_stdlib_module(L->d, L->a, L->spec, "objectives") < 0) return -1;
        def = find_top(L, AST_DEF, fn);
    }
    if (!def) {
        lower_err(L, L->m->loc, "no def `%s` for the objective", fn);
        return -1;
    }
    Loc locs[8];
    for (int i = 0; i < n && i < 8; i++) locs[i] = L->m->loc;
    LVal out;
    if (call_def(L, def, NULL, names, vals, locs, n, L->m->loc, &out)) return -1;
    if (out.kind != LV_TENSOR) {
        lower_err(L, def->loc, "`%s` must return a tensor, got a %s", fn, lower_kind_name(out.kind));
        return -1;
    }
    *res = out.t;
    return 0;
}

static int add_objective(Lower *L, const LowerOptions *opt, IrDim bdim, LowerResult *res) {
    const char *obj = opt->objective;
    IrGraph *g = L->g;
    const LowerModel *m = L->m;
    IrShape bt = ir_shape2(bdim, ir_dim_t());
    res->labels = ir_input(g, LOWER_INPUT_LABELS, IR_I32, bt, m->loc);
    if (res->labels == IR_NONE) return -1;
    if (!strcmp(obj, "sft") || !strcmp(obj, "pretrain")) {
        const char *names[3] = {NULL, NULL, "label_smoothing"};
        LVal vals[3] = {v_tensor(res->logits), v_tensor(res->labels), v_num(opt->label_smoothing)};
        if (call_objective(L, !strcmp(obj, "sft") ? "sft_loss" : "pretrain_loss", names, vals, 3, &res->loss)) return -1;
        res->loss_per = "token";
    } else if (!strcmp(obj, "dpo")) {
        const char *kind = opt->dpo_loss ? opt->dpo_loss : "sigmoid";
        if (strcmp(kind, "sigmoid") && strcmp(kind, "hinge") && strcmp(kind, "ipo")) {
            diag_error(L->d, m->loc, "the dpo loss `%s` cannot be lowered yet (sigmoid, hinge and ipo can)", kind);
            return -1;
        }
        res->ref_logp = ir_input(g, LOWER_INPUT_REF_LOGP, g->float_dtype, ir_shape2(bdim, ir_dim(1)), m->loc);
        if (res->ref_logp == IR_NONE) return -1;
        const char *names[6] = {NULL, NULL, NULL, "beta", "label_smoothing", "loss"};
        LVal vals[6] = {v_tensor(res->logits), v_tensor(res->labels), v_tensor(res->ref_logp), v_num(opt->beta),
                        v_num(opt->label_smoothing), (LVal){.kind = LV_STR, .s = kind}};
        if (call_objective(L, "dpo_loss", names, vals, 6, &res->loss)) return -1;
        res->loss_per = "pair";
    } else if (!strcmp(obj, "orpo")) {
        res->nll_labels = ir_input(g, LOWER_INPUT_NLL_LABELS, IR_I32, bt, m->loc);
        if (res->nll_labels == IR_NONE) return -1;
        // stdlib orpo_loss in its parts: the per-row terms once (one cross-entropy), then the loss
        // and TRL's metrics from them (the output "orpo_metrics", (1, 6) sums over pairs)
        const char *names[3] = {NULL, NULL, NULL};
        LVal vals[3] = {v_tensor(res->logits), v_tensor(res->labels), v_tensor(res->nll_labels)};
        IrId terms, metrics;
        if (call_objective(L, "orpo_terms", names, vals, 3, &terms)) return -1;
        LVal tv[2] = {v_tensor(terms), v_num(opt->beta)};
        if (call_objective(L, "orpo_loss_of", names, tv, 2, &res->loss) ||
            call_objective(L, "orpo_metrics", names, tv, 2, &metrics))
            return -1;
        ir_add_output(g, metrics, LOWER_OUTPUT_ORPO_METRICS);
        res->loss_per = "pair";
    } else if (!strcmp(obj, "grpo")) {
        IrDType f = g->float_dtype;
        res->advantages = ir_input(g, LOWER_INPUT_ADVANTAGES, f, ir_shape2(bdim, ir_dim(1)), m->loc);
        res->old_logp = ir_input(g, LOWER_INPUT_OLD_LOGP, f, bt, m->loc);
        res->ref_logp = ir_input(g, LOWER_INPUT_REF_LOGP, f, bt, m->loc);
        res->weight = ir_input(g, LOWER_INPUT_WEIGHT, f, bt, m->loc);
        if (res->advantages == IR_NONE || res->old_logp == IR_NONE || res->ref_logp == IR_NONE || res->weight == IR_NONE)
            return -1;
        const char *names[9] = {NULL, NULL, NULL, NULL, NULL, NULL, "beta", "clip", "temperature"};
        LVal vals[9] = {v_tensor(res->logits), v_tensor(res->labels), v_tensor(res->advantages),
                        v_tensor(res->old_logp), v_tensor(res->ref_logp), v_tensor(res->weight),
                        v_num(opt->beta), v_num(opt->clip), v_num(opt->temperature > 0 ? opt->temperature : 1)};
        if (call_objective(L, "grpo_loss", names, vals, 9, &res->loss)) return -1;
        res->loss_per = "weight";
    } else if (!strcmp(obj, "kd")) {
        const IrNode *ln = ir_node(g, res->logits);
        res->teacher_logits = ir_input(g, LOWER_INPUT_TEACHER_LOGITS, g->float_dtype, ln->shape, m->loc);
        if (res->teacher_logits == IR_NONE) return -1;
        const char *names[5] = {NULL, NULL, NULL, "temperature", "alpha"};
        LVal vals[5] = {v_tensor(res->logits), v_tensor(res->labels), v_tensor(res->teacher_logits),
                        v_num(opt->temperature > 0 ? opt->temperature : 1), v_num(opt->alpha)};
        if (call_objective(L, "kd_loss", names, vals, 5, &res->loss)) return -1;
        res->loss_per = "token";
    } else if (!strcmp(obj, "logp") || !strcmp(obj, "token_logp")) {
        bool tok = !strcmp(obj, "token_logp");
        const char *names[3] = {NULL, NULL, "temperature"};
        LVal vals[3] = {v_tensor(res->logits), v_tensor(res->labels), v_num(opt->temperature > 0 ? opt->temperature : 1)};
        if (call_objective(L, tok ? "token_logp" : "sequence_logp", names, vals, tok ? 3 : 2, &res->logp)) return -1;
        ir_add_output(g, res->logp, obj);
        return 0;
    } else {
        diag_error(L->d, m->loc, "the objective `%s` cannot be lowered yet (sft, pretrain, dpo, orpo, grpo and kd can)", obj);
        return -1;
    }
    ir_set_loss(g, res->loss);
    return g->errors ? -1 : 0;
}

int lower_graph(Diag *d, Arena *a, LoadedSpec *spec, const LowerModel *m, const LowerOptions *opt_in,
                IrGraph *g, LowerResult *res) {
    LowerOptions defaults;
    lower_options_init(&defaults);
    const LowerOptions *opt = opt_in ? opt_in : &defaults;
    memset(res, 0, sizeof *res);
    res->tokens = res->pos = res->labels = res->logits = res->loss = res->ref_logp = res->logp = IR_NONE;
    res->old_logp = res->advantages = res->weight = res->teacher_logits = res->seq = res->nll_labels = IR_NONE;
    const char *obj = opt->objective && strcmp(opt->objective, "none") ? opt->objective : NULL;
    // preference pairs: 2B rows (chosen, then rejected)
    IrDim bdim = obj && (!strcmp(obj, "dpo") || !strcmp(obj, "orpo")) ? (IrDim){2, 1u << IR_SYM_B} : ir_dim_b();
    int errors0 = d->errors;
    Lower L = {.d = d, .a = a, .g = g, .spec = spec, .m = m, .budget = EVAL_BUDGET, .seq = IR_NONE,
               .max_depth = opt->max_def_depth > 0 ? opt->max_def_depth : DEFAULT_MAX_DEPTH};
    if (!m->arch) {
        diag_error(d, m->loc, "model `%s` has no architecture", m->name ? m->name : "?");
        return -1;
    }
    if (m->hf && m->hf->rope.type == HF_ROPE_LINEAR) {
        diag_error(d, m->loc, "model `%s`: linear rope scaling (config.json rope_scaling) is not supported yet",
                   m->name ? m->name : "?");
        diag_hint(d, "the default and llama3 rope types are");
        return -1;
    }
    const Ast *arch = find_arch(&L, m->arch);
    if (!arch) {
        if (d->errors == errors0) diag_error(d, m->loc, "unknown architecture `%s`", m->arch);
        return -1;
    }
    if (arch->nparams > 1) {
        diag_error(d, arch->name_loc, "arch `%s` takes one parameter, the config: arch %s(cfg)", arch->name,
                   arch->name);
        return -1;
    }
    const Ast *fwd = find_method(arch, "forward");
    if (!fwd) {
        diag_error(d, arch->name_loc, "arch `%s` has no `forward(tokens, pos)`", arch->name);
        return -1;
    }
    // 1. the arch body: parameters
    LFrame A = {0};
    L.top = &A;
    if (arch->nparams == 1) frame_set(&L, &A, arch->params[0]->name, make_cfg(&L));
    L.decl = true;
    LVal ignored;
    int rc = exec(&L, &A, arch->body, &ignored);
    L.decl = false;
    if (rc < 0) return -1;
    L.implicit = L.nparams == 0;
    // 2. forward(tokens, pos)
    IrShape bt = ir_shape2(bdim, ir_dim_t());
    res->tokens = ir_input(g, LOWER_INPUT_TOKENS, IR_I32, bt, fwd->loc);
    res->pos = ir_input(g, LOWER_INPUT_POS, IR_I32, bt, fwd->loc);
    if (res->tokens == IR_NONE || res->pos == IR_NONE) return -1;
    if (opt->pack) {   // packed rows: segment ids for every causal self-attention (p_sdpa)
        res->seq = L.seq = ir_input(g, LOWER_INPUT_SEQ, IR_I32, bt, fwd->loc);
        if (res->seq == IR_NONE) return -1;
    }
    const char *names[2] = {NULL, NULL};
    LVal vals[2] = {v_tensor(res->tokens), v_tensor(res->pos)};
    Loc locs[2] = {m->loc, m->loc};
    LVal out;
    if (call_def(&L, fwd, &A, names, vals, locs, 2, m->loc, &out)) return -1;
    if (out.kind != LV_TENSOR) {
        diag_error(d, fwd->loc, "`forward` must return the logits tensor, got a %s", lower_kind_name(out.kind));
        return -1;
    }
    const IrNode *ln = ir_node(g, out.t);
    if (!ln || ln->shape.rank != 3 || !ir_dim_eq(ln->shape.d[0], bdim) || !ir_dim_eq(ln->shape.d[1], ir_dim_t()) ||
        !ir_dim_eq(ln->shape.d[2], ir_dim(m->cfg.vocab))) {
        char buf[96];
        diag_error(d, fwd->loc, "`forward` must return logits of shape [%s,T,%" PRId64 "], got %s",
                   bdim.coef == 2 ? "2*B" : "B", m->cfg.vocab, ln ? ir_shape_str(&ln->shape, buf, sizeof buf) : "?");
        return -1;
    }
    res->logits = out.t;
    ir_add_output(g, out.t, "logits");
    // 3. the objective
    if (obj && add_objective(&L, opt, bdim, res)) return -1;
    res->params = L.params;
    res->nparams = L.nparams;
    return d->errors > errors0 || g->errors ? -1 : 0;
}

int lower_model_opts(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, int model,
                     const LowerOptions *opt, IrGraph *g, LowerResult *res) {
    if (model < 0) model = cs->policy;
    if (model < 0 || model >= cs->nmodels) {
        diag_plain_error(d, "the spec has no model to lower");
        return -1;
    }
    const CheckedModel *cm = &cs->models[model];
    LowerModel m = {.name = cm->name, .arch = cm->arch, .cfg = cm->cfg, .hf = cm->has_hf ? &cm->hf : NULL,
                    .freeze_lo = cm->freeze_lo, .freeze_hi = cm->freeze_hi, .loc = cm->loc,
                    .frozen = model != cs->policy};
    // the model block's `config { }` for custom keys
    for (int i = 0; cs->spec && i < cs->spec->nkids; i++) {
        const Ast *b = cs->spec->kids[i];
        if (!b || b->kind != AST_BLOCK || !b->name || strcmp(b->name, "model") || !b->label || !cm->name ||
            strcmp(b->label, cm->name))
            continue;
        for (int j = 0; j < b->nkids; j++)
            if (b->kids[j] && b->kids[j]->kind == AST_BLOCK && b->kids[j]->name && !strcmp(b->kids[j]->name, "config"))
                m.config_block = b->kids[j];
    }
    LowerOptions fwd;
    if (m.frozen && opt) {   // a teacher or reference model: its forward only
        fwd = *opt;
        fwd.objective = "none";
        opt = &fwd;
    }
    return lower_graph(d, a, spec, &m, opt, g, res);
}

int lower_model(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, int model, IrGraph *g,
                LowerResult *res) {
    LowerOptions opt;
    lower_options_from_spec(cs, &opt);
    const char *kind = cs->objective.kind;
    if (strcmp(opt.objective, "sft") && strcmp(opt.objective, "pretrain")) {
        opt.objective = "none";
        if (kind) diag_warning(d, cs->objective.loc, "the `%s` objective is not trained yet: the graph holds the forward only",
                               kind);
    }
    return lower_model_opts(d, a, spec, cs, model, &opt, g, res);
}
