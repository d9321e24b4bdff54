/* parse.y — the .trl grammar (bison, pure, LALR(1) with full LAC): tokens from lex.l → the AST
 * of ast.h. One grammar for both layers of the language: the spec layer (blocks of settings)
 * and the graph layer (def/arch bodies). Syntax errors are reported through Diag with tailored
 * messages for the common mistakes; `error` productions resynchronise at `;` and `}` so that
 * several errors are reported in one run.
 * Not here: meaning (which keys a block takes: check.c; what a def computes: lower.c), reading
 * files and imports (load.c), the scanner and the parse_source driver (lex.l).
 * The final grammar, in EBNF, is in docs/language.md. */
%define api.pure full
%define api.prefix {fe_}
%define api.location.type {Loc}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {ParseState *ps}

%code requires {
#include <stdbool.h>
#include <stdint.h>
#include "ast.h"

enum { FE_MAX_DEPTH = 200,        // brackets and blocks nested deeper are refused
       FE_MAX_SYNTAX_ERRORS = 20 };

// The state of one parse, shared by the scanner (its extra data) and the parser.
typedef struct ParseState {
    Diag *d;
    Arena *arena;
    uint32_t file;                 // Diag source id
    const char *text;              // the source (NUL-terminated), len bytes
    uint32_t len;
    uint32_t off;                  // scanner: byte offset of the next token
    void *scanner;                 // the flex scanner (yyscan_t)
    int ntokens;                   // tokens handed to the parser so far
    int lex_error_tok;             // ntokens when the scanner last reported an error
    int prev_tok[3];               // the last tokens handed out: [0] newest (the lookahead
    Loc prev_loc[3];               //   when a syntax error is reported), [1], [2] before it
    const char *key;               // the setting being written: the name before the newest `=`
    const char *key_before;        // `key` as it was before the newest token
    int depth;                     // open brackets and braces
    bool unmatched_close;          // the newest token closes a bracket that was never opened
    Loc open_loc[FE_MAX_DEPTH];    // where each open one is
    int syntax_errors;
    bool stopped;                  // too deep or too many errors: the filter returns end of file
    Ast *root;                     // the AST_SPEC
} ParseState;

Ast *fe_parse_state(ParseState *ps);   // lex.l: runs the scanner + parser over ps->text
}

%code provides {
int fe_lx_lex(FE_STYPE *lval, Loc *lloc, void *scanner);
}

%code {
#include <stdio.h>
#include <string.h>

// A rule's location spans its first to its last symbol; an empty rule sits where the next
// token starts.
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                             \
    do {                                                                        \
        if (N) (Cur) = loc_span(YYRHSLOC(Rhs, 1), YYRHSLOC(Rhs, N));            \
        else {                                                                  \
            (Cur) = YYRHSLOC(Rhs, 0);                                           \
            (Cur).off += (Cur).len;                                             \
            (Cur).len = 0;                                                      \
        }                                                                       \
    } while (0)

// Deep right-recursion (10,000 unary minus signs) ends in a clear error, not a huge stack.
#define YYMAXDEPTH 5000

#define A (ps->arena)

static int fe_lex(FE_STYPE *lval, Loc *lloc, ParseState *ps);
static void fe_error(const Loc *loc, ParseState *ps, const char *msg);
static Ast *mk_binary(ParseState *ps, int op, Ast *l, Ast *r, Loc loc);
static Ast *mk_negate(ParseState *ps, Ast *x, Loc loc);
static Ast *mk_block(ParseState *ps, Ast *body, const char *name, Loc name_loc,
                     const char *label, Loc label_loc, Loc loc);
}

%union {
    Ast *ast;
    const char *str;
}

%token TRL "trl" IMPORT "import" DEF "def" ARCH "arch" PARAM "param" FOR "for" IN "in"
%token IF "if" ELSE "else" RETURN "return" TRUE "true" FALSE "false"
%token <str> IDENT "name"
%token <str> UNIT "unit"
%token <ast> NUMBER "number"
%token <ast> STRING "string"
%token DOTDOT ".." LE "<=" GE ">=" EQ "==" NE "!=" AND "&&" OR "||"

