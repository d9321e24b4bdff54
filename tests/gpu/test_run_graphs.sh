#!/bin/bash
# test_run_graphs.sh TRLC SRCDIR WORKDIR — `trlc run --device cuda` with CUDA graphs (the default)
# and without (TRLC_CUDA_GRAPHS=0): a LoRA spec with dropout (a new dropout step every training
# step reaches the replayed graph) trained 8 steps both ways must log the same loss and gradient
# norm at every step, digit for digit (the emulator is deterministic), and the emulator must count
# graph launches in the first run ($TRLC_CUEMU_STATS) and none in the second. Registered for the CUDA
# emulator only: on a GPU, atomics make the last bits differ from run to run.
set -u
trlc=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
fail=0
spec=$src/tests/gpu/specs/tiny-llama-lora.trl
for g in 1 0; do
    TRLC_CUEMU_STATS=1 TRLC_CUDA_GRAPHS=$g "$trlc" run "$spec" --device cuda --set train.steps=8 --set train.log_every=1steps --out "$work/graphs-$g" > "$work/graphs-$g.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then echo "FAIL: TRLC_CUDA_GRAPHS=$g: exit $rc"; tail -5 "$work/graphs-$g.log"; fail=1; fi
done
[ $fail -eq 0 ] || exit 1
pick() { grep -o '"step": [0-9]*, "loss": [-0-9.e]*\|"grad_norm": [-0-9.e]*' "$1" | tr -d ',"' | paste -d' ' - -; }
pick "$work/graphs-1/metrics.jsonl" > "$work/on.txt"
pick "$work/graphs-0/metrics.jsonl" > "$work/off.txt"
n=$(wc -l < "$work/on.txt")
if [ "$n" -lt 8 ]; then
    echo "FAIL: $n steps logged with graphs (8 expected)"; fail=1
elif ! cmp -s "$work/on.txt" "$work/off.txt"; then
    echo "FAIL: graphs on and off log different steps:"; paste "$work/on.txt" "$work/off.txt" | head -10; fail=1
elif [ "$(cut -d' ' -f4 "$work/on.txt" | sort -u | wc -l)" -lt 8 ]; then
    echo "FAIL: the losses repeat: $(cut -d' ' -f4 "$work/on.txt" | tr '\n' ' ')"; fail=1
elif ! grep -q "cuemu: [1-9][0-9]* graph launches" "$work/graphs-1.log" || ! grep -q "cuemu: 0 graph launches" "$work/graphs-0.log"; then
    echo "FAIL: graph launches (on, off): $(grep -ho 'cuemu: [0-9]* graph launches' "$work/graphs-1.log" "$work/graphs-0.log" | tr '\n' ' ')"
    fail=1
else
    echo "ok: $(grep -o 'cuemu: [0-9]* graph launches' "$work/graphs-1.log") with graphs, none without"
    echo "ok: 8 steps with CUDA graphs = without, digit for digit: $(head -1 "$work/on.txt") ... $(tail -1 "$work/on.txt")"
fi
exit $fail
