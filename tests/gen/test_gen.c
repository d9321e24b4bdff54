// test_gen.c — KV-cached generation (runtime/gen) on the tiny qwen3 / llama / qwen2 checkpoints:
// greedy ids equal transformers' generate(do_sample=False) (fixtures/greedy.txt, from
// gen_fixtures.py), the cached path equals re-running the whole forward per token, batched
// decoding of prompts of different lengths equals one-by-one decoding, sampling is reproducible
// and identical with and without the cache, the warpers equal transformers' (fixtures/warpers.txt),
// a model built from a training graph (labels and loss left out) decodes as the loaded one, the
// model compiled from a spec reading a Trainer's parameters (gen_model_from_spec), the
// data-set evaluation (prompt_answer and prompt_response rows), answer extraction, and bad inputs (missing model, bad adapter, bad ids) fail with a message.
// usage: test_gen FIXTURES_DIR (tests/gen/fixtures) MODELS_DIR (tests/fixtures) SPEC (sharp-lora.trl)
#include "check.h"
#include "dataset.h"
#include "export.h"
#include "gen.h"
#include "load.h"
#include "lora.h"
#include "lower.h"
#include "safetensors.h"
#include "test.h"
#include "trainer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fixdir, *modeldir;

typedef struct Case {
    char model[32];
    int32_t prompt[64];
    int plen;
    int32_t want[64];
    int nwant;
} Case;

static int read_cases(Case *cs, int cap) {
    char path[1024], line[4096];
    snprintf(path, sizeof path, "%s/greedy.txt", fixdir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return 0;
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        Case *c = &cs[n];
        memset(c, 0, sizeof *c);
        char *tokp = strtok(line, " \n");
        if (!tokp) continue;
        snprintf(c->model, sizeof c->model, "%s", tokp);
        c->plen = atoi(strtok(NULL, " \n"));
        for (int i = 0; i < c->plen && i < 64; i++) c->prompt[i] = atoi(strtok(NULL, " \n"));
        strtok(NULL, " \n");   // |
        char *t;
        while ((t = strtok(NULL, " \n")) && c->nwant < 64) c->want[c->nwant++] = atoi(t);
        n++;
    }
    fclose(f);
    return n;
}

static GenModel *open_model(Diag *d, const char *name, const char *adapter) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", modeldir, name);
    return gen_model_open(d, path, adapter);
}

// A fixture name of greedy.txt → its model: tests/fixtures/<name>, or for qwen3-sharp (written by
// gen_fixtures.py) tests/gen/fixtures/qwen3-sharp; "+lora" / "+peft" add the adapter.
static GenModel *open_fixture_model(Diag *d, const char *name) {
    char path[1024], adapter[1024];
    bool sharp = !strncmp(name, "qwen3-sharp", 11);
    snprintf(path, sizeof path, "%s/%s", sharp ? fixdir : modeldir, sharp ? "qwen3-sharp" : "tiny-qwen3");
    if (!strcmp(name, "qwen3-sharp+lora")) snprintf(adapter, sizeof adapter, "%s/qwen3-sharp-lora", fixdir);
    else if (!strcmp(name, "tiny-qwen3+peft")) snprintf(adapter, sizeof adapter, "%s/peft-tiny-qwen3", modeldir);
    else adapter[0] = 0;
    if (!sharp && strncmp(name, "tiny-qwen3", 10)) return open_model(d, name, NULL);
    return gen_model_open(d, path, adapter[0] ? adapter : NULL);
}

