// check.h — semantic checking of a loaded spec: every block, setting, unit, range, file and
// cross-reference (see compiler/schema.c for the table of settings), all errors in one run.
// The result, CheckedSpec, is what later passes read instead of the AST: resolved models (their
// architecture and dimensions), quantization, LoRA, datasets, the objective and trainer settings,
// each with its default filled in.
// Files: check.c (blocks, cross-block rules), check_items.c (settings against the schema),
// check_data.c (the first row of data files), check_override.c (`--set`).
// Not here: parsing and imports (load.h), shapes of graph code (lower.c), validating every data
// row or the weights (runtime/io, when the run opens them).
#ifndef TRLC_CHECK_H
#define TRLC_CHECK_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "hfconfig.h"
#include "load.h"

enum { CHECK_MAX_TARGETS = 32, CHECK_MAX_MODELS = 8, CHECK_MAX_DATA = 8, CHECK_MAX_REWARDS = 16 };

// Dimensions of a model, named as the stdlib's `cfg.*` (llama.trl, qwen2.trl, qwen3.trl). A
// spec's own arch may take more keys in `config { }`: they stay in the AST (numbers/booleans).
typedef struct CheckedConfig {
    int64_t vocab, hidden, layers, heads, kv_heads, head_dim, ffn, max_pos;
    double eps, rope_theta, init_std;
    bool tie;
} CheckedConfig;

typedef struct CheckedModel {
    const char *name;          // the block's label: "policy"
    Loc loc;                   // the block's label
    const char *arch;          // "llama" | "qwen2" | "qwen3" | an arch defined in an imported module
    const Ast *arch_ast;       // its AST_ARCH when a loaded module defines it, else NULL
    const char *from;          // model directory joined to the spec's directory, or NULL (from scratch)
    bool has_hf;               // hf holds config.json (with `from`)
    HfConfig hf;               // config.json as read by hf_config_load
    bool has_config;           // cfg is known (from config.json or a `config { }` block)
    CheckedConfig cfg;
    const char *dtype;         // "fp32" | "bf16" | "fp16"
    int freeze_lo, freeze_hi;  // layers [lo, hi) are frozen; lo == hi == 0: none
    const char *tokenizer;     // "bytes" or a tokenizer.json path (joined; for the policy with `from`,
                               // from/tokenizer.json); NULL for other models without `tokenizer`
    // quantize MODEL { }
    bool quantized;
    const char *quant_format;  // "nf4" | "fp4" | "int8"
    int quant_block;           // 64
    bool double_quant;
    // lora MODEL { }
    bool has_lora;
    int lora_rank;
    double lora_alpha, lora_dropout;
    bool lora_rslora;
    bool lora_all_linear;                      // targets = all_linear (every linear but lm_head)
    const char *lora_targets[CHECK_MAX_TARGETS];   // the names written (or, for all_linear, the arch's)
    int lora_ntargets;
    // role
    bool trainable;            // the policy (the one model whose weights or adapters train)
} CheckedModel;

typedef struct CheckedData {
    const char *name;          // "train", "eval"
    Loc loc;
    const char *from;          // joined to the spec's directory
    const char *format;        // "text" | "prompt_response" | "messages" | "preference" | "prompt_answer"
    // column names as written in `fields { }`; NULL: not written (the dataset reader's defaults,
    // DsFields in runtime/io/dataset.h, apply)
    const char *f_text, *f_prompt, *f_input, *f_response, *f_system, *f_messages, *f_chosen, *f_rejected, *f_answer;
    const char *template_kind; // "chat" | "plain" | a chat.c name ("chatml", "qwen2.5", "llama3.1", ...,
                               // also when written as a string) | "string" (a format string)
    const char *template_str;  // the format string when template_kind is "string"
    int64_t max_len;           // tokens
    bool pack, shuffle;
    bool skip_errors;          // on_error = skip: bad rows are skipped and counted (default: fail)
    bool truncate_left;        // truncate = left: keep the last max_len tokens (default: right)
} CheckedData;

typedef struct CheckedReward {
    const char *name;
    Loc loc;
    const char *fn;            // "exact_number" | "regex" | "exec"
    const char *field, *pattern, *command;
    double weight;
} CheckedReward;

