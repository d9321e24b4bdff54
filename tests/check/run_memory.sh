#!/usr/bin/env bash
# run_memory.sh TRLC WORKDIR — `trlc check --memory`: the plan of a valid spec is printed with every
# category, the precision and B/T; its numbers equal `trlc kernels --memory B,T`'s; the weights,
# grads and optimizer bytes equal parameter counts worked out by hand from memory/tiny.trl's config;
# a broken spec prints its normal diagnostics and no plan (exit 1); a spec whose arch cannot be
# lowered fails plain `trlc check` too, and sizes that overflow fail cleanly (exit 1); usage errors
# still exit 2.
# Runs from tests/check so that paths in messages are relative and stable.
set -u
trlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$2
cd "$(dirname "$0")"
rm -rf "$work" && mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
run() {   # run STATUS ARGS...: trlc ARGS > out.txt 2> err.txt, and the exit status must be STATUS
    local want=$1
    shift
    "$trlc" "$@" > "$work/out.txt" 2> "$work/err.txt"
    local rc=$?
    if [ $rc -ne "$want" ]; then
        bad "trlc $*: exit $rc, expected $want"; sed -n '1,8p' "$work/err.txt"; return 1
    fi
    ok
}
has() {   # has FILE PATTERN: a line of FILE matches PATTERN
    if grep -q -- "$2" "$work/$1"; then ok; else bad "no line matching '$2' in $1:"; cat "$work/$1"; fi
}
bytes() {   # bytes CATEGORY: the exact byte count `--memory` printed for it
    sed -n "/^  bytes: /s/.*[ :]$1 \([0-9][0-9]*\).*/\1/p" "$work/out.txt"
}
runbytes() {   # runbytes WHAT: the exact byte count of a side program (or "total": the run's)
    sed -n "/^  run bytes: /s/.*[ :]$1 \([0-9][0-9]*\).*/\1/p" "$work/out.txt"
}
eq() {   # eq WHAT GOT WANT
    if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', expected '$3'"; fi
}
plan_lines() {   # the memory plan's own lines (mp_print: the header and the six categories)
    sed -n '/^memory plan for /,/^  total /p' "$1"
}

# Parameters of memory/tiny.trl, by hand from stdlib/llama.trl and its config (vocab 320, hidden 48,
# 2 layers, 4 heads and 2 kv heads of 12, ffn 96, lm_head not tied):
V=320 H=48 L=2 QD=$((4 * 12)) KVD=$((2 * 12)) F=96
per_layer=$((H + QD * H + 2 * KVD * H + H * QD + H + 3 * F * H))   # 2 norms, q k v o, gate up down
params=$((V * H + L * per_layer + H + V * H))                      # embed, layers, final norm, lm_head
eq "hand count" "$params" 72432
# LoRA rank 4 on every linear layer of a block (not lm_head): r * (in + out) each
R=4
lora=$((L * R * ((H + QD) + 2 * (H + KVD) + (QD + H) + 2 * (H + F) + (F + H))))
eq "hand LoRA count" "$lora" 6144
WS=$((32 << 20))   # cuBLASLt workspace (memplan.h)