static bool same_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static void test_models(void) {
    Case cs[32];
    int n = read_cases(cs, 32);
    CHECK(n == 24);
    const char *models[] = {"tiny-qwen3", "tiny-llama", "tiny-qwen2", "tiny-qwen3+peft", "qwen3-sharp",
                            "qwen3-sharp+lora"};
    for (int mi = 0; mi < 6; mi++) {
        Diag d;
        diag_init(&d, stderr);
        GenModel *m = open_fixture_model(&d, models[mi]);
        CHECK_MSG(m != NULL, "%s does not open", models[mi]);
        if (!m) {
            diag_free(&d);
            continue;
        }
        const int32_t *prompts[8];
        int plens[8], nb = 0, idx[8];
        GenOptions o;
        gen_options_init(&o);
        o.max_new = 12;
        int matched = 0;
        for (int i = 0; i < n; i++) {
            if (strcmp(cs[i].model, models[mi])) continue;
            const int32_t *p = cs[i].prompt;
            GenResult a, b;
            o.no_cache = false;
            int rc = gen_generate(m, &p, &cs[i].plen, 1, &o, &a);
            CHECK(rc == 0);
            o.no_cache = true;
            int rc2 = gen_generate(m, &p, &cs[i].plen, 1, &o, &b);
            CHECK(rc2 == 0);
            if (rc == 0) {
                bool ok = same_ids(a.ids[0], a.len[0], cs[i].want, cs[i].nwant);
                CHECK_MSG(ok, "%s prompt %d: cached greedy ids differ from transformers'", models[mi], i);
                matched += ok;
            }
            if (rc == 0 && rc2 == 0)
                CHECK_MSG(same_ids(a.ids[0], a.len[0], b.ids[0], b.len[0]), "%s prompt %d: cache != no cache",
                          models[mi], i);
            gen_result_free(&a);
            gen_result_free(&b);
            prompts[nb] = cs[i].prompt;
            plens[nb] = cs[i].plen;
            idx[nb++] = i;
        }
        printf("%s: %d/%d prompts equal transformers' greedy ids (12 new tokens)\n", models[mi], matched, nb);
        // batched: all prompts (lengths 5, 1, 9, 2) at once
        o.no_cache = false;
        GenResult r;
        CHECK(gen_generate(m, prompts, plens, nb, &o, &r) == 0);
        for (int k = 0; k < nb && r.ids; k++)
            CHECK_MSG(same_ids(r.ids[k], r.len[k], cs[idx[k]].want, cs[idx[k]].nwant), "%s batched row %d differs",
                      models[mi], k);
        gen_result_free(&r);
        // sampling: reproducible, and the same with and without the cache (same draws in order)
        GenOptions s = o;
        s.sample = true;
        s.temperature = 1.5;
        s.top_k = 50;
        s.top_p = 0.95;
        s.seed = 1234;
        s.stop_ids[0] = 3;   // a stop id: rows may stop early
        s.nstop_ids = 1;
        GenResult x, y, z;
        CHECK(gen_generate(m, prompts, plens, nb, &s, &x) == 0);
        CHECK(gen_generate(m, prompts, plens, nb, &s, &y) == 0);
        s.no_cache = true;
        CHECK(gen_generate(m, prompts, plens, nb, &s, &z) == 0);
        int differ = 0;
        for (int k = 0; k < nb && x.ids && y.ids && z.ids; k++) {
            CHECK(same_ids(x.ids[k], x.len[k], y.ids[k], y.len[k]));
            CHECK_MSG(same_ids(x.ids[k], x.len[k], z.ids[k], z.len[k]), "%s sampled row %d: cache != no cache",
                      models[mi], k);
            differ += !same_ids(x.ids[k], x.len[k], cs[idx[k]].want, cs[idx[k]].nwant);
            for (int t = 0; t < x.len[k]; t++) CHECK(x.ids[k][t] != 3 || t == x.len[k] - 1);
        }
        if (mi == 1 || mi == 2 || mi >= 4) CHECK_MSG(differ > 0, "%s: sampling at temperature 1.5 equals greedy on every row", models[mi]);
        gen_result_free(&x);
        gen_result_free(&y);
        gen_result_free(&z);
        gen_model_free(m);
        diag_free(&d);
    }
}


// Parameters loaded by the test itself, for gen_model_from_graph.
typedef struct Params {
    const char *names[64];
    float *data[64];
    int64_t numel[64];
    int n;
} Params;

static float *get_param(void *ctx, const char *name, int64_t *numel) {
    Params *p = ctx;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->names[i], name)) {
            *numel = p->numel[i];
            return p->data[i];
        }
    return NULL;
}

// A model of modeldir lowered alone (an empty spec: the model and objective `objective`), as
// gen_model_from_graph's tests build it; hf_model_free frees it.
typedef struct HfModel {
    Diag d;
    Arena a;
    char dir[1024];   // modeldir/<name>
    HfConfig hf;
    IrGraph g;
    LowerResult res;
} HfModel;

