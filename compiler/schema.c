// schema.c — the table of blocks and settings (see schema.h), its lookups, and the Markdown
// reference generated from it. Adding a setting is adding a line here (and reading it in check.c
// where the checked spec carries it).
// Not here: validation itself (check.c).
#include "schema.h"
#include <string.h>

#define END {0}
#define REQ SF_REQUIRED
#define GT(x) .flags = SF_LO | SF_LO_OPEN, .lo = (x)
#define GE(x) .flags = SF_LO, .lo = (x)
#define IN_CO(a, b) .flags = SF_LO | SF_HI | SF_HI_OPEN, .lo = (a), .hi = (b)   // [a, b)
#define IN_CC(a, b) .flags = SF_LO | SF_HI, .lo = (a), .hi = (b)                // [a, b]
#define IN_OC(a, b) .flags = SF_LO | SF_LO_OPEN | SF_HI, .lo = (a), .hi = (b)   // (a, b]
// Upper bounds on counts: far above any real use, low enough for the runtime's `int` fields.
#define DIM_MAX 1073741824.0     // 2^30, as config.json dimensions (hfconfig.c)
#define COUNT_MAX 1048576.0      // 2^20: batch, epochs, rank, ...
#define TOKENS_MAX 16777216.0    // 2^24 tokens in one sequence

static const char *const dtypes[] = {"fp32", "bf16", "fp16", NULL};
static const char *const quant_formats[] = {"nf4", "fp4", "int8", NULL};
static const char *const all_linear[] = {"all_linear", NULL};
static const char *const data_formats[] = {"text", "prompt_response", "messages", "preference",
                                           "prompt_answer", NULL};
// chat.c's names (chat_named); "qwen2.5" and "llama3.1" are written as strings (a dot ends a name)
static const char *const templates[] = {"chat", "plain", "chatml", "qwen2", "qwen2.5", "qwen3", "llama3", "llama3.1", NULL};
static const char *const on_error_actions[] = {"fail", "skip", NULL};   // DsConfig.skip_errors
static const char *const truncate_sides[] = {"right", "left", NULL};    // DsTruncate
static const char *const tokenizers[] = {"bytes", NULL};
static const char *const dpo_losses[] = {"sigmoid", "ipo", "hinge", NULL};
static const char *const grpo_losses[] = {"grpo", "dr_grpo", "dapo", NULL};
static const char *const scale_rewards[] = {"group", "batch", "none", NULL};
static const char *const reward_fns[] = {"exact_number", "regex", "exec", NULL};
static const char *const metrics[] = {"eval_loss", "eval_accuracy", "loss", "reward", NULL};
static const char *const on_nan_actions[] = {"stop", "skip", NULL};   // run

// --- model ---
static const SchemaKey config_keys[] = {
    {"vocab", SK_INT, REQ | SF_LO | SF_HI, .lo = 1, .hi = DIM_MAX, .doc = "vocabulary size"},
    {"hidden", SK_INT, REQ | SF_LO | SF_HI, .lo = 1, .hi = DIM_MAX, .doc = "hidden size (model width)"},
    {"layers", SK_INT, REQ | SF_LO | SF_HI, .lo = 1, .hi = COUNT_MAX, .doc = "number of decoder layers"},
    {"heads", SK_INT, REQ | SF_LO | SF_HI, .lo = 1, .hi = COUNT_MAX, .doc = "attention heads"},
    {"kv_heads", SK_INT, IN_CC(1, COUNT_MAX), .def = "heads", .doc = "key/value heads (grouped-query attention); divides `heads`"},
    {"head_dim", SK_INT, IN_CC(1, DIM_MAX), .def = "hidden / heads", .doc = "size of one attention head"},
    {"ffn", SK_INT, REQ | SF_LO | SF_HI, .lo = 1, .hi = DIM_MAX, .doc = "MLP inner size"},
    {"max_pos", SK_INT, IN_CC(1, TOKENS_MAX), .def = "2048", .doc = "longest sequence the positions cover"},
    {"eps", SK_NUM, GT(0), .def = "1e-6", .doc = "RMSNorm epsilon"},
    {"rope_theta", SK_NUM, GT(0), .def = "10000", .doc = "RoPE base"},
    {"tie", SK_BOOL, .def = "false", .doc = "the output projection reuses the embedding"},
    END};
