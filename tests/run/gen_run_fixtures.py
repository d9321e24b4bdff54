#!/usr/bin/python3
"""Reference fixtures for tests/run (run with /usr/bin/python3 tests/run/gen_run_fixtures.py:
Debian's torch 1.13, transformers 4.51, peft 0.15). The C tests never run Python.

Peers: transformers' Qwen3ForCausalLM on tests/fixtures/tiny-qwen3 (fp32, eager attention) and
peft's LoRA (r=4, alpha=8, the seven projections, dropout 0) on the same weights and batch.

fixtures/step.safetensors
  batch.tokens, batch.pos, batch.labels  I32 (B, T) labels already shifted, -100 ignored
  full.loss                F64 (1,) mean CE over the target tokens (sum / count)
  full.grad.<param>        F32 gradients of that mean for every parameter
  lora.<module>.lora_A.weight / lora_B.weight   F32 the adapter values used (B non-zero)
  lora.loss                F64 (1,)
  lora.grad.<module>.lora_{A,B}.weight          F32
  adamw.losses             F64 (4,) full fine-tuning: the loss before each of 3 AdamW updates
                           (lr 1e-3, wd 0.01 except norms, clip 1.0) and after the last one,
                           alternating batch 0 (rows 0-1) and batch 1 (rows 2-3)
  adamw.batch.tokens/labels/pos  I32 (4, T) the rows of those two batches
  lora_adamw.losses        F64 (4,) the same for LoRA (peft, the adapter values above; lr 1e-2,
                           wd 0.01, clip 1.0, transformers' cosine-with-min-lr schedule: warmup 2,
                           8 steps, min_lr 1e-3) — the settings of lora.trl
  rslora.loss              F64 (1,) the batch's loss with use_rslora (scale alpha/sqrt(r))
  dpo.tokens/pos/labels    I32 (4, T) two preference pairs: chosen rows 0-1, rejected rows 2-3
                           (the same prompt per pair, prompt masked)
  dpo.loss                 F64 (1,) DPO (sigmoid, beta 0.1) of the peft policy (the adapter values
                           above) against the reference = the same model with adapters disabled,
                           mean over the pairs (TRL's formula)
  dpo.grad.<module>.lora_{A,B}.weight   F32 its gradients
  kd.loss                  F64 (1,) distillation (temperature 2, alpha 0.5) of the peft student
                           from the base model as teacher on the batch: (alpha T^2 sum KL(teacher_T
                           || student_T) + (1 - alpha) sum CE) over target tokens / their count
  kd.grad.<module>.lora_{A,B}.weight    F32
  qlora.loss               F64 (1,) the LoRA case with the seven projections' base weights stored
                           as NF4 by bitsandbytes' quantize_4bit (blocks of 64) and dequantized
                           (codes * absmax over the flat weight, the format's layout)
  qlora.grad.<module>.lora_{A,B}.weight F32
  qlora.q_proj0.packed / .absmax   U8 / F32  bitsandbytes' codes and absmax of layer 0's q_proj
"""
import os
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
import peft

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "fixtures", "tiny-qwen3")
OUT = os.path.join(HERE, "fixtures")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
B, T, V = 2, 10, 378


def load():
    m = transformers.AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32,
                                                          attn_implementation="eager")
    return m.train()


def batch(gen, rows):
    tokens = torch.randint(0, V, (rows, T), generator=gen)
    pos = torch.arange(T).unsqueeze(0).expand(rows, T).contiguous()
    labels = torch.full((rows, T), -100, dtype=torch.long)
    labels[:, :-1] = tokens[:, 1:]
    for r in range(rows):          # uneven prompt masks: different target counts per row
        labels[r, : 1 + 2 * r] = -100
    return tokens, pos, labels


def lora_model(rslora):
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                          task_type="CAUSAL_LM", use_rslora=rslora)
    pm = peft.get_peft_model(load(), cfg)
    g2 = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g2))
    return pm


def mean_loss(model, tokens, pos, labels):
    logits = model(input_ids=tokens, position_ids=pos).logits.float()
    s = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                        reduction="sum")
    return s / (labels != -100).sum()


