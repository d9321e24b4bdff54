// test_check.c — what check_spec hands to later passes: the CheckedSpec of the examples under
// examples/language/ (values as written, defaults filled in, roles resolved), the linear layers
// found in the stdlib architectures, and schema path lookups for `--set`.
// usage: test_check EXAMPLES_DIR
#include "check.h"
#include "load.h"
#include "schema.h"
#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *dir;

// Loads and checks dir/name; returns the number of errors (stderr shows them).
static int check_file(const char *name, Arena *a, CheckedSpec *out) {
    Diag d;
    diag_init(&d, stderr);
    char *path = arena_printf(a, "%s/%s", dir, name);
    LoadedSpec spec = {0};
    int rc = load_spec(&d, a, path, &spec);
    if (rc == 0) rc = check_spec(&d, a, &spec, out);
    int errors = d.errors;
    CHECK_MSG(rc == 0 && errors == 0, "%s: %d errors", name, errors);
    diag_free(&d);
    return errors;
}

// Checks spec text held in memory (relative paths resolve in dir); returns the error count. The
// diagnostics go to diag_out, or nowhere where it is NULL (tests that count expected errors).
static int check_text(const char *text, Arena *a, CheckedSpec *out, FILE *diag_out) {
    FILE *sink = diag_out ? NULL : fopen("/dev/null", "w");
    Diag d;
    diag_init(&d, diag_out ? diag_out : sink ? sink : stderr);
    LoadedSpec spec = {0};
    int rc = load_spec_text(&d, a, arena_printf(a, "%s/mem.trl", dir), text, strlen(text), &spec);
    if (rc == 0) check_spec(&d, a, &spec, out);
    int errors = d.errors;
    diag_free(&d);
    if (sink) fclose(sink);
    return errors;
}

// The specs' prelude (the policy model) and the optimizer line that ends them.
#define POLICY "trl 1;\nmodel policy { from = \"../../tests/fixtures/tiny-qwen3\"; }\n"
#define ADAMW "train { optimizer = adamw { lr = 1e-4; }; }\n"

// A spec training on the text file at path (a .json file: its first row is looked at).
static const char *text_spec(Arena *a, const char *path) {
    return arena_printf(a, POLICY "data train { from = \"%s\"; format = text; }\nobjective sft { }\n" ADAMW, path);
}

static bool has_target(const CheckedModel *m, const char *name) {
    for (int i = 0; i < m->lora_ntargets; i++)
        if (!strcmp(m->lora_targets[i], name)) return true;
    return false;
}

static void test_sft_lora(void) {
    Arena a = {0};
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    if (check_file("sft-lora.trl", &a, s)) goto done;
    CHECK(s->nmodels == 1 && s->policy == 0);
    const CheckedModel *m = &s->models[0];
    CHECK(!strcmp(m->name, "policy") && m->trainable);
    CHECK(!strcmp(m->dtype, "bf16"));
    CHECK(m->from && strstr(m->from, "fixtures/tiny-qwen3"));
    CHECK(m->has_lora && m->lora_rank == 16);
    CHECK_CLOSE(m->lora_alpha, 32, 0, 0);
    CHECK_CLOSE(m->lora_dropout, 0.05, 1e-12, 0);
    CHECK(m->lora_ntargets == 7 && !m->lora_all_linear && has_target(m, "gate_proj") && !has_target(m, "lm_head"));
    CHECK(!m->quantized);
    CHECK(s->ndata == 2 && s->train_data >= 0 && s->eval_data >= 0);
    const CheckedData *t = &s->data[s->train_data];
    CHECK(!strcmp(t->format, "prompt_response") && !strcmp(t->f_prompt, "instruction") && !strcmp(t->f_response, "output"));
    CHECK(!strcmp(t->template_kind, "chat") && t->max_len == 512 && !t->pack && t->shuffle);
    CHECK(!strcmp(s->objective.kind, "sft") && s->objective.mask_prompt);
    const CheckedTrain *tr = &s->train;
    CHECK(!strcmp(tr->optimizer, "adamw"));
    CHECK_CLOSE(tr->lr, 2e-4, 0, 1e-12);
    CHECK_CLOSE(tr->beta1, 0.9, 0, 1e-12);
    CHECK_CLOSE(tr->beta2, 0.999, 0, 1e-12);
    CHECK_CLOSE(tr->eps, 1e-8, 0, 1e-12);
    CHECK_CLOSE(tr->weight_decay, 0.01, 0, 1e-12);
    CHECK(!strcmp(tr->schedule, "cosine"));
    CHECK_CLOSE(tr->warmup_ratio, 0.03, 1e-12, 0);
    CHECK(tr->warmup_steps == 0);
    CHECK(tr->batch == 8 && tr->grad_accum == 4 && tr->epochs == 3 && tr->steps == 0);
    CHECK_CLOSE(tr->clip_norm, 1.0, 0, 0);
    CHECK(!strcmp(tr->precision, "bf16") && tr->recompute);
    CHECK(tr->eval_every.count == 200 && !tr->eval_every.epochs);
    CHECK(tr->save_every.count == 500 && tr->keep == 3);
    CHECK(tr->early_stop && !strcmp(tr->es_metric, "eval_loss") && tr->es_patience == 3);
    CHECK(tr->seed == 42 && strstr(tr->out, "runs/qwen3-sft"));
done:
    arena_free(&a);
}

