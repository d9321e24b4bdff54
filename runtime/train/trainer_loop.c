// trainer_loop.c — trainer_run (trainer.h): the run directory, tokenizer, chat template and
// datasets of the spec, the optimizer-step loop (micro-batches accumulated, the loss and the
// gradients divided by the target tokens — dpo: the pairs — of the whole accumulated batch),
// non-finite handling, logging (metrics.jsonl, TensorBoard, the progress line), evaluation (loss,
// perplexity, exact match of greedily generated responses — KV-cached decoding, runtime/gen —
// cross-checked against one teacher-forced pass) with early stopping and the best model,
// checkpoints, --resume, Ctrl-C, and the final export and summary. With the optimizer on the
// device (trainer.c) the host copies of the weights and its state are fetched for checkpoints,
// exports and generation only, a resume sends them back, and the summary gives the host<->device
// bytes of a training step.
// Not here: compiling or stepping the model (trainer.c).
#include "fsutil.h"
#include "trainer_int.h"
#include "chat.h"
#include "checkpoint.h"
#include "dataset.h"
#include "export.h"
#include "gen.h"
#include "metrics.h"
#include "tensorboard.h"
#include "tokenizer.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TR_PATH = 4096, TR_STEPS_EPOCHS = 1000000 };

typedef struct Run {
    Diag *d;
    Trainer *t;
    const CheckedSpec *cs;
    const TrainerOptions *o;
    FILE *log;
    char dir[TR_PATH];
    Tokenizer *tok;
    ChatTemplate tmpl, etmpl;
    bool has_tmpl, has_etmpl;
    DsLoader *train, *eval;
    DsBatch batch;
    MetLog *met;
    TbWriter *tb;
    MetProgress prog;
    int64_t total;             // optimizer steps planned
    int64_t samples, tokens;   // seen so far
    int64_t targets;           // learned tokens (or pairs) the training steps of this process saw
    bool warned_no_targets;    // no_targets_warning said it
    double best;               // early stopping: best metric (NaN: none)
    int64_t since_best;
    double last_loss, last_eval, last_acc, last_acc_tf;
    bool stop_early;
    GenModel *gen;             // decodes the eval prompts with the trained weights (NULL: teacher-forced only)
    int gen_max_new;           // new tokens per eval prompt at most
    int64_t xfer_first, xfer_max;   // --device cuda: host<->device bytes of step 1, most of a later step
    int64_t xfer_steps;             // training steps measured
} Run;

static int mkdir_p(Diag *d, const char *path) {
    size_t n = strlen(path);
    if (n == 0 || n >= TR_PATH) {
        diag_plain_error(d, "bad output directory `%s`", path);
        return -1;
    }
    char failed[TR_PATH];
    if (fs_mkdir_p(path, 0777, failed, sizeof failed) != 0) {
        diag_plain_error(d, "cannot create directory `%s`: %s", failed, strerror(errno));
        return -1;
    }
    return 0;
}

// dir + "/" + name into buf; false (reported) when too long.
static bool join(Diag *d, char *buf, size_t cap, const char *dir, const char *name) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        diag_plain_error(d, "path too long: %s/%s", dir, name);
        return false;
    }
    return true;
}

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// The spec's `on_nan = skip;` in the train block.
static bool spec_nan_skip(const CheckedSpec *cs) {
    const Ast *root = cs->spec;
    for (int i = 0; root && i < root->nkids; i++) {
        const Ast *b = root->kids[i];
        if (b->kind != AST_BLOCK || !b->name || strcmp(b->name, "train")) continue;
        for (int k = 0; k < b->nkids; k++) {
            const Ast *s = b->kids[k];
            if (s->kind == AST_ASSIGN && s->name && !strcmp(s->name, "on_nan") && s->a &&
                s->a->kind == AST_IDENT && s->a->name && !strcmp(s->a->name, "skip"))
                return true;
        }
    }
    return false;
}

static int open_template(Run *r, const CheckedData *cd, ChatTemplate *out) {
    const CheckedModel *m = r->t->m;
    char cfg[TR_PATH];
    const char *cfgp = NULL;
    if (m->from) {
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", m->from);
        if (file_exists(cfg)) cfgp = cfg;
    }
    const char *v = "plain";
    if (cd->template_kind && !strcmp(cd->template_kind, "chat")) v = "chat";
    else if (cd->template_kind && !strcmp(cd->template_kind, "string") && cd->template_str) v = cd->template_str;
    else if (cd->template_kind && strcmp(cd->template_kind, "plain")) v = cd->template_kind;
    return chat_from_spec(r->d, v, cfgp, out);
}

static bool needs_template(const CheckedData *cd) { return !cd->format || strcmp(cd->format, "text") != 0; }

static DsLoader *open_data(Run *r, const CheckedData *cd, ChatTemplate *tmpl, bool train) {
    const CheckedSpec *cs = r->cs;
    DsConfig c;
    ds_config_init(&c);
    c.path = cd->from;
    if (ds_format_parse(cd->format ? cd->format : "prompt_response", &c.format)) {
        diag_plain_error(r->d, "data %s: unknown format `%s`", cd->name, cd->format);
        return NULL;
    }
    c.fields.text = cd->f_text;
    c.fields.prompt = cd->f_prompt;
    c.fields.response = cd->f_response;
    c.fields.input = cd->f_input;
    c.fields.system = cd->f_system;
    c.fields.messages = cd->f_messages;
    c.fields.chosen = cd->f_chosen;
    c.fields.rejected = cd->f_rejected;
    c.fields.answer = cd->f_answer;
    c.tmpl = tmpl;
    c.max_len = cd->max_len > 0 && cd->max_len < (1 << 30) ? (int)cd->max_len : 0;
    c.pack = cd->pack && c.max_len > 0;
    c.truncate = cd->truncate_left ? DS_TRUNC_LEFT : DS_TRUNC_RIGHT;
    c.skip_errors = cd->skip_errors;
    c.mask_prompt = cs->objective.kind && !strcmp(cs->objective.kind, "sft") ? cs->objective.mask_prompt : false;
    c.shuffle = train && cd->shuffle;
    c.seed = (uint64_t)cs->train.seed;
    c.epochs = !train ? 1 : cs->train.steps > 0 ? TR_STEPS_EPOCHS : (int)cs->train.epochs;
    return ds_open(r->d, &c, r->tok);
}