%type <str> key
%type <ast> top_items top_item entries entry block_body setting construct
%type <ast> def arch params param_list param_item body stmts stmt if_stmt
%type <ast> expr postfix primary list_items list_elems args arg_list arg

/* Nodes and names live in the Arena: discarded symbols need no freeing. */
%destructor { (void)$$; } <ast> <str>

%left OR
%left AND
%nonassoc EQ NE
%nonassoc '<' '>' LE GE
%left '+' '-'
%left '*' '/'
%precedence UNARY

%%

file
  : top_items                         { ps->root = $1; }
  ;

// spec = item* ; item = "trl" NUMBER ";" | "import" STRING ";" | def | arch | entry
top_items
  : %empty                            { $$ = ps->root = ast_new(A, AST_SPEC, @$); }
  | top_items top_item                { $$ = $1; if ($2) ast_push(A, $$, $2); }
  | top_items error ';'               { $$ = $1; yyerrok; }
  | top_items error '}'               { $$ = $1; yyerrok; }
  ;

top_item
  : TRL NUMBER ';'                    {
        $$ = ast_new(A, AST_VERSION, @$);
        $$->a = $2;
        if ($<ast>0->nkids > 0) {
            diag_error(ps->d, @1, "`trl %s;` must be the first statement of the file",
                       $2->is_int ? arena_printf(A, "%lld", (long long)$2->inum) : "1");
        }
    }
  | IMPORT STRING ';'                 {
        $$ = ast_new(A, AST_IMPORT, @$);
        $$->str = $2->str;
        $$->str_len = $2->str_len;
        $$->name_loc = @2;
    }
  | def
  | arch
  | entry
  ;

// entry = setting | block ; block = NAME NAME? "{" entry* "}"
entry
  : setting
  | IDENT block_body                  { $$ = mk_block(ps, $2, $1, @1, NULL, @1, @$); }
  | IDENT IDENT block_body            { $$ = mk_block(ps, $3, $1, @1, $2, @2, @$); }
  ;

block_body
  : '{' entries '}'                   { $$ = $2; }
  | '{' entries error '}'             { $$ = $2; yyerrok; }
  ;

entries
  : %empty                            { $$ = ast_new(A, AST_BLOCK, @$); }
  | entries entry                     { $$ = $1; ast_push(A, $$, $2); }
  | entries error ';'                 { $$ = $1; yyerrok; }
  ;

// setting = key "=" expr ";" | key "=" NAME "{" entry* "}" ";"? ; key = NAME | "arch"
setting
  : key '=' expr ';'                  {
        $$ = ast_new(A, AST_ASSIGN, @$);
        $$->name = $1; $$->name_loc = @1; $$->a = $3;
    }
  | key '=' construct                 {
        $$ = ast_new(A, AST_ASSIGN, @$);
        $$->name = $1; $$->name_loc = @1; $$->a = $3;
    }
  | key '=' construct ';'             {
        $$ = ast_new(A, AST_ASSIGN, @$);
        $$->name = $1; $$->name_loc = @1; $$->a = $3;
    }
  ;

// `arch` is reserved for `arch NAME(...) {...}` but is also the key `model { arch = llama; }`.
key
  : IDENT
  | ARCH                              { $$ = "arch"; }
  ;

construct
  : IDENT block_body                  {
        $$ = $2;
        $$->kind = AST_CONSTRUCT;
        $$->name = $1; $$->name_loc = @1; $$->loc = @$;
    }
  ;

// def = "def" NAME "(" params ")" ( "=" expr ";" | body )
def
  : DEF IDENT '(' params ')' '=' expr ';' {
        $$ = $4; $$->kind = AST_DEF; $$->loc = @$;
        $$->name = $2; $$->name_loc = @2; $$->a = $7;
    }
  | DEF IDENT '(' params ')' body     {
        $$ = $4; $$->kind = AST_DEF; $$->loc = @$;
        $$->name = $2; $$->name_loc = @2; $$->body = $6;
    }
  ;

