// cmd_chat.c — `trlc chat MODEL_DIR`: a conversation on stdin/stdout. Each line read is a user
// turn; the conversation so far is rendered with the model's chat template (tokenizer_config.json,
// runtime/io/chat.h), the reply is generated with the KV cache (runtime/gen/gen.h) until the
// end-of-turn token, printed on one line, and kept in the conversation. The KV cache is kept
// between turns (GenSession): a turn computes only the tokens the conversation did not have yet.
// Does not: stream tokens as they come.
#include "chat.h"
#include "cli.h"
#include "diag.h"
#include "gen.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char usage_chat[] =
    "usage: trlc chat MODEL_DIR|SPEC [--adapter DIR] [--system TEXT] [--max-new N]\n"
    "                 [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
    "\n"
    "Reads user turns from stdin, one per line, and prints the assistant's reply to each on one\n"
    "line (newlines in a reply are printed as \\n). The model directory needs tokenizer.json and a\n"
    "tokenizer_config.json with a chat template trlc renders (ChatML/Qwen, Llama-3).\n"
    "Greedy unless a sampling option is given.\n"
    "\n"
    "exit status: 0 at the end of input, 1 a bad model or adapter, 2 usage error, 3 runtime failure\n";

const char *gen_cli_model_dir(Diag *d, Arena *a, const char *arg);   // cmd_generate.c

static char *read_line(FILE *f) {
    size_t cap = 256, n = 0;
    char *s = malloc(cap);
    int c;
    if (!s) return NULL;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 >= cap) {
            if (cap > ((size_t)1 << 26)) break;   // 64 MiB per turn at most
            char *ns = realloc(s, cap *= 2);
            if (!ns) {
                free(s);
                return NULL;
            }
            s = ns;
        }
        s[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(s);
        return NULL;
    }
    if (n && s[n - 1] == '\r') n--;
    s[n] = 0;
    return s;
}

