// cmd_data.c — `trlc data`: checks a dataset file the way training will read it (every row parsed
// and checked, `file:line` errors), prints counts, and shows the first examples token by token with
// the learned part marked, so that masking mistakes are visible before a run. Does not train.
#include "chat.h"
#include "cli.h"
#include "dataset.h"
#include "tokenizer.h"
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char usage_data[] =
    "usage: trlc data FILE --tokenizer FILE [options]\n"
    "\n"
    "Reads a dataset (.jsonl, .json or .csv) as training would: every row is checked (errors are\n"
    "reported as file:line), then the first examples are shown with the learned tokens marked.\n"
    "\n"
    "options:\n"
    "  --tokenizer FILE     tokenizer.json (`bytes` for the byte tokenizer)\n"
    "  --format F           text | prompt_response | messages | preference | prompt_answer\n"
    "                       (default prompt_response)\n"
    "  --template T         chatml | qwen2 | qwen2.5 | qwen3 | llama3 | llama3.1 | plain\n"
    "                       | \"User: {prompt}\\n...\"\n"
    "                       | chat (the template of --config) (default plain)\n"
    "  --config FILE        tokenizer_config.json for --template chat\n"
    "  --field NAME=COLUMN  column mapping, e.g. --field prompt=instruction (repeatable)\n"
    "  --max-len N          truncate to N tokens     --left   truncate on the left\n"
    "  --no-mask            learn every token (no prompt masking)\n"
    "  --skip-errors        skip bad rows and count them instead of failing\n"
    "  --show N             examples to show (default 2)\n"
    "  --stats              tokenize every row: token counts, longest row, rows over --max-len\n"
    "  -h, --help           this help\n"
    "\n"
    "In the shown examples the learned text is between [[ and ]].\n"
    "exit status: 0 success, 1 data error, 2 usage error\n";

static int set_field(DsFields *f, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || !eq[1]) return -1;
    size_t n = (size_t)(eq - arg);
    const char **slots[] = {&f->text, &f->prompt, &f->input, &f->response, &f->system,
                            &f->messages, &f->chosen, &f->rejected, &f->answer};
    const char *names[] = {"text", "prompt", "input", "response", "system", "messages", "chosen", "rejected", "answer"};
    for (int i = 0; i < 9; i++)
        if (strlen(names[i]) == n && !strncmp(arg, names[i], n)) {
            *slots[i] = eq + 1;
            return 0;
        }
    return -1;
}

// Prints ids with the learned runs wrapped in [[ ]].
static void show_seq(const Tokenizer *tok, const int32_t *ids, const int32_t *labels, size_t n) {
    size_t i = 0;
    while (i < n) {
        int learn = labels[i] != DS_IGNORE;
        size_t j = i;
        while (j < n && (labels[j] != DS_IGNORE) == learn) j++;
        char *s = tok_decode(tok, ids + i, j - i, false, NULL);
        printf(learn ? "[[%s]]" : "%s", s ? s : "");
        free(s);
        i = j;
    }
    putchar('\n');
}