static void test_qlora(void) {
    Arena a = {0};
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    if (check_file("qlora.trl", &a, s)) goto done;
    const CheckedModel *m = &s->models[0];
    CHECK(m->quantized && !strcmp(m->quant_format, "nf4") && m->quant_block == 64 && m->double_quant);
    CHECK(m->lora_rank == 8 && m->lora_all_linear);
    CHECK(m->lora_ntargets == 7 && has_target(m, "q_proj") && has_target(m, "down_proj") && !has_target(m, "lm_head"));
    const CheckedData *t = &s->data[s->train_data];
    CHECK(!strcmp(t->template_kind, "string") && !strcmp(t->template_str, "User: {prompt}\nAssistant: "));
    CHECK(t->max_len == 512 && t->pack);
    CHECK(s->train.steps == 1000 && !strcmp(s->train.schedule, "cosine") && s->train.warmup_steps == 10);
    CHECK_CLOSE(s->train.min_lr, 1e-6, 0, 1e-12);
    CHECK(s->train.save_every.count == 1 && s->train.save_every.epochs);
    CHECK(s->train.log_every.count == 10 && !s->train.log_every.epochs);   // the default
done:
    arena_free(&a);
}

static void test_scratch(void) {
    Arena a = {0};
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    if (check_file("scratch.trl", &a, s)) goto done;
    const CheckedModel *m = &s->models[0];
    CHECK(!strcmp(m->arch, "llama") && m->arch_ast != NULL && m->from == NULL);
    CHECK(m->has_config && m->cfg.vocab == 512 && m->cfg.hidden == 128 && m->cfg.layers == 4);
    CHECK(m->cfg.heads == 4 && m->cfg.kv_heads == 2 && m->cfg.head_dim == 32 && m->cfg.ffn == 344);
    CHECK(m->cfg.max_pos == 512 && !m->cfg.tie);
    CHECK_CLOSE(m->cfg.init_std, 0.02, 0, 1e-12);
    CHECK(m->tokenizer && !strcmp(m->tokenizer, "bytes"));
    CHECK(!strcmp(s->objective.kind, "pretrain") && !strcmp(s->train.precision, "fp32"));
    CHECK_CLOSE(s->train.warmup_ratio, 0.05, 1e-12, 0);
    CHECK(s->train.epochs == 2 && s->train.batch == 16 && s->train.seed == 1);
done:
    arena_free(&a);
}

