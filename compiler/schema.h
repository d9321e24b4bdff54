// schema.h — the table of what a spec may say: every top-level block, the settings each accepts,
// their types, units, ranges, enum values, defaults and a one-line description. check.c validates
// a spec against it; docs/settings.md is written from it (`schema_write_markdown`).
// Not here: cross-block rules (a `lora` naming a missing model, a teacher that is the policy, LoRA
// targets against an architecture ...): those are check.c's.
#ifndef TRLC_SCHEMA_H
#define TRLC_SCHEMA_H
#include <stdbool.h>
#include <stdio.h>

typedef enum SchemaType {
    SK_INT,        // an integer: 8
    SK_NUM,        // a number: 2e-4, 0.9, 3
    SK_BOOL,       // true | false
    SK_STR,        // "text"
    SK_PATH,       // "relative/path" (relative to the spec's directory; existence checked by check.c)
    SK_ENUM,       // a bare name from `enums`: bf16
    SK_TEMPLATE,   // chat | plain | "User: {prompt}\nAssistant: "
    SK_STEPS,      // a count with a unit: `200 steps` or `2 epochs`
    SK_TOKENS,     // a count of tokens: `2048 tokens`
    SK_RATIO,      // `3%` or a plain number in [0, 1]; SK_RATIO_OR_STEPS also accepts `N steps`
    SK_RATIO_OR_STEPS,
    SK_NUMS,       // a list of `count` numbers: [0.9, 0.999]
    SK_NAMES,      // a list of bare names, or one name from `enums`: [q_proj, v_proj] | all_linear
    SK_MODEL,      // the name of a model block: big
    SK_CONSTRUCT,  // one of `subs` as `name { settings }` or a bare `name`: adamw { lr = 2e-4; }
    SK_BLOCK,      // a nested block without label: config { ... }  (`subs[0]` lists its settings)
    SK_BLOCKS,     // nested blocks with a label, repeatable: reward correct { ... }
    SK_INIT,       // normal(std = 0.02) | zeros
    SK_LAYERS,     // layers[0:6] | layers[3]
} SchemaType;

enum {
    SF_REQUIRED = 1 << 0,   // must be present
    SF_LO = 1 << 1,         // has a lower bound `lo`
    SF_LO_OPEN = 1 << 2,    // ... which is exclusive
    SF_HI = 1 << 3,         // has an upper bound `hi`
    SF_HI_OPEN = 1 << 4,    // ... which is exclusive
    SF_POW2 = 1 << 5,       // a power of two
};

typedef struct SchemaBlock SchemaBlock;

typedef struct SchemaKey {
    const char *name;
    SchemaType type;
    unsigned flags;                 // SF_*
    double lo, hi;                  // bounds (numbers, counts, list elements)
    int count;                      // SK_NUMS: the list's length
    const char *const *enums;       // SK_ENUM, SK_NAMES (the single-name form): NULL-terminated
    const SchemaBlock *const *subs; // SK_CONSTRUCT: variants; SK_BLOCK/SK_BLOCKS: subs[0]; NULL-terminated
    const char *def;                // the default, as written in docs ("16", "bf16"), or NULL
    const char *doc;                // one line, for docs/settings.md and hints
} SchemaKey;

struct SchemaBlock {
    const char *name;               // "model", "adamw", "config", "sft" (objective kinds)
    const char *label;              // what the label names ("NAME", "MODEL") or NULL when none
    const SchemaKey *keys;          // NULL-terminated by a key with name == NULL
    const char *doc;
};

// The top-level block kinds, in the order docs list them. NULL-terminated.
extern const SchemaBlock *const schema_blocks[];
// Objective kinds (`objective sft { ... }`): one SchemaBlock per kind. NULL-terminated.
extern const SchemaBlock *const schema_objectives[];

const SchemaBlock *schema_block(const char *kind);          // top-level kind or NULL
const SchemaBlock *schema_objective(const char *kind);      // objective kind or NULL
const SchemaKey *schema_key(const SchemaBlock *b, const char *name);
int schema_nkeys(const SchemaBlock *b);

// Resolves a dotted settings path as `--set` writes it: "train.optimizer.lr",
// "lora.policy.rank", "objective.grpo.temperature". Returns the key or NULL.
const SchemaKey *schema_lookup_path(const char *path);

// The "blocks and settings" reference (Markdown), generated from the table.
void schema_write_markdown(FILE *out);

#endif
