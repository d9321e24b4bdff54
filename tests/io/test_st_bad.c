// test_st_bad.c — the malformed corpus (tests/io/bad/EXPECTED: kind, path, expected message part):
// every case must fail with a non-zero status, at least one error, and the expected message.
// Then hostile mutations of a valid file (every truncation, random header bytes) on exact-size
// buffers: a failure or a success, never a read out of bounds (run under ASan).
#include "export.h"
#include "hfconfig.h"
#include "safetensors.h"
#include "test.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char src[1024];

// Runs one case with diagnostics captured; returns the number of errors and the text in *out.
static int run_case(const char *kind, const char *path, char **out, int *status) {
    size_t len = 0;
    FILE *mem = open_memstream(out, &len);
    Diag d;
    diag_init(&d, mem);
    *status = 0;
    if (!strcmp(kind, "st")) {
        StFile *f = st_open(&d, path);
        *status = f ? 0 : 1;
        st_close(f);
    } else if (!strcmp(kind, "cfg")) {
        HfConfig c;
        *status = hf_config_load(&d, path, &c) ? 1 : 0;
    } else if (!strcmp(kind, "ck")) {
        StCheckpoint *ck = st_checkpoint_open(&d, path);
        *status = ck ? 0 : 1;
        st_checkpoint_close(ck);
    } else if (!strcmp(kind, "peft")) {
        ExLoraAdapter a;
        *status = ex_load_peft_adapter(&d, path, &a) ? 1 : 0;
        if (*status == 0) ex_lora_adapter_free(&a);
    } else if (!strcmp(kind, "shape")) {
        HfConfig c;
        StCheckpoint *ck = NULL;
        if (hf_config_load(&d, path, &c) == 0 && (ck = st_checkpoint_open(&d, path)) != NULL)
            *status = hf_config_check_checkpoint(&d, &c, ck) ? 1 : 0;
        else
            *status = 2;   // the config and files themselves must be fine
        st_checkpoint_close(ck);
    }
    int errors = d.errors;
    diag_free(&d);
    fclose(mem);
    return errors;
}

