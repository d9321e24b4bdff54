#!/usr/bin/env python3
"""Writes the reference fixtures of tests/lower from Hugging Face transformers (the peer
implementation of llama, qwen2 and qwen3): for each architecture, a tiny model with random
weights, a batch of tokens and next-token labels, the logits of the HF forward pass in float64,
and the summed cross-entropy loss as torch computes it.

One safetensors file per case, fixtures/<case>.safetensors:
  model.* / lm_head.weight   F32   the weights (HF names; no lm_head when tied)
  test.tokens, test.pos      I32   (B, T)
  test.labels                I32   (B, T) shifted targets, -100 where ignored
  test.logits                F64   (B, T, V) reference logits
  test.loss                  F64   (1,) sum over targets of CE (with label smoothing)
  test.logp                  F64   (B, 1) sequence log-probs of the labels
  test.ref_logp              F64   (B, 1) made-up reference log-probs
  test.dpo_sigmoid/hinge/ipo F64   (1,) DPO losses (beta 0.1) of the pair (row 0 chosen, row 1 rejected)
  test.token_logp            F64   (B, T) per-token log-probs at temperature 0.9
  test.grpo_*                F64   GRPO inputs (old_logp, ref_logp, adv, weight) and TRL's loss
  test.kd_teacher, kd_loss   F64   teacher logits (B, T, V) and the distillation loss (T 2, alpha 0.5)
  __metadata__: arch, tie, label_smoothing, rope_theta, eps, rope_scaling ("factor low high L" or "")
The C test (test_lower.c) never runs Python; rerun this script only to regenerate.
Requires: pip install torch transformers safetensors.
"""
import os
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

DIMS = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, intermediate_size=48, max_position_embeddings=64,
            rms_norm_eps=1e-6)

CASES = [
    # name, config class, extra config, label smoothing
    ("llama", transformers.LlamaConfig, dict(rope_theta=10000.0, tie_word_embeddings=False), 0.0),
    ("qwen2", transformers.Qwen2Config, dict(rope_theta=10000.0, tie_word_embeddings=False), 0.0),
    ("qwen3", transformers.Qwen3Config, dict(rope_theta=1000000.0, tie_word_embeddings=True), 0.1),
    # Llama 3.x RoPE scaling; original_max_position_embeddings 16 puts the head's frequencies in
    # all three bands (kept, smoothed, divided by factor)
    ("llama3", transformers.LlamaConfig, dict(rope_theta=10000.0, tie_word_embeddings=True,
                                              rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                                high_freq_factor=4.0,
                                                                original_max_position_embeddings=16)), 0.0),
]

B, T = 2, 8