static const SchemaBlock config_block = {"config", NULL, config_keys,
                                         "the shape of a model trained from scratch"};
static const SchemaBlock *const config_subs[] = {&config_block, NULL};

static const SchemaKey model_keys[] = {
    {"from", SK_PATH, .doc = "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)"},
    {"arch", SK_ENUM, .doc = "`llama`, `qwen2`, `qwen3` or an `arch` of an imported module; with `from`, config.json's model_type"},
    {"config", SK_BLOCK, .subs = config_subs, .doc = "dimensions of a model without checkpoint (needs `arch`)"},
    {"dtype", SK_ENUM, .enums = dtypes, .def = "bf16", .doc = "compute dtype of the weights"},
    {"freeze", SK_LAYERS, .doc = "frozen layers for partial fine-tuning: `layers[0:6]`"},
    {"init", SK_INIT, .def = "normal(std = 0.02)", .doc = "initialisation of a model without checkpoint"},
    {"tokenizer", SK_TEMPLATE, .enums = tokenizers, .doc = "`bytes` (256 bytes + specials) or a tokenizer.json path"},
    END};

// --- quantize, lora ---
static const SchemaKey quantize_keys[] = {
    {"format", SK_ENUM, REQ, .enums = quant_formats, .doc = "storage format of the frozen weights"},
    {"block", SK_INT, SF_LO | SF_HI | SF_POW2, .lo = 32, .hi = 4096, .def = "64",
     .doc = "weights per quantization block (a power of two)"},
    {"double_quant", SK_BOOL, .def = "false", .doc = "quantize the block scales too"},
    END};

static const SchemaKey lora_keys[] = {
    {"rank", SK_INT, IN_CC(1, COUNT_MAX), .def = "16", .doc = "adapter rank r"},
    {"alpha", SK_NUM, GT(0), .def = "2 × rank", .doc = "scale numerator: updates are scaled by alpha / r"},
    {"dropout", SK_NUM, IN_CO(0, 1), .def = "0", .doc = "dropout on the adapter input"},
    {"targets", SK_NAMES, .enums = all_linear, .def = "all_linear",
     .doc = "linear layers to adapt, by the last part of their path, or `all_linear`"},
    {"rslora", SK_BOOL, .def = "false", .doc = "rank-stabilised scaling alpha / sqrt(r)"},
    END};

// --- data ---
static const SchemaKey fields_keys[] = {
    {"text", SK_STR, .def = "text", .doc = "text: the document"},
    {"prompt", SK_STR, .def = "prompt, instruction, question", .doc = "prompt_response, preference, prompt_answer: the prompt"},
    {"input", SK_STR, .def = "input", .doc = "prompt_response: extra input appended to the prompt (Alpaca)"},
    {"response", SK_STR, .def = "response, completion, output, answer", .doc = "prompt_response: the target answer"},
    {"system", SK_STR, .def = "system", .doc = "prompt_response, preference, prompt_answer: the system prompt"},
    {"messages", SK_STR, .def = "messages, conversations", .doc = "messages: the list of {role, content}"},
    {"chosen", SK_STR, .def = "chosen", .doc = "preference: the preferred answer"},
    {"rejected", SK_STR, .def = "rejected", .doc = "preference: the other answer"},
    {"answer", SK_STR, .def = "answer", .doc = "prompt_answer: the reference answer rewards compare with"},
    END};
static const SchemaBlock fields_block = {"fields", NULL, fields_keys,
                                         "column names in the data file (default: the names listed, first found)"};
static const SchemaBlock *const fields_subs[] = {&fields_block, NULL};

