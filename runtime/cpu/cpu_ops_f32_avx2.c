// cpu_ops_f32_avx2.c — the float kernels built for x86-64-v3 (AVX2, FMA); see cpu_ops_f32.c.
#define EXEC_NAME cpu_exec_f32_avx2
#include "cpu_ops_f32.c"
