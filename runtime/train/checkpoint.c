// checkpoint.c — saving (temp dir + fsync + rename), discovering, loading and rotating training
// checkpoints. See checkpoint.h for the layout and the guarantees. Tensors go through the
// safetensors writer/reader (runtime/io/safetensors.h); state.json through jansson.
// Does not: lock the run directory against two trainers writing into it at once.
#include "checkpoint.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define CKPT_PATH_MAX 4096
#define CKPT_FORMAT "trlc-checkpoint"
#define CKPT_VERSION 1
#define MODEL_FILE "model.safetensors"
#define OPTIM_FILE "optimizer.safetensors"
#define STATE_FILE "state.json"

// Reports through d unless d is NULL (quiet probing during discovery).
static void report(Diag *d, const char *path, long line, long col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void report(Diag *d, const char *path, long line, long col, const char *fmt, ...) {
    if (!d) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_file_error(d, path, line, col, "%s", msg);
}

// snprintf into a CKPT_PATH_MAX buffer; -1 (reported) when the path does not fit.
static int join(Diag *d, char *out, const char *a, const char *b) {
    int n = snprintf(out, CKPT_PATH_MAX, "%s/%s", a, b);
    if (n < 0 || n >= CKPT_PATH_MAX) {
        report(d, a, 0, 0, "path too long");
        return -1;
    }
    return 0;
}

// "checkpoint-<digits>" → step; false for anything else (signs, spaces, overflow).
static bool parse_ckpt_name(const char *name, int64_t *step) {
    const char *p = name + strlen("checkpoint-");
    if (strncmp(name, "checkpoint-", strlen("checkpoint-")) != 0 || !*p) return false;
    int64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        if (v > (INT64_MAX - (*p - '0')) / 10) return false;
        v = v * 10 + (*p - '0');
    }
    *step = v;
    return true;
}

// ".tmp-checkpoint-<step>-<pid>" / ".old-checkpoint-<step>-<pid>" → step and pid.
static bool parse_work_name(const char *name, const char *prefix, int64_t *step, long *pid) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0) return false;
    long long s;
    long p;
    char tail;
    if (sscanf(name + pl, "%lld-%ld%c", &s, &p, &tail) != 2 || s < 0 || p <= 0) return false;
    *step = s;
    *pid = p;
    return true;
}

static int fsync_path(Diag *d, const char *path, bool dir) {
    int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0) {
        report(d, path, 0, 0, "cannot open for fsync: %s", strerror(errno));
        return -1;
    }
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL && err != EROFS) {   // some file systems cannot fsync directories
        report(d, path, 0, 0, "fsync failed: %s", strerror(err));
        return -1;
    }
    return 0;
}

static bool is_dir(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

// Removes path and, for a directory, its contents (depth-limited; symlinks are removed, not followed).
static int rm_tree(const char *path, int depth) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path);
    if (depth > 8) return -1;
    DIR *dir = opendir(path);
    if (!dir) return -1;
    int rc = 0;
    struct dirent *e;
    char sub[CKPT_PATH_MAX];
    while ((e = readdir(dir))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (n < 0 || n >= (int)sizeof sub || rm_tree(sub, depth + 1) != 0) rc = -1;
    }
    closedir(dir);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

// mkdir -p for the run directory (a bounded number of components); fsyncs each new parent.
static int make_dirs(Diag *d, const char *path) {
    char buf[CKPT_PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        report(d, path, 0, 0, "invalid run directory");
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            report(d, buf, 0, 0, "cannot create directory: %s", strerror(errno));
            return -1;
        }
        buf[i] = c;
    }
    if (!is_dir(path)) {
        struct stat sb;
        report(d, path, 0, 0, "%s", stat(path, &sb) == 0 ? "exists and is not a directory"
                                                         : "cannot create directory");
        return -1;
    }
    return 0;
}