static const SchemaKey data_keys[] = {
    {"from", SK_PATH, REQ, .doc = "the file: .jsonl, .json or .csv"},
    {"format", SK_ENUM, REQ, .enums = data_formats, .doc = "what one row holds"},
    {"fields", SK_BLOCK, .subs = fields_subs, .doc = "column mapping when the file's names differ"},
    {"template", SK_TEMPLATE, .enums = templates, .def = "chat",
     .doc = "`chat` (the model's own), a named one (`qwen2.5`, `llama3.1` in quotes: `\"qwen2.5\"`), "
            "or a format string `\"User: {prompt}\\nAssistant: \"`"},
    {"max_len", SK_TOKENS, IN_CC(1, TOKENS_MAX), .def = "2048 tokens", .doc = "longer rows are truncated"},
    {"truncate", SK_ENUM, .enums = truncate_sides, .def = "right",
     .doc = "which end of a longer row is cut: `right` keeps the first `max_len` tokens, `left` the last"},
    {"on_error", SK_ENUM, .enums = on_error_actions, .def = "fail",
     .doc = "a bad row: `fail` (exit naming file:line) or `skip` it (skipped rows are counted)"},
    {"pack", SK_BOOL, .def = "false", .doc = "pack several rows into one sequence"},
    {"shuffle", SK_BOOL, .def = "true", .doc = "shuffle rows every epoch"},
    END};

// --- objectives ---
static const SchemaKey sft_keys[] = {
    {"mask_prompt", SK_BOOL, .def = "true", .doc = "no loss on prompt tokens"},
    {"label_smoothing", SK_NUM, IN_CO(0, 1), .def = "0", .doc = "label smoothing of the cross-entropy"},
    END};
static const SchemaKey pretrain_keys[] = {
    {"label_smoothing", SK_NUM, IN_CO(0, 1), .def = "0", .doc = "label smoothing of the cross-entropy"},
    END};
static const SchemaKey dpo_keys[] = {
    {"beta", SK_NUM, GT(0), .def = "0.1", .doc = "strength of the KL penalty toward the reference"},
    {"loss", SK_ENUM, .enums = dpo_losses, .def = "sigmoid", .doc = "DPO loss variant"},
    {"label_smoothing", SK_NUM, IN_CO(0, 0.5), .def = "0", .doc = "conservative DPO: assumed label noise"},
    {"ref", SK_MODEL, .doc = "reference model; default: the policy with its adapters off"},
    END};
static const SchemaKey orpo_keys[] = {
    {"beta", SK_NUM, GT(0), .def = "0.1", .doc = "weight of the odds-ratio term"},
    END};
static const SchemaKey kd_keys[] = {
    {"teacher", SK_MODEL, REQ, .doc = "the model to distil from"},
    {"temperature", SK_NUM, GT(0), .def = "1.0", .doc = "softmax temperature of both distributions"},
    {"alpha", SK_NUM, IN_CC(0, 1), .def = "0.5", .doc = "weight of the distillation term vs. cross-entropy"},
    END};
static const SchemaKey reward_keys[] = {
    {"fn", SK_ENUM, REQ, .enums = reward_fns, .doc = "how the reward is computed"},
    {"field", SK_STR, .def = "\"answer\"", .doc = "exact_number: the data field holding the answer"},
    {"pattern", SK_STR, .doc = "regex: a PCRE2 pattern; reward 1 when the completion matches"},
    {"command", SK_STR, .doc = "exec: a command reading JSON lines on stdin, writing rewards"},
    {"weight", SK_NUM, .def = "1.0", .doc = "factor of this reward in the sum"},
    END};
static const SchemaBlock reward_block = {"reward", "NAME", reward_keys, "one reward function"};
static const SchemaBlock *const reward_subs[] = {&reward_block, NULL};
static const SchemaKey grpo_keys[] = {
    {"group", SK_INT, IN_CC(2, COUNT_MAX), .def = "8", .doc = "completions sampled per prompt"},
    {"max_new", SK_TOKENS, IN_CC(1, TOKENS_MAX), .def = "512 tokens", .doc = "longest completion"},
    {"temperature", SK_NUM, GT(0), .def = "1.0", .doc = "sampling temperature"},
    {"top_p", SK_NUM, IN_OC(0, 1), .def = "1.0", .doc = "nucleus sampling"},
    {"beta", SK_NUM, GE(0), .def = "0.04", .doc = "KL penalty toward the reference"},
    {"clip", SK_NUM, GT(0), .def = "0.2", .doc = "ratio clipping ε"},
    {"loss", SK_ENUM, .enums = grpo_losses, .def = "grpo", .doc = "loss normalisation variant"},
    {"scale_rewards", SK_ENUM, .enums = scale_rewards, .def = "group", .doc = "advantage scaling"},
    {"reward", SK_BLOCKS, REQ, .subs = reward_subs, .doc = "reward functions: `reward NAME { fn = ...; }`"},
    END};

