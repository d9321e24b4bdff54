// test_checkpoint.c — checkpoints: save/load round trip (tensors, AdamW state, rng, schedule, data
// position), atomicity (a child killed with SIGKILL while writing a large checkpoint leaves the
// previous one complete and found as the latest), keep-K rotation, latest-complete discovery among
// junk, and clear errors for a corrupted state.json, a truncated tensor file and shape mismatches.
#include "checkpoint.h"
#include "test.h"
#include "train/fixture.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char work[1024];

static void rmrf(const char *path) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "cannot clean %s\n", path);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

// A tiny "model": two tensors, an AdamW optimizer over them, a state.
typedef struct Model {
    float w[6], b[3], gw[6], gb[3];
    CkptTensor t[2];
    Optimizer opt;
    CkptState st;
} Model;

static void model_init(Model *m, float base) {
    memset(m, 0, sizeof *m);
    for (int i = 0; i < 6; i++) m->w[i] = base + i;
    for (int i = 0; i < 3; i++) m->b[i] = -base - i;
    m->t[0] = (CkptTensor){"layer.w", m->w, 2, {2, 3}};
    m->t[1] = (CkptTensor){"layer.b", m->b, 1, {3}};
    rng_seed(&m->st.rng, 1);
    m->st.best_metric = NAN;   // no evaluation yet: written as null
    Diag d;
    diag_init(&d, stderr);
    OptConfig c = opt_config_adamw();
    opt_init(&d, &m->opt, &c);
    opt_add(&d, &m->opt, "layer.w", m->w, m->gw, 6, true);
    opt_add(&d, &m->opt, "layer.b", m->b, m->gb, 3, false);
    diag_free(&d);
}

// A few real AdamW steps so m and v are non-trivial.
static void model_train(Model *m, int steps) {
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 6; i++) m->gw[i] = 0.1f * (float)(i - s);
        for (int i = 0; i < 3; i++) m->gb[i] = 0.05f * (float)(s + i);
        opt_step(&m->opt, 1e-2);
    }
    m->st.step = m->opt.step;
}

static int save(Model *m, const char *run, int keep) {
    Diag d;
    diag_init(&d, stderr);
    int rc = ckpt_save(&d, run, &m->st, m->t, 2, &m->opt, keep, NULL, 0);
    diag_free(&d);
    return rc;
}

static int64_t latest(const char *run) {
    Diag d;
    diag_init(&d, stderr);
    int64_t step = -1;
    char dir[1024];
    int rc = ckpt_find_latest(&d, run, dir, sizeof dir, &step);
    diag_free(&d);
    return rc == 1 ? step : rc == 0 ? -1 : -2;
}

