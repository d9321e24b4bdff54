#!/bin/bash
# test_run_cuda.sh TRLC SRCDIR WORKDIR — `trlc run --device cuda` end to end: the same specs
# trained on the CPU and on the device give the same loss and gradient norm at every step (1e-4
# relative in fp32; 2e-2 with precision = bf16), and the run's files are written. The optimizer
# runs on the device: after the first step a step moves no params or gradients between host and
# device (counted bytes), the host's optimizer gives the same losses, and checkpoints resume across
# devices. CI runs it with the CUDA emulator as
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
# (full-sgd: SGD with momentum and weight decay on the device's optimizer)
cases=("full full 1e-4" "lora lora 1e-4" "lora-bf16 lora 2e-2 --set train.precision=bf16 --set train.steps=4"
       "dpo dpo 1e-4 --set train.steps=4" "full-sgd full 1e-4 --set train.optimizer=sgd{lr=1e-2;momentum=0.9;weight_decay=0.01;}")
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
# and what fills it: the peak's step and its five largest kinds of value, with spec lines
if [ $rc -eq 3 ] && grep -q "needs [0-9.]* GiB of activations (the memory plan)" "$work/oom.log" &&
   grep -q '^  peak: step [0-9]* of [0-9]* (in the [a-z]*), [0-9.]* GiB live' "$work/oom.log" &&
   [ "$(grep -c '^ *[0-9.]* [KMG]iB  *[0-9]* x .*  # [a-z0-9.-]*\.trl:[0-9]*:[0-9]*$' "$work/oom.log")" -eq 5 ] &&
   ! grep -q '^step 1' "$work/oom.log"; then
    echo "ok: too large a step: exit 3 before training: $(grep -o 'needs [0-9.]* GiB of activations' "$work/oom.log")"
else
    echo "FAIL: too large a step: exit $rc"; tail -3 "$work/oom.log"; fail=1
fi
# so does an evaluation too large for the device (its arena is reserved with the training step's,
# before training, not at the first evaluation): the training step here is small
"$trlc" run "$src/tests/run/lora.trl" --device cuda --set train.batch=1024 --set "data.train.max_len=64 tokens" \
    --set "data.eval.max_len=60000 tokens" --out "$work/oom-eval" > "$work/oom-eval.log" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -q "needs [0-9.]* GiB of activations (the memory plan)" "$work/oom-eval.log" &&
   grep -q "that is the evaluation's forward pass" "$work/oom-eval.log" && ! grep -q '^step 1' "$work/oom-eval.log"; then
    echo "ok: too large an evaluation: exit 3 before training: $(grep -o 'needs [0-9.]* GiB of activations' "$work/oom-eval.log")"
else
    echo "FAIL: too large an evaluation: exit $rc"; tail -3 "$work/oom-eval.log"; fail=1
fi
# resume on the device: 2 steps with a checkpoint after each, then resumed to the spec's 4; steps
# 3 and 4 must give the uninterrupted run's losses (the device's weights and optimizer state go
# into the checkpoint and back onto the device)
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
# The closing summary's device memory: what trlc counts it allocated (each program's arena and fixed
# buffers, the optimizer's) against the driver's count of memory in use. The emulator's driver
# counts exactly what was allocated (no context, no library of its own), so there the two are equal
# when trlc's count misses no buffer; on a GPU the driver's count is the larger (contexts, cuBLAS).
for spec in full lora dpo; do
    line=$(grep '^  device memory: ' "$work/$spec-cuda.log")
    ours=$(sed -n 's/^  device memory: \([0-9.]* [KMG]*i*B\) allocated by trlc.*/\1/p' <<< "$line")
    used=$(sed -n 's/.*); \([0-9.]* [KMG]*i*B\) of .* in use on the device.*/\1/p' <<< "$line")
    if [ -z "$ours" ] || [ -z "$used" ]; then
        echo "FAIL: $spec: no device memory line: '$line'"; fail=1
    elif grep -q '^device: .*(the emulator)' "$work/$spec-cuda.log" && [ "$ours" != "$used" ]; then
        echo "FAIL: $spec: trlc counts $ours allocated, the emulator's driver $used"; fail=1
    else
        echo "ok: $spec: device memory $ours allocated by trlc, $used in use by the driver's count"
    fi