int cmd_chat(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(usage_chat, stdout);
        return EXIT_OK;
    }
    const char *model = NULL, *adapter = NULL, *system = NULL;
    GenOptions o;
    gen_options_init(&o);
    o.max_new = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (model) return cli_usage_error("chat", usage_chat, "unexpected argument `%s`", a);
            model = a;
            continue;
        }
        static const char *takes[] = {"--adapter", "--system", "--max-new", "--top-k", "--seed", "--temperature", "--top-p"};
        bool known = false;
        for (size_t k = 0; k < sizeof takes / sizeof *takes; k++) known = known || !strcmp(a, takes[k]);
        if (!known) return cli_usage_error("chat", usage_chat, "unknown option `%s`", a);
        if (!v) return cli_usage_error("chat", usage_chat, "`%s` needs a value", a);
        i++;
        char *end;
        errno = 0;
        if (!strcmp(a, "--adapter")) adapter = v;
        else if (!strcmp(a, "--system")) system = v;
        else if (!strcmp(a, "--max-new")) {
            long n = strtol(v, &end, 10);
            if (errno || *end || end == v || n < 1 || n > (1 << 20)) goto bad;
            o.max_new = (int)n;
        } else if (!strcmp(a, "--top-k")) {
            long n = strtol(v, &end, 10);
            if (errno || *end || end == v || n < 0 || n > (1 << 30)) goto bad;
            o.top_k = (int)n;
            o.sample = true;
        } else if (!strcmp(a, "--seed")) {
            long n = strtol(v, &end, 10);
            if (errno || *end || end == v || n < 0) goto bad;
            o.seed = (uint64_t)n;
        } else {   // --temperature, --top-p
            double x = strtod(v, &end);
            if (errno || *end || end == v || !(x > 0) || x > 1e6 || (!strcmp(a, "--top-p") && x > 1)) goto bad;
            if (!strcmp(a, "--top-p")) o.top_p = x;
            else o.temperature = x;
            o.sample = true;
        }
        continue;
    bad:
        return cli_usage_error("chat", NULL, "bad value `%s` for %s", v, a);
    }
    if (!model) return cli_usage_error("chat", usage_chat, "a model directory is required");
    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    int rc = EXIT_SPEC;
    ChatTemplate tpl = {0};
    bool has_tpl = false;
    ChatMsg *msgs = NULL;
    size_t nmsgs = 0;
    char **owned = NULL;   // contents to free
    size_t nowned = 0;
    const char *dir = gen_cli_model_dir(&d, &arena, model);
    GenModel *m = dir ? gen_model_open(&d, dir, adapter) : NULL;
    GenSession *sess = m ? gen_session_new(m) : NULL;
    if (!sess) goto out;
    const Tokenizer *tok = gen_model_tokenizer(m);
    if (!tok) {
        diag_plain_error(&d, "%s has no tokenizer.json", dir);
        goto out;
    }
    char cfg[8192];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    if (chat_from_config(&d, cfg, &tpl)) goto out;
    has_tpl = true;
    o.nstop_ids = gen_model_eos(m, o.stop_ids, GEN_MAX_STOP - 3);
    static const char *eot[] = {"<|im_end|>", "<|eot_id|>", "<|endoftext|>"};
    for (int i = 0; i < 3; i++) {
        int32_t id = tok_id(tok, eot[i]);
        if (id >= 0) o.stop_ids[o.nstop_ids++] = id;
    }
    msgs = calloc(2, sizeof *msgs);
    if (!msgs) goto oom;
    if (system) msgs[nmsgs++] = (ChatMsg){.role = "system", .content = system, .content_len = strlen(system)};
    rc = EXIT_OK;
    char *line;
    while ((line = read_line(stdin)) != NULL) {
        ChatMsg *nm = realloc(msgs, (nmsgs + 2) * sizeof *nm);
        char **no = realloc(owned, (nowned + 2) * sizeof *no);
        if (nm) msgs = nm;
        if (no) owned = no;
        if (!nm || !no) {
            free(line);
            goto oom;
        }
        owned[nowned++] = line;
        msgs[nmsgs++] = (ChatMsg){.role = "user", .content = line, .content_len = strlen(line)};
        ChatRender cr = {0};
        const char *err = NULL;
        TokIds ids = {0};
        if (chat_render(&tpl, msgs, nmsgs, true, &cr, &err)) {
            diag_plain_error(&d, "chat template: %s", err ? err : "render failed");
            chat_render_free(&cr);
            rc = EXIT_SPEC;
            goto out;
        }
        int trc = tok_encode(tok, cr.text, cr.len, false, &ids);
        chat_render_free(&cr);
        GenResult r = {0};
        if (trc || ids.n == 0 || ids.n > (1u << 24) || gen_session_generate(sess, ids.v, (int)ids.n, &o, &r)) {
            tok_ids_free(&ids);
            rc = EXIT_RUNTIME;
            goto out;
        }
        tok_ids_free(&ids);
        int n = r.len[0];
        for (int i = 0; n > 0 && i < o.nstop_ids; i++)
            if (r.ids[0][n - 1] == o.stop_ids[i]) { n--; break; }
        size_t len = 0;
        char *txt = tok_decode(tok, r.ids[0], (size_t)n, true, &len);
        gen_result_free(&r);
        if (!txt) goto oom;
        for (size_t i = 0; i < len; i++) {
            if (txt[i] == '\n') fputs("\\n", stdout);
            else putchar(txt[i]);
        }
        putchar('\n');
        fflush(stdout);
        owned[nowned++] = txt;
        msgs[nmsgs++] = (ChatMsg){.role = "assistant", .content = txt, .content_len = len};
    }
    goto out;
oom:
    diag_plain_error(&d, "out of memory");
    rc = EXIT_RUNTIME;
out:
    for (size_t i = 0; i < nowned; i++) free(owned[i]);
    free(owned);
    free(msgs);
    if (has_tpl) chat_free(&tpl);
    gen_session_free(sess);
    gen_model_free(m);
    arena_free(&arena);
    diag_free(&d);
    return rc;
}