def decay(name):
    parts = name.split(".")
    return not ("bias" in name or "layernorm" in name or "rmsnorm" in name or
                any(p.endswith("norm") for p in parts))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    tokens, pos, labels = batch(gen, B)
    t = {"batch.tokens": tokens.int(), "batch.pos": pos.int(), "batch.labels": labels.int()}

    # full fine-tuning: loss and every gradient
    m = load()
    loss = mean_loss(m, tokens, pos, labels)
    loss.backward()
    t["full.loss"] = loss.detach().double().reshape(1)
    for n, p in m.named_parameters():
        t["full.grad." + n] = p.grad.detach().float().contiguous()

    # LoRA with peft: A and B set to random values so that both get gradients
    pm = lora_model(False)
    loss = mean_loss(pm, tokens, pos, labels)
    loss.backward()
    t["lora.loss"] = loss.detach().double().reshape(1)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            name = n.replace("base_model.model.", "", 1).replace(".default", "")
            t["lora." + name] = p.detach().float().contiguous()
            t["lora.grad." + name] = p.grad.detach().float().contiguous()

    # a few AdamW steps (full fine-tuning)
    m = load()
    tk, ps, lb = batch(gen, 4)
    t["adamw.batch.tokens"], t["adamw.batch.pos"], t["adamw.batch.labels"] = tk.int(), ps.int(), lb.int()
    groups = [{"params": [p for n, p in m.named_parameters() if decay(n)], "weight_decay": 0.01},
              {"params": [p for n, p in m.named_parameters() if not decay(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for step in range(4):
        r = slice(0, 2) if step % 2 == 0 else slice(2, 4)
        opt.zero_grad()
        loss = mean_loss(m, tk[r], ps[r], lb[r])
        losses.append(loss.item())
        if step == 3:
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    t["adamw.losses"] = torch.tensor(losses, dtype=torch.float64)

    # LoRA AdamW with lora.trl's settings
    pm = lora_model(False)
    params = [p for n, p in pm.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    sched = transformers.optimization.get_cosine_with_min_lr_schedule_with_warmup(opt, 2, 8, min_lr=1e-3)
    llosses = []
    for step in range(4):
        r = slice(0, 2) if step % 2 == 0 else slice(2, 4)
        opt.zero_grad()
        loss = mean_loss(pm, tk[r], ps[r], lb[r])
        llosses.append(loss.item())
        if step == 3:
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    t["lora_adamw.losses"] = torch.tensor(llosses, dtype=torch.float64)

    with torch.no_grad():
        t["rslora.loss"] = mean_loss(lora_model(True), tokens, pos, labels).double().reshape(1)

    # DPO: two pairs sharing a prompt each; the reference is the policy without adapters
    P, Rn = 4, T - 4
    dt = torch.zeros((4, T), dtype=torch.long)
    dl = torch.full((4, T), -100, dtype=torch.long)
    for pair in range(2):
        prompt = torch.randint(0, V, (P,), generator=gen)
        for side in range(2):
            row = pair + 2 * side
            resp = torch.randint(0, V, (Rn,), generator=gen)
            seq = torch.cat([prompt, resp])
            dt[row] = seq
            dl[row, P - 1:T - 1] = seq[P:]          # targets: the response tokens
    dp = torch.arange(T).unsqueeze(0).expand(4, T).contiguous()
    t["dpo.tokens"], t["dpo.pos"], t["dpo.labels"] = dt.int(), dp.int(), dl.int()

    def seq_logp(model):
        lg = model(input_ids=dt, position_ids=dp).logits.float().log_softmax(-1)
        m = dl != -100
        g = lg.gather(-1, dl.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (g * m).sum(-1)

    pm = lora_model(False)
    with torch.no_grad(), pm.disable_adapter():
        ref = seq_logp(pm)
    pol = seq_logp(pm)
    z = 0.1 * ((pol[:2] - ref[:2]) - (pol[2:] - ref[2:]))
    loss = -F.logsigmoid(z).mean()
    loss.backward()
    t["dpo.loss"] = loss.detach().double().reshape(1)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["dpo.grad." + n.replace("base_model.model.", "", 1).replace(".default", "")] = p.grad.detach().float().contiguous()

    # KD: the base model teaches the adapted student
    pm = lora_model(False)
    Tk, alpha = 2.0, 0.5
    with torch.no_grad(), pm.disable_adapter():
        tl = pm(input_ids=tokens, position_ids=pos).logits.float()
    sl = pm(input_ids=tokens, position_ids=pos).logits.float()
    mask = (labels != -100).float().unsqueeze(-1)
    lt, ls_ = (tl / Tk).log_softmax(-1), (sl / Tk).log_softmax(-1)
    kl = (lt.exp() * (lt - ls_)).sum(-1, keepdim=True)
    ce = F.cross_entropy(sl.reshape(-1, sl.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")
    loss = (alpha * Tk * Tk * (kl * mask).sum() + (1 - alpha) * ce) / (labels != -100).sum()
    loss.backward()
    t["kd.loss"] = loss.detach().double().reshape(1)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["kd.grad." + n.replace("base_model.model.", "", 1).replace(".default", "")] = p.grad.detach().float().contiguous()

    # QLoRA: base projections through bitsandbytes' NF4 quantization
    import bitsandbytes.functional as bnbf
    nf4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)
    pm = lora_model(False)
    with torch.no_grad():
        for n, mod in pm.named_modules():
            if n.split(".")[-1] in TARGETS and hasattr(mod, "base_layer"):
                w = mod.base_layer.weight
                q, st = bnbf.quantize_4bit(w.data.contiguous(), blocksize=64, quant_type="nf4", compress_statistics=False)
                b = q.reshape(-1)
                codes = torch.stack([b >> 4, b & 15], dim=1).reshape(-1).long()[: w.numel()]
                deq = nf4[codes] * st.absmax.float().repeat_interleave(64)[: w.numel()]
                if n.endswith("layers.0.self_attn.q_proj"):
                    t["qlora.q_proj0.packed"] = b.contiguous()
                    t["qlora.q_proj0.absmax"] = st.absmax.float().contiguous()
                w.copy_(deq.reshape(w.shape))
    loss = mean_loss(pm, tokens, pos, labels)
    loss.backward()
    t["qlora.loss"] = loss.detach().double().reshape(1)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["qlora.grad." + n.replace("base_model.model.", "", 1).replace(".default", "")] = p.grad.detach().float().contiguous()

    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(OUT, "step.safetensors"),
              metadata={"format": "pt", "peft": peft.__version__, "transformers": transformers.__version__})
    print("wrote", os.path.join(OUT, "step.safetensors"), "losses", losses, "lora", llosses)


if __name__ == "__main__":
    main()