done
# The optimizer on the device (runtime/cuda/optim_cuda.c). A run's log gives the host<->device
# bytes of its training steps: "F bytes in the first, at most M in the K after (trainable params: P
# bytes; optimizer on the device)". The first step uploads the weights; after it a step moves only
# its inputs, the loss, the embedding range flags and the gradient norm — never the params or
# their gradients.
xfer() { sed -n 's/.*host<->device per training step: \([0-9]*\) bytes in the first, at most \([0-9]*\) in the [0-9]* after (trainable params: \([0-9]*\) bytes; optimizer on the \([a-z]*\)).*/\1 \2 \3 \4/p' "$1"; }
read -r f m P where <<< "$(xfer "$work/full-cuda.log")"
if [ "${where:-}" = device ] && [ "$f" -ge "$P" ] && [ "$m" -gt 0 ] && [ $((m * 20)) -lt "$P" ]; then
    echo "ok: full fine-tuning, optimizer on the device: $f bytes moved in step 1, at most $m in a later step ($P bytes of trainable params)"
else
    echo "FAIL: full fine-tuning's transfers per step: '$f' '$m' '$P' '${where:-}'"; grep 'host<->device' "$work/full-cuda.log"; fail=1
fi
# LoRA at rank 4 and rank 32 (8x the trainable params), grad_accum 2: the later steps move the
# same bytes, and the first steps differ by exactly the extra params uploaded once. The host's
# optimizer (TRLC_HOST_OPTIMIZER=1, the path before the device owned the weights) moves the params
# and their gradients every micro-step, and trains to the same losses.
for r in 4 32; do
    "$trlc" run "$src/tests/run/lora.trl" --device cuda --set lora.policy.rank=$r --set train.steps=3 \
        --out "$work/lora-r$r" > "$work/lora-r$r.log" 2>&1 || { echo "FAIL: lora rank $r: exit $?"; tail -3 "$work/lora-r$r.log"; fail=1; }
done
TRLC_HOST_OPTIMIZER=1 "$trlc" run "$src/tests/run/lora.trl" --device cuda --set lora.policy.rank=32 --set train.steps=3 \
    --out "$work/lora-r32-host" > "$work/lora-r32-host.log" 2>&1 || { echo "FAIL: lora rank 32, host optimizer: exit $?"; fail=1; }
read -r f4 m4 P4 w4 <<< "$(xfer "$work/lora-r4.log")"
read -r f32 m32 P32 w32 <<< "$(xfer "$work/lora-r32.log")"
read -r fh mh Ph wh <<< "$(xfer "$work/lora-r32-host.log")"
if [ "${w4:-}" = device ] && [ "${w32:-}" = device ] && [ "${wh:-}" = host ] && [ "$m4" = "$m32" ] &&
   [ $((f32 - f4)) -eq $((P32 - P4)) ] && [ "$mh" -ge $((4 * P32)) ]; then
    echo "ok: LoRA on the device: a later step moves $m4 bytes at rank 4 and $m32 at rank 32 ($P4 / $P32 bytes of params); step 1 $f4 / $f32; the host optimizer moves $mh"
else
    echo "FAIL: LoRA transfers: rank 4 '$f4 $m4 $P4 ${w4:-}', rank 32 '$f32 $m32 $P32 ${w32:-}', host optimizer '$fh $mh $Ph ${wh:-}'"; fail=1
fi
if ! paste -d' ' <(grep -o '"loss": [-0-9.e]*\|"grad_norm": [-0-9.e]*' "$work/lora-r32/metrics.jsonl" | tr -d ',"' | paste -d' ' - -) \
                 <(grep -o '"loss": [-0-9.e]*\|"grad_norm": [-0-9.e]*' "$work/lora-r32-host/metrics.jsonl" | tr -d ',"' | paste -d' ' - -) |
     awk 'function rel(a, b) { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; return d / (m + 1e-12) }
          { n++; e = rel($2, $6); g = rel($4, $8); if (e > w) w = e; if (g > wg) wg = g }
          END { if (n != 3 || w > 1e-6 || wg > 1e-6) { printf "FAIL: LoRA rank 32, device vs host optimizer: %d steps, loss %.2g, grad norm %.2g relative\n", n, w, wg; exit 1 }
                printf "ok: LoRA rank 32: the device optimizer vs the host one: loss %.2g, grad norm %.2g relative (3 steps)\n", w, wg }'; then
    fail=1
