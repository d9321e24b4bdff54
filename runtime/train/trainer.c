// trainer.c — the Trainer object (trainer.h): compiles the policy twice through pipeline.h (a
// training graph with LoRA dropout and the backward, an evaluation graph without either),
// allocates one fp32 master buffer per parameter bound to both CPU programs, loads the weights
// from the model directory or initialises them from the seed, and runs one micro-batch / one
// optimizer update at a time.
// With --device cuda the optimizer runs on the device (optim_cuda.h) over device-resident
// weights, and the host copies are fetched only when asked for (tr_sync_host / tr_sync_state).
// Objectives with a second model: kd runs the teacher's forward and binds its logits (on the
// device they stay there: the student's program copies them from the teacher's output buffer,
// cuda_bind_output); dpo runs the reference's forward and binds its sequence log-probs (computed
// in the reference's graph, or here from its logits). orpo has none: it binds `nll_labels` (its
// NLL's targets, prompt included) and sums its metrics output for tr_objective_metrics.
// Not here: the data, the loop, checkpoints or export (trainer_loop.c); grpo (needs generation).
#include "trainer_int.h"
#include "pipeline.h"
#include "linear_ce.h"
#include "memplan.h"
#include "env.h"
#include "hfconfig.h"
#include "safetensors.h"
#ifdef TRLC_HAVE_CUDA
#include "exec.h"
#include "optim_cuda.h"
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- the programs: the CPU interpreter or the GPU executor, one interface for the trainer

static int prog_bind(TrProg *p, const char *name, const void *data, size_t nbytes) {
#ifdef TRLC_HAVE_CUDA
    if (p->cuda) return cuda_bind_name(p->cuda, name, data, nbytes);
#endif
    return cpu_bind_name(p->cpu, name, data, nbytes);
}

static int prog_run(TrProg *p, const int64_t *sym, uint64_t step) {
#ifdef TRLC_HAVE_CUDA
    if (p->cuda) return cuda_run(p->cuda, sym, step);
#endif
    return cpu_run(p->cpu, sym, step);
}

static const CpuTensor *prog_output(const TrProg *p, int i) {
#ifdef TRLC_HAVE_CUDA
    if (p->cuda) return cuda_output(p->cuda, i);
#endif
    return cpu_output(p->cpu, i);
}

static void prog_free(TrProg *p) {
#ifdef TRLC_HAVE_CUDA
    cuda_program_free(p->cuda);
#endif
    cpu_program_free(p->cpu);
    p->cpu = NULL, p->cuda = NULL;
}

// Rng streams of a run's seed: 0 the run state, 1 weight init, 2 LoRA init, 3 a second model's init.
enum { TR_STREAM_RUN = 0, TR_STREAM_INIT = 1, TR_STREAM_LORA = 2, TR_STREAM_AUX = 3 };

static double rng_unit(void *ctx) { return rng_uniform_f64((Rng *)ctx); }

// The policy's training graph (train) or evaluation graph into g: pipeline.h up to mixed precision
// (pl_finish_graph, once the weights are in place).
static int compile(Trainer *t, LoadedSpec *spec, IrGraph *g, LowerResult *res, bool train) {
    ir_graph_init(g, t->d, IR_F32);
    LowerOptions opt;
    lower_options_from_spec(t->cs, &opt);
    const char *k = opt.objective;
    if (strcmp(k, "sft") && strcmp(k, "pretrain") && strcmp(k, "dpo") && strcmp(k, "orpo") && strcmp(k, "kd")) {
        diag_error(t->d, t->cs->objective.loc, "the trainer does not run the `%s` objective yet",
                   t->cs->objective.kind ? t->cs->objective.kind : "?");
        diag_hint(t->d, "`trlc run` trains sft, pretrain, dpo, orpo and kd");
        return -1;
    }
    PlOptions o = {.train = train, .need_loss = true, .lora = &t->lora, .recompute = &t->recompute};
    if (pl_compile_policy(t->d, t->a, spec, t->cs, &o, g, res) != 0) return -1;
    t->per_pair = res->loss_per && !strcmp(res->loss_per, "pair");
    return 0;
}

static int find_output(const IrGraph *g, const char *name) {
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, name)) return i;
    return -1;
}

// Parameter buffers from the training graph's LowerResult.
static int alloc_params(Trainer *t) {
    t->np = t->res.nparams;
    t->ps = calloc((size_t)t->np + 1, sizeof *t->ps);
    if (!t->ps) goto oom;
    for (int i = 0; i < t->np; i++) {
        const LowerParam *lp = &t->res.params[i];
        const IrNode *n = ir_node(&t->g, lp->id);
        TrParam *p = &t->ps[i];
        p->name = lp->name;
        p->rank = n->shape.rank;
        p->numel = 1;
        p->grad_out = -1;
        p->lora = -1;
        p->oi = -1;
        for (int k = 0; k < n->shape.rank; k++) {
            if (n->shape.d[k].syms || n->shape.d[k].coef < 0 || n->shape.d[k].coef > ((int64_t)1 << 40) ||
                p->numel > ((int64_t)1 << 40) / (n->shape.d[k].coef ? n->shape.d[k].coef : 1)) {
                diag_plain_error(t->d, "parameter `%s` has an unsupported shape", p->name);
                return -1;
            }
            p->shape[k] = n->shape.d[k].coef;
            p->numel *= p->shape[k];
        }
        p->trainable = n->trainable;
        p->quant = -1;
        p->bytes = (size_t)p->numel * (n->dtype == IR_U8 ? 1 : sizeof(float));
        p->data = calloc(p->bytes ? p->bytes : 1, 1);
        if (!p->data) goto oom;
        if (p->trainable) {
            p->grad = calloc((size_t)(p->numel ? p->numel : 1), sizeof(float));
            if (!p->grad) goto oom;
            char gname[1024];
            snprintf(gname, sizeof gname, "grad:%s", p->name);
            p->grad_out = find_output(&t->g, gname);
            if (p->grad_out < 0) {
                diag_plain_error(t->d, "internal: no gradient output for `%s`", p->name);
                return -1;
            }
        }
    }
    for (int i = 0; i < t->lora.nmods; i++) {
        t->ps[t->lora.mods[i].pA].lora = i;
        t->ps[t->lora.mods[i].pB].lora = i;
    }
    for (int i = 0; i < t->lora.nquant; i++) {
        t->ps[t->lora.quant[i].pq].quant = i;
        t->ps[t->lora.quant[i].pa].quant = i;
    }
    return 0;
oom:
    diag_plain_error(t->d, "out of memory allocating the model's parameters");
    return -1;
}

