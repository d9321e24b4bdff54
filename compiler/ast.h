// ast.h — the syntax tree of a .trl spec, as the parser builds it. One generic node type: the
// spec language (blocks of settings) and the graph language (def/arch bodies) share it.
// Every node keeps its source location (byte offsets). Nodes live in the compilation's Arena.
// Not here: meaning. Which keys a block accepts and their types is check.c's business; what a
// def computes is lower.c's.
#ifndef TRLC_AST_H
#define TRLC_AST_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "diag.h"

typedef enum AstKind {
    // --- values and expressions ---
    AST_NUM,        // 42, 2e-4, 1_000: num; is_int when written without '.'/exponent and exact
    AST_QUANTITY,   // 100 steps, 3%, 512 tokens: num, is_int, unit ("steps", "epochs", "tokens", "%")
    AST_STR,        // "..." with escapes decoded: str (NUL-terminated, may hold no NUL)
    AST_BOOL,       // true / false: boolean
    AST_IDENT,      // bf16, q_proj, x: name (a symbol in settings, a variable in graph code)
    AST_LIST,       // [a, b, c]: kids
    AST_CALL,       // f(args): name = callee; kids = args (positional, then AST_NAMED_ARG)
    AST_NAMED_ARG,  // name = value inside a call's parentheses: name, a = value
    AST_CONSTRUCT,  // adamw { lr = 2e-4; }: name, kids = items (AST_ASSIGN / AST_BLOCK)
    AST_MEMBER,     // a.b: a = object, name = member
    AST_INDEX,      // a[i]: a = object, b = index
    AST_SLICE,      // a[i:j], a[:j], a[i:]: a = object, b = lo (or NULL), c = hi (or NULL)
    AST_RANGE,      // lo .. hi (in `for`): a = lo, b = hi (hi exclusive)
    AST_UNARY,      // -x, !x: op ('-' or '!'), a
    AST_BINARY,     // a op b: op is one of AstOp

    // --- items and statements ---
    AST_VERSION,    // trl 1;: a = the number
    AST_IMPORT,     // import "qwen3";: str = module name or relative path
    AST_BLOCK,      // model policy { ... }, train { ... }, config { ... }, reward correct { ... }:
                    // name = keyword ("model"), label = second word or NULL, kids = items
    AST_ASSIGN,     // key = value; (a setting in a block, or a variable in graph code): name, a = value
    AST_DEF,        // def f(x, y) = expr;  or  def f(x, y) { stmts }  (also `forward(...) {...}`
                    // inside an arch): name, params = parameter names (AST_IDENT, defaults as
                    // AST_NAMED_ARG), a = expression body or NULL, body = AST_STMTS or NULL
    AST_ARCH,       // arch llama(cfg) { ... }: name, params, body = AST_STMTS (AST_DEF, AST_PARAM, ...)
    AST_PARAM,      // param model.layers[i].mlp.up_proj.weight : [cfg.ffn, cfg.hidden] = init;
                    // a = path expression, b = shape (AST_LIST), c = init expression or NULL
    AST_STMTS,      // { ... } of graph code: kids = statements
    AST_RETURN,     // return expr;: a
    AST_FOR,        // for i in lo .. hi { }: name = loop variable, a = AST_RANGE, body = AST_STMTS
    AST_IF,         // if cond { } else { }: a = cond, body = then (AST_STMTS), c = else (AST_STMTS,
                    // AST_IF for `else if`, or NULL)

    AST_SPEC,       // a whole file: kids = top-level items in source order
} AstKind;

typedef enum AstOp {
    OP_ADD = '+', OP_SUB = '-', OP_MUL = '*', OP_DIV = '/', OP_NOT = '!',
    OP_LT = '<', OP_GT = '>',
    OP_LE = 256, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR,
} AstOp;

typedef struct Ast Ast;
struct Ast {
    AstKind kind;
    Loc loc;              // the whole construct; for AST_ASSIGN/AST_BLOCK see name_loc too
    Loc name_loc;         // where `name` is written (the key of a setting, a block's keyword)
    Loc label_loc;        // where `label` is written (AST_BLOCK)
    const char *name;
    const char *label;
    const char *str;      // AST_STR, AST_IMPORT
    size_t str_len;       // bytes in str (strings may not hold NUL; the lexer rejects \0)
    const char *unit;     // AST_QUANTITY
    double num;           // AST_NUM, AST_QUANTITY
    bool is_int;          // the number is an integer that fits int64 exactly
    int64_t inum;         // its value when is_int
    bool boolean;         // AST_BOOL
    int op;               // AstOp for AST_UNARY / AST_BINARY
    Ast *a, *b, *c;       // operands, see each kind
    Ast *body;            // AST_DEF, AST_ARCH, AST_FOR, AST_IF
    Ast **kids;           // list elements, block items, call arguments, statements
    int nkids;
    Ast **params;         // AST_DEF, AST_ARCH parameters
    int nparams;
};

// Construction (used by the parser). All nodes are zeroed and arena-allocated.
Ast *ast_new(Arena *a, AstKind kind, Loc loc);
void ast_push(Arena *a, Ast *list_owner, Ast *kid);          // append to kids
void ast_push_param(Arena *a, Ast *owner, Ast *param);       // append to params

// Lookup helpers for later passes.
Ast *ast_find(const Ast *block, AstKind kind, const char *name);  // first kid of kind with name
const char *ast_kind_name(AstKind kind);                         // "setting", "block", ...
// Writes the tree in an indented, stable form (used by `trlc ast` debugging and parser tests).
void ast_dump(FILE *out, const Ast *node, int indent);

#endif