static int open_inputs(Run *r) {
    const CheckedSpec *cs = r->cs;
    const CheckedModel *m = r->t->m;
    const char *tp = m->tokenizer;
    char buf[TR_PATH];
    if (!tp && m->from) {
        snprintf(buf, sizeof buf, "%s/tokenizer.json", m->from);
        tp = buf;
    }
    if (!tp || !strcmp(tp, "bytes")) r->tok = tok_new_bytes();
    else r->tok = tok_load(r->d, tp);
    if (!r->tok) {
        if (!tp || !strcmp(tp, "bytes")) diag_plain_error(r->d, "out of memory");
        return -1;
    }
    if (tok_vocab_size(r->tok) > m->cfg.vocab) {
        diag_plain_error(r->d, "the tokenizer has %d ids but model `%s` has a vocabulary of %lld",
                         (int)tok_vocab_size(r->tok), m->name, (long long)m->cfg.vocab);
        diag_hint(r->d, "make `config { vocab = ...; }` at least %d", (int)tok_vocab_size(r->tok));
        return -1;
    }
    if (cs->train_data < 0) {
        diag_plain_error(r->d, "the spec has no `data train` block");
        return -1;
    }
    const CheckedData *td = &cs->data[cs->train_data];
    if (needs_template(td)) {   // raw text is not rendered through a chat template
        if (open_template(r, td, &r->tmpl)) return -1;
        r->has_tmpl = true;
    }
    r->train = open_data(r, td, r->has_tmpl ? &r->tmpl : NULL, true);
    if (!r->train) return -1;
    const CheckedTrain *tr = &cs->train;
    if (tr->early_stop && (cs->eval_data < 0 || tr->eval_every.count <= 0)) {
        diag_plain_error(r->d, "`early_stop` is decided at each evaluation, but the spec has no %s",
                         cs->eval_data < 0 ? "`data eval` block" : "`eval_every`");
        diag_hint(r->d, "add %s", cs->eval_data < 0 ? "`data eval { from = \"eval.jsonl\"; format = ...; }`"
                                                    : "`eval_every = 100 steps;` (or `1 epochs`) to `train`");
        return -1;
    }
    if (tr->early_stop && tr->es_metric && !strcmp(tr->es_metric, "reward")) {
        diag_plain_error(r->d, "`early_stop` on `reward` needs a reward objective (grpo), which the trainer does not run yet");
        return -1;
    }
    if (cs->eval_data >= 0) {
        const CheckedData *ed = &cs->data[cs->eval_data];
        if (needs_template(ed)) {
            if (open_template(r, ed, &r->etmpl)) return -1;
            r->has_etmpl = true;
        }
        r->eval = open_data(r, ed, r->has_etmpl ? &r->etmpl : NULL, false);
        if (!r->eval) return -1;
    }
    return 0;
}

static int64_t planned_steps(const Run *r) {
    const CheckedTrain *tr = &r->cs->train;
    if (tr->steps > 0) return tr->steps;
    // the batches ds_next_batch will return: they run on across epoch ends, and packed rows
    // depend on the token lengths (-1: diagnosed)
    int64_t micro = ds_count_batches(r->train, (int)tr->batch);
    if (micro < 0) return -1;
    int64_t s = (micro + tr->grad_accum - 1) / tr->grad_accum;
    return s > 0 ? s : 1;
}

// Checkpoint tensors: every trainable parameter.
static CkptTensor *ckpt_tensors(Run *r, size_t *n) {
    Trainer *t = r->t;
    CkptTensor *v = calloc((size_t)t->np + 1, sizeof *v);
    size_t k = 0;
    for (int i = 0; v && i < t->np; i++) {
        if (!t->ps[i].trainable) continue;
        v[k].name = t->ps[i].name;
        v[k].data = t->ps[i].data;
        v[k].ndim = t->ps[i].rank;
        for (int j = 0; j < t->ps[i].rank; j++) v[k].shape[j] = t->ps[i].shape[j];
        k++;
    }
    *n = k;
    if (!v) diag_plain_error(r->d, "out of memory");
    return v;
}

// A digest of the settings a resumed run must share with the run that saved the checkpoint
// (model, adapters, batch shape, seed, data); the number of steps, the lr or logging may change.
static void spec_digest(const CheckedSpec *cs, char *out, size_t cap) {
    const CheckedModel *m = &cs->models[cs->policy];
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s|%s|%s|%d|%d|%.17g|%d|%d|", m->name, m->arch ? m->arch : "",
                     m->from ? m->from : "", m->has_lora, m->lora_rank, m->lora_alpha, m->lora_all_linear,
                     m->freeze_hi - m->freeze_lo);
    for (int i = 0; m->has_lora && i < m->lora_ntargets && n > 0 && (size_t)n < sizeof buf; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s,", m->lora_targets[i] ? m->lora_targets[i] : "");
    if (n > 0 && (size_t)n < sizeof buf && cs->train_data >= 0) {
        const CheckedData *td = &cs->data[cs->train_data];
        n += snprintf(buf + n, sizeof buf - (size_t)n, "|%lld|%lld|%lld|%s|%s|%lld|%d|%d", (long long)cs->train.batch,
                      (long long)cs->train.grad_accum, (long long)cs->train.seed, td->from ? td->from : "",
                      td->format ? td->format : "", (long long)td->max_len, td->pack, td->shuffle);
    }
    uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (int i = 0; i < n && (size_t)i < sizeof buf; i++) h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
    snprintf(out, cap, "fnv1a64:%016llx", (unsigned long long)h);
}