static const SchemaBlock obj_sft = {"sft", NULL, sft_keys, "supervised fine-tuning"};
static const SchemaBlock obj_pretrain = {"pretrain", NULL, pretrain_keys, "next-token prediction on text"};
static const SchemaBlock obj_dpo = {"dpo", NULL, dpo_keys, "direct preference optimisation"};
static const SchemaBlock obj_orpo = {"orpo", NULL, orpo_keys, "odds-ratio preference optimisation (no reference)"};
static const SchemaBlock obj_kd = {"kd", NULL, kd_keys, "knowledge distillation from a teacher model"};
static const SchemaBlock obj_grpo = {"grpo", NULL, grpo_keys, "group relative policy optimisation"};
const SchemaBlock *const schema_objectives[] = {&obj_sft, &obj_pretrain, &obj_dpo, &obj_orpo,
                                                &obj_kd, &obj_grpo, NULL};

// --- train ---
static const SchemaKey adamw_keys[] = {
    {"lr", SK_NUM, REQ | SF_LO | SF_LO_OPEN, .lo = 0, .doc = "learning rate"},
    {"betas", SK_NUMS, IN_CO(0, 1), .count = 2, .def = "[0.9, 0.999]", .doc = "moment decay rates"},
    {"eps", SK_NUM, GT(0), .def = "1e-8", .doc = "denominator epsilon"},
    {"weight_decay", SK_NUM, GE(0), .def = "0", .doc = "decoupled weight decay"},
    END};
static const SchemaKey sgd_keys[] = {
    {"lr", SK_NUM, REQ | SF_LO | SF_LO_OPEN, .lo = 0, .doc = "learning rate"},
    {"momentum", SK_NUM, IN_CO(0, 1), .def = "0", .doc = "momentum"},
    {"weight_decay", SK_NUM, GE(0), .def = "0", .doc = "weight decay"},
    END};
static const SchemaBlock opt_adamw = {"adamw", NULL, adamw_keys, "AdamW"};
static const SchemaBlock opt_sgd = {"sgd", NULL, sgd_keys, "stochastic gradient descent"};
static const SchemaBlock *const optimizers[] = {&opt_adamw, &opt_sgd, NULL};

static const SchemaKey constant_keys[] = {   // constant and linear
    {"warmup", SK_RATIO_OR_STEPS, .def = "0", .doc = "linear warmup: a share of training (`3%`) or `N steps`"},
    END};
static const SchemaKey decay_keys[] = {      // cosine
    {"warmup", SK_RATIO_OR_STEPS, .def = "0", .doc = "linear warmup: a share of training (`3%`) or `N steps`"},
    {"min_lr", SK_NUM, GE(0), .def = "0", .doc = "the learning rate at the end (at most `lr`)"},
    END};
static const SchemaBlock sched_constant = {"constant", NULL, constant_keys, "constant after warmup"};
static const SchemaBlock sched_linear = {"linear", NULL, constant_keys, "linear decay to 0, as in transformers"};
static const SchemaBlock sched_cosine = {"cosine", NULL, decay_keys, "cosine decay to min_lr"};
static const SchemaBlock *const schedules[] = {&sched_constant, &sched_linear, &sched_cosine, NULL};

static const SchemaKey early_stop_keys[] = {
    {"metric", SK_ENUM, .enums = metrics, .def = "eval_loss", .doc = "the metric watched"},
    {"patience", SK_INT, REQ | SF_LO | SF_HI, .lo = 1, .hi = COUNT_MAX, .doc = "evaluations without improvement before stopping"},
    {"min_delta", SK_NUM, GE(0), .def = "0", .doc = "smallest change that counts as improvement"},
    END};
static const SchemaBlock early_stop_block = {"early_stop", NULL, early_stop_keys, "stop when a metric stalls"};
static const SchemaBlock *const early_stop_subs[] = {&early_stop_block, NULL};

