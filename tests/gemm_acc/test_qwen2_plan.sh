#!/bin/bash
# test_qwen2_plan.sh TRLC SPEC WORKDIR [BF16SPEC] — the bias epilogue on a lowered model
# (gemm_acc.qwen2_plan): `trlc kernels --plan` of a 2-layer Qwen2 with LoRA on every linear
# (qwen2-lora.trl) must show 6 products taking a bias (q, k, v of each layer), each read by a LoRA
# product (alpha 2) that accumulates into it, and 6 kernel launches fewer than with
# TRLC_GEMM_ACC=nobias (the bias adds). BF16SPEC (the same model under precision = bf16,
# autocast.h): the same 6 products with bf16 results (a bf16 bias: cuBLASLt's bias of D's type),
# their LoRA products accumulating into them with bf16 results too, and at least 6 launches fewer
# than with nobias (there the bias add, its casts and the LoRA sum stay kernels).
set -u
trlc=$1 spec=$2 work=$3 bf16spec=${4:-}
mkdir -p "$work"
fail() { echo "gemm_acc.qwen2_plan: $*"; exit 1; }
launches() { sed -n 's/^# plan: [0-9]* steps (\([0-9]*\) kernel launches.*/\1/p' <<<"$1"; }
# check SPEC DTYPE: the plan's bias products (DTYPE results) and the launches saved
check() {
    local spec=$1 dt=$2 plan base nb ids id a b
    plan=$("$trlc" kernels "$spec" -o "$work/k" --no-compile --plan) || fail "trlc kernels failed ($spec)"
    base=$(TRLC_GEMM_ACC=nobias "$trlc" kernels "$spec" -o "$work/k" --no-compile --plan) ||
        fail "trlc kernels (nobias) failed ($spec)"
    nb=$(grep -c " : $dt\[[^]]*\] (.* + bias %" <<<"$plan")
    [ "$nb" = 6 ] || fail "$nb products with a bias and a $dt result, want 6 ($spec)"
    [ "$(grep -c ' + bias %' <<<"$plan")" = 6 ] || fail "other products with a bias ($spec)"
    [ "$(grep -c ' + bias %' <<<"$base")" = 0 ] || fail "TRLC_GEMM_ACC=nobias still folds biases ($spec)"
    # the bias products' ids, then the LoRA products accumulating into them
    ids=$(sed -n 's/^ *[0-9]* gemm *matmul *%\([0-9]*\) .* + bias %[0-9]*).*/\1/p' <<<"$plan")
    for id in $ids; do
        grep -q " : $dt\[[^]]*\] (.* \* 2 + %$id)" <<<"$plan" ||
            fail "no LoRA product accumulates into the bias product %$id with a $dt result ($spec)"
    done
    a=$(launches "$plan") b=$(launches "$base")
    [ -n "$a" ] && [ -n "$b" ] || fail "no launch counts ($spec)"
    if [ "$dt" = f32 ]; then
        [ $((b - a)) = 6 ] || fail "kernel launches $b -> $a, want 6 fewer ($spec)"
    else
        [ $((b - a)) -ge 6 ] || fail "kernel launches $b -> $a, want at least 6 fewer ($spec)"
    fi
    echo "gemm_acc.qwen2_plan: $dt: 6 products take their bias, each with its LoRA product accumulating; launches $b -> $a"
}
check "$spec" f32
[ -z "$bf16spec" ] || check "$bf16spec" bf16
