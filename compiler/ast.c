// ast.c — building, searching and printing syntax trees (see ast.h).
// Not here: parsing (parse.y) and meaning (check.c, lower.c). ast_dump is the stable text form
// the parser tests compare against; change it only together with tests/front/.
#include "ast.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Trees deeper than this are printed as `...` (the parser's stack bounds real trees well below).
enum { AST_DUMP_MAX_DEPTH = 10000 };

Ast *ast_new(Arena *a, AstKind kind, Loc loc) {
    Ast *n = arena_alloc(a, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    n->name_loc = loc;
    return n;
}

// Appends to a growable array kept in the arena (doubling; the old block is abandoned).
static void push(Arena *a, Ast ***arr, int *n, Ast *x) {
    int cap = 4;
    while (cap < *n) cap *= 2;
    if (*n == 0 || *n == cap) {
        int ncap = *n == 0 ? 4 : cap * 2;
        if (ncap <= 0 || (size_t)ncap > SIZE_MAX / sizeof(Ast *)) return;   // cannot happen below 2^31
        Ast **na = arena_alloc(a, (size_t)ncap * sizeof(Ast *));
        if (*n) memcpy(na, *arr, (size_t)*n * sizeof(Ast *));
        *arr = na;
    }
    (*arr)[(*n)++] = x;
}

void ast_push(Arena *a, Ast *owner, Ast *kid) { push(a, &owner->kids, &owner->nkids, kid); }
void ast_push_param(Arena *a, Ast *owner, Ast *param) { push(a, &owner->params, &owner->nparams, param); }

Ast *ast_find(const Ast *block, AstKind kind, const char *name) {
    if (!block) return NULL;
    for (int i = 0; i < block->nkids; i++) {
        Ast *k = block->kids[i];
        if (k && k->kind == kind && k->name && name && !strcmp(k->name, name)) return k;
    }
    return NULL;
}

const char *ast_kind_name(AstKind kind) {
    switch (kind) {
    case AST_NUM: return "number";
    case AST_QUANTITY: return "quantity";
    case AST_STR: return "string";
    case AST_BOOL: return "boolean";
    case AST_IDENT: return "name";
    case AST_LIST: return "list";
    case AST_CALL: return "call";
    case AST_NAMED_ARG: return "named argument";
    case AST_CONSTRUCT: return "constructor";
    case AST_MEMBER: return "member";
    case AST_INDEX: return "index";
    case AST_SLICE: return "slice";
    case AST_RANGE: return "range";
    case AST_UNARY: return "unary";
    case AST_BINARY: return "binary";
    case AST_VERSION: return "version";
    case AST_IMPORT: return "import";
    case AST_BLOCK: return "block";
    case AST_ASSIGN: return "setting";
    case AST_DEF: return "def";
    case AST_ARCH: return "arch";
    case AST_PARAM: return "param";
    case AST_STMTS: return "statements";
    case AST_RETURN: return "return";
    case AST_FOR: return "for";
    case AST_IF: return "if";
    case AST_SPEC: return "spec";
    }
    return "?";
}

static const char *op_name(int op) {
    switch (op) {
    case OP_LE: return "<=";
    case OP_GE: return ">=";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case OP_AND: return "&&";
    case OP_OR: return "||";
    case '+': return "+";
    case '-': return "-";
    case '*': return "*";
    case '/': return "/";
    case '!': return "!";
    case '<': return "<";
    case '>': return ">";
    }
    return "?";
}

// Strings are printed with C escapes so that the dump stays one line per node.
static void dump_str(FILE *out, const char *s, size_t n) {
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f) fprintf(out, "\\x%02X", c);
        else fputc(c, out);
    }
    fputc('"', out);
}

static void dump_num(FILE *out, const Ast *n) {
    if (n->is_int) fprintf(out, "%lld", (long long)n->inum);
    else {
        // the shortest form that reads back as the same double
        char buf[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, n->num);
            if (strtod(buf, NULL) == n->num) break;
        }
        fputs(buf, out);
    }
}

static void dump(FILE *out, const Ast *n, int indent, const char *role);

static void dump_child(FILE *out, const Ast *n, int indent, const char *role) {
    if (n) dump(out, n, indent, role);
}

// One node per line: `kind [name] [label] [value] @offset+len`, children indented by 2, each
// prefixed by its role (param:, a:, body:, b:, c:; kids have none), in that order.
static void dump(FILE *out, const Ast *n, int indent, const char *role) {
    fprintf(out, "%*s", indent, "");
    if (indent / 2 > AST_DUMP_MAX_DEPTH) {
        fputs("...\n", out);
        return;
    }
    if (role) fprintf(out, "%s: ", role);
    fputs(ast_kind_name(n->kind), out);
    switch (n->kind) {
    case AST_NUM: fputc(' ', out); dump_num(out, n); break;
    case AST_QUANTITY: fputc(' ', out); dump_num(out, n); fprintf(out, " %s", n->unit ? n->unit : "?"); break;
    case AST_STR:
    case AST_IMPORT: fputc(' ', out); dump_str(out, n->str ? n->str : "", n->str ? n->str_len : 0); break;
    case AST_BOOL: fputs(n->boolean ? " true" : " false", out); break;
    case AST_UNARY:
    case AST_BINARY: fprintf(out, " %s", op_name(n->op)); break;
    default:
        if (n->name) fprintf(out, " %s", n->name);
        if (n->label) fprintf(out, " %s", n->label);
        break;
    }
    fprintf(out, " @%u+%u\n", n->loc.off, n->loc.len);
    int in = indent + 2;
    for (int i = 0; i < n->nparams; i++) dump(out, n->params[i], in, "param");
    dump_child(out, n->a, in, "a");
    dump_child(out, n->body, in, "body");
    dump_child(out, n->b, in, "b");
    dump_child(out, n->c, in, "c");
    for (int i = 0; i < n->nkids; i++) dump(out, n->kids[i], in, NULL);
}

void ast_dump(FILE *out, const Ast *node, int indent) {
    if (!node) {
        fprintf(out, "%*s(null)\n", indent, "");
        return;
    }
    dump(out, node, indent, NULL);
}
