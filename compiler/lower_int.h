// lower_int.h — what lower.c (the interpreter of graph code) and lower_prims.c (the built-in
// functions mapped to IR builders) share. Private to the lowering pass.
#ifndef TRLC_LOWER_INT_H
#define TRLC_LOWER_INT_H
#include "lower.h"

// A value during lowering. Numbers, booleans, strings, lists and records (cfg) are known at
// compile time; tensors are IR nodes; a path names parameters (`model.layers.3.self_attn`).
typedef enum LvKind {
    LV_NONE, LV_NUM, LV_BOOL, LV_STR, LV_TENSOR, LV_PATH, LV_RECORD, LV_LIST,
} LvKind;

typedef struct LField LField;
typedef struct LVal {
    LvKind kind;
    bool is_int;              // LV_NUM: an exact integer (inum)
    bool b;                   // LV_BOOL
    int64_t inum;             // LV_NUM when is_int
    double num;               // LV_NUM
    const char *s;            // LV_STR text, LV_PATH dotted path
    IrId t;                   // LV_TENSOR
    struct LVal *items;       // LV_LIST
    int nitems;
    const LField *fields;     // LV_RECORD
    int nfields;
} LVal;

struct LField {
    const char *name;
    LVal v;
};

typedef struct LVar {
    const char *name;
    LVal v;
} LVar;

// One def invocation (or the arch body). Variables are function-scoped as in Python: `for` and
// `if` bodies assign into the enclosing frame. parent: the arch frame for arch methods.
typedef struct LFrame LFrame;
struct LFrame {
    LVar *vars;
    int n, cap;
    LFrame *parent;
    const char *fn;           // def name, for call-stack notes
    Loc call;                 // where it was called
    LFrame *caller;           // the frame that called this one (notes)
};

// A string -> int hash table in arena memory (open addressing, linear probing).
typedef struct LowerNameTab {
    const char **key;         // cap slots, NULL: empty (keys: arena strings, NUL-terminated)
    int *val;
    size_t cap, n;
} LowerNameTab;

typedef struct Lower {
    Diag *d;
    Arena *a;
    IrGraph *g;
    LoadedSpec *spec;
    const LowerModel *m;
    LowerParam *params;
    int nparams, capparams;
    LowerNameTab param_index;  // parameter name -> its index in params (lookups stay O(1) per
                               // name: a model of thousands of layers lowered in linear time)
    LowerNameTab param_roots;  // every name and every prefix of it that ends before a '.'
    LFrame *top;              // innermost frame (for notes)
    int depth, max_depth;     // def nesting
    int eval_depth;           // C recursion guard for expressions and statements
    int64_t budget;           // evaluation steps left (guards huge unrolled loops)
    bool decl;                // running an arch body: `param` allowed
    bool noted;               // call-stack notes already printed for the current error
    bool prelude;             // stdlib/nn.trl was looked in for an unknown function
    bool implicit;            // the arch declares no `param`: parameters with the usual decoder
                              // names are declared on first use, shaped from cfg
    IrId seq;                 // packed rows: segment ids (B, T) every causal self-attention uses,
                              // or IR_NONE
} Lower;

// lower.c
void lower_err(Lower *L, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void lower_notes(Lower *L);                   // after an IR builder reported: the call stack
const char *lower_kind_name(LvKind k);        // "number", "tensor", ...
// The tensor a value stands for: tensors as they are, numbers as scalar constants, a path as
// its parameter (the path itself, or path.weight). what names the argument in messages.
int lower_as_tensor(Lower *L, const LVal *v, Loc loc, const char *what, IrId *out);
// The parameter node named `name` exactly, or IR_NONE.
IrId lower_param_id(Lower *L, const char *name);
int lower_as_int(Lower *L, const LVal *v, Loc loc, const char *what, int64_t *out);
int lower_as_num(Lower *L, const LVal *v, Loc loc, const char *what, double *out);
int lower_as_bool(Lower *L, const LVal *v, Loc loc, const char *what, bool *out);

// lower_prims.c. A call's arguments after binding to the built-in's parameter names: args[i]
// has kind LV_NONE when the optional parameter i was not given.
typedef struct LArgs {
    LVal *v;
    Loc *loc;                 // each argument's location (the call's when absent)
    int n;
    Loc call;                 // the whole call
    const char *fn;
} LArgs;

typedef int (*LPrimFn)(Lower *L, const LArgs *args, LVal *out);
#define LPRIM_MAX_PARAMS 7
typedef struct LPrim {
    const char *name;
    int nreq;                 // required parameters (positional or named)
    const char *params[LPRIM_MAX_PARAMS]; // parameter names (NULL-terminated when fewer)
    LPrimFn fn;
    int op;                   // IrOp for the generic unary/binary/reduction handlers
} LPrim;

const LPrim *lower_prim_find(const char *name);
int lower_prim_count(void);
const char *lower_prim_name(int i);

#endif
