"""Replays examples/onestep.rs in PyTorch nanoGPT and prints how far the weights drifted apart.

    cargo run --release --example onestep -- TRAIN_BIN OUT_DIR STEPS
    python scripts/compare_step.py OUT_DIR TRAIN_BIN STEPS

Same initial weights (OUT_DIR/init), same batches, same AdamW (nanoGPT's configure_optimizers) and
clipping; needs PyTorch and ../shared/bench/nanogpt/model.py, so it is a manual check, not part of CI.
"""
import json, struct, sys, numpy as np, torch
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "nanogpt"))
from model import GPT, GPTConfig
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8+n]); out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]; out[k] = torch.from_numpy(np.frombuffer(b[8+n+s:8+n+e], dtype=np.float32).copy().reshape(v["shape"]))
    return out
d, data = sys.argv[1], sys.argv[2]; steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1
model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False))
sd = load(f"{d}/init/model.safetensors"); sd["lm_head.weight"] = sd["transformer.wte.weight"]
missing, unexpected = model.load_state_dict(sd, strict=False); print("missing", missing, "unexpected", unexpected)
opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
tok = np.memmap(data, dtype=np.uint16, mode="r")
for s in range(steps):
    x = torch.stack([torch.from_numpy(tok[1000*r+7*s:1000*r+7*s+64].astype(np.int64)) for r in range(12)])
    y = torch.stack([torch.from_numpy(tok[1000*r+7*s+1:1000*r+7*s+65].astype(np.int64)) for r in range(12)])
    _, loss = model(x, y); loss.backward()
    n = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)
    print(f"step {s}: loss {loss.item():.6f} grad_norm {n.item():.6f}")
after = load(f"{d}/after/model.safetensors"); msd = model.state_dict()
worst = max((float((msd[k] - v).abs().max()), k) for k, v in after.items()); print("max |torch - ours| after steps:", worst)
