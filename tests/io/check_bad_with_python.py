#!/usr/bin/env python3
"""Runs every malformed safetensors file of tests/io/bad (kind `st` in EXPECTED) through the python
`safetensors` library: all are rejected there too, except the two trlc refuses on purpose
(nul_in_name: \\u0000 in a name; too_many_dims: more than 8 dimensions). Run by hand."""
import os

from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
ON_PURPOSE = {"nul_in_name.safetensors", "too_many_dims.safetensors"}
bad = os.path.join(HERE, "bad")
n = 0
for line in open(os.path.join(bad, "EXPECTED")):
    kind, name, _ = line.rstrip("\n").split("\t")
    if kind != "st":
        continue
    try:
        with safe_open(os.path.join(bad, name), "np") as f:
            for k in f.keys():
                f.get_tensor(k)
        accepted = True
    except Exception:
        accepted = False
    assert accepted == (name in ON_PURPOSE), name
    n += 1
print("OK: %d malformed files, python safetensors agrees (rejects all but the %d trlc refuses on purpose)"
      % (n, len(ON_PURPOSE)))
