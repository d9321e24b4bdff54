#!/bin/bash
# test_qwen2_plan.sh TRLC SPEC WORKDIR — the bias epilogue on a lowered model (gemm_acc.qwen2_plan):
# `trlc kernels --plan` of a 2-layer Qwen2 with LoRA on every linear (qwen2-lora.trl) must show
# 6 products taking a bias (q, k, v of each layer), each read by a LoRA product (alpha 2) that
# accumulates into it, and 6 kernel launches fewer than with TRLC_GEMM_ACC=nobias (the bias adds).
set -u
trlc=$1 spec=$2 work=$3
mkdir -p "$work"
fail() { echo "gemm_acc.qwen2_plan: $*"; exit 1; }
plan=$("$trlc" kernels "$spec" -o "$work/k" --no-compile --plan) || fail "trlc kernels failed"
base=$(TRLC_GEMM_ACC=nobias "$trlc" kernels "$spec" -o "$work/k" --no-compile --plan) || fail "trlc kernels (nobias) failed"
launches() { sed -n 's/^# plan: [0-9]* steps (\([0-9]*\) kernel launches.*/\1/p' <<<"$1"; }
nb=$(grep -c ' + bias %' <<<"$plan")
[ "$nb" = 6 ] || fail "$nb products with a bias, want 6"
[ "$(grep -c ' + bias %' <<<"$base")" = 0 ] || fail "TRLC_GEMM_ACC=nobias still folds biases"
# the bias products' ids, then the LoRA products accumulating into them
ids=$(sed -n 's/^ *[0-9]* gemm *matmul *%\([0-9]*\) .* + bias %[0-9]*).*/\1/p' <<<"$plan")
for id in $ids; do
    grep -q " \* 2 + %$id)" <<<"$plan" || fail "no LoRA product accumulates into the bias product %$id"
done
a=$(launches "$plan") b=$(launches "$base")
[ -n "$a" ] && [ -n "$b" ] && [ $((b - a)) = 6 ] || fail "kernel launches $b -> $a, want 6 fewer"
echo "gemm_acc.qwen2_plan: 6 products take their bias, each with its LoRA product accumulating; launches $b -> $a"