// arch = "arch" NAME "(" params ")" body
arch
  : ARCH IDENT '(' params ')' body    {
        $$ = $4; $$->kind = AST_ARCH; $$->loc = @$;
        $$->name = $2; $$->name_loc = @2; $$->body = $6;
    }
  ;

// params = ( param ( "," param )* ","? )? ; param = NAME ( "=" expr )?
params
  : %empty                            { $$ = ast_new(A, AST_DEF, @$); }
  | param_list
  | param_list ','
  ;

param_list
  : param_item                        { $$ = ast_new(A, AST_DEF, @$); ast_push_param(A, $$, $1); }
  | param_list ',' param_item         { $$ = $1; ast_push_param(A, $$, $3); }
  ;

param_item
  : IDENT                             { $$ = ast_new(A, AST_IDENT, @$); $$->name = $1; $$->name_loc = @1; }
  | IDENT '=' expr                    {
        $$ = ast_new(A, AST_NAMED_ARG, @$);
        $$->name = $1; $$->name_loc = @1; $$->a = $3;
    }
  ;

body
  : '{' stmts '}'                     { $$ = $2; $$->loc = @$; }
  | '{' stmts error '}'               { $$ = $2; $$->loc = @$; yyerrok; }
  ;

stmts
  : %empty                            { $$ = ast_new(A, AST_STMTS, @$); }
  | stmts stmt                        { $$ = $1; ast_push(A, $$, $2); }
  | stmts error ';'                   { $$ = $1; yyerrok; }
  ;

// stmt = NAME "=" expr ";" | "return" expr ";" | "for" NAME "in" expr ".." expr body
//      | if | "param" postfix ":" list ( "=" expr )? ";"
//      | NAME "(" params ")" ( "=" expr ";" | body )          (a method, inside an arch)
stmt
  : IDENT '=' expr ';'                {
        $$ = ast_new(A, AST_ASSIGN, @$);
        $$->name = $1; $$->name_loc = @1; $$->a = $3;
    }
  | RETURN expr ';'                   { $$ = ast_new(A, AST_RETURN, @$); $$->a = $2; }
  | FOR IDENT IN expr DOTDOT expr body {
        $$ = ast_new(A, AST_FOR, @$);
        $$->name = $2; $$->name_loc = @2;
        $$->a = ast_new(A, AST_RANGE, loc_span(@4, @6));
        $$->a->a = $4; $$->a->b = $6;
        $$->body = $7;
    }
  | if_stmt
  | PARAM postfix ':' '[' list_items ']' ';' {
        $$ = ast_new(A, AST_PARAM, @$);
        $$->a = $2; $$->b = $5; $$->b->loc = loc_span(@4, @6);
    }
  | PARAM postfix ':' '[' list_items ']' '=' expr ';' {
        $$ = ast_new(A, AST_PARAM, @$);
        $$->a = $2; $$->b = $5; $$->b->loc = loc_span(@4, @6); $$->c = $8;
    }
  | IDENT '(' params ')' '=' expr ';' {
        $$ = $3; $$->kind = AST_DEF; $$->loc = @$;
        $$->name = $1; $$->name_loc = @1; $$->a = $6;
    }
  | IDENT '(' params ')' body         {
        $$ = $3; $$->kind = AST_DEF; $$->loc = @$;
        $$->name = $1; $$->name_loc = @1; $$->body = $5;
    }
  ;

// if = "if" expr body ( "else" ( if | body ) )?
if_stmt
  : IF expr body                      { $$ = ast_new(A, AST_IF, @$); $$->a = $2; $$->body = $3; }
  | IF expr body ELSE body            { $$ = ast_new(A, AST_IF, @$); $$->a = $2; $$->body = $3; $$->c = $5; }
  | IF expr body ELSE if_stmt         { $$ = ast_new(A, AST_IF, @$); $$->a = $2; $$->body = $3; $$->c = $5; }
  ;

