#!/bin/bash
# run_all.sh — every GPU check of issue #5 in one device call (or split across a few), from the
# repository root, with the programs staged by stage.sh (no build, no cmake / ctest on the device):
#   parity:     nvidia-smi (+ one trlc step); gpu.cuda_exec, gpu.exec, gpu.run_cuda (loss and gradients vs the CPU
#               backend), then gpu.optim_cuda, gpu.library, gpu.cuda_graph, gpu.rope_lowp, gpu.attn_lowp,
#               gpu.attn_bwd, gpu.bind_output, gemm_acc.cuda, gpu.head_pair (what the build staged)
#   quickstart: examples/quickstart trained with --device cuda and --device cpu side by side
#               (held-out accuracy of both parts); the kernel cache (a second run compiles
#               nothing); test_gpu_attention_tc --bench (tensor-core vs fp32 attention timing, the
#               fused backward vs the split one)
#   bench:      bench.py (trlc vs PyTorch + peft: parity, tokens/s, peak memory, ratios)
#   all:        the three in that order.  Or name checks: smi cuda_exec exec run_cuda optim_cuda
#               library cuda_graph rope_lowp attn_lowp attn_bwd bind_output gemm_acc head_pair qs cache attn_bench gbench
#               (several words: run in that order;
#               qs is the quickstart check, gbench bench.py).
# Each check runs under `timeout` (its own limit, cut to what is left of KIT_BUDGET seconds, 570 by
# default: a device command may run 600); a check that no longer fits is NOT-RUN, so one hang
# cannot eat the call. Verdicts: PASS, FAIL, SKIP (no device, or not staged), TIMEOUT, NOT-RUN. Once
# nvidia-smi has shown a GPU (check smi, which also runs one trlc step on it), "no CUDA device" FAILs.
# Writes, after every check (so a killed call still returns them): $OUT/summary.txt (one line per
# check: verdict, seconds, key numbers), $OUT/summary.json, $OUT/all.log (every check's output)
# and $OUT/logs.tgz (the checks' work dirs' logs and metrics); bench also $OUT/gbench.json.
# Exit status: 0 when nothing FAILed, timed out or was left out (SKIPs allowed), 1 otherwise.
# Environment: CARRY (the staged folder, default build-carry), OUT (default build-kit-out),
#   KIT_WORK (scratch, default /tmp/trlc-kit, wiped), KIT_BUDGET (seconds), KIT_LIMIT_SCALE
#   (an integer factor on every check's own limit: the emulator is slow), PYTHON (python3),
#   TRLC_CUDA_DRIVER / TRLC_CUBLASLT_LIB (the emulator, for a dry run without a GPU),
#   QS_STEPS=N (shorter quickstart: plumbing only, the 90% bar is not judged), QS_ON_EMULATOR=1
#   (run the quickstart on the emulator too; skipped there by default: hours), QS_CPU=0 (no CPU
#   side: compare with the README's numbers), ATTN_BENCH="B T" (default "4 1024"),
#   BENCH_ARGS (extra bench.py arguments; with a PyTorch without CUDA gbench is skipped unless they
#   contain --device cpu, the dry run's `--device cpu --tiny`).
# Does not: build, install, or change anything outside KIT_WORK, OUT and the staged libraries'
# unpacked copy in /tmp (the wrappers').
set -u
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
export CARRY=${CARRY:-build-carry}
export OUT=${OUT:-$root/build-kit-out}
export KIT_WORK=${KIT_WORK:-/tmp/trlc-kit}
export PYTHON=${PYTHON:-python3}
KIT_BUDGET=${KIT_BUDGET:-570}

