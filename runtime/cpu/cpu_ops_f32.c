// cpu_ops_f32.c — the CPU kernels (cpu_ops.inc) instantiated with real = float.
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
#define EXEC_NAME cpu_exec_f32
#define GEMM cblas_sgemm
#define GEMV cblas_sgemv
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#define TANH tanhf
#define FABS fabsf
#define POW powf
#define LOG1P log1pf

#include "cpu_ops.inc"
