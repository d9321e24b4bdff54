// test_hfconfig.c — config.json of real models (Qwen3-0.6B, Qwen2.5-0.5B, Llama-3.2-1B, a
// transformers-5 style file), transformers' defaults for absent fields, the Llama-3 RoPE
// frequencies against transformers' own, and the expected-tensor check against checkpoints saved by
// transformers (tiny-qwen3 single file, tiny-llama in shards).
#include "hfconfig.h"
#include "safetensors.h"
#include "test.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char src[1024];

static int load(Diag *d, const char *rel, HfConfig *c) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", src, rel);
    return hf_config_load(d, p, c);
}

static void test_real(Diag *d) {
    HfConfig c;
    CHECK(load(d, "configs/qwen3-0.6b.json", &c) == 0);
    CHECK(c.arch == HF_ARCH_QWEN3 && !strcmp(c.model_type, "qwen3"));
    CHECK(c.vocab_size == 151936 && c.hidden_size == 1024 && c.intermediate_size == 3072);
    CHECK(c.num_hidden_layers == 28 && c.num_attention_heads == 16 && c.num_key_value_heads == 8);
    CHECK(c.head_dim == 128 && c.max_position_embeddings == 40960);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope.theta == 1e6 && c.rope.type == HF_ROPE_DEFAULT);
    CHECK(c.tie_word_embeddings && c.qk_norm && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
    CHECK(c.dtype == HF_DTYPE_BF16 && c.bos_token_id == 151643 && c.n_eos == 1 && c.eos_token_ids[0] == 151645);
    CHECK(c.pad_token_id == -1);
    CHECK(strstr(c.dir, "tests/io/configs") != NULL);
    long n = hf_expected_tensors(&c, NULL, 0);
    CHECK(n == 1 + 28 * 11 + 1);
    HfTensorSpec *s = calloc((size_t)n, sizeof *s);
    CHECK(hf_expected_tensors(&c, s, n) == n);
    CHECK(!strcmp(s[0].name, "model.embed_tokens.weight") && s[0].shape[0] == 151936 && s[0].shape[1] == 1024);
    CHECK(!strcmp(s[1].name, "model.layers.0.self_attn.q_proj.weight") && s[1].shape[0] == 2048 &&
          s[1].shape[1] == 1024);
    CHECK(!strcmp(s[4].name, "model.layers.0.self_attn.o_proj.weight") && s[4].shape[0] == 1024 &&
          s[4].shape[1] == 2048);
    CHECK(!strcmp(s[5].name, "model.layers.0.self_attn.q_norm.weight") && s[5].ndim == 1 && s[5].shape[0] == 128);
    CHECK(!strcmp(s[12].name, "model.layers.1.self_attn.q_proj.weight"));
    CHECK(!strcmp(s[n - 1].name, "model.norm.weight"));
    free(s);

    CHECK(load(d, "configs/qwen2.5-0.5b.json", &c) == 0);
    CHECK(c.arch == HF_ARCH_QWEN2 && c.hidden_size == 896 && c.intermediate_size == 4864);
    CHECK(c.num_hidden_layers == 24 && c.num_attention_heads == 14 && c.num_key_value_heads == 2);
    CHECK(c.head_dim == 64 && c.vocab_size == 151936 && c.rope.theta == 1e6 && c.tie_word_embeddings);
    CHECK(c.qkv_bias && !c.o_bias && !c.qk_norm && c.max_position_embeddings == 32768);
    n = hf_expected_tensors(&c, NULL, 0);
    CHECK(n == 1 + 24 * 12 + 1);
    s = calloc((size_t)n, sizeof *s);
    hf_expected_tensors(&c, s, n);
    CHECK(!strcmp(s[2].name, "model.layers.0.self_attn.q_proj.bias") && s[2].shape[0] == 896);
    CHECK(!strcmp(s[4].name, "model.layers.0.self_attn.k_proj.bias") && s[4].shape[0] == 128);
    free(s);

    CHECK(load(d, "configs/llama-3.2-1b.json", &c) == 0);
    CHECK(c.arch == HF_ARCH_LLAMA && c.hidden_size == 2048 && c.intermediate_size == 8192);
    CHECK(c.num_hidden_layers == 16 && c.num_attention_heads == 32 && c.num_key_value_heads == 8);
    CHECK(c.head_dim == 64 && c.vocab_size == 128256 && c.rope.theta == 500000.0 && c.rms_norm_eps == 1e-5);
    CHECK(c.rope.type == HF_ROPE_LLAMA3 && c.rope.factor == 32.0 && c.rope.low_freq_factor == 1.0);
    CHECK(c.rope.high_freq_factor == 4.0 && c.rope.original_max_position_embeddings == 8192);
    CHECK(c.tie_word_embeddings && !c.qkv_bias && !c.qk_norm && c.bos_token_id == 128000);
    CHECK(hf_expected_tensors(&c, NULL, 0) == 1 + 16 * 9 + 1);

    CHECK(load(d, "configs/qwen3-v5-style.json", &c) == 0);   // dtype, rope_parameters, eos list
    CHECK(c.dtype == HF_DTYPE_BF16 && c.rope.theta == 1e6 && c.rope.type == HF_ROPE_DEFAULT);
    CHECK(c.n_eos == 2 && c.eos_token_ids[0] == 151645 && c.eos_token_ids[1] == 151643);
    CHECK(!c.tie_word_embeddings && c.num_hidden_layers == 36 && c.intermediate_size == 12288);
    CHECK(hf_expected_tensors(&c, NULL, 0) == 1 + 36 * 11 + 2);
}