# ---------------------------------------------------------------------------------------------
# helpers shared by the parent and the checks
carry_abs() { (cd "$CARRY" 2>/dev/null && pwd); }
# the C tests' stdout line by line into the logs, so a check killed at its limit still shows where
LINEBUF=
command -v stdbuf >/dev/null && LINEBUF="stdbuf -oL"
key() { printf '%s\n' "$*" >"$KIT_WORK/key.$CHECK"; }   # the check's key numbers, one line
# the staged ctest command of test NAME, with the placeholders filled in, into the array cmd
staged_cmd() {
    local c w line
    c=$(carry_abs) w=$KIT_WORK/$CHECK
    line=$(awk -F'\t' -v n="$1" '$1 == n { print; exit }' "$c/tests.txt" 2>/dev/null)
    [ -n "$line" ] || return 1
    line=${line//@CARRY@/$c}
    line=${line//@ROOT@/$root}
    line=${line//@WORK@/$w}
    IFS=$'\t' read -r -a cmd <<<"$line"
    cmd=("${cmd[@]:1}")
    [ -x "${cmd[0]}" ] || [ "${cmd[0]}" = bash ]
}
# runs a staged C test (exit 77 = no device), the key is its "N passed, M failed" line + extras
run_ctest() {
    local name=$1
    shift
    staged_cmd "$name" || { key "not staged (the build had no such test)"; return 77; }
    mkdir -p "$KIT_WORK/$CHECK"
    export TRLC_CACHE_DIR=$KIT_WORK/cache-tests   # shared by the C tests of a call: content-addressed
    $LINEBUF "${cmd[@]}" 2>&1 | tee "$KIT_WORK/$CHECK/out.txt"
    local rc=${PIPESTATUS[0]}
    local o=$KIT_WORK/$CHECK/out.txt dev
    dev=$(grep -m1 -o 'the emulator\|the CUDA emulator\|a GPU\|a CUDA device\|device 0 is sm_[0-9a-z]*' "$o" | sed 's/device 0 is //')
    local t
    t=$(grep -o '[0-9]* passed, [0-9]* failed' "$o" | tail -1)
    if [ $rc = 77 ] || { [ $rc = 0 ] && grep -q 'no CUDA device' "$o"; }; then
        key "no CUDA device${t:+ (the checks without one: $t)}"
        return 77
    fi
    key "${dev:+on $dev: }$t$(grep -c 'CHECK failed' "$o" |
        awk '$1 > 0 {printf "; first failure: "}')$(grep -m1 'CHECK failed' "$o" | sed 's/.*CHECK failed: //' | cut -c1-120)"
    return $rc
}
# is there a device? 0: a GPU, 1: the emulator, 2: none (the reason in $KIT_WORK/probe.txt)
probe() {
    local c
    c=$(carry_abs)
    TRLC_CACHE_DIR=$KIT_WORK/probe-cache "$c/trlc" run tests/run/full.trl --device cuda --set train.steps=1 \
        --out "$KIT_WORK/probe" >"$KIT_WORK/probe.txt" 2>&1
    local rc=$?
    [ $rc = 0 ] || return 2
    grep -q '(the emulator)' "$KIT_WORK/probe.txt" && return 1
    return 0
}

# ---------------------------------------------------------------------------------------------
# the checks: c_NAME runs in its own process (bash run_all.sh --one NAME) under timeout; exit 0
# PASS, 77 SKIP, anything else FAIL; `key` leaves the summary's numbers
c_smi() {
    # the staged trlc must start here (glibc, the staged libraries), and where NVRTC, cuBLASLt and
    # the driver come from
    local c v
    c=$(carry_abs)
    STAGE_LDD=1 "$c/trlc" 2>&1
    for l in libnvrtc.so libcublasLt.so libcuda.so.1; do
        echo "$l: $(ldconfig -p 2>/dev/null | grep -m1 "$l" | sed 's/.*=> //')"
    done
    ls -d /usr/local/cuda*/lib64 2>/dev/null
    if ! v=$("$c/trlc" --version 2>&1); then
        key "the staged trlc does not start here: $(echo "$v" | head -1 | cut -c1-150)"
        return 1
    fi
    if ! command -v nvidia-smi >/dev/null; then
        key "no nvidia-smi on this machine ($v starts)"
        return 77
    fi
    nvidia-smi
    local q
    q=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)
    nvidia-smi -q 2>/dev/null | grep -m1 'CUDA Version' || true
    if [ -z "$q" ] || echo "$q" | grep -qi 'fail\|error\|no devices'; then
        key "nvidia-smi: ${q:-no GPU listed}"
        return 1
    fi
    # a GPU is there: from now on a check that says "no CUDA device" is a FAIL, not a SKIP; and
    # trlc must find it (the driver through dlopen, NVRTC, cuBLASLt: one training step)
    touch "$KIT_WORK/has_gpu"
    probe
    local p=$?
    cat "$KIT_WORK/probe.txt"
    if [ $p != 0 ]; then
        key "$q; trlc does NOT run on it: $(grep -m1 -i 'error' "$KIT_WORK/probe.txt" | cut -c1-200)"
        return 1
    fi
    key "$q; trlc: $(grep -m1 '^device:' "$KIT_WORK/probe.txt" | sed 's/; [0-9]* fused.*//')"
}
c_cuda_exec() {
    run_ctest gpu.cuda_exec
    local rc=$?
    [ $rc = 77 ] && return 77
    # the worst output (loss and gradients) vs the CPU over all steps: fp32 specs and bf16 ones
    key "$(cat "$KIT_WORK/key.$CHECK"); $(awk '
        function spec(s) { sub(/[,:]$/, "", s); sub(/.*\/tests\//, "", s); return s }
        /, bf16 mixed precision:/ { bf = spec($1); next }
        / outputs \(loss .*worst .* normwise/ {
            p = spec($1); m = (p == bf) ? "bf16" : "fp32"; if (p != bf) bf = ""
            for (i = 1; i < NF; i++) if ($i == "worst") { e = $(i + 1) + 0; w = $(i + 3); gsub(/[(),]/, "", w) }
            n[m]++; if (e >= worst[m]) { worst[m] = e; what[m] = p " " w } }
        END { for (m in n) printf "%s worst %.2g normwise over %d steps (%s); ", m, worst[m], n[m], what[m] }' \
        "$KIT_WORK/$CHECK/out.txt" | sed 's/; $//')"
    return $rc
}
c_exec() { run_ctest gpu.exec; }
c_optim_cuda() { run_ctest gpu.optim_cuda; }
c_library() { run_ctest gpu.library; }   # without a device: its CPU half passes, SKIP
c_cuda_graph() { run_ctest gpu.cuda_graph; }
c_rope_lowp() { run_ctest gpu.rope_lowp; }       # bf16 rope kernel == f32 rounded
c_attn_lowp() { run_ctest gpu.attn_lowp; }       # bf16 attention output, delta from it
c_attn_bwd() { run_ctest gpu.attn_bwd; }         # the fused attention backward vs the reference and split
c_bind_output() { run_ctest gpu.bind_output; }   # KD's teacher logits copied on the device
c_gemm_acc() { run_ctest gemm_acc.cuda; }        # cuBLASLt beta = 1 / bias epilogues vs the CPU
c_head_pair() { run_ctest gpu.head_pair; }       # the head's loss and backward on one logits product
c_run_cuda() {
    staged_cmd gpu.run_cuda || { key "not staged"; return 77; }
    "${cmd[@]}" 2>&1 | tee "$KIT_WORK/run_cuda.out"
    local rc=${PIPESTATUS[0]} o=$KIT_WORK/run_cuda.out
    if [ $rc = 77 ]; then key "no CUDA device"; return 77; fi
    # the worst loss / grad norm errors of each spec, and the count of ok / FAIL lines
    key "$(grep -c '^ok:' "$o") ok, $(grep -c '^FAIL' "$o") FAIL; $(sed -n 's/^ok: \([a-z0-9-]*\): \([0-9]*\) steps, .*worst \(.*\) relative/\1 \3/p' "$o" |
        tr '\n' ';' | sed 's/;$//; s/;/; /g')$(grep -m1 '^FAIL' "$o" | sed 's/^/; first: /' | cut -c1-160)"
    return $rc
}
c_qs() {
    probe
    local p=$? c
    c=$(carry_abs)
    if [ $p = 2 ]; then key "no CUDA device: $(grep -m1 'no CUDA device\|error' "$KIT_WORK/probe.txt" | cut -c1-100)"; return 77; fi
    if [ $p = 1 ] && [ "${QS_ON_EMULATOR:-0}" != 1 ]; then key "the emulator: skipped (QS_ON_EMULATOR=1 runs it: hours)"; return 77; fi
    local extra1=() extra2=() devs=(cuda)
    [ "${QS_CPU:-1}" = 1 ] && devs=(cpu cuda)
    if [ -n "${QS_STEPS:-}" ]; then
        extra1=(--set "train.steps=$QS_STEPS" --set "train.eval_every=$QS_STEPS steps" --set "train.log_every=1 steps")
        extra2=("${extra1[@]}")
    fi
    local d
    for d in "${devs[@]}"; do
        rm -rf "$KIT_WORK/qs-$d" && mkdir -p "$KIT_WORK/qs-$d"
        cp examples/quickstart/*.trl examples/quickstart/make_data.sh "$KIT_WORK/qs-$d/"
        (cd "$KIT_WORK/qs-$d" && bash make_data.sh data >/dev/null) || { key "make_data.sh failed"; return 1; }
    done
    # both devices at once (the CPU side on half the cores: it is the slower one)
    local nc=$(( $(nproc) / 2 )); [ $nc -lt 1 ] && nc=1
    qs_run() {   # DEV: part 1 then part 2, wall seconds of each in DEV.time
        local t0 t1 t2
        cd "$KIT_WORK/qs-$1" || return 1
        t0=$(date +%s.%N)
        "$c/trlc" run arithmetic.trl --device "$1" "${extra1[@]}" >part1.log 2>&1 || { echo "part 1 on $1: exit $?" >fail.txt; return 1; }
        t1=$(date +%s.%N)
        "$c/trlc" run subtract-lora.trl --device "$1" "${extra2[@]}" >part2.log 2>&1 || { echo "part 2 on $1: exit $?" >fail.txt; return 1; }
        t2=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.0f %.0f\n", b - a, c - b }' >time.txt
    }
    local pid=
    if [ "${QS_CPU:-1}" = 1 ]; then
        (export OMP_NUM_THREADS=$nc; qs_run cpu) &
        pid=$!
    fi
    (qs_run cuda)
    local rg=$? rc=0
    [ -n "$pid" ] && { wait "$pid" || rc=$?; }
    acc() { grep '"eval_accuracy"' "$1/metrics.jsonl" 2>/dev/null | tail -n 1 | sed 's/.*"eval_accuracy": *\([0-9.e+-]*\).*/\1/'; }
    local ga gs ca cs gt ct
    ga=$(acc "$KIT_WORK/qs-cuda/runs/arithmetic") gs=$(acc "$KIT_WORK/qs-cuda/runs/subtract")
    gt=$(cat "$KIT_WORK/qs-cuda/time.txt" 2>/dev/null)
    for d in "${devs[@]}"; do
        echo "== $d: part 1"; tail -n 4 "$KIT_WORK/qs-$d/part1.log"; echo "== $d: part 2"; tail -n 4 "$KIT_WORK/qs-$d/part2.log"
        grep -h '^device:\|host<->device' "$KIT_WORK/qs-$d"/part*.log
    done
    if [ $rg != 0 ]; then key "cuda: $(cat "$KIT_WORK/qs-cuda/fail.txt"): $(tail -n 1 "$KIT_WORK/qs-cuda"/part*.log | grep -v '^==' | tail -1 | cut -c1-120)"; return 1; fi
    if [ "${QS_CPU:-1}" = 1 ]; then
        [ $rc = 0 ] || { key "cpu: $(cat "$KIT_WORK/qs-cpu/fail.txt")"; return 1; }
        ca=$(acc "$KIT_WORK/qs-cpu/runs/arithmetic") cs=$(acc "$KIT_WORK/qs-cpu/runs/subtract")
        ct=$(cat "$KIT_WORK/qs-cpu/time.txt" 2>/dev/null)
    else
        ca=1.000 cs=0.996 ct="(README, 2 cores)"   # examples/quickstart/README.md, seeds 1, 1
    fi
    local short=
    [ -n "${QS_STEPS:-}" ] && short=" (QS_STEPS=$QS_STEPS: the 90% bar not judged)"
    # the last logged throughput of part 1 on each device
    local gk ck
    gk=$(grep -o '[0-9,.]* tok/s' "$KIT_WORK/qs-cuda/part1.log" | tail -1)
    ck=$(grep -o '[0-9,.]* tok/s' "$KIT_WORK/qs-cpu/part1.log" 2>/dev/null | tail -1)
    key "$(awk -v ga="$ga" -v gs="$gs" -v ca="$ca" -v cs="$cs" -v gt="$gt" -v ct="$ct" 'BEGIN {
        printf "held-out exact match add / sub (LoRA): cuda %.1f%% / %.1f%%, cpu %.1f%% / %.1f%%; seconds part 1, 2: cuda %s, cpu %s",
               ga * 100, gs * 100, ca * 100, cs * 100, gt, ct }'); part 1 at ${gk:-?} on cuda, ${ck:-?} on cpu$short"
    # the same accuracy: both parts >= 90% (run.sh's bar) and neither more than 3 points below the
    # CPU's (the seeds' spread on the CPU is 95.7..100%: README of the quickstart)
    awk -v ga="$ga" -v gs="$gs" -v ca="$ca" -v cs="$cs" -v short="${QS_STEPS:-}" 'BEGIN {
        if (ga == "" || gs == "") exit 1
        exit !((short != "" || (ga >= 0.9 && gs >= 0.9)) && ga >= ca - 0.03 && gs >= cs - 0.03) }'
}
c_cache() {
    probe
    local p=$? c fail=0 s
    c=$(carry_abs)
    if [ $p = 2 ]; then key "no CUDA device"; return 77; fi
    # trlc run twice on a fresh cache: the second compiles nothing (fp32 full, bf16 LoRA: the
    # tensor-core attention kernels); then tests/gpu/test_cache.sh (trlc kernels: hits, corrupt
    # entries rebuilt, an unusable cache dir)
    local msg=()
    for s in "full tests/run/full.trl" "lora-bf16 tests/run/lora.trl --set train.precision=bf16"; do
        read -r name spec extra <<<"$s"
        local w=$KIT_WORK/cache/$name
        rm -rf "$w" && mkdir -p "$w"
        local r
        for r in 1 2; do
            # shellcheck disable=SC2086
            TRLC_CACHE_DIR=$w/cache "$c/trlc" run $spec $extra --device cuda --set train.steps=2 --out "$w/run$r" \
                >"$w/run$r.log" 2>&1 || { echo "$name run $r: exit $?"; tail -3 "$w/run$r.log"; fail=1; }
            grep '^device:' "$w/run$r.log"
        done
        local n1 n2 h2
        read -r n1 _ <<<"$(sed -n 's/.*kernel cache: \([0-9]*\) programs compiled, \([0-9]*\) found.*/\1 \2/p' "$w/run1.log")"
        read -r n2 h2 <<<"$(sed -n 's/.*kernel cache: \([0-9]*\) programs compiled, \([0-9]*\) found.*/\1 \2/p' "$w/run2.log")"
        if [ -n "${n1:-}" ] && [ "${n1:-0}" -gt 0 ] && [ "${n2:-x}" = 0 ] && [ "${h2:-0}" -gt 0 ]; then
            msg+=("$name: 1st run compiled $n1, 2nd compiled 0 (found $h2)")
        else
            msg+=("$name: FAIL 1st compiled '${n1:-}', 2nd compiled '${n2:-}' found '${h2:-}'"); fail=1
        fi
    done
    if staged_cmd gpu.cache; then
        if "${cmd[@]}"; then msg+=("test_cache.sh ok"); else fail=1; msg+=("test_cache.sh FAILED"); fi
    fi
    key "$(printf '%s; ' "${msg[@]}" | sed 's/; $//')"
    return $fail
}
c_attn_bench() {
    local c
    c=$(carry_abs)
    [ -x "$c/test_gpu_attention_tc" ] || { key "not staged"; return 77; }
    mkdir -p "$KIT_WORK/attn_bench"
    # shellcheck disable=SC2086
    TRLC_CACHE_DIR=$KIT_WORK/attn_bench/cache $LINEBUF "$c/test_gpu_attention_tc" --bench ${ATTN_BENCH:-4 1024} 2>&1 |
        tee "$KIT_WORK/attn_bench/out.txt"
    local rc=${PIPESTATUS[0]} o=$KIT_WORK/attn_bench/out.txt
    local t
    t=$(grep -o '[0-9]* passed, [0-9]* failed' "$o" | tail -1)
    if grep -q 'kernels not launched' "$o"; then key "no CUDA device (reference checks: $t)"; [ $rc = 0 ] && return 77; return $rc; fi
    if grep -q 'not on the emulator' "$o"; then key "the emulator: kernels vs reference $t; no timing there"; [ $rc = 0 ] && return 77; return $rc; fi
    # "  bf16 attention_tc.cu: forward 1.234 ms (56.7 TFLOP/s), dq ..., backward 12.3 TFLOP/s"
    local line
    line="$(grep -m1 '^bench (' "$o" | sed 's/:$//') $(awk '
        / attention_tc.cu: forward / { tf = $4; tfl = $6; tb = $NF == "TFLOP/s" ? $(NF-1) : "" }
        / attention.cu +: forward / || /fp32 attention.cu/ { ff = $4; ffl = $6; fb = $(NF-1) }
        END { gsub(/\(/, "", tfl); gsub(/\(/, "", ffl)
              printf "tc: forward %s ms (%s TFLOP/s), backward %s TFLOP/s; fp32: forward %s ms (%s TFLOP/s), backward %s TFLOP/s", tf, tfl, tb, ff, ffl, fb
              if (tf > 0 && ff > 0) printf "; forward speed-up %.1fx", ff / tf }' "$o"); $(grep -m1 'tc vs fp32:' "$o" | sed 's/^ *//'); $t"
    # "  bf16 fused backward: 1.234 ms (56.7 TFLOP/s; ...), split (dq + dkdv) 1.567 ms: split / fused 1.27x"
    line="$line$(awk '/ bf16 fused backward: / { f = $4; ft = $6; sub(/\(/, "", ft); s = $(NF-5); r = $NF }
                    END { if (f != "") printf "; fused backward %s ms (%s TFLOP/s), split %s ms: split / fused %s", f, ft, s, r }' "$o")"
    line="$line$(grep -m1 'fused vs split:' "$o" | sed 's/^ */; /')"
    # PyTorch's attention at the same shape (attn_torch.py): the peer's times, and trlc's over them
    if "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        # shellcheck disable=SC2086
        timeout 120 "$PYTHON" "$root/bench/gpu_train/attn_torch.py" ${ATTN_BENCH:-4 1024} 2>&1 | tee -a "$o"
        line="$line$(awk '/ attention_tc.cu: forward / { tf = $4; tb = $9 + $12 }
                    / bf16 fused backward: / { tfu = $4 }
                    /^torch sdpa: forward / { pf = $4; pb = $9; k = $0; sub(/.*\[/, "", k); sub(/\].*/, "", k) }
                    END { if (pf > 0 && pb > 0 && tf > 0 && tb > 0) {
                              printf "; torch sdpa [%s]: forward %s ms, backward %s ms; trlc / torch time: forward %.2fx, backward %.2fx (split)", k, pf, pb, tf / pf, tb / pb
                              if (tfu > 0) printf ", %.2fx (fused)", tfu / pb
                          } else printf "; torch sdpa: no timing" }' "$o")"
    fi
    key "$line"
    return $rc
}
c_gbench() {
    local c args=()
    c=$(carry_abs)
    # shellcheck disable=SC2206
    [ -n "${BENCH_ARGS:-}" ] && args=($BENCH_ARGS)
    if ! printf '%s ' "${args[@]}" | grep -q -- '--device cpu'; then
        if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
            key "no CUDA device for PyTorch ($PYTHON)"
            return 77
        fi
    fi
    rm -f "$OUT/gbench.json"
    PYTHONUNBUFFERED=1 "$PYTHON" bench/gpu_train/bench.py --trlc "$c/trlc" --json "$OUT/gbench.json" \
        --trlc-timeout "${BENCH_TRLC_TIMEOUT:-240}" "${args[@]}" 2>&1 | tee "$KIT_WORK/bench.out"
    local rc=${PIPESTATUS[0]} o=$KIT_WORK/bench.out
    # the parity errors of step 1 (trlc's, PyTorch bf16's, vs the fp32 reference), the table's trlc
    # and PyTorch rows, the ratio and the target line
    key "parity: $(awk '
        /^  loss  / { printf "loss err trlc %s (pytorch %s) %s, ", $(NF-1), $4, $NF }
        /^  grad norm  / { printf "grad norm trlc %s (pytorch %s) %s, ", $(NF-1), $5, $NF }
        /^  B gradients/ { printf "B grads trlc %s (pytorch %s) %s", $(NF-1), $(NF-2), $NF }' "$o"); $(awk '/^pytorch eager|^trlc  / { n = $1 == "trlc" ? "trlc" : "pytorch"; printf "%s %s tok/s %s ms %s; ", n, $(n == "trlc" ? 2 : 4), $(n == "trlc" ? 3 : 5), $(n == "trlc" ? 5 : 7) $(n == "trlc" ? 6 : 8) }' "$o")$(grep -m1 '^ratio trlc' "$o" | sed 's/^ratio trlc \/ [^:]*: //')$(grep -m1 '^target' "$o" | sed 's/.*: /; target /')$(grep -c 'FAILED' "$o" | awk '$1 > 0 { printf "; parity FAILED lines: %d", $1 }')$(grep -m1 '^bench.py:' "$o" | sed 's/^/; /' | cut -c1-160)"
    return $rc
}

# ---------------------------------------------------------------------------------------------
# a checksum of the sources the staged programs are built from (and the tests' specs and scripts):
# stage.sh records it, the run compares (the device's copy of the tree may have no .git)
sources_sum() {
    find common compiler runtime kernels cli stdlib tests/gpu tests/run -type f \( -name '*.c' -o -name '*.h' -o \
        -name '*.cu' -o -name '*.inc' -o -name '*.y' -o -name '*.l' -o -name '*.trl' -o -name '*.sh' -o \
        -name 'CMakeLists.txt' \) 2>/dev/null | LC_ALL=C sort | xargs cat | cksum | cut -d' ' -f1
}
if [ "${1:-}" = --sources ]; then
    sources_sum
    exit 0
fi
if [ "${1:-}" = --one ]; then   # a check, in its own process
    export CHECK=$2
    mkdir -p "$KIT_WORK"
    "c_$2"
    exit $?
fi

# the run (a function, read whole before it starts: the script may be edited while it runs)
main() {
all_checks=(smi cuda_exec exec run_cuda optim_cuda library cuda_graph rope_lowp attn_lowp attn_bwd bind_output gemm_acc head_pair qs
            cache attn_bench gbench)
declare -A limit=([smi]=90 [cuda_exec]=240 [exec]=240 [run_cuda]=300 [optim_cuda]=120 [library]=120 [cuda_graph]=120
                  [rope_lowp]=60 [attn_lowp]=90 [attn_bwd]=60 [bind_output]=60 [gemm_acc]=90 [head_pair]=60
                  [qs]=420 [cache]=150 [attn_bench]=120 [gbench]=560)
want=()
[ $# -eq 0 ] && set -- all
for a in "$@"; do
    case "$a" in
        all) want+=("${all_checks[@]}") ;;
        parity) want+=(smi cuda_exec exec run_cuda optim_cuda library cuda_graph rope_lowp attn_lowp attn_bwd bind_output gemm_acc head_pair) ;;
        quickstart) want+=(smi qs cache attn_bench) ;;
        bench) want+=(smi gbench) ;;
        *) if [ -n "${limit[$a]:-}" ]; then want+=("$a"); else
               echo "usage: $0 [parity|quickstart|bench|all|CHECK...]   checks: ${all_checks[*]}" >&2; exit 2; fi ;;
    esac
