// check_int.h — what the checker's files share (check.c: blocks and cross-block rules;
// check_items.c: one block's settings against the schema, and the small helpers over values;
// check_data.c: the columns of data files).
// Internal to compiler/check*.c; other passes read CheckedSpec (check.h).
#ifndef TRLC_CHECK_INT_H
#define TRLC_CHECK_INT_H
#include "check.h"
#include "schema.h"

enum { MAX_ARCHS = 32, MAX_DEPTH = 16 };

typedef struct Ck {
    Diag *d;
    Arena *a;
    CheckedSpec *out;
    const char *dir;                    // the spec's directory
    const Ast *blocks[64];              // top-level blocks (valid kind and label)
    int nblocks;
    const Ast *models[CHECK_MAX_MODELS];
    int nmodels;
    const char *model_names[CHECK_MAX_MODELS + 1];
    const Ast *archs[MAX_ARCHS];        // AST_ARCH of the main spec and of every loaded module
    int narchs;
    // blocks reported as misspelt (`modle policy`, `objective sfft`): taken as present by the
    // later rules, so that one typo gives one error and not a cascade
    const char *ghost_kind[16], *ghost_label[16];
    int nghosts;
    bool dir_ok[CHECK_MAX_MODELS];      // the model's `from` directory and config.json were fine
    bool data_clean[CHECK_MAX_DATA];    // the data block's settings had no error
    const SchemaKey *construct;         // the construct setting whose variant is being checked
    bool config_open;                   // checking a model whose arch is the spec's own: its
                                        // `config { }` may hold any numeric or boolean key
} Ck;

// --- values (check_items.c) ---
bool ck_get_number(const Ast *v, double *x, bool *is_int, int64_t *i);   // 42, -1.5 (folded or unary)
bool ck_is_unit(const Ast *v, const char *unit);           // a quantity in `unit` (singular too)
const char *ck_src_text(Ck *c, const Ast *v);               // the source text of v, bounded
const char *ck_describe(Ck *c, const Ast *v);               // "a string", "`2.5`" for "got ..."
const char *ck_join_names(Ck *c, const char *const *names, int n);   // "a, b, c"
int ck_count_names(const char *const *names);               // of a NULL-terminated list
bool ck_in_enum(const char *const *enums, const char *s);
void ck_enum_error(Ck *c, const char *what, const char *const *enums, const Ast *v, const char *word);
Loc ck_head_loc(const Ast *blk);                            // `lora policy`
const char *ck_block_title(Ck *c, const Ast *blk);          // "`lora policy`", "`adamw { }`"

// --- settings of a block or construct: the first `key = value`, or the default ---
const Ast *ck_setting(const Ast *blk, const char *key);     // its value, or NULL
const Ast *ck_setting_item(const Ast *blk, const char *key);   // the AST_ASSIGN, or NULL
const Ast *ck_sub_block(const Ast *blk, const char *name);
double ck_num_or(const Ast *blk, const char *key, double def);
int64_t ck_int_or(const Ast *blk, const char *key, int64_t def);
bool ck_bool_or(const Ast *blk, const char *key, bool def);
const char *ck_name_or(const Ast *blk, const char *key, const char *def);
const char *ck_str_or(const Ast *blk, const char *key, const char *def);

// --- the spec ---
const char *ck_join_path(Ck *c, const char *rel);           // relative to the spec's directory
int ck_model_index(Ck *c, const char *name);                // -1 when no such model
void ck_add_ghost(Ck *c, const char *kind, const char *label);
bool ck_ghost(Ck *c, const char *kind, const char *label);

// The first row (or CSV header) of a data file holds the columns its format needs (check_data.c).
void ck_check_data_columns(Ck *c, const Ast *blk, const CheckedData *dt);
// The column an `fn = exact_number` reward names in `field = "..."` is in the first row of the
// data (reward: the `reward NAME { }` block; blk, dt: the data block and its checked values).
void ck_check_reward_field(Ck *c, const Ast *reward, const Ast *blk, const CheckedData *dt);
// The dataset's chat template can be built (named, format string, or the policy's own).
void ck_check_template(Ck *c, const Ast *blk, const CheckedData *dt, const CheckedModel *policy);

// Checks the items of one block (or construct) against sb: unknown keys (did-you-mean), kinds,
// duplicates, each value's type/unit/range/enum, missing required keys.
void ck_check_items(Ck *c, const Ast *blk, const SchemaBlock *sb, int depth);

#endif