static void test_roles(void) {
    Arena a = {0};
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    if (!check_file("kd.trl", &a, s)) {
        CHECK(s->nmodels == 2 && s->policy == 0 && s->objective.teacher == 1);
        CHECK(s->models[0].trainable && !s->models[1].trainable);
        CHECK_CLOSE(s->objective.temperature, 2.0, 0, 0);
        CHECK_CLOSE(s->objective.alpha, 0.5, 0, 0);
    }
    memset(s, 0, sizeof *s);
    if (!check_file("dpo-ref.trl", &a, s)) {
        CHECK(s->policy == 0 && s->objective.ref == 1 && !strcmp(s->objective.loss, "ipo"));
        CHECK_CLOSE(s->objective.beta, 0.5, 0, 0);
    }
    memset(s, 0, sizeof *s);
    if (!check_file("dpo.trl", &a, s)) {
        CHECK(s->objective.ref == -1 && !strcmp(s->objective.loss, "sigmoid"));
        CHECK(s->models[0].lora_ntargets == 2 && has_target(&s->models[0], "v_proj"));
    }
    memset(s, 0, sizeof *s);
    if (!check_file("freeze.trl", &a, s)) {
        CHECK(s->models[0].freeze_lo == 0 && s->models[0].freeze_hi == 1 && !s->models[0].has_lora);
        CHECK(!strcmp(s->train.optimizer, "sgd") && !strcmp(s->train.schedule, "constant"));
        CHECK_CLOSE(s->train.momentum, 0.9, 0, 1e-12);
    }
    memset(s, 0, sizeof *s);
    if (!check_file("grpo.trl", &a, s)) {
        const CheckedObjective *o = &s->objective;
        CHECK(!strcmp(o->kind, "grpo") && o->group == 8 && o->max_new == 512 && o->nrewards == 3);
        CHECK_CLOSE(o->temperature, 0.9, 0, 1e-12);
        CHECK_CLOSE(o->beta, 0.04, 0, 1e-12);
        CHECK(!strcmp(o->rewards[0].fn, "exact_number") && !strcmp(o->rewards[0].field, "answer"));
        CHECK(!strcmp(o->rewards[1].fn, "regex") && !strcmp(o->rewards[1].pattern, "<think>.*</think>"));
        CHECK_CLOSE(o->rewards[1].weight, 0.2, 0, 1e-12);
        CHECK(!strcmp(o->rewards[2].fn, "exec") && !strcmp(o->rewards[2].command, "python3 reward.py"));
        CHECK_CLOSE(o->rewards[2].weight, 1.0, 0, 0);
        CHECK(s->train.log_every.count == 1 && s->train.keep == 2);
    }
    arena_free(&a);
}

// Defaults of an almost empty spec, and a few errors counted (their text is in the golden corpus).
static void test_defaults(void) {
    Arena a = {0};
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    int errors = check_text(POLICY
                            "lora policy { }\n"
                            "data train { from = \"data/text.jsonl\"; format = text; }\n"
                            "objective sft { }\n"
                            ADAMW,
                            &a, s, stderr);
    CHECK(errors == 0);
    if (errors == 0) {
        const CheckedModel *m = &s->models[0];
        CHECK(m->lora_rank == 16 && m->lora_all_linear && m->lora_ntargets == 7);
        CHECK_CLOSE(m->lora_alpha, 32, 0, 0);
        CHECK_CLOSE(m->lora_dropout, 0, 0, 0);
        CHECK(!strcmp(m->dtype, "bf16"));
        CHECK(s->train.batch == 1 && s->train.grad_accum == 1 && s->train.epochs == 1 && s->train.steps == 0);
        CHECK(!strcmp(s->train.schedule, "constant") && s->train.clip_norm == 0 && s->train.keep == 0);
        CHECK_CLOSE(s->train.beta2, 0.999, 0, 1e-12);
        CHECK(s->eval_data == -1 && s->data[0].max_len == 2048 && !strcmp(s->data[0].template_kind, "chat"));
        CHECK(s->data[0].f_text == NULL && s->data[0].f_prompt == NULL);   // the reader's defaults
        CHECK(strstr(s->train.out, "runs/mem") != NULL);
    }
    memset(s, 0, sizeof *s);
    errors = check_text("trl 1;\n"
                        "model policy { from = \"../../tests/fixtures/tiny-qwen3\"; dtype = bf61; }\n"
                        "lora policy { rank = 0; alpah = 3; }\n"
                        "data train { from = \"data/text.jsonl\"; format = text; }\n"
                        "objective sft { }\n"
                        "train { optimizer = adamw { lr = -1; }; save_every = 10; }\n",
                        &a, s, NULL);
    CHECK_MSG(errors == 5, "%d errors, expected 5 (dtype, rank, alpah, lr, save_every)", errors);
    arena_free(&a);
}