// The weights of model m (params ps/res, LoRA adapters skipped): from its checkpoint directory, or
// the declared inits drawn from stream `stream` of the seed.
static int load_weights(Trainer *t, const CheckedModel *m, const LowerResult *res, TrParam *ps, int np,
                        const bool *skip, uint32_t stream) {
    Rng ri;
    rng_stream(&ri, (uint64_t)t->cs->train.seed, stream);
    StCheckpoint *ck = NULL;
    if (m->from) {
        ck = st_checkpoint_open(t->d, m->from);
        if (!ck) return -1;
        if (m->has_hf && hf_config_check_checkpoint(t->d, &m->hf, ck) != 0) {
            st_checkpoint_close(ck);
            return -1;
        }
    }
    int rc = 0;
    for (int i = 0; i < np && rc == 0; i++) {
        TrParam *p = &ps[i];
        const LowerParam *lp = &res->params[i];
        if (p->lora >= 0 || p->quant >= 0 || (skip && skip[i])) continue;
        if (ck) {
            rc = st_checkpoint_read_f32(t->d, ck, p->name, p->rank, p->shape, p->data);
            continue;
        }
        switch (lp->init) {
        case LOWER_INIT_ONES:
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = 1.0f;
            break;
        case LOWER_INIT_ZEROS: break;
        case LOWER_INIT_NORMAL:
            rng_normal_fill(&ri, p->data, (size_t)p->numel, 0.0f, (float)lp->std);
            break;
        default:   // no initialiser declared: the model's init std
            rng_normal_fill(&ri, p->data, (size_t)p->numel, 0.0f, (float)m->cfg.init_std);
            break;
        }
    }
    st_checkpoint_close(ck);
    return rc;
}

// The fp32 values of a weight stored as NF4: from the checkpoint, or its declared init.
static int quant_source(Trainer *t, const LoraQuant *q, StCheckpoint *ck, Rng *ri, float *w) {
    if (ck) return st_checkpoint_read_f32(t->d, ck, q->weight, 2, q->shape, w);
    rng_normal_fill(ri, w, (size_t)q->numel, 0.0f, (float)t->m->cfg.init_std);
    return 0;
}

// QLoRA: each quantized weight read as fp32 and stored as NF4 codes + absmax.
static int init_quantized(Trainer *t) {
    if (t->lora.nquant == 0) return 0;
    StCheckpoint *ck = t->m->from ? st_checkpoint_open(t->d, t->m->from) : NULL;
    if (t->m->from && !ck) return -1;
    Rng ri;
    rng_stream(&ri, (uint64_t)t->cs->train.seed, TR_STREAM_AUX + 1);
    int rc = 0;
    for (int i = 0; i < t->lora.nquant && rc == 0; i++) {
        const LoraQuant *q = &t->lora.quant[i];
        float *w = malloc((size_t)q->numel * sizeof *w);
        if (!w) {
            diag_plain_error(t->d, "out of memory");
            rc = -1;
            break;
        }
        rc = quant_source(t, q, ck, &ri, w);
        if (rc == 0)
            lora_quantize_nf4(w, q->numel, q->block, (uint8_t *)t->ps[q->pq].data, t->ps[q->pa].data);
        free(w);
    }
    st_checkpoint_close(ck);
    return rc;
}

// The policy's weights, then its LoRA adapters as PEFT initialises them.
static int init_weights(Trainer *t) {
    if (load_weights(t, t->m, &t->res, t->ps, t->np, NULL, TR_STREAM_INIT) || init_quantized(t)) return -1;
    Rng rl;
    rng_stream(&rl, (uint64_t)t->cs->train.seed, TR_STREAM_LORA);
    for (int i = 0; i < t->lora.nmods; i++) {
        const LoraModule *lm = &t->lora.mods[i];
        lora_init_values(t->ps[lm->pA].data, t->ps[lm->pB].data, t->m->lora_rank, lm->in, lm->out, rng_unit, &rl);
    }
    return 0;
}

static TrParam *find_param(Trainer *t, const char *name);

// The second model an objective needs: kd's teacher, dpo's reference (`ref`, or else the policy
// as it starts: its frozen base weights shared when LoRA trains, a copy of the initial weights for
// full fine-tuning), lowered forward-only (pipeline.h: pl_aux_graph); its weights here.
static int setup_aux(Trainer *t, LoadedSpec *spec) {
    PlAux kind;
    int idx;
    if (pl_aux_model(t->d, t->cs, &kind, &idx) != 0) return -1;
    if (kind == PL_AUX_NONE) return 0;
    t->aux = kind == PL_AUX_TEACHER ? TR_AUX_TEACHER : TR_AUX_REFERENCE;
    t->am = &t->cs->models[idx];
    ir_graph_init(&t->ga, t->d, IR_F32);
    if (pl_aux_graph(t->d, t->a, spec, t->cs, kind, idx, &t->ga, &t->resa, &t->alogits_out, &t->aref_out) != 0)
        return -1;
    t->nap = t->resa.nparams;
    t->aps = calloc((size_t)t->nap + 1, sizeof *t->aps);
    t->ashared = calloc((size_t)t->nap + 1, sizeof *t->ashared);
    if (t->alogits_out < 0 && t->aref_out < 0) {
        diag_plain_error(t->d, "internal: the %s model's graph has no logits", t->aux == TR_AUX_TEACHER ? "teacher" : "reference");
        return -1;
    }
    if (!t->aps || !t->ashared) {
        diag_plain_error(t->d, "out of memory");
        return -1;
    }
    bool self = idx == t->cs->policy;
    for (int i = 0; i < t->nap; i++) {
        const IrNode *n = ir_node(&t->ga, t->resa.params[i].id);
        TrParam *p = &t->aps[i];
        p->name = t->resa.params[i].name;
        p->rank = n->shape.rank;
        p->numel = 1;
        p->lora = -1;
        p->quant = -1;
        p->grad_out = -1;
        p->oi = -1;
        for (int k = 0; k < n->shape.rank; k++) {
            p->shape[k] = n->shape.d[k].coef;
            p->numel *= p->shape[k];
        }
        p->bytes = (size_t)p->numel * sizeof(float);
        TrParam *pp = self ? find_param(t, p->name) : NULL;
        if (pp && pp->numel == p->numel && !pp->trainable) {   // a frozen weight of the policy
            p->data = pp->data;
            t->ashared[i] = true;
            continue;
        }
        p->data = calloc((size_t)(p->numel ? p->numel : 1), sizeof(float));
        if (!p->data) {
            diag_plain_error(t->d, "out of memory");
            return -1;
        }
        if (pp && pp->numel == p->numel) memcpy(p->data, pp->data, (size_t)p->numel * sizeof(float));   // initial values
        for (int q = 0; self && !pp && q < t->lora.nquant; q++) {   // QLoRA: the policy's NF4 weight, dequantized
            const LoraQuant *lq = &t->lora.quant[q];
            if (strcmp(lq->weight, p->name) || lq->numel != p->numel) continue;
            lora_dequantize_nf4((const uint8_t *)t->ps[lq->pq].data, t->ps[lq->pa].data, lq->numel, lq->block, p->data);
        }
    }
    if (!self && load_weights(t, t->am, &t->resa, t->aps, t->nap, NULL, TR_STREAM_AUX)) return -1;
    return 0;
}

