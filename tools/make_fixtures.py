"""Writes the parity fixtures of the kernels and the whole model from the reference PyTorch code.

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tools/make_fixtures.py
Inputs and weights come from tools/deterministic.py (bit-identical to tools/deterministic.ts),
so only outputs are committed. Activations are stored NHWC (the runtime's layout).

  tests/fixtures/kernels.safetensors    one case per kernel shape; its parameters in __metadata__
  tests/fixtures/googlenet.safetensors  whole-model logits (eval) and aux outputs (training)
  tests/fixtures/state_dict.json        the reference's state-dict keys and shapes, in order
  tests/fixtures/torchvision.safetensors  torchvision 0.14 googlenet (BatchNorm, transform_input) logits
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
import seed_googlenet  # noqa: E402
from deterministic import deterministic_input, deterministic_parameter, fill_state_dict  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures")


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def nhwc(t):
    return t.permute(0, 2, 3, 1) if t.dim() == 4 else t


def tensor(name, shape):
    return torch.from_numpy(deterministic_input(name, shape).copy())


def param(name, shape):
    return torch.from_numpy(deterministic_parameter(name, shape).copy())


def kernels():
    cases = {
        # name: (op, input shape NCHW, params)
        "conv_7x7_s2_p3": ("conv2d", [2, 3, 23, 19], dict(oc=16, k=7, s=2, p=3)),
        "conv_5x5_p2": ("conv2d", [1, 12, 9, 11], dict(oc=20, k=5, s=1, p=2)),
        "conv_3x3_p1": ("conv2d", [2, 16, 10, 10], dict(oc=24, k=3, s=1, p=1)),
        "conv_3x3_winograd": ("conv2d", [1, 16, 12, 12], dict(oc=24, k=3, s=1, p=1, winograd="f4x3")),
        "conv_3x3_winograd_edges": ("conv2d", [2, 8, 13, 9], dict(oc=12, k=3, s=1, p=1, winograd="f4x3")),
        "conv_3x3_winograd_f2": ("conv2d", [1, 16, 10, 12], dict(oc=24, k=3, s=1, p=1, winograd="f2x3")),
        "conv_3x3_winograd_f2_edges": ("conv2d", [2, 8, 7, 9], dict(oc=12, k=3, s=1, p=1, winograd="f2x3")),
        "conv_5x5_winograd": ("conv2d", [1, 12, 10, 14], dict(oc=20, k=5, s=1, p=2, winograd="f2x5")),
        "conv_5x5_winograd_edges": ("conv2d", [2, 8, 7, 9], dict(oc=12, k=5, s=1, p=2, winograd="f2x5")),
        "conv_3x3_s2": ("conv2d", [1, 8, 11, 11], dict(oc=8, k=3, s=2, p=0)),
        "conv_1x1": ("conv2d", [3, 40, 7, 5], dict(oc=13, k=1, s=1, p=0)),
        "maxpool_3_s2_ceil": ("maxpool2d", [1, 8, 14, 14], dict(k=3, s=2, p=0, ceil=True)),
        "maxpool_3_s2_ceil_odd": ("maxpool2d", [2, 12, 13, 9], dict(k=3, s=2, p=0, ceil=True)),
        "maxpool_2_s3_p1_ceil_dropped": ("maxpool2d", [1, 4, 4, 4], dict(k=2, s=3, p=1, ceil=True)),
        "maxpool_3_s1_p1": ("maxpool2d", [1, 8, 7, 7], dict(k=3, s=1, p=1, ceil=False)),
        "maxpool_3_s1_p1_c6": ("maxpool2d", [2, 6, 5, 7], dict(k=3, s=1, p=1, ceil=False)),
        "maxpool_3_s2_ceil_c5": ("maxpool2d", [1, 5, 9, 8], dict(k=3, s=2, p=0, ceil=True)),
        "avgpool_5_s3": ("avgpool2d", [2, 8, 14, 14], dict(k=5, s=3, p=0)),
        "avgpool_5_s3_odd": ("avgpool2d", [1, 4, 11, 13], dict(k=5, s=3, p=0)),
        "avgpool_3_s2_p1": ("avgpool2d", [1, 4, 6, 7], dict(k=3, s=2, p=1)),
        "adaptive_avgpool_1x1": ("adaptive_avgpool2d", [2, 16, 7, 7], dict(oh=1, ow=1)),
        "adaptive_avgpool_4x4": ("adaptive_avgpool2d", [1, 8, 14, 14], dict(oh=4, ow=4)),
        "adaptive_avgpool_4x4_odd": ("adaptive_avgpool2d", [2, 4, 9, 11], dict(oh=4, ow=4)),
        "linear": ("linear", [3, 37], dict(n=21, relu=False)),
        "linear_relu": ("linear", [4, 64], dict(n=1000, relu=True)),
        "softmax": ("softmax", [2, 1000], dict(scale=8)),
    }
    tensors, meta = {}, {}
    for name, (op, shape, p) in cases.items():
        x = tensor(f"{name}.x", shape)
        if op == "conv2d":
            w = param(f"{name}.weight", [p["oc"], shape[1], p["k"], p["k"]])
            b = param(f"{name}.bias", [p["oc"]])
            y = F.relu(F.conv2d(x, w, b, stride=p["s"], padding=p["p"]))
        elif op == "maxpool2d":
            y = F.max_pool2d(x, p["k"], p["s"], p["p"], ceil_mode=p["ceil"])
        elif op == "avgpool2d":
            y = F.avg_pool2d(x, p["k"], p["s"], p["p"])
        elif op == "adaptive_avgpool2d":
            y = F.adaptive_avg_pool2d(x, (p["oh"], p["ow"]))
        elif op == "linear":
            w = param(f"{name}.weight", [p["n"], shape[1]])
            b = param(f"{name}.bias", [p["n"]])
            y = F.linear(x, w, b)
            if p["relu"]:
                y = F.relu(y)
        elif op == "softmax":
            y = F.softmax(x * p["scale"], dim=1)
        tensors[name] = nhwc(y)
        meta[name] = json.dumps(dict(op=op, shape=shape, **p))
    write_safetensors(os.path.join(OUT, "kernels.safetensors"), tensors, meta)
    print(f"kernels: {len(cases)} cases")


def model():
    torch.manual_seed(0)
    net = fill_state_dict(seed_googlenet.GoogLeNet(aux_logits=True)).eval()
    tensors, meta = {}, {}
    for name, shape in [("eval_224_b1", [1, 3, 224, 224]), ("eval_224_b2", [2, 3, 224, 224]),
                        ("eval_160x192_b1", [1, 3, 160, 192]), ("eval_224_b4", [4, 3, 224, 224]),
                        ("eval_160x192_b4", [4, 3, 160, 192])]:
        with torch.no_grad():
            tensors[name] = net(tensor(name, shape))
        meta[name] = json.dumps(dict(mode="eval", shape=shape))
    # Training mode with dropout made the identity on both sides.
    net.train()
    net.dropout.p = 0.0
    saved = seed_googlenet.F.dropout
    seed_googlenet.F.dropout = lambda x, p=0.5, training=False, inplace=False: x
    try:
        with torch.no_grad():
            logits, aux2, aux1 = net(tensor("train_224_b1", [1, 3, 224, 224]))
    finally:
        seed_googlenet.F.dropout = saved
    for part, t in [("logits", logits), ("aux2", aux2), ("aux1", aux1)]:
        tensors[f"train_224_b1.{part}"] = t
    meta["train_224_b1"] = json.dumps(dict(mode="train", shape=[1, 3, 224, 224]))
    write_safetensors(os.path.join(OUT, "googlenet.safetensors"), tensors, meta)
    for k, v in tensors.items():
        print(f"{k}: max|y| = {v.abs().max().item():.4g}")
    keys = {
        "aux": [[k, list(v.shape)] for k, v in net.state_dict().items()],
        "no_aux": [[k, list(v.shape)] for k, v in seed_googlenet.GoogLeNet(aux_logits=False).state_dict().items()],
    }
    with open(os.path.join(OUT, "state_dict.json"), "w") as f:
        json.dump(keys, f, separators=(",", ":"))


def torchvision_model():
    import torchvision
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    net = fill_state_dict(net).eval()
    tensors, meta = {}, {}
    for name, shape in [("tv_eval_224_b1", [1, 3, 224, 224]), ("tv_eval_224_b2", [2, 3, 224, 224]),
                        ("tv_eval_200x176_b1", [1, 3, 200, 176])]:
        with torch.no_grad():
            tensors[name] = net(tensor(name, shape))
        meta[name] = json.dumps(dict(mode="eval", shape=shape))
    net.train()
    net.dropout.p = 0.0
    net.aux1.dropout.p = 0.0
    net.aux2.dropout.p = 0.0
    with torch.no_grad():
        # Training-mode BatchNorm would use batch statistics; keep it in eval, the rest in training.
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        out = net(tensor("tv_train_224_b1", [1, 3, 224, 224]))
    # torchvision 0.14's forward() unpacks _forward's (x, aux2, aux1) as (x, aux1, aux2), so its
    # "aux_logits2" field holds the aux1 head's output. Store each head under its own name.
    for part, t in [("logits", out.logits), ("aux2", out.aux_logits1), ("aux1", out.aux_logits2)]:
        tensors[f"tv_train_224_b1.{part}"] = t
    meta["tv_train_224_b1"] = json.dumps(dict(mode="train", shape=[1, 3, 224, 224]))
    write_safetensors(os.path.join(OUT, "torchvision.safetensors"), tensors, meta)
    keys = {
        "aux": [[k, list(v.shape)] for k, v in net.state_dict().items()],
        "no_aux": [[k, list(v.shape)] for k, v in torchvision.models.googlenet(
            weights=None, aux_logits=False, init_weights=False).state_dict().items()],
    }
    with open(os.path.join(OUT, "torchvision_state_dict.json"), "w") as f:
        json.dump(keys, f, separators=(",", ":"))
    print(f"torchvision: {len(tensors)} outputs")


if __name__ == "__main__":
    torch.set_num_threads(2)
    kernels()
    model()
    torchvision_model()
