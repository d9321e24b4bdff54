// cmd_generate.c — `trlc generate`: loads a Hugging Face model directory (or a spec's policy
// `from` directory) with an optional PEFT adapter and continues a prompt with KV-cached decoding
// (runtime/gen/gen.h): greedy by default, sampled with --temperature / --top-k / --top-p / --seed.
// Prints the generated text (or ids with --ids). Does not apply a chat template (`trlc chat` does).
// With --eval FILE: greedy generation for every row of a data set and its exact-match accuracy
// (final numbers for prompt_answer rows, whole responses for prompt_response), as
// gen_eval_dataset computes it for the trainer.
#include "chat.h"
#include "check.h"
#include "dataset.h"
#include "cli.h"
#include "diag.h"
#include "gen.h"
#include "load.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char usage_generate[] =
    "usage: trlc generate MODEL_DIR|SPEC --prompt TEXT [options]\n"
    "       trlc generate MODEL_DIR|SPEC --eval FILE [--format F] [--template T] [--batch N] [--max-new N]\n"
    "\n"
    "Continues TEXT with the model: a Hugging Face model directory (config.json, safetensors\n"
    "weights, tokenizer.json), or a spec whose policy names one with `from`. Greedy decoding with a\n"
    "KV cache unless a sampling option is given; stops at the model's end-of-sequence ids\n"
    "(generation_config.json), a --stop string, or --max-new tokens.\n"
    "\n"
    "options:\n"
    "  --prompt TEXT        the text to continue (tokenized with the model's special tokens)\n"
    "  --prompt-ids IDS     token ids instead, comma-separated (no tokenizer needed)\n"
    "                       Both repeat: the prompts are decoded as one batch and each output is\n"
    "                       printed on its own line (with several, newlines print as \\n)\n"
    "  --max-new N          new tokens at most (default 64)\n"
    "  --temperature T      sample with temperature T > 0 (default: greedy)\n"
    "  --top-k K            sample from the K most likely tokens\n"
    "  --top-p P            sample from the smallest set with probability mass > P (0 < P <= 1)\n"
    "  --seed S             the sampling seed (default 0)\n"
    "  --stop TEXT          stop once the output contains TEXT (repeatable)\n"
    "  --no-eos             do not stop at end-of-sequence ids\n"
    "  --adapter DIR        a PEFT LoRA adapter directory applied on top of the model\n"
    "  --ids                print the generated token ids instead of text\n"
    "  --no-cache           re-run the whole forward for every token (slow; for checking)\n"
    "\n"
    "evaluation (greedy; prints `exact match: CORRECT/ROWS (PERCENT)`):\n"
    "  --eval FILE          a .jsonl/.json/.csv data set: every row's prompt is continued\n"
    "  --format F           prompt_answer (default: the final number is compared, GSM8K `#### 18`)\n"
    "                       or prompt_response (the whole response is compared)\n"
    "  --template T         chat (the model's template; default), plain, a name (qwen3, llama3 ...)\n"
    "                       or a format string with {prompt}\n"
    "  --batch N            prompts decoded at once (default 8); --max-new defaults to 256 here\n"
    "  -h, --help           this help\n"
    "\n"
    "exit status: 0 generated, 1 a bad model, adapter or prompt, 2 usage error, 3 runtime failure\n";

// A spec path (ends in .trl): the policy's `from` directory, else the argument itself.
const char *gen_cli_model_dir(Diag *d, Arena *a, const char *arg) {
    size_t n = strlen(arg);
    if (n < 4 || strcmp(arg + n - 4, ".trl")) return arg;
    LoadedSpec spec = {0};
    CheckedSpec cs;
    if (load_spec(d, a, arg, &spec) || check_spec(d, a, &spec, &cs)) return NULL;
    if (cs.policy < 0 || cs.policy >= cs.nmodels || !cs.models[cs.policy].from) {
        diag_plain_error(d, "%s: the policy has no `from` model directory to generate with", arg);
        return NULL;
    }
    return cs.models[cs.policy].from;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
static int parse_num(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) return -1;
    *out = v;
    return 0;
}