static void fill_state(Run *r, CkptState *st) {
    memset(st, 0, sizeof *st);
    int ep;
    size_t idx;
    ds_position(r->train, &ep, &idx);
    st->step = r->t->step;
    st->epoch = ep;
    st->data_pos = (int64_t)idx;
    st->samples_seen = r->samples;
    st->tokens_seen = r->tokens;
    st->seed = (uint64_t)r->cs->train.seed;
    st->rng = r->t->rng;
    st->sched = r->t->sched;
    st->best_metric = r->best;
    st->evals_since_best = r->since_best;
    spec_digest(r->cs, st->spec_hash, sizeof st->spec_hash);
}

static int save_checkpoint(Run *r) {
    if (tr_sync_state(r->t) != 0) return -1;   // the optimizer on the device: its values and state
    size_t n;
    CkptTensor *v = ckpt_tensors(r, &n);
    if (!v) return -1;
    CkptState st;
    fill_state(r, &st);
    char out[TR_PATH];
    int rc = ckpt_save(r->d, r->dir, &st, v, n, &r->t->opt, (int)r->cs->train.keep, out, sizeof out);
    free(v);
    return rc;
}

// On resume: drops the lines of RUN/metrics.jsonl logged after the checkpoint's step (the steps
// the resumed run is about to redo), so that every step appears once. Lines that do not start
// with {"step": N are kept.
static int trim_metrics(Run *r, int64_t step) {
    char path[TR_PATH], tmp[TR_PATH + 32];
    if (!join(r->d, path, sizeof path, r->dir, "metrics.jsonl")) return -1;
    FILE *in = fopen(path, "rb");
    if (!in) return 0;   // nothing logged yet
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        diag_plain_error(r->d, "cannot write `%s`: %s", tmp, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        long long s = 0;
        if (sscanf(line, "{\"step\": %lld", &s) == 1 && s > step) continue;
        if (fwrite(line, 1, (size_t)n, out) != (size_t)n) rc = -1;
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc) {
        remove(tmp);
        diag_plain_error(r->d, "cannot rewrite `%s`: %s", path, strerror(errno));
    }
    return rc;
}

static int resume(Run *r) {
    char path[TR_PATH];
    int64_t step = 0;
    int f = ckpt_find_latest(r->d, r->o->resume_dir, path, sizeof path, &step);
    if (f < 0) return -1;
    if (f == 0) {
        diag_plain_error(r->d, "--resume %s: no complete checkpoint in this directory", r->o->resume_dir);
        diag_hint(r->d, "checkpoints are written every `save_every` steps into RUN/checkpoint-<step>/");
        return -1;
    }
    size_t n;
    CkptTensor *v = ckpt_tensors(r, &n);
    if (!v) return -1;
    CkptState st;
    int rc = ckpt_load(r->d, path, &st, v, n, &r->t->opt);
    free(v);
    if (rc) {
        diag_hint(r->d, "remove the damaged %s to resume from an older checkpoint", path);
        return -1;
    }
    if (tr_state_loaded(r->t) != 0) return -1;   // the optimizer on the device: sent back there
    if (st.seed != (uint64_t)r->cs->train.seed) {
        diag_plain_error(r->d, "--resume: the checkpoint was trained with seed %llu, the spec says %lld",
                         (unsigned long long)st.seed, (long long)r->cs->train.seed);
        return -1;
    }
    char want[80];
    spec_digest(r->cs, want, sizeof want);
    if (st.spec_hash[0] && strcmp(st.spec_hash, want) != 0) {
        diag_plain_error(r->d, "--resume %s: the checkpoint was written by a run with other settings", path);
        diag_hint(r->d, "the model, LoRA settings, batch, grad_accum, seed and training data must stay the same "
                  "(steps, lr and logging may change)");
        return -1;
    }
    if (st.epoch < 0 || st.epoch > INT32_MAX || st.data_pos < 0 ||
        ds_seek(r->train, (int)st.epoch, (size_t)st.data_pos))
        return -1;
    r->t->step = st.step;
    r->t->rng = st.rng;
    r->samples = st.samples_seen;
    r->tokens = st.tokens_seen;
    r->best = st.best_metric;
    r->since_best = st.evals_since_best;
    fprintf(r->log, "resuming from %s (step %lld)\n", path, (long long)st.step);
    return trim_metrics(r, st.step);
}