int cmd_data(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(usage_data, stdout);
        return EXIT_OK;
    }
    DsConfig c;
    ds_config_init(&c);
    const char *tokpath = NULL, *tmpl = "plain", *config = NULL;
    int show = 2, stats = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--tokenizer") && v) tokpath = v;
        else if (!strcmp(a, "--format") && v) {
            if (ds_format_parse(v, &c.format)) {
                return cli_usage_error("data", usage_data, "unknown format `%s`", v);
            }
        } else if (!strcmp(a, "--template") && v) tmpl = v;
        else if (!strcmp(a, "--config") && v) config = v;
        else if (!strcmp(a, "--field") && v) {
            if (set_field(&c.fields, v)) {
                return cli_usage_error("data", NULL, "bad --field `%s` (want NAME=COLUMN)", v);
            }
        } else if ((!strcmp(a, "--max-len") || !strcmp(a, "--show")) && v) {
            char *end = NULL;
            long n = v[0] >= '0' && v[0] <= '9' ? strtol(v, &end, 10) : -1;
            if (!end || *end || n < 0 || n > INT_MAX) {
                return cli_usage_error("data", usage_data, "%s takes a whole number, not `%s`", a, v);
            }
            if (a[2] == 'm') c.max_len = (int)n;
            else show = (int)n;
        } else if (!v && (!strcmp(a, "--tokenizer") || !strcmp(a, "--format") || !strcmp(a, "--template") ||
                          !strcmp(a, "--config") || !strcmp(a, "--field") || !strcmp(a, "--max-len") ||
                          !strcmp(a, "--show"))) {
            return cli_usage_error("data", usage_data, "`%s` needs a value", a);
        } else {
            takes = 0;
            if (!strcmp(a, "--left")) c.truncate = DS_TRUNC_LEFT;
            else if (!strcmp(a, "--no-mask")) c.mask_prompt = false;
            else if (!strcmp(a, "--skip-errors")) c.skip_errors = true;
            else if (!strcmp(a, "--stats")) stats = 1;
            else if (a[0] != '-' && !c.path) c.path = a;
            else {
                return cli_usage_error("data", usage_data, a[0] == '-' && a[1] ? "unknown option `%s`" : "unexpected argument `%s`", a);
            }
        }
        i += takes;
    }
    if (!c.path || !tokpath || c.max_len < 0 || show < 0) {
        fputs(usage_data, stderr);
        return EXIT_USAGE;
    }
    Diag d;
    diag_init(&d, stderr);
    int rc = EXIT_SPEC;
    ChatTemplate t = {0};
    DsLoader *l = NULL;
    Tokenizer *tok = !strcmp(tokpath, "bytes") ? tok_new_bytes() : tok_load(&d, tokpath);
    if (!tok) goto out;
    if (chat_from_spec(&d, tmpl, config, &t)) goto out;
    c.tmpl = &t;
    l = ds_open(&d, &c, tok);
    if (!l) goto out;
    DsStats st = ds_stats(l);
    printf("%s: %zu rows (%s), %zu skipped\n", c.path, st.rows, ds_format_name(c.format), st.skipped);
    for (size_t i = 0; i < (size_t)show && i < ds_num_rows(l); i++) {
        DsExample ex;
        if (ds_get(l, i, &ex)) goto out;
        size_t learned = 0;
        for (size_t k = 0; k < ex.n; k++) learned += ex.labels[k] != DS_IGNORE;
        printf("\n--- row %zu (line %ld): %zu tokens, %zu learned%s\n", i, ex.line, ex.n, learned,
               ex.truncated ? ", truncated" : "");
        show_seq(tok, ex.ids, ex.labels, ex.n);
        if (ex.rej_ids) {
            printf("--- rejected: %zu tokens\n", ex.rej_n);
            show_seq(tok, ex.rej_ids, ex.rej_labels, ex.rej_n);
        }
        if (ex.answer) printf("--- answer: %s\n", ex.answer);
        ds_example_free(&ex);
    }
    if (stats) {
        size_t total = 0, learned = 0, longest = 0, n = ds_num_rows(l);
        for (size_t i = 0; i < n; i++) {
            DsExample ex;
            if (ds_get(l, i, &ex)) goto out;
            total += ex.n + ex.rej_n;
            if (ex.n > longest) longest = ex.n;
            if (ex.rej_n > longest) longest = ex.rej_n;
            for (size_t k = 0; k < ex.n; k++) learned += ex.labels[k] != DS_IGNORE;
            for (size_t k = 0; k < ex.rej_n; k++) learned += ex.rej_labels[k] != DS_IGNORE;
            ds_example_free(&ex);
        }
        printf("\nstats: %zu tokens (%.1f per row), %zu learned, longest row %zu tokens", total,
               n ? (double)total / n : 0.0, learned, longest);
        if (c.max_len > 0) printf(", %zu rows truncated to %d", ds_stats(l).truncated, c.max_len);
        putchar('\n');
    }
    rc = EXIT_OK;
out:
    ds_close(l);
    chat_free(&t);
    tok_free(tok);
    diag_free(&d);
    return rc;
}