# 1. the plan of a valid spec: every category, the precision, B and T, after `PATH: ok`
if run 0 check memory/tiny.trl --memory; then
    has out.txt "^memory/tiny.trl: ok$"
    has out.txt "^memory: precision fp32 (train.precision), B=2 (train.batch), T=64 (the train data's max_len)$"
    has out.txt "^memory plan for B=2, T=64 (fp32):$"
    for c in weights grads optimizer activations workspace total; do has out.txt "^  $c  *[0-9.]* [KMG]iB"; done
    [ -s "$work/err.txt" ] && bad "nothing expected on stderr, got: $(cat "$work/err.txt")"
    # fp32, full fine-tuning: every weight 4 bytes, fp32 grads, AdamW's two fp32 moments
    eq "fp32 weights" "$(bytes weights)" $((params * 4))
    eq "fp32 grads" "$(bytes grads)" $((params * 4))
    eq "fp32 optimizer" "$(bytes optimizer)" $((params * 8))
    eq "workspace" "$(bytes workspace)" $WS
    act=$(bytes activations)
    [ -n "$act" ] && [ "$act" -gt 0 ] && ok || bad "activations: '$act'"
    eq "total" "$(bytes total)" $((params * 16 + ${act:-0} + WS))
    plan_lines "$work/out.txt" > "$work/check-plan.txt"
    # what fills the peak: the step, then the ten largest kinds of buffer, each with its spec line;
    # by hand: the head's fp32 logits for all B*T = 128 rows (one chunk: 128 x 320 x 4 bytes =
    # 160 KiB), the gate projections' outputs of both layers (2 x 128 x 96 x 4 bytes = 96 KiB)
    has out.txt "^  peak: step [0-9]* of [0-9]* (in the [a-z]*), [0-9.]* [KM]iB live in [0-9]* kinds of buffer; the largest:$"
    has out.txt "^ *160.0 KiB  *1 x linear_ce[a-z_]* (fp32 logits of a chunk of rows)  # objectives.trl:[0-9]*:[0-9]*$"
    has out.txt "^ *96.0 KiB  *2 x matmul f32\[B,T,96\]  # nn.trl:16:29$"
    sed -n '/^  peak: /,$p' "$work/out.txt" > "$work/check-peak.txt"
    [ "$(grep -c '  # [a-z0-9.-]*\.trl:[0-9]*:[0-9]*$' "$work/check-peak.txt")" -eq 10 ] && ok ||
        bad "the peak lists no 10 buffers with spec lines: $(cat "$work/check-peak.txt")"
fi
# the same numbers as `trlc kernels SPEC --memory B,T`, and the same peak
if run 0 kernels memory/tiny.trl -o "$work/k" --no-compile --memory 2,64; then
    plan_lines "$work/out.txt" > "$work/kernels-plan.txt"
    [ "$(wc -l < "$work/kernels-plan.txt")" -eq 7 ] && ok || bad "kernels printed no 7-line plan"
    diff "$work/check-plan.txt" "$work/kernels-plan.txt" > /dev/null && ok || {
        bad "check --memory and kernels --memory 2,64 differ:"; diff "$work/check-plan.txt" "$work/kernels-plan.txt"; }
    sed -n '/^  peak: /,/^[^ ]/p' "$work/out.txt" | grep '^  ' > "$work/kernels-peak.txt"
    diff "$work/check-peak.txt" "$work/kernels-peak.txt" > /dev/null && ok || {
        bad "check --memory and kernels --memory 2,64 print different peaks:"; diff "$work/check-peak.txt" "$work/kernels-peak.txt"; }
fi
# other sizes through --set, again equal to kernels --memory B,T
if run 0 check memory/tiny.trl --memory --set train.batch=3 --set "data.train.max_len=32 tokens"; then
    has out.txt "B=3 (train.batch), T=32 (the train data's max_len)$"
    eq "weights do not depend on B, T" "$(bytes weights)" $((params * 4))
    plan_lines "$work/out.txt" > "$work/check-plan.txt"
    run 0 kernels memory/tiny.trl -o "$work/k" --no-compile --memory 3,32 &&
        { plan_lines "$work/out.txt" | diff "$work/check-plan.txt" - > /dev/null && ok || bad "B=3, T=32: check and kernels differ"; }
fi
# bf16 (mixed precision, autocast.h): every param of a full fine-tune trains, so all stay fp32 (the
# master weights); the products' bf16 operand copies are activations
if run 0 check memory/tiny.trl --memory --set train.precision=bf16; then
    has out.txt "^memory: precision bf16 (train.precision), B=2"
    has out.txt "(bf16 products and frozen weights, the rest fp32)"
    eq "bf16 weights" "$(bytes weights)" $((params * 4))
    eq "bf16 grads" "$(bytes grads)" $((params * 4))
    eq "bf16 optimizer" "$(bytes optimizer)" $((params * 8))
