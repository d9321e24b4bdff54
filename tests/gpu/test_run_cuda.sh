#!/bin/bash
# test_run_cuda.sh TRLC SRCDIR WORKDIR — `trlc run --device cuda` end to end: the same specs
# trained on the CPU and on the device give the same loss and gradient norm at every step (1e-4
# relative in fp32; 2e-2 with precision = bf16), and the run's files are written. CI runs it with the CUDA emulator as
# the driver (TRLC_CUDA_DRIVER / TRLC_CUBLASLT_LIB set by ctest); on a machine with neither a GPU
# nor the emulator only the "no device" error is checked, then it exits 77 (skipped).
set -u
trlc=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
fail=0
# no driver at all: a clear error and exit 3, nothing trained
TRLC_CUDA_DRIVER=$work/no-such-driver.so "$trlc" run "$src/tests/run/full.trl" --device cuda --out "$work/none" \
    > "$work/out.txt" 2> "$work/err.txt"
rc=$?
if [ $rc -ne 3 ] || ! grep -q "no CUDA device" "$work/err.txt" || [ -e "$work/none/metrics.jsonl" ]; then
    echo "FAIL: --device cuda without a driver: exit $rc"; cat "$work/err.txt"; fail=1
else
    echo "ok: --device cuda without a driver: exit 3, $(head -1 "$work/err.txt")"
fi
# is there a device (a GPU, or the emulator named by TRLC_CUDA_DRIVER)?
if "$trlc" run "$src/tests/run/full.trl" --device cuda --set train.steps=1 --out "$work/probe" > "$work/probe.txt" 2>&1; then :
elif grep -q "no CUDA device" "$work/probe.txt"; then
    echo "no CUDA device (and no emulator named by TRLC_CUDA_DRIVER): the training comparison is skipped"
    [ $fail -eq 0 ] && exit 77
    exit 1
fi
# name, spec, tolerance, extra arguments (bf16: both sides round the same values; the issue's bound)
# (dpo: the reference model runs on the device too, sharing the policy's frozen weights)
cases=("full full 1e-4" "lora lora 1e-4" "lora-bf16 lora 2e-2 --set train.precision=bf16 --set train.steps=4"
       "dpo dpo 1e-4 --set train.steps=4")
