"""Reads an `export-hf` directory with Hugging Face's own libraries (no PyTorch needed): the
config through transformers' AutoConfig and the GPT-2 tokenizer files through AutoTokenizer
(or, without transformers, through the tokenizers package's byte-level BPE), and prints the
model type, the vocabulary size and the ids of a text file as JSON.

    python3 scripts/hf_check.py HF_DIR TEXT_FILE [--logits 1,5,2,9]

With --logits and PyTorch installed, also loads the weights with GPT2LMHeadModel.from_pretrained
and prints its logits for those ids (`logits`: [T][vocab]; null without torch). Exits 3 with a
message when neither library is installed.
"""

import json
import os
import sys


def torch_logits(d, ids):
    """GPT2LMHeadModel's logits for ids, or None without torch."""
    try:
        import torch
        from transformers import GPT2LMHeadModel
    except ImportError:
        return None
    m = GPT2LMHeadModel.from_pretrained(d).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].tolist()


def main(d, text_path, ids=None):
    text = open(text_path, encoding="utf-8").read()
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError:
        AutoConfig = None
    if AutoConfig is not None:
        cfg = AutoConfig.from_pretrained(d)
        tok = AutoTokenizer.from_pretrained(d)
        out = dict(library="transformers", model_type=cfg.model_type, vocab_size=cfg.vocab_size,
                   n_positions=cfg.n_positions, ids=tok(text)["input_ids"])
    else:
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        except ImportError:
            print("neither transformers nor tokenizers is installed", file=sys.stderr)
            sys.exit(3)
        cfg = json.load(open(os.path.join(d, "config.json")))
        tok = Tokenizer(models.BPE.from_file(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        out = dict(library="tokenizers", model_type=cfg["model_type"], vocab_size=cfg["vocab_size"],
                   n_positions=cfg["n_positions"], ids=tok.encode(text).ids)
    out["logits"] = torch_logits(d, ids) if ids else None
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 5) or (len(sys.argv) == 5 and sys.argv[3] != "--logits"):
        sys.exit(__doc__)
    ids = [int(i) for i in sys.argv[4].split(",")] if len(sys.argv) == 5 else None
    main(sys.argv[1], sys.argv[2], ids)
