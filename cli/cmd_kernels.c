// cmd_kernels.c — `trlc kernels SPEC -o DIR [--arch sm_90] [--ptx] [--no-compile] [--plan]`:
// runs the compiler pipeline (load → check → lower → LoRA when the spec has it → autodiff → dce
// → fuse → CUDA codegen), writes every unique generated kernel to DIR/<kernel>.cu (with --ptx also
// DIR/<kernel>.ptx), compiles them with NVRTC for the arch (through the kernel cache) and writes
// DIR/index.txt: one line per step (kernel or library op, fused nodes, launch shape, registers and
// static shared memory read from the compiled cubin's ELF sections).
// Exit 0, 1 (spec errors), 2 (usage), 3 (a kernel failed to compile or a file could not be written).
// Not here: running anything (trlc run), the library kernels' own sources (kernels/).
#include "fsutil.h"
#include "autodiff.h"
#include "check.h"
#include "cli.h"
#include "codegen_cuda.h"
#include "fuse.h"
#include "ir.h"
#include "load.h"
#include "lower.h"
#include "memplan.h"
#include "memplan_spec.h"
#ifdef TRLC_HAVE_CUDA
#include "rt_cuda.h"
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char usage_kernels[] =
    "usage: trlc kernels SPEC -o DIR [--arch sm_XY] [--ptx] [--no-compile] [--plan] [--memory B,T]\n"
    "\n"
    "Compiles SPEC's training program (the policy, LoRA when the spec has it, the backward) down\n"
    "to GPU kernels: fuses elementwise ops and reductions, generates CUDA C, compiles it with\n"
    "NVRTC (through the kernel cache) and writes every unique kernel to DIR/<kernel>.cu with an\n"
    "index (DIR/index.txt): each step, the nodes it fuses, its launch shape, and registers and\n"
    "shared memory from the compiled binary.\n"
    "\n"
    "options:\n"
    "  -o DIR         output directory (created)\n"
    "  --arch sm_XY   target architecture (default: the GPU's own, else sm_90)\n"
    "  --ptx          also write DIR/<kernel>.ptx (a library file's: DIR/<file>.cu.ptx)\n"
    "  --no-compile   generate only (no NVRTC)\n"
    "  --plan         print the step plan to stdout\n"
    "  --memory B,T   print the memory plan of a step with batch B and sequence length T, and\n"
    "                 what fills its peak\n"
    "  -h, --help     this help\n"
    "\n"
    "environment: TRLC_CACHE_DIR (kernel cache), TRLC_PRINT_KERNELS=1 (print each source);\n"
    "  TRLC_GEMM_ACC, TRLC_FUSE_SINK, TRLC_FUSE_MERGE, TRLC_FUSE_VIEWS (=0: plans without those\n"
    "  rewrites, to compare);\n"
    "  TRLC_RECOMPUTE_CHAINS=0 (keep the cheap chains the backward recomputes), TRLC_RECOMPUTE_ROPE=1\n"
    "  (recompute rope too): docs/kernels.md, memory plan\n"
    "exit status: 0 success, 1 spec errors, 2 usage error, 3 compile or write failure\n";


typedef struct LibCubin {
    unsigned char *cubin;
    size_t size;
} LibCubin;

static void rt_resources(const unsigned char *cubin, size_t size, const char *name, int *regs, int64_t *shared) {
#ifdef TRLC_HAVE_CUDA
    rt_cuda_cubin_resources(cubin, size, name, regs, shared);
#else
    (void)cubin, (void)size, (void)name, *regs = -1, *shared = -1;
#endif
}

static int write_file(Diag *d, const char *dir, const char *name, const char *ext, const char *text) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;
    if (f) ok = (fclose(f) == 0) & ok;
    if (!ok) diag_plain_error(d, "cannot write `%s`: %s", path, strerror(errno));
    return ok ? 0 : -1;
}

