// cpu_ops_f64.c — the CPU kernels (cpu_ops.inc) instantiated with real = double.
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

#define real double
#define EXEC_NAME cpu_exec_f64
#define GEMM cblas_dgemm
#define GEMV cblas_dgemv
#define EXP exp
#define VEXP exp
#define LOG log
#define SQRT sqrt
#define TANH tanh
#define FABS fabs
#define POW pow
#define LOG1P log1p

#include "cpu_ops.inc"