// Writes a config.json for a model trained from scratch (a stdlib arch) into dir.
static int scratch_config(Run *r, const char *dir) {
    const CheckedModel *m = r->t->m;
    const CheckedConfig *c = &m->cfg;
    const char *arch = m->arch, *cls = NULL;
    if (!strcmp(arch, "llama")) cls = "LlamaForCausalLM";
    else if (!strcmp(arch, "qwen2")) cls = "Qwen2ForCausalLM";
    else if (!strcmp(arch, "qwen3")) cls = "Qwen3ForCausalLM";
    if (!cls) return 1;
    if (mkdir_p(r->d, dir)) return -1;
    char p[TR_PATH];
    if (!join(r->d, p, sizeof p, dir, "config.json")) return -1;
    FILE *f = fopen(p, "w");
    if (!f) {
        diag_plain_error(r->d, "cannot write `%s`: %s", p, strerror(errno));
        return -1;
    }
    int32_t bos = tok_bos_id(r->tok), eos = ds_eos_id(r->train);
    fprintf(f,
            "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"vocab_size\": %lld,\n"
            "  \"hidden_size\": %lld,\n  \"intermediate_size\": %lld,\n  \"num_hidden_layers\": %lld,\n"
            "  \"num_attention_heads\": %lld,\n  \"num_key_value_heads\": %lld,\n  \"head_dim\": %lld,\n"
            "  \"max_position_embeddings\": %lld,\n  \"rms_norm_eps\": %.17g,\n  \"rope_theta\": %.17g,\n"
            "  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n  \"torch_dtype\": \"float32\",\n"
            "  \"initializer_range\": %.17g,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d\n}\n",
            cls, arch, (long long)c->vocab, (long long)c->hidden, (long long)c->ffn, (long long)c->layers,
            (long long)c->heads, (long long)c->kv_heads, (long long)c->head_dim, (long long)c->max_pos, c->eps,
            c->rope_theta, c->tie ? "true" : "false", c->init_std, bos >= 0 ? bos : 256, eos);
    if (fclose(f) != 0) {
        diag_plain_error(r->d, "cannot write `%s`", p);
        return -1;
    }
    return 0;
}

// The adapter (LoRA) or the model directory into dir.
static int export_to(Run *r, const char *dir) {
    Trainer *t = r->t;
    const CheckedModel *m = t->m;
    if (tr_sync_host(t) != 0) return -1;
    if (t->has_lora) {
        int n = t->lora.nmods;
        ExLoraModule *mods = calloc((size_t)n + 1, sizeof *mods);
        if (!mods) return -1;
        for (int i = 0; i < n; i++) {
            const LoraModule *lm = &t->lora.mods[i];
            mods[i].module = lm->module;
            mods[i].in = lm->in;
            mods[i].out = lm->out;
            mods[i].A = t->ps[lm->pA].data;
            mods[i].B = t->ps[lm->pB].data;
        }
        ExLoraConfig c = {0};
        c.base_model_name_or_path = m->from ? m->from : m->name;
        c.r = m->lora_rank;
        c.lora_alpha = m->lora_alpha;
        c.lora_dropout = m->lora_dropout;
        c.use_rslora = m->lora_rslora;
        // all_linear: the names of the layers actually adapted (as peft records them)
        c.target_modules = m->lora_all_linear ? NULL : m->lora_targets;
        c.n_target_modules = m->lora_all_linear ? 0 : m->lora_ntargets;
        c.dtype = ST_F32;
        int rc = ex_write_peft_adapter(r->d, dir, &c, mods, n);
        free(mods);
        return rc;
    }
    char base[TR_PATH];
    const char *bd = m->from;
    if (!bd) {
        if (!join(r->d, base, sizeof base, r->dir, ".scratch-config")) return -1;
        int rc = scratch_config(r, base);
        if (rc > 0) {
            fprintf(r->log, "note: model `%s` (arch `%s`) is not exported as a Hugging Face model (only llama, "
                    "qwen2 and qwen3 are); its weights are in the checkpoints\n", m->name, m->arch);
            return 0;
        }
        if (rc < 0) return -1;
        bd = base;
    }
    ExTensor *ts = calloc((size_t)t->np + 1, sizeof *ts);
    if (!ts) return -1;
    for (int i = 0; i < t->np; i++) {
        ts[i].name = t->ps[i].name;
        ts[i].ndim = t->ps[i].rank;
        for (int k = 0; k < t->ps[i].rank; k++) ts[i].shape[k] = t->ps[i].shape[k];
        ts[i].data = t->ps[i].data;
    }
    ExModelOptions eo = {0};
    eo.base_dir = bd;
    // the model's dtype (as save_pretrained writes a bf16 model in bf16); training ran in fp32
    eo.dtype = m->dtype && !strcmp(m->dtype, "bf16") ? ST_BF16 : m->dtype && !strcmp(m->dtype, "fp16") ? ST_F16 : ST_F32;
    int rc = ex_write_hf_model(r->d, dir, &eo, ts, t->np);
    free(ts);
    return rc;
}

// Exact match under greedy decoding, from one teacher-forced forward: a sequence's targets are all
// generated by greedy decoding exactly when, at every target position, the argmax of the logits
// (first maximum, as torch.argmax) is the target token given the reference prefix. Counts the
// sequences (seq_id within each row) of batch b with targets; *correct those fully matched.
static void exact_match(const DsBatch *b, const int32_t *pred /* (B, T) predicted tokens */, long *seqs,
                        long *correct) {
    for (int row = 0; row < b->B; row++) {
        int cur = -2;
        bool has = false, okseq = true;
        for (int t = 0; t <= b->T; t++) {
            size_t i = (size_t)row * (size_t)b->T + (size_t)t;
            int sid = t < b->T ? b->seq_id[i] : -3;
            if (sid != cur) {   // a sequence ends
                if (has) {
                    (*seqs)++;
                    *correct += okseq;
                }
                cur = sid;
                has = false;
                okseq = true;
            }
            if (t == b->T || b->targets[i] == DS_IGNORE) continue;
            has = true;
            if (pred[i] != b->targets[i]) okseq = false;
        }
    }
}

static float *gen_param(void *t, const char *name, int64_t *numel) { return tr_param(t, name, numel); }

