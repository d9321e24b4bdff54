#!/usr/bin/env python3
"""fixtures/shards_tiny_qwen3_bf16_20000.json: how huggingface_hub's split_torch_state_dict_into_shards
(what transformers' save_pretrained uses) splits tiny-qwen3's state_dict in bf16 with
max_shard_size=20000 — the weight_map ex_write_hf_model must reproduce. Run from the repo root."""
import json
import os

import torch
import transformers
from huggingface_hub import split_torch_state_dict_into_shards

HERE = os.path.dirname(os.path.abspath(__file__))
m = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(HERE, "..", "fixtures", "tiny-qwen3"),
                                                      torch_dtype=torch.bfloat16)
sd = {k: v for k, v in m.state_dict().items() if k != "lm_head.weight"}   # tied: not saved
split = split_torch_state_dict_into_shards(sd, max_shard_size=20000)
out = {"order": list(sd.keys()), "total_size": split.metadata["total_size"], "weight_map": split.tensor_to_filename}
with open(os.path.join(HERE, "fixtures", "shards_tiny_qwen3_bf16_20000.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(len(split.filename_to_tensors), "shards")
