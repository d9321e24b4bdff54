// nvrtc.c — NVRTC compilation with an on-disk cache (see rt_cuda.h). The cache file format:
// "TRLCKC01" (8 bytes), payload length (u64 LE), FNV-1a of the payload (u64 LE), payload.
// One file per product: <dir>/<kernel>-<key>.cubin and .ptx. Threads take programs from a shared
// counter; each program has its own NVRTC handle, so no NVRTC state is shared between threads.
// Not here: module loading and launches (they need a GPU), code generation (compiler/).
#include "env.h"
#include "fsutil.h"
#include "rt_cuda.h"
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t fnv(const void *data, size_t n, uint64_t seed) {
    const unsigned char *s = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

// ---------------------------------------------------------------------------------------------
// cache directory


int rt_cuda_cache_init(RtCudaCache *c, Diag *d) {
    memset(c, 0, sizeof *c);
    const char *env = getenv("TRLC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int k = -1;
    if (env && *env) k = snprintf(c->dir, sizeof c->dir, "%s", env);
    else if (xdg && *xdg) k = snprintf(c->dir, sizeof c->dir, "%s/trlc", xdg);
    else if (home && *home) k = snprintf(c->dir, sizeof c->dir, "%s/.cache/trlc", home);
    if (k < 0 || k >= (int)sizeof c->dir - 64 || fs_mkdir_p(c->dir, 0755, NULL, 0) != 0) {
        if (k > 0) diag_warning(d, (Loc){0, 0, 0}, "kernel cache disabled: cannot use directory `%s`", c->dir);
        c->dir[0] = 0;
    }
    return 0;
}

static bool cache_read(RtCudaCache *c, const char *path, unsigned char **data, size_t *size, pthread_mutex_t *mu) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char hdr[24];
    bool ok = false;
    unsigned char *buf = NULL;
    uint64_t len = 0, h = 0;
    if (fread(hdr, 1, sizeof hdr, f) == sizeof hdr && !memcmp(hdr, "TRLCKC01", 8)) {
        memcpy(&len, hdr + 8, 8);
        memcpy(&h, hdr + 16, 8);
        if (len > 0 && len < ((uint64_t)1 << 31) && (buf = malloc((size_t)len + 1))) {
            ok = fread(buf, 1, (size_t)len, f) == len && fgetc(f) == EOF && fnv(buf, (size_t)len, 0) == h;
        }
    }
    fclose(f);
    if (!ok) {
        free(buf);
        pthread_mutex_lock(mu);
        c->corrupt++;
        pthread_mutex_unlock(mu);
        return false;
    }
    buf[len] = 0;
    *data = buf;
    *size = (size_t)len;
    return true;
}

static void cache_write(const char *path, const void *data, size_t size) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lx", path, (long)getpid(), (unsigned long)pthread_self());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    uint64_t len = size, h = fnv(data, size, 0);
    bool ok = fwrite("TRLCKC01", 1, 8, f) == 8 && fwrite(&len, 8, 1, f) == 1 && fwrite(&h, 8, 1, f) == 1 &&
              fwrite(data, 1, size, f) == size;
    ok = (fflush(f) == 0) & ok;
    ok = (fsync(fileno(f)) == 0) & ok;
    ok = (fclose(f) == 0) & ok;
    if (!ok || rename(tmp, path) != 0) remove(tmp);
}

// ---------------------------------------------------------------------------------------------
// compiling

bool rt_nvrtc_version(int *major, int *minor) { return nvrtcVersion(major, minor) == NVRTC_SUCCESS; }