static const SchemaKey train_keys[] = {
    {"optimizer", SK_CONSTRUCT, REQ, .subs = optimizers, .doc = "`adamw { ... }` or `sgd { ... }`"},
    {"schedule", SK_CONSTRUCT, .subs = schedules, .def = "constant",
     .doc = "learning-rate schedule: `constant`, `linear { ... }`, `cosine { ... }`"},
    {"batch", SK_INT, IN_CC(1, COUNT_MAX), .def = "1", .doc = "rows per micro-batch"},
    {"grad_accum", SK_INT, IN_CC(1, COUNT_MAX), .def = "1", .doc = "micro-batches per optimizer step"},
    {"epochs", SK_INT, IN_CC(1, COUNT_MAX), .def = "1", .doc = "passes over the training data (or `steps`)"},
    {"steps", SK_INT, GE(1), .doc = "optimizer steps (instead of `epochs`)"},
    {"clip_norm", SK_NUM, GT(0), .doc = "clip the global gradient norm"},
    {"precision", SK_ENUM, .enums = dtypes, .def = "bf16",
     .doc = "bf16: mixed precision (bf16 products, fp32 accumulation and master weights); fp16: fp32 for now"},
    {"recompute", SK_BOOL, .def = "false", .doc = "activation checkpointing"},
    {"eval_every", SK_STEPS, GE(1), .doc = "evaluate on `data eval` every `N steps` or `N epochs`"},
    {"save_every", SK_STEPS, GE(1), .doc = "save a checkpoint every `N steps` or `N epochs`"},
    {"log_every", SK_STEPS, GE(1), .def = "10 steps", .doc = "print and log metrics"},
    {"keep", SK_INT, IN_CC(1, COUNT_MAX), .doc = "checkpoints kept (older ones are deleted)"},
    {"early_stop", SK_BLOCK, .subs = early_stop_subs, .doc = "`early_stop { metric; patience; }`"},
    {"seed", SK_INT, GE(0), .def = "0", .doc = "random seed"},
    {"on_nan", SK_ENUM, .enums = on_nan_actions, .def = "stop",
     .doc = "a NaN/inf loss or gradient: `stop` the run (exit 3) or `skip` the update"},
    {"out", SK_STR, .def = "\"runs/<spec name>\"", .doc = "output directory"},
    END};

// --- top level ---
static const SchemaBlock blk_model = {"model", "NAME", model_keys,
                                      "A model: from a checkpoint (`from`) or from scratch (`arch` + `config`)"};
static const SchemaBlock blk_quantize = {"quantize", "MODEL", quantize_keys, "Quantized frozen weights (QLoRA)"};
static const SchemaBlock blk_lora = {"lora", "MODEL", lora_keys, "LoRA adapters on a model's linear layers"};
static const SchemaBlock blk_data = {"data", "ROLE", data_keys, "A dataset: `data train` (required), `data eval` (for `eval_every`, `early_stop`)"};
static const SchemaBlock blk_objective = {"objective", "KIND", NULL,
                                          "What is optimised; the label is the kind, one objective per spec (settings below)"};
static const SchemaBlock blk_train = {"train", NULL, train_keys, "Trainer settings"};
const SchemaBlock *const schema_blocks[] = {&blk_model, &blk_quantize, &blk_lora, &blk_data,
                                            &blk_objective, &blk_train, NULL};

const SchemaBlock *schema_block(const char *kind) {
    for (int i = 0; schema_blocks[i]; i++)
        if (!strcmp(schema_blocks[i]->name, kind)) return schema_blocks[i];
    return NULL;
}

const SchemaBlock *schema_objective(const char *kind) {
    for (int i = 0; schema_objectives[i]; i++)
        if (!strcmp(schema_objectives[i]->name, kind)) return schema_objectives[i];
    return NULL;
}

const SchemaKey *schema_key(const SchemaBlock *b, const char *name) {
    if (!b || !b->keys) return NULL;
    for (const SchemaKey *k = b->keys; k->name; k++)
        if (!strcmp(k->name, name)) return k;
    return NULL;
}

int schema_nkeys(const SchemaBlock *b) {
    int n = 0;
    if (b && b->keys)
        while (b->keys[n].name) n++;
    return n;
}

