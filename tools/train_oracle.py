"""PyTorch 1.13 autograd and torch.optim as the oracle for training (run by tests/training_parity.test.ts).

    /usr/bin/python3 tools/train_oracle.py SPEC.json OUT.safetensors

SPEC: {"variant": "seed"|"torchvision", "aux": bool, "train": bool, "numClasses": int,
       "trainable": [prefixes] | null, "auxWeight": float, "masks": [[...], ...] | null,
       "cases": [{"name", "shape", "labels"}],              # gradients of one backward each
       "threads": int (2), "float32Variants": bool,
       "optimizer": null | {"kind": "sgd"|"adam"|"adamw", "options": {...}, "steps": [{"name", "shape", "labels", "lr"?}]}}

Weights and inputs come from tools/deterministic.py (bit for bit what tools/deterministic.ts makes);
dropout is the identity, or with "masks" (seed variant) each F.dropout call and the final dropout
multiply by the next given mask, in call order (aux1's two, aux2's two, the main one). torchvision's BatchNorm layers stay in eval mode (frozen statistics).
Writes, per case, "{name}.loss" = [loss, main, aux1, aux2] and "{name}.grad.{key}" for every
parameter that trains ("{name}.grad64.{key}": the same computed in float64, rounded to float32), and
"{name}.grad32L2": the relative L2 error against float64 of PyTorch's float32 gradients over all
parameters, first as "grad" ran, then (with "float32Variants") on 1 and 2 threads with oneDNN on and
off; for the optimizer run, "optim.{key}" = each trainable parameter after the steps
and "optim.loss" = the loss of each step.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)

import seed_googlenet  # noqa: E402
from deterministic import deterministic_input, fill_state_dict  # noqa: E402
from make_fixtures import write_safetensors  # noqa: E402


def identity_dropout(x, p=0.5, training=False, inplace=False):
    return x


MASKS = []  # the dropout masks to replay, in call order (spec["masks"]), consumed per forward


def replayed_dropout(x, p=0.5, training=False, inplace=False):
    """Dropout with the next given mask (0 or 1 / (1 - p) per element, PyTorch's layout)."""
    if not training:
        return x
    return x * MASKS.pop(0).to(x.dtype).view_as(x)


class ReplayedDropout(torch.nn.Module):
    def forward(self, x):
        return replayed_dropout(x, training=self.training)


def build(spec):
    classes = spec.get("numClasses", 1000)
    if spec["variant"] == "seed":
        net = seed_googlenet.GoogLeNet(num_classes=classes, aux_logits=spec["aux"])
        seed_googlenet.F.dropout = replayed_dropout if spec.get("masks") else identity_dropout
    else:
        import torchvision
        net = torchvision.models.googlenet(weights=None, num_classes=classes, aux_logits=spec["aux"],
                                           init_weights=False, transform_input=True)
        F.dropout = identity_dropout
    fill_state_dict(net)
    net.dropout = ReplayedDropout() if spec.get("masks") else torch.nn.Identity()
    net.train(spec["train"])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    prefixes = spec.get("trainable")
    for key, p in net.named_parameters():
        p.requires_grad_(prefixes is None or any(key.startswith(q) for q in prefixes))
    return net


def loss_of(spec, net, x, labels):
    out = net(x)
    y = torch.tensor(labels, dtype=torch.long)
    w = spec.get("auxWeight", 0.3)
    if isinstance(out, torch.Tensor):
        main = F.cross_entropy(out, y)
        return main, [main.detach(), main.detach(), torch.tensor(0.0), torch.tensor(0.0)]
    if spec["variant"] == "seed":
        logits, aux2, aux1 = out
    else:
        # torchvision 0.14's forward() names its aux outputs the other way round (see make_fixtures.py).
        logits, aux2, aux1 = out.logits, out.aux_logits1, out.aux_logits2
    main, a1, a2 = F.cross_entropy(logits, y), F.cross_entropy(aux1, y), F.cross_entropy(aux2, y)
    total = main + w * (a1 + a2)
    return total, [total.detach(), main.detach(), a1.detach(), a2.detach()]


def main():
    spec = json.load(open(sys.argv[1]))
    threads = int(spec.get("threads", 2))
    torch.set_num_threads(threads)
    tensors, meta = {}, {}
    for case in spec["cases"]:
        # In float64 (the reference every float32 implementation is measured against: where a
        # ReLU input lies within float32 rounding of zero, any two float32 implementations take
        # different branches), then in float32 as users run it ("grad"), then with the variants
        # "float32Variants" asks for: PyTorch's own float32 error moves with its thread count
        # and convolution backend (oneDNN or its own), so the tests compare ours with the
        # range of PyTorch's.
        truth = None
        runs = [("grad64", torch.float64, threads, True), ("grad", torch.float32, threads, True)]
        if spec.get("float32Variants"):
            runs += [(None, torch.float32, t, mk) for t in (1, 2) for mk in (True, False)]
        errors = []
        for suffix, dtype, n, mkldnn in runs:
            torch.set_num_threads(n)
            MASKS[:] = [torch.tensor(m, dtype=torch.float32) for m in spec.get("masks") or []]
            with torch.backends.mkldnn.flags(enabled=mkldnn):
                net = build(spec).to(dtype)
                x = torch.from_numpy(deterministic_input(case["name"], case["shape"]).copy()).to(dtype)
                loss, parts = loss_of(spec, net, x, case["labels"])
                loss.backward()
            grads = {k: p.grad for k, p in net.named_parameters() if p.requires_grad and p.grad is not None}
            if suffix == "grad":
                tensors[f"{case['name']}.loss"] = torch.stack([p.float() for p in parts])
            if suffix is not None:
                for key, g in grads.items():
                    tensors[f"{case['name']}.{suffix}.{key}"] = g.float()
            if dtype == torch.float64:
                truth = grads
            else:
                err = sum(float(((g.double() - truth[k]) ** 2).sum()) for k, g in grads.items())
                norm = sum(float((t ** 2).sum()) for t in truth.values())
                errors.append((err / norm) ** 0.5)
        torch.set_num_threads(threads)
        tensors[f"{case['name']}.grad32L2"] = torch.tensor(errors, dtype=torch.float32)
    opt_spec = spec.get("optimizer")
    if opt_spec:
        net = build(spec)
        params = [p for p in net.parameters() if p.requires_grad]
        kind, options = opt_spec["kind"], dict(opt_spec["options"])
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
        opt = cls(params, **options)
        losses = []
        for step in opt_spec["steps"]:
            if "lr" in step:
                for group in opt.param_groups:
                    group["lr"] = step["lr"]
            x = torch.from_numpy(deterministic_input(step["name"], step["shape"]).copy())
            opt.zero_grad()
            loss, _ = loss_of(spec, net, x, step["labels"])
            loss.backward()
            opt.step()
            losses.append(float(loss))
        tensors["optim.loss"] = torch.tensor(losses)
        for key, p in net.named_parameters():
            if p.requires_grad:
                tensors[f"optim.{key}"] = p.detach()
    meta["spec"] = json.dumps(spec)
    write_safetensors(sys.argv[2], tensors, meta)


if __name__ == "__main__":
    main()