// The generator of the evaluation: for prompt_response and prompt_answer eval data of a policy
// that generation supports (not quantized, not preference pairs). Other data (text, messages —
// whose later turns are not one response —, preference) and QLoRA keep the teacher-forced
// exact match. max_new: the longest learned part of an eval row plus a margin; 256 for
// prompt_answer, whose reference is only the final number (the model writes its solution first).
static int open_generator(Run *r, Arena *a, LoadedSpec *spec) {
    const CheckedSpec *cs = r->cs;
    if (!r->eval || r->t->per_pair || cs->policy < 0) return 0;
    const char *fmt = cs->data[cs->eval_data].format;
    bool answers = fmt && !strcmp(fmt, "prompt_answer");
    if (!fmt || (!answers && strcmp(fmt, "prompt_response"))) return 0;
    if (cs->models[cs->policy].quantized) {
        if (answers) {
            diag_plain_error(r->d, "prompt_answer eval data is scored by generation, which does not support a "
                                   "quantized policy yet");
            diag_hint(r->d, "evaluate on prompt_response data (teacher-forced exact match), or leave out `quantize`");
            return -1;
        }
        fprintf(r->log, "note: a quantized policy: eval exact match is teacher-forced (no generation yet)\n");
        return 0;
    }
    const CheckedTrain *tr = &cs->train;
    if (answers && tr->early_stop && (!tr->es_metric || !strcmp(tr->es_metric, "eval_loss"))) {
        diag_plain_error(r->d, "`early_stop` watches eval_loss, but prompt_answer eval data has no loss (only the "
                               "final answers are compared)");
        diag_hint(r->d, "write `early_stop { metric = eval_accuracy; ... }`");
        return -1;
    }
    int64_t longest = 0;
    for (size_t i = 0; !answers && i < ds_num_rows(r->eval); i++) {
        DsExample ex = {0};
        if (ds_get(r->eval, i, &ex)) return -1;
        int64_t n = 0;
        for (size_t k = 0; k < ex.n; k++) n += ex.labels[k] >= 0;
        if (n > longest) longest = n;
        ds_example_free(&ex);
    }
    r->gen_max_new = answers ? 256 : (int)(longest < 4096 ? longest + 8 : 4096 + 8);
    r->gen = gen_model_from_spec(r->d, a, spec, cs, gen_param, r->t);
    if (!r->gen) return -1;
    gen_model_set_tokenizer(r->gen, r->tok);
    return 0;
}

// Eval loss, perplexity and exact-match accuracy over the whole eval set; then early stopping
// and the best model.
static int evaluate(Run *r) {
    if (!r->eval) return 0;
    if (r->gen && tr_sync_host(r->t) != 0) return -1;   // generation reads the host's copy
    if (ds_seek(r->eval, 0, 0)) return -1;
    DsBatch b = {0};
    double sum = 0;
    long targets = 0, seqs = 0, correct = 0;
    int n, rc = 0;
    while ((n = ds_next_batch(r->eval, (int)r->cs->train.batch, &b)) > 0) {
        double l;
        if (tr_eval_batch_seq(r->t, b.tokens, b.positions, b.seq_id, b.targets, b.B, b.T, &l)) {
            rc = -1;
            break;
        }
        sum += l;
        targets += r->t->per_pair ? b.n_examples : b.n_targets;
        int64_t np = 0;
        const int32_t *pred = tr_eval_predictions(r->t, &np);
        if (!r->t->per_pair && pred && np == (int64_t)b.B * b.T) exact_match(&b, pred, &seqs, &correct);
    }
    ds_batch_free(&b);
    if (n < 0 || rc) return -1;
    double loss = targets > 0 ? sum / (double)targets : NAN;
    double acc_tf = seqs > 0 ? (double)correct / (double)seqs : NAN, acc = acc_tf;
    long gcorrect = 0, gtotal = 0;
    if (r->gen) {   // the reported accuracy: what greedy decoding actually generates
        if (gen_eval_dataset(r->gen, r->eval, r->gen_max_new, (int)r->cs->train.batch, &gcorrect, &gtotal)) return -1;
        acc = gtotal > 0 ? (double)gcorrect / (double)gtotal : NAN;
    }
    r->last_eval = loss;
    r->last_acc = acc;
    r->last_acc_tf = acc_tf;
    MetField f[16] = {{"eval_loss", loss}, {"eval_ppl", exp(loss)}, {"eval_accuracy", acc}};
    bool pairs = r->t->per_pair;   // dpo, orpo: a loss per pair, neither a perplexity nor tokens to match
    const char *on[10];
    double ov[10];
    char keys[10][48];
    int no = tr_objective_metrics(r->t, true, on, ov, 10), nf = pairs ? 1 : 3;   // orpo: TRL's eval_rewards/...
    for (int i = 0; i < no; i++) {
        snprintf(keys[i], sizeof keys[i], "eval_%s", on[i]);
        f[nf++] = (MetField){keys[i], ov[i]};
    }
    met_progress_end(&r->prog);
    fprintf(r->log, "eval step %lld", (long long)r->t->step);
    if (targets > 0)   // none: prompt_answer
        fprintf(r->log, pairs ? "  eval_loss %.4f" : "  eval_loss %.4f  ppl %.3f", loss, exp(loss));
    if (r->gen) fprintf(r->log, "  exact match %ld/%ld (%.1f%%) generated", gcorrect, gtotal, 100 * acc);
    else if (!pairs) fprintf(r->log, "  exact match %ld/%ld (%.1f%%)", correct, seqs, 100 * acc);
    if (r->gen && seqs > 0) fprintf(r->log, ", %ld/%ld teacher-forced", correct, seqs);
    fputc('\n', r->log);
    if (met_log(r->met, r->t->step, f, (size_t)nf)) return -1;
    for (int i = 0; i < no; i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "eval/%s", on[i]);
        tb_scalar(r->tb, tag, r->t->step, (float)ov[i]);
    }
    tb_scalar(r->tb, "eval/loss", r->t->step, (float)loss);
    if (!pairs) tb_scalar(r->tb, "eval/perplexity", r->t->step, (float)exp(loss));
    if (!pairs) tb_scalar(r->tb, "eval/accuracy", r->t->step, (float)acc);
    const CheckedTrain *tr = &r->cs->train;
    // lower is better; accuracy is watched as its negative
    // prompt_answer data has no eval loss: the best model is the most accurate one
    const char *metric = tr->early_stop && tr->es_metric ? tr->es_metric : targets > 0 ? "eval_loss" : "eval_accuracy";
    double v = !strcmp(metric, "loss") ? r->last_loss : !strcmp(metric, "eval_accuracy") ? -acc : loss;
    if (isfinite(v) && (isnan(r->best) || v < r->best - tr->es_min_delta)) {
        r->best = v;
        r->since_best = 0;
        char dir[TR_PATH];
        if (!join(r->d, dir, sizeof dir, r->dir, "best")) return -1;
        if (export_to(r, dir)) return -1;
    } else {
        r->since_best++;
        if (tr->early_stop && r->since_best >= tr->es_patience) {
            fprintf(r->log, "early stopping at step %lld: %s did not improve for %lld evaluations (best %.4f)\n",
                    (long long)r->t->step, metric, (long long)r->since_best,
                    !strcmp(metric, "eval_accuracy") ? -r->best : r->best);
            r->stop_early = true;
        }
    }
    return 0;
}