// Parameter counts of real checkpoints, as their model cards / safetensors metadata give them.
static void test_param_counts(Diag *d) {
    static const struct { const char *file; long long params; } m[] = {
        {"configs/qwen3-0.6b.json", 596049920LL},    {"configs/qwen3-8b.json", 8190735360LL},
        {"configs/qwen3-32b.json", 32762123264LL},   {"configs/qwen2.5-0.5b.json", 494032768LL},
        {"configs/qwen2.5-7b.json", 7615616512LL},   {"configs/llama-3.2-1b.json", 1235814400LL},
        {"configs/llama-3.1-8b.json", 8030261248LL},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        HfConfig c;
        CHECK(load(d, m[i].file, &c) == 0);
        CHECK_MSG(hf_param_count(&c) == m[i].params, "%s: %lld parameters, expected %lld", m[i].file,
                  (long long)hf_param_count(&c), m[i].params);
    }
    HfConfig c;
    CHECK(load(d, "configs/llama-3.1-8b.json", &c) == 0);
    CHECK(c.rope.type == HF_ROPE_LLAMA3 && c.rope.factor == 8.0 && c.head_dim == 128 && !c.tie_word_embeddings);
    CHECK(load(d, "configs/qwen2.5-7b.json", &c) == 0);
    CHECK(c.vocab_size == 152064 && c.qkv_bias && c.head_dim == 128 && c.sliding_window == 0);
}