// The data options the reader takes (on_error, truncate, input/system columns, dotted template
// names as strings) reach CheckedData; .json files have their first row checked; a GRPO reward's
// `field` names a real column.
static void test_data_options(void) {
    Arena a = {0};
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    int errors = check_text(POLICY
                            "data train { from = \"../../tests/check/broken/files/rows.json\"; format = prompt_response;\n"
                            "  fields { prompt = \"instruction\"; input = \"context\"; system = \"sys\"; }\n"
                            "  template = \"qwen2.5\"; on_error = skip; truncate = left; }\n"
                            "data eval { from = \"data/eval.jsonl\"; format = prompt_response; template = \"llama3.1\"; }\n"
                            "objective sft { }\n"
                            ADAMW,
                            &a, s, stderr);
    CHECK(errors == 0);
    if (errors == 0) {
        const CheckedData *t = &s->data[s->train_data], *e = &s->data[s->eval_data];
        CHECK(t->skip_errors && t->truncate_left);
        CHECK(!e->skip_errors && !e->truncate_left);   // the defaults: fail, right
        CHECK(t->f_input && !strcmp(t->f_input, "context") && t->f_system && !strcmp(t->f_system, "sys"));
        CHECK(!strcmp(t->template_kind, "qwen2.5") && t->template_str == NULL);
        CHECK(!strcmp(e->template_kind, "llama3.1") && e->template_str == NULL);
    }
    // a .json file with the answers under another name, and a reward reading that column
    memset(s, 0, sizeof *s);
    errors = check_text(POLICY
                        "lora policy { }\n"
                        "data train { from = \"../../tests/check/broken/files/gsm.json\"; format = prompt_answer;\n"
                        "  fields { answer = \"solution\"; } }\n"
                        "objective grpo { reward correct { fn = exact_number; field = \"solution\"; } }\n"
                        ADAMW,
                        &a, s, stderr);
    CHECK(errors == 0);
    if (errors == 0) CHECK(s->objective.nrewards == 1 && !strcmp(s->objective.rewards[0].field, "solution"));
    // the same reward on a column that is not there: one error
    memset(s, 0, sizeof *s);
    errors = check_text(POLICY
                        "lora policy { }\n"
                        "data train { from = \"../../tests/check/broken/files/gsm.json\"; format = prompt_answer;\n"
                        "  fields { answer = \"solution\"; } }\n"
                        "objective grpo { reward correct { fn = exact_number; field = \"answer\"; } }\n"
                        ADAMW,
                        &a, s, NULL);
    CHECK_MSG(errors == 1, "%d errors, expected 1 (reward field)", errors);
    // prompt_answer rows may carry a system prompt (as the reader takes it); its packing is refused
    memset(s, 0, sizeof *s);
    errors = check_text(POLICY
                        "lora policy { }\n"
                        "data train { from = \"data/math.jsonl\"; format = prompt_answer; fields { system = \"sys\"; } }\n"
                        "objective grpo { reward correct { fn = exact_number; } }\n"
                        ADAMW,
                        &a, s, stderr);
    CHECK(errors == 0 && s->data[0].f_system && !strcmp(s->data[0].f_system, "sys"));
    memset(s, 0, sizeof *s);
    errors = check_text(POLICY
                        "lora policy { }\n"
                        "data train { from = \"data/math.jsonl\"; format = prompt_answer; pack = true; }\n"
                        "objective grpo { reward correct { fn = exact_number; } }\n"
                        ADAMW,
                        &a, s, NULL);
    CHECK_MSG(errors == 1, "%d errors, expected 1 (pack on prompt_answer)", errors);
    arena_free(&a);
}

