"""Loads two meta.pkl files with Python's pickle and exits 0 when they hold the same dict.

usage: python3 scripts/check_meta.py A/meta.pkl B/meta.pkl
"""
import pickle
import sys

a = pickle.load(open(sys.argv[1], "rb"))
b = pickle.load(open(sys.argv[2], "rb"))
assert a == b, "meta.pkl dicts differ"
assert set(a) == {"vocab_size", "itos", "stoi"}, sorted(a)
assert all(isinstance(k, int) for k in a["itos"]) and all(isinstance(k, str) for k in a["stoi"])
print(f"same dict: vocab_size {a['vocab_size']}")