static void test_roundtrip(void) {
    char run[1100];
    snprintf(run, sizeof run, "%s/roundtrip/run", work);   // parents are created
    Model a;
    model_init(&a, 1.0f);
    model_train(&a, 5);
    a.st.epoch = 2;
    a.st.data_pos = 1234;
    a.st.samples_seen = 9876543210LL;
    a.st.tokens_seen = 123456789012LL;
    a.st.seed = 18446744073709551615ull;
    rng_seed(&a.st.rng, 42);
    rng_u64(&a.st.rng);
    SchedConfig sc = sched_config_default();
    sc.kind = SCHED_COSINE;
    sc.total_steps = 1000;
    sc.warmup_steps = -1;
    sc.warmup_ratio = 0.03;
    sc.min_lr_rate = 0.1;
    Diag d;
    diag_init(&d, stderr);
    CHECK(sched_init(&d, &a.st.sched, &sc) == 0);
    strcpy(a.st.spec_hash, "sha256:0123abcd");
    a.st.best_metric = 1.8125;
    a.st.evals_since_best = 2;
    char out[1200];
    CHECK(ckpt_save(&d, run, &a.st, a.t, 2, &a.opt, 3, out, sizeof out) == 0);
    CHECK(strstr(out, "/run/checkpoint-5") != NULL);
    int64_t step = 0;
    char dir[1200];
    CHECK(ckpt_find_latest(&d, run, dir, sizeof dir, &step) == 1 && step == 5);
    CHECK(strcmp(dir, out) == 0);

    Model b;
    model_init(&b, 100.0f);   // different values, same names and shapes
    CHECK(ckpt_load(&d, dir, &b.st, b.t, 2, &b.opt) == 0);
    CHECK(memcmp(a.w, b.w, sizeof a.w) == 0 && memcmp(a.b, b.b, sizeof a.b) == 0);
    int same = 1;
    for (int i = 0; i < 2; i++) {
        size_t n = a.opt.params[i].n * sizeof(float);
        same &= memcmp(a.opt.params[i].m, b.opt.params[i].m, n) == 0;
        same &= memcmp(a.opt.params[i].v, b.opt.params[i].v, n) == 0;
    }
    CHECK(same);
    CHECK(b.opt.step == 5 && b.st.step == 5);
    CHECK(b.st.epoch == 2 && b.st.data_pos == 1234);
    CHECK(b.st.samples_seen == 9876543210LL && b.st.tokens_seen == 123456789012LL);
    CHECK(b.st.seed == 18446744073709551615ull);
    CHECK(memcmp(&a.st.rng, &b.st.rng, sizeof a.st.rng) == 0);
    CHECK(rng_u64(&a.st.rng) == rng_u64(&b.st.rng));   // the restored stream continues identically
    CHECK(b.st.sched.kind == SCHED_COSINE && b.st.sched.warmup_steps == 30);
    CHECK(b.st.sched.total_steps == 1000 && b.st.sched.min_lr_rate == 0.1);
    CHECK(b.st.sched.num_cycles == 0.5);
    CHECK(sched_mult(&a.st.sched, 517) == sched_mult(&b.st.sched, 517));
    CHECK(strcmp(b.st.spec_hash, "sha256:0123abcd") == 0);
    CHECK(b.st.best_metric == 1.8125 && b.st.evals_since_best == 2);
    // continuing training from the loaded state gives the same parameters as without stopping
    model_train(&a, 2);
    model_train(&b, 2);
    CHECK(memcmp(a.w, b.w, sizeof a.w) == 0);
    CHECK(d.errors == 0);
    // saving the same step again (a resumed run) replaces it
    CHECK(ckpt_save(&d, run, &b.st, b.t, 2, &b.opt, 3, NULL, 0) == 0);
    CHECK(latest(run) == 7);
    b.st.step = 5;
    CHECK(ckpt_save(&d, run, &b.st, b.t, 2, &b.opt, 3, NULL, 0) == 0);
    CHECK(ckpt_find_latest(&d, run, dir, sizeof dir, &step) == 1 && step == 7);
    opt_free(&a.opt);
    opt_free(&b.opt);
    diag_free(&d);
}

