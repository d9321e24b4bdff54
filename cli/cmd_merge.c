// cmd_merge.c — `trlc merge`: folds a PEFT LoRA adapter into its base model and writes a full
// Hugging Face model directory (weights W + s·B·A as peft's merge_and_unload, config.json,
// tokenizer files), e.g. for serving with vLLM. Memory: one output shard of float32 at a time.
// Does not: merge several adapters, or quantized bases.
#include "cli.h"
#include "diag.h"
#include "export.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char usage_merge[] =
    "usage: trlc merge --base DIR --adapter DIR -o OUT [--dtype bf16|f16|f32] [--max-shard-size SIZE]\n"
    "\n"
    "Merges a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) into its base\n"
    "model (llama, qwen2 or qwen3 with config.json and safetensors weights) and writes OUT as a\n"
    "model directory transformers and vLLM load: config.json, model.safetensors (or shards with an\n"
    "index), and the base's tokenizer files. Each adapted weight becomes W + (alpha/r)·B·A\n"
    "(alpha/sqrt(r) with use_rslora), as peft's merge_and_unload computes it.\n"
    "\n"
    "options:\n"
    "  --base DIR            the base model directory the adapter was trained on\n"
    "  --adapter DIR         the PEFT adapter directory\n"
    "  -o, --out OUT         the directory to write (created if missing)\n"
    "  --dtype T             bf16, f16 or f32 (default: the base's torch_dtype)\n"
    "  --max-shard-size N    bytes per shard, with an optional KB/MB/GB suffix (default 5GB)\n"
    "  -h, --help            this help\n"
    "\n"
    "exit status: 0 written, 1 a bad or mismatched model/adapter, 2 usage error\n";

// "5GB", "500MB", "20000" → bytes (decimal units, as transformers' max_shard_size). 0 on error.
static unsigned long long parse_size(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || s[0] == '-') return 0;
    unsigned long long mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "B")) mul = 1;
    else if (!strcmp(end, "KB")) mul = 1000ULL;
    else if (!strcmp(end, "MB")) mul = 1000000ULL;
    else if (!strcmp(end, "GB")) mul = 1000000000ULL;
    else return 0;
    if (v > ~0ULL / mul) return 0;
    return v * mul;
}

int cmd_merge(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(usage_merge, stdout);
        return EXIT_OK;
    }
    const char *base = NULL, *adapter = NULL, *out = NULL;
    StDtype dtype = ST_NDTYPES;
    unsigned long long shard = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--base") || !strcmp(a, "--adapter") || !strcmp(a, "-o") || !strcmp(a, "--out") ||
                     !strcmp(a, "--dtype") || !strcmp(a, "--max-shard-size");
        if (!takes)
            return cli_usage_error("merge", usage_merge, a[0] == '-' && a[1] ? "unknown option `%s`" : "unexpected argument `%s`", a);
        if (!v) return cli_usage_error("merge", usage_merge, "`%s` needs a value", a);
        i++;
        if (!strcmp(a, "--base")) base = v;
        else if (!strcmp(a, "--adapter")) adapter = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "bf16") || !strcmp(v, "bfloat16")) dtype = ST_BF16;
            else if (!strcmp(v, "f16") || !strcmp(v, "float16")) dtype = ST_F16;
            else if (!strcmp(v, "f32") || !strcmp(v, "float32")) dtype = ST_F32;
            else return cli_usage_error("merge", NULL, "unknown dtype `%s` (bf16, f16 or f32)", v);
        } else if (!(shard = parse_size(v))) {
            return cli_usage_error("merge", NULL, "bad --max-shard-size `%s` (e.g. 5GB, 500MB, 20000)", v);
        }
    }
    if (!base || !adapter || !out) return cli_usage_error("merge", usage_merge, "--base, --adapter and -o are required");
    Diag d;
    diag_init(&d, stderr);
    int rc = ex_merge_lora(&d, base, adapter, out, dtype, shard) == 0 ? EXIT_OK : EXIT_SPEC;
    if (rc == EXIT_OK) printf("merged %s into %s: wrote %s\n", adapter, base, out);
    diag_free(&d);
    return rc;
}
