#!/usr/bin/env bash
# run_memory_emu.sh TRLC SRC WORKDIR — `trlc check --memory`'s side programs against what `trlc run
# --device cuda` allocates for them on the CUDA emulator (TRLC_CUDA_DRIVER / TRLC_CUBLASLT_LIB, set
# by ctest): the plan's "evaluation" and "reference" / "teacher" figures must equal the run's
# closing "device memory: ... (training step A, evaluation E, reference R, ...)" at the printed
# precision, for tests/run/lora.trl (data eval), dpo.trl (the policy's frozen copy as the reference,
# an evaluation program that never runs) and kd.trl (a teacher with weights of its own). The
# trainer reserves each arena for its largest run (train.batch rows of the max_len) before the
# first step, so the arenas it reports are the planned ones. Exit 77 (skipped) without the emulator.
set -u
trlc=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
if [ -z "${TRLC_CUDA_DRIVER:-}" ] || [ ! -e "$TRLC_CUDA_DRIVER" ]; then
    echo "no CUDA emulator (TRLC_CUDA_DRIVER): skipped"; exit 77
fi
pass=0 fail=0
# figure FILE WHAT: the size check --memory prints on its "  WHAT  X MiB (...)" line
figure() { sed -n "s/^  $2  *\([0-9.]* [KMG]*i*B\) (.*/\1/p" "$1" | head -1; }
# device FILE WHAT: the size the run's device memory line gives WHAT ("evaluation 45.2 MiB")
device() { grep '^  device memory: ' "$1" | grep -o "$2 [0-9.]* [KMG]*i*B" | head -1 | sed "s/^$2 //"; }
for case in "lora evaluation" "dpo evaluation reference" "kd evaluation teacher"; do
    set -- $case
    spec=$1; shift
    if ! "$trlc" check "$src/tests/run/$spec.trl" --memory > "$work/$spec-plan.txt" 2> "$work/$spec-plan.err"; then
        echo "FAIL: $spec: check --memory failed"; cat "$work/$spec-plan.err"; fail=$((fail + 1)); continue
    fi
    if ! "$trlc" run "$src/tests/run/$spec.trl" --device cuda --set train.steps=1 --out "$work/$spec-out" \
            > "$work/$spec-run.log" 2>&1; then
        echo "FAIL: $spec: the emulator run failed"; tail -5 "$work/$spec-run.log"; fail=$((fail + 1)); continue
    fi
    for what in "$@"; do
        p=$(figure "$work/$spec-plan.txt" "$what") r=$(device "$work/$spec-run.log" "$what")
        if [ -n "$p" ] && [ "$p" = "$r" ]; then
            echo "ok: $spec: $what planned $p, allocated $r"; pass=$((pass + 1))
        else
            echo "FAIL: $spec: $what planned '$p', the run allocated '$r'"; fail=$((fail + 1))
            grep '^  device memory' "$work/$spec-run.log"; sed -n '/^  bytes: weights/,/^  run bytes/p' "$work/$spec-plan.txt"
        fi
    done
    # the run total is printed with exact bytes: the step's total plus every side program's
    step=$(sed -n 's/^  bytes: weights.* total \([0-9]*\)$/\1/p' "$work/$spec-plan.txt")
    sides=$(sed -n '/^  run bytes: /p' "$work/$spec-plan.txt")
    sum=$step
    for b in $(grep -o '[a-z]* [0-9]*,' <<< "$sides" | grep -o '[0-9]*'); do sum=$((sum + b)); done
    total=$(grep -o ' total [0-9]*$' <<< "$sides" | grep -o '[0-9]*$')
    if [ -n "$step" ] && [ "$sum" = "$total" ]; then pass=$((pass + 1)); else
        echo "FAIL: $spec: run total '$total' is not the step's $step plus the side programs' ($sum)"; fail=$((fail + 1)); fi
done
echo "check.memory_emu: $pass passed, $fail failed"
[ $fail -eq 0 ]