// data block i's max_len, 0 when there is none
static int64_t data_max_len(const CheckedSpec *cs, int i) {
    return i >= 0 && i < cs->ndata && cs->data[i].max_len > 0 ? cs->data[i].max_len : 0;
}

// The evaluation program and the teacher / reference program, on the training program's device;
// on the GPU they share its parameter buffers (same host data and dtype: uploaded once).
static int new_side_programs(Trainer *t) {
#ifdef TRLC_HAVE_CUDA
    if (t->prog.cuda) {
        // their arenas for their largest runs now, as the training step's (new_train_program):
        // a device too small fails before training, not at the first evaluation or a long batch
        const CheckedSpec *cs = t->cs;
        int64_t B = cs->train.batch > 0 ? cs->train.batch : 0;
        int64_t Te = data_max_len(cs, cs->eval_data), Tt = data_max_len(cs, cs->train_data);
        t->eprog.cuda = cuda_program_new(&t->ge, t->dev, t->cache, t->d);
        if (!t->eprog.cuda) return -1;
        cuda_share_params(t->eprog.cuda, t->prog.cuda);
        if (cs->eval_data >= 0 && Te > 0 && B > 0 &&
            cuda_reserve(t->eprog.cuda, (const int64_t[IR_NSYMS]){B, Te}) != 0) {   // B: pairs for dpo / orpo
            diag_hint(t->d, "that is the evaluation's forward pass, on train.batch examples of data `%s`'s max_len",
                      cs->data[cs->eval_data].name ? cs->data[cs->eval_data].name : "eval");
            return -1;
        }
        if (t->aux != TR_AUX_NONE) {
            t->aprog.cuda = cuda_program_new(&t->ga, t->dev, t->cache, t->d);
            if (!t->aprog.cuda) return -1;
            cuda_share_params(t->aprog.cuda, t->prog.cuda);
            // it runs on every training batch (and evaluation batch) row by row: 2 rows a pair
            int64_t rows = t->per_pair ? 2 * B : B, Ta = Tt > Te ? Tt : Te;
            if (Ta > 0 && rows > 0 && cuda_reserve(t->aprog.cuda, (const int64_t[IR_NSYMS]){rows, Ta}) != 0) {
                diag_hint(t->d, "that is the %s model's forward pass, on the rows of a batch at the longest max_len",
                          t->aux == TR_AUX_TEACHER ? "teacher" : "reference");
                return -1;
            }
        }
    }
#endif
    if (!t->eprog.cuda && !(t->eprog.cpu = cpu_program_new(&t->ge, IR_F32, t->d))) return -1;
    if (t->aux != TR_AUX_NONE && !t->aprog.cuda && !(t->aprog.cpu = cpu_program_new(&t->ga, IR_F32, t->d))) return -1;
    for (int i = 0; t->aux != TR_AUX_NONE && i < t->nap; i++)
        if (prog_bind(&t->aprog, t->aps[i].name, t->aps[i].data, (size_t)t->aps[i].numel * sizeof(float)))
            return -1;
    return 0;
}

static int bind_params(Trainer *t, TrProg *p, const IrGraph *g) {
    for (int i = 0; i < t->np; i++) {
        if (ir_find(g, t->ps[i].name) == IR_NONE) continue;   // e.g. unused in this graph
        if (prog_bind(p, t->ps[i].name, t->ps[i].data, t->ps[i].bytes) != 0)
            return -1;
    }
    return 0;
}

static int init_optimizer(Trainer *t) {
    const CheckedTrain *tr = &t->cs->train;
    OptConfig oc;
    if (tr->optimizer && !strcmp(tr->optimizer, "sgd")) {
        oc = opt_config_sgd();
        oc.momentum = tr->momentum;
    } else {
        oc = opt_config_adamw();
        oc.beta1 = tr->beta1;
        oc.beta2 = tr->beta2;
        oc.eps = tr->eps;
    }
    oc.lr = tr->lr;
    oc.weight_decay = tr->weight_decay;
    if (opt_init(t->d, &t->opt, &oc) != 0) return -1;
    t->opt_ok = true;
    t->base_lr = tr->lr;
    t->clip = tr->clip_norm;
    for (int i = 0; i < t->np; i++) {
        TrParam *p = &t->ps[i];
        if (!p->trainable) continue;
        if ((p->oi = opt_add(t->d, &t->opt, p->name, p->data, p->grad, (size_t)p->numel, opt_default_decay(p->name))) < 0)
            return -1;
    }
    if (t->opt.nparams == 0) {
        diag_plain_error(t->d, "nothing to train: every parameter of `%s` is frozen", t->m->name);
        return -1;
    }
    return 0;
}

