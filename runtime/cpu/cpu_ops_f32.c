// cpu_ops_f32.c — the CPU kernels (cpu_ops.inc) instantiated with real = float. Built once for
// the baseline ISA and, on x86-64, again per wider ISA (cpu_ops_f32_avx2.c, _avx512.c define
// EXEC_NAME and include this file; CMake adds -march); cpu.c picks one at run time.
#include <cblas.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_internal.h"

#define real float
#ifndef EXEC_NAME
#define EXEC_NAME cpu_exec_f32
#endif
#define GEMM cblas_sgemm
#define GEMV cblas_sgemv
#define EXP expf
#define VEXP cpu_vexpf   // loops that vectorize (cpu_internal.h)
#define LOG logf
#define SQRT sqrtf
#define TANH tanhf
#define FABS fabsf
#define POW powf
#define LOG1P log1pf

#include "cpu_ops.inc"
