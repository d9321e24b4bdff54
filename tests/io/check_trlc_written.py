#!/usr/bin/env python3
"""Checks that the python `safetensors` library reads trlc's writer output identically to the file
it was made from: fixtures/dtypes.trlc.safetensors (written by io.st_write from
fixtures/dtypes.safetensors; refresh it with
  cp build-*/tests/io/dtypes.trlc.safetensors tests/io/fixtures/ ) vs fixtures/dtypes.safetensors.
Same names, dtypes, shapes, bit-identical values, same metadata; torch's load_file accepts it."""
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
a_path = os.path.join(HERE, "fixtures", "dtypes.safetensors")
b_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "dtypes.trlc.safetensors")
with safe_open(a_path, "pt") as a, safe_open(b_path, "pt") as b:
    assert set(a.keys()) == set(b.keys()), (set(a.keys()) ^ set(b.keys()))
    assert a.metadata() == b.metadata(), (a.metadata(), b.metadata())
    for k in sorted(a.keys()):
        x, y = a.get_tensor(k), b.get_tensor(k)
        assert x.dtype == y.dtype and x.shape == y.shape, (k, x.dtype, y.dtype, x.shape, y.shape)
        assert x.untyped_storage().tolist() == y.untyped_storage().tolist() if x.numel() else True, k
        print("%-10s %-22s %-14s identical" % (k, x.dtype, list(x.shape)))
full = load_file(b_path)
print("OK: %d tensors read identically; torch load_file accepts the file" % len(full))