// --device cuda: the optimizer on the device, over the training program's buffers, when every
// trainable param and its gradient are fp32 there (else, or with TRLC_HOST_OPTIMIZER=1, the
// host's optimizer over downloaded gradients).
static int init_device_optimizer(Trainer *t) {
#ifdef TRLC_HAVE_CUDA
    if (!t->prog.cuda) return 0;
    int host = env_flag(t->d, "TRLC_HOST_OPTIMIZER");
    if (host < 0) return -1;
    if (host) return 0;
    for (int i = 0; i < t->np; i++) {
        const TrParam *p = &t->ps[i];
        if (!p->trainable) continue;
        IrId id = ir_find(&t->g, p->name);
        if (id == IR_NONE || t->g.nodes[id].dtype != IR_F32 || t->g.outs[p->grad_out].id < 0 ||
            t->g.nodes[t->g.outs[p->grad_out].id].dtype != IR_F32)
            return 0;
    }
    t->copt = cuda_optim_new(t->prog.cuda, t->dev, t->cache, &t->opt.cfg, t->d);
    if (!t->copt) return -1;
    for (int i = 0; i < t->np; i++) {
        const TrParam *p = &t->ps[i];
        if (!p->trainable) continue;
        int k = cuda_optim_add(t->copt, ir_find(&t->g, p->name), p->grad_out, p->numel, t->opt.params[p->oi].decay);
        if (k != p->oi) {   // the device's params in the host optimizer's order (state copies by index)
            if (k >= 0) diag_plain_error(t->d, "internal: `%s` is parameter %d of the device's optimizer, %d of the host's",
                                         p->name, k, p->oi);
            return -1;
        }
    }
    cuda_params_resident(t->prog.cuda);
#else
    (void)t;
#endif
    return 0;
}

int tr_set_schedule(Trainer *t, int64_t total_steps) {
    const CheckedTrain *tr = &t->cs->train;
    SchedConfig sc = sched_config_default();
    int kind = sched_kind_from_name(tr->schedule ? tr->schedule : "constant");
    sc.kind = kind < 0 ? SCHED_CONSTANT : (SchedKind)kind;
    sc.total_steps = total_steps > 0 ? total_steps : 1;
    sc.warmup_steps = tr->warmup_steps > 0 ? tr->warmup_steps : -1;
    sc.warmup_ratio = tr->warmup_ratio;
    sc.min_lr = sc.kind == SCHED_COSINE && tr->min_lr > 0 ? tr->min_lr : -1;
    sc.base_lr = tr->lr;
    if (sc.warmup_steps > sc.total_steps) sc.warmup_steps = sc.total_steps;
    return sched_init(t->d, &t->sched, &sc);
}

// The last passes of every graph (pipeline.h: precision = bf16, products accumulating into their
// sums) — the training, evaluation and teacher / reference graphs alike, on every backend (the
// CPU rounds the same values). Under bf16 the frozen weights stored in bf16 are rounded here, once.
static int finish_graphs(Trainer *t) {
    const char *pr = t->cs->train.precision;
    if (pl_finish_graph(&t->g, pr, &t->autocast, &t->gemm_acc) != 0 || pl_finish_graph(&t->ge, pr, NULL, NULL) != 0)
        return -1;
    if (t->aux != TR_AUX_NONE && pl_finish_graph(&t->ga, pr, NULL, NULL) != 0) return -1;
    if (!pr || strcmp(pr, "bf16") != 0) return 0;
    for (int i = 0; i < t->np; i++) {
        TrParam *p = &t->ps[i];
        IrId a = ir_find(&t->g, p->name), b = ir_find(&t->ge, p->name);
        if ((a != IR_NONE && t->g.nodes[a].dtype == IR_BF16) || (b != IR_NONE && t->ge.nodes[b].dtype == IR_BF16))
            ac_round_bf16(p->data, p->numel);
    }
    for (int i = 0; t->aux != TR_AUX_NONE && i < t->nap; i++) {   // the teacher's / reference's own weights
        IrId a = ir_find(&t->ga, t->aps[i].name);
        if (!t->ashared[i] && a != IR_NONE && t->ga.nodes[a].dtype == IR_BF16) ac_round_bf16(t->aps[i].data, t->aps[i].numel);
    }
    return 0;
}

void tr_describe_device(const Trainer *t, FILE *f) {
#ifdef TRLC_HAVE_CUDA
    if (!t->prog.cuda) return;
    fprintf(f, "device: CUDA %s%s; %d fused kernels in the training step; kernel cache: %d programs compiled, %d "
            "found%s%s\n", cuda_arch(t->prog.cuda), rt_cuda_is_emulated(t->dev) ? " (the emulator)" : "",
            cuda_kernel_count(t->prog.cuda), t->cache->misses, t->cache->hits, t->cache->dir[0] ? " in " : " (disabled)",
            t->cache->dir);
#else
    (void)t, (void)f;
#endif
}