// --eval: greedy generation over a data set, exact-match accuracy on stdout.
static int run_eval(const char *model, const char *adapter, const char *path, DsFormat fmt, const char *template,
                    int batch, int max_new) {
    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    int rc = EXIT_SPEC;
    ChatTemplate tpl = {0};
    bool has_tpl = false;
    DsLoader *l = NULL;
    const char *dir = gen_cli_model_dir(&d, &arena, model);
    GenModel *m = dir ? gen_model_open(&d, dir, adapter) : NULL;
    if (!m) goto out;
    if (!gen_model_tokenizer(m)) {
        diag_plain_error(&d, "%s has no tokenizer.json: --eval needs one", dir);
        goto out;
    }
    char cfg[8192];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    if (chat_from_spec(&d, template, cfg, &tpl)) goto out;
    has_tpl = true;
    DsConfig c;
    ds_config_init(&c);
    c.path = path;
    c.format = fmt;
    c.tmpl = &tpl;
    l = ds_open(&d, &c, gen_model_tokenizer(m));
    if (!l) goto out;
    long correct = 0, total = 0;
    if (gen_eval_dataset(m, l, max_new, batch, &correct, &total)) {
        rc = EXIT_RUNTIME;
        goto out;
    }
    printf("exact match: %ld/%ld (%.1f%%)\n", correct, total, total ? 100.0 * (double)correct / (double)total : 0.0);
    rc = EXIT_OK;
out:
    ds_close(l);
    if (has_tpl) chat_free(&tpl);
    gen_model_free(m);
    arena_free(&arena);
    diag_free(&d);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(usage_generate, stdout);
        return EXIT_OK;
    }
    enum { MAX_PROMPTS = 64 };
    const char *model = NULL, *adapter = NULL;
    const char *prompts[MAX_PROMPTS];
    bool as_ids[MAX_PROMPTS];
    int nprompts = 0;
    const char *eval = NULL, *format = "prompt_answer", *template = "chat";
    long batch = 8;
    bool max_new_set = false;
    GenOptions o;
    gen_options_init(&o);
    bool ids = false, no_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = !strcmp(a, "--ids") || !strcmp(a, "--no-cache") || !strcmp(a, "--no-eos");
        if (flag) {
            if (!strcmp(a, "--ids")) ids = true;
            else if (!strcmp(a, "--no-cache")) o.no_cache = true;
            else no_eos = true;
            continue;
        }
        if (a[0] != '-' || !a[1]) {
            if (model) return cli_usage_error("generate", usage_generate, "unexpected argument `%s`", a);
            model = a;
            continue;
        }
        static const char *takes[] = {"--prompt", "--prompt-ids", "--max-new", "--temperature", "--top-k",
                                      "--top-p", "--seed", "--stop", "--adapter", "--eval", "--format",
                                      "--template", "--batch"};
        bool known = false;
        for (size_t k = 0; k < sizeof takes / sizeof *takes; k++) known = known || !strcmp(a, takes[k]);
        if (!known) return cli_usage_error("generate", usage_generate, "unknown option `%s`", a);
        if (!v) return cli_usage_error("generate", usage_generate, "`%s` needs a value", a);
        i++;
        long n;
        double x;
        if (!strcmp(a, "--prompt") || !strcmp(a, "--prompt-ids")) {
            if (nprompts >= MAX_PROMPTS) return cli_usage_error("generate", NULL, "at most %d prompts", MAX_PROMPTS);
            as_ids[nprompts] = !strcmp(a, "--prompt-ids");
            prompts[nprompts++] = v;
        }
        else if (!strcmp(a, "--adapter")) adapter = v;
        else if (!strcmp(a, "--eval")) eval = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--template")) template = v;
        else if (!strcmp(a, "--batch")) {
            if (parse_int(v, 1, 256, &batch)) goto bad;
        } else if (!strcmp(a, "--stop")) {
            if (o.nstop_strings >= GEN_MAX_STOP)
                return cli_usage_error("generate", NULL, "at most %d --stop strings", GEN_MAX_STOP);
            o.stop_strings[o.nstop_strings++] = v;
        } else if (!strcmp(a, "--max-new")) {
            if (parse_int(v, 1, 1 << 20, &n)) goto bad;
            o.max_new = (int)n;
            max_new_set = true;
        } else if (!strcmp(a, "--top-k")) {
            if (parse_int(v, 0, 1 << 30, &n)) goto bad;
            o.top_k = (int)n;
            o.sample = true;
        } else if (!strcmp(a, "--seed")) {
            if (parse_int(v, 0, __LONG_MAX__, &n)) goto bad;
            o.seed = (uint64_t)n;
        } else if (!strcmp(a, "--temperature")) {
            if (parse_num(v, &x) || !(x > 0) || x > 1e6) goto bad;
            o.temperature = x;
            o.sample = true;
        } else {   // --top-p
            if (parse_num(v, &x) || !(x > 0) || x > 1) goto bad;
            o.top_p = x;
            o.sample = true;
        }
        continue;
    bad:
        return cli_usage_error("generate", NULL, "bad value `%s` for %s", v, a);
    }
    DsFormat fmt;
    if (eval && (ds_format_parse(format, &fmt) || (fmt != DS_PROMPT_ANSWER && fmt != DS_PROMPT_RESPONSE)))
        return cli_usage_error("generate", NULL, "--format must be prompt_answer or prompt_response, got `%s`", format);
    if (eval && (nprompts || o.sample))
        return cli_usage_error("generate", NULL, "--eval decodes greedily from the data set's prompts: no --prompt, "
                               "--prompt-ids or sampling options with it");
    if (eval && model) return run_eval(model, adapter, eval, fmt, template, (int)batch, max_new_set ? o.max_new : 256);
    if (!model || !nprompts)
        return cli_usage_error("generate", usage_generate, "a model and a --prompt or --prompt-ids are required");
    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    int rc = EXIT_SPEC;
    TokIds pids[MAX_PROMPTS];
    memset(pids, 0, sizeof pids);
    GenResult r = {0};
    const char *dir = gen_cli_model_dir(&d, &arena, model);
    GenModel *m = dir ? gen_model_open(&d, dir, adapter) : NULL;
    if (!m) goto out;
    const Tokenizer *tok = gen_model_tokenizer(m);
    const int32_t *pp[MAX_PROMPTS];
    int plen[MAX_PROMPTS];
    for (int k = 0; k < nprompts; k++) {
        TokIds *tk = &pids[k];
        if (as_ids[k]) {
            for (const char *p = prompts[k]; *p;) {
                char *end;
                errno = 0;
                long v = strtol(p, &end, 10);
                if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
                    diag_plain_error(&d, "--prompt-ids: bad id list `%s` (comma-separated token ids)", prompts[k]);
                    goto out;
                }
                if (tok_ids_push(tk, (int32_t)v)) goto oom;
                p = *end ? end + 1 : end;
            }
        } else {
            if (!tok) {
                diag_plain_error(&d, "%s has no tokenizer.json: give the prompt as --prompt-ids", dir);
                goto out;
            }
            if (tok_encode(tok, prompts[k], strlen(prompts[k]), true, tk)) {
                diag_plain_error(&d, "the prompt could not be tokenized");
                goto out;
            }
        }
        if (tk->n == 0 || tk->n > (1u << 24)) {
            diag_plain_error(&d, "prompt %d has %zu tokens", k + 1, tk->n);
            goto out;
        }
        for (size_t i = 0; i < tk->n; i++)
            if (tk->v[i] >= gen_model_vocab(m)) {
                diag_plain_error(&d, "prompt token id %d is outside the model's vocabulary [0, %lld)", tk->v[i],
                                 (long long)gen_model_vocab(m));
                goto out;
            }
        pp[k] = tk->v;
        plen[k] = (int)tk->n;
    }
    if (!no_eos) o.nstop_ids = gen_model_eos(m, o.stop_ids, GEN_MAX_STOP);
    if (o.nstop_strings && !tok) {
        diag_plain_error(&d, "--stop needs the model's tokenizer.json");
        goto out;
    }
    if (gen_generate(m, pp, plen, nprompts, &o, &r)) {
        rc = EXIT_RUNTIME;
        goto out;
    }
    for (int k = 0; k < nprompts; k++) {
        if (ids || !tok) {
            for (int i = 0; i < r.len[k]; i++) printf("%s%d", i ? " " : "", r.ids[k][i]);
        } else {
            size_t n = 0;
            char *txt = tok_decode(tok, r.ids[k], (size_t)r.len[k], true, &n);
            if (!txt) goto oom;
            for (size_t i = 0; i < n; i++) {
                if (nprompts > 1 && txt[i] == '\n') fputs("\\n", stdout);
                else if (nprompts > 1 && txt[i] == '\\') fputs("\\\\", stdout);
                else putchar(txt[i]);
            }
            free(txt);
        }
        printf("\n");
    }
    rc = EXIT_OK;
    goto out;
oom:
    diag_plain_error(&d, "out of memory");
    rc = EXIT_RUNTIME;
out:
    gen_result_free(&r);
    for (int k = 0; k < nprompts; k++) tok_ids_free(&pids[k]);
    gen_model_free(m);
    arena_free(&arena);
    diag_free(&d);
    return rc;
}
