// cmd_inspect.c — `trlc inspect PATH`: what is in a Hugging Face model directory, a sharded index,
// a .safetensors file or a PEFT LoRA adapter directory — config.json summary, every tensor (name, dtype, shape), totals — and
// whether config.json and the tensors agree. Every problem is reported with the file (and tensor)
// at fault. Exit status 1 when anything is wrong, 2 on usage errors.
// Does not: load weights into memory (the files are mapped), or read tokenizers.
#include "cli.h"
#include "diag.h"
#include "export.h"
#include "hfconfig.h"
#include "safetensors.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char usage_inspect[] =
    "usage: trlc inspect PATH [--summary]\n"
    "\n"
    "Shows a Hugging Face model directory (config.json + model.safetensors or sharded\n"
    "model-*-of-*.safetensors with model.safetensors.index.json), an index file, one\n"
    ".safetensors file, or a PEFT LoRA adapter directory: the architecture from config.json,\n"
    "every tensor with its dtype and shape (every LoRA module with its A/B shapes), parameter\n"
    "and byte totals. For a model directory, checks that every weight config.json implies is\n"
    "present with the right shape. Every file is fully validated.\n"
    "\n"
    "options:\n"
    "  --summary    totals only, no tensor list\n"
    "  -h, --help   this help\n"
    "\n"
    "exit status: 0 consistent, 1 a broken or inconsistent file, 2 usage error\n";

static void print_shape(const StTensor *t) {
    char buf[200];
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < t->ndim && k < sizeof buf - 24; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    snprintf(buf + k, sizeof buf - k, "]");
    printf("  %-56s %-8s %s\n", t->name, st_dtype_name(t->dtype), buf);
}

static void print_config(const HfConfig *c) {
    printf("config: %s (%s)\n", c->path, c->model_type);
    printf("  %lld parameters; vocab %lld, hidden %lld, ffn %lld, layers %lld, heads %lld (kv %lld, head_dim %lld)\n",
           (long long)hf_param_count(c),
           (long long)c->vocab_size, (long long)c->hidden_size, (long long)c->intermediate_size,
           (long long)c->num_hidden_layers, (long long)c->num_attention_heads, (long long)c->num_key_value_heads,
           (long long)c->head_dim);
    const char *rope = c->rope.type == HF_ROPE_LLAMA3 ? ", llama3 scaling" : c->rope.type == HF_ROPE_LINEAR ? ", linear scaling" : "";
    printf("  rope theta %g%s, rms_norm_eps %g, %s embeddings, dtype %s%s%s\n", c->rope.theta, rope, c->rms_norm_eps,
           c->tie_word_embeddings ? "tied" : "untied", hf_dtype_name(c->dtype), c->qkv_bias ? ", q/k/v bias" : "",
           c->qk_norm ? ", q/k norm" : "");
    if (c->sliding_window)
        printf("  sliding-window attention: %lld positions in layers %lld and up\n", (long long)c->sliding_window,
               (long long)c->max_window_layers);
}

int cmd_inspect(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(usage_inspect, stdout);
        return EXIT_OK;
    }
    const char *path = NULL;
    bool summary = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--summary")) summary = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("inspect", usage_inspect, "unknown option `%s`", argv[i]);
        else if (path) return cli_usage_error("inspect", usage_inspect, "one PATH only (got `%s` and `%s`)", path, argv[i]);
        else path = argv[i];
    }
    if (!path) return cli_usage_error("inspect", usage_inspect, "no PATH given");
    Diag d;
    diag_init(&d, stderr);
    HfConfig cfg;
    bool have_cfg = false;
    struct stat st;
    char ap[HF_PATH_MAX];
    snprintf(ap, sizeof ap, "%s/adapter_config.json", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && stat(ap, &st) == 0) {   // a PEFT adapter directory
        ExLoraAdapter a;
        if (ex_load_peft_adapter(&d, path, &a) == 0) {
            unsigned long long params = 0;
            for (int i = 0; i < a.n_mods; i++)
                params += (unsigned long long)(a.cfg.r * (a.mods[i].in + a.mods[i].out));
            printf("adapter: %s (LoRA r %d, alpha %g%s, dropout %g, base %s)\n", path, a.cfg.r, a.cfg.lora_alpha,
                   a.cfg.use_rslora ? ", rsLoRA" : "", a.cfg.lora_dropout,
                   a.cfg.base_model_name_or_path ? a.cfg.base_model_name_or_path : "(none)");
            printf("  %d modules, %llu parameters; target_modules:", a.n_mods, params);
            for (int i = 0; i < a.cfg.n_target_modules; i++) printf(" %s", a.cfg.target_modules[i]);
            printf("\n");
            if (!summary)
                for (int i = 0; i < a.n_mods; i++)
                    printf("  %-56s A [%d, %lld]  B [%lld, %d]\n", a.mods[i].module, a.cfg.r, (long long)a.mods[i].in,
                           (long long)a.mods[i].out, a.cfg.r);
            ex_lora_adapter_free(&a);
        }
        int rc = d.errors ? EXIT_SPEC : EXIT_OK;
        if (d.errors) fprintf(stderr, "trlc inspect: %d error%s\n", d.errors, d.errors == 1 ? "" : "s");
        diag_free(&d);
        return rc;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        char p[HF_PATH_MAX];
        snprintf(p, sizeof p, "%s/config.json", path);
        if (stat(p, &st) == 0) {
            if (hf_config_load(&d, path, &cfg) == 0) {
                have_cfg = true;
                print_config(&cfg);
            }
        } else
            printf("config: none (no config.json in %s)\n", path);
    }
    StCheckpoint *ck = st_checkpoint_open(&d, path);
    if (ck) {
        size_t n = st_checkpoint_count(ck);
        unsigned long long params = 0, bytes = 0;
        const char *files[4096];
        size_t nfiles = 0;
        for (size_t i = 0; i < n; i++) {
            const StTensor *t = st_checkpoint_tensor(ck, i);
            params += (unsigned long long)t->numel;
            bytes += t->nbytes;
            size_t k = 0;
            while (k < nfiles && files[k] != t->file) k++;
            if (k == nfiles && nfiles < 4096) files[nfiles++] = t->file;
        }
        printf("checkpoint: %s (%zu file%s, %zu tensors, %llu parameters, %llu bytes)\n", st_checkpoint_path(ck),
               nfiles, nfiles == 1 ? "" : "s", n, params, bytes);
        if (!summary)
            for (size_t i = 0; i < n; i++) print_shape(st_checkpoint_tensor(ck, i));
        if (have_cfg) {
            int problems = hf_config_check_checkpoint(&d, &cfg, ck);
            if (problems == 0) printf("ok: every weight config.json implies is present with the right shape\n");
        }
        st_checkpoint_close(ck);
    }
    int rc = d.errors ? EXIT_SPEC : EXIT_OK;
    if (d.errors) fprintf(stderr, "trlc inspect: %d error%s\n", d.errors, d.errors == 1 ? "" : "s");
    diag_free(&d);
    return rc;
}
