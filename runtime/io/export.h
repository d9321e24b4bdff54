// export.h — writing what the Hugging Face ecosystem reads back: a PEFT LoRA adapter directory
// (adapter_config.json + adapter_model.safetensors, loadable by peft's PeftModel.from_pretrained)
// and a full / merged model directory (config.json + model.safetensors, sharded with an index past
// a size limit, + the base model's tokenizer files), loadable by transformers' from_pretrained.
// Takes plain float tensors; does not merge LoRA into weights (the trainer does), nor quantize.
// Directories are created when missing; each file is written to a temp name and renamed.
#ifndef TRLC_EXPORT_H
#define TRLC_EXPORT_H
#include "diag.h"
#include "hfconfig.h"
#include "safetensors.h"
#include <stdbool.h>
#include <stdint.h>

// One LoRA-adapted linear layer. The base weight `<module>.weight` is [out, in].
typedef struct ExLoraModule {
    const char *module;      // base-model name without ".weight", e.g. "model.layers.0.self_attn.q_proj"
    int64_t in, out;
    const float *A;          // (r, in)   → base_model.model.<module>.lora_A.weight
    const float *B;          // (out, r)  → base_model.model.<module>.lora_B.weight
} ExLoraModule;

typedef struct ExLoraConfig {
    const char *base_model_name_or_path;   // written as given (a hub id or a path)
    int r;
    double lora_alpha;
    double lora_dropout;
    bool use_rslora;                       // scaling alpha/sqrt(r) instead of alpha/r
    const char *const *target_modules;     // e.g. {"q_proj", "v_proj"}; NULL = derived from the modules
    int n_target_modules;
    StDtype dtype;                         // F32, BF16 or F16 for the saved tensors
} ExLoraConfig;

// Writes dir/adapter_config.json (sorted keys, peft 0.15's field set) and
// dir/adapter_model.safetensors ({"format": "pt"}). Returns 0, or -1 (reported).
int ex_write_peft_adapter(Diag *d, const char *dir, const ExLoraConfig *cfg, const ExLoraModule *mods,
                          int n_mods);
// The PEFT tensor name of a module's A (which = 'A') or B ('B') matrix into buf; -1 if too long.
int ex_peft_tensor_name(char *buf, size_t cap, const char *module, char which);

// A LoRA adapter read back from a PEFT directory (adapter_config.json + adapter_model.safetensors),
// e.g. to continue training it or to evaluate it. Everything is owned; free with ex_lora_adapter_free.
typedef struct ExLoraAdapter {
    ExLoraConfig cfg;        // r, lora_alpha, lora_dropout, use_rslora, base model, target_modules
    ExLoraModule *mods;      // n_mods modules in name order; A (r, in) and B (out, r) as float32
    int n_mods;
    char *base_model;        // storage behind cfg.base_model_name_or_path (NULL when null)
    char **targets;          // storage behind cfg.target_modules
} ExLoraAdapter;

// Reads and validates a PEFT LoRA adapter directory: peft_type LORA, no DoRA, no per-module
// rank/alpha patterns, no modules_to_save, bias "none"; every tensor named
// base_model.model.<module>.lora_{A,B}.weight with A [r, in] and B [out, r] in pairs. Returns 0, or
// -1 after reporting the file (and tensor or key) at fault; *out is then empty.
int ex_load_peft_adapter(Diag *d, const char *dir, ExLoraAdapter *out);
void ex_lora_adapter_free(ExLoraAdapter *a);

// One tensor of a full model, named as in the checkpoint ("model.layers.0.mlp.up_proj.weight").
typedef struct ExTensor {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;       // (shape...) row-major
} ExTensor;

typedef struct ExModelOptions {
    const char *base_dir;            // the base model directory: config.json and tokenizer files are
                                     // copied from it (config.json with torch_dtype/dtype updated)
    StDtype dtype;                   // F32, BF16 or F16
    uint64_t max_shard_bytes;        // 0 = 5 GB (transformers' default); split as transformers does
} ExModelOptions;

// Writes dir/config.json, dir/model.safetensors or dir/model-0000k-of-0000n.safetensors +
// dir/model.safetensors.index.json, and copies tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, generation_config.json, vocab.json, merges.txt, tokenizer.model,
// added_tokens.json, chat_template.jinja when the base directory has them. Returns 0 or -1.
int ex_write_hf_model(Diag *d, const char *dir, const ExModelOptions *opt, const ExTensor *tensors, int n);

// Streaming variant: a tensor with data == NULL is produced by fill(ctx, i, out) (numel floats of
// tensors[i]'s shape) just before its shard is written, so memory holds one shard at a time.
// fill returns 0, or non-zero after reporting (the export then stops with -1).
typedef int (*ExFillFn)(void *ctx, int i, float *out);
int ex_write_hf_model_stream(Diag *d, const char *dir, const ExModelOptions *opt, const ExTensor *tensors, int n,
                             ExFillFn fill, void *ctx);

// Merges a PEFT LoRA adapter into its base model, as peft's merge_and_unload does:
// W + s · B A with s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora), and writes the full
// model to out_dir (config.json, weights in `dtype` (ST_NDTYPES = the base's torch_dtype),
// tokenizer files). Every adapter module must match a base weight of shape [out, in].
int ex_merge_lora(Diag *d, const char *base_dir, const char *adapter_dir, const char *out_dir, StDtype dtype,
                  uint64_t max_shard_bytes);

#endif