static void test_rotation_and_discovery(void) {
    char run[1100], path[1300];
    snprintf(run, sizeof run, "%s/rotate", work);
    Model m;
    model_init(&m, 0.5f);
    for (int s = 1; s <= 6; s++) {
        model_train(&m, 1);
        CHECK(save(&m, run, 3) == 0);
    }
    for (int s = 1; s <= 6; s++) {
        snprintf(path, sizeof path, "%s/checkpoint-%d", run, s);
        CHECK_MSG(exists(path) == (s >= 4), "checkpoint-%d %s", s, exists(path) ? "kept" : "deleted");
    }
    CHECK(latest(run) == 6);
    // junk the discovery must ignore: a newer dir without state.json, a file named like a
    // checkpoint, a non-numeric name, a temp dir, a state.json naming another step
    snprintf(path, sizeof path, "%s/checkpoint-9", run);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/checkpoint-10", run);
    write_file(path, "not a directory");
    snprintf(path, sizeof path, "%s/checkpoint-1x", run);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/.tmp-checkpoint-11-999999", run);
    mkdir(path, 0777);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "cp -r '%s/checkpoint-6' '%s/checkpoint-12'", run, run);
    CHECK(system(cmd) == 0);
    CHECK(latest(run) == 6);   // checkpoint-12's state.json says step 6
    // a truncated tensor file makes a checkpoint incomplete
    snprintf(path, sizeof path, "%s/checkpoint-6/model.safetensors", run);
    CHECK(truncate(path, 20) == 0);
    CHECK(latest(run) == 5);
    FILE *err = tmpfile();
    Diag d;
    diag_init(&d, err);
    CkptState st;
    snprintf(path, sizeof path, "%s/checkpoint-6", run);
    CHECK(ckpt_load(&d, path, &st, m.t, 2, &m.opt) == -1);
    CHECK_MSG(strstr(fx_stream_text(err), "checkpoint-6/model.safetensors: error: has 20 bytes, state.json recorded") != NULL,
              "%s", fx_stream_text(err));
    // a corrupted state.json: a clear error with line and column; discovery skips it
    snprintf(path, sizeof path, "%s/checkpoint-5/state.json", run);
    write_file(path, "{\n  \"format\": \"trlc-checkpoint\",\n  \"step\": 5,,\n}\n");
    CHECK(latest(run) == 4);
    snprintf(path, sizeof path, "%s/checkpoint-5", run);
    CHECK(ckpt_read_state(&d, path, &st) == -1);
    CHECK_MSG(strstr(fx_stream_text(err), "checkpoint-5/state.json:3:13: error: invalid JSON") != NULL, "%s",
              fx_stream_text(err));
    // valid JSON, wrong content
    write_file(strcat(path, "/state.json"), "{\"format\": \"trlc-checkpoint\", \"version\": 1, \"step\": -3}");
    snprintf(path, sizeof path, "%s/checkpoint-5", run);
    CHECK(ckpt_read_state(&d, path, &st) == -1);
    CHECK(strstr(fx_stream_text(err), "checkpoint-5/state.json: error: `step` is missing or not a non-negative integer") != NULL);
    write_file(strcat(path, "/state.json"), "[1, 2]");
    snprintf(path, sizeof path, "%s/checkpoint-5", run);
    CHECK(ckpt_read_state(&d, path, &st) == -1);
    CHECK(strstr(fx_stream_text(err), "not a trlc checkpoint state") != NULL);
    // an all-zero generator state cannot be saved (xoshiro would only ever return 0)
    CkptState zero = m.st;
    memset(&zero.rng, 0, sizeof zero.rng);
    CHECK(ckpt_save(&d, run, &zero, m.t, 2, &m.opt, 0, NULL, 0) == -1);
    CHECK(strstr(fx_stream_text(err), "rng state is all zero") != NULL);
    // a model whose tensor has another shape, and one the checkpoint lacks
    snprintf(path, sizeof path, "%s/checkpoint-4", run);
    CkptTensor bad[2] = {m.t[0], m.t[1]};
    bad[0].shape[0] = 3, bad[0].shape[1] = 2;
    CHECK(ckpt_load(&d, path, &st, bad, 2, NULL) == -1);
    CHECK(strstr(fx_stream_text(err), "tensor `layer.w` has a different shape than the model") != NULL);
    bad[0] = m.t[0];
    bad[1].name = "layer.c";
    CHECK(ckpt_load(&d, path, &st, bad, 2, NULL) == -1);
    CHECK(strstr(fx_stream_text(err), "tensor `layer.c` is missing from the checkpoint") != NULL);
    // optimizer kind mismatch
    Optimizer sgd;
    OptConfig oc = opt_config_sgd();
    opt_init(&d, &sgd, &oc);
    CHECK(ckpt_load(&d, path, &st, m.t, 2, &sgd) == -1);
    CHECK(strstr(fx_stream_text(err), "holds adamw optimizer state, the run uses sgd") != NULL);
    opt_free(&sgd);
    CHECK(ckpt_load(&d, path, &st, m.t, 2, &m.opt) == 0 && st.step == 4);
    CHECK(isnan(st.best_metric) && st.evals_since_best == 0);
    // rotation removes the dead process's temp dir and keeps the newest complete ones
    snprintf(path, sizeof path, "%s/.tmp-checkpoint-11-999999", run);
    model_train(&m, 3);   // loaded step 4 + 3 = 7
    CHECK(save(&m, run, 2) == 0);
    CHECK(!exists(path));
    CHECK(latest(run) == 7);
    snprintf(path, sizeof path, "%s/checkpoint-9", run);
    CHECK(exists(path));   // incomplete but newer than the kept ones: left for the user to inspect
    snprintf(path, sizeof path, "%s/checkpoint-4", run);
    CHECK(exists(path));   // complete, second newest
    snprintf(path, sizeof path, "%s/checkpoint-3", run);
    CHECK(!exists(path));
    // empty / missing run dir
    snprintf(path, sizeof path, "%s/does-not-exist", work);
    CHECK(latest(path) == -1);
    diag_free(&d);
    fclose(err);
    opt_free(&m.opt);
}