static int64_t tensor_numel(Diag *d, const char *what, const CkptTensor *t) {
    if (!t->name || !*t->name || !t->data || t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
        report(d, what, 0, 0, "tensor `%s` has no name, no data or a bad rank",
               t->name ? t->name : "");
        return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || (t->shape[i] > 0 && n > INT64_MAX / 4 / t->shape[i])) {
            report(d, what, 0, 0, "tensor `%s` has a bad shape", t->name);
            return -1;
        }
        n *= t->shape[i];
    }
    return n;
}

static long long file_size(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return -1;
    return (long long)sb.st_size;
}

// ---- state.json ----

static json_t *state_to_json(const CkptState *st, const Optimizer *opt, json_t *files) {
    json_t *rng = json_array();
    for (int i = 0; i < 4; i++) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016" PRIx64, st->rng.s[i]);
        json_array_append_new(rng, json_string(hex));
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, st->seed);
    json_t *sched = json_pack("{s:s, s:I, s:I, s:f, s:f}", "kind", sched_kind_name(st->sched.kind),
                              "warmup_steps", (json_int_t)st->sched.warmup_steps, "total_steps",
                              (json_int_t)st->sched.total_steps, "num_cycles",
                              st->sched.num_cycles, "min_lr_rate", st->sched.min_lr_rate);
    json_t *o = json_null();
    if (opt) {
        const OptConfig *c = &opt->cfg;
        o = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b}", "kind",
                      c->kind == OPT_ADAMW ? "adamw" : "sgd", "step", (json_int_t)opt->step, "lr",
                      c->lr, "beta1", c->beta1, "beta2", c->beta2, "eps", c->eps, "weight_decay",
                      c->weight_decay, "momentum", c->momentum, "dampening", c->dampening,
                      "nesterov", (int)c->nesterov);
    }
    json_t *best = isfinite(st->best_metric) ? json_real(st->best_metric) : json_null();
    return json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:I, s:s, s:o}",
                     "format", CKPT_FORMAT, "version", CKPT_VERSION, "step", (json_int_t)st->step,
                     "epoch", (json_int_t)st->epoch, "data_pos", (json_int_t)st->data_pos,
                     "samples_seen", (json_int_t)st->samples_seen, "tokens_seen",
                     (json_int_t)st->tokens_seen, "seed", seed, "rng", rng, "schedule", sched,
                     "optimizer", o, "best_metric", best, "evals_since_best",
                     (json_int_t)st->evals_since_best, "spec_hash", st->spec_hash, "files", files);
}

static int write_state(Diag *d, const char *path, json_t *root) {
    FILE *f = fopen(path, "w");
    if (!f) {
        report(d, path, 0, 0, "cannot create: %s", strerror(errno));
        return -1;
    }
    int bad = json_dumpf(root, f, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) != 0;
    bad |= fputc('\n', f) == EOF;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) report(d, path, 0, 0, "write failed: %s", strerror(errno));
    return bad ? -1 : 0;
}

