#!/usr/bin/env python3
"""PyTorch nanoGPT beside `nanoreward bench` on a GPU (scripts/gpu_check.sh runs it).

Imports nanoGPT's model.py from --nanogpt (not copied here), builds the same shapes as our bench
configs with random weights and random tokens, and prints one JSON line per measurement:

  training: seconds per step (AdamW, as nanoGPT's train.py; bf16 through torch.autocast with f32
            master weights, as nanoGPT does), tokens/s and MFU against --peak_tflops (H200 bf16
            dense: 989);
  seed loop: the seed's reward-data loop, one sample at a time through nanoGPT's generate()
            (no KV cache): cut at a random K in [1, N-1], generate N-K tokens -> samples/s.

Runs on the CPU too (--device cpu, tiny shapes) so the script itself is checked without a GPU.
"""
import argparse
import json
import os
import random
import sys
import time

CONFIGS = {
    # name: n_layer, n_head, n_embd, block_size, batch_size, vocab_size
    "B": (6, 6, 384, 256, 64, 65),
    "D": (12, 12, 768, 1024, 8, 50304),
    "tiny": (2, 2, 32, 32, 4, 65),
}


def flops_per_token(config):
    """nanoGPT's estimate_mfu count for a CONFIGS entry: 6N + 12·L·H·Q·T, N without wpe or
    biases (bias = False), the lm_head tied to wte. scripts/gpu_check.sh uses it for our rows."""
    n_layer, n_head, n_embd, block, _, vocab = CONFIGS[config]
    n = vocab * n_embd + n_layer * (12 * n_embd * n_embd + 2 * n_embd) + n_embd
    return 6 * n + 12 * n_layer * n_head * (n_embd // n_head) * block


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanogpt", required=True, help="directory holding nanoGPT's model.py")
    p.add_argument("--config", choices=sorted(CONFIGS), default="B")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--compile", type=int, choices=[0, 1], default=0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed_loop", type=int, default=0,
                   help="also time the seed's reward-data loop on this many samples")
    p.add_argument("--peak_tflops", type=float, default=989.0)
    return p.parse_args()


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    a = parse()
    sys.path.insert(0, os.path.abspath(a.nanogpt))
    import torch
    from model import GPT, GPTConfig

    n_layer, n_head, n_embd, block, batch, vocab = CONFIGS[a.config]
    batch = a.batch_size or batch
    torch.manual_seed(0)
    cfg = GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block,
                    vocab_size=vocab, dropout=0.0, bias=False)
    model = GPT(cfg).to(a.device)
    opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda" if "cuda" in a.device else "cpu")
    step_model = torch.compile(model) if a.compile else model
    autocast = torch.autocast(device_type="cuda" if "cuda" in a.device else "cpu",
                              dtype=torch.bfloat16, enabled=a.dtype == "bfloat16")
    x = torch.randint(0, vocab, (batch, block), device=a.device)
    y = torch.randint(0, vocab, (batch, block), device=a.device)
    times = []
    for i in range(a.warmup + a.steps):
        sync(torch, a.device)
        t0 = time.perf_counter()
        with autocast:
            _, loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(torch, a.device)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    dt = times[len(times) // 2]
    assert model.get_num_params() * 6 + 12 * n_layer * n_embd * block == flops_per_token(a.config)
    tok_s = batch * block / dt
    print(json.dumps({
        "who": "pytorch", "config": a.config, "batch_size": batch, "dtype": a.dtype,
        "compile": bool(a.compile), "device": a.device, "step_ms": dt * 1e3,
        "tokens_per_s": tok_s,
        "mfu": tok_s * flops_per_token(a.config) / (a.peak_tflops * 1e12),
        "steps": a.steps, "torch": torch.__version__,
    }), flush=True)
    if a.seed_loop:
        seed_loop(torch, model, a, block, vocab)


def seed_loop(torch, model, a, block, vocab):
    """The seed's reward-data generation: one sample at a time, nanoGPT's generate()."""
    model.eval()
    rng = random.Random(0)
    sync(torch, a.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(a.seed_loop):
            k = rng.randint(1, block - 1)
            idx = torch.randint(0, vocab, (1, k), device=a.device)
            model.generate(idx, block - k, temperature=1.0)
    sync(torch, a.device)
    dt = time.perf_counter() - t0
    print(json.dumps({
        "who": "pytorch-seed-loop", "config": a.config, "device": a.device,
        "samples": a.seed_loop, "samples_per_s": a.seed_loop / dt,
    }), flush=True)


if __name__ == "__main__":
    main()