// .json files whose first row cannot be looked at quickly (empty, cut short, not an array, a
// scalar row, deeply nested, a long first row, a NUL byte) are left to the reader: no error, no
// crash. A first row after other top-level keys is found.
static void test_json_first_rows(void) {
    char tmpl[] = "/tmp/trlc-check-json-XXXXXX";
    char *tdir = mkdtemp(tmpl);
    CHECK(tdir != NULL);
    if (!tdir) return;
    char path[128];
    snprintf(path, sizeof path, "%s/d.json", tdir);
    static char big[(1 << 20) + 64];
    memset(big, '[', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *cases[] = {"", "   ", "[", "[]", "{", "{}", "{\"data\": 5}", "{\"data\": []}", "{\"a\": [1, 2", "{\"a\"",
                           "{\"a\": 1 \"data\": [{\"x\": 1}]}", "[1, 2]", "[\"text\"]", "{5: 1}", "\xEF\xBB\xBF", "[{\"tex", big,
                           "{\"data\": [{\"te\\u0000xt\": 1}]}", "[\n\n  {\"text\": \"a\", \"text\": \"b\"}]"};
    int ncases = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < ncases; i++) {
        FILE *f = fopen(path, "wb");
        if (!f) break;
        fputs(cases[i], f);
        if (i == ncases - 2) fwrite("\0", 1, 1, f);   // a NUL byte in the file
        fclose(f);
        Arena a = {0};
        CheckedSpec *s = arena_alloc(&a, sizeof *s);
        int errors = check_text(text_spec(&a, path), &a, s, NULL);
        CHECK_MSG(errors == 0, "case %d: %d errors", i, errors);
        arena_free(&a);
    }
    // found after other keys, on its own line; a typo'd column there is reported
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("{\"meta\": {\"n\": [1, {\"x\": \"]\"}]},\n \"data\": [\n\n {\"txt\": \"a\"}]}", f);
        fclose(f);
        Arena a = {0};
        CheckedSpec *s = arena_alloc(&a, sizeof *s);
        char *msg = NULL;
        size_t len = 0;
        FILE *ms = open_memstream(&msg, &len);
        int errors = check_text(text_spec(&a, path), &a, s, ms ? ms : stderr);
        if (ms) fclose(ms);
        CHECK_MSG(errors == 1, "%d errors, expected 1 (no text column)", errors);
        CHECK_MSG(msg && strstr(msg, "its columns: txt"), "%s", msg ? msg : "(no message)");
        free(msg);
        arena_free(&a);
    }
    remove(path);
    rmdir(tdir);
}

