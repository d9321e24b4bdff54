#!/bin/bash
# test_prelude.sh TRLC SRCDIR WORKDIR — kernels/prelude.cuh (the library kernels' one bf16 store)
# as trlc embeds it: the library files `trlc kernels -o` writes stand alone (no #include left: the
# prelude is inlined where the file had `#include "prelude.cuh"`, byte for byte the header's text,
# so the kernel cache's key, a hash of the source, covers it); the files that use bf16 storage
# (cross_entropy.cu, quant.cu, rope.cu) carry exactly one definition of it and no hand-written
# store of their own. With nvcc on PATH each written library file also compiles on its own.
set -u
trlc=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
fail=0
out=$("$trlc" kernels "$src/tests/run/qlora.trl" -o "$work/k" --no-compile 2>&1) || { echo "FAIL: trlc kernels: $out"; exit 1; }
for f in cross_entropy.cu quant.cu rope.cu; do
    k=$work/k/$f
    [ -f "$k" ] || { echo "FAIL: $f not written"; fail=1; continue; }
    if grep -q '^[[:space:]]*#[[:space:]]*include' "$k"; then echo "FAIL: $f still includes a file:"; grep -n '#[[:space:]]*include' "$k"; fail=1; fi
    n=$(grep -c 'trlc_bf16 trlc_to_bf16(float v)' "$k")
    [ "$n" = 1 ] || { echo "FAIL: $f defines trlc_to_bf16 $n times"; fail=1; }
    # the store written by hand (the rounding's constant) only inside the prelude's text
    m=$(grep -c '0x7fffu' "$k")
    [ "$m" = 1 ] || { echo "FAIL: $f has $m round-to-nearest-even constants (1: the prelude's)"; fail=1; }
    # the inlined text is the header's, byte for byte, between its #line markers
    sed -n '/^#line 1 "prelude.cuh"$/,/^#line [0-9]* "'"$f"'"$/p' "$k" | sed '1d;$d' > "$work/$f.prelude"
    cmp -s "$work/$f.prelude" "$src/kernels/prelude.cuh" || { echo "FAIL: $f: the inlined prelude differs from kernels/prelude.cuh"; fail=1; }
    # the line after the prelude: the file's own line that followed the include
    next=$(grep -o '^#line [0-9]* "'"$f"'"$' "$k" | awk '{print $2}')
    inc=$(grep -n '^#include "prelude.cuh"' "$src/kernels/$f" | cut -d: -f1)
    [ -n "$next" ] && [ -n "$inc" ] && [ "$next" = $((inc + 1)) ] || { echo "FAIL: $f: #line $next after the prelude, the include is at line $inc"; fail=1; }
    echo "ok: $f stands alone (prelude inlined for line $inc, $(wc -l < "$k") lines)"
done
if command -v nvcc > /dev/null; then
    for k in "$work"/k/*.cu; do
        case $(basename "$k") in fk_*) continue ;; esac
        nvcc -arch=sm_80 -c -o "$work/$(basename "$k").o" "$k" > "$work/nvcc.log" 2>&1 || { echo "FAIL: nvcc $(basename "$k"):"; cat "$work/nvcc.log"; fail=1; }
    done
    echo "nvcc compiled every written library file on its own"
else
    echo "no nvcc: the written files' own compile is not checked here (gpu.nvrtc_* compiles the same text)"
fi
[ $fail = 0 ] && echo "gpu.prelude: ok"
exit $fail