// Epochs finished after the data position (ep, idx).
static int64_t epochs_done(const Run *r) {
    int ep;
    size_t idx;
    ds_position(r->train, &ep, &idx);
    return ep + (idx >= ds_num_rows(r->train) ? 1 : 0);
}

static bool due(CheckedEvery e, int64_t step, int64_t ep_before, int64_t ep_after) {
    if (e.count <= 0) return false;
    if (e.epochs) return ep_after > ep_before && ep_after % e.count == 0;
    return step % e.count == 0;
}

// Every step so far had nothing to learn (each row's learned tokens: none, e.g. a response the
// tokenizer drops or max_len truncates away, or a mask that hides everything): the loss is 0 and
// the gradients too, so the run trains nothing. Said once, as a warning (a short run over such
// rows is not an error in itself), once a whole epoch (or the run) has gone by without one.
static void no_targets_warning(Run *r) {
    if (r->warned_no_targets) return;
    r->warned_no_targets = true;
    met_progress_end(&r->prog);
    const CheckedData *td = &r->cs->data[r->cs->train_data];
    diag_warning(r->d, (Loc){0, 0, 0}, "%s: no learned token in %lld training steps (%lld rows seen): every row's "
                 "targets are empty, so nothing was trained (`trlc data %s --tokenizer TOKENIZER --stats` shows "
                 "each row's learned tokens)", td->from, (long long)r->t->step, (long long)r->samples, td->from);
}