static void test_corpus(void) {
    char path[4096], line[1024];
    snprintf(path, sizeof path, "%s/bad/EXPECTED", src);
    FILE *m = fopen(path, "r");
    CHECK(m != NULL);
    if (!m) return;
    int n = 0;
    while (fgets(line, sizeof line, m)) {
        line[strcspn(line, "\n")] = 0;
        char *kind = strtok(line, "\t"), *name = strtok(NULL, "\t"), *want = strtok(NULL, "\t");
        if (!kind || !name || !want) continue;
        snprintf(path, sizeof path, "%s/bad/%s", src, name);
        char *msg = NULL;
        int status, errors = run_case(kind, path, &msg, &status);
        CHECK_MSG(status == 1, "%s: status %d", name, status);
        CHECK_MSG(errors > 0, "%s: no error reported", name);
        CHECK_MSG(msg && strstr(msg, want), "%s: expected `%s` in:\n%s", name, want, msg ? msg : "");
        CHECK_MSG(msg && strstr(msg, name), "%s: the message does not name the file:\n%s", name, msg ? msg : "");
        if (getenv("VERBOSE")) fputs(msg, stdout);
        free(msg);
        n++;
    }
    fclose(m);
    printf("%d malformed inputs rejected with the expected message\n", n);
    CHECK(n >= 20);
    // Positive control for the shape check: a consistent pair.
    snprintf(path, sizeof path, "%s/fixtures/tiny-qwen3-h8", src);
    char *msg = NULL;
    size_t len;
    FILE *mem = open_memstream(&msg, &len);
    Diag d;
    diag_init(&d, mem);
    HfConfig c;
    StCheckpoint *ck = NULL;
    CHECK(hf_config_load(&d, path, &c) == 0);
    CHECK((ck = st_checkpoint_open(&d, path)) != NULL);
    if (ck) CHECK(hf_config_check_checkpoint(&d, &c, ck) == 0);
    st_checkpoint_close(ck);
    CHECK(d.errors == 0);
    diag_free(&d);
    fclose(mem);
    free(msg);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

// Reads at most cap bytes of the file at path into buf (*n: how many); false (a failed check)
// where it cannot be opened.
static bool read_input(const char *path, void *buf, size_t cap, size_t *n) {
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    if (!fp) return false;
    *n = fread(buf, 1, cap, fp);
    fclose(fp);
    return true;
}

// The Diag of the tests that expect errors: it writes to /dev/null (quiet_close closes both).
static FILE *quiet_open(Diag *d) {
    FILE *devnull = fopen("/dev/null", "w");
    diag_init(d, devnull);
    return devnull;
}

static void quiet_close(Diag *d, FILE *devnull) {
    diag_free(d);
    fclose(devnull);
}

static void test_mutations(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/dtypes.safetensors", src);
    static uint8_t file[1 << 16];
    size_t n;
    if (!read_input(path, file, sizeof file, &n)) return;
    Diag d;
    FILE *devnull = quiet_open(&d);
    int accepted = 0;
    for (size_t len = 0; len < n; len++) {   // every truncation fails
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, file, len);
        StFile *f = st_open_buffer(&d, "trunc", b, len);
        if (f) accepted++;
        st_close(f);
        free(b);
    }
    CHECK_MSG(accepted == 0, "%d truncations accepted", accepted);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | file[i];
    int ok = 0, rejected = 0;
    for (int iter = 0; iter < 4000; iter++) {   // random bytes in the header
        uint8_t *b = malloc(n);
        memcpy(b, file, n);
        int flips = 1 + (int)(next() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = 8 + next() % hlen;
            b[at] = next() % 4 ? (uint8_t)"0123456789[]{}\",:-e. "[next() % 21] : (uint8_t)next();
        }
        StFile *f = st_open_buffer(&d, "mut", b, n);
        if (f) {
            ok++;
            // whatever was accepted must be convertible without reading out of bounds
            for (size_t i = 0; i < st_count(f); i++) {
                const StTensor *t = st_tensor(f, i);
                CHECK((const uint8_t *)t->data + t->nbytes <= b + n);
                if (t->numel < 100000) {
                    float *v = malloc((size_t)(t->numel + 1) * sizeof(float));
                    st_to_f32(&d, t, v);
                    free(v);
                }
            }
        } else
            rejected++;
        st_close(f);
        free(b);
    }
    printf("mutations: %zu truncations rejected; %d random header edits: %d accepted, %d rejected\n", n, 4000,
           ok, rejected);
    CHECK(rejected > 0);
    quiet_close(&d, devnull);
}

// Random edits of a real config.json text: an error or a config, never a crash.
static void test_config_mutations(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/configs/llama-3.2-1b.json", src);
    static char text[1 << 14];
    size_t n;
    if (!read_input(path, text, sizeof text, &n)) return;
    Diag d;
    FILE *devnull = quiet_open(&d);
    int ok = 0, rejected = 0;
    for (int iter = 0; iter < 3000; iter++) {
        char *b = malloc(n);
        memcpy(b, text, n);
        int flips = 1 + (int)(next() % 3);
        for (int k = 0; k < flips; k++)
            b[next() % n] = next() % 4 ? "0123456789[]{}\",:-e.n "[next() % 22] : (char)next();
        HfConfig c;
        if (hf_config_parse(&d, "mut.json", b, next() % 8 ? n : next() % n, &c) == 0) {
            ok++;
            CHECK(c.hidden_size > 0 && c.head_dim > 0 && c.num_attention_heads % c.num_key_value_heads == 0);
            double *f = malloc((size_t)c.head_dim / 2 * sizeof(double) + 8);
            hf_rope_inv_freq(&c, f);
            free(f);
        } else
            rejected++;
        free(b);
    }
    printf("config mutations: %d accepted, %d rejected\n", ok, rejected);
    CHECK(ok > 0 && rejected > 0);
    quiet_close(&d, devnull);
}

