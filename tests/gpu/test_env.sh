#!/bin/bash
# test_env.sh TRLC SRCDIR WORKDIR [EMULATOR] — the enum-like TRLC_* environment variables
# (common/env.h): a value outside the accepted set stops `trlc kernels` / `trlc run` with an error
# naming the variable, the value and the accepted values, and a non-zero exit; every accepted
# value (and the empty string, as unset) still works. The CPU backend's byte counts likewise
# (TRLC_CPU_SDPA_BLOCK_MAX, TRLC_CPU_LCE_CHUNK_BYTES: a whole number, nothing else). EMULATOR (the CUDA emulator's library,
# tests/gpu/emu) adds the device-only variables (TRLC_CUDA_GRAPHS, TRLC_HOST_OPTIMIZER, TRLC_ATTN_BWD) on
# `trlc run --device cuda`; TRLC_PRINT_KERNELS needs NVRTC (`trlc kernels` compiling).
set -u
trlc=$1 src=$2 work=$3 emu=${4:-}
rm -rf "$work"
mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
spec=$src/tests/run/lora.trl
fail=0 n=0

# refused VAR VALUE EXPECTED CMD...: exit non-zero, the message names VAR, `VALUE` and what it
# expected ("one of `0`, `1`", "a whole number of at least 1")
refused() {
    local var=$1 val=$2 expected=$3
    shift 3
    env "$var=$val" "$@" > "$work/out.txt" 2> "$work/err.txt"
    local rc=$?
    n=$((n + 1))
    if [ $rc -eq 0 ] || ! grep -qF "environment variable $var is \`$val\`: expected $expected (or unset)" "$work/err.txt"; then
        echo "FAIL: $var=$val: exit $rc"; head -5 "$work/err.txt"; fail=1
    else
        echo "ok: $var=$val: exit $rc: $(grep -m1 "$var" "$work/err.txt")"
    fi
}
# bad VAR VALUE ACCEPTED CMD...: an enum-like variable's value outside ACCEPTED
bad() { local var=$1 val=$2 accepted=$3; shift 3; refused "$var" "$val" "one of $accepted" "$@"; }
# good VAR VALUE CMD...: exit 0
good() {
    local var=$1 val=$2
    shift 2
    env "$var=$val" "$@" > "$work/out.txt" 2> "$work/err.txt"
    local rc=$?
    n=$((n + 1))
    if [ $rc -ne 0 ]; then echo "FAIL: $var=$val: exit $rc"; head -5 "$work/err.txt"; fail=1; else echo "ok: $var='$val' runs"; fi
}
kernels=("$trlc" kernels "$spec" -o "$work/k" --no-compile --plan)
run=("$trlc" run "$spec" --set train.steps=1 --out "$work/run")

# TRLC_GEMM_ACC: 0, nobias, 1 — trlc kernels (the plan) and trlc run (the CPU trainer)
bad TRLC_GEMM_ACC yes '`0`, `nobias`, `1`' "${kernels[@]}"
bad TRLC_GEMM_ACC on '`0`, `nobias`, `1`' "${run[@]}"
grep -q "did you mean" "$work/err.txt" && { echo "FAIL: 'on' is not near any value: no suggestion expected"; fail=1; }
bad TRLC_GEMM_ACC nobiass '`0`, `nobias`, `1`' "${kernels[@]}"
grep -qF "did you mean TRLC_GEMM_ACC=nobias?" "$work/err.txt" || { echo "FAIL: no suggestion for nobiass"; fail=1; }
[ -e "$work/run/metrics.jsonl" ] && { echo "FAIL: a run with a bad TRLC_GEMM_ACC trained"; fail=1; }
for v in 0 nobias 1 ''; do good TRLC_GEMM_ACC "$v" "${kernels[@]}"; cp "$work/out.txt" "$work/plan-$v.txt"; done
# the values still mean what they did: 0 launches more kernels than 1 (the adds run on their own)
l0=$(grep -o '[0-9]* kernel launches' "$work/plan-0.txt" | head -1 | awk '{print $1}')
l1=$(grep -o '[0-9]* kernel launches' "$work/plan-1.txt" | head -1 | awk '{print $1}')
lu=$(grep -o '[0-9]* kernel launches' "$work/plan-.txt" | head -1 | awk '{print $1}')
if [ -n "$l0" ] && [ -n "$l1" ] && [ "$l0" -gt "$l1" ] && [ "$l1" = "$lu" ]; then echo "ok: launches: TRLC_GEMM_ACC=0 $l0, =1 $l1, unset $lu"
else echo "FAIL: launches: TRLC_GEMM_ACC=0 '$l0', =1 '$l1', unset '$lu'"; fail=1; fi
good TRLC_GEMM_ACC 0 "${run[@]}"