static int loop(Run *r) {
    Trainer *t = r->t;
    const CheckedTrain *tr = &r->cs->train;
    bool skip_nan = r->o->nan_skip || spec_nan_skip(r->cs);
    double t0 = met_now(), tlast = t0;
    int64_t step0 = t->step, tok_last = r->tokens;
    double tps = -1;
    const int64_t ep_start = epochs_done(r);
    while (t->step < r->total && !r->stop_early) {
        int64_t ep_before = epochs_done(r), xfer0 = tr_transfer_bytes(t);
        double loss_sum = 0;
        int64_t targets = 0;
        int micro = 0;
        for (int k = 0; k < tr->grad_accum; k++) {
            int n = ds_next_batch(r->train, (int)tr->batch, &r->batch);
            if (n < 0) return TR_SPEC_ERROR;
            if (n == 0) break;
            if (r->batch.T > t->m->cfg.max_pos && t->m->cfg.max_pos > 0) {
                met_progress_end(&r->prog);
                diag_plain_error(r->d, "%s: a row of %d tokens is longer than model `%s`'s max_pos (%lld)",
                                 r->cs->data[r->cs->train_data].from, r->batch.T, t->m->name,
                                 (long long)t->m->cfg.max_pos);
                diag_hint(r->d, "set `max_len = %lld tokens;` in `data train` to truncate longer rows",
                          (long long)t->m->cfg.max_pos);
                return TR_SPEC_ERROR;
            }
            double l;
            uint64_t dstep = (uint64_t)t->step * (uint64_t)tr->grad_accum + (uint64_t)k;
            if (tr_micro_step_seq(t, r->batch.tokens, r->batch.positions, r->batch.seq_id, r->batch.targets,
                                  r->batch.B, r->batch.T, dstep, &l))
                return TR_RUNTIME_ERROR;
            loss_sum += l;
            targets += t->per_pair ? r->batch.n_examples : r->batch.n_targets;
            r->samples += r->batch.n_examples;
            for (int b = 0; b < r->batch.B; b++) r->tokens += r->batch.lengths[b];
            micro++;
        }
        if (micro == 0) break;   // the data is used up (epochs)
        r->targets += targets;
        if (r->targets == 0 && epochs_done(r) > ep_start) no_targets_warning(r);
        int64_t step = t->step + 1;
        double loss = targets > 0 ? loss_sum / (double)targets : 0.0;
        double gn = NAN, lr = 0;
        bool finite = isfinite(loss);
        if (finite) {
            // the gradient norm before the update (tr_apply would clip a non-finite one as is)
            if (tr_grad_norm(t, targets, &gn) != 0) return TR_RUNTIME_ERROR;
            finite = isfinite(gn);
        }
        if (!finite) {
            met_progress_end(&r->prog);
            const char *what = isfinite(loss) ? "gradient norm" : "loss";
            if (!skip_nan) {
                met_check_finite(r->d, what, isfinite(loss) ? gn : loss, step);
                return TR_RUNTIME_ERROR;
            }
            fprintf(r->log, "step %lld: the %s is %s; update skipped (on_nan = skip)\n", (long long)step,
                    what, isnan(isfinite(loss) ? gn : loss) ? "NaN" : "inf");
            tr_zero_grad(t);
            t->step++;
            continue;
        }
        if (tr_apply(t, targets, &gn, &lr) != 0) return TR_RUNTIME_ERROR;
        int64_t xfer = tr_transfer_bytes(t) - xfer0;   // this step's inputs, outputs, norm
        if (r->xfer_steps++ == 0) r->xfer_first = xfer;
        else if (xfer > r->xfer_max) r->xfer_max = xfer;
        r->last_loss = loss;
        int64_t ep_after = epochs_done(r);
        bool log_now = due(tr->log_every, step, ep_before, ep_after) || step == r->total || step == 1;
        if (!log_now && r->prog.tty) {   // a terminal redraws the progress line every step
            double now = met_now();
            double eta = step > step0 ? (now - t0) / (double)(step - step0) * (double)(r->total - step) : -1;
            met_progress_draw(&r->prog, step, r->total, loss, lr, tps, eta);
        }
        if (log_now) {
            double now = met_now();
            tps = now > tlast ? (double)(r->tokens - tok_last) / (now - tlast) : -1;
            tlast = now;
            tok_last = r->tokens;
            double eta = step > step0 ? (now - t0) / (double)(step - step0) * (double)(r->total - step) : -1;
            MetField f[16] = {{"loss", loss}, {"lr", lr}, {"grad_norm", gn}, {"tokens_per_s", tps},
                              {"epoch", (double)ep_after}, {"elapsed", now - t0}};
            const char *on[10];
            double ov[10];
            int no = tr_objective_metrics(t, false, on, ov, 10);   // orpo: TRL's rewards/..., nll_loss, ...
            for (int i = 0; i < no; i++) f[6 + i] = (MetField){on[i], ov[i]};
            if (met_log(r->met, step, f, (size_t)(6 + no))) return TR_RUNTIME_ERROR;
            for (int i = 0; i < no; i++) {
                char tag[64];
                snprintf(tag, sizeof tag, "train/%s", on[i]);
                tb_scalar(r->tb, tag, step, (float)ov[i]);
            }
            tb_scalar(r->tb, "train/loss", step, (float)loss);
            tb_scalar(r->tb, "train/lr", step, (float)lr);
            tb_scalar(r->tb, "train/grad_norm", step, (float)gn);
            met_progress_draw(&r->prog, step, r->total, loss, lr, tps, eta);
        }
        if (due(tr->eval_every, step, ep_before, ep_after) && evaluate(r)) return TR_RUNTIME_ERROR;
        if (due(tr->save_every, step, ep_before, ep_after) && save_checkpoint(r)) return TR_RUNTIME_ERROR;
        if (r->o->interrupt && *r->o->interrupt) {
            met_progress_end(&r->prog);
            if (save_checkpoint(r)) return TR_RUNTIME_ERROR;
            fprintf(r->log, "interrupted after step %lld: checkpoint saved; continue with `trlc run %s --resume %s`\n",
                    (long long)step, r->cs->path, r->dir);
            return TR_INTERRUPTED;
        }
    }
    if (r->targets == 0 && t->step > step0) no_targets_warning(r);
    met_progress_end(&r->prog);
    return TR_OK;
}