// Random edits of a real index.json / adapter_config.json (next to links to the real weights):
// an error or a consistent result, never a crash.
static void mutate_json_file(const char *from, const char *to, const char *const *links, int nlinks,
                             const char *kind, int iters) {
    static char text[1 << 15];
    size_t n;
    if (!read_input(from, text, sizeof text, &n)) return;
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", to);
    *strrchr(dir, '/') = 0;
    mkdir(dir, 0777);
    char srcdir[2048];
    snprintf(srcdir, sizeof srcdir, "%s", from);
    *strrchr(srcdir, '/') = 0;
    for (int i = 0; i < nlinks; i++) {
        char a[2400], b[2400], absb[4096];
        snprintf(a, sizeof a, "%s/%s", dir, links[i]);
        snprintf(b, sizeof b, "%s/%s", srcdir, links[i]);
        unlink(a);
        CHECK(realpath(b, absb) != NULL && symlink(absb, a) == 0);
    }
    Diag d;
    FILE *devnull = quiet_open(&d);
    int ok = 0, rejected = 0;
    for (int iter = 0; iter < iters; iter++) {
        char *b = malloc(n);
        memcpy(b, text, n);
        int flips = 1 + (int)(next() % 3);
        for (int k = 0; k < flips; k++)
            b[next() % n] = next() % 4 ? "0123456789[]{}\",:-e.n/ "[next() % 23] : (char)next();
        size_t len = next() % 8 ? n : next() % n;
        FILE *w = fopen(to, "wb");
        fwrite(b, 1, len, w);
        fclose(w);
        free(b);
        if (!strcmp(kind, "index")) {
            StCheckpoint *ck = st_checkpoint_open(&d, dir);
            if (ck) {
                ok++;
                for (size_t i = 0; i < st_checkpoint_count(ck); i++) {
                    const StTensor *t = st_checkpoint_tensor(ck, i);
                    CHECK(st_checkpoint_find(ck, t->name) == t);
                }
                st_checkpoint_close(ck);
            } else
                rejected++;
        } else {
            ExLoraAdapter a;
            if (ex_load_peft_adapter(&d, dir, &a) == 0) {
                ok++;
                CHECK(a.n_mods == 14 && a.cfg.r == 4);
                ex_lora_adapter_free(&a);
            } else
                rejected++;
        }
    }
    printf("%s mutations: %d accepted, %d rejected\n", kind, ok, rejected);
    CHECK(ok > 0 && rejected > 0);
    quiet_close(&d, devnull);
}

static void test_json_mutations(const char *bin) {
    char from[2048], to[2048];
    const char *shards[] = {"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                            "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
    snprintf(from, sizeof from, "%s/../fixtures/tiny-llama/model.safetensors.index.json", src);
    snprintf(to, sizeof to, "%s/index-fuzz/model.safetensors.index.json", bin);
    mutate_json_file(from, to, shards, 4, "index", 1500);
    const char *weights[] = {"adapter_model.safetensors"};
    snprintf(from, sizeof from, "%s/../fixtures/peft-tiny-qwen3/adapter_config.json", src);
    snprintf(to, sizeof to, "%s/adapter-fuzz/adapter_config.json", bin);
    mutate_json_file(from, to, weights, 1, "adapter", 1500);
}

// FIFOs where files are expected: refused at once, never a blocked read.
static void test_fifos(const char *bin) {
    char dir[1200], p[1300];
    snprintf(dir, sizeof dir, "%s/fifo-dir", bin);
    mkdir(dir, 0777);
    const char *names[] = {"config.json", "adapter_config.json", "model.safetensors", "adapter_model.safetensors"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
        CHECK(mkfifo(p, 0666) == 0);
    }
    Diag d;
    FILE *devnull = quiet_open(&d);
    HfConfig c;
    CHECK(hf_config_load(&d, dir, &c) != 0);
    StCheckpoint *ck = st_checkpoint_open(&d, dir);
    CHECK(ck == NULL);
    ExLoraAdapter a;
    CHECK(ex_load_peft_adapter(&d, dir, &a) != 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(st_open(&d, p) == NULL);
    CHECK(d.errors == 4);
    quiet_close(&d, devnull);
}

int main(int argc, char **argv) {
    snprintf(src, sizeof src, "%s", argc > 1 ? argv[1] : ".");
    test_corpus();
    test_mutations();
    test_config_mutations();
    test_fifos(argc > 2 ? argv[2] : ".");
    test_json_mutations(argc > 2 ? argv[2] : ".");
    return test_done("io.st_bad");
}
