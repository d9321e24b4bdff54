#!/bin/bash
# test_cli.sh TRLC SRCDIR WORKDIR — `trlc kernels` as a command: exit statuses (0 ok, 1 spec
# error, 2 usage, 3 write failure), the files it writes, the header comments naming the fused
# nodes' spec lines, the plan and memory printouts. Needs no CUDA (--no-compile).
set -u
trlc=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
spec=$src/tests/run/full.trl
fail=0
expect() {   # expect STATUS DESCRIPTION CMD...
    local want=$1 what=$2
    shift 2
    "$@" > "$work/out.txt" 2> "$work/err.txt"
    local rc=$?
    if [ $rc -ne "$want" ]; then
        echo "FAIL: $what: exit $rc, expected $want"
        sed -n '1,5p' "$work/err.txt"
        fail=1
    fi
}
expect 0 "--help" "$trlc" kernels --help
grep -q "usage: trlc kernels" "$work/out.txt" || { echo "FAIL: --help prints the usage"; fail=1; }
expect 2 "no arguments" "$trlc" kernels
expect 2 "no -o" "$trlc" kernels "$spec"
expect 2 "-o without a value" "$trlc" kernels "$spec" -o
expect 2 "bad --arch" "$trlc" kernels "$spec" -o "$work/k" --arch compute_90
expect 2 "bad --arch number" "$trlc" kernels "$spec" -o "$work/k" --arch sm_x
expect 2 "unknown option" "$trlc" kernels "$spec" -o "$work/k" --fast
expect 2 "two specs" "$trlc" kernels "$spec" "$spec" -o "$work/k"
expect 2 "bad --memory" "$trlc" kernels "$spec" -o "$work/k" --memory 8
expect 2 "negative --memory" "$trlc" kernels "$spec" -o "$work/k" --memory -1,5
expect 1 "missing spec" "$trlc" kernels "$work/nope.trl" -o "$work/k" --no-compile
printf 'trl 1;\nmodel policy { arch = nosuch; }\n' > "$work/bad.trl"
expect 1 "broken spec" "$trlc" kernels "$work/bad.trl" -o "$work/k" --no-compile
grep -q "bad.trl:2" "$work/err.txt" || { echo "FAIL: the spec error points at its line"; cat "$work/err.txt"; fail=1; }
touch "$work/afile"
expect 3 "output is a file" "$trlc" kernels "$spec" -o "$work/afile/sub" --no-compile
expect 0 "generate only" "$trlc" kernels "$spec" -o "$work/k" --no-compile --plan --memory 2,64
grep -q "^# plan: .* unique kernels" "$work/out.txt" || { echo "FAIL: --plan prints the plan"; fail=1; }
grep -q "activations" "$work/out.txt" || { echo "FAIL: --memory prints the memory plan"; fail=1; }
n=$(ls "$work/k"/fk_*.cu | wc -l)
[ "$n" -gt 5 ] || { echo "FAIL: only $n kernels written"; fail=1; }
for f in attention.cu cross_entropy.cu rope.cu embed.cu adamw.cu index.txt; do
    [ -s "$work/k/$f" ] || { echo "FAIL: $f not written"; fail=1; }
done
# every generated kernel names the spec lines of the nodes it fuses
for f in "$work/k"/fk_*.cu; do
    grep -q "nn.trl:[0-9]*:[0-9]*" "$f" || grep -q "objectives.trl:[0-9]*" "$f" || { echo "FAIL: $f has no spec locations"; fail=1; }
    grep -q "^extern \"C\" __global__" "$f" || { echo "FAIL: $f has no kernel"; fail=1; }
done
grep -q "^step [0-9]* kernel fk_.*launch: " "$work/k/index.txt" || { echo "FAIL: index lists kernel steps"; fail=1; }
grep -q "sdpa .*trlc_attention_forward (attention.cu)" "$work/k/index.txt" || { echo "FAIL: index maps sdpa"; fail=1; }
[ $fail -eq 0 ] && echo "gpu.cli: ok ($n generated kernels)"
exit $fail
