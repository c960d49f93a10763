"""PyTorch 1.13's training step, the peer of bench/training_bench.ts (run as a child process).

    /usr/bin/python3 bench/peers/torch_train.py

Reads one JSON command per line on stdin and answers one JSON line on stdout:

    {"cmd": "setup", "threads": T, "mode": "full" | "head", "batch": N, "size": S, "input": NAME}
        -> {"torch": version, "threads": torch.get_num_threads(), "trainable": count}
    {"cmd": "step"}
        -> {"ms": one step's time, "loss": the step's loss}

The model is the reference's GoogLeNet (tools/reference/seed_googlenet.py) with init_weights=True
and aux heads, in train mode (dropout on); a step is forward, loss = main + 0.3 * (aux1 + aux2)
(cross-entropy, mean over the batch), backward, AdamW (lr 1e-4) step and zero_grad, timed with
time.perf_counter. "head" fine-tunes fc alone (requires_grad only on fc.weight and fc.bias). The
input is tools/deterministic.py's input named NAME, labels (61 * i) % 1000: the batch the Deno side
uses.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from deterministic import deterministic_input  # noqa: E402
from seed_googlenet import GoogLeNet  # noqa: E402


def setup(msg):
    torch.set_num_threads(int(msg["threads"]))
    torch.manual_seed(0)
    model = GoogLeNet(num_classes=1000, aux_logits=True, init_weights=True).train()
    if msg["mode"] == "head":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc."))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    n, s = int(msg["batch"]), int(msg["size"])
    x = torch.from_numpy(deterministic_input(msg["input"], [n, 3, s, s]).copy())
    y = torch.tensor([(61 * i) % 1000 for i in range(n)], dtype=torch.long)
    return model, opt, x, y, sum(p.numel() for p in params)


def step(model, opt, x, y):
    start = time.perf_counter()
    main, aux2, aux1 = model(x)
    loss = F.cross_entropy(main, y) + 0.3 * (F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y))
    loss.backward()
    opt.step()
    opt.zero_grad()
    ms = (time.perf_counter() - start) * 1000
    return ms, loss.item()


def main():
    state = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "setup":
            state = None  # free the previous model first
            state = setup(msg)
            reply = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                     "trainable": state[4]}
        elif msg["cmd"] == "step":
            ms, loss = step(*state[:4])
            reply = {"ms": ms, "loss": loss}
        else:
            raise ValueError(f"Unknown command {msg['cmd']!r}")
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