fi
# a non-finite update on the device: stop (exit 3 naming the step) or, with on_nan = skip, skip the
# same steps as the CPU (lr 1e30: from step 2 the gradient norm reduced on the device is NaN where
# the host's is)
nan_args=(--set train.optimizer.lr=1e30 --set train.clip_norm=1e30 --set train.steps=4)
"$trlc" run "$src/tests/run/full.trl" --device cuda "${nan_args[@]}" --out "$work/nan" > "$work/nan.log" 2>&1
rc=$?
for dev in cpu cuda; do
    "$trlc" run "$src/tests/run/full.trl" --device $dev "${nan_args[@]}" --set train.on_nan=skip --out "$work/nanskip-$dev" \
        > "$work/nanskip-$dev.log" 2>&1 || { echo "FAIL: on_nan = skip on $dev: exit $?"; fail=1; }
done
sc=$(grep -o '^step [0-9]*: the [a-z ]* is [a-zN]*; update skipped' "$work/nanskip-cpu.log" | tr '\n' ' ')
sg=$(grep -o '^step [0-9]*: the [a-z ]* is [a-zN]*; update skipped' "$work/nanskip-cuda.log" | tr '\n' ' ')
if [ $rc -eq 3 ] && grep -q "at step [0-9]" "$work/nan.log" && [ -n "$sg" ] && [ "$sc" = "$sg" ]; then
    echo "ok: non-finite updates on the device: exit 3 without on_nan; with on_nan = skip as on the cpu: $sg"
else
    echo "FAIL: non-finite updates on the device: exit $rc; skipped on cpu '$sc', on cuda '$sg'"; tail -2 "$work/nan.log"; fail=1
fi
# checkpoints move between the devices: the format is one. A CPU run's step-2 checkpoint resumed on
# the device, and the device's resumed on the CPU, give the uninterrupted runs' steps 3 and 4.
for from in cpu cuda; do
    to=cpu; [ $from = cpu ] && to=cuda
    if "$trlc" run "$src/tests/run/full.trl" --device $from --set train.steps=2 --set "train.save_every=1 steps" \
           --out "$work/x-$from" > "$work/x-$from-1.log" 2>&1 &&
       "$trlc" run "$src/tests/run/full.trl" --device $to --set "train.save_every=1 steps" --resume "$work/x-$from" \
           > "$work/x-$from-2.log" 2>&1; then
        if paste -d' ' <(grep -o '"step": [34], "loss": [-0-9.e]*' "$work/full-$to/metrics.jsonl" | tr -d ',"') \
                       <(grep -o '"step": [34], "loss": [-0-9.e]*' "$work/x-$from/metrics.jsonl" | tail -2 | tr -d ',"') |
           awk -v what="$from -> $to" '{ n++; d = $4 - $8; if (d < 0) d = -d; if (d > 1e-5 * $4) bad = 1; s = s " " $4 "/" $8 }
                END { if (n != 2 || bad) { print "FAIL: checkpoint " what ": steps 3, 4 (uninterrupted/resumed):" s; exit 1 }
                      print "ok: a checkpoint written on the " what " resumed: steps 3, 4 (uninterrupted/resumed):" s }'; then :
        else fail=1; fi
    else
        echo "FAIL: checkpoint $from -> $to: the runs failed"; tail -3 "$work/x-$from-1.log" "$work/x-$from-2.log"; fail=1
    fi
