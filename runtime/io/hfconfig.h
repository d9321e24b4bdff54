// hfconfig.h — the model description read from a Hugging Face config.json (llama, qwen2, qwen3),
// with the defaults of transformers' config classes, and the check of a checkpoint's tensors
// (names and shapes) against it.
// Does not: read weights (safetensors.h), read the tokenizer (tokenizer.h), or support other
// architectures (an unknown model_type is an error listing the supported ones).
// An HfConfig owns no heap memory: copy it freely, nothing to free.
#ifndef TRLC_HFCONFIG_H
#define TRLC_HFCONFIG_H
#include "diag.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum HfArch { HF_ARCH_LLAMA = 1, HF_ARCH_QWEN2, HF_ARCH_QWEN3 } HfArch;

// torch_dtype / dtype of the checkpoint; UNSET when the file does not say.
typedef enum HfDtype { HF_DTYPE_UNSET = 0, HF_DTYPE_F32, HF_DTYPE_F16, HF_DTYPE_BF16 } HfDtype;

// rope_scaling / rope_parameters.rope_type. "default" (or absent/null) = plain RoPE.
typedef enum HfRopeType { HF_ROPE_DEFAULT = 0, HF_ROPE_LINEAR, HF_ROPE_LLAMA3 } HfRopeType;

typedef struct HfRope {
    HfRopeType type;
    double theta;                       // rope_theta (default 10000)
    double factor;                      // linear, llama3 (1 for default)
    double low_freq_factor;             // llama3
    double high_freq_factor;            // llama3
    int64_t original_max_position_embeddings;   // llama3
} HfRope;

#define HF_MAX_EOS 8
#define HF_PATH_MAX 4096

typedef struct HfConfig {
    HfArch arch;
    char model_type[16];                // "llama", "qwen2", "qwen3"
    int64_t vocab_size;                 // V
    int64_t hidden_size;                // H
    int64_t intermediate_size;          // I
    int64_t num_hidden_layers;          // L
    int64_t num_attention_heads;        // nh
    int64_t num_key_value_heads;        // nkv (default nh); nh % nkv == 0 is checked
    int64_t head_dim;                   // hd (llama/qwen2 default H/nh; qwen3 default 128)
    int64_t max_position_embeddings;
    double rms_norm_eps;
    HfRope rope;
    bool tie_word_embeddings;           // true: no lm_head.weight, the output reuses embed_tokens
    bool qkv_bias;                      // q/k/v_proj have .bias (qwen2 always; llama/qwen3 attention_bias)
    bool o_bias;                        // o_proj has .bias (llama/qwen3 attention_bias)
    bool mlp_bias;                      // gate/up/down have .bias (llama mlp_bias)
    bool qk_norm;                       // qwen3: self_attn.q_norm / k_norm [hd] before RoPE
    HfDtype dtype;                      // torch_dtype or dtype
    int64_t bos_token_id;               // -1 when absent/null
    int64_t pad_token_id;               // -1 when absent/null
    int64_t eos_token_ids[HF_MAX_EOS];  // eos_token_id (an int or a list)
    int n_eos;
    // qwen2/qwen3 `use_sliding_window`: layers >= max_window_layers attend only to the last
    // sliding_window positions. 0 = full causal attention in every layer (all released Qwen configs).
    int64_t sliding_window;
    int64_t max_window_layers;
    // quantization_config.quant_method of a pre-quantized checkpoint ("bitsandbytes", "gptq", ...);
    // "" when the weights are plain floats. Recorded only: the weights' check reports what it finds.
    char quant_method[32];
    char path[HF_PATH_MAX];             // the config.json that was read
    char dir[HF_PATH_MAX];              // its directory: where weights and tokenizer files live
} HfConfig;

// Reads `dir_or_file` (a model directory containing config.json, or a config.json path) into *out.
// Applies transformers' defaults for absent fields and validates every value (positive sizes,
// heads dividing, known hidden_act "silu", known rope type ...). Returns 0, or -1 after reporting
// `path: error: ...` (`path:line:col:` for JSON syntax errors) through d.
int hf_config_load(Diag *d, const char *dir_or_file, HfConfig *out);
// Same, from JSON text in memory; `name` is used in messages and out->path; out->dir is "." .
int hf_config_parse(Diag *d, const char *name, const char *json, size_t len, HfConfig *out);

const char *hf_arch_name(HfArch a);     // "llama", "qwen2", "qwen3"
const char *hf_dtype_name(HfDtype t);   // "float32", "float16", "bfloat16", "unset"

// RoPE inverse frequencies for the pairs of a head: inv_freq[i] = theta^(-2i/hd), i < hd/2, then
// scaled as rope.type says (linear: /factor; llama3: the smooth band of FORMATS.md).
void hf_rope_inv_freq(const HfConfig *c, double *inv_freq /* (hd/2) */);

// The weights a checkpoint of this config holds, in transformers' state_dict order (embed; per layer
// q/k/v/o (+bias), q_norm/k_norm, gate/up/down, input/post_attention_layernorm; norm; lm_head) —
// the order to pass to ex_write_hf_model for shards identical to save_pretrained's.
typedef struct HfTensorSpec {
    char name[96];                      // e.g. "model.layers.3.self_attn.q_proj.weight"
    int ndim;                           // 1 or 2
    int64_t shape[2];                   // Linear weights are [out, in]
} HfTensorSpec;

// Writes up to `cap` specs to out (out may be NULL when cap == 0) and returns how many there are.
long hf_expected_tensors(const HfConfig *c, HfTensorSpec *out, long cap);
// The number of parameters of the checkpoint (tied embeddings counted once), e.g. 596,049,920 for
// Qwen3-0.6B and 8,030,261,248 for Llama-3.1-8B, as their model cards say. INT64_MAX when it does
// not fit (hf_config_parse / _load refuse a config of more than 2^44 parameters).
int64_t hf_param_count(const HfConfig *c);

// Verifies that the checkpoint holds every expected tensor with the expected shape (and no
// lm_head.weight missing when untied). Reports each problem, e.g.
// `model.safetensors: error: tensor `model.layers.0.self_attn.q_proj.weight` has shape [16, 32],
// expected [32, 32] from config.json`; returns the number of problems (0 = consistent).
struct StCheckpoint;
int hf_config_check_checkpoint(Diag *d, const HfConfig *c, struct StCheckpoint *ck);

#endif
