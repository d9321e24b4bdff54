#!/bin/bash
# stage.sh — puts a built trlc, the GPU test binaries (tests/gpu: test_gpu_exec, test_gpu_cuda_exec,
# test_gpu_attention_tc, test_gpu_optim_cuda, test_gpu_library, test_gpu_cuda_graph, test_gpu_rope_lowp,
# test_gpu_attn_lowp, test_gpu_attn_bwd, test_gpu_bind_output, test_gpu_head_pair; tests/gemm_acc: test_gemm_acc_cuda: those
# the build has) and the shared libraries the GPU machine's image may lack (jansson, utf8proc, libcsv,
# OpenBLAS + gfortran, pcre2, libgomp) into one folder the device tool can carry: a whole build
# directory is larger than the 64 MiB a call may carry. The libraries go in lib.tgz (PACK=0: a plain
# lib/), unpacked into /tmp by the first wrapper that runs. Each program X is staged as X.bin
# (debug info stripped unless STRIP=0) with a wrapper X that points LD_LIBRARY_PATH at those
# libraries and at the machine's own NVRTC / cuBLASLt (the CUDA toolkit's lib dirs, or the `nvidia`
# Python wheels next to torch) and execs the binary, so its process id is the program's (bench.py
# samples trlc's). MANIFEST.txt records the commit and build the binaries came from.
# Does not: build anything, or copy NVRTC, cuBLASLt, libcuda or glibc (the machine's own are used),
# or the specs / data / test scripts (they are in the working tree, which travels with every call).
# usage: bench/gpu_train/stage.sh BUILD_DIR OUT_DIR     (OUT_DIR git-ignored, e.g. build-carry)
#   then on the device: bash bench/gpu_train/run_all.sh all      (CARRY=OUT_DIR, default build-carry)
#   or only the benchmark: python3 bench/gpu_train/bench.py --trlc OUT_DIR/trlc
set -eu
if [ $# -ne 2 ] || [ ! -x "$1/cli/trlc" ]; then
    echo "usage: $0 BUILD_DIR OUT_DIR   (BUILD_DIR/cli/trlc must exist)" >&2
    exit 2
fi
B=$1
O=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
case "$(cd "$(dirname "$O")" 2>/dev/null && pwd)/$(basename "$O")" in
    "$root"/build*) ;;
    *) echo "stage.sh: warning: $O is not a build* folder of the repository root: the device tool carries only" \
            "git-ignored paths of the repository (/build*/ is ignored)" >&2 ;;
esac
rm -rf "$O"
mkdir -p "$O/lib"

# the programs: trlc, then the GPU tests the build has (the kit skips the ones not staged)
progs=("cli/trlc")
for t in test_gpu_exec test_gpu_cuda_exec test_gpu_attention_tc test_gpu_optim_cuda test_gpu_library \
         test_gpu_cuda_graph test_gpu_rope_lowp test_gpu_attn_lowp test_gpu_attn_bwd test_gpu_bind_output test_gpu_head_pair; do
    [ -x "$B/tests/gpu/$t" ] && progs+=("tests/gpu/$t")
done
[ -x "$B/tests/gemm_acc/test_gemm_acc_cuda" ] && progs+=("tests/gemm_acc/test_gemm_acc_cuda")

