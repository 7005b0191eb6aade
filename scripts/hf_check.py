"""Reads an `export-hf` directory with Hugging Face's own libraries (no PyTorch needed): the
config through transformers' AutoConfig and the GPT-2 tokenizer files through AutoTokenizer
(or, without transformers, through the tokenizers package's byte-level BPE), and prints the
model type, the vocabulary size and the ids of a text file as JSON.

    python3 scripts/hf_check.py HF_DIR TEXT_FILE

Exits 3 with a message when neither library is installed.
"""

import json
import os
import sys


def main(d, text_path):
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
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