void rt_nvrtc_archs(char *buf, size_t n) {
    int k = 0;
    buf[0] = 0;
    if (nvrtcGetNumSupportedArchs(&k) != NVRTC_SUCCESS || k <= 0 || k > 256) return;
    int archs[256];
    if (nvrtcGetSupportedArchs(archs) != NVRTC_SUCCESS) return;
    size_t used = 0;
    for (int i = 0; i < k && used + 8 < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%ssm_%d", i ? " " : "", archs[i]);
}

typedef struct Job {
    RtCudaCache *c;
    RtCudaProgram *progs;
    int n, next;
    const char *arch;
    bool want_ptx;
    bool print;
    Diag *d;
    pthread_mutex_t mu;      // guards next, the cache counters and the Diag
} Job;

// Reports a failure with everything needed to reproduce it (under the job's lock).
static void report(Job *j, const RtCudaProgram *p, const char *call, nvrtcResult r, const char *opts,
                   const char *log) {
    pthread_mutex_lock(&j->mu);
    diag_plain_error(j->d, "NVRTC: %s failed for kernel `%s`: %s (options: %s)", call, p->name,
                     nvrtcGetErrorString(r), opts);
    FILE *out = j->d->out ? j->d->out : stderr;
    if (log && *log) fprintf(out, "--- NVRTC log ---\n%s\n", log);
    fprintf(out, "--- source of %s ---\n", p->name);
    int line = 1;
    const char *s = p->source;
    while (*s) {
        const char *e = strchr(s, '\n');
        int len = e ? (int)(e - s) : (int)strlen(s);
        fprintf(out, "%5d  %.*s\n", line++, len, s);
        s += len + (e ? 1 : 0);
    }
    pthread_mutex_unlock(&j->mu);
}

#define NVRTC_CHECK(call, what)                                          \
    do {                                                                 \
        nvrtcResult r_ = (call);                                         \
        if (r_ != NVRTC_SUCCESS) {                                       \
            report(j, p, what, r_, optline, NULL);                       \
            goto fail;                                                   \
        }                                                                \
    } while (0)

static void compile_one(Job *j, RtCudaProgram *p) {
    char archopt[64], optline[256];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", j->arch);
    // no --restrict: library kernels may run in place (rope, the cross-entropy backward);
    // generated kernels mark their distinct buffers __restrict__ themselves
    // --fmad=false for generated kernels: they are memory-bound, so the separate multiply and add
    // should cost nothing, and an expression then rounds as the CPU interpreter's does
    // (transcendentals and reduction orders aside), and a recomputed chain equals its forward.
    // Library kernels keep NVRTC's default (contracted FMAs: attention.cu's fp32 dot products)
    const char *opts[] = {archopt, "--std=c++17", "--fmad=false"};
    const int nopts = p->no_fma ? 3 : 2;
    snprintf(optline, sizeof optline, "%s %s%s", opts[0], opts[1], p->no_fma ? " --fmad=false" : "");
    int vmaj = 0, vmin = 0;
    rt_nvrtc_version(&vmaj, &vmin);
    char keytext[512];
    snprintf(keytext, sizeof keytext, "%s|%s|nvrtc %d.%d|cache %d", optline, j->arch, vmaj, vmin, RT_CUDA_CACHE_VERSION);
    size_t slen = strlen(p->source);
    uint64_t k1 = fnv(p->source, slen, fnv(keytext, strlen(keytext), 1));
    uint64_t k2 = fnv(p->source, slen, fnv(keytext, strlen(keytext), 2));
    char cpath[4400] = "", ppath[4400] = "";
    if (j->c->dir[0]) {
        snprintf(cpath, sizeof cpath, "%s/%.40s-%016" PRIx64 "%016" PRIx64 ".cubin", j->c->dir, p->name, k1, k2);
        snprintf(ppath, sizeof ppath, "%s/%.40s-%016" PRIx64 "%016" PRIx64 ".ptx", j->c->dir, p->name, k1, k2);
    }
    if (j->print) {
        pthread_mutex_lock(&j->mu);
        fprintf(j->d->out ? j->d->out : stderr, "--- kernel %s (%s) ---\n%s\n", p->name, optline, p->source);
        pthread_mutex_unlock(&j->mu);
    }
    nvrtcProgram prog = NULL;
    char *log = NULL;
    if (cpath[0] && cache_read(j->c, cpath, &p->cubin, &p->cubin_size, &j->mu)) {
        bool ptx_ok = true;
        if (j->want_ptx) {
            unsigned char *ptx = NULL;
            size_t n = 0;
            ptx_ok = cache_read(j->c, ppath, &ptx, &n, &j->mu);
            p->ptx = (char *)ptx;
            p->ptx_size = n;
        }
        if (ptx_ok) {
            p->cached = true;
            pthread_mutex_lock(&j->mu);
            j->c->hits++;
            pthread_mutex_unlock(&j->mu);
            goto done;
        }
        free(p->cubin);
        p->cubin = NULL;
    }
    NVRTC_CHECK(nvrtcCreateProgram(&prog, p->source, p->name, 0, NULL, NULL), "nvrtcCreateProgram");
    nvrtcResult r = nvrtcCompileProgram(prog, nopts, opts);
    size_t loglen = 0;
    if (nvrtcGetProgramLogSize(prog, &loglen) == NVRTC_SUCCESS && loglen > 1 && (log = malloc(loglen + 1)))
        if (nvrtcGetProgramLog(prog, log) != NVRTC_SUCCESS) log[0] = 0;
    if (r != NVRTC_SUCCESS) {
        report(j, p, "nvrtcCompileProgram", r, optline, log);
        goto fail;
    }
    size_t n = 0;
    NVRTC_CHECK(nvrtcGetCUBINSize(prog, &n), "nvrtcGetCUBINSize");
    if (!n || !(p->cubin = malloc(n))) {
        report(j, p, "nvrtcGetCUBIN (empty or out of memory)", NVRTC_ERROR_OUT_OF_MEMORY, optline, log);
        goto fail;
    }
    NVRTC_CHECK(nvrtcGetCUBIN(prog, (char *)p->cubin), "nvrtcGetCUBIN");
    p->cubin_size = n;
    if (j->want_ptx) {
        NVRTC_CHECK(nvrtcGetPTXSize(prog, &n), "nvrtcGetPTXSize");
        if (!n || !(p->ptx = malloc(n + 1))) {
            report(j, p, "nvrtcGetPTX (empty or out of memory)", NVRTC_ERROR_OUT_OF_MEMORY, optline, log);
            goto fail;
        }
        NVRTC_CHECK(nvrtcGetPTX(prog, p->ptx), "nvrtcGetPTX");
        p->ptx[n] = 0;
        p->ptx_size = strlen(p->ptx);
    }
    if (cpath[0]) {
        if (j->want_ptx) cache_write(ppath, p->ptx, p->ptx_size);
        cache_write(cpath, p->cubin, p->cubin_size);
    }
    pthread_mutex_lock(&j->mu);
    j->c->misses++;
    pthread_mutex_unlock(&j->mu);
done:
    rt_cuda_cubin_resources(p->cubin, p->cubin_size, p->name, &p->regs, &p->shared_bytes);
    p->status = 0;
    if (prog) nvrtcDestroyProgram(&prog);
    free(log);
    return;
fail:
    p->status = -1;
    if (prog) nvrtcDestroyProgram(&prog);
    free(log);
}

static void *worker(void *arg) {
    Job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->next < j->n ? j->next++ : -1;
        pthread_mutex_unlock(&j->mu);
        if (i < 0) return NULL;
        compile_one(j, &j->progs[i]);
    }
}

