#!/usr/bin/env python3
"""Writes the fixtures of tests/data_transforms.test.ts from Debian's torchvision 0.14 and Pillow 9.

    /usr/bin/python3 tools/make_transform_fixtures.py

Inputs: images already committed under tests/fixtures/images/ (grey, RGBA, palette and RGB PNGs, one
JPEG), opened as torchvision's ImageFolder opens them (`Image.open(f).convert("RGB")`).

Outputs, under tests/fixtures/data/:
  transforms.json   one record per case: input file, the torchvision call, the expected PNG, and for
                    the tensor case the normalised values; plus `boxes`: RandomResizedCrop.get_params
                    calls with every torch draw they made (recorded by wrapping Tensor.uniform_ and
                    torch.randint), so that a replay of those draws must give torchvision's box
  transform_<n>.png what torchvision produced for case n (lossless; greyscale when R == G == B)
"""

import json
import math
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "tests" / "fixtures" / "images"
OUT = ROOT / "tests" / "fixtures" / "data"


def open_rgb(name):
    with open(IMAGES / name, "rb") as f:
        return Image.open(f).convert("RGB")


def save(image, name):
    r, g, b = image.split()
    if r.tobytes() == g.tobytes() == b.tobytes():
        image = r
    image.save(OUT / name, optimize=True)


def record_get_params(width, height, scale, ratio, seed):
    """Runs RandomResizedCrop.get_params under `seed`, recording each draw."""
    draws = []
    uniform, randint = torch.Tensor.uniform_, torch.randint

    def recording_uniform(self, *args, **kwargs):
        out = uniform(self, *args, **kwargs)
        draws.append(["uniform", out.item()])
        return out

    def recording_randint(*args, **kwargs):
        out = randint(*args, **kwargs)
        draws.append(["randint", out.item()])
        return out

    torch.Tensor.uniform_, torch.randint = recording_uniform, recording_randint
    try:
        torch.manual_seed(seed)
        box = T.RandomResizedCrop.get_params(Image.new("RGB", (width, height)), scale, ratio)
    finally:
        torch.Tensor.uniform_, torch.randint = uniform, randint
    return {"width": width, "height": height, "scale": scale, "ratio": ratio, "draws": draws, "box": list(box)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("transform_*.png"):
        old.unlink()
    cases = []

    def case(input_name, op, args, image):
        n = len(cases)
        name = f"transform_{n}.png"
        save(image, name)
        cases.append({"input": input_name, "op": op, **args, "expected": name})

    inputs = ["camera_grey.png", "chelsea_rgba.png", "chelsea_palette.png", "coffee_rgb.png"]
    for k, input_name in enumerate(inputs):
        image = open_rgb(input_name)
        w, h = image.size
        boxes = [
            [10 + k, 20 + 3 * k, h - 40, w // 2 + k],  # downscale, non-square box
            [h // 3, w // 4, 13 + k, 11 + 2 * k],  # upscale
            [-7, w - 40, 50, 60],  # partly outside: black fill, as PIL's crop
        ]
        for top, left, bh, bw in boxes:
            size = [32, 24 + 4 * k]
            case(input_name, "resized_crop", {"box": [top, left, bh, bw], "size": size},
                 F.resized_crop(image, top, left, bh, bw, size))
        torch.manual_seed(100 + k)
        top, left, bh, bw = T.RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3])
        case(input_name, "resized_crop_hflip", {"box": [top, left, bh, bw], "size": [32, 32]},
             F.hflip(F.resized_crop(image, top, left, bh, bw, [32, 32])))
        case(input_name, "resize", {"size": 30 + k}, T.Resize(30 + k)(image))
        case(input_name, "resize", {"size": [20 + k, 37]}, T.Resize([20 + k, 37])(image))
        case(input_name, "resize_center_crop", {"size": 24, "crop": [33, 17 + k]},
             T.CenterCrop([33, 17 + k])(T.Resize(24)(image)))

    jpeg = "astronaut_baseline.jpg"
    case(jpeg, "resized_crop", {"box": [100, 150, 300, 240], "size": [40, 32]},
         F.resized_crop(open_rgb(jpeg), 100, 150, 300, 240, [40, 32]))

    # ToTensor + Normalize on a small crop: the float32 values themselves.
    pipeline = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    small = F.resized_crop(open_rgb("coffee_rgb.png"), 50, 60, 70, 90, [6, 5])
    tensor_case = {"input": "coffee_rgb.png", "box": [50, 60, 70, 90], "size": [6, 5],
                   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                   "values": pipeline(small).flatten().tolist()}

    boxes = []
    sizes = [(451, 300), (300, 451), (28, 28), (224, 224), (1000, 10), (10, 1000), (7, 3), (640, 480)]
    for s, (width, height) in enumerate(sizes):
        for seed in range(12):
            boxes.append(record_get_params(width, height, [0.08, 1.0], [3 / 4, 4 / 3], 1000 * s + seed))
    boxes.append(record_get_params(300, 200, [0.5, 0.9], [0.5, 2.0], 7))
    boxes.append(record_get_params(300, 200, [1.5, 2.0], [3 / 4, 4 / 3], 8))  # never fits: fallback
    boxes.append(record_get_params(50, 400, [0.9, 1.0], [2.0, 3.0], 9))  # fallback, ratio clamped

    (OUT / "transforms.json").write_text(json.dumps(
        {"cases": cases, "tensor": tensor_case, "boxes": boxes}, separators=(",", ":")) + "\n")
    fallbacks = sum(1 for b in boxes if sum(1 for d in b["draws"] if d[0] == "randint") == 0)
    print(f"{len(cases)} image cases, {len(boxes)} get_params records ({fallbacks} fell back)")


if __name__ == "__main__":
    main()
