#!/bin/bash
# run_examples.sh — every spec of examples/language passes `trlc check` and `trlc ir`, and those
# meant to run train for two steps (`--set train.steps=2`, which replaces an `epochs` setting) and
# export. grpo.trl is the exception: the trainer refuses GRPO (generation-based rewards) for now,
# with exit 1 and a message saying which objectives it trains.
# usage: run_examples.sh TRLC SRC_DIR WORK_DIR
set -u
TRLC=$1; SRC=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
cd "$SRC/../../examples/language" || exit 1
n=0
for spec in *.trl; do
    n=$((n+1))
    "$TRLC" check "$spec" >/dev/null 2>"$W/err.txt" && ok || { bad "$spec: trlc check"; cat "$W/err.txt" >&2; }
    "$TRLC" ir "$spec" >/dev/null 2>"$W/err.txt" && ok || { bad "$spec: trlc ir"; cat "$W/err.txt" >&2; }
    name=${spec%.trl}
    "$TRLC" run "$spec" --set train.steps=2 --set train.batch=2 --out "$W/$name" >/dev/null 2>"$W/err.txt"
    rc=$?
    if [ "$spec" = grpo.trl ]; then
        [ $rc = 1 ] && grep -q "trains sft, pretrain, dpo, orpo and kd" "$W/err.txt" && ok || { bad "$spec: exit $rc, want 1 (GRPO refused)"; cat "$W/err.txt" >&2; }
        continue
    fi
    if [ $rc = 0 ] && grep -q "^done: 2 steps" "$W/err.txt"; then ok; else bad "$spec: trlc run exit $rc"; cat "$W/err.txt" >&2; fi
    [ -s "$W/$name/adapter/adapter_model.safetensors" ] || [ -s "$W/$name/model/model.safetensors" ] && ok || bad "$spec: nothing exported"
done
[ $n -ge 9 ] && ok || bad "only $n examples"
echo "run_examples: $passes passed, $fails failed"
[ $fails = 0 ]