int rt_cuda_compile(RtCudaCache *c, RtCudaProgram *progs, int n, const char *arch, bool want_ptx,
                    int nthreads, Diag *d) {
    char devarch[32];
    if (!arch) arch = rt_cuda_device_arch(0, devarch, sizeof devarch) ? devarch : "sm_90";
    int print = env_flag(d, "TRLC_PRINT_KERNELS");
    Job j = {c, progs, n, 0, arch, want_ptx, print == 1, d, PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < n; i++) {
        progs[i].cubin = NULL, progs[i].ptx = NULL, progs[i].cubin_size = progs[i].ptx_size = 0;
        progs[i].regs = -1, progs[i].shared_bytes = -1, progs[i].status = -1, progs[i].cached = false;
    }
    if (print < 0) return n;   // a bad TRLC_PRINT_KERNELS (reported): nothing compiled
    if (nthreads <= 0) nthreads = 2;
    if (nthreads > 64) nthreads = 64;
    if (nthreads > n) nthreads = n;
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < nthreads; t++)
        if (pthread_create(&th[started], NULL, worker, &j) == 0) started++;
    worker(&j);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.mu);
    int failed = 0;
    for (int i = 0; i < n; i++) failed += progs[i].status != 0;
    return failed;
}

void rt_cuda_program_free(RtCudaProgram *p) {
    free(p->cubin);
    free(p->ptx);
    p->cubin = NULL;
    p->ptx = NULL;
}

// ---------------------------------------------------------------------------------------------
// cubin resources: ELF section headers, bounds-checked

static bool rd(const unsigned char *b, size_t size, uint64_t off, void *out, size_t n) {
    if (off > size || n > size - off) return false;
    memcpy(out, b + off, n);
    return true;
}