static void test_linear_names(void) {
    Arena a = {0};
    Diag d;
    diag_init(&d, stderr);
    LoadedSpec spec = {0};
    const char *text = "trl 1;\nimport \"qwen3\";\nimport \"qwen2\";\n";
    int rc = load_spec_text(&d, &a, "mem.trl", text, strlen(text), &spec);
    CHECK(rc == 0);
    int found = 0;
    for (int i = 0; rc == 0 && i < spec.nmods; i++) {
        const Ast *root = spec.mods[i].root;
        for (int j = 0; j < root->nkids; j++) {
            const Ast *k = root->kids[j];
            if (k->kind != AST_ARCH || (strcmp(k->name, "qwen3") && strcmp(k->name, "qwen2"))) continue;
            found++;
            const char *names[32];
            int n = check_linear_names(k, names, 32);
            CHECK_MSG(n == 8, "%s: %d linear layers", k->name, n);
            const char *want[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"};
            for (int w = 0; w < 8; w++) {
                bool ok = false;
                for (int x = 0; x < n; x++) ok |= !strcmp(names[x], want[w]);
                CHECK_MSG(ok, "%s has no linear layer %s", k->name, want[w]);
            }
            for (int x = 0; x < n; x++) CHECK(strcmp(names[x], "q_norm") && strcmp(names[x], "embed_tokens"));
        }
    }
    CHECK(found == 2);
    const char *names[32];
    CHECK(check_linear_names(NULL, names, 32) == 8);   // the built-in list
    diag_free(&d);
    arena_free(&a);
}

static void test_schema_paths(void) {
    const SchemaKey *k = schema_lookup_path("train.optimizer.lr");
    CHECK(k && !strcmp(k->name, "lr") && k->type == SK_NUM && (k->flags & SF_REQUIRED));
    k = schema_lookup_path("lora.policy.rank");
    CHECK(k && k->type == SK_INT && k->lo == 1);
    k = schema_lookup_path("objective.grpo.reward.correct.weight");
    CHECK(k && !strcmp(k->name, "weight"));
    k = schema_lookup_path("train.schedule.warmup");
    CHECK(k && k->type == SK_RATIO_OR_STEPS);
    k = schema_lookup_path("train.early_stop.patience");
    CHECK(k && k->type == SK_INT);
    CHECK(schema_lookup_path("train.optimizer.lrr") == NULL);
    CHECK(schema_lookup_path("objective.ppo.beta") == NULL);
    CHECK(schema_lookup_path("modle.policy.from") == NULL);
    CHECK(schema_lookup_path("") == NULL);
    CHECK(schema_lookup_path("train.batch.x") == NULL);
}

static Ast *num(Arena *a, double x, bool is_int) {
    Ast *v = ast_new(a, AST_NUM, (Loc){0, 0, 0});
    v->num = x;
    v->is_int = is_int;
    v->inum = (int64_t)x;
    return v;
}

// --set: overrides rewrite the AST, then the checker sees (and validates) the new values.
static void test_overrides(void) {
    Arena a = {0};
    Diag d;
    diag_init(&d, stderr);
    LoadedSpec spec = {0};
    char *path = arena_printf(&a, "%s/qlora.trl", dir);
    CHECK(load_spec(&d, &a, path, &spec) == 0);
    if (d.errors) goto done;
    Ast *root = spec.mods[spec.nmods - 1].root;
    CHECK(check_override(&d, &a, root, "train.optimizer.lr", num(&a, 5e-5, false)) == 0);
    CHECK(check_override(&d, &a, root, "lora.policy.rank", num(&a, 4, true)) == 0);
    CHECK(check_override(&d, &a, root, "train.seed", num(&a, 7, true)) == 0);               // added
    CHECK(check_override(&d, &a, root, "train.early_stop.patience", num(&a, 2, true)) == 0); // new block
    Ast *metric = ast_new(&a, AST_IDENT, (Loc){0, 0, 0});
    metric->name = "loss";
    CHECK(check_override(&d, &a, root, "train.early_stop.metric", metric) == 0);
    CHECK(d.errors == 0);
    CheckedSpec *s = arena_alloc(&a, sizeof *s);
    CHECK(check_spec(&d, &a, &spec, s) == 0);
    CHECK_CLOSE(s->train.lr, 5e-5, 0, 1e-12);
    CHECK(s->models[0].lora_rank == 4 && s->train.seed == 7);
    CHECK(s->train.early_stop && s->train.es_patience == 2 && !strcmp(s->train.es_metric, "loss"));
    // a value out of range is caught by the check, not by the override
    CHECK(check_override(&d, &a, root, "lora.policy.dropout", num(&a, 2, true)) == 0);
    FILE *sink = fopen("/dev/null", "w");
    Diag d2;
    diag_init(&d2, sink ? sink : stderr);
    memset(s, 0, sizeof *s);
    CHECK(check_spec(&d2, &a, &spec, s) == -1 && d2.errors == 1);
    // unknown paths
    int e0 = d2.errors;
    CHECK(check_override(&d2, &a, root, "train.optimizer.lrr", num(&a, 1, true)) == -1);
    CHECK(check_override(&d2, &a, root, "objective.ppo.beta", num(&a, 1, true)) == -1);
    CHECK(check_override(&d2, &a, root, "trian.seed", num(&a, 1, true)) == -1);
    CHECK(check_override(&d2, &a, root, "train", num(&a, 1, true)) == -1);
    CHECK(check_override(&d2, &a, root, "train.early_stop", num(&a, 1, true)) == -1);
    CHECK(d2.errors == e0 + 5);
    diag_free(&d2);
    if (sink) fclose(sink);
done:
    diag_free(&d);
    arena_free(&a);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_check EXAMPLES_DIR\n");
        return 2;
    }
    dir = argv[1];
    test_sft_lora();
    test_qlora();
    test_scratch();
    test_roles();
    test_defaults();
    test_data_options();
    test_json_first_rows();
    test_linear_names();
    test_schema_paths();
    test_overrides();
    return test_done("check.values");
}