fi
# bf16 LoRA: the frozen linear weights (layers and lm_head) in 2 bytes; embeddings, norms and the
# adapters in 4
if run 0 check memory/tiny-lora.trl --memory --set train.precision=bf16; then
    # the linear weights, the head and the frozen embedding table in 2 bytes
    linear=$((L * (QD * H + 2 * KVD * H + H * QD + 3 * F * H) + 2 * V * H))
    eq "bf16 LoRA weights" "$(bytes weights)" $((linear * 2 + (params - linear) * 4 + lora * 4))
    eq "bf16 LoRA grads" "$(bytes grads)" $((lora * 4))
fi
# LoRA: the base is frozen (weights only), the adapters train
if run 0 check memory/tiny-lora.trl --memory; then
    eq "LoRA weights" "$(bytes weights)" $(((params + lora) * 4))
    eq "LoRA grads" "$(bytes grads)" $((lora * 4))
    eq "LoRA optimizer" "$(bytes optimizer)" $((lora * 8))
fi
# a valid spec with a warning: the summary goes to stderr, the plan is still printed
if run 0 check memory/tiny.trl --memory --set "data.train.max_len=128 tokens"; then
    has err.txt "longer than model \`policy\` was made for"
    has err.txt "^memory/tiny.trl: ok, 1 warning$"
    has out.txt "T=128 (the train data's max_len)$"
fi

# the programs `trlc run` runs beside the step, each in an arena of its own: the evaluation (made
# even without data eval: its workspace), dpo's reference, kd's teacher; the run total is the sum
if run 0 check memory/tiny.trl --memory; then
    has out.txt "^  evaluation  32.0 MiB (no data eval: its program is made but never runs; workspace 32.0 MiB)$"
    eq "idle evaluation" "$(runbytes evaluation)" $WS
    eq "run total" "$(runbytes total)" $(($(bytes total) + WS))
    has out.txt "^  run total   [0-9.]* MiB (the training step and the program beside it"
fi
# data eval: train.batch examples of the eval data's max_len, its own workspace, the weights shared
if run 0 check ../run/lora.trl --memory --set "data.eval.max_len=64 tokens"; then
    has out.txt "^  evaluation  [0-9.]* MiB (activations [0-9.]* [KM]iB at B=4, T=64 (the eval data's max_len); workspace 32.0 MiB)$"
    e64=$(runbytes evaluation)
    eq "lora run total" "$(runbytes total)" $(($(bytes total) + e64))
fi
if run 0 check ../run/lora.trl --memory --set "data.eval.max_len=128 tokens"; then
    e128=$(runbytes evaluation)
    [ -n "${e64:-}" ] && [ -n "$e128" ] && [ "$e128" -gt "$e64" ] && [ "$e64" -gt $WS ] && ok ||
        bad "evaluation at T=64 and 128: '${e64:-}' '$e128'"
fi
# dpo: the policy's frozen copy as the reference, 2 rows a pair, its LoRA base shared (no weights)
if run 0 check ../run/dpo.trl --memory; then
    has out.txt "^  reference   [0-9.]* MiB (activations [0-9.]* MiB at B=4 rows: 2 a pair, T=2048 (the step's T); workspace 32.0 MiB)$"
    eq "dpo run total" "$(runbytes total)" $(($(bytes total) + $(runbytes evaluation) + $(runbytes reference)))
fi
# kd: the teacher's weights are its own (the tiny qwen3 of tests/run, fp32: 120.8 KiB)
if run 0 check ../run/kd.trl --memory; then
    has out.txt "^  teacher     [0-9.]* MiB (activations .* workspace 32.0 MiB; weights 120.8 KiB of its own)$"
fi

# --fit SIZE: the largest batch whose planned run total fits, checked against the plans of B=5 and
# B=6 (`--set train.batch=N`): a budget halfway between their totals must give exactly B=5
run 0 check memory/tiny.trl --memory --set train.batch=5 && t5=$(runbytes total)
run 0 check memory/tiny.trl --memory --set train.batch=6 && t6=$(runbytes total)
if [ -n "${t5:-}" ] && [ -n "${t6:-}" ] && [ "$t6" -gt "$t5" ]; then
    mib=$(awk -v a="$t5" -v b="$t6" 'BEGIN { printf "%.4f", (a + b) / 2 / 1048576 }')
    if run 0 check memory/tiny.trl --memory --fit "${mib}MiB"; then
        has out.txt "^fit: the largest train.batch whose planned run total fits [0-9.]* MiB at T=64$"
        has out.txt "^  (the step and the evaluation; not counted: the CUDA context"
        has out.txt "^  as specified: B=5 ([0-9.]* MiB; B=6: [0-9.]* MiB)$"
        # and the other way round: train.recompute = true keeps less, so at least as many rows fit
        rb=$(sed -n 's/^  with train.recompute = true: B=\([0-9]*\) .*/\1/p' "$work/out.txt")
        [ -n "$rb" ] && [ "$rb" -ge 5 ] && ok || bad "recompute fit: '$rb'"
    fi