// The memory the run used, for the closing summary: on the CPU the training step's peak live
// buffers (the interpreter's own count) and the process's peak resident set; with --device cuda
// the device buffers trlc allocated (each program's arena and fixed buffers, the optimizer's) and
// the device memory in use as the driver reports it (every context and library, other processes'
// included: what nvidia-smi shows).
void tr_describe_memory(const Trainer *t, FILE *f) {
    char a[32], b[32];
#ifdef TRLC_HAVE_CUDA
    if (t->prog.cuda) {
        int64_t step = cuda_device_bytes(t->prog.cuda);
        int64_t ev = t->eprog.cuda ? cuda_device_bytes(t->eprog.cuda) : 0;
        int64_t aux = t->aprog.cuda ? cuda_device_bytes(t->aprog.cuda) : 0;
        int64_t opt = cuda_optim_device_bytes(t->copt);
        mp_bytes_str(a, sizeof a, step + ev + aux + opt);
        mp_bytes_str(b, sizeof b, step);
        fprintf(f, "  device memory: %s allocated by trlc (training step %s", a, b);
        if (ev) mp_bytes_str(b, sizeof b, ev), fprintf(f, ", evaluation %s", b);
        if (aux) mp_bytes_str(b, sizeof b, aux), fprintf(f, ", %s %s", t->aux == TR_AUX_TEACHER ? "teacher" : "reference", b);
        if (opt) mp_bytes_str(b, sizeof b, opt), fprintf(f, ", optimizer %s", b);
        size_t freeb = 0, total = 0;
        if (rt_cuda_mem_info(t->dev, &freeb, &total) && total >= freeb) {
            mp_bytes_str(a, sizeof a, (int64_t)(total - freeb));
            mp_bytes_str(b, sizeof b, (int64_t)total);
            fprintf(f, "); %s of %s in use on the device (the driver's count: contexts and libraries included)\n", a, b);
        } else
            fprintf(f, ")\n");
        return;
    }
#endif
    mp_bytes_str(a, sizeof a, tr_peak_bytes(t));
    fprintf(f, "  memory: %s at the training step's peak (its buffers)", a);
    // VmHWM, not getrusage's ru_maxrss: Linux carries that across exec, so a run started from a
    // large process (a Python benchmark's fork) would report the parent's size
    FILE *st = fopen("/proc/self/status", "r");
    char line[256];
    long long kib = -1;
    while (st && fgets(line, sizeof line, st))
        if (sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
    if (st) fclose(st);
    if (kib > 0) {
        mp_bytes_str(b, sizeof b, (int64_t)kib * 1024);
        fprintf(f, "; process peak resident %s", b);
    }
    fprintf(f, "\n");
}

// The training program on the device the options name ("cpu" when NULL).
static int new_train_program(Trainer *t, const TrainerOptions *o) {
    const char *dev = o && o->device ? o->device : "cpu";
    if (!strcmp(dev, "cpu")) {
        t->prog.cpu = cpu_program_new(&t->g, IR_F32, t->d);
        return t->prog.cpu ? 0 : -1;
    }
#ifdef TRLC_HAVE_CUDA
    t->dev = rt_cuda_open(0, true, t->d);
    if (!t->dev) {
        diag_plain_error(t->d, "`--device %s`: no CUDA device found (no driver, or no GPU); run with `--device cpu`", dev);
        return -1;
    }
    t->cache = calloc(1, sizeof *t->cache);
    if (!t->cache || rt_cuda_cache_init(t->cache, t->d) != 0) return -1;
    t->prog.cuda = cuda_program_new(&t->g, t->dev, t->cache, t->d);
    if (!t->prog.cuda) return -1;
    // the largest step now (`batch` examples of the data's max_len: the graph's B counts pairs for
    // dpo / orpo), so that a device too small fails here
    int64_t T = data_max_len(t->cs, t->cs->train_data), B = t->cs->train.batch > 0 ? t->cs->train.batch : 0;
    if (T > 0 && B > 0 && cuda_reserve(t->prog.cuda, (const int64_t[IR_NSYMS]){B, T}) != 0) return -1;
    return 0;
#else
    diag_plain_error(t->d, "`--device %s`: this trlc was built without the CUDA toolkit; run with `--device cpu`", dev);
    return -1;
#endif
}

Trainer *tr_new(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, const TrainerOptions *o,
                int *status) {
    *status = TR_SPEC_ERROR;
    if (cs->policy < 0 || cs->policy >= cs->nmodels) {
        diag_plain_error(d, "the spec has no model to train");
        return NULL;
    }
    Trainer *t = calloc(1, sizeof *t);
    if (!t) {
        diag_plain_error(d, "out of memory");
        *status = TR_RUNTIME_ERROR;
        return NULL;
    }
    t->d = d;
    t->a = a;
    t->cs = cs;
    t->m = &cs->models[cs->policy];
    t->has_lora = t->m->has_lora;
    t->loss_out = t->eloss_out = t->elogits_out = t->epred_out = t->alogits_out = t->aref_out = t->omet_out = t->eomet_out = -1;
    ir_graph_init(&t->g, d, IR_F32);
    ir_graph_init(&t->ge, d, IR_F32);
    rng_stream(&t->rng, (uint64_t)cs->train.seed, TR_STREAM_RUN);
    if (t->m->quantized && (!t->m->quant_format || strcmp(t->m->quant_format, "nf4") || !t->has_lora)) {
        diag_plain_error(d, "quantize %s: the trainer stores frozen weights as nf4 (QLoRA, with a `lora` block); `%s` is not "
                         "supported yet", t->m->name, t->m->quant_format ? t->m->quant_format : "?");
        goto fail;
    }
    if (t->m->quantized && t->m->double_quant)
        fprintf(o && o->log ? o->log : stderr,
                "note: quantize %s: double_quant is not applied yet: the NF4 absmax stay fp32 (bitsandbytes "
                "stores them in 8 bits, which changes the dequantized weights slightly)\n", t->m->name);
    if (compile(t, spec, &t->g, &t->res, true) || compile(t, spec, &t->ge, &t->rese, false)) goto fail;
    // the evaluation returns predicted tokens (for the exact match of token losses; preference
    // pairs have none), not the (B, T, V) logits, and its loss is linear_ce
    bool keep_logits = o && o->eval_logits;
    if (pl_eval_head(&t->ge, t->per_pair, keep_logits) != 0) goto fail;
    t->loss_out = find_output(&t->g, "loss");
    t->omet_out = find_output(&t->g, LOWER_OUTPUT_ORPO_METRICS);
    t->eloss_out = find_output(&t->ge, "loss");
    t->eomet_out = find_output(&t->ge, LOWER_OUTPUT_ORPO_METRICS);
    t->elogits_out = find_output(&t->ge, "logits");
    t->epred_out = find_output(&t->ge, "predictions");
    if (alloc_params(t) || init_weights(t) || setup_aux(t, spec) || finish_graphs(t)) goto fail;
    *status = TR_RUNTIME_ERROR;
    if (new_train_program(t, o) != 0 || new_side_programs(t) != 0) goto fail;
    if (bind_params(t, &t->prog, &t->g) || bind_params(t, &t->eprog, &t->ge)) goto fail;
    *status = TR_SPEC_ERROR;
    if (init_optimizer(t) || tr_set_schedule(t, cs->train.steps)) goto fail;
    *status = TR_RUNTIME_ERROR;
    if (init_device_optimizer(t)) goto fail;
    *status = TR_OK;
    return t;
fail:
    tr_free(t);
    return NULL;
}

void tr_free(Trainer *t) {
    if (!t) return;
#ifdef TRLC_HAVE_CUDA
    cuda_optim_free(t->copt);
#endif
    prog_free(&t->eprog);   // before the training program: they borrow its parameter buffers
    prog_free(&t->aprog);
    prog_free(&t->prog);
    for (int i = 0; i < t->np; i++) {
        free(t->ps[i].data);
        free(t->ps[i].grad);
    }
    free(t->ps);
    if (t->opt_ok) opt_free(&t->opt);
    ir_graph_free(&t->g);
    ir_graph_free(&t->ge);
    for (int i = 0; i < t->nap; i++)
        if (!t->ashared[i]) free(t->aps[i].data);
    free(t->aps);
    free(t->ashared);
    free(t->ref_logp);
    free(t->nll_labels);
    ir_graph_free(&t->ga);
#ifdef TRLC_HAVE_CUDA
    rt_cuda_close(t->dev);
#endif
    free(t->cache);
    free(t);
}

static int bind_inputs(Trainer *t, TrProg *p, const int32_t *tokens, const int32_t *pos,
                       const int32_t *labels, int B, int T) {
    if (B < 1 || T < 1 || (int64_t)B * T > ((int64_t)1 << 31) || (t->per_pair && B % 2)) {
        diag_plain_error(t->d, "bad batch shape %d x %d", B, T);
        return -1;
    }
    int64_t V = t->m->cfg.vocab;
    size_t n = (size_t)B * (size_t)T;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V || labels[i] >= V || (labels[i] < 0 && labels[i] != LOWER_IGNORE_INDEX)) {
            diag_plain_error(t->d, "token id %d is outside the model's vocabulary (%lld ids)",
                             tokens[i] < 0 || tokens[i] >= V ? tokens[i] : labels[i], (long long)V);
            return -1;
        }
    size_t nb = n * sizeof(int32_t);
    if (prog_bind(p, LOWER_INPUT_TOKENS, tokens, nb) || prog_bind(p, LOWER_INPUT_POS, pos, nb) ||
        prog_bind(p, LOWER_INPUT_LABELS, labels, nb))
        return -1;
    return 0;
}