// The lowering's status (the config and the empty spec are CHECKed here).
static int hf_model_lower(HfModel *m, const char *name, const char *arch, const char *objective) {
    diag_init(&m->d, stderr);
    m->a = (Arena){0};
    snprintf(m->dir, sizeof m->dir, "%s/%s", modeldir, name);
    CHECK(hf_config_load(&m->d, m->dir, &m->hf) == 0);
    LoadedSpec spec = {0};
    CHECK(load_spec_text(&m->d, &m->a, "t.trl", "trl 1;\n", 7, &spec) == 0);
    const HfConfig *hf = &m->hf;
    LowerModel lm = {.name = "m", .arch = arch, .hf = hf};
    lm.cfg = (CheckedConfig){.vocab = hf->vocab_size, .hidden = hf->hidden_size, .layers = hf->num_hidden_layers,
                             .heads = hf->num_attention_heads, .kv_heads = hf->num_key_value_heads,
                             .head_dim = hf->head_dim, .ffn = hf->intermediate_size,
                             .max_pos = hf->max_position_embeddings, .eps = hf->rms_norm_eps,
                             .rope_theta = hf->rope.theta, .init_std = 0.02, .tie = hf->tie_word_embeddings};
    LowerOptions lo;
    lower_options_init(&lo);
    lo.objective = objective;
    ir_graph_init(&m->g, &m->d, IR_F32);
    return lower_graph(&m->d, &m->a, &spec, &lm, &lo, &m->g, &m->res);
}

static void hf_model_free(HfModel *m) {
    ir_graph_free(&m->g);
    arena_free(&m->a);
    diag_free(&m->d);
}

// ps gets m's parameters (at most 64): LoRA's A a fixed pattern, its B zeros, every other one
// read from the checkpoint ck (CHECKed); free them with params_free.
static void params_read(HfModel *m, StCheckpoint *ck, Params *ps) {
    for (int i = 0; ck && i < m->res.nparams && i < 64; i++) {
        const IrNode *n = ir_node(&m->g, m->res.params[i].id);
        int64_t shape[IR_MAX_RANK], numel = 1;
        for (int k = 0; k < n->shape.rank; k++) numel *= (shape[k] = n->shape.d[k].coef);
        ps->names[ps->n] = m->res.params[i].name;
        ps->numel[ps->n] = numel;
        ps->data[ps->n] = calloc((size_t)numel, sizeof(float));
        if (strstr(m->res.params[i].name, "lora_A"))
            for (int64_t k = 0; k < numel; k++) ps->data[ps->n][k] = (float)((k % 7) - 3) * 0.1f;   // B stays 0
        else if (!strstr(m->res.params[i].name, "lora_B"))
            CHECK(st_checkpoint_read_f32(&m->d, ck, m->res.params[i].name, n->shape.rank, shape, ps->data[ps->n]) == 0);
        ps->n++;
    }
}

static void params_free(Params *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->data[i]);
}

// tiny-qwen3 lowered with the sft objective (inputs tokens, pos, labels; outputs logits, loss):
// the decode graph keeps only what the logits need, and decodes as gen_model_open's model.
static void test_from_graph(void) {
    HfModel hm;
    int rc = hf_model_lower(&hm, "tiny-qwen3", "qwen3", "sft");
    CHECK(rc == 0 && hm.res.loss != IR_NONE);
    Params ps = {0};
    StCheckpoint *ck = rc == 0 ? st_checkpoint_open(&hm.d, hm.dir) : NULL;
    CHECK(ck != NULL);
    params_read(&hm, ck, &ps);
    st_checkpoint_close(ck);
    GenModel *gm = rc == 0 ? gen_model_from_graph(&hm.d, &hm.g, get_param, &ps) : NULL;
    GenModel *om = gen_model_open(&hm.d, hm.dir, NULL);
    CHECK(gm != NULL && om != NULL);
    if (gm && om) {
        int32_t p1[] = {5, 17, 33, 3, 40}, p2[] = {300, 12};
        const int32_t *pp[] = {p1, p2};
        int pl[] = {5, 2};
        GenOptions o;
        gen_options_init(&o);
        o.max_new = 6;
        o.sample = true;
        o.temperature = 3.0;   // flat enough that the rows wander
        o.seed = 7;
        GenResult x, y, z;
        CHECK(gen_generate(gm, pp, pl, 2, &o, &x) == 0);
        CHECK(gen_generate(om, pp, pl, 2, &o, &y) == 0);
        o.no_cache = true;
        CHECK(gen_generate(gm, pp, pl, 2, &o, &z) == 0);   // the uncached path binds dummy labels
        for (int b = 0; b < 2 && x.ids && y.ids && z.ids; b++) {
            CHECK_MSG(same_ids(x.ids[b], x.len[b], y.ids[b], y.len[b]), "row %d: training graph != loaded model", b);
            CHECK(same_ids(x.ids[b], x.len[b], z.ids[b], z.len[b]));
        }
        gen_result_free(&x);
        gen_result_free(&y);
        gen_result_free(&z);
    }
    gen_model_free(gm);
    gen_model_free(om);
    params_free(&ps);
    hf_model_free(&hm);
}