wrapper() {
    cat <<'EOF'
#!/bin/bash
# A program staged by bench/gpu_train/stage.sh: the libraries staged beside it, NVRTC, cuBLASLt and
# the driver from this machine (CUDA toolkit dirs, then torch's `nvidia` wheels).
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/lib
if [ ! -d "$lib" ] && [ -f "$here/lib.tgz" ]; then
    # first use: unpacked outside the carried folder (it stays small), atomically (a rename)
    lib=${TMPDIR:-/tmp}/trlc-staged-lib-$(cksum <"$here/lib.tgz" | cut -d' ' -f1)
    if [ ! -d "$lib" ]; then
        t=$(mktemp -d "$(dirname "$lib")/.lib.XXXXXX") && tar -xzf "$here/lib.tgz" -C "$t" && { mv -T "$t/lib" "$lib" 2>/dev/null || true; }
        rm -rf "$t"
    fi
fi
p=$lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
         /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && p="$p:$d"
done
for s in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    for l in "$s"/nvidia/*/lib "$s"/nvidia/cu13/lib; do
        [ -d "$l" ] && p="$p:$l"
    done
done
export LD_LIBRARY_PATH="$p${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -n "${STAGE_LDD:-}" ] && exec ldd "$here/$(basename "$0").bin"   # which libraries it would load
exec "$here/$(basename "$0").bin" "$@"
EOF
}

for rel in "${progs[@]}"; do
    name=$(basename "$rel")
    cp "$B/$rel" "$O/$name.bin"
    [ "${STRIP:-1}" = 1 ] && strip --strip-debug "$O/$name.bin"
    ldd "$B/$rel" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r lib path; do
        case "$lib" in
            libc.so* | libm.so* | libpthread.so* | librt.so* | libdl.so* | ld-linux* | libgcc_s.so* | libnvrtc* | libcuda.so* | \
            libcublas*) ;;
            *) [ -e "$O/lib/$lib" ] || cp -L "$path" "$O/lib/$lib" ;;
        esac
    done
    wrapper >"$O/$name"
    chmod +x "$O/$name"
done

# the libraries packed (OpenBLAS alone is 36 MB, 12 MB packed): the wrappers unpack them on first use
if [ "${PACK:-1}" = 1 ]; then
    tar -czf "$O/lib.tgz" -C "$O" lib && rm -rf "${O:?}/lib"
fi

# the GPU tests' commands as ctest runs them (BUILD_DIR/tests/<area>/CTestTestfile.cmake), one per line:
# NAME, then the arguments, tab-separated, with @CARRY@ for this folder, @ROOT@ for the repository
# root and @WORK@ for a scratch folder (the build dir's work dirs). gpu.optim_cuda is the command of
# gpu.optim_cuda_emu (the same binary finds a real device first). run_all.sh runs these, so the kit
# follows the arguments tests/gpu/CMakeLists.txt gives at the time of staging.
ba=$(cd "$B" && pwd)
: >"$O/tests.txt"
for t in gpu.exec gpu.cuda_exec gpu.run_cuda gpu.optim_cuda_emu gpu.library gpu.attention_tc gpu.cuda_graph gpu.cache \
         gpu.rope_lowp gpu.attn_lowp gpu.attn_bwd gpu.bind_output gpu.head_pair gemm_acc.cuda; do
    ctf=$B/tests/${t%%.*}/CTestTestfile.cmake
    line=$(grep -F "add_test([=[$t]=] " "$ctf" 2>/dev/null | head -1)
    [ -n "$line" ] || continue
    name=$t
    [ "$t" = gpu.optim_cuda_emu ] && name=gpu.optim_cuda
    {
        printf '%s' "$name"
        printf '%s\n' "$line" | grep -o '"[^"]*"' | sed 's/^"//; s/"$//' | while IFS= read -r a; do
            case "$a" in
                "$ba"/cli/trlc) a=@CARRY@/trlc ;;
                "$ba"/tests/gpu/test_gpu_* | "$ba"/tests/gemm_acc/test_gemm_acc_cuda) a=@CARRY@/$(basename "$a") ;;
                "$ba"/*) a=@WORK@/$(basename "$a") ;;
                "$root") a=@ROOT@ ;;
                "$root"/*) a=@ROOT@/${a#"$root"/} ;;
            esac
            printf '\t%s' "$a"
        done
        printf '\n'
    } >>"$O/tests.txt"
done

# where the binaries came from: run_all.sh prints this, and warns when the tree's commit differs
{
    echo "staged: $(date -u '+%Y-%m-%d %H:%M UTC') from $(cd "$B" && pwd)"
    echo "commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "sources: $(bash "$root/bench/gpu_train/run_all.sh" --sources)"
    echo "uncommitted files in the tree: $(git -C "$root" status --porcelain 2>/dev/null | grep -vc '^??' || true)"
    echo "build type: $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$B/CMakeCache.txt" 2>/dev/null)"
    echo "cuda toolkit: $(sed -n 's/^CUDAToolkit_NVCC_EXECUTABLE:[A-Z]*=//p' "$B/CMakeCache.txt" 2>/dev/null)"
    echo "programs: $(for r in "${progs[@]}"; do printf '%s ' "$(basename "$r")"; done)"
} >"$O/MANIFEST.txt"

# the device tool carries at most 64 MiB: this folder plus the working tree
kb=$(du -sk "$O" | cut -f1)
tree_kb=$(cd "$root" && git ls-files -co --exclude-standard -z 2>/dev/null | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "staged ${#progs[@]} programs, $((kb / 1024)) MiB in $O (the working tree: $((${tree_kb:-0} / 1024)) MiB; a call carries 64 MiB)"
if [ $((kb + ${tree_kb:-0})) -gt $((60 * 1024)) ]; then
    echo "stage.sh: warning: over 60 MiB together: a device call may refuse it" >&2
fi
