"""Writes the weight-file fixtures of tests/weights_*.test.ts into tests/fixtures/weights/.

Run with Debian's PyTorch: /usr/bin/python3 tools/make_weight_fixtures.py

Each <case>.pth is a real torch.save file; expected.safetensors (written by hand below, not by
the code under test) holds every case's tensors as float32 under "<case>/<key>", after the reader
unwraps nesting and the "module." prefix, and its metadata maps each case to its keys in order.

legacy_<case>.pth are the same objects in the legacy format (PyTorch < 1.6, which torch.save still
writes with _use_new_zipfile_serialization=False), read against the same expected tensors;
legacy_storage_views.pth has storages that are views of a larger one (view_metadata), which only
PyTorch < 0.4 wrote: it is pickled here by hand the way _legacy_save does, and checked with torch.load.
"""
import io
import pickle
import sys
import json
import os
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "weights")


class Evil:
    """Pickles as a call to builtins.print: the reader must refuse it without running it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def values(shape, dtype=torch.float32, start=0.0):
    n = int(np.prod(shape)) if shape else 1
    return (torch.arange(n, dtype=torch.float64) * 0.37 - 1.5 + start).reshape(shape).to(dtype)


def cases():
    base = values([24], start=0.25)
    strided = values([4, 6], start=2.0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Linear(3, 2))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(values(list(p.shape), start=i))
        model[1].running_mean.copy_(values([3], start=5.0))
        model[1].num_batches_tracked.fill_(7)
    return {
        "dtypes": ({
            "f32": values([2, 3]),
            "f16": values([5], torch.float16, 0.1),
            "bf16": values([2, 2], torch.bfloat16, 0.3),
            "f64": values([3], torch.float64, 1.0 / 3.0),
            "i64": torch.tensor(12345, dtype=torch.int64),
            "i32": torch.tensor([-2, 0, 9], dtype=torch.int32),
            "u8": torch.tensor([0, 255], dtype=torch.uint8),
            "bool": torch.tensor([True, False]),
            "empty": torch.zeros(0, 3),
        }, {}),
        "views": ({
            "transposed": strided.t(),
            "shared_a": base[2:8].view(2, 3),
            "shared_b": base[10:14],
            "stepped": base[1::5],
        }, {}),
        "module": (model.state_dict(), {}),
        "protocol4": (OrderedDict([("w", values([2, 2])), ("b", values([2], torch.float16))]),
                      {"pickle_protocol": 4}),
        "nested": ({
            "epoch": 3,
            "optimizer": {"lr": 0.1, "betas": (0.9, 0.999)},
            "state_dict": OrderedDict([("module.fc.weight", values([2, 3])),
                                       ("module.fc.bias", values([2]))]),
        }, {}),
        "parameter": ({"p": nn.Parameter(values([3, 2])), "q": values([1])}, {}),
    }


def expected_tensors(obj):
    if "state_dict" in obj:
        obj = obj["state_dict"]
    keys = list(obj.keys())
    if all(k.startswith("module.") for k in keys):
        obj = OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return OrderedDict((k, v.detach().to(torch.float32).contiguous()) for k, v in obj.items())


LEGACY_CASES = ["dtypes", "views", "module", "nested", "parameter", "protocol4"]


def storage_views():
    """A legacy file whose tensors use views of one 24-element storage, and their values."""
    base = values([24], start=0.5)
    whole, part, tail = base.clone(), base[10:16].clone(), base[20:].clone().view(2, 2)
    views = {whole.data_ptr(): None, part.data_ptr(): ("view_part", 10, 6), tail.data_ptr(): ("view_tail", 20, 4)}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.storage.TypedStorage):
                return ("storage", torch.FloatStorage, "root", "cpu", 24, views[obj.data_ptr()])
            return None

    f = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, f, protocol=2)
    Pickler(f, protocol=2).dump(OrderedDict([("whole", whole), ("part", part), ("tail", tail)]))
    pickle.dump(["root"], f, protocol=2)
    f.write(struct.pack("<q", 24) + base.numpy().astype("<f4").tobytes())
    loaded = torch.load(io.BytesIO(f.getvalue()))
    expected = OrderedDict([("whole", base), ("part", base[10:16]), ("tail", base[20:].view(2, 2))])
    for k, v in expected.items():
        assert torch.equal(loaded[k], v), k
    return f.getvalue(), expected


def write_safetensors(path, tensors, metadata):
    """The safetensors layout by hand: u64 LE header length, JSON header, F32 data."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, t in tensors.items():
        blob = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def write_mixed_safetensors(path):
    """A safetensors file of every float dtype, and its expected float32 values."""
    items = {"f16": values([3], torch.float16, 0.1), "bf16": values([2, 2], torch.bfloat16, 0.3),
             "f64": values([2], torch.float64, 1.0 / 3.0), "i64": torch.tensor([-3, 4]),
             "f32": values([1, 2])}
    names = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
             torch.int64: "I64", torch.float32: "F32"}
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, t in items.items():
        blob = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return {k: v.to(torch.float32) for k, v in items.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    expected, keys = OrderedDict(), {}
    for case, (obj, kwargs) in cases().items():
        torch.save(obj, os.path.join(OUT, f"{case}.pth"), **kwargs)
        tensors = expected_tensors(obj)
        keys[case] = json.dumps(list(tensors.keys()))
        for k, v in tensors.items():
            expected[f"{case}/{k}"] = v
    for k, v in write_mixed_safetensors(os.path.join(OUT, "mixed.safetensors")).items():
        expected[f"mixed/{k}"] = v
    keys["mixed"] = json.dumps(["f16", "bf16", "f64", "i64", "f32"])
    all_cases = cases()
    for case in LEGACY_CASES:
        obj, kwargs = all_cases[case]
        path = os.path.join(OUT, f"legacy_{case}.pth")
        torch.save(obj, path, _use_new_zipfile_serialization=False, **kwargs)
        assert not torch.serialization._is_zipfile(open(path, "rb")), path
    data, tensors = storage_views()
    with open(os.path.join(OUT, "legacy_storage_views.pth"), "wb") as f:
        f.write(data)
    keys["legacy_storage_views"] = json.dumps(list(tensors.keys()))
    for k, v in tensors.items():
        expected[f"legacy_storage_views/{k}"] = v
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected, keys)

    torch.save({"w": values([2])}, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.jit.script(nn.Linear(2, 2)).save(os.path.join(OUT, "torchscript.pt"))
    torch.save({"w": values([2]), "x": Evil()}, os.path.join(OUT, "evil.pth"))
    torch.save({"w": values([2]), "x": Evil()}, os.path.join(OUT, "legacy_evil.pth"),
               _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
