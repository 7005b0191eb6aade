"""nanoGPT train.py's loop for the CPU quick start (config A), on ../shared/bench/nanogpt/model.py,
with a final 400-batch val evaluation: the PyTorch side of BENCHMARKS.md's quick-start table.

    python scripts/nanogpt_quickstart.py SEED [INIT.pt] [DATA_DIR]

Needs PyTorch (not a dependency of the project or its CI). INIT.pt (a nanoGPT checkpoint, e.g. from
`nanoreward export-nanogpt`) replaces the initial weights; DATA_DIR defaults to data/shakespeare_char.
"""
import math, os, sys, time, numpy as np, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "nanogpt"))
from model import GPT, GPTConfig
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1337
torch.manual_seed(seed); torch.set_num_threads(2)
data_dir = sys.argv[3] if len(sys.argv) > 3 else "data/shakespeare_char"
train = np.memmap(f"{data_dir}/train.bin", dtype=np.uint16, mode="r")
val = np.memmap(f"{data_dir}/val.bin", dtype=np.uint16, mode="r")
bs, T = 12, 64
def get_batch(d):
    ix = torch.randint(len(d) - T, (bs,))
    x = torch.stack([torch.from_numpy(d[i:i+T].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(d[i+1:i+1+T].astype(np.int64)) for i in ix])
    return x, y
model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False))
if len(sys.argv) > 2 and sys.argv[2]: print(model.load_state_dict(torch.load(sys.argv[2])["model"]))
opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
def lr_at(it, lr=1e-3, warm=100, decay=2000, mn=1e-4):
    if it < warm: return lr * (it + 1) / (warm + 1)
    if it > decay: return mn
    r = (it - warm) / (decay - warm); return mn + 0.5 * (1 + math.cos(math.pi * r)) * (lr - mn)
@torch.no_grad()
def est():
    model.eval(); out = {}
    for name, d in (("train", train), ("val", val)):
        out[name] = float(np.mean([model(*get_batch(d))[1].item() for _ in range(20)]))
    model.train(); return out
t0 = time.time()
for it in range(2001):
    for g in opt.param_groups: g["lr"] = lr_at(it)
    if it % 250 == 0:
        e = est(); print(f"step {it}: train {e['train']:.4f} val {e['val']:.4f} ({time.time()-t0:.0f}s)", flush=True)
    if it == 2000: break
    x, y = get_batch(train)
    _, loss = model(x, y); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)
model.eval()
with torch.no_grad():
    vl=[model(*get_batch(val))[1].item() for _ in range(400)]
print(f"final val loss over 400 batches: {np.mean(vl):.4f} ± {np.std(vl)/np.sqrt(400):.4f}", flush=True)