// "train.optimizer.lr": walks blocks, labels (model/lora/... names, objective kinds), nested
// blocks and constructs (any variant holding the next key).
const SchemaKey *schema_lookup_path(const char *path) {
    char buf[256];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return NULL;
    memcpy(buf, path, n + 1);
    char *save = NULL;
    char *part = strtok_r(buf, ".", &save);
    const SchemaBlock *b = part ? schema_block(part) : NULL;
    if (!b) return NULL;
    if (b->label) {
        part = strtok_r(NULL, ".", &save);
        if (!part) return NULL;
        if (!strcmp(b->name, "objective") && !(b = schema_objective(part))) return NULL;
    }
    const SchemaKey *k = NULL;
    while ((part = strtok_r(NULL, ".", &save))) {
        if (k) {   // descend into the previous key's sub-blocks
            if (!k->subs) return NULL;
            const SchemaKey *next = NULL;
            for (int i = 0; k->subs[i] && !next; i++) next = schema_key(k->subs[i], part);
            if (!next && k->type == SK_BLOCKS) {   // reward.NAME.key: skip the label
                if (!(part = strtok_r(NULL, ".", &save))) return NULL;
                next = schema_key(k->subs[0], part);
            }
            k = next;
        } else {
            k = schema_key(b, part);
        }
        if (!k) return NULL;
    }
    return k;
}

static const char *type_text(const SchemaKey *k) {
    switch (k->type) {
    case SK_INT: return "integer";
    case SK_NUM: return "number";
    case SK_BOOL: return "`true` / `false`";
    case SK_STR: return "string";
    case SK_PATH: return "path (string)";
    case SK_ENUM: return "name";
    case SK_TEMPLATE: return "name or string";
    case SK_STEPS: return "`N steps` / `N epochs`";
    case SK_TOKENS: return "`N tokens`";
    case SK_RATIO: return "`N%` or number in [0, 1]";
    case SK_RATIO_OR_STEPS: return "`N%`, number in [0, 1], or `N steps`";
    case SK_NUMS: return "list of numbers";
    case SK_NAMES: return "list of names";
    case SK_MODEL: return "model name";
    case SK_CONSTRUCT: return "construct";
    case SK_BLOCK: return "block";
    case SK_BLOCKS: return "blocks";
    case SK_INIT: return "`normal(std = X)` / `zeros`";
    case SK_LAYERS: return "`layers[i:j]`";
    }
    return "?";
}

static void range_text(const SchemaKey *k, char *buf, size_t cap) {
    buf[0] = 0;
    unsigned f = k->flags;
    if ((f & SF_LO) && (f & SF_HI))
        snprintf(buf, cap, "%s%.15g, %.15g%s", f & SF_LO_OPEN ? "(" : "[", k->lo, k->hi, f & SF_HI_OPEN ? ")" : "]");
    else if (f & SF_LO) snprintf(buf, cap, "%s %.15g", f & SF_LO_OPEN ? ">" : "≥", k->lo);
    else if (f & SF_HI) snprintf(buf, cap, "%s %.15g", f & SF_HI_OPEN ? "<" : "≤", k->hi);
    if (f & SF_POW2) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, ", power of two");
    }
}

static void write_keys(FILE *out, const SchemaBlock *b, const char *prefix);

static void write_key(FILE *out, const SchemaKey *k, const char *prefix) {
    char range[64];
    range_text(k, range, sizeof range);
    fprintf(out, "| `%s%s` | %s", prefix, k->name, type_text(k));
    if (k->type == SK_NUMS) fprintf(out, " (%d)", k->count);
    fprintf(out, " | ");
    if (k->enums && k->type != SK_NAMES) {
        for (int i = 0; k->enums[i]; i++) fprintf(out, "%s`%s`", i ? ", " : "", k->enums[i]);
    } else if (k->enums) {
        fprintf(out, "or `%s`", k->enums[0]);
    }
    if (k->type == SK_CONSTRUCT)
        for (int i = 0; k->subs[i]; i++) fprintf(out, "%s`%s`", i ? ", " : "", k->subs[i]->name);
    fprintf(out, "%s | %s | %s |\n", range, (k->flags & SF_REQUIRED) ? "required" : k->def ? k->def : "—",
            k->doc ? k->doc : "");
}