# the CPU backend's variables, on trlc run
bad TRLC_CPU_ISA avx3 '`base`, `avx2`, `avx512`' "${run[@]}"
grep -qF "did you mean TRLC_CPU_ISA=avx2?" "$work/err.txt" || { echo "FAIL: no suggestion for avx3"; fail=1; }
good TRLC_CPU_ISA base "${run[@]}"
bad TRLC_CPU_PROFILE yes '`0`, `1`' "${run[@]}"
good TRLC_CPU_PROFILE 1 "${run[@]}"
grep -q "matmul" "$work/err.txt" || { echo "FAIL: TRLC_CPU_PROFILE=1 printed no per-op times"; fail=1; }

# the fusion plan's switches, on trlc kernels: 0 plans more launches than 1 / unset
bad TRLC_FUSE_SINK no '`0`, `1`' "${kernels[@]}"
bad TRLC_FUSE_MERGE off '`0`, `1`' "${kernels[@]}"
for v in 0 1; do good TRLC_FUSE_MERGE "$v" "${kernels[@]}"; cp "$work/out.txt" "$work/merge-$v.txt"; done
m0=$(grep -o '[0-9]* kernel launches' "$work/merge-0.txt" | head -1 | awk '{print $1}')
m1=$(grep -o '[0-9]* kernel launches' "$work/merge-1.txt" | head -1 | awk '{print $1}')
if [ -n "$m0" ] && [ -n "$m1" ] && [ "$m0" -gt "$m1" ]; then echo "ok: launches: TRLC_FUSE_MERGE=0 $m0, =1 $m1"
else echo "FAIL: launches: TRLC_FUSE_MERGE=0 '$m0', =1 '$m1'"; fail=1; fi
bad TRLC_FUSE_VIEWS yes '`0`, `1`' "${kernels[@]}"
for v in 0 1; do good TRLC_FUSE_VIEWS "$v" "${kernels[@]}"; cp "$work/out.txt" "$work/views-$v.txt"; done
v0=$(grep -o '[0-9]* kernel launches' "$work/views-0.txt" | head -1 | awk '{print $1}')
v1=$(grep -o '[0-9]* kernel launches' "$work/views-1.txt" | head -1 | awk '{print $1}')
if [ -n "$v0" ] && [ -n "$v1" ] && [ "$v0" -gt "$v1" ]; then echo "ok: launches: TRLC_FUSE_VIEWS=0 $v0, =1 $v1"
else echo "FAIL: launches: TRLC_FUSE_VIEWS=0 '$v0', =1 '$v1'"; fail=1; fi

# the CPU backend's byte limits (counts: common/env.h env_count), on trlc run
badnum() { local var=$1 val=$2 min=$3; shift 3; refused "$var" "$val" "a whole number of at least $min" "$@"; }
badnum TRLC_CPU_SDPA_BLOCK_MAX 64MiB 0 "${run[@]}"
badnum TRLC_CPU_SDPA_BLOCK_MAX -1 0 "${run[@]}"
badnum TRLC_CPU_LCE_CHUNK_BYTES 0 1 "${run[@]}"
badnum TRLC_CPU_LCE_CHUNK_BYTES '1e6' 1 "${run[@]}"
badnum TRLC_CPU_LCE_CHUNK_BYTES 99999999999999999999 1 "${run[@]}"
good TRLC_CPU_SDPA_BLOCK_MAX 0 "${run[@]}"
good TRLC_CPU_LCE_CHUNK_BYTES 4096 "${run[@]}"

# NVRTC: TRLC_PRINT_KERNELS on trlc kernels compiling (skipped where trlc has no NVRTC)
if "$trlc" kernels "$spec" -o "$work/kc" --arch sm_90 > "$work/kc.txt" 2>&1; then
    bad TRLC_PRINT_KERNELS true '`0`, `1`' "$trlc" kernels "$spec" -o "$work/kc" --arch sm_90
    good TRLC_PRINT_KERNELS 1 "$trlc" kernels "$spec" -o "$work/kc" --arch sm_90
    grep -q -- "--- kernel " "$work/err.txt" || { echo "FAIL: TRLC_PRINT_KERNELS=1 printed no source"; fail=1; }
else
    echo "no NVRTC in this trlc: TRLC_PRINT_KERNELS not checked"
fi

# the device's variables, on the emulator
if [ -n "$emu" ]; then
    export TRLC_CUDA_DRIVER=$emu TRLC_CUBLASLT_LIB=$emu
    dev=("$trlc" run "$spec" --device cuda --set train.steps=1 --out "$work/dev")
    bad TRLC_CUDA_GRAPHS off '`0`, `1`' "${dev[@]}"
    good TRLC_CUDA_GRAPHS 0 "${dev[@]}"
    bad TRLC_HOST_OPTIMIZER yes '`0`, `1`' "${dev[@]}"
    good TRLC_HOST_OPTIMIZER 1 "${dev[@]}"
    bad TRLC_ATTN_BWD atomic '`fused`, `split`' "${dev[@]}"
    good TRLC_ATTN_BWD split "${dev[@]}"
else
    echo "no emulator: TRLC_CUDA_GRAPHS, TRLC_HOST_OPTIMIZER, TRLC_ATTN_BWD not checked"
fi
[ $fail = 0 ] && echo "gpu.env: $n cases ok"
exit $fail
