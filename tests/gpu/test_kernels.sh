#!/bin/bash
# test_kernels.sh TRLC SRCDIR WORKDIR ARCH — every kernel generated for tiny and real-size
# llama / qwen2 / qwen3 specs (SFT; full and LoRA training) compiles with NVRTC for ARCH.
# Prints the number of kernel launches and unique kernels per spec. One fresh kernel cache per
# run, shared by the specs (identical kernels across specs compile once).
set -u
trlc=$1 src=$2 work=$3 arch=$4
rm -rf "$work"
mkdir -p "$work"
export TRLC_CACHE_DIR=$work/cache
fail=0 total=0
for spec in tests/run/full.trl tests/run/lora.trl tests/gpu/specs/tiny-llama-lora.trl \
            tests/gpu/specs/qwen3-0.6b-lora.trl tests/gpu/specs/qwen2.5-0.5b-full.trl \
            tests/gpu/specs/llama-3.2-1b-lora.trl; do
    name=$(basename "$spec" .trl)
    out=$("$trlc" kernels "$src/$spec" -o "$work/$name" --arch "$arch" 2>&1)
    rc=$?
    echo "$out" | sed -n '1,2p'
    if [ $rc -ne 0 ]; then
        echo "FAIL: trlc kernels $spec --arch $arch exited $rc"
        echo "$out" | tail -40
        fail=1
        continue
    fi
    n=$(ls "$work/$name"/*.cu | wc -l)
    total=$((total + n))
    # every unique kernel compiled: the index lists its registers (> 0)
    if grep -q '^kernel .* regs=-1' "$work/$name/index.txt" || ! grep -q '^kernel .* regs=[1-9]' "$work/$name/index.txt"; then
        echo "FAIL: $spec: a kernel without register information"
        fail=1
    fi
    echo "$out" | grep -q " 0 failed" || { echo "FAIL: $spec: a kernel failed"; fail=1; }
    if grep -q "no GPU kernel yet" "$work/$name/index.txt"; then
        echo "FAIL: $spec: a library step without a GPU kernel:"; grep "no GPU kernel yet" "$work/$name/index.txt" | head -3; fail=1
    fi
done
echo "gpu.nvrtc_$arch: $total kernel sources over 6 specs compiled for $arch"
exit $fail