done
# ... and the files are the same: the same tensors, names, dtypes and shapes in every file
if [ -d "$work/x-cpu/checkpoint-2" ] && [ -d "$work/x-cuda/checkpoint-2" ] &&
   [ "$(cd "$work/x-cpu/checkpoint-2" && ls)" = "$(cd "$work/x-cuda/checkpoint-2" && ls)" ]; then
    same=1
    for fl in "$work"/x-cpu/checkpoint-2/*.safetensors; do
        b=$(basename "$fl")
        # the JSON header of a safetensors file without its data offsets
        h1=$(head -c 8 "$fl" | od -An -t u8 | tr -d ' '); h2=$(head -c 8 "$work/x-cuda/checkpoint-2/$b" | od -An -t u8 | tr -d ' ')
        j1=$(tail -c +9 "$fl" | head -c "$h1" | sed 's/"data_offsets":\[[0-9,]*\]//g')
        j2=$(tail -c +9 "$work/x-cuda/checkpoint-2/$b" | head -c "$h2" | sed 's/"data_offsets":\[[0-9,]*\]//g')
        [ "$j1" = "$j2" ] || { echo "FAIL: checkpoint file $b differs between cpu and cuda"; same=0; }
    done
    [ $same = 1 ] && echo "ok: checkpoints of the cpu and the cuda run: the same files ($(cd "$work/x-cpu/checkpoint-2" && ls | tr '\n' ' '))" || fail=1
else
    echo "FAIL: no checkpoint-2 to compare"; fail=1
fi
# kd: the teacher's logits (B, T, V) fp32 stay on the device — the student's training and
# evaluation programs copy them from the teacher's output buffer (cuda_bind_output) — so the loss
# per step and the eval loss are the CPU's, and a step after the first moves far less than one
# copy of the logits (it moved two: downloaded, uploaded). Every row is cut to 30 tokens (the
# shortest has 31), so every step has T = 30; kd.trl gains the eval data (paths made absolute).
kdB=4 kdT=30
kdV=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$src/tests/fixtures/tiny-qwen3/config.json")
sed -e "s|\"\.\./fixtures/|\"$src/tests/fixtures/|g" -e "s|\"train\.jsonl\"|\"$src/tests/run/train.jsonl\"|" \
    "$src/tests/run/kd.trl" > "$work/kd.trl"
echo "data eval { from = \"$src/tests/run/eval.jsonl\"; format = prompt_response; template = chat; }" >> "$work/kd.trl"
kdok=1
for dev in cpu cuda; do
    "$trlc" run "$work/kd.trl" --set train.batch=$kdB --set "data.train.max_len=$kdT tokens" --device $dev \
        --out "$work/kd-$dev" > "$work/kd-$dev.log" 2>&1 || { echo "FAIL: kd on $dev: exit $?"; tail -3 "$work/kd-$dev.log"; kdok=0; }
done
if [ $kdok = 1 ]; then
    if ! paste -d' ' <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*' "$work/kd-cpu/metrics.jsonl" | tr -d ',"') \
                     <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*' "$work/kd-cuda/metrics.jsonl" | tr -d ',"') |
         awk 'function rel(a, b) { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; return d / (m + 1e-12) }
              { n++; e = rel($8, $4); if (e > w) w = e; if ($2 != $6 || e > 1e-4) { print "FAIL: kd step " $2 ": loss " $4 " (cpu) " $8 " (cuda)"; bad = 1 } }
              END { if (n < 4) { print "FAIL: kd: only " n " steps"; exit 1 }
                    if (!bad) printf "ok: kd: %d steps, loss on cuda vs cpu: worst %.2g relative\n", n, w; exit bad }'; then
        fail=1
    fi
    ec=$(sed -n 's/.*eval loss \([0-9.]*\).*/\1/p' "$work/kd-cpu.log") eg=$(sed -n 's/.*eval loss \([0-9.]*\).*/\1/p' "$work/kd-cuda.log")
    if [ -n "$ec" ] && awk -v a="$ec" -v b="${eg:-nan}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "nan" && (d <= 1e-4 * a || d <= 1.0001e-4)) }'; then
        echo "ok: kd: eval loss $ec (cpu), $eg (cuda)"
    else
        echo "FAIL: kd: eval loss '$ec' (cpu) vs '$eg' (cuda)"; fail=1
    fi
    read -r f m P where <<< "$(xfer "$work/kd-cuda.log")"
    logits=$((kdB * kdT * kdV * 4))
    if [ -n "$kdV" ] && [ "${where:-}" = device ] && [ "${m:-0}" -gt 0 ] && [ "$m" -lt $((logits / 4)) ]; then
        echo "ok: kd: a step after the first moves $m bytes, below a quarter of one copy of the teacher's logits ($logits bytes: B=$kdB T=$kdT V=$kdV fp32)"
    else
        echo "FAIL: kd: a step after the first moves '${m:-}' bytes; the bound is $((logits / 4)) (a quarter of the teacher's logits, $logits bytes)"
        grep 'host<->device' "$work/kd-cuda.log"; fail=1
    fi
fi
exit $fail