// orpo: binds `nll_labels` (2B, T) when graph g has it: the rejected rows' labels, and for the
// chosen rows [0, B/2) every next token of the same sequence (tokens[t + 1] where pos[t + 1] ==
// pos[t] + 1: not into padding, whose positions are 0, nor across a packed boundary), prompt
// included, as TRL's ORPO NLL; where labels has a target it is kept (the two agree there).
static int bind_nll_labels(Trainer *t, TrProg *p, const IrGraph *g, const int32_t *tokens, const int32_t *pos,
                           const int32_t *labels, int B, int T) {
    if (ir_find(g, LOWER_INPUT_NLL_LABELS) == IR_NONE) return 0;
    size_t n = (size_t)B * (size_t)T;
    if (n > t->nll_cap) {
        int32_t *nb = realloc(t->nll_labels, n * sizeof *nb);
        if (!nb) {
            diag_plain_error(t->d, "out of memory");
            return -1;
        }
        t->nll_labels = nb;
        t->nll_cap = n;
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < T; k++) {
            size_t i = (size_t)b * T + k;
            int32_t y = labels[i];
            if (y == LOWER_IGNORE_INDEX && b < B / 2 && k + 1 < T && pos[i + 1] == (int64_t)pos[i] + 1)
                y = tokens[i + 1];
            t->nll_labels[i] = y;
        }
    return prog_bind(p, LOWER_INPUT_NLL_LABELS, t->nll_labels, n * sizeof(int32_t));
}

// Binds the segment ids of packed rows when graph g (run by p) has the input `seq`; seq NULL
// means one sequence per row (zeros, allocated into *zeros for the caller to free).
static int bind_seq(Trainer *t, TrProg *p, const IrGraph *g, const int32_t *seq, int B, int T,
                    int32_t **zeros) {
    if (ir_find(g, LOWER_INPUT_SEQ) == IR_NONE) return 0;
    size_t n = (size_t)B * (size_t)T;
    if (!seq) {
        if (!*zeros) *zeros = calloc(n ? n : 1, sizeof(int32_t));
        if (!*zeros) {
            diag_plain_error(t->d, "out of memory");
            return -1;
        }
        seq = *zeros;
    }
    return prog_bind(p, LOWER_INPUT_SEQ, seq, n * sizeof(int32_t));
}

// Runs the teacher / reference on the batch and binds what it computed to program p.
static int run_aux(Trainer *t, TrProg *p, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                   const int32_t *labels, int B, int T, int32_t **zeros) {
    if (t->aux == TR_AUX_NONE) return 0;
    size_t nb = (size_t)B * (size_t)T * sizeof(int32_t);
    if (prog_bind(&t->aprog, LOWER_INPUT_TOKENS, tokens, nb) || prog_bind(&t->aprog, LOWER_INPUT_POS, pos, nb) ||
        bind_seq(t, &t->aprog, &t->ga, seq, B, T, zeros))
        return -1;
    if (ir_find(&t->ga, LOWER_INPUT_LABELS) != IR_NONE && prog_bind(&t->aprog, LOWER_INPUT_LABELS, labels, nb))
        return -1;
    int64_t sym[IR_NSYMS] = {B, T};
    if (prog_run(&t->aprog, sym, 0) != 0) return -1;
    if ((size_t)B > t->ref_cap) {
        float *nr = realloc(t->ref_logp, (size_t)B * sizeof *nr);
        if (!nr) {
            diag_plain_error(t->d, "out of memory");
            return -1;
        }
        t->ref_logp = nr;
        t->ref_cap = (size_t)B;
    }
#ifdef TRLC_HAVE_CUDA
    // on the device the teacher's logits (B, T, V) stay there: the student's input is copied from
    // the teacher's output buffer at the student's run (cuda_bind_output), never through the host
    if (t->aux == TR_AUX_TEACHER && p->cuda && t->aprog.cuda)
        return cuda_bind_output(p->cuda, LOWER_INPUT_TEACHER_LOGITS, t->aprog.cuda, t->alogits_out);
#endif
    if (t->aref_out >= 0) {   // computed in the reference's graph (pipeline.c: ref_logp_output)
        const CpuTensor *r = prog_output(&t->aprog, t->aref_out);
        if (!r || r->numel != B) {
            diag_plain_error(t->d, "internal: the reference's log-probs have the wrong size");
            return -1;
        }
        memcpy(t->ref_logp, r->data, (size_t)B * sizeof(float));
        return prog_bind(p, LOWER_INPUT_REF_LOGP, t->ref_logp, (size_t)B * sizeof(float));
    }
    const CpuTensor *lg = prog_output(&t->aprog, t->alogits_out);
    int64_t V = t->am->cfg.vocab;
    if (!lg || lg->numel != (int64_t)B * T * V) {
        diag_plain_error(t->d, "internal: the %s's logits have the wrong size", t->aux == TR_AUX_TEACHER ? "teacher" : "reference");
        return -1;
    }
    const float *x = lg->data;   // (B, T, V)
    if (t->aux == TR_AUX_TEACHER)
        return prog_bind(p, LOWER_INPUT_TEACHER_LOGITS, x, (size_t)lg->numel * sizeof(float));
    // reference: summed log-probs of each row's target tokens, (B, 1), from the downloaded logits
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < T; k++) {
            int32_t y = labels[(size_t)b * T + k];
            if (y == LOWER_IGNORE_INDEX) continue;
            if (y < 0 || y >= V) {
                diag_plain_error(t->d, "token id %d is outside the reference model's vocabulary (%lld ids)", y,
                                 (long long)V);
                return -1;
            }
            const float *row = x + ((size_t)b * T + k) * (size_t)V;
            double mx = row[0], z = 0;
            for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
            s += (double)row[y] - mx - log(z);
        }
        t->ref_logp[b] = (float)s;
    }
    return prog_bind(p, LOWER_INPUT_REF_LOGP, t->ref_logp, (size_t)B * sizeof(float));
}