typedef struct CheckedObjective {
    const char *kind;          // "sft" | "pretrain" | "dpo" | "orpo" | "kd" | "grpo"
    Loc loc;
    bool mask_prompt;          // sft
    double label_smoothing;    // sft, pretrain, dpo
    double beta;               // dpo, orpo, grpo
    const char *loss;          // dpo: sigmoid|ipo|hinge; grpo: grpo|dr_grpo|dapo
    int ref;                   // dpo: index into models, or -1 (the policy without adapters)
    int teacher;               // kd: index into models, or -1
    double temperature;        // kd, grpo
    double alpha;              // kd
    int group;                 // grpo
    int64_t max_new;           // grpo, tokens
    double top_p, clip;        // grpo
    const char *scale_rewards; // grpo: group|batch|none
    CheckedReward rewards[CHECK_MAX_REWARDS];
    int nrewards;
} CheckedObjective;

// A count of steps or epochs (`200 steps`, `1 epochs`); count == 0: not set.
typedef struct CheckedEvery {
    int64_t count;
    bool epochs;               // the unit is epochs, else steps
} CheckedEvery;

typedef struct CheckedTrain {
    const char *optimizer;     // "adamw" | "sgd"
    double lr, beta1, beta2, eps, weight_decay, momentum;
    const char *schedule;      // "constant" | "linear" | "cosine"
    double warmup_ratio;       // share of the total steps (0 when warmup_steps is used)
    int64_t warmup_steps;
    double min_lr;
    int64_t batch, grad_accum, epochs, steps;   // steps > 0: train for steps, else for epochs
    double clip_norm;          // 0: no clipping
    const char *precision;     // "fp32" | "bf16" | "fp16"
    bool recompute;
    CheckedEvery eval_every, save_every, log_every;
    int64_t keep;              // 0: keep all
    bool early_stop;
    const char *es_metric;
    int64_t es_patience;
    double es_min_delta;
    int64_t seed;
    const char *out;           // joined to the spec's directory
} CheckedTrain;

typedef struct CheckedSpec {
    const char *path;          // the main spec file
    const char *dir;           // its directory ("." when none)
    const Ast *spec;           // the main spec's AST
    CheckedModel models[CHECK_MAX_MODELS];
    int nmodels;
    int policy;                // index of the trained model
    CheckedData data[CHECK_MAX_DATA];
    int ndata;
    int train_data, eval_data; // indexes into data, -1 when absent
    CheckedObjective objective;
    CheckedTrain train;
} CheckedSpec;

// Checks everything and fills *out (strings live in `a` or in the AST). Reports every problem
// through d. Returns 0 when the spec is valid, -1 otherwise (then *out is incomplete: don't use it).
int check_spec(Diag *d, Arena *a, const LoadedSpec *spec, CheckedSpec *out);

// Replaces (or adds) one setting before checking, as `--set train.optimizer.lr=1e-4` will: `path`
// is a dotted settings path (`lora.policy.rank`, `objective.grpo.reward.correct.weight`,
// `train.early_stop.patience`), `value` an expression the caller parsed (its Loc is where errors
// about the value point). Missing blocks and constructs are created (`train.optimizer.lr` on a
// bare `optimizer = adamw;` makes it `adamw { lr = ...; }`). Returns 0, or -1 after reporting an
// unknown path (with did-you-mean). Call before check_spec, on the main spec's root.
int check_override(Diag *d, Arena *a, Ast *spec, const char *path, Ast *value);

// The command-line form, `KEY=VALUE` as given to `--set`: VALUE is parsed as spec text (a source
// named `--set` holding `NAME = VALUE;`, NAME the last part of KEY, so that errors show what was
// written) and applied with check_override. Returns 0, or -1 after reporting.
int check_override_arg(Diag *d, Arena *a, Ast *spec, const char *set);

// The linear-layer names LoRA can target in an architecture: from the arch's 2-D `.weight` params
// (embeddings excluded; params under any `if` count), or a built-in list for llama/qwen2/qwen3
// when arch is NULL or declares none. (For a model, check_spec also drops `lm_head` when tied.)
int check_linear_names(const Ast *arch, const char **names, int cap);

#endif