// Values transformers 4.51 gives for the same files (see gen notes in the test's header).
static void test_defaults(Diag *d) {
    HfConfig c;
    CHECK(load(d, "configs/llama-defaults.json", &c) == 0);
    CHECK(c.vocab_size == 32000 && c.hidden_size == 4096 && c.intermediate_size == 11008);
    CHECK(c.num_hidden_layers == 32 && c.num_attention_heads == 32 && c.num_key_value_heads == 32);
    CHECK(c.head_dim == 128 && c.max_position_embeddings == 2048 && c.rms_norm_eps == 1e-6);
    CHECK(c.rope.theta == 10000.0 && !c.tie_word_embeddings && c.bos_token_id == 1 && c.n_eos == 1 &&
          c.eos_token_ids[0] == 2 && c.dtype == HF_DTYPE_UNSET);
    CHECK(load(d, "configs/qwen2-defaults.json", &c) == 0);
    CHECK(c.vocab_size == 151936 && c.hidden_size == 64 && c.intermediate_size == 22016);
    CHECK(c.num_attention_heads == 4 && c.num_key_value_heads == 4 && c.head_dim == 16);
    CHECK(c.max_position_embeddings == 32768 && !c.tie_word_embeddings && c.bos_token_id == -1 && c.n_eos == 0);
    CHECK(c.sliding_window == 0 && c.max_window_layers == 28);
    CHECK(load(d, "configs/qwen2-sliding.json", &c) == 0);
    CHECK(c.sliding_window == 131072 && c.max_window_layers == 21);
    CHECK(load(d, "configs/qwen2.5-0.5b.json", &c) == 0);   // sliding_window 32768 but unused
    CHECK(c.sliding_window == 0 && c.max_window_layers == 24);
    CHECK(load(d, "configs/qwen3-defaults.json", &c) == 0);
    CHECK(c.num_attention_heads == 32 && c.num_key_value_heads == 32 && c.head_dim == 128);
    CHECK(c.intermediate_size == 22016 && c.num_hidden_layers == 32);
    // From memory, with a directory-less name.
    const char *j = "{\"model_type\": \"llama\", \"hidden_size\": 48, \"num_attention_heads\": 6,"
                    " \"num_key_value_heads\": 2, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}";
    CHECK(hf_config_parse(d, "inline", j, strlen(j), &c) == 0);
    CHECK(c.head_dim == 8 && c.num_key_value_heads == 2 && c.rope.type == HF_ROPE_LINEAR && c.rope.factor == 2.0);
    double f[4];
    hf_rope_inv_freq(&c, f);
    CHECK_CLOSE(f[0], 0.5, 0, 1e-15);
    CHECK_CLOSE(f[1], 0.5 * pow(10000.0, -0.25), 0, 1e-15);
    CHECK(!strcmp(hf_arch_name(c.arch), "llama") && !strcmp(hf_dtype_name(HF_DTYPE_BF16), "bfloat16"));
}

static void test_rope_llama3(Diag *d) {
    HfConfig c;
    CHECK(load(d, "configs/llama-3.2-1b.json", &c) == 0);
    char p[2048];
    snprintf(p, sizeof p, "%s/../fixtures/rope_llama3.json", src);
    json_error_t err;
    json_t *r = json_load_file(p, 0, &err);
    CHECK(r != NULL);
    if (!r) return;
    json_t *inv = json_object_get(r, "inv_freq");
    CHECK(json_array_size(inv) == 32);
    double mine[32], v5[32], maxrel = 0;
    hf_rope_inv_freq(&c, mine);
    HfConfig c5;   // the same model as transformers 5 writes it: rope_parameters, dtype, eos list
    CHECK(load(d, "configs/llama-3.2-1b-v5-style.json", &c5) == 0);
    CHECK(c5.rope.type == HF_ROPE_LLAMA3 && c5.rope.theta == 500000.0 && c5.rope.factor == 32.0);
    CHECK(c5.dtype == HF_DTYPE_BF16 && c5.n_eos == 3 && c5.eos_token_ids[2] == 128009);
    hf_rope_inv_freq(&c5, v5);
    CHECK(memcmp(mine, v5, sizeof v5) == 0);
    for (size_t i = 0; i < 32 && i < json_array_size(inv); i++) {
        double want = json_real_value(json_array_get(inv, i));
        CHECK_CLOSE(mine[i], want, 0, 1e-6);   // transformers computes in float32
        double rel = fabs(mine[i] - want) / want;
        if (rel > maxrel) maxrel = rel;
    }
    printf("llama3 rope: 32 inv_freq vs transformers, max rel diff %.3g\n", maxrel);
    json_decref(r);
}