// orpo: adds program p's output `out` ("orpo_metrics", (1, TR_OMET) sums over the pairs) to the
// training (which 0) or evaluation (1) sums that tr_objective_metrics averages. No-op when out < 0.
static int add_objective_metrics(Trainer *t, TrProg *p, int out, int which, int B) {
    if (out < 0) return 0;
    const CpuTensor *m = prog_output(p, out);
    if (!m || m->numel != TR_OMET) {
        diag_plain_error(t->d, "internal: the orpo metrics have the wrong size");
        return -1;
    }
    for (int k = 0; k < TR_OMET; k++) t->omet[which][k] += ((const float *)m->data)[k];
    t->omet_pairs[which] += B / 2;
    return 0;
}

int tr_micro_step(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *labels,
                  int B, int T, uint64_t step, double *loss_sum) {
    return tr_micro_step_seq(t, tokens, pos, NULL, labels, B, T, step, loss_sum);
}

int tr_micro_step_seq(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                      const int32_t *labels, int B, int T, uint64_t step, double *loss_sum) {
    int32_t *zeros = NULL;
    int rc = bind_inputs(t, &t->prog, tokens, pos, labels, B, T) || bind_seq(t, &t->prog, &t->g, seq, B, T, &zeros) ||
             bind_nll_labels(t, &t->prog, &t->g, tokens, pos, labels, B, T) ||
             run_aux(t, &t->prog, tokens, pos, seq, labels, B, T, &zeros);
    int64_t sym[IR_NSYMS] = {t->per_pair ? B / 2 : B, T};   // dpo, orpo: B is the number of pairs
#ifdef TRLC_HAVE_CUDA
    if (!rc && t->copt) rc = cuda_optim_before_run(t->copt);
#endif
    if (!rc) rc = prog_run(&t->prog, sym, step);
    free(zeros);
    if (rc) return -1;
    const CpuTensor *l = prog_output(&t->prog, t->loss_out);
    *loss_sum = l && l->numel >= 1 ? ((const float *)l->data)[0] : NAN;
    if (add_objective_metrics(t, &t->prog, t->omet_out, 0, B)) return -1;
#ifdef TRLC_HAVE_CUDA
    if (t->copt) return cuda_optim_after_run(t->copt);   // the gradients stay on the device
#endif
    for (int i = 0; i < t->np; i++) {
        TrParam *p = &t->ps[i];
        if (!p->trainable) continue;
        const CpuTensor *gt = prog_output(&t->prog, p->grad_out);
        if (!gt || gt->numel != p->numel) {
            diag_plain_error(t->d, "internal: gradient of `%s` has the wrong size", p->name);
            return -1;
        }
        const float *gv = gt->data;
        float *acc = p->grad;
        for (int64_t k = 0; k < p->numel; k++) acc[k] += gv[k];
    }
    return 0;
}

void tr_zero_grad(Trainer *t) {
#ifdef TRLC_HAVE_CUDA
    if (t->copt) {
        cuda_optim_zero_grad(t->copt);
        return;
    }
#endif
    for (int i = 0; i < t->np; i++)
        if (t->ps[i].grad) memset(t->ps[i].grad, 0, (size_t)t->ps[i].numel * sizeof(float));
}

int tr_apply(Trainer *t, int64_t n_targets, double *grad_norm, double *lr) {
    float s = n_targets > 0 ? (float)(1.0 / (double)n_targets) : 1.0f;
#ifdef TRLC_HAVE_CUDA
    if (t->copt) {   // the same update on the device: scale, norm, clip, AdamW / SGD
        double l = t->base_lr * sched_mult(&t->sched, t->step), gn = 0;
        if (cuda_optim_step(t->copt, s, t->clip, l, t->opt.step + 1, &gn) != 0) return -1;
        t->opt.step++;
        t->host_stale = true;
        if (grad_norm) *grad_norm = gn;
        if (lr) *lr = l;
        t->step++;
        tr_zero_grad(t);
        return 0;
    }
#endif
    for (int i = 0; i < t->np; i++) {
        TrParam *p = &t->ps[i];
        if (!p->trainable) continue;
        for (int64_t k = 0; k < p->numel; k++) p->grad[k] *= s;
    }
    double gn = t->clip > 0 ? opt_clip_grad_norm(&t->opt, t->clip) : opt_grad_norm(&t->opt);
    double l = t->base_lr * sched_mult(&t->sched, t->step);
    if (grad_norm) *grad_norm = gn;
    if (lr) *lr = l;
    opt_step(&t->opt, l);
    t->step++;
    tr_zero_grad(t);
    return 0;
}

int tr_eval_batch(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *labels,
                  int B, int T, double *loss_sum) {
    return tr_eval_batch_seq(t, tokens, pos, NULL, labels, B, T, loss_sum);
}

int tr_eval_batch_seq(Trainer *t, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                      const int32_t *labels, int B, int T, double *loss_sum) {
    int32_t *zeros = NULL;
    int rc = bind_inputs(t, &t->eprog, tokens, pos, labels, B, T) || bind_seq(t, &t->eprog, &t->ge, seq, B, T, &zeros) ||
             bind_nll_labels(t, &t->eprog, &t->ge, tokens, pos, labels, B, T) ||
             run_aux(t, &t->eprog, tokens, pos, seq, labels, B, T, &zeros);
    int64_t sym[IR_NSYMS] = {t->per_pair ? B / 2 : B, T};
#ifdef TRLC_HAVE_CUDA
    if (!rc && t->copt) rc = cuda_optim_wait(t->copt);   // the update, on the training program's stream
#endif
    if (!rc) rc = prog_run(&t->eprog, sym, 0);
    free(zeros);
    if (rc) return -1;
    const CpuTensor *l = prog_output(&t->eprog, t->eloss_out);
    *loss_sum = l && l->numel >= 1 ? ((const float *)l->data)[0] : NAN;
    return add_objective_metrics(t, &t->eprog, t->eomet_out, 1, B);
}

