// test_lower_hf.c — the stdlib architectures against config.json: for llama (plain, with
// attention_bias and mlp_bias, tied, llama3 rope scaling), qwen2 (untied, tied) and qwen3 (plain,
// attention_bias), the parameters lowering declares must be exactly the tensors a checkpoint of
// that config holds (runtime/io's hf_expected_tensors: names and shapes), the llama3 scaling must
// reach the rope nodes, and linear rope scaling is refused with a message.
#include "hfconfig.h"
#include "lower.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

typedef struct HfCase {
    const char *what;
    const char *json;
} HfCase;

#define DIMS                                                                                     \
    "\"vocab_size\": 96, \"hidden_size\": 32, \"intermediate_size\": 40, \"num_hidden_layers\": 3, " \
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"max_position_embeddings\": 128, "     \
    "\"rms_norm_eps\": 1e-5, \"hidden_act\": \"silu\""

static const HfCase cases[] = {
    {"llama", "{\"model_type\": \"llama\", " DIMS ", \"rope_theta\": 500000.0}"},
    {"llama biases", "{\"model_type\": \"llama\", " DIMS ", \"attention_bias\": true, \"mlp_bias\": true}"},
    {"llama tied", "{\"model_type\": \"llama\", " DIMS ", \"tie_word_embeddings\": true}"},
    {"llama3 rope", "{\"model_type\": \"llama\", " DIMS ", \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": "
                    "\"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                    "\"original_max_position_embeddings\": 8192}}"},
    {"qwen2", "{\"model_type\": \"qwen2\", " DIMS ", \"rope_theta\": 1000000.0}"},
    {"qwen2 tied", "{\"model_type\": \"qwen2\", " DIMS ", \"tie_word_embeddings\": true}"},
    {"qwen3", "{\"model_type\": \"qwen3\", " DIMS ", \"head_dim\": 16, \"tie_word_embeddings\": true}"},
    {"qwen3 attention_bias", "{\"model_type\": \"qwen3\", " DIMS ", \"head_dim\": 16, \"attention_bias\": true}"},
};

static CheckedConfig cfg_of(const HfConfig *hf) {
    CheckedConfig c = {.vocab = hf->vocab_size, .hidden = hf->hidden_size, .layers = hf->num_hidden_layers,
                       .heads = hf->num_attention_heads, .kv_heads = hf->num_key_value_heads, .head_dim = hf->head_dim,
                       .ffn = hf->intermediate_size, .max_pos = hf->max_position_embeddings, .eps = hf->rms_norm_eps,
                       .rope_theta = hf->rope.theta, .init_std = 0.02, .tie = hf->tie_word_embeddings};
    return c;
}

// Lowers the config; returns the status (0 ok). Diagnostics go to `out`.
static int lower_hf(const HfConfig *hf, FILE *out, void (*check)(const HfConfig *, IrGraph *, LowerResult *)) {
    Diag d;
    diag_init(&d, out);
    Arena a = {0};
    LoadedSpec spec = {0};
    const char *text = "trl 1;\n";
    int rc = load_spec_text(&d, &a, "test.trl", text, strlen(text), &spec);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    LowerModel m = {.name = "m", .arch = hf_arch_name(hf->arch), .cfg = cfg_of(hf), .hf = hf};
    LowerOptions o;
    lower_options_init(&o);
    o.objective = "sft";
    LowerResult res;
    if (rc == 0) rc = lower_graph(&d, &a, &spec, &m, &o, &g, &res);
    if (rc == 0 && check) check(hf, &g, &res);
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
    return rc;
}

static void check_params(const HfConfig *hf, IrGraph *g, LowerResult *res) {
    long n = hf_expected_tensors(hf, NULL, 0);
    HfTensorSpec *want = calloc((size_t)n, sizeof *want);
    hf_expected_tensors(hf, want, n);
    CHECK_MSG(res->nparams == n, "%s: %d params declared, the checkpoint holds %ld", hf->model_type, res->nparams, n);
    for (long i = 0; i < n; i++) {
        IrId id = ir_find(g, want[i].name);
        CHECK_MSG(id != IR_NONE, "%s: `%s` is not declared", hf->model_type, want[i].name);
        if (id == IR_NONE) continue;
        const IrNode *p = ir_node(g, id);
        bool same = p->op == IR_PARAM && p->shape.rank == want[i].ndim;
        for (int k = 0; same && k < want[i].ndim; k++) same = ir_dim_eq(p->shape.d[k], ir_dim(want[i].shape[k]));
        char buf[64];
        CHECK_MSG(same, "%s: `%s` has shape %s, the checkpoint [%lld, %lld]", hf->model_type, want[i].name,
                  ir_shape_str(&p->shape, buf, sizeof buf), (long long)want[i].shape[0],
                  (long long)(want[i].ndim > 1 ? want[i].shape[1] : 0));
    }
    // the rope nodes carry the config's base and llama3 scaling
    int nrope = 0;
    for (int i = 0; i < g->n; i++) {
        if (g->nodes[i].op != IR_ROPE) continue;
        nrope++;
        const IrRope *r = &g->nodes[i].a.rope;
        CHECK_CLOSE(r->theta, hf->rope.theta, 0, 1e-12);
        if (hf->rope.type == HF_ROPE_LLAMA3) {
            CHECK_CLOSE(r->factor, hf->rope.factor, 0, 1e-12);
            CHECK_CLOSE(r->low_freq_factor, hf->rope.low_freq_factor, 0, 1e-12);
            CHECK_CLOSE(r->high_freq_factor, hf->rope.high_freq_factor, 0, 1e-12);
            CHECK_CLOSE(r->original_max_pos, (double)hf->rope.original_max_position_embeddings, 0, 1e-12);
        } else {
            CHECK(r->factor == 0);
        }
    }
    CHECK(nrope == 2 * hf->num_hidden_layers);
    free(want);
}

int main(void) {
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        Diag d;
        diag_init(&d, stderr);
        HfConfig hf;
        int rc = hf_config_parse(&d, cases[i].what, cases[i].json, strlen(cases[i].json), &hf);
        CHECK_MSG(rc == 0, "%s: config.json does not parse", cases[i].what);
        diag_free(&d);
        if (rc) continue;
        int before = test_failed;
        CHECK_MSG(lower_hf(&hf, stderr, check_params) == 0, "%s: lowering failed", cases[i].what);
        printf("%-22s %ld tensors%s\n", cases[i].what, hf_expected_tensors(&hf, NULL, 0),
               test_failed == before ? ", all declared with their shapes" : ": MISMATCH");
    }
    // linear rope scaling: refused (IrRope has no linear mode yet), not silently ignored
    const char *lin = "{\"model_type\": \"llama\", " DIMS ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0}}";
    Diag d;
    diag_init(&d, stderr);
    HfConfig hf;
    if (hf_config_parse(&d, "linear", lin, strlen(lin), &hf) == 0) {
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        int rc = lower_hf(&hf, mem, NULL);
        fclose(mem);
        CHECK(rc != 0);
        CHECK_MSG(buf && strstr(buf, "linear rope scaling"), "got: %s", buf ? buf : "");
        free(buf);
    } else {
        CHECK_MSG(0, "the linear rope config does not parse");
    }
    diag_free(&d);
    return test_done("lower.hf");
}