// gen_eval_dataset on prompt_answer and prompt_response files whose references are built from what
// the model really generates (right) and altered (wrong): the counts must be exact.
static void test_eval_dataset(void) {
    Diag d;
    diag_init(&d, stderr);
    GenModel *m = open_model(&d, "tiny-qwen3", NULL);
    CHECK(m != NULL);
    if (!m) {
        diag_free(&d);
        return;
    }
    const Tokenizer *tok = gen_model_tokenizer(m);
    CHECK(tok != NULL);
    const char *qs[] = {"x = 7", "count: 12", "value 5", "say 3"};
    char got[4][256];
    for (int i = 0; i < 4; i++) {   // what greedy decoding writes for each question (4 tokens)
        TokIds ids = {0};
        CHECK(tok_encode(tok, qs[i], strlen(qs[i]), true, &ids) == 0);
        const int32_t *p = ids.v;
        int pl = (int)ids.n;
        GenOptions o;
        gen_options_init(&o);
        o.max_new = 4;
        o.nstop_ids = gen_model_eos(m, o.stop_ids, GEN_MAX_STOP);
        GenResult r;
        CHECK(gen_generate(m, &p, &pl, 1, &o, &r) == 0);
        size_t n = 0;
        char *t = r.ids ? tok_decode(tok, r.ids[0], (size_t)r.len[0], true, &n) : NULL;
        snprintf(got[i], sizeof got[i], "%s", t ? t : "");
        free(t);
        gen_result_free(&r);
        tok_ids_free(&ids);
    }
    char num[64];
    CHECK_MSG(gen_extract_number(got[0], num, sizeof num), "greedy output `%s` holds no number", got[0]);
    // prompt_answer: rows 0 and 2 right (the number, GSM8K style), 1 and 3 wrong
    const char *path = "gen_eval_answers.jsonl";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) goto out;
    for (int i = 0; i < 4; i++) {
        char n2[64] = "none";
        gen_extract_number(got[i], n2, sizeof n2);
        if (i % 2) fprintf(f, "{\"question\": \"%s\", \"answer\": \"reasoning #### 999999\"}\n", qs[i]);
        else fprintf(f, "{\"question\": \"%s\", \"answer\": \"so it is #### %s\"}\n", qs[i], n2);
    }
    fclose(f);
    DsConfig c;
    ds_config_init(&c);
    c.path = path;
    c.format = DS_PROMPT_ANSWER;
    DsLoader *l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    long correct = -1, total = -1;
    if (l) CHECK(gen_eval_dataset(m, l, 4, 3, &correct, &total) == 0);
    CHECK_MSG(correct == 2 && total == 4, "prompt_answer: %ld/%ld correct, want 2/4", correct, total);
    ds_close(l);
    remove(path);
    // prompt_response: the whole response must match (rows 0 and 3 right)
    path = "gen_eval_responses.jsonl";
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) goto out;
    for (int i = 0; i < 4; i++) {
        char esc[512];
        size_t k = 0;
        const char *src = (i == 0 || i == 3) ? got[i] : "something else";
        for (const char *p = src; *p && k + 8 < sizeof esc; p++) {
            if (*p == '"' || *p == '\\') esc[k++] = '\\';
            if ((unsigned char)*p < 0x20) k += (size_t)snprintf(esc + k, sizeof esc - k, "\\u%04x", *p);
            else esc[k++] = *p;
        }
        esc[k] = 0;
        fprintf(f, "{\"prompt\": \"%s\", \"response\": \"%s\"}\n", qs[i], esc);
    }
    fclose(f);
    ds_config_init(&c);
    c.path = path;
    c.format = DS_PROMPT_RESPONSE;
    c.eos_id = -1;
    l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    if (l) CHECK(gen_eval_dataset(m, l, 4, 8, &correct, &total) == 0);
    CHECK_MSG(correct == 2 && total == 4, "prompt_response: %ld/%ld correct, want 2/4", correct, total);
    ds_close(l);
    remove(path);
out:
    gen_model_free(m);
    diag_free(&d);
}

static float *trainer_param(void *ctx, const char *name, int64_t *numel) { return tr_param(ctx, name, numel); }