static void test_checkpoints(Diag *d) {
    const char *dirs[] = {"../fixtures/tiny-qwen3", "../fixtures/tiny-llama", "../fixtures/tiny-qwen2"};
    for (int i = 0; i < 3; i++) {
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", src, dirs[i]);
        HfConfig c;
        CHECK(hf_config_load(d, p, &c) == 0);
        StCheckpoint *ck = st_checkpoint_open(d, c.dir);
        CHECK(ck != NULL);
        if (ck) CHECK_MSG(hf_config_check_checkpoint(d, &c, ck) == 0, "%s", dirs[i]);
        CHECK(ck && (size_t)hf_expected_tensors(&c, NULL, 0) == st_checkpoint_count(ck));
        st_checkpoint_close(ck);
        if (i == 0) CHECK(c.tie_word_embeddings && c.vocab_size == 384 && c.head_dim == 8 && c.dtype == HF_DTYPE_F32);
        if (i == 1) CHECK(!c.tie_word_embeddings && c.rope.type == HF_ROPE_LLAMA3 && c.head_dim == 8);
        if (i == 2) CHECK(!c.tie_word_embeddings && c.qkv_bias && !c.o_bias && c.arch == HF_ARCH_QWEN2);
    }
}

// Real scale: a Qwen3-0.6B-shaped bf16 checkpoint (310 tensors, 1.2 GB) as a sparse file — the
// header written here, the data a hole — opened, validated and checked against its config.json.
static void test_real_scale(Diag *d, const char *bin) {
    HfConfig c;
    CHECK(load(d, "configs/qwen3-0.6b.json", &c) == 0);
    long n = hf_expected_tensors(&c, NULL, 0);
    HfTensorSpec *s = calloc((size_t)n, sizeof *s);
    hf_expected_tensors(&c, s, n);
    json_t *root = json_object();
    uint64_t off = 0;
    for (long i = 0; i < n; i++) {
        uint64_t numel = (uint64_t)s[i].shape[0] * (uint64_t)(s[i].ndim == 2 ? s[i].shape[1] : 1);
        json_t *e = json_pack("{s:s, s:[I], s:[I,I]}", "dtype", "BF16", "shape", (json_int_t)s[i].shape[0],
                              "data_offsets", (json_int_t)off, (json_int_t)(off + 2 * numel));
        if (s[i].ndim == 2) json_array_append_new(json_object_get(e, "shape"), json_integer(s[i].shape[1]));
        json_object_set_new(root, s[i].name, e);
        off += 2 * numel;
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    size_t hl = strlen(hdr);
    char path[2048];
    snprintf(path, sizeof path, "%s/qwen3-0.6b-sparse.safetensors", bin);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
        fwrite(len8, 1, 8, f);
        fwrite(hdr, 1, hl, f);
        fclose(f);
        CHECK(truncate(path, (off_t)(8 + hl + off)) == 0);
        StCheckpoint *ck = st_checkpoint_open(d, path);
        CHECK(ck && st_checkpoint_count(ck) == 310);
        if (ck) CHECK(hf_config_check_checkpoint(d, &c, ck) == 0);
        const StTensor *t = ck ? st_checkpoint_find(ck, "model.embed_tokens.weight") : NULL;
        CHECK(t && t->numel == 151936LL * 1024 && t->nbytes == 2 * 151936ULL * 1024);
        printf("real scale: Qwen3-0.6B shapes, %zu tensors, %llu bytes of bf16 data\n",
               ck ? st_checkpoint_count(ck) : 0, (unsigned long long)off);
        CHECK(off == 2ULL * 596049920ULL);   // Qwen3-0.6B: 596,049,920 parameters without lm_head (tied)
        st_checkpoint_close(ck);
        unlink(path);
    }
    free(hdr);
    json_decref(root);
    free(s);
}

int main(int argc, char **argv) {
    snprintf(src, sizeof src, "%s", argc > 1 ? argv[1] : ".");
    Diag d;
    diag_init(&d, stderr);
    test_real(&d);
    test_defaults(&d);
    test_param_counts(&d);
    test_rope_llama3(&d);
    test_checkpoints(&d);
    test_real_scale(&d, argc > 2 ? argv[2] : ".");
    CHECK(d.errors == 0);
    diag_free(&d);
    return test_done("io.hfconfig");
}
