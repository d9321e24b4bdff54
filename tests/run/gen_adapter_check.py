#!/usr/bin/python3
"""Checks that an adapter exported by `trlc run` loads in peft and means the same thing there
(run with /usr/bin/python3 tests/run/gen_adapter_check.py; the C test never runs Python).

fixtures/trlc-adapter/ is the adapter/ directory of `trlc run tests/run/lora.trl` (8 LoRA steps
on the tiny Qwen3). This script loads it with peft.PeftModel.from_pretrained on
tests/fixtures/tiny-qwen3, checks that every lora_A/lora_B tensor peft holds equals the file,
and writes fixtures/trlc_adapter.safetensors: the mean loss of the adapted model on the batch of
step.safetensors ("loss", F64 (1,)). test_run.c loads the same adapter into the trainer and
compares its loss with peft's.
"""
import os
import torch
import torch.nn.functional as F
import transformers
import peft
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "fixtures", "tiny-qwen3")
ADAPTER = os.path.join(HERE, "fixtures", "trlc-adapter")


def main():
    base = transformers.AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32,
                                                             attn_implementation="eager")
    model = peft.PeftModel.from_pretrained(base, ADAPTER).eval()
    saved = load_file(os.path.join(ADAPTER, "adapter_model.safetensors"))
    held = {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}
    assert set(held) == set(saved), (sorted(held)[:3], sorted(saved)[:3])
    for n, p in held.items():
        assert torch.equal(p.detach(), saved[n]), n
    b = load_file(os.path.join(HERE, "fixtures", "step.safetensors"))
    tokens, pos, labels = b["batch.tokens"].long(), b["batch.pos"].long(), b["batch.labels"].long()
    with torch.no_grad():
        logits = model(input_ids=tokens, position_ids=pos).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=-100, reduction="sum") / (labels != -100).sum()
    save_file({"loss": loss.double().reshape(1)}, os.path.join(HERE, "fixtures", "trlc_adapter.safetensors"))
    print("peft loaded", len(held), "tensors; loss", loss.item())


if __name__ == "__main__":
    main()
