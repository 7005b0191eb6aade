"""Read and write PyTorch's torch.save zip format with the standard library only (plus NumPy for
reading into arrays). Used to make test fixtures and to check nanoreward's .pt files without
PyTorch installed.

A torch.save file is a zip archive holding `<name>/data.pkl` (a protocol-2 pickle in which each
tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`
and each storage a persistent id `('storage', torch.FloatStorage, key, 'cpu', numel)`),
`<name>/data/<key>` (the raw little-endian storage bytes), `<name>/byteorder` and
`<name>/version`.
"""

import collections
import io
import pickle
import struct
import zipfile


class Tensor:
    """A float32 tensor to write: row-major values and a shape."""

    def __init__(self, values, shape):
        self.values = list(values)
        self.shape = tuple(shape)


def _strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


class _Writer:
    def __init__(self):
        self.out = io.BytesIO()
        self.storages = []

    def op(self, b):
        self.out.write(b)

    def global_(self, module, name):
        self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def value(self, v):
        if v is None:
            self.op(b"N")
        elif v is True:
            self.op(b"\x88")
        elif v is False:
            self.op(b"\x89")
        elif isinstance(v, int):
            if -(2**31) <= v < 2**31:
                self.op(b"J" + struct.pack("<i", v))
            else:
                raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                self.op(b"\x8a" + bytes([len(raw)]) + raw)
        elif isinstance(v, float):
            self.op(b"G" + struct.pack(">d", v))
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            self.op(b"X" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(v, tuple):
            self.op(b"(")
            for x in v:
                self.value(x)
            self.op(b"t")
        elif isinstance(v, collections.OrderedDict):
            self.global_("collections", "OrderedDict")
            self.op(b")R")
            self.items(v)
        elif isinstance(v, dict):
            self.op(b"}")
            self.items(v)
        elif isinstance(v, Tensor):
            self.tensor(v)
        else:
            raise TypeError(f"cannot pickle {type(v)}")

    def items(self, d):
        if d:
            self.op(b"(")
            for k, x in d.items():
                self.value(k)
                self.value(x)
            self.op(b"u")

    def tensor(self, t):
        key = str(len(self.storages))
        self.storages.append(struct.pack(f"<{len(t.values)}f", *t.values))
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.op(b"(")
        self.op(b"(")
        self.value("storage")
        self.global_("torch", "FloatStorage")
        self.value(key)
        self.value("cpu")
        self.value(len(t.values))
        self.op(b"tQ")
        self.value(0)
        self.value(t.shape)
        self.value(_strides(t.shape))
        self.value(False)
        self.value(collections.OrderedDict())
        self.op(b"tR")


def save(obj, path, archive="archive"):
    """Writes `obj` (dicts, OrderedDicts, tuples, str, int, float, bool, None, Tensor) like torch.save."""
    w = _Writer()
    w.op(b"\x80\x02")
    w.value(obj)
    w.op(b".")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", w.out.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for i, s in enumerate(w.storages):
            z.writestr(f"{archive}/data/{i}", s)
        z.writestr(f"{archive}/version", "3\n")


class _Storage:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


def load(path):
    """Reads a torch.save zip file into Python objects with NumPy arrays for tensors."""
    import numpy as np

    dtypes = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
              "LongStorage": np.int64, "IntStorage": np.int32}
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    root = pkl[: -len("data.pkl")]

    def rebuild(storage, offset, size, stride, *_):
        raw = z.read(root + "data/" + storage.key)
        flat = np.frombuffer(raw, dtype=storage.dtype)
        item = flat.itemsize
        return np.lib.stride_tricks.as_strided(
            flat[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)).copy()

    class U(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return rebuild
            if module == "torch" and name in dtypes:
                return dtypes[name]
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

        def persistent_load(self, pid):
            kind, dtype, key, _location, _numel = pid
            assert kind == "storage"
            return _Storage(dtype, key)

    return U(io.BytesIO(z.read(pkl))).load()