done
# each check once, in all_checks' order
run=()
for c in "${all_checks[@]}"; do
    for w in "${want[@]}"; do [ "$w" = "$c" ] && { run+=("$c"); break; }; done
done

if ! c=$(carry_abs) || [ ! -x "$c/trlc" ]; then
    echo "run_all.sh: no staged trlc in CARRY=$CARRY (bench/gpu_train/stage.sh BUILD_DIR $CARRY first)" >&2
    exit 2
fi
rm -rf "$KIT_WORK" && mkdir -p "$KIT_WORK/logs" "$OUT" || exit 2
start=$(date +%s)
names=() verdicts=() secs=() keys=() limits=()
manifest_commit=$(sed -n 's/^commit: //p' "$c/MANIFEST.txt" 2>/dev/null)
tree_commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
staged_sources=$(sed -n 's/^sources: //p' "$c/MANIFEST.txt" 2>/dev/null)
tree_sources=$(sources_sum)
header() {
    echo "run_all.sh $* — started $(date -u -d "@$start" '+%Y-%m-%d %H:%M:%S UTC'), host ${HOSTNAME:-?}, budget ${KIT_BUDGET}s"
    echo "binaries: $(sed -n 's/^staged: //p' "$c/MANIFEST.txt" 2>/dev/null), commit ${manifest_commit:-?}; tree: commit $tree_commit;" \
         "sources $([ "$staged_sources" = "$tree_sources" ] && echo "the same ($tree_sources)" ||
                     echo "DIFFERENT (staged ${staged_sources:-?}, tree $tree_sources): the binaries are not this tree's build")"
    [ -n "${TRLC_CUDA_DRIVER:-}" ] && echo "TRLC_CUDA_DRIVER=$TRLC_CUDA_DRIVER (a dry run: not a real GPU)"
}
jstr() { printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
write_summary() {
    {
        header "$@"
        local i
        for i in "${!names[@]}"; do
            printf '%-8s %-11s %5ss  %s\n' "${verdicts[$i]}" "${names[$i]}" "${secs[$i]}" "${keys[$i]}"
        done
    } >"$OUT/summary.txt"
    {
        printf '{"started_utc": %s, "args": %s, "budget_s": %s, "binaries_commit": %s, "tree_commit": %s, "same_sources": %s, "emulator": %s,\n "checks": [' \
            "$(jstr "$(date -u -d "@$start" '+%Y-%m-%dT%H:%M:%SZ')")" "$(jstr "$*")" "$KIT_BUDGET" "$(jstr "${manifest_commit:-}")" \
            "$(jstr "$tree_commit")" "$([ "$staged_sources" = "$tree_sources" ] && echo true || echo false)" \
            "$([ -n "${TRLC_CUDA_DRIVER:-}" ] && echo true || echo false)"
        local i sep=
        for i in "${!names[@]}"; do
            printf '%s\n  {"name": %s, "verdict": %s, "seconds": %s, "limit_s": %s, "key": %s, "log": %s}' "$sep" \
                "$(jstr "${names[$i]}")" "$(jstr "${verdicts[$i]}")" "${secs[$i]}" "${limits[$i]}" "$(jstr "${keys[$i]}")" \
                "$(jstr "all.log: == ${names[$i]}")"
            sep=,
        done
        printf '\n ]}\n'
    } >"$OUT/summary.json"
    # every check's whole output, and the work dirs' logs (not the models, caches or data)
    for i in "${!names[@]}"; do
        echo "================================ == ${names[$i]}: ${verdicts[$i]} (${secs[$i]} s)"
        cat "$KIT_WORK/logs/${names[$i]}.log" 2>/dev/null
    done >"$OUT/all.log"
    (cd "$KIT_WORK" && find . \( -name '*.log' -o -name '*.txt' -o -name 'metrics.jsonl' \) -size -4M -print0 |
        tar -czf "$OUT/logs.tgz" --null -T - 2>/dev/null)
}
header "$@"
bad=0
for n in "${run[@]}"; do
    now=$(date +%s)
    left=$((KIT_BUDGET - (now - start)))
    lim=$((limit[$n] * ${KIT_LIMIT_SCALE:-1}))
    [ $lim -gt $((left - 10)) ] && lim=$((left - 10))
    names+=("$n") limits+=("$lim")
    if [ $lim -lt 20 ]; then
        verdicts+=("NOT-RUN") secs+=(0) keys+=("no time left in KIT_BUDGET=${KIT_BUDGET}s") bad=1
        echo "NOT-RUN  $n (no time left)"
        write_summary "$@"
        continue
    fi
    echo "---- $n (limit ${lim}s)"
    t0=$(date +%s)
    timeout -k 10 "$lim" bash "$self" --one "$n" >"$KIT_WORK/logs/$n.log" 2>&1
    rc=$?
    t=$(($(date +%s) - t0))
    k=$(cat "$KIT_WORK/key.$n" 2>/dev/null)
    case $rc in
        0) v=PASS ;;
        77) v=SKIP
            # on a machine where nvidia-smi saw a GPU, "no CUDA device" is a failure of the kit or of trlc
            if [ -e "$KIT_WORK/has_gpu" ] && [ "${k#no CUDA device}" != "$k" ]; then v=FAIL k="SKIP on a machine with a GPU: $k"; bad=1; fi ;;
        124 | 137) v=TIMEOUT k="killed after ${lim}s; last line: $(grep -v '^\s*$' "$KIT_WORK/logs/$n.log" | tail -1 | cut -c1-150)"
                   [ "${k%last line: }" = "$k" ] || k="killed after ${lim}s, no output"; bad=1 ;;
        *) v=FAIL; [ -n "$k" ] || k="exit $rc; last line: $(grep -v '^\s*$' "$KIT_WORK/logs/$n.log" | tail -1 | cut -c1-150)"; bad=1 ;;
    esac
    verdicts+=("$v") secs+=("$t") keys+=("$k")
    printf '%-8s %-11s %5ss  %s\n' "$v" "$n" "$t" "$k"
    write_summary "$@"
done
echo "summary: $OUT/summary.txt"
exit $bad
}
main "$@"
