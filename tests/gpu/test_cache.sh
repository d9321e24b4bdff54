#!/bin/bash
# test_cache.sh TRLC SRCDIR WORKDIR — the kernel cache: a first run compiles everything, a second
# compiles nothing (all hits), a corrupted entry is ignored and rebuilt (one build), and a missing
# cache directory that cannot be created disables caching without failing.
set -u
trlc=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
spec=$src/tests/run/full.trl
fail=0
run() { "$trlc" kernels "$spec" -o "$work/out" --arch sm_90 2>&1 | sed -n 2p; }
first=$(run); echo "first:  $first"
n=$(ls "$work/cache"/*.cubin | wc -l)
echo "$first" | grep -q " $n built, 0 from the cache" || { echo "FAIL: first run should build all $n"; fail=1; }
second=$(run); echo "second: $second"
echo "$second" | grep -q " 0 built, $n from the cache" || { echo "FAIL: second run should compile nothing"; fail=1; }
# corrupt one entry (flip a payload byte) and truncate another: both rebuilt, the rest hit
set -- "$work/cache"/*.cubin
printf '\xff\xfe' | dd of="$1" bs=1 seek=100 conv=notrunc status=none
head -c 30 "$2" > "$2.t" && mv "$2.t" "$2"
third=$(run); echo "third:  $third"
echo "$third" | grep -q " 2 built, $((n - 2)) from the cache, corrupt entries ignored" || { echo "FAIL: corrupt entries should be rebuilt"; fail=1; }
fourth=$(run); echo "fourth: $fourth"
echo "$fourth" | grep -q " 0 built, $n from the cache" || { echo "FAIL: rebuilt entries should hit"; fail=1; }
# an unusable cache directory: a warning, compilation still succeeds
touch "$work/notadir"
TRLC_CACHE_DIR=$work/notadir/sub "$trlc" kernels "$spec" -o "$work/out2" --arch sm_90 > "$work/nocache.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: an unusable cache directory must not fail the compile (rc $rc)"; cat "$work/nocache.txt"; fail=1; }
grep -q "kernel cache disabled" "$work/nocache.txt" || { echo "FAIL: no warning for the unusable cache"; fail=1; }
# TRLC_PRINT_KERNELS prints the sources
TRLC_PRINT_KERNELS=1 "$trlc" kernels "$spec" -o "$work/out3" --arch sm_90 2> "$work/print.txt" > /dev/null
grep -q -- "--- kernel fk_" "$work/print.txt" || { echo "FAIL: TRLC_PRINT_KERNELS printed nothing"; fail=1; }
[ $fail -eq 0 ] && echo "gpu.cache: ok ($n kernels)"
exit $fail