// expr: || < && < == != < < <= > >= < + - < * / < unary - ! < postfix
expr
  : expr OR expr                      { $$ = mk_binary(ps, OP_OR, $1, $3, @$); }
  | expr AND expr                     { $$ = mk_binary(ps, OP_AND, $1, $3, @$); }
  | expr EQ expr                      { $$ = mk_binary(ps, OP_EQ, $1, $3, @$); }
  | expr NE expr                      { $$ = mk_binary(ps, OP_NE, $1, $3, @$); }
  | expr '<' expr                     { $$ = mk_binary(ps, OP_LT, $1, $3, @$); }
  | expr '>' expr                     { $$ = mk_binary(ps, OP_GT, $1, $3, @$); }
  | expr LE expr                      { $$ = mk_binary(ps, OP_LE, $1, $3, @$); }
  | expr GE expr                      { $$ = mk_binary(ps, OP_GE, $1, $3, @$); }
  | expr '+' expr                     { $$ = mk_binary(ps, OP_ADD, $1, $3, @$); }
  | expr '-' expr                     { $$ = mk_binary(ps, OP_SUB, $1, $3, @$); }
  | expr '*' expr                     { $$ = mk_binary(ps, OP_MUL, $1, $3, @$); }
  | expr '/' expr                     { $$ = mk_binary(ps, OP_DIV, $1, $3, @$); }
  | '-' expr %prec UNARY              { $$ = mk_negate(ps, $2, @$); }
  | '!' expr %prec UNARY              { $$ = ast_new(A, AST_UNARY, @$); $$->op = OP_NOT; $$->a = $2; }
  | postfix
  ;

// postfix = primary | NAME "(" args ")" | postfix "." NAME | postfix "[" expr "]"
//         | postfix "[" expr? ":" expr? "]"
postfix
  : primary
  | IDENT '(' args ')'                { $$ = $3; $$->loc = @$; $$->name = $1; $$->name_loc = @1; }
  | postfix '.' IDENT                 {
        $$ = ast_new(A, AST_MEMBER, @$);
        $$->a = $1; $$->name = $3; $$->name_loc = @3;
    }
  | postfix '[' expr ']'              { $$ = ast_new(A, AST_INDEX, @$); $$->a = $1; $$->b = $3; }
  | postfix '[' expr ':' expr ']'     { $$ = ast_new(A, AST_SLICE, @$); $$->a = $1; $$->b = $3; $$->c = $5; }
  | postfix '[' expr ':' ']'          { $$ = ast_new(A, AST_SLICE, @$); $$->a = $1; $$->b = $3; }
  | postfix '[' ':' expr ']'          { $$ = ast_new(A, AST_SLICE, @$); $$->a = $1; $$->c = $4; }
  | postfix '[' ':' ']'               { $$ = ast_new(A, AST_SLICE, @$); $$->a = $1; }
  ;

// primary = NUMBER UNIT? | NUMBER "%" | STRING | "true" | "false" | NAME | "[" list "]" | "(" expr ")"
primary
  : NUMBER                            { $$ = $1; }
  | NUMBER UNIT                       {
        $$ = $1; $$->kind = AST_QUANTITY; $$->unit = $2; $$->loc = @$;
    }
  | NUMBER '%'                        {
        $$ = $1; $$->kind = AST_QUANTITY; $$->unit = "%"; $$->loc = @$;
    }
  | STRING                            { $$ = $1; }
  | TRUE                              { $$ = ast_new(A, AST_BOOL, @$); $$->boolean = true; }
  | FALSE                             { $$ = ast_new(A, AST_BOOL, @$); $$->boolean = false; }
  | IDENT                             { $$ = ast_new(A, AST_IDENT, @$); $$->name = $1; $$->name_loc = @1; }
  | '[' list_items ']'                { $$ = $2; $$->loc = @$; }
  | '(' expr ')'                      { $$ = $2; }
  ;

list_items
  : %empty                            { $$ = ast_new(A, AST_LIST, @$); }
  | list_elems
  | list_elems ','
  ;

