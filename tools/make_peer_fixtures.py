"""Writes the reference logits that the benchmark peers (bench/peers/) are checked against.

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tools/make_peer_fixtures.py

  tests/fixtures/peers/seed_logits.json
    state_dict  the seed GoogLeNet's (aux_logits=False) state-dict keys and shapes, in order
    input       the name and NCHW shape of the deterministic input (tools/deterministic.py)
    logits      the eval-mode logits, float32 values written as exact decimals

Weights come from fill_state_dict and the input from deterministic_input, which
tools/deterministic.ts reproduces bit for bit, so only the outputs are committed.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
import seed_googlenet  # noqa: E402
from deterministic import deterministic_input, fill_state_dict  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures", "peers")
INPUT = ("input", [1, 3, 224, 224])


def main():
    net = fill_state_dict(seed_googlenet.GoogLeNet(aux_logits=False)).eval()
    x = torch.from_numpy(deterministic_input(*INPUT).copy())
    with torch.no_grad():
        logits = net(x)
    os.makedirs(OUT, exist_ok=True)
    doc = {
        "state_dict": [[k, list(v.shape)] for k, v in net.state_dict().items()],
        "input": {"name": INPUT[0], "shape": INPUT[1]},
        "logits": [float(v) for v in logits.reshape(-1).tolist()],
    }
    with open(os.path.join(OUT, "seed_logits.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
