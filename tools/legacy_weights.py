"""Deterministic GoogLeNet weights in PyTorch's legacy format, and PyTorch's answer with them.

Run with Debian's PyTorch (/usr/bin/python3), from the repository root:

  tools/legacy_weights.py save seed|torchvision PATH
      Writes the reference model's state dict (aux heads included; torchvision's has the
      BatchNorm buffers, num_batches_tracked among them) filled by tools/deterministic.py, with
      torch.save(..., _use_new_zipfile_serialization=False): the format of torchvision's
      googlenet-1378be20.pth.
  tools/legacy_weights.py top5 IMAGE
      Classifies IMAGE with torchvision's googlenet (transform_input=True, as the pretrained
      model) on those weights, with torchvision's preprocessing (PIL, resize 256, crop 224,
      ImageNet normalisation), and prints the top 5 as JSON [[index, probability], ...].
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "reference")]
from deterministic import fill_state_dict  # noqa: E402


def model(variant):
    if variant == "seed":
        from seed_googlenet import GoogLeNet
        return fill_state_dict(GoogLeNet(aux_logits=True))
    if variant == "torchvision":
        import torchvision
        net = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True,
                                           init_weights=False)
        return fill_state_dict(net)
    raise SystemExit(f"unknown variant {variant!r}: expected seed or torchvision")


def main(argv):
    if len(argv) == 3 and argv[0] == "save":
        torch.save(model(argv[1]).state_dict(), argv[2], _use_new_zipfile_serialization=False)
    elif len(argv) == 2 and argv[0] == "top5":
        from PIL import Image
        from torchvision import transforms
        preprocess = transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        x = preprocess(Image.open(argv[1]).convert("RGB")).unsqueeze(0)
        net = model("torchvision").eval()
        with torch.no_grad():
            p = torch.softmax(net(x), dim=1)[0]
        top = torch.topk(p, 5)
        print(json.dumps([[int(i), float(v)] for v, i in zip(top.values, top.indices)]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
