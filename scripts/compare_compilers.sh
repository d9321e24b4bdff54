#!/usr/bin/env bash
# compare_compilers.sh — checks that two trlc binaries (typically one built with gcc, one with
# clang) build the same graphs and plans: `trlc ir` and `trlc kernels --no-compile --plan` for
# every spec in tests/gpu/specs, tests/run, specs/ and examples/, plus scratch models of many
# layers (plain, LoRA, bf16 + recompute). A difference means some builder's result depends on
# the compiler, e.g. two node-creating calls passed as arguments of one call (C leaves their
# order unspecified). Prints the first differing line of each differing output; exit 1 if any.
# Not run by CI (CI builds with one compiler). See docs/graph.md, "Same graph with any compiler".
# Usage: scripts/compare_compilers.sh TRLC_A TRLC_B [LAYERS]   (LAYERS: default 200)
set -uo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1"); b=$(realpath "$2"); layers=${3:-200}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Scratch specs: examples/language/scratch.trl with LAYERS layers, beside its data folder.
mkdir -p "$tmp/scratch"
ln -s "$PWD/examples/language/data" "$tmp/scratch/data"
base="$tmp/scratch/scratch-$layers.trl"
sed "s/layers = [0-9]*;/layers = $layers;/" examples/language/scratch.trl > "$base"
sed 's/precision = fp32;/precision = bf16; recompute = true;/' "$base" > "$tmp/scratch/scratch-$layers-bf16-recompute.trl"
awk '/^objective/ { print "lora tiny { rank = 8; alpha = 16; targets = [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]; }" } { print }' \
    "$base" > "$tmp/scratch/scratch-$layers-lora.trl"

# specs/: checkpoints that are not here. Each model directory gets its config.json from
# tests/io/configs (models/Qwen3-8B -> qwen3-8b.json), the tiny Qwen3 tokenizer, and each data
# file an empty one: enough for the graph and the plan.
mkdir -p "$tmp/specs"
for s in specs/*.trl; do
    cp "$s" "$tmp/specs/"
    for m in $(sed -n 's/.*from *= *"\(models\/[^"]*\)".*/\1/p' "$s"); do
        mkdir -p "$tmp/specs/$m"
        cfg="tests/io/configs/$(basename "$m" | tr 'A-Z' 'a-z').json"
        [ -f "$cfg" ] && cp "$cfg" "$tmp/specs/$m/config.json"
        cp tests/fixtures/tiny-qwen3/tokenizer.json tests/fixtures/tiny-qwen3/tokenizer_config.json "$tmp/specs/$m/"
    done
    for f in $(sed -n 's/.*from *= *"\(data\/[^"]*\)".*/\1/p' "$s"); do
        mkdir -p "$(dirname "$tmp/specs/$f")"; : > "$tmp/specs/$f"
    done
done

specs=(tests/gpu/specs/*.trl tests/run/*.trl "$tmp"/specs/*.trl examples/language/*.trl examples/quickstart/*.trl
       "$tmp"/scratch/*.trl)
ndiff=0; nsame=0; nerr=0
run() {  # run BINARY OUTFILE ARGS...: stdout and stderr, then the exit status
    local bin=$1 out=$2; shift 2
    "$bin" "$@" > "$out" 2>&1; echo "exit $?" >> "$out"
}
for s in "${specs[@]}"; do
    for mode in ir plan; do
        if [ "$mode" = ir ]; then args=(ir "$s")
        else args=(kernels "$s" --no-compile --plan -o "$tmp/k"); fi
        rm -rf "$tmp/k"; run "$a" "$tmp/a.out" "${args[@]}"; [ -d "$tmp/k" ] && mv "$tmp/k" "$tmp/ka"
        rm -rf "$tmp/k"; run "$b" "$tmp/b.out" "${args[@]}"; [ -d "$tmp/k" ] && mv "$tmp/k" "$tmp/kb"
        if [ "$(tail -1 "$tmp/a.out")" != "exit 0" ]; then
            nerr=$((nerr + 1)); echo "(exit $(tail -1 "$tmp/a.out" | cut -d' ' -f2): $mode ${s#"$tmp"/})"
        fi
        first=$(diff "$tmp/a.out" "$tmp/b.out" | head -3)
        if [ -z "$first" ] && [ -d "$tmp/ka" ]; then first=$(diff -r "$tmp/ka" "$tmp/kb" | head -3); fi
        rm -rf "$tmp/ka" "$tmp/kb"
        if [ -n "$first" ]; then
            ndiff=$((ndiff + 1)); echo "DIFF $mode ${s#"$tmp"/}"; echo "$first" | sed 's/^/    /'
        else
            nsame=$((nsame + 1))
        fi
    done
done
echo "compare_compilers: $nsame outputs identical, $ndiff differ ($nerr of A's runs exited non-zero)"
[ "$ndiff" -eq 0 ]