int trainer_run(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, const TrainerOptions *o,
                TrainerSummary *sum) {
    TrainerOptions def = {0};
    if (!o) o = &def;
    Run r;
    memset(&r, 0, sizeof r);
    r.d = d;
    r.cs = cs;
    r.o = o;
    r.log = o->log ? o->log : stderr;
    r.best = NAN;
    r.last_eval = NAN;
    r.last_acc = NAN;
    r.last_acc_tf = NAN;
    r.last_loss = NAN;
    if (sum) {
        memset(sum, 0, sizeof *sum);
        sum->eval_loss = NAN;
        sum->eval_accuracy = NAN;
        sum->eval_accuracy_tf = NAN;
        sum->final_loss = NAN;
    }
    const char *dir = o->resume_dir ? o->resume_dir : o->out_dir ? o->out_dir : cs->train.out;
    if (!dir || strlen(dir) >= sizeof r.dir - 64) {
        diag_plain_error(d, "no usable output directory");
        return TR_SPEC_ERROR;
    }
    snprintf(r.dir, sizeof r.dir, "%s", dir);
    int status;
    double t_start = met_now();
    r.t = tr_new(d, a, spec, cs, o, &status);
    if (!r.t) return status;
    status = TR_SPEC_ERROR;
    if (open_inputs(&r) || open_generator(&r, a, spec)) goto out;
    r.total = planned_steps(&r);
    if (r.total < 0 || tr_set_schedule(r.t, r.total)) goto out;
    status = TR_RUNTIME_ERROR;
    if (mkdir_p(d, r.dir)) goto out;
    status = TR_SPEC_ERROR;   // a missing or damaged checkpoint is bad input
    if (o->resume_dir && resume(&r)) goto out;
    status = TR_RUNTIME_ERROR;
    char p[TR_PATH + 32];
    r.met = join(d, p, sizeof p, r.dir, "metrics.jsonl") ? met_open(d, p, o->resume_dir != NULL) : NULL;
    r.tb = r.met && join(d, p, sizeof p, r.dir, "tensorboard") ? tb_open(d, p) : NULL;
    if (!r.tb) goto out;
    met_progress_init(&r.prog, r.log);
    int64_t trainable = 0, total_params = 0;
    for (int i = 0; i < r.t->np; i++) {
        total_params += r.t->ps[i].numel;
        if (r.t->ps[i].trainable) trainable += r.t->ps[i].numel;
    }
    if (cs->train.precision && !strcmp(cs->train.precision, "bf16"))
        fprintf(r.log, "precision = bf16: %d matrix products and %d attentions on bf16 operands (fp32 accumulation), "
                "%d frozen weights stored in bf16; norms, the loss, gradients and the optimizer in fp32\n",
                r.t->autocast.products, r.t->autocast.attention, r.t->autocast.retyped);
    else if (cs->train.precision && strcmp(cs->train.precision, "fp32") != 0)
        fprintf(r.log, "note: precision = %s: computed in fp32 (fp16 needs loss scaling, not implemented)\n",
                cs->train.precision);
    fprintf(r.log, "trlc run: %s: %s (%s%s), %lld parameters, %lld trainable; %zu training rows; %lld steps -> %s\n",
            cs->path, r.t->m->name, r.t->m->arch, r.t->has_lora ? " + LoRA" : "", (long long)total_params,
            (long long)trainable, ds_num_rows(r.train), (long long)r.total, r.dir);
    tr_describe_device(r.t, r.log);
    if (r.t->gemm_acc.rewritten > 0)
        fprintf(r.log, "accumulating products: %d sums computed in their product's epilogue (alpha op(a) op(b) + c), "
                "%d of them scaled (LoRA), %d biases\n", r.t->gemm_acc.rewritten, r.t->gemm_acc.scaled,
                r.t->gemm_acc.bias);
    if (cs->train.recompute)
        fprintf(r.log, "recompute: %d layers; %d values recomputed in the backward pass, %d kept\n",
                r.t->recompute.layers, r.t->recompute.recomputed, r.t->recompute.kept);
    double t_loop = met_now();
    int64_t tok0 = r.tokens;
    status = loop(&r);
    double el = met_now() - t_loop;
    if (status != TR_OK) goto out;
    status = TR_RUNTIME_ERROR;
    if (r.eval && (isnan(r.last_eval) || r.cs->train.eval_every.count == 0) && evaluate(&r)) goto out;
    if (cs->train.save_every.count > 0 && save_checkpoint(&r)) goto out;
    char ex[TR_PATH + 16];
    if (!join(d, ex, sizeof ex, r.dir, r.t->has_lora ? "adapter" : "model") || export_to(&r, ex)) goto out;
    double tps = el > 0 ? (double)(r.tokens - tok0) / el : 0;
    fprintf(r.log, "done: %lld steps, final loss %.4f", (long long)r.t->step, r.last_loss);
    if (!isnan(r.last_eval) && r.t->per_pair) fprintf(r.log, ", eval loss %.4f", r.last_eval);
    else if (!isnan(r.last_eval)) fprintf(r.log, ", eval loss %.4f (ppl %.3f)", r.last_eval, exp(r.last_eval));
    if (!isnan(r.last_acc)) fprintf(r.log, ", exact match %.1f%%", 100 * r.last_acc);
    fprintf(r.log, ", %.0f tokens/s, %.1f s\n", tps, met_now() - t_start);
    fprintf(r.log, "  %s: %s\n  metrics: %s/metrics.jsonl, TensorBoard: %s/tensorboard\n",
            r.t->has_lora ? "adapter" : "model", ex, r.dir, r.dir);
    tr_describe_memory(r.t, r.log);
    if (r.t->prog.cuda && r.xfer_steps > 0) {
        fprintf(r.log, "  host<->device per training step: %lld bytes in the first", (long long)r.xfer_first);
        if (r.xfer_steps > 1) fprintf(r.log, ", at most %lld in the %lld after", (long long)r.xfer_max, (long long)r.xfer_steps - 1);
        fprintf(r.log, " (trainable params: %lld bytes; optimizer on the %s)\n", (long long)trainable * 4,
                r.t->copt ? "device" : "host");
    }
    if (sum) {
        sum->tokens_per_s = tps;
        if (snprintf(sum->export_dir, sizeof sum->export_dir, "%s", ex) < 0) sum->export_dir[0] = 0;
    }
    status = TR_OK;
out:
    if (sum) {
        sum->steps = r.t ? r.t->step : 0;
        sum->final_loss = r.last_loss;
        sum->eval_loss = r.last_eval;
        sum->eval_accuracy = r.last_acc;
        sum->eval_accuracy_tf = r.last_acc_tf;
        snprintf(sum->run_dir, sizeof sum->run_dir, "%s", r.dir);
    }
    if (met_close(r.met) && status == TR_OK) status = TR_RUNTIME_ERROR;
    if (tb_close(r.tb) && status == TR_OK) status = TR_RUNTIME_ERROR;
    ds_batch_free(&r.batch);
    ds_close(r.train);
    gen_model_free(r.gen);
    ds_close(r.eval);
    if (r.has_tmpl) chat_free(&r.tmpl);
    if (r.has_etmpl) chat_free(&r.etmpl);
    tok_free(r.tok);
    tr_free(r.t);
    return status;
}