for c in "${cases[@]}"; do
    read -r spec file tol extra <<< "$c"
    for dev in cpu cuda; do
        # shellcheck disable=SC2086
        "$trlc" run "$src/tests/run/$file.trl" $extra --device $dev --out "$work/$spec-$dev" > "$work/$spec-$dev.log" 2>&1
        rc=$?
        if [ $rc -ne 0 ]; then echo "FAIL: $spec on $dev: exit $rc"; tail -5 "$work/$spec-$dev.log"; fail=1; continue; fi
    done
    # the probe compiled full.trl's kernels: this run finds every one in the cache
    if [ "$spec" = full ]; then
        if grep -q "kernel cache: 0 programs compiled, [1-9][0-9]* found" "$work/full-cuda.log"; then
            echo "ok: full: $(grep -o 'kernel cache: .*found' "$work/full-cuda.log") (the second run)"
        else
            echo "FAIL: full: the second run compiled kernels again: $(grep '^device:' "$work/full-cuda.log")"; fail=1
        fi
    fi
    [ -s "$work/$spec-cpu/metrics.jsonl" ] && [ -s "$work/$spec-cuda/metrics.jsonl" ] || { echo "FAIL: $spec: no metrics"; fail=1; continue; }
    [ -s "$work/$spec-cuda/model/model.safetensors" ] || [ -s "$work/$spec-cuda/adapter/adapter_model.safetensors" ] ||
        { echo "FAIL: $spec on cuda: no model written"; fail=1; }
    # step, loss, grad_norm of every logged step, side by side
    paste -d' ' <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*\|"grad_norm": [-0-9.e]*' "$work/$spec-cpu/metrics.jsonl" | tr -d ',"' | paste -d' ' - -) \
                <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*\|"grad_norm": [-0-9.e]*' "$work/$spec-cuda/metrics.jsonl" | tr -d ',"' | paste -d' ' - -) \
        > "$work/$spec-pairs.txt"
    # columns: step: S loss: L grad_norm: G  step: S loss: L grad_norm: G
    if ! awk -v spec=$spec -v tol=$tol '
        function rel(a, b) { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; return d / (m + 1e-12) }
        { n++; el = rel($10, $4); eg = rel($12, $6); if (el > wl) wl = el; if (eg > wg) wg = eg
          if ($2 != $8 || el > tol || eg > tol) { printf "FAIL: %s step %s: loss %s (cpu) %s (cuda), grad norm %s %s\n", spec, $2, $4, $10, $6, $12; bad = 1 } }
        END { if (n < 4) { print "FAIL: " spec ": only " n " steps"; exit 1 }
              printf "ok: %s: %d steps, loss and grad norm on cuda vs cpu: worst %.2g / %.2g relative\n", spec, n, wl, wg; exit bad }' \
        "$work/$spec-pairs.txt"; then
        fail=1
    fi
    # the evaluation (on the device's evaluation program) where the spec has one
    ec=$(sed -n 's/.*eval loss \([0-9.]*\).*/\1/p' "$work/$spec-cpu.log") eg=$(sed -n 's/.*eval loss \([0-9.]*\).*/\1/p' "$work/$spec-cuda.log")
    if [ -n "$ec" ]; then
        # printed with 4 decimals: equal within tol, or within the last printed digit
        if awk -v a="$ec" -v b="${eg:-nan}" -v tol=$tol 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "nan" && (d <= tol * a || d <= 1.0001e-4)) }'; then
            echo "ok: $spec: eval loss $ec (cpu), $eg (cuda)"
        else
            echo "FAIL: $spec: eval loss $ec (cpu) vs '$eg' (cuda)"; fail=1
        fi
    fi
done
# a step too large for the device fails before training, with the memory plan's numbers
"$trlc" run "$src/tests/run/full.trl" --device cuda --set train.batch=4096 --set "data.train.max_len=60000 tokens" \
    --out "$work/oom" > "$work/oom.log" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -q "needs [0-9.]* GiB of activations (the memory plan)" "$work/oom.log" &&
   ! grep -q '^step 1' "$work/oom.log"; then
    echo "ok: too large a step: exit 3 before training: $(grep -o 'needs [0-9.]* GiB of activations' "$work/oom.log")"
else
    echo "FAIL: too large a step: exit $rc"; tail -3 "$work/oom.log"; fail=1
fi
# resume on the device: 2 steps with a checkpoint after each, then resumed to the spec's 4; steps
# 3 and 4 must give the uninterrupted run's losses (the host holds the state; the device reloads it)
if "$trlc" run "$src/tests/run/full.trl" --device cuda --set train.steps=2 --set "train.save_every=1 steps" \
       --out "$work/resume" > "$work/resume-1.log" 2>&1 &&
   "$trlc" run "$src/tests/run/full.trl" --device cuda --set "train.save_every=1 steps" --resume "$work/resume" \
       > "$work/resume-2.log" 2>&1; then
    a=$(grep -o '"step": [34], "loss": [-0-9.e]*' "$work/full-cuda/metrics.jsonl" | tr '\n' ' ')
    b=$(grep -o '"step": [34], "loss": [-0-9.e]*' "$work/resume/metrics.jsonl" | tail -2 | tr '\n' ' ')
    if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "ok: resumed on the device: $b"; else echo "FAIL: resume: '$b' vs '$a'"; fail=1; fi
else
    echo "FAIL: the resume runs failed"; tail -3 "$work/resume-1.log" "$work/resume-2.log"; fail=1
fi
exit $fail