// Greedy ids of the first `n` prompts of greedy.txt for fixture `name` from model m.
static void check_greedy(GenModel *m, const char *name, const char *what) {
    Case cs[32];
    int n = read_cases(cs, 32), matched = 0, total = 0;
    GenOptions o;
    gen_options_init(&o);
    o.max_new = 12;
    for (int i = 0; i < n; i++) {
        if (strcmp(cs[i].model, name)) continue;
        const int32_t *p = cs[i].prompt;
        GenResult r;
        total++;
        if (gen_generate(m, &p, &cs[i].plen, 1, &o, &r)) continue;
        bool ok = same_ids(r.ids[0], r.len[0], cs[i].want, cs[i].nwant);
        CHECK_MSG(ok, "%s: prompt %d differs from transformers' %s", what, i, name);
        matched += ok;
        gen_result_free(&r);
    }
    CHECK(total == 4);
    printf("%s: %d/%d prompts equal transformers' %s\n", what, matched, total, name);
}

// The trainer's path: a Trainer compiled from sharp-lora.trl, a GenModel from the same spec reading
// the Trainer's parameter buffers. At initialisation (LoRA B = 0) it decodes as the base model;
// with the adapter's A and B written into the Trainer's buffers, as peft with the adapter.
static void test_trainer_model(const char *spec_path) {
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    LoadedSpec spec = {0};
    CheckedSpec cs;
    int rc = load_spec(&d, &a, spec_path, &spec);
    if (rc == 0) rc = check_spec(&d, &a, &spec, &cs);
    CHECK(rc == 0);
    TrainerOptions to = {0};
    int status = 0;
    Trainer *t = rc == 0 ? tr_new(&d, &a, &spec, &cs, &to, &status) : NULL;
    CHECK(t != NULL);
    GenModel *m = t ? gen_model_from_spec(&d, &a, &spec, &cs, trainer_param, t) : NULL;
    CHECK(m != NULL);
    if (m) {
        check_greedy(m, "qwen3-sharp", "trainer (LoRA B = 0)");
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/qwen3-sharp-lora", fixdir);
        ExLoraAdapter ad;
        CHECK(ex_load_peft_adapter(&d, dir, &ad) == 0);
        int set = 0;
        for (int i = 0; i < ad.n_mods; i++)
            for (int w = 0; w < 2; w++) {
                char name[256];
                snprintf(name, sizeof name, "%s.lora_%c.weight", ad.mods[i].module, w ? 'B' : 'A');
                int64_t numel = 0;
                float *p = tr_param(t, name, &numel);
                int64_t want = (int64_t)ad.cfg.r * (w ? ad.mods[i].out : ad.mods[i].in);
                CHECK_MSG(p && numel == want, "trainer param %s", name);
                if (p && numel == want) {
                    memcpy(p, w ? ad.mods[i].B : ad.mods[i].A, (size_t)numel * sizeof(float));
                    set++;
                }
            }
        CHECK(set == 12);
        ex_lora_adapter_free(&ad);
        check_greedy(m, "qwen3-sharp+lora", "trainer with the adapter's A, B");
    }
    gen_model_free(m);
    tr_free(t);
    arena_free(&a);
    diag_free(&d);
}

// Stop strings: the row ends at the first token whose decoded prefix contains the string.
static void test_stop_strings(void) {
    Diag d;
    diag_init(&d, stderr);
    GenModel *m = open_fixture_model(&d, "qwen3-sharp");
    CHECK(m != NULL && gen_model_tokenizer(m) != NULL);
    if (m && gen_model_tokenizer(m)) {
        const Tokenizer *tok = gen_model_tokenizer(m);
        int32_t p[] = {7};
        const int32_t *pp = p;
        int pl = 1;
        GenOptions o;
        gen_options_init(&o);
        o.max_new = 12;
        GenResult full, cut;
        CHECK(gen_generate(m, &pp, &pl, 1, &o, &full) == 0);
        size_t n = 0;
        char *three = full.ids ? tok_decode(tok, full.ids[0], 3, false, &n) : NULL;
        CHECK(three && n > 0);
        if (three && n > 0) {
            const char *stop = three + n - 1;   // the last byte of the first three tokens' text
            if (((unsigned char)*stop & 0xC0) == 0x80 || (unsigned char)*stop >= 0xC0) stop = three;
            int want = 0;
            for (int k = 1; k <= full.len[0] && !want; k++) {
                size_t nk = 0;
                char *t = tok_decode(tok, full.ids[0], (size_t)k, false, &nk);
                if (t && strstr(t, stop)) want = k;
                free(t);
            }
            o.stop_strings[0] = stop;
            o.nstop_strings = 1;
            CHECK(gen_generate(m, &pp, &pl, 1, &o, &cut) == 0);
            CHECK_MSG(cut.ids && want > 0 && want <= 3 && cut.len[0] == want && same_ids(cut.ids[0], want, full.ids[0], want),
                      "stop string `%s`: %d tokens, want %d", stop, cut.ids ? cut.len[0] : -1, want);
            gen_result_free(&cut);
        }
        free(three);
        gen_result_free(&full);
    }
    gen_model_free(m);
    diag_free(&d);
}