list_elems
  : expr                              { $$ = ast_new(A, AST_LIST, @$); ast_push(A, $$, $1); }
  | list_elems ',' expr               { $$ = $1; ast_push(A, $$, $3); }
  ;

// args = ( arg ( "," arg )* ","? )? ; arg = expr | NAME "=" expr
args
  : %empty                            { $$ = ast_new(A, AST_CALL, @$); }
  | arg_list
  | arg_list ','
  ;

arg_list
  : arg                               { $$ = ast_new(A, AST_CALL, @$); ast_push(A, $$, $1); }
  | arg_list ',' arg                  { $$ = $1; ast_push(A, $$, $3); }
  ;

arg
  : expr
  | IDENT '=' expr                    {
        $$ = ast_new(A, AST_NAMED_ARG, @$);
        $$->name = $1; $$->name_loc = @1; $$->a = $3;
    }
  ;

%%

static Ast *mk_binary(ParseState *ps, int op, Ast *l, Ast *r, Loc loc) {
    Ast *n = ast_new(A, AST_BINARY, loc);
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

// -NUMBER folds into a negative literal, so that settings see `min_lr = -1` as a number.
static Ast *mk_negate(ParseState *ps, Ast *x, Loc loc) {
    if (x->kind == AST_NUM || x->kind == AST_QUANTITY) {
        x->num = -x->num;
        x->inum = -x->inum;
        x->loc = loc;
        return x;
    }
    Ast *n = ast_new(A, AST_UNARY, loc);
    n->op = OP_SUB;
    n->a = x;
    return n;
}

static Ast *mk_block(ParseState *ps, Ast *body, const char *name, Loc name_loc,
                     const char *label, Loc label_loc, Loc loc) {
    (void)ps;
    body->kind = AST_BLOCK;
    body->name = name;
    body->name_loc = name_loc;
    body->label = label;
    if (label) body->label_loc = label_loc;
    body->loc = loc;
    return body;
}

// ---- the token filter between scanner and parser ----
// Turns a name written right after a number on the same line into a UNIT (`100 steps`), tracks
// open brackets (refusing more than FE_MAX_DEPTH) and remembers the last few tokens and the
// setting being written, for the error messages below.

static bool has_newline(const ParseState *ps, uint32_t from, uint32_t to) {
    for (uint32_t i = from; i < to && i < ps->len; i++)
        if (ps->text[i] == '\n') return true;
    return false;
}

static const char *tok_text(ParseState *ps, Loc loc) {
    uint32_t n = loc.len;
    if (loc.off >= ps->len) return "";
    if (n > ps->len - loc.off) n = ps->len - loc.off;
    if (n > 40) {
        n = 37;
        while (n > 0 && ((unsigned char)ps->text[loc.off + n] & 0xC0) == 0x80) n--;
        return arena_printf(A, "%.*s...", (int)n, ps->text + loc.off);
    }
    return arena_strndup(A, ps->text + loc.off, n);
}

static int fe_lex(FE_STYPE *lval, Loc *lloc, ParseState *ps) {
    int tok = 0;
    if (!ps->stopped) tok = fe_lx_lex(lval, lloc, ps->scanner);
    if (tok == 0) {
        lloc->file = ps->file;
        lloc->off = ps->len;
        lloc->len = 0;
    }
    if (tok == IDENT && ps->prev_tok[0] == NUMBER &&
        !has_newline(ps, ps->prev_loc[0].off + ps->prev_loc[0].len, lloc->off))
        tok = UNIT;
    if (tok == '(' || tok == '[' || tok == '{') {
        if (ps->depth >= FE_MAX_DEPTH) {
            diag_error(ps->d, *lloc, "brackets and blocks are nested more than %d levels deep",
                       FE_MAX_DEPTH);
            ps->stopped = true;
            tok = 0;
        } else {
            ps->open_loc[ps->depth++] = *lloc;
        }
    }
    ps->unmatched_close = false;
    if (tok == ')' || tok == ']' || tok == '}') {
        char open = tok == ')' ? '(' : tok == ']' ? '[' : '{';
        if (ps->depth > 0 && ps->text[ps->open_loc[ps->depth - 1].off] == open) ps->depth--;
        else ps->unmatched_close = true;   // closes nothing, or not what is open
    }
    ps->key_before = ps->key;
    if (tok == '=') {
        ps->key = ps->prev_tok[0] == IDENT || ps->prev_tok[0] == ARCH ? tok_text(ps, ps->prev_loc[0]) : NULL;
    } else if (tok == ';' || tok == '{' || tok == '}' || tok == RETURN) {
        ps->key = NULL;
    }
    ps->prev_tok[2] = ps->prev_tok[1];
    ps->prev_loc[2] = ps->prev_loc[1];
    ps->prev_tok[1] = ps->prev_tok[0];
    ps->prev_loc[1] = ps->prev_loc[0];
    ps->prev_tok[0] = tok;
    ps->prev_loc[0] = *lloc;
    ps->ntokens++;
    return tok;
}

// ---- syntax errors ----

#define S(c) YYTRANSLATE((int)(c))

static bool is_operator(yysymbol_kind_t k) {
    static const char ops[] = "+-*/<>.[(%";
    for (const char *c = ops; *c; c++)
        if (k == S(*c)) return true;
    return k == YYSYMBOL_OR || k == YYSYMBOL_AND || k == YYSYMBOL_EQ || k == YYSYMBOL_NE ||
           k == YYSYMBOL_LE || k == YYSYMBOL_GE || k == YYSYMBOL_UNIT || k == YYSYMBOL_YYerror;
}

// How a token kind reads in a message: `;` for symbols and reserved words, words for classes.
static const char *sym_display(ParseState *ps, yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_IDENT: return "a name";
    case YYSYMBOL_UNIT: return "a unit";
    case YYSYMBOL_NUMBER: return "a number";
    case YYSYMBOL_STRING: return "a string";
    default: break;
    }
    const char *n = yysymbol_name(k);
    size_t len = strlen(n);
    if (len >= 2 && (n[0] == '"' || n[0] == '\'')) return arena_printf(A, "`%.*s`", (int)len - 2, n + 1);
    return arena_printf(A, "`%s`", n);
}

