#!/bin/bash
# stage.sh — puts a built trlc and the shared libraries the GPU machine's image may lack (jansson,
# utf8proc, libcsv, OpenBLAS + gfortran, pcre2, libgomp) into one folder the device tool can carry:
# a whole build directory is larger than the 64 MiB a call may carry. The folder's `trlc` is a
# wrapper that points LD_LIBRARY_PATH at those libraries and at the machine's own NVRTC (the CUDA
# toolkit's lib dirs, or the `nvidia` Python wheels next to torch) and execs the binary, so its
# process id is trlc's (bench.py samples that process). Does not: build trlc, or copy NVRTC,
# libcuda or glibc (the machine's own are used).
# usage: bench/gpu_train/stage.sh BUILD_DIR OUT_DIR     (OUT_DIR git-ignored, e.g. build-carry)
#   then on the device: python3 bench/gpu_train/bench.py --trlc OUT_DIR/trlc
set -eu
if [ $# -ne 2 ] || [ ! -x "$1/cli/trlc" ]; then
    echo "usage: $0 BUILD_DIR OUT_DIR   (BUILD_DIR/cli/trlc must exist)" >&2
    exit 2
fi
B=$1
O=$2
rm -rf "$O"
mkdir -p "$O/lib"
cp "$B/cli/trlc" "$O/trlc.bin"
ldd "$B/cli/trlc" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
    case "$name" in
        libc.so* | libm.so* | libpthread.so* | librt.so* | libdl.so* | ld-linux* | libgcc_s.so* | libnvrtc* | libcuda.so*) ;;
        *) cp -L "$path" "$O/lib/$name" ;;
    esac
done
cat >"$O/trlc" <<'EOF'
#!/bin/bash
# trlc with the libraries staged beside it (bench/gpu_train/stage.sh); NVRTC from this machine.
here=$(cd "$(dirname "$0")" && pwd)
p="$here/lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && p="$p:$d"
done
for s in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    for l in "$s"/nvidia/*/lib "$s"/nvidia/cu13/lib; do
        [ -d "$l" ] && p="$p:$l"
    done
done
export LD_LIBRARY_PATH="$p${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/trlc.bin" "$@"
EOF
chmod +x "$O/trlc"
echo "staged $(du -sh "$O" | cut -f1) in $O: run with --trlc $O/trlc"