static uint32_t lcg(uint64_t *x) {
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*x >> 33);
}

// Random requests (batch sizes, prompt lengths, ids in and out of the vocabulary, options in and
// out of range): each either fails with a reported error or returns B rows of 1..max_new tokens
// inside the vocabulary; the cached and uncached paths agree on every success.
static void test_random_requests(void) {
    Diag d;
    FILE *sink = tmpfile();
    diag_init(&d, sink ? sink : stderr);
    GenModel *m = open_model(&d, "tiny-qwen2", NULL);
    CHECK(m != NULL);
    uint64_t x = 12345;
#define NEXT() lcg(&x)
    int ok = 0, refused = 0;
    for (int it = 0; m && it < 150; it++) {
        int B = 1 + (int)(NEXT() % 5);
        int32_t *rows[5];
        int lens[5];
        bool bad = false;
        for (int b = 0; b < B; b++) {
            lens[b] = NEXT() % 20 == 0 ? 0 : 1 + (int)(NEXT() % 7);   // 0 is refused
            rows[b] = malloc(8 * sizeof(int32_t));
            for (int t = 0; t < lens[b]; t++) {
                int32_t id = NEXT() % 100 == 0 ? 256 + (int32_t)(NEXT() % 50) : (int32_t)(NEXT() % 256);   // vocab 256
                rows[b][t] = NEXT() % 100 == 0 ? -id - 1 : id;
                bad = bad || rows[b][t] < 0 || rows[b][t] >= 256;
            }
            bad = bad || lens[b] == 0;
        }
        GenOptions o;
        gen_options_init(&o);
        o.max_new = NEXT() % 15 == 0 ? -(int)(NEXT() % 2) : 1 + (int)(NEXT() % 7);
        o.sample = NEXT() % 2;
        o.temperature = NEXT() % 20 == 0 ? 0.0 : (double)(1 + NEXT() % 30) / 10.0;
        o.top_k = NEXT() % 20 == 0 ? -1 : (int)(NEXT() % 400);
        o.top_p = NEXT() % 20 == 0 ? 1.5 : (double)(1 + NEXT() % 10) / 10.0;
        o.seed = NEXT();
        o.nstop_ids = (int)(NEXT() % 3);
        for (int k = 0; k < o.nstop_ids; k++) o.stop_ids[k] = (int32_t)(NEXT() % 256);
        bad = bad || o.max_new <= 0 ||
              (o.sample && (!(o.temperature > 0) || !(o.top_p > 0) || o.top_p > 1 || o.top_k < 0));
        GenResult r, r2;
        int e0 = d.errors;
        int rc = gen_generate(m, (const int32_t *const *)rows, lens, B, &o, &r);
        CHECK_MSG(rc == (bad ? -1 : 0), "request %d: status %d, expected %s", it, rc, bad ? "a refusal" : "success");
        if (rc) {
            CHECK(d.errors > e0);
            refused++;
        } else {
            ok++;
            o.no_cache = true;
            CHECK(gen_generate(m, (const int32_t *const *)rows, lens, B, &o, &r2) == 0);
            for (int b = 0; b < B; b++) {
                CHECK(r.len[b] >= 1 && r.len[b] <= o.max_new);
                for (int t = 0; t < r.len[b]; t++) CHECK(r.ids[b][t] >= 0 && r.ids[b][t] < 256);
                CHECK_MSG(r2.ids && same_ids(r.ids[b], r.len[b], r2.ids[b], r2.len[b]), "request %d row %d: cache != no cache",
                          it, b);
            }
            gen_result_free(&r);
            gen_result_free(&r2);
        }
        for (int b = 0; b < B; b++) free(rows[b]);
    }
#undef NEXT
    printf("random requests: %d generated, %d refused with a message\n", ok, refused);
    CHECK(ok > 20 && refused > 20);
    gen_model_free(m);
    diag_free(&d);
    if (sink) fclose(sink);
}