// The lookahead as written: "name `foo`", "`;`", "end of file".
static const char *la_display(ParseState *ps, yysymbol_kind_t k, Loc loc) {
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_IDENT: return arena_printf(A, "name `%s`", tok_text(ps, loc));
    case YYSYMBOL_UNIT: return arena_printf(A, "`%s`", tok_text(ps, loc));
    case YYSYMBOL_NUMBER: return arena_printf(A, "number `%s`", tok_text(ps, loc));
    case YYSYMBOL_STRING: return arena_printf(A, "string %s", tok_text(ps, loc));
    default: return sym_display(ps, k);
    }
}

static bool is_reserved(yysymbol_kind_t k) {
    return k == YYSYMBOL_TRL || k == YYSYMBOL_IMPORT || k == YYSYMBOL_DEF || k == YYSYMBOL_ARCH ||
           k == YYSYMBOL_PARAM || k == YYSYMBOL_FOR || k == YYSYMBOL_IN || k == YYSYMBOL_IF ||
           k == YYSYMBOL_ELSE || k == YYSYMBOL_RETURN || k == YYSYMBOL_TRUE || k == YYSYMBOL_FALSE;
}

static Loc after(Loc l) {
    Loc r = {l.file, l.off + l.len, 0};
    return r;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, ParseState *ps) {
    if (ps->stopped) return 0;
    // a token the scanner already complained about needs no second message
    if (ps->ntokens - ps->lex_error_tok <= 2) return 0;
    yysymbol_kind_t la = yypcontext_token(ctx);
    Loc at = *yypcontext_location(ctx);
    yysymbol_kind_t exp[YYNTOKENS];
    int nexp = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (nexp < 0) nexp = 0;
    bool want[YYNTOKENS] = {false};
    for (int i = 0; i < nexp; i++) want[exp[i]] = true;
    Loc prev = ps->ntokens > 1 ? ps->prev_loc[1] : at;   // the token before the lookahead
    int prevtok = ps->prev_tok[1];
    ps->syntax_errors++;

    if (la == YYSYMBOL_YYEOF && ps->depth > 0) {
        Loc open = ps->open_loc[ps->depth - 1];
        const char *o = tok_text(ps, open);
        diag_error(ps->d, open, "syntax error: this `%s` is never closed (the file ends first)", o);
        diag_hint(ps->d, "add the matching `%s`", o[0] == '{' ? "}" : o[0] == '(' ? ")" : "]");
    } else if (want[S('=')] && la == S(':')) {
        // `rank: 16;`
        diag_error(ps->d, at, "syntax error: expected `=` after `%s`, not `:`", tok_text(ps, prev));
        diag_hint(ps->d, "a setting is written `%s = value;`", tok_text(ps, prev));
    } else if (want[S('=')] && la == YYSYMBOL_EQ) {
        diag_error(ps->d, at, "syntax error: `==` compares two values; a setting is written `%s = value;`",
                   tok_text(ps, prev));
    } else if (want[S(';')] && la == S('=') &&
               (prevtok == UNIT || prevtok == IDENT) && ps->key_before) {
        // `rank = 16 alpha = 32;`: the name before `=` starts the next setting
        diag_error(ps->d, after(ps->prev_loc[2]), "syntax error: expected `;` after the value of `%s`",
                   ps->key_before);
        diag_hint(ps->d, "every setting ends with `;`");
    } else if (want[S(';')] && la == S(',') && ps->key_before) {
        diag_error(ps->d, at, "syntax error: expected `;` after the value of `%s`, not `,`", ps->key_before);
        diag_hint(ps->d, "every setting ends with `;`");
    } else if (want[S(';')] && la != S(';') &&
               (la == YYSYMBOL_YYEOF || la == YYSYMBOL_IDENT || la == S('}') || is_reserved(la) ||
                has_newline(ps, prev.off + prev.len, at.off))) {
        if (ps->key_before) {
            diag_error(ps->d, after(prev), "syntax error: expected `;` after the value of `%s`", ps->key_before);
            diag_hint(ps->d, "every setting ends with `;`");
        } else {
            diag_error(ps->d, after(prev), "syntax error: expected `;` after `%s`", tok_text(ps, prev));
        }
    } else if ((la == YYSYMBOL_IMPORT || la == YYSYMBOL_TRL || la == YYSYMBOL_DEF || la == YYSYMBOL_ARCH) &&
               ps->depth > 0 && tok_text(ps, ps->open_loc[ps->depth - 1])[0] == '{') {
        diag_error(ps->d, at, "syntax error: `%s` is only allowed at the top level of a file", tok_text(ps, at));
    } else if (prevtok == '=' && ps->key_before && want[YYSYMBOL_NUMBER] && want[YYSYMBOL_IDENT] &&
               (la == S(';') || la == S('}') || la == YYSYMBOL_YYEOF)) {
        diag_error(ps->d, at, "syntax error: expected a value after `%s =`", ps->key_before);
    } else if ((la == YYSYMBOL_FOR || la == YYSYMBOL_IF || la == YYSYMBOL_RETURN || la == YYSYMBOL_PARAM) &&
               want[YYSYMBOL_IDENT]) {
        diag_error(ps->d, at, "syntax error: `%s` can only be used inside the body of a `def` or `arch`",
                   tok_text(ps, at));
    } else if (is_reserved(la) && want[YYSYMBOL_IDENT]) {
        diag_error(ps->d, at, "syntax error: `%s` is a reserved word and cannot be used as a name",
                   tok_text(ps, at));
    } else if ((la == S(';') || la == S('}')) && (want[S(')')] || want[S(']')]) && ps->depth > 0 &&
               tok_text(ps, ps->open_loc[ps->depth - 1])[0] != '{') {
        Loc open = ps->open_loc[ps->depth - 1];
        const char *o = tok_text(ps, open);
        diag_error(ps->d, at, "syntax error: unexpected %s: the `%s` before it is not closed", la_display(ps, la, at), o);
        diag_note(ps->d, open, "the `%s` opened here needs a matching `%s`", o, o[0] == '(' ? ")" : "]");
    } else if (ps->unmatched_close && ps->depth > 0 && (la == S('}') || la == S(')') || la == S(']'))) {
        Loc open = ps->open_loc[ps->depth - 1];
        diag_error(ps->d, at, "syntax error: this `%s` does not match the `%s` before it",
                   tok_text(ps, at), tok_text(ps, open));
        diag_note(ps->d, open, "the `%s` opened here is still open", tok_text(ps, open));
    } else if (ps->unmatched_close && (la == S('}') || la == S(')') || la == S(']'))) {
        diag_error(ps->d, at, "syntax error: this `%s` closes nothing", tok_text(ps, at));
        diag_hint(ps->d, "look for an extra `%s` or a missing `%s` above", tok_text(ps, at),
                  la == S('}') ? "{" : la == S(')') ? "(" : "[");
    } else if (la == S(';') && prevtok == '}') {
        diag_error(ps->d, at, "syntax error: unexpected `;` after `}`: a block ends at its `}`");
        diag_hint(ps->d, "remove the `;`");
    } else {
        // generic: unexpected X; expected A, B or C
        const char *list[8];
        int nl = 0;
        bool ops = false, many = false;
        int nops = 0;
        for (int i = 0; i < nexp; i++) nops += is_operator(exp[i]);
        bool value = want[YYSYMBOL_IDENT] && want[YYSYMBOL_NUMBER] && want[YYSYMBOL_STRING];
        if (value) list[nl++] = "a value";
        for (int i = 0; i < nexp; i++) {
            if (value && (exp[i] == YYSYMBOL_IDENT || exp[i] == YYSYMBOL_NUMBER || exp[i] == YYSYMBOL_STRING ||
                          exp[i] == YYSYMBOL_TRUE || exp[i] == YYSYMBOL_FALSE || exp[i] == S('!') ||
                          exp[i] == S('-') || exp[i] == S('(') || exp[i] == S('[')))
                continue;
            if (nops >= 3 && is_operator(exp[i])) { ops = true; continue; }
            if (nl == 6) { many = true; break; }
            list[nl++] = sym_display(ps, exp[i]);
        }
        if (!many && nl == 0 && ops) list[nl++] = "an operator";
        char buf[256];
        size_t k = 0;
        buf[0] = 0;
        if (!many && nl > 0) {
            k += (size_t)snprintf(buf, sizeof buf, "; expected ");
            for (int i = 0; i < nl && k < sizeof buf; i++)
                k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i == 0 ? "" : i == nl - 1 ? " or " : ", ",
                                      list[i]);
        }
        if (prevtok != 0 && ps->ntokens > 1)
            diag_error(ps->d, at, "syntax error: unexpected %s after `%s`%s", la_display(ps, la, at),
                       tok_text(ps, prev), buf);
        else
            diag_error(ps->d, at, "syntax error: unexpected %s%s", la_display(ps, la, at), buf);
        if (prevtok == '%')
            diag_hint(ps->d, "`%%` marks a percentage (`3%%`); there is no remainder operator");
    }
    if (ps->syntax_errors >= FE_MAX_SYNTAX_ERRORS) {
        diag_hint(ps->d, "too many errors; stopping here");
        ps->stopped = true;
    }
    return 0;
}

static void fe_error(const Loc *loc, ParseState *ps, const char *msg) {
    if (ps->stopped) return;
    (void)msg;   // bison's "memory exhausted": its stack reached YYMAXDEPTH
    diag_error(ps->d, *loc, "this is nested too deeply for the parser (more than %d open constructs)",
               YYMAXDEPTH);
    diag_hint(ps->d, "split the expression with intermediate variables");
    ps->stopped = true;
}