static void write_keys(FILE *out, const SchemaBlock *b, const char *prefix) {
    for (const SchemaKey *k = b->keys; k && k->name; k++) {
        write_key(out, k, prefix);
        if (k->type == SK_BLOCK || k->type == SK_BLOCKS) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s%s%s.", prefix, k->name, k->type == SK_BLOCKS ? " NAME" : "");
            write_keys(out, k->subs[0], sub);
        }
    }
}

static void write_table(FILE *out, const SchemaBlock *b) {
    fprintf(out, "| setting | type | values / range | default | meaning |\n|---|---|---|---|---|\n");
    write_keys(out, b, "");
    fputc('\n', out);
}

void schema_write_markdown(FILE *out) {
    fprintf(out,
            "## Blocks and settings\n\n"
            "Generated from compiler/schema.c by `trlc check --settings`; `trlc check SPEC` enforces it.\n\n"
            "- A spec starts with `trl 1;`. Then, in any order: at least one `model`, a `data train`, one\n"
            "  `objective` and a `train` block (`quantize`, `lora`, `data eval` are optional).\n"
            "- A block appears once per label (`lora policy` twice is an error). The label of `quantize`\n"
            "  and `lora` names a model; `objective`'s label is its kind.\n"
            "- The trained model (the policy) is the one model not named by `teacher` or `ref`, else the\n"
            "  one called `policy`. Only it may have `lora`; a quantized policy needs `lora` (QLoRA).\n"
            "- Paths are relative to the spec's directory. `model.from` is a directory with config.json\n"
            "  (its `model_type` gives the architecture and dimensions); `data.from` ends in .jsonl,\n"
            "  .json or .csv.\n"
            "- LoRA targets are the last part of a 2-D `.weight` parameter path of the architecture\n"
            "  (`model.layers[i].self_attn.q_proj.weight` → `q_proj`); `all_linear` is all of them but\n"
            "  `lm_head`.\n"
            "- Data formats per objective: sft: prompt_response, messages, text (its `data eval` may also\n"
            "  be prompt_answer: scored by the generated final number); pretrain: text; dpo, orpo:\n"
            "  preference; kd: text, prompt_response, messages; grpo: prompt_answer.\n"
            "- Data files are looked at before anything runs: the first row of a .jsonl or .json file (the\n"
            "  header of a .csv) must hold the columns of the format (`fields { }` names them) and the\n"
            "  column a reward's `field` reads; `pack` takes text, prompt_response or messages; messages\n"
            "  rows need .jsonl or .json (CSV values are strings).\n"
            "- `steps` and `epochs` exclude each other; `eval_every` and `early_stop` (on eval_loss) need\n"
            "  `data eval`; `min_lr` is at most the optimizer's `lr`.\n"
            "- Counts carry units: `200 steps`, `1 epochs`, `2048 tokens`; ratios are `3%%` or 0.03.\n"
            "- Settings are addressed by dotted paths (for `--set`): `train.optimizer.lr`,\n"
            "  `lora.policy.rank`, `objective.grpo.reward.correct.weight`.\n\n");
    for (int i = 0; schema_blocks[i]; i++) {
        const SchemaBlock *b = schema_blocks[i];
        fprintf(out, "### `%s%s%s`\n\n%s.\n\n", b->name, b->label ? " " : "", b->label ? b->label : "", b->doc);
        if (b->keys) write_table(out, b);
        if (!strcmp(b->name, "objective")) {
            for (int j = 0; schema_objectives[j]; j++) {
                const SchemaBlock *o = schema_objectives[j];
                fprintf(out, "#### `objective %s` — %s\n\n", o->name, o->doc);
                write_table(out, o);
            }
        }
        if (!strcmp(b->name, "train")) {
            const SchemaKey *opt = schema_key(b, "optimizer"), *sch = schema_key(b, "schedule");
            for (const SchemaKey *k = opt; k; k = k == opt ? sch : NULL)
                for (int j = 0; k->subs[j]; j++) {
                    fprintf(out, "#### `%s = %s { ... }` — %s\n\n", k->name, k->subs[j]->name, k->subs[j]->doc);
                    write_table(out, k->subs[j]);
                }
        }
    }
}