const int32_t *tr_eval_predictions(const Trainer *t, int64_t *numel) {
    const CpuTensor *x = t->epred_out >= 0 ? prog_output(&t->eprog, t->epred_out) : NULL;
    if (numel) *numel = x ? x->numel : 0;
    return x ? x->data : NULL;
}

const float *tr_eval_logits(const Trainer *t, int64_t *numel) {
    const CpuTensor *x = t->elogits_out >= 0 ? prog_output(&t->eprog, t->elogits_out) : NULL;
    if (numel) *numel = x ? x->numel : 0;
    return x ? x->data : NULL;
}

static TrParam *find_param(Trainer *t, const char *name) {
    for (int i = 0; i < t->np; i++)
        if (!strcmp(t->ps[i].name, name)) return &t->ps[i];
    return NULL;
}

int tr_grad_norm(Trainer *t, int64_t n_targets, double *norm) {
#ifdef TRLC_HAVE_CUDA
    if (t->copt) return cuda_optim_grad_norm(t->copt, n_targets > 0 ? (float)(1.0 / (double)n_targets) : 1.0f, norm);
#endif
    double s = n_targets > 0 ? 1.0 / (double)n_targets : 1.0;
    *norm = opt_grad_norm(&t->opt) * s;
    return 0;
}

int tr_sync_host(Trainer *t) {
#ifdef TRLC_HAVE_CUDA
    if (!t->copt || !t->host_stale) return 0;
    for (int i = 0; i < t->np; i++)
        if (t->ps[i].trainable && cuda_optim_read_param(t->copt, t->ps[i].oi, t->ps[i].data) != 0) return -1;
    t->host_stale = false;
#else
    (void)t;
#endif
    return 0;
}

int tr_sync_state(Trainer *t) {
    if (tr_sync_host(t) != 0) return -1;
#ifdef TRLC_HAVE_CUDA
    for (int i = 0; t->copt && i < t->np; i++) {
        const TrParam *p = &t->ps[i];
        if (p->trainable && cuda_optim_read_state(t->copt, p->oi, t->opt.params[p->oi].m, t->opt.params[p->oi].v) != 0)
            return -1;
    }
#endif
    return 0;
}

int tr_state_loaded(Trainer *t) {
#ifdef TRLC_HAVE_CUDA
    if (!t->copt) return 0;
    cuda_params_changed(t->prog.cuda);   // uploaded again by the next run
    t->host_stale = false;
    for (int i = 0; i < t->np; i++) {
        const TrParam *p = &t->ps[i];
        if (p->trainable && cuda_optim_write_state(t->copt, p->oi, t->opt.params[p->oi].m, t->opt.params[p->oi].v) != 0)
            return -1;
    }
#else
    (void)t;
#endif
    return 0;
}

int64_t tr_transfer_bytes(const Trainer *t) {
    int64_t b = 0;
#ifdef TRLC_HAVE_CUDA
    const TrProg *ps[] = {&t->prog, &t->eprog, &t->aprog};
    for (int i = 0; i < 3; i++)
        if (ps[i]->cuda) b += cuda_transfer_bytes(ps[i]->cuda);
#else
    (void)t;
#endif
    return b;
}

// With the optimizer on the device the host copy is fetched first (every trainable param, once
// per update at most): callers read the current values.
float *tr_param(Trainer *t, const char *name, int64_t *numel) {
    if (tr_sync_host(t) != 0) {
        if (numel) *numel = 0;
        return NULL;
    }
    TrParam *p = find_param(t, name);
    if (numel) *numel = p ? p->numel : 0;
    return p ? p->data : NULL;
}

float *tr_grad(Trainer *t, const char *name, int64_t *numel) {
    TrParam *p = find_param(t, name);
#ifdef TRLC_HAVE_CUDA
    if (p && p->grad && t->copt && cuda_optim_read_grad(t->copt, p->oi, p->grad) != 0) p = NULL;
#endif
    if (numel) *numel = p && p->grad ? p->numel : 0;
    return p ? p->grad : NULL;
}

int tr_nparams(const Trainer *t) { return t->np; }
const char *tr_param_name(const Trainer *t, int i) { return i >= 0 && i < t->np ? t->ps[i].name : NULL; }
bool tr_param_trainable(const Trainer *t, int i) { return i >= 0 && i < t->np && t->ps[i].trainable; }

int64_t tr_peak_bytes(const Trainer *t) {
#ifdef TRLC_HAVE_CUDA
    if (t->prog.cuda) return cuda_device_bytes(t->prog.cuda) + cuda_optim_device_bytes(t->copt);
#endif
    return t->prog.cpu ? cpu_peak_bytes(t->prog.cpu) : 0;
}
// The host's view of the optimizer: with it on the device, its state fetched first.
Optimizer *tr_optimizer(Trainer *t) { return tr_sync_state(t) == 0 ? &t->opt : NULL; }
bool tr_loss_per_pair(const Trainer *t) { return t->per_pair; }

int tr_objective_metrics(Trainer *t, bool eval, const char **names, double *values, int cap) {
    int w = eval ? 1 : 0;
    if (t->omet_pairs[w] <= 0 || cap < 9) return 0;
    // the sums of stdlib orpo_metrics: beta pc, beta pr, pc > pr, log sigmoid(log_odds), log_odds,
    // B * NLL; TRL's names (trl/trainer/orpo_trainer.py get_batch_loss_metrics)
    double n = (double)t->omet_pairs[w], beta = t->cs->objective.beta, *m = t->omet[w];
    static const char *const key[9] = {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                                       "logps/chosen", "logps/rejected", "nll_loss", "log_odds_ratio",
                                       "log_odds_chosen"};
    double v[9] = {m[0] / n, m[1] / n, m[2] / n, (m[0] - m[1]) / n, beta > 0 ? m[0] / (beta * n) : NAN,
                   beta > 0 ? m[1] / (beta * n) : NAN, m[5] / n, m[3] / n, m[4] / n};
    for (int k = 0; k < 9; k++) names[k] = key[k], values[k] = v[k];
    memset(t->omet[w], 0, sizeof t->omet[w]);
    t->omet_pairs[w] = 0;
    return 9;
}