// LoRA on lm_head (B = 0): the logits are no plain product, so the decode graph computes every
// position's logits (the fallback of the last-position gather); ids still equal transformers'.
static void test_lm_head_lora(void) {
    HfModel hm;
    int rc = hf_model_lower(&hm, "tiny-llama", "llama", "none");
    CHECK(rc == 0);
    const char *targets[] = {"lm_head"};
    LoraOptions lopt = {.rank = 2, .alpha = 4, .targets = targets, .ntargets = 1};
    LoraResult lr;
    if (rc == 0) CHECK((rc = lora_apply(&hm.d, &hm.a, &hm.g, &hm.res, &lopt, &lr)) == 0);
    CHECK(rc == 0 && lr.nmods == 1);
    Params ps = {0};
    StCheckpoint *ck = rc == 0 ? st_checkpoint_open(&hm.d, hm.dir) : NULL;
    params_read(&hm, ck, &ps);
    st_checkpoint_close(ck);
    GenModel *m = rc == 0 ? gen_model_from_graph(&hm.d, &hm.g, get_param, &ps) : NULL;
    CHECK(m != NULL);
    if (m) check_greedy(m, "tiny-llama", "llama with LoRA on lm_head (all-position logits)");
    gen_model_free(m);
    params_free(&ps);
    hf_model_free(&hm);
}

// A session (the cache kept between calls) gives the same ids as fresh generation for a growing
// conversation, a prompt that differs from the cache in the middle, one shorter than the cache,
// one that outgrows its capacity, and with sampling.
static void test_session(void) {
    Diag d;
    diag_init(&d, stderr);
    GenModel *m = open_fixture_model(&d, "qwen3-sharp");
    GenSession *s = gen_session_new(m);
    CHECK(m != NULL && s != NULL);
    int32_t conv[256];
    int n = 0;
    int32_t start[] = {7, 20, 30};
    memcpy(conv, start, sizeof start);
    n = 3;
    int turns = 0, same = 0;
    for (int turn = 0; m && s && turn < 7; turn++) {
        GenOptions o;
        gen_options_init(&o);
        o.max_new = 6 + turn;
        o.sample = turn >= 4;
        o.temperature = 1.2;
        o.seed = (uint64_t)turn;
        if (turn == 2) conv[1] = 21;          // an edit in the middle: only conv[0] is reused
        if (turn == 3) n = 5;                 // shorter than what is cached
        if (turn == 5)                        // grows past the capacity
            for (int k = 0; k < 60 && n < 200; k++) conv[n++] = (int32_t)(k * 5 % 384);
        GenResult a, b;
        const int32_t *pp = conv;
        int before = n;
        CHECK(gen_session_generate(s, conv, n, &o, &a) == 0);
        if (a.ids) CHECK_MSG(gen_session_cached(s) == before + a.len[0] - 1, "turn %d: %d tokens cached", turn,
                             gen_session_cached(s));
        CHECK(gen_generate(m, &pp, &n, 1, &o, &b) == 0);
        turns++;
        bool ok = a.ids && b.ids && same_ids(a.ids[0], a.len[0], b.ids[0], b.len[0]);
        CHECK_MSG(ok, "session turn %d: ids differ from fresh generation", turn);
        same += ok;
        if (ok && n + a.len[0] + 2 < 256) {   // the reply and a user turn join the conversation
            memcpy(conv + n, a.ids[0], (size_t)a.len[0] * sizeof *conv);
            n += a.len[0];
            conv[n++] = 11;
            conv[n++] = (int32_t)(40 + turn);
        }
        gen_result_free(&a);
        gen_result_free(&b);
    }
    printf("session: %d/%d turns equal fresh generation\n", same, turns);
    CHECK(turns == 7);
    gen_session_free(s);
    gen_model_free(m);
    diag_free(&d);
}

static float parse_f(const char *s) { return !strcmp(s, "-inf") ? -INFINITY : strtof(s, NULL); }