int cmd_kernels(int argc, char **argv) {
    const char *path = NULL, *outdir = NULL, *arch = NULL, *memory = NULL;
    bool ptx = false, no_compile = false, print_plan = false;
    const CliOpt opts[] = {{"-o", .value = &outdir}, {"--arch", .value = &arch}, {"--memory", .value = &memory},
                           {"--ptx", .flag = &ptx}, {"--no-compile", .flag = &no_compile},
                           {"--plan", .flag = &print_plan}, {0}};
    if (cli_parse_args(argc, argv, "kernels", usage_kernels, opts, &path) != EXIT_OK) return EXIT_USAGE;
    const bool compile = !no_compile;
    long long mem_b = 0, mem_t = 0;
    char tail = 0;
    if (memory && (sscanf(memory, "%lld,%lld%c", &mem_b, &mem_t, &tail) != 2 || mem_b <= 0 || mem_t <= 0 ||
                   mem_b > (1 << 20) || mem_t > (1 << 24))) {
        return cli_usage_error("kernels", NULL, "`--memory` needs B,T (positive numbers, e.g. 8,2048)");
    }
    if (!path || !outdir)
        return cli_usage_error("kernels", usage_kernels, "%s", !path ? "no spec given" : "no output directory (-o DIR)");
    if (arch) {
        int v = 0;
        if (strncmp(arch, "sm_", 3) || sscanf(arch + 3, "%d", &v) != 1 || v < 50 || v > 200)
            return cli_usage_error("kernels", NULL, "`--arch %s`: expected sm_XY, e.g. sm_80 or sm_90", arch);
    }
    Diag d;
    diag_init(&d, stderr);
    Arena arena;
    LoadedSpec spec;
    CheckedSpec *cs;
    IrGraph g;
    int status = mp_open_spec_file(&d, &arena, path, &spec, &cs, &g) == 0 ? EXIT_OK : EXIT_SPEC;
    FusePlan plan;
    memset(&plan, 0, sizeof plan);
    const char *libs[32];
    int nlibs = 0;
    LibCubin lib[32];
    memset(lib, 0, sizeof lib);
    if (status != EXIT_OK || fuse_plan(&g, &d, &plan) != 0) {
        if (d.errors) fprintf(stderr, "%s: %d error%s\n", path, d.errors, d.errors == 1 ? "" : "s");
        status = EXIT_SPEC;
        goto out;
    }
    if (print_plan) fuse_print(stdout, &plan, &d);
    if (mem_b > 0) {
        MpPlan mp;
        int64_t sym[IR_NSYMS] = {mem_b, mem_t};
        if (mp_plan(&g, &plan, sym, cs->train.precision, &mp, &d) != 0) {
            status = EXIT_SPEC;
            goto out;
        }
        mp_print(stdout, &mp);
        mp_print_peak(stdout, &mp, &g, &plan, &d, 10);
        mp_plan_free(&mp);
    }
    if (fs_mkdir_p(outdir, 0755, NULL, 0) != 0) {
        diag_plain_error(&d, "cannot create directory `%s`: %s", outdir, strerror(errno));
        status = EXIT_RUNTIME;
        goto out;
    }
    char **src = calloc((size_t)plan.nkernels + 1, sizeof *src);
    int *regs = malloc(((size_t)plan.nkernels + 1) * sizeof *regs);
    int64_t *shm = malloc(((size_t)plan.nkernels + 1) * sizeof *shm);
    if (!src || !regs || !shm) {
        diag_plain_error(&d, "out of memory");
        status = EXIT_RUNTIME;
        goto free_src;
    }
    for (int k = 0; k < plan.nkernels; k++) {
        regs[k] = -1, shm[k] = -1;
        src[k] = cg_cuda_kernel(&plan, k, &d);
        if (!src[k] || write_file(&d, outdir, plan.kernels[k].name, ".cu", src[k]) != 0) {
            if (!src[k]) diag_plain_error(&d, "out of memory generating %s", plan.kernels[k].name);
            status = EXIT_RUNTIME;
            goto free_src;
        }
    }
    // the library kernels the plan launches (kernels/*.cu), and the optimizer's (adamw.cu)
    libs[nlibs++] = "adamw.cu";
    for (int i = 0; i < plan.nsteps; i++) {
        if (plan.steps[i].kind != FUSE_LIBRARY) continue;
        const char *file = NULL;
        cg_library_kernel(&g, plan.steps[i].node, &file);
        bool have = !file;
        for (int k = 0; k < nlibs && !have; k++) have = !strcmp(libs[k], file);
        if (!have && nlibs < 32) libs[nlibs++] = file;
    }
    for (int k = 0; k < nlibs; k++) {
        const char *text = cg_library_source(libs[k]);
        if (!text || write_file(&d, outdir, libs[k], "", text) != 0) {
            if (!text) diag_plain_error(&d, "library kernel file `%s` is not built in", libs[k]);
            status = EXIT_RUNTIME;
            goto free_src;
        }
    }
    char summary[512] = "not compiled (--no-compile)";
    if (compile) {
#ifdef TRLC_HAVE_CUDA
        RtCudaCache cache;
        rt_cuda_cache_init(&cache, &d);
        int nprog = plan.nkernels + nlibs;
        RtCudaProgram *progs = calloc((size_t)nprog + 1, sizeof *progs);
        if (!progs) {
            diag_plain_error(&d, "out of memory");
            status = EXIT_RUNTIME;
            goto free_src;
        }
        for (int k = 0; k < plan.nkernels; k++)   // as the executor compiles them (exec.c load_fused)
            progs[k].name = plan.kernels[k].name, progs[k].source = src[k], progs[k].no_fma = true;
        for (int k = 0; k < nlibs; k++)
            progs[plan.nkernels + k].name = libs[k], progs[plan.nkernels + k].source = cg_library_source(libs[k]);
        char devarch[32];
        const char *use_arch = arch ? arch : rt_cuda_device_arch(0, devarch, sizeof devarch) ? devarch : "sm_90";
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int failed = rt_cuda_compile(&cache, progs, nprog, use_arch, ptx, 2, &d);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        for (int k = 0; k < plan.nkernels; k++) {
            regs[k] = progs[k].regs, shm[k] = progs[k].shared_bytes;
            if (ptx && progs[k].status == 0 && progs[k].ptx &&
                write_file(&d, outdir, plan.kernels[k].name, ".ptx", progs[k].ptx) != 0)
                status = EXIT_RUNTIME;
            rt_cuda_program_free(&progs[k]);
        }
        for (int k = 0; k < nlibs; k++) {
            RtCudaProgram *pr = &progs[plan.nkernels + k];
            if (ptx && pr->status == 0 && pr->ptx && write_file(&d, outdir, libs[k], ".ptx", pr->ptx) != 0)
                status = EXIT_RUNTIME;
            lib[k].cubin = pr->cubin, lib[k].size = pr->cubin_size;   // kept for the index
            pr->cubin = NULL;
            rt_cuda_program_free(pr);
        }
        free(progs);
        snprintf(summary, sizeof summary, "%d compiled for %s with NVRTC (%d generated, %d library files): %d built, %d from the cache%s%s, %d failed, %.1f s",
                 nprog - failed, use_arch, plan.nkernels, nlibs, cache.misses, cache.hits, cache.corrupt ? ", corrupt entries ignored: " : "",
                 cache.corrupt ? "yes" : "", failed, secs);
        if (failed) status = EXIT_RUNTIME;
#else
        (void)ptx;
        snprintf(summary, sizeof summary, "not compiled (trlc was built without the CUDA toolkit)");
#endif
    }
    // the index
    {
        char ipath[4300];
        snprintf(ipath, sizeof ipath, "%s/index.txt", outdir);
        FILE *f = fopen(ipath, "w");
        if (!f) {
            diag_plain_error(&d, "cannot write `%s`: %s", ipath, strerror(errno));
            status = EXIT_RUNTIME;
            goto free_src;
        }
        fprintf(f, "# trlc kernels %s\n# %d nodes -> %d steps: %d kernel launches (%d unique kernels), %d gemm, %d library, %d views\n",
                path, g.n, plan.nsteps, plan.nsteps_kind[FUSE_KERNEL], plan.nkernels, plan.nsteps_kind[FUSE_GEMM],
                plan.nsteps_kind[FUSE_LIBRARY], plan.nsteps_kind[FUSE_VIEW]);
        fprintf(f, "# kernels: %s\n", summary);
        fprintf(f, "# unique kernels (name, launches, registers/thread, static shared bytes):\n");
        for (int k = 0; k < plan.nkernels; k++)
            fprintf(f, "kernel %s launches=%d regs=%d shared=%lld\n", plan.kernels[k].name, plan.kernels[k].ngroups,
                    regs[k], (long long)shm[k]);
        fprintf(f, "# steps:\n");
        char loc[256], s1[96], launch[256], args[2048];
        for (int i = 0; i < plan.nsteps; i++) {
            const FuseStep *st = &plan.steps[i];
            if (st->kind != FUSE_KERNEL) {
                const IrNode *n = &g.nodes[st->node];
                fprintf(f, "step %d %s %s %%%d %s%s at %s", i,
                        st->kind == FUSE_GEMM ? "gemm" : st->kind == FUSE_VIEW ? "view" : "library", ir_op_name(n->op),
                        st->node, ir_dtype_name(n->dtype), ir_shape_str(&n->shape, s1, sizeof s1),
                        fuse_loc_str(&d, n->loc, loc, sizeof loc));
                if (st->kind == FUSE_GEMM) fprintf(f, " -> cuBLASLt");
                if (st->kind == FUSE_LIBRARY) {
                    const char *file = NULL, *kn = cg_library_kernel(&g, st->node, &file);
                    if (!kn) fprintf(f, " -> no GPU kernel yet");
                    else {
                        int r = -1;
                        int64_t sh = -1;
                        for (int k = 0; k < nlibs; k++)
                            if (!strcmp(libs[k], file) && lib[k].cubin)
                                rt_resources(lib[k].cubin, lib[k].size, kn, &r, &sh);
                        fprintf(f, " -> %s (%s) regs=%d shared=%lld", kn, file, r, (long long)sh);
                    }
                }
                fputc('\n', f);
                continue;
            }
            const FuseGroup *gr = &plan.groups[st->group];
            cg_launch_shape(&plan, st->group, launch, sizeof launch);
            cg_kernel_args(&plan, st->group, args, sizeof args);
            fprintf(f, "step %d kernel %s regs=%d shared=%lld launch: %s\n", i, plan.kernels[gr->kernel].name,
                    regs[gr->kernel], (long long)shm[gr->kernel], launch);
            fprintf(f, "    fuses:");
            for (int k = 0; k < gr->nnodes; k++) {
                const IrNode *n = &g.nodes[gr->nodes[k]];
                fprintf(f, " %%%d %s (%s)", gr->nodes[k], ir_op_name(n->op), fuse_loc_str(&d, n->loc, loc, sizeof loc));
            }
            fprintf(f, "\n    args: %s\n", args);
        }
        if (fclose(f) != 0) status = EXIT_RUNTIME;
    }
    printf("%s: %d nodes -> %d steps: %d kernel launches of %d unique kernels, %d gemm, %d library, %d views\n"
           "kernels: %s\nwrote %s/index.txt, %d generated and %d library .cu files\n",
           path, g.n, plan.nsteps, plan.nsteps_kind[FUSE_KERNEL], plan.nkernels, plan.nsteps_kind[FUSE_GEMM],
           plan.nsteps_kind[FUSE_LIBRARY], plan.nsteps_kind[FUSE_VIEW], summary, outdir, plan.nkernels, nlibs);
free_src:
    if (src)
        for (int k = 0; k < plan.nkernels; k++) free(src[k]);
    free(src);
    free(regs);
    free(shm);
out:
    for (int k = 0; k < 32; k++) free(lib[k].cubin);
    fuse_plan_free(&plan);
    ir_graph_free(&g);
    arena_free(&arena);
    diag_free(&d);
    return status;
}
