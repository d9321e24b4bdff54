// cpu_ops_f32_avx512.c — the float kernels built for x86-64-v4 (AVX-512); see cpu_ops_f32.c.
#define EXEC_NAME cpu_exec_f32_avx512
#include "cpu_ops_f32.c"