static void test_warpers(void) {
    char path[1024], line[8192];
    snprintf(path, sizeof path, "%s/warpers.txt", fixdir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    int cases = 0;
    double maxerr = 0;
    while (fgets(line, sizeof line, f)) {
        int k = atoi(strtok(line, " \n"));
        double p = atof(strtok(NULL, " \n")), t = atof(strtok(NULL, " \n"));
        strtok(NULL, " \n");
        float in[64], want[64];
        int n = 0, m = 0;
        char *s;
        while ((s = strtok(NULL, " \n")) && strcmp(s, "|") && n < 64) in[n++] = parse_f(s);
        while ((s = strtok(NULL, " \n")) && m < 64) want[m++] = parse_f(s);
        CHECK(n == m && n == 16);
        gen_warp(in, n, t, k, p);
        for (int i = 0; i < n; i++) {
            bool ok = isinf(want[i]) ? isinf(in[i]) && in[i] < 0 : fabsf(in[i] - want[i]) <= 1e-6f * (1 + fabsf(want[i]));
            CHECK_MSG(ok, "warper case %d (k=%d p=%g t=%g) element %d: %g, transformers %g", cases, k, p, t, i, in[i],
                      want[i]);
            if (!isinf(want[i])) maxerr = fmax(maxerr, fabs(in[i] - want[i]));
        }
        cases++;
    }
    fclose(f);
    CHECK(cases == 8);
    printf("warpers: %d cases equal transformers' (max |diff| %.3g)\n", cases, maxerr);
    float l[4] = {1, 3, 3, 2};
    CHECK(gen_argmax(l, 4) == 1);
}

static void test_extract(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"She has 3 apples and buys 15 more, so 18.\n#### 18", "18"},
        {"#### 1,234", "1234"},
        {"so the answer is 18.0", "18"},
        {"answer: 18.50 dollars", "18.5"},
        {"-5 degrees, then -7", "-7"},
        {"#### 42 <|im_end|>", "42"},
        {"12 #### 7 and then 9", "9"},
        {"007", "7"},
        {"cost $1,000,000.", "1000000"},
        {"x = 0.0", "0"},
        {"-0", "0"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool ok = gen_extract_number(cases[i].text, out, sizeof out);
        CHECK_MSG(ok && !strcmp(out, cases[i].want), "extract(\"%s\") = %s, want %s", cases[i].text, ok ? out : "(none)",
                  cases[i].want);
    }
    CHECK(!gen_extract_number("no number here", out, sizeof out));
    CHECK(!gen_extract_number("", out, sizeof out));
    CHECK(gen_answer_matches("... so 18.0\n#### 18.0", "18"));
    CHECK(gen_answer_matches("#### 1,234", "1234"));
    CHECK(!gen_answer_matches("#### 17", "18"));
    CHECK(!gen_answer_matches("nothing", "18"));
}

static void test_bad_inputs(void) {
    FILE *sink = tmpfile();
    Diag d;
    diag_init(&d, sink ? sink : stderr);
    CHECK(gen_model_open(&d, "/nonexistent/model", NULL) == NULL);
    CHECK(d.errors > 0);
    char adapter[1024];
    snprintf(adapter, sizeof adapter, "%s/peft-tiny-qwen3", modeldir);
    // a qwen3 adapter on llama: the shapes do not match
    int e0 = d.errors;
    CHECK(open_model(&d, "tiny-llama", adapter) == NULL);
    CHECK(d.errors > e0);
    e0 = d.errors;
    CHECK(open_model(&d, "tiny-qwen3", "/nonexistent/adapter") == NULL);
    CHECK(d.errors > e0);
    // the adapter where it belongs opens and generates
    GenModel *m = open_model(&d, "tiny-qwen3", adapter);
    CHECK(m != NULL);
    if (m) {
        GenOptions o;
        gen_options_init(&o);
        o.max_new = 4;
        int32_t bad[2] = {5, 100000};
        const int32_t *p = bad;
        int plen = 2;
        GenResult r;
        e0 = d.errors;
        CHECK(gen_generate(m, &p, &plen, 1, &o, &r) != 0);   // id outside the vocabulary
        CHECK(d.errors > e0);
        plen = 0;
        CHECK(gen_generate(m, &p, &plen, 1, &o, &r) != 0);   // empty prompt
        plen = 1;
        o.max_new = 0;
        CHECK(gen_generate(m, &p, &plen, 1, &o, &r) != 0);
        o.max_new = 4;
        CHECK(gen_generate(m, &p, &plen, 1, &o, &r) == 0);
        CHECK(r.len && r.len[0] == 4);
        gen_result_free(&r);
        gen_model_free(m);
    }
    diag_free(&d);
    if (sink) fclose(sink);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_gen FIXTURES_DIR MODELS_DIR SPEC\n");
        return 2;
    }
    fixdir = argv[1];
    modeldir = argv[2];
    test_warpers();
    test_extract();
    test_models();
    test_bad_inputs();
    test_from_graph();
    test_eval_dataset();
    test_stop_strings();
    test_random_requests();
    test_lm_head_lora();
    test_session();
    test_trainer_model(argv[3]);
    return test_done("gen");
}