void rt_cuda_cubin_resources(const unsigned char *cubin, size_t size, const char *name, int *regs,
                             int64_t *shared_bytes) {
    *regs = -1;
    *shared_bytes = -1;
    Elf64_Ehdr eh;
    if (!cubin || !rd(cubin, size, 0, &eh, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum)
        return;
    Elf64_Shdr strs;
    if (!rd(cubin, size, eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof strs, &strs, sizeof strs)) return;
    char want_shared[300];
    snprintf(want_shared, sizeof want_shared, ".nv.shared.%s", name);
    Elf64_Shdr info = {0}, symtab = {0}, strtab = {0};
    bool have_info = false, have_sym = false;
    for (int i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        if (!rd(cubin, size, eh.e_shoff + (uint64_t)i * sizeof sh, &sh, sizeof sh)) return;
        if (sh.sh_name >= strs.sh_size) continue;
        uint64_t noff = strs.sh_offset + sh.sh_name;
        char sname[300];
        size_t k = 0;
        while (k + 1 < sizeof sname && noff + k < size && cubin[noff + k]) {
            sname[k] = (char)cubin[noff + k];
            k++;
        }
        sname[k] = 0;
        if (!strcmp(sname, ".nv.info")) info = sh, have_info = true;
        else if (sh.sh_type == SHT_SYMTAB) {
            symtab = sh, have_sym = true;
            if (!rd(cubin, size, eh.e_shoff + (uint64_t)sh.sh_link * sizeof strtab, &strtab, sizeof strtab)) return;
        } else if (!strcmp(sname, want_shared)) *shared_bytes = (int64_t)sh.sh_size;
    }
    if (!have_info || !have_sym) return;
    // .nv.info: records (format u8, attribute u8, then for format 4 a u16 size and that many bytes;
    // other formats a u16 value). EIATTR_REGCOUNT (0x2f): symbol index u32, registers u32.
    uint64_t off = info.sh_offset, end = info.sh_offset + info.sh_size;
    while (off + 4 <= end && end <= size) {
        unsigned char fmt = cubin[off], attr = cubin[off + 1];
        uint16_t len = 0;
        memcpy(&len, cubin + off + 2, 2);
        uint64_t next = off + 4 + (fmt == 4 ? len : 0);
        if (fmt == 4 && attr == 0x2f && len >= 8 && next <= end) {
            uint32_t symi, nregs;
            memcpy(&symi, cubin + off + 4, 4);
            memcpy(&nregs, cubin + off + 8, 4);
            Elf64_Sym sym;
            if (rd(cubin, size, symtab.sh_offset + (uint64_t)symi * sizeof sym, &sym, sizeof sym) &&
                (uint64_t)symi * sizeof sym < symtab.sh_size && sym.st_name < strtab.sh_size) {
                uint64_t so = strtab.sh_offset + sym.st_name;
                size_t nl = strlen(name);
                if (so + nl < size && !memcmp(cubin + so, name, nl) && cubin[so + nl] == 0) *regs = (int)nregs;
            }
        }
        off = next;
    }
    if (*regs >= 0 && *shared_bytes < 0) *shared_bytes = 0;
}

// ---------------------------------------------------------------------------------------------
// device queries through the driver, loaded on demand

typedef int (*CuInit)(unsigned);
typedef int (*CuDeviceGetCount)(int *);
typedef int (*CuDeviceGet)(int *, int);
typedef int (*CuDeviceGetAttribute)(int *, int, int);

static void *driver(void) {
    static void *h;
    static bool tried;
    if (!tried) {
        tried = true;
        h = dlopen(rt_cuda_driver_path(), RTLD_NOW | RTLD_LOCAL);
        if (h) {
            CuInit init = (CuInit)(uintptr_t)dlsym(h, "cuInit");
            if (!init || init(0) != 0) h = NULL;
        }
    }
    return h;
}

int rt_cuda_device_count(void) {
    void *h = driver();
    if (!h) return 0;
    CuDeviceGetCount count = (CuDeviceGetCount)(uintptr_t)dlsym(h, "cuDeviceGetCount");
    int n = 0;
    if (!count || count(&n) != 0) return 0;
    return n;
}

bool rt_cuda_device_arch(int dev, char *buf, size_t n) {
    void *h = driver();
    if (!h || dev < 0 || dev >= rt_cuda_device_count()) return false;
    CuDeviceGet get = (CuDeviceGet)(uintptr_t)dlsym(h, "cuDeviceGet");
    CuDeviceGetAttribute attr = (CuDeviceGetAttribute)(uintptr_t)dlsym(h, "cuDeviceGetAttribute");
    int d = 0, major = 0, minor = 0;
    if (!get || !attr || get(&d, dev) != 0 || attr(&major, 75, d) != 0 || attr(&minor, 76, d) != 0) return false;
    snprintf(buf, n, "sm_%d%d", major, minor);
    return true;
}