else
    bad "plans of B=5 and B=6: '${t5:-}' '${t6:-}'"
fi
if run 0 check memory/tiny.trl --memory --fit 1MiB; then
    has out.txt "^  as specified: B=1 does not fit ([0-9.]* MiB)$"
fi

# 2. a broken spec: exactly the diagnostics of a plain `trlc check`, no plan
"$trlc" check broken/27-rank-zero.trl > /dev/null 2> "$work/plain-err.txt"
if run 1 check broken/27-rank-zero.trl --memory; then
    diff "$work/plain-err.txt" "$work/err.txt" > /dev/null && ok || bad "--memory changed the diagnostics of a broken spec"
    has err.txt "^broken/27-rank-zero.trl: 1 error$"
    [ -s "$work/out.txt" ] && bad "a broken spec printed on stdout: $(cat "$work/out.txt")" || ok
fi
if run 1 check memory/tiny.trl --memory --set train.seed=x; then
    [ -s "$work/out.txt" ] && bad "a bad --set printed a plan" || ok
fi

# 3. an arch whose blocks check but whose forward cannot be lowered: plain `trlc check` compiles
# the step too and reports the lowering error with its location (exit 1), as `--memory` does (no plan)
if run 1 check memory/bad-arch.trl; then
    has err.txt "^memory/bad-arch.trl:7:76: error: unknown variable \`lm_haed\`"
    has err.txt "^hint: did you mean \`lm_head\`?"
    has err.txt "^memory/bad-arch.trl: 1 error$"
    [ -s "$work/out.txt" ] && bad "an unlowerable spec printed on stdout: $(cat "$work/out.txt")" || ok
fi
if run 1 check memory/bad-arch.trl --memory; then
    has err.txt "^memory/bad-arch.trl:7:76: error: unknown variable \`lm_haed\`"
    has err.txt "^memory/bad-arch.trl: 1 error$"
    [ -s "$work/out.txt" ] && bad "an unlowerable spec printed on stdout: $(cat "$work/out.txt")" || ok
fi
# sizes whose buffers overflow int64 (the MLP's: B * T * ffn * 4 bytes = 2^66): an error, no crash
if run 1 check memory/tiny.trl --memory --set model.policy.config.ffn=1048576 --set train.batch=1048576 \
        --set "data.train.max_len=16777216 tokens"; then
    has err.txt "^stdlib/nn.trl:16:29: error: memory plan: a buffer's size overflows for B=1048576, T=16777216: matmul f32\[B,T,1048576\]$"
    [ -s "$work/out.txt" ] && bad "an overflowing plan printed on stdout" || ok
fi

# 4. usage: still exit 2
run 2 check memory/tiny.trl --memory=2,64 && has err.txt "unknown option \`--memory=2,64\`"
run 2 check memory/tiny.trl --memroy && has err.txt "unknown option \`--memroy\`"
run 2 check --settings --memory && has err.txt "takes no spec and no \`--memory\`"
run 2 check --memory && has err.txt "no spec given"
run 2 check memory/tiny.trl --fit 80GiB && has err.txt "\`--fit\` needs \`--memory\`"
run 2 check memory/tiny.trl --memory --fit 80 && has err.txt "bad size \`80\` for --fit"
run 2 check memory/tiny.trl --memory --fit -3GiB && has err.txt "bad size \`-3GiB\` for --fit"
run 2 check memory/tiny.trl --memory --fit && has err.txt "--fit"
run 0 check --help && has out.txt "^  --memory "

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