static int get_int(Diag *d, const char *path, json_t *obj, const char *key, int64_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        report(d, path, 0, 0, "`%s` is missing or not a non-negative integer", key);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_real(Diag *d, const char *path, json_t *obj, const char *key, double *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) {
        report(d, path, 0, 0, "`%s` is missing or not a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

// Parses state.json of ckpt_dir. Fills st, the optimizer object (borrowed from *root_out, which
// the caller frees) and returns 0; -1 after reporting (nothing reported when d is NULL).
static int parse_state(Diag *d, const char *ckpt_dir, CkptState *st, json_t **root_out) {
    char path[CKPT_PATH_MAX];
    if (join(d, path, ckpt_dir, STATE_FILE)) return -1;
    long long size = file_size(path);
    if (size < 0) {
        report(d, path, 0, 0, "missing (the checkpoint is incomplete)");
        return -1;
    }
    if (size > CKPT_STATE_MAX_BYTES) {
        report(d, path, 0, 0, "too large (%lld bytes, at most %u)", size, CKPT_STATE_MAX_BYTES);
        return -1;
    }
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        report(d, path, err.line, err.column, "invalid JSON: %s", err.text);
        return -1;
    }
    memset(st, 0, sizeof *st);
    const char *fmt = json_string_value(json_object_get(root, "format"));
    json_t *ver = json_object_get(root, "version");
    if (!json_is_object(root) || !fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        report(d, path, 0, 0, "not a trlc checkpoint state (\"format\" is not \"%s\")", CKPT_FORMAT);
        goto fail;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != CKPT_VERSION) {
        report(d, path, 0, 0, "unsupported checkpoint version (this trlc reads version %d)",
               CKPT_VERSION);
        goto fail;
    }
    if (get_int(d, path, root, "step", &st->step) || get_int(d, path, root, "epoch", &st->epoch) ||
        get_int(d, path, root, "data_pos", &st->data_pos) ||
        get_int(d, path, root, "samples_seen", &st->samples_seen) ||
        get_int(d, path, root, "tokens_seen", &st->tokens_seen))
        goto fail;
    const char *seed = json_string_value(json_object_get(root, "seed"));
    char *end = NULL;
    errno = 0;
    unsigned long long sv = seed ? strtoull(seed, &end, 10) : 0;
    if (!seed || !*seed || *end || errno || seed[0] == '-') {
        report(d, path, 0, 0, "`seed` is missing or not a decimal string");
        goto fail;
    }
    st->seed = sv;
    json_t *rng = json_object_get(root, "rng");
    if (!json_is_array(rng) || json_array_size(rng) != 4) {
        report(d, path, 0, 0, "`rng` must be an array of 4 hex strings");
        goto fail;
    }
    for (size_t i = 0; i < 4; i++) {
        const char *h = json_string_value(json_array_get(rng, i));
        errno = 0;
        unsigned long long w = h ? strtoull(h, &end, 16) : 0;
        if (!h || strlen(h) != 16 || *end || errno) {
            report(d, path, 0, 0, "`rng[%zu]` is not a 16-digit hex string", i);
            goto fail;
        }
        st->rng.s[i] = w;
    }
    if (!(st->rng.s[0] | st->rng.s[1] | st->rng.s[2] | st->rng.s[3])) {
        report(d, path, 0, 0, "`rng` state is all zero");
        goto fail;
    }
    json_t *sc = json_object_get(root, "schedule");
    const char *kind = json_string_value(json_object_get(sc, "kind"));
    int k = sched_kind_from_name(kind);
    if (!json_is_object(sc) || k < 0) {
        report(d, path, 0, 0, "`schedule.kind` is missing or unknown");
        goto fail;
    }
    st->sched.kind = (SchedKind)k;
    if (get_int(d, path, sc, "warmup_steps", &st->sched.warmup_steps) ||
        get_int(d, path, sc, "total_steps", &st->sched.total_steps) ||
        get_real(d, path, sc, "num_cycles", &st->sched.num_cycles) ||
        get_real(d, path, sc, "min_lr_rate", &st->sched.min_lr_rate))
        goto fail;
    json_t *best = json_object_get(root, "best_metric");
    if (!json_is_null(best) && !json_is_number(best)) {
        report(d, path, 0, 0, "`best_metric` is missing or not a number or null");
        goto fail;
    }
    st->best_metric = json_is_null(best) ? NAN : json_number_value(best);
    if (get_int(d, path, root, "evals_since_best", &st->evals_since_best)) goto fail;
    const char *hash = json_string_value(json_object_get(root, "spec_hash"));
    if (!hash || strlen(hash) >= sizeof st->spec_hash) {
        report(d, path, 0, 0, "`spec_hash` is missing or longer than %zu characters",
               sizeof st->spec_hash - 1);
        goto fail;
    }
    strcpy(st->spec_hash, hash);
    if (!json_is_object(json_object_get(root, "files"))) {
        report(d, path, 0, 0, "`files` is missing");
        goto fail;
    }
    *root_out = root;
    return 0;
fail:
    json_decref(root);
    return -1;
}

// Every file listed in "files" exists with the recorded size.
static int check_files(Diag *d, const char *ckpt_dir, json_t *root) {
    json_t *files = json_object_get(root, "files");
    const char *name;
    json_t *v;
    json_object_foreach(files, name, v) {
        char path[CKPT_PATH_MAX];
        if (!*name || strchr(name, '/') || strcmp(name, "..") == 0 || !json_is_integer(v)) {
            report(d, ckpt_dir, 0, 0, "state.json lists an invalid file entry `%s`", name);
            return -1;
        }
        if (join(d, path, ckpt_dir, name)) return -1;
        long long size = file_size(path);
        if (size != json_integer_value(v)) {
            report(d, path, 0, 0, size < 0 ? "missing (the checkpoint is incomplete)"
                                            : "has %lld bytes, state.json recorded %lld", size,
                   (long long)json_integer_value(v));
            return -1;
        }
    }
    return 0;
}

// ---- saving ----

static int write_tensors(Diag *d, const char *path, StWriter *w, json_t *files, const char *fname) {
    if (st_writer_write(d, w, path) != 0) return -1;
    if (fsync_path(d, path, false) != 0) return -1;
    long long size = file_size(path);
    if (size < 0) {
        report(d, path, 0, 0, "vanished after writing");
        return -1;
    }
    json_object_set_new(files, fname, json_integer(size));
    return 0;
}

static int save_into(Diag *d, const char *tmp, const CkptState *st, const CkptTensor *model,
                     size_t n_model, const Optimizer *opt) {
    char path[CKPT_PATH_MAX];
    json_t *files = json_object();
    StWriter *w = st_writer_new();
    int rc = -1;
    char (*onames)[600] = NULL;
    if (!files || !w) {
        report(d, tmp, 0, 0, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_model; i++) {
        if (tensor_numel(d, tmp, &model[i]) < 0) goto done;
        if (st_writer_add_f32(d, w, model[i].name, ST_F32, model[i].ndim, model[i].shape,
                              model[i].data) != 0)
            goto done;
    }
    if (join(d, path, tmp, MODEL_FILE) || write_tensors(d, path, w, files, MODEL_FILE)) goto done;
    size_t nstate = 0;
    if (opt) {
        st_writer_free(w);
        w = st_writer_new();
        onames = opt->nparams ? calloc(opt->nparams * 2, sizeof *onames) : NULL;
        if (!w || (opt->nparams && !onames)) {
            report(d, tmp, 0, 0, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < opt->nparams; i++) {
            const OptParam *q = &opt->params[i];
            int64_t shape[1] = {(int64_t)q->n};
            const float *bufs[2] = {q->m, q->v};
            const char *sfx[2] = {opt->cfg.kind == OPT_ADAMW ? "exp_avg" : "momentum_buffer",
                                  "exp_avg_sq"};
            for (int j = 0; j < 2; j++) {
                if (!bufs[j]) continue;
                char *nm = onames[2 * i + j];
                int n = snprintf(nm, sizeof onames[0], "%s.%s", q->name, sfx[j]);
                if (n < 0 || n >= (int)sizeof onames[0]) {
                    report(d, tmp, 0, 0, "parameter name `%s` is too long", q->name);
                    goto done;
                }
                if (st_writer_add_f32(d, w, nm, ST_F32, 1, shape, bufs[j]) != 0) goto done;
                nstate++;
            }
        }
        if (nstate && (join(d, path, tmp, OPTIM_FILE) || write_tensors(d, path, w, files, OPTIM_FILE)))
            goto done;
    }
    json_t *root = state_to_json(st, opt, files);
    files = NULL;   // owned by root now
    if (!root) {
        report(d, tmp, 0, 0, "cannot encode state.json");
        goto done;
    }
    int bad = join(d, path, tmp, STATE_FILE) || write_state(d, path, root);
    json_decref(root);
    if (bad || fsync_path(d, tmp, true) != 0) goto done;
    rc = 0;
done:
    json_decref(files);
    st_writer_free(w);
    free(onames);
    return rc;
}

int ckpt_save(Diag *d, const char *run_dir, const CkptState *st, const CkptTensor *model,
              size_t n_model, const Optimizer *opt, int keep, char *out_dir, size_t out_cap) {
    char tmp[CKPT_PATH_MAX], final[CKPT_PATH_MAX], old[CKPT_PATH_MAX], name[96];
    if (st->step < 0) {
        report(d, run_dir, 0, 0, "cannot save a checkpoint for negative step %lld",
               (long long)st->step);
        return -1;
    }
    if (!(st->rng.s[0] | st->rng.s[1] | st->rng.s[2] | st->rng.s[3])) {
        report(d, run_dir, 0, 0, "rng state is all zero (seed it with rng_seed)");
        return -1;
    }
    if (make_dirs(d, run_dir)) return -1;
    long pid = (long)getpid();
    snprintf(name, sizeof name, ".tmp-checkpoint-%lld-%ld", (long long)st->step, pid);
    if (join(d, tmp, run_dir, name)) return -1;
    snprintf(name, sizeof name, "checkpoint-%lld", (long long)st->step);
    if (join(d, final, run_dir, name)) return -1;
    snprintf(name, sizeof name, ".old-checkpoint-%lld-%ld", (long long)st->step, pid);
    if (join(d, old, run_dir, name)) return -1;

    rm_tree(tmp, 0);   // a leftover of this very pid (an earlier failed attempt)
    if (mkdir(tmp, 0777) != 0) {
        report(d, tmp, 0, 0, "cannot create directory: %s", strerror(errno));
        return -1;
    }
    if (save_into(d, tmp, st, model, n_model, opt) != 0) {
        rm_tree(tmp, 0);
        return -1;
    }
    // Saving a step that already has a checkpoint (a resumed run): move the old one aside first,
    // since rename() cannot replace a non-empty directory.
    bool replaced = false;
    if (is_dir(final)) {
        rm_tree(old, 0);
        if (rename(final, old) != 0) {
            report(d, final, 0, 0, "cannot move the previous checkpoint aside: %s", strerror(errno));
            rm_tree(tmp, 0);
            return -1;
        }
        replaced = true;
    }
    if (rename(tmp, final) != 0) {
        report(d, final, 0, 0, "cannot rename `%s` into place: %s", tmp, strerror(errno));
        if (replaced) rename(old, final);
        rm_tree(tmp, 0);
        return -1;
    }
    if (fsync_path(d, run_dir, true) != 0) return -1;
    if (replaced) rm_tree(old, 0);
    if (out_dir && out_cap) snprintf(out_dir, out_cap, "%s", final);
    if (keep > 0 && ckpt_rotate(d, run_dir, keep) < 0) return -1;
    return 0;
}

// ---- discovery and rotation ----

typedef struct Entry {
    int64_t step;
    char name[256];
} Entry;

static int cmp_desc(const void *a, const void *b) {
    int64_t x = ((const Entry *)a)->step, y = ((const Entry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

// The checkpoint-<step> directories of run_dir, newest first (*n of them; caller frees).
// NULL with *n = 0 for a missing run_dir; NULL with *n = SIZE_MAX after reporting an error.
static Entry *list_ckpts(Diag *d, const char *run_dir, size_t *n) {
    *n = 0;
    DIR *dir = opendir(run_dir);
    if (!dir) {
        if (errno == ENOENT) return NULL;
        report(d, run_dir, 0, 0, "cannot read run directory: %s", strerror(errno));
        *n = SIZE_MAX;
        return NULL;
    }
    Entry *v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        int64_t step;
        char path[CKPT_PATH_MAX];
        if (strlen(e->d_name) >= sizeof v->name || !parse_ckpt_name(e->d_name, &step)) continue;
        if (join(NULL, path, run_dir, e->d_name) || !is_dir(path)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            Entry *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                report(d, run_dir, 0, 0, "out of memory listing checkpoints");
                free(v);
                closedir(dir);
                *n = SIZE_MAX;
                return NULL;
            }
            v = nv;
        }
        v[*n].step = step;
        strcpy(v[*n].name, e->d_name);
        (*n)++;
    }
    closedir(dir);
    if (*n) qsort(v, *n, sizeof *v, cmp_desc);
    return v;
}

// Complete = state.json parses, names this step, and every listed file has its recorded size.
static bool is_complete(const char *dir, int64_t step) {
    CkptState st;
    json_t *root = NULL;
    if (parse_state(NULL, dir, &st, &root) != 0) return false;
    bool ok = st.step == step && check_files(NULL, dir, root) == 0;
    json_decref(root);
    return ok;
}

int ckpt_find_latest(Diag *d, const char *run_dir, char *out_dir, size_t out_cap, int64_t *step) {
    size_t n;
    Entry *v = list_ckpts(d, run_dir, &n);
    if (n == SIZE_MAX) return -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        char path[CKPT_PATH_MAX];
        if (join(NULL, path, run_dir, v[i].name) || !is_complete(path, v[i].step)) continue;
        if (out_dir && out_cap) snprintf(out_dir, out_cap, "%s", path);
        if (step) *step = v[i].step;
        found = 1;
    }
    free(v);
    return found;
}

static bool pid_gone(long pid) {
    return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int ckpt_rotate(Diag *d, const char *run_dir, int keep) {
    size_t n;
    Entry *v = list_ckpts(d, run_dir, &n);
    if (n == SIZE_MAX) return -1;
    int deleted = 0;
    char path[CKPT_PATH_MAX];
    // The newest `keep` complete checkpoints stay, and anything newer than the oldest of them.
    size_t kept = 0, cut = n;
    for (size_t i = 0; i < n && keep > 0; i++) {
        if (join(NULL, path, run_dir, v[i].name) || !is_complete(path, v[i].step)) continue;
        if (++kept == (size_t)keep) {
            cut = i + 1;
            break;
        }
    }
    for (size_t i = cut; i < n; i++) {
        if (join(NULL, path, run_dir, v[i].name)) continue;
        if (rm_tree(path, 0) != 0) {
            report(d, path, 0, 0, "cannot delete old checkpoint: %s", strerror(errno));
            free(v);
            return -1;
        }
        deleted++;
    }
    free(v);
    // Work directories of processes that died (SIGKILL during a save).
    DIR *dir = opendir(run_dir);
    if (!dir) return deleted;
    struct dirent *e;
    while ((e = readdir(dir))) {
        int64_t step;
        long pid;
        bool tmp = parse_work_name(e->d_name, ".tmp-checkpoint-", &step, &pid);
        bool old = !tmp && parse_work_name(e->d_name, ".old-checkpoint-", &step, &pid);
        if ((!tmp && !old) || !pid_gone(pid) || join(NULL, path, run_dir, e->d_name)) continue;
        if (old) {   // died between moving the old one aside and renaming the new one in
            char final[CKPT_PATH_MAX], name[64];
            snprintf(name, sizeof name, "checkpoint-%lld", (long long)step);
            if (!join(NULL, final, run_dir, name) && !is_dir(final) && rename(path, final) == 0)
                continue;
        }
        if (rm_tree(path, 0) == 0) deleted++;
    }
    closedir(dir);
    return deleted;
}

// ---- loading ----

int ckpt_read_state(Diag *d, const char *ckpt_dir, CkptState *st) {
    json_t *root = NULL;
    if (parse_state(d, ckpt_dir, st, &root) != 0) return -1;
    json_decref(root);
    return 0;
}

static int load_model(Diag *d, const char *ckpt_dir, const CkptTensor *model, size_t n_model) {
    char path[CKPT_PATH_MAX];
    if (join(d, path, ckpt_dir, MODEL_FILE)) return -1;
    StFile *f = st_open(d, path);
    if (!f) return -1;
    int rc = 0;
    for (size_t i = 0; i < n_model && rc == 0; i++) {
        const CkptTensor *m = &model[i];
        if (tensor_numel(d, path, m) < 0) {
            rc = -1;
            break;
        }
        const StTensor *t = st_find(f, m->name);
        bool same = t && t->ndim == m->ndim;
        for (int j = 0; same && j < m->ndim; j++) same = t->shape[j] == m->shape[j];
        if (!t) report(d, path, 0, 0, "tensor `%s` is missing from the checkpoint", m->name);
        else if (!same) report(d, path, 0, 0, "tensor `%s` has a different shape than the model",
                               m->name);
        if (!t || !same || st_to_f32(d, t, m->data) != 0) rc = -1;
    }
    st_close(f);
    return rc;
}

static int load_optim(Diag *d, const char *ckpt_dir, json_t *root, Optimizer *opt) {
    char path[CKPT_PATH_MAX];
    if (join(d, path, ckpt_dir, STATE_FILE)) return -1;
    json_t *o = json_object_get(root, "optimizer");
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const char *want = opt->cfg.kind == OPT_ADAMW ? "adamw" : "sgd";
    if (!kind || strcmp(kind, want) != 0) {
        report(d, path, 0, 0, "the checkpoint holds %s optimizer state, the run uses %s",
               kind ? kind : "no", want);
        return -1;
    }
    int64_t step;
    if (get_int(d, path, o, "step", &step)) return -1;
    bool any = false;
    for (size_t i = 0; i < opt->nparams; i++) any |= opt->params[i].m || opt->params[i].v;
    if (!any) {
        opt->step = step;
        return 0;
    }
    if (join(d, path, ckpt_dir, OPTIM_FILE)) return -1;
    StFile *f = st_open(d, path);
    if (!f) return -1;
    int rc = 0;
    for (size_t i = 0; i < opt->nparams && rc == 0; i++) {
        OptParam *q = &opt->params[i];
        float *bufs[2] = {q->m, q->v};
        const char *sfx[2] = {opt->cfg.kind == OPT_ADAMW ? "exp_avg" : "momentum_buffer",
                              "exp_avg_sq"};
        for (int j = 0; j < 2 && rc == 0; j++) {
            if (!bufs[j]) continue;
            char nm[600];
            snprintf(nm, sizeof nm, "%s.%s", q->name, sfx[j]);
            const StTensor *t = st_find(f, nm);
            if (!t) report(d, path, 0, 0, "tensor `%s` is missing from the checkpoint", nm);
            else if (t->numel != (int64_t)q->n)
                report(d, path, 0, 0, "tensor `%s` has %lld elements, the parameter has %zu", nm,
                       (long long)t->numel, q->n);
            if (!t || t->numel != (int64_t)q->n || st_to_f32(d, t, bufs[j]) != 0) rc = -1;
        }
    }
    st_close(f);
    if (rc == 0) opt->step = step;
    return rc;
}

int ckpt_load(Diag *d, const char *ckpt_dir, CkptState *st, const CkptTensor *model,
              size_t n_model, Optimizer *opt) {
    json_t *root = NULL;
    if (parse_state(d, ckpt_dir, st, &root) != 0) return -1;
    int rc = check_files(d, ckpt_dir, root);
    if (rc == 0 && n_model) rc = load_model(d, ckpt_dir, model, n_model);
    if (rc == 0 && opt) rc = load_optim(d, ckpt_dir, root, opt);
    json_decref(root);
    return rc;
}