// How far the child's save has got, seen from outside: 0 nothing yet, 1 its temp dir exists,
// 2/3 the model file is being written (>= 1 MiB / >= 48 MiB), 4 the model file is complete,
// 5 the optimizer file is there, 6 state.json is there, 7 checkpoint-2 is in place.
static int save_stage(const char *run, pid_t pid) {
    char tmp[1300], path[1400];
    snprintf(tmp, sizeof tmp, "%s/.tmp-checkpoint-2-%ld", run, (long)pid);
    snprintf(path, sizeof path, "%s/checkpoint-2", run);
    if (exists(path)) return 7;
    snprintf(path, sizeof path, "%s/state.json", tmp);
    if (exists(path)) return 6;
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    if (exists(path)) return 5;
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    if (exists(path)) return 4;
    snprintf(path, sizeof path, "%s/model.safetensors.tmp.%ld", tmp, (long)pid);
    struct stat sb;
    if (stat(path, &sb) == 0) return sb.st_size >= (48 << 20) ? 3 : sb.st_size >= (1 << 20) ? 2 : 1;
    return exists(tmp) ? 1 : 0;
}

// Forks a child that saves a large checkpoint (step 2) and kills it with SIGKILL as soon as its
// save has reached `stage` (see save_stage). Returns 1 when the child died by the signal, 0 when it
// exited first, -1 when fork failed; *seen is the stage observed at the kill.
static int kill_during_save(const char *run, int stage, size_t big_n, const Model *prev, int *seen) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        float *big = malloc(big_n * sizeof(float));
        if (!big) _exit(3);
        for (size_t i = 0; i < big_n; i++) big[i] = (float)i;
        CkptTensor t[3] = {prev->t[0], prev->t[1], {"big", big, 1, {(int64_t)big_n}}};
        CkptState st = prev->st;
        st.step = 2;
        Diag d;
        diag_init(&d, stderr);
        int rc = ckpt_save(&d, run, &st, t, 3, &prev->opt, 1, NULL, 0);
        _exit(rc == 0 ? 0 : 4);
    }
    int status = 0;
    *seen = 0;
    for (;;) {
        *seen = save_stage(run, pid);
        if (*seen >= stage) break;
        if (waitpid(pid, &status, WNOHANG) == pid) return 0;   // finished before the kill point
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void test_sigkill(void) {
    char run[1100], path[1300];
    snprintf(run, sizeof run, "%s/kill", work);
    Model m;
    model_init(&m, 3.0f);
    model_train(&m, 1);
    CHECK(save(&m, run, 1) == 0);   // checkpoint-1: the one that must survive
    size_t big_n = 24u << 20;        // 96 MiB of tensors
    int killed = 0, completed = 0, mid_tensor = 0;
    for (int stage = 0; stage <= 7; stage++) {
        int seen = 0;
        int k = kill_during_save(run, stage, big_n, &m, &seen);
        CHECK(k >= 0);
        int64_t l = latest(run);
        snprintf(path, sizeof path, "%s/checkpoint-2", run);
        if (k == 1 && !exists(path)) {
            killed += seen >= 1;   // seen == 0: killed before its save began
            mid_tensor += seen == 2 || seen == 3;
            CHECK_MSG(l == 1, "after a kill at stage %d the latest is %lld", seen, (long long)l);
        } else {
            // the child got its checkpoint-2 in place before dying (or finished): then it must be
            // complete, and checkpoint-1 may be rotated away (keep = 1); restore the scenario
            completed++;
            CHECK_MSG(l == 2, "after a kill at stage %d the latest is %lld", seen, (long long)l);
            rmrf(path);
            if (latest(run) != 1) CHECK(save(&m, run, 1) == 0);
        }
        // whatever happened, the latest loads and holds checkpoint-1's values
        Model r;
        model_init(&r, 0.0f);
        char dir[1200];
        Diag d;
        diag_init(&d, stderr);
        CHECK(ckpt_find_latest(&d, run, dir, sizeof dir, NULL) == 1);
        CHECK(ckpt_load(&d, dir, &r.st, r.t, 2, &r.opt) == 0);
        CHECK(memcmp(r.w, m.w, sizeof m.w) == 0 && r.st.step == 1);
        diag_free(&d);
        opt_free(&r.opt);
    }
    printf("sigkill: %d saves killed mid-save (%d while writing the tensors), %d got into place "
           "first; every time the latest complete checkpoint loaded with checkpoint-1's values\n", killed,
           mid_tensor, completed);
    CHECK(killed >= 4 && mid_tensor >= 1);
    // the next save by a live process cleans up the dead ones' temp dirs
    model_train(&m, 2);
    CHECK(save(&m, run, 1) == 0);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", run);
    FILE *p = popen(cmd, "r");
    char listing[512] = {0};
    size_t n = p ? fread(listing, 1, sizeof listing - 1, p) : 0;
    if (p) pclose(p);
    CHECK_MSG(n > 0 && strcmp(listing, "checkpoint-3\n") == 0, "left in the run dir: %s", listing);
    opt_free(&m.opt);
}

// Damaged checkpoints never crash the loader: random byte flips, insertions and truncations of
// state.json and of the tensor files either load or fail with a reported error.
static void test_fuzz(void) {
    char run[1100], dir[1200], path[1300];
    snprintf(run, sizeof run, "%s/fuzz", work);
    Model m;
    model_init(&m, 2.0f);
    model_train(&m, 2);
    CHECK(save(&m, run, 0) == 0);
    snprintf(dir, sizeof dir, "%s/checkpoint-2", run);
    const char *files[] = {"state.json", "model.safetensors", "optimizer.safetensors"};
    Rng r;
    rng_seed(&r, 77);
    int failed = 0, loaded = 0, silent = 0;
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *in = fopen(path, "rb");
        char orig[4096];
        size_t n = in ? fread(orig, 1, sizeof orig, in) : 0;
        if (in) fclose(in);
        CHECK(n > 0 && n < sizeof orig);
        for (int iter = 0; iter < 300 && n > 0; iter++) {
            char buf[4200];
            memcpy(buf, orig, n);
            size_t len = n;
            int kind = (int)rng_below(&r, 3);
            int edits = 1 + (int)rng_below(&r, 4);
            for (int e = 0; e < edits; e++) {
                size_t at = (size_t)rng_below(&r, len);
                if (kind == 0) buf[at] = (char)rng_u64(&r);                   // flip a byte
                else if (kind == 1 && len < sizeof buf - 1) {                  // insert a byte
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = "{}[]\",:0-e9 \x00"[rng_below(&r, 14)];
                    len++;
                } else len = at;                                               // truncate
                if (len == 0) break;
            }
            FILE *out = fopen(path, "wb");
            if (out) {
                fwrite(buf, 1, len, out);
                fclose(out);
            }
            FILE *err = tmpfile();
            Diag d;
            diag_init(&d, err);
            Model t;
            model_init(&t, 0.0f);
            CkptState st;
            int rc = ckpt_load(&d, dir, &st, t.t, 2, &t.opt);
            if (rc == 0) loaded++;
            else {
                failed++;
                silent += d.errors == 0;
            }
            diag_free(&d);
            fclose(err);
            opt_free(&t.opt);
        }
        FILE *out = fopen(path, "wb");   // restore for the next file
        if (out) {
            fwrite(orig, 1, n, out);
            fclose(out);
        }
    }
    printf("fuzz: %d damaged checkpoints rejected with an error, %d still loadable, %d silent\n",
           failed, loaded, silent);
    CHECK(failed > 600 && silent == 0);
    opt_free(&m.opt);
}

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : "ckpt-work";
    snprintf(work, sizeof work, "%s", base);
    rmrf(work);
    mkdir(work, 0777);
    test_roundtrip();
    test_rotation_and_discovery();
    test_sigkill();
    test_fuzz();
    int rc = test_done("train.checkpoint");
    if (rc == 0) rmrf(work);
    return rc;
}
