"""The deterministic tensors of tools/deterministic.ts, bit for bit (see its docstring)."""
import math

import numpy as np

M32 = 0xFFFFFFFF


def fnv1a(text):
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & M32
    return h


def _fmix32(x):
    x = x.astype(np.uint64)
    x = ((x ^ (x >> np.uint64(16))) * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    x = ((x ^ (x >> np.uint64(13))) * np.uint64(0xC2B2AE35)) & np.uint64(M32)
    return (x ^ (x >> np.uint64(16))) & np.uint64(M32)


def uniform(name, n, scale):
    base = ((fnv1a(name) | 1) * 0x9E3779B9) & M32
    i = (np.arange(n, dtype=np.uint64) + np.uint64(base)) & np.uint64(M32)
    u = _fmix32(i).astype(np.float64) / 4294967296.0 - 0.5
    return (2.0 * scale * u).astype(np.float32)


def deterministic_parameter(key, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    if key.endswith("running_var") or key.endswith("bn.weight"):
        spread = 0.25 if key.endswith("running_var") else 0.1
        return (np.float32(1) + uniform(key, n, spread)).reshape(shape)
    scale = 0.1
    if key.endswith("weight") and len(shape) == 4:
        scale = math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
    elif key.endswith("weight") and len(shape) == 2:
        scale = math.sqrt(3.0 / shape[1])
    return uniform(key, n, scale).reshape(shape)


def deterministic_input(name, shape):
    n = int(np.prod(shape))
    return uniform(name, n, 1.0).reshape(shape)


def fill_state_dict(model):
    """Overwrites every parameter and float buffer of `model` deterministically."""
    import torch
    sd = model.state_dict()
    new = {}
    for k, v in sd.items():
        if v.dtype.is_floating_point:
            new[k] = torch.from_numpy(deterministic_parameter(k, list(v.shape)).copy())
        else:
            new[k] = v
    model.load_state_dict(new)
    return model
