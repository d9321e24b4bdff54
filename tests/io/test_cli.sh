#!/usr/bin/env bash
# test_cli.sh TRLC SRC — `trlc inspect` on the fixtures (exit 0, expected lines) and on every
# malformed input of tests/io/bad (exit 1 with the expected message on stderr, never a crash).
set -u
trlc=$1
src=$2
fail=0
pass=0
check() {   # check NAME CONDITION-STATUS
    if [ "$2" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi
}
out=$("$trlc" inspect "$src/../fixtures/tiny-qwen3"); rc=$?
check "tiny-qwen3 exit $rc" $rc
echo "$out" | grep -q "^config: .*tiny-qwen3/config.json (qwen3)$"; check "qwen3 config line" $?
echo "$out" | grep -q "24 tensors, 30912 parameters, 123648 bytes"; check "qwen3 totals" $?
echo "$out" | grep -qE "^  model.layers.1.self_attn.k_norm.weight +F32 +\[8\]$"; check "qwen3 tensor line" $?
echo "$out" | grep -q "^ok: every weight"; check "qwen3 consistent" $?
out=$("$trlc" inspect "$src/../fixtures/tiny-llama" --summary); rc=$?
check "tiny-llama exit $rc" $rc
echo "$out" | grep -q "(4 files, 21 tensors, 34720 parameters, 69440 bytes)"; check "llama shards" $?
"$trlc" inspect "$src/../fixtures/tiny-qwen2" --summary >/dev/null; check "tiny-qwen2" $?
"$trlc" inspect >/dev/null 2>&1; rc=$?; [ $rc = 2 ]; check "no path: exit $rc" $?
"$trlc" inspect a b >/dev/null 2>&1; rc=$?; [ $rc = 2 ]; check "two paths: exit $rc" $?
"$trlc" inspect --frob x >/dev/null 2>&1; rc=$?; [ $rc = 2 ]; check "bad option: exit $rc" $?
"$trlc" inspect --help | grep -q "^usage: trlc inspect PATH"; check "help" $?
out=$("$trlc" inspect "$src/../fixtures/peft-tiny-qwen3"); check "inspect adapter: exit $?" $?
echo "$out" | head -1 | grep -q "^adapter: "; check "adapter first line" $?
echo "$out" | grep -q "^adapter: .*peft-tiny-qwen3 (LoRA r 4, alpha 8, dropout 0.05, base tiny-qwen3)$"; check "adapter line" $?
echo "$out" | grep -q "^  14 modules, 4096 parameters; target_modules:"; check "adapter totals" $?
echo "$out" | grep -qE "^  model.layers.1.mlp.down_proj +A \[4, 64\]  B \[32, 4\]$"; check "adapter module line" $?
err=$("$trlc" inspect "$src/bad/peft_rank" 2>&1 >/dev/null); [ $? = 1 ]; check "inspect bad adapter exit" $?
case "$err" in *"lora_A must be [r, in]"*) check "bad adapter inspect message" 0 ;; *) check "bad adapter inspect message: $err" 1 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$("$trlc" merge --base "$src/../fixtures/tiny-qwen3" --adapter "$src/../fixtures/peft-tiny-qwen3" \
      -o "$tmp/m" --dtype bf16 --max-shard-size 20KB); check "merge exit $?" $?
echo "$out" | grep -q "^merged .* wrote $tmp/m$"; check "merge message" $?
out=$("$trlc" inspect "$tmp/m" --summary); check "inspect merged: exit $?" $?
echo "$out" | grep -q "(3 files, 24 tensors, 30912 parameters, 61824 bytes)"; check "merged shards" $?
echo "$out" | grep -q "dtype bfloat16"; check "merged dtype" $?
err=$("$trlc" merge --base "$src/../fixtures/tiny-llama" --adapter "$src/../fixtures/peft-tiny-qwen3" -o "$tmp/x" 2>&1)
[ $? = 1 ]; check "merge mismatch exit" $?
case "$err" in *"is [32, 64] (out, in), but the base weight is [32, 48]"*) check "mismatch message" 0 ;; *) check "mismatch message: $err" 1 ;; esac
"$trlc" merge --base a --adapter b >/dev/null 2>&1; [ $? = 2 ]; check "merge usage" $?
"$trlc" merge --base a --adapter b -o c --dtype f8 >/dev/null 2>&1; [ $? = 2 ]; check "merge dtype" $?
err=$("$trlc" merge --base "$src/../fixtures/tiny-qwen3" --adapter "$src/bad/peft_dora" -o "$tmp/y" 2>&1)
[ $? = 1 ]; check "merge bad adapter exit" $?
case "$err" in *"use_dora"*) check "bad adapter message" 0 ;; *) check "bad adapter message: $err" 1 ;; esac
n=0
while IFS=$'\t' read -r kind name want; do
    [ "$kind" = cfg ] || [ "$kind" = peft ] && continue   # not model directories
    err=$("$trlc" inspect "$src/bad/$name" 2>&1 >/dev/null); rc=$?
    [ $rc = 1 ]; check "$name: exit $rc" $?
    case "$err" in *"$want"*) check "$name message" 0 ;; *) check "$name message: $err" 1 ;; esac
    n=$((n + 1))
done < "$src/bad/EXPECTED"
echo "inspect: $n malformed inputs, $pass passed, $fail failed"
[ $fail = 0 ] && [ $n -ge 40 ]