def make(name, cls, extra, ls, seed):
    torch.manual_seed(seed)
    kw = dict(DIMS)
    kw.update(extra)
    if "rope_theta" in kw:   # transformers >= 5 reads rope_parameters; older versions rope_theta
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": kw["rope_theta"]}
        if "rope_scaling" in kw:
            kw["rope_parameters"] = dict(kw["rope_scaling"], rope_theta=kw["rope_theta"])
    cfg = cls(**kw)
    cfg._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(cfg).double().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                v = 1.0 + 0.1 * torch.randn_like(p)
            elif pname.endswith(".bias"):
                v = 0.1 * torch.randn_like(p)
            else:
                v = 0.2 * torch.randn_like(p)
            p.copy_(v.float().double())   # the fixture stores f32: use exactly those values
    tokens = torch.randint(0, DIMS["vocab_size"], (B, T))
    pos = torch.arange(T).unsqueeze(0).expand(B, T)
    labels = torch.full((B, T), -100, dtype=torch.long)
    labels[:, :-1] = tokens[:, 1:]
    labels[0, :3] = -100   # a masked prompt
    labels[1, :2] = -100
    with torch.no_grad():
        logits = model(input_ids=tokens, position_ids=pos).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=-100, reduction="sum", label_smoothing=ls)
    # DPO on the same two rows as one preference pair (row 0 chosen, row 1 rejected), as TRL
    # computes it: sequence log-probs of the labels, reference log-probs given.
    with torch.no_grad():
        logp = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                ignore_index=-100, reduction="none").reshape(B, T).sum(1, keepdim=True)
    ref_logp = (logp + 0.5 * torch.randn(B, 1, dtype=torch.float64)).detach()
    beta = 0.1
    margin = (logp[0] - ref_logp[0]) - (logp[1] - ref_logp[1])
    dpo_sigmoid = -F.logsigmoid(beta * margin)
    dpo_hinge = torch.relu(1 - beta * margin)
    # IPO as TRL computes it: length-normalised log-probs (policy and reference alike)
    with torch.no_grad():
        ntok = (labels != -100).sum(1, keepdim=True).clamp(min=1).double()
        avg, ref_avg = logp / ntok, ref_logp / ntok
        ipo_margin = (avg[0] - ref_avg[0]) - (avg[1] - ref_avg[1])
        dpo_ipo = (ipo_margin - 1 / (2 * beta)) ** 2
    # GRPO as TRL's GRPOTrainer computes it (loss_type "grpo": per-sequence token mean, then the
    # mean over sequences) at temperature 0.9, beta 0.04, epsilon 0.2, from given old / ref
    # per-token log-probs and advantages.
    temp, gbeta, eps = 0.9, 0.04, 0.2
    with torch.no_grad():
        mask = (labels != -100).double()
        lsm = torch.log_softmax(logits / temp, dim=-1)
        tok_logp = lsm.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
        old_logp = (tok_logp + 0.3 * torch.randn(B, T, dtype=torch.float64)) * mask
        gref_logp = (tok_logp + 0.2 * torch.randn(B, T, dtype=torch.float64)) * mask
        adv = torch.tensor([[0.7], [-0.7]], dtype=torch.float64)
        coef1 = torch.exp(tok_logp - old_logp)
        coef2 = torch.clamp(coef1, 1 - eps, 1 + eps)
        per_token = -torch.min(coef1 * adv, coef2 * adv)
        d = gref_logp - tok_logp
        per_token = per_token + gbeta * (torch.exp(d) - d - 1)
        grpo = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
        weight = mask / mask.sum(-1, keepdim=True).clamp(min=1)
    # Knowledge distillation (temperature 2, alpha 0.5) from made-up teacher logits:
    # alpha T^2 sum_targets KL(p_teacher || p_student) + (1 - alpha) sum_targets CE.
    kd_t, kd_a = 2.0, 0.5
    with torch.no_grad():
        teacher = logits + 0.5 * torch.randn_like(logits)
        lt = torch.log_softmax(teacher / kd_t, -1)
        lsm_s = torch.log_softmax(logits / kd_t, -1)
        kl = (lt.exp() * (lt - lsm_s)).sum(-1)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                             reduction="none").reshape(B, T)
        kd = kd_a * kd_t * kd_t * (kl * mask).sum() + (1 - kd_a) * (ce * mask).sum()
    tie = extra["tie_word_embeddings"]
    tensors = {}
    for pname, p in model.state_dict().items():
        if tie and pname == "lm_head.weight":
            continue
        tensors[pname] = p.float().contiguous()
    tensors["test.tokens"] = tokens.int().contiguous()
    tensors["test.pos"] = pos.int().contiguous()
    tensors["test.labels"] = labels.int().contiguous()
    tensors["test.logits"] = logits.contiguous()
    tensors["test.loss"] = loss.reshape(1).contiguous()
    tensors["test.logp"] = logp.contiguous()
    tensors["test.ref_logp"] = ref_logp.contiguous()
    tensors["test.dpo_sigmoid"] = dpo_sigmoid.reshape(1).contiguous()
    tensors["test.dpo_hinge"] = dpo_hinge.reshape(1).contiguous()
    tensors["test.dpo_ipo"] = dpo_ipo.reshape(1).contiguous()
    tensors["test.token_logp"] = tok_logp.contiguous()
    tensors["test.grpo_old_logp"] = old_logp.contiguous()
    tensors["test.grpo_ref_logp"] = gref_logp.contiguous()
    tensors["test.grpo_adv"] = adv.contiguous()
    tensors["test.grpo_weight"] = weight.contiguous()
    tensors["test.grpo_loss"] = grpo.reshape(1).contiguous()
    tensors["test.kd_teacher"] = teacher.contiguous()
    tensors["test.kd_loss"] = kd.reshape(1).contiguous()
    rs = extra.get("rope_scaling")
    meta = {"format": "pt", "arch": "llama" if name == "llama3" else name,
            "rope_scaling": "" if not rs else "%r %r %r %r" % (rs["factor"], rs["low_freq_factor"],
                                                               rs["high_freq_factor"],
                                                               rs["original_max_position_embeddings"]), "tie": "1" if tie else "0", "label_smoothing": repr(ls),
            "rope_theta": repr(kw["rope_theta"]), "eps": repr(kw["rms_norm_eps"]),
            "transformers": transformers.__version__, "torch": torch.__version__}
    path = os.path.join(OUT, name + ".safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"{path}: loss {loss.item():.10g}, {len(tensors)} tensors")


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, cls, extra, ls) in enumerate(CASES):
        make(name, cls, extra, ls, seed=1234 + i)


if __name__ == "__main__":
    main()
