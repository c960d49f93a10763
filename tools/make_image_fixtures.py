#!/usr/bin/env python3
"""Writes the image and label fixtures of googlenet-wasm.

Run with Debian's interpreter (Pillow 9.4, torchvision 0.14, scikit-image):

    /usr/bin/python3 tools/make_image_fixtures.py

Outputs:
  assets/chelsea.jpg                      CC0 sample photo (scikit-image's chelsea.png)
  src/labels/imagenet.ts                  torchvision's 1000 ImageNet class names
  tests/fixtures/images/<name>.<ext>      test inputs in several encodings
  tests/fixtures/images/<name>.expected.png
      what PIL + torchvision produce for that input: exif_transpose, convert("RGB"),
      Resize(256), CenterCrop(224), as a lossless 224x224 image (greyscale when R == G == B)
  tests/fixtures/images/manifest.json     input file, expected file and source per fixture
  tests/fixtures/images/topk.json         a logits row with torch's softmax and topk(5)
"""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from skimage import data as skdata
from torchvision import transforms
from torchvision.models._meta import _IMAGENET_CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "images"
SKIMAGE = Path(skdata.__file__).parent
EVAL = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])


def photo(name, width=None):
    """Opens a scikit-image photo, optionally downsized (LANCZOS) to `width`."""
    image = Image.open(SKIMAGE / name)
    image.load()
    if width is not None:
        height = round(image.height * width / image.width)
        image = image.resize((width, height), Image.LANCZOS)
    return image


def png_bytes(chunks_ihdr, raw_rows):
    """Builds a PNG file from an IHDR payload and filter-prefixed scanlines."""

    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", chunks_ihdr)
        + chunk(b"IDAT", zlib.compress(raw_rows, 9))
        + chunk(b"IEND", b"")
    )


def interlaced_png(rgb):
    """Encodes an 8-bit RGB array as an Adam7-interlaced PNG (Pillow cannot write one)."""
    height, width, _ = rgb.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)
    return png_bytes(struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1), raw)


def rgb16_png(rgb16):
    """Encodes a uint16 RGB array as a 16-bit PNG."""
    height, width, _ = rgb16.shape
    be = rgb16.astype(">u2")
    raw = b"".join(b"\0" + row.tobytes() for row in be)
    return png_bytes(struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0), raw)


def save(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def with_orientation(image, orientation):
    """Stores `image` rotated so that EXIF `orientation` brings it back upright."""
    undo = {6: Image.ROTATE_90, 8: Image.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(image.transpose(undo), "JPEG", quality=85, exif=exif.tobytes())


def fixtures():
    chelsea = photo("chelsea.png")
    coffee = photo("coffee.png", 300)
    astronaut = photo("astronaut.png")
    rocket = photo("rocket.jpg", 320)
    camera = photo("camera.png").crop((0, 96, 512, 416))
    rgba = np.dstack(
        [np.asarray(photo("chelsea.png", 270)), np.linspace(0, 255, 270 * 180).reshape(180, 270)]
    ).astype(np.uint8)
    rng = np.random.default_rng(0)
    astro16 = np.asarray(photo("astronaut.png", 128)).astype(np.uint16) * 257
    astro16 += rng.integers(0, 2, astro16.shape, dtype=np.uint16) * 128
    return {
        "astronaut_baseline.jpg": ("astronaut.png 512x512, JPEG q85 4:2:0", save(astronaut, "JPEG", quality=85)),
        "rocket_progressive.jpg": (
            "rocket.jpg downsized to 320x480, progressive JPEG q85",
            save(rocket, "JPEG", quality=85, progressive=True),
        ),
        "camera_grey_q90.jpg": ("camera.png cropped to 512x320, greyscale JPEG q90", save(camera, "JPEG", quality=90)),
        "chelsea_exif6.jpg": ("chelsea.png 451x300 stored rotated, EXIF orientation 6", with_orientation(chelsea, 6)),
        "chelsea_exif8.jpg": ("chelsea.png 451x300 stored rotated, EXIF orientation 8", with_orientation(chelsea, 8)),
        "coffee_rgb.png": ("coffee.png downsized to 300x200, PNG RGB", save(coffee, "PNG")),
        "chelsea_rgba.png": ("chelsea.png downsized to 270x180 with an alpha ramp, PNG RGBA", save(Image.fromarray(rgba), "PNG")),
        "camera_grey.png": ("camera.png cropped to 512x320, PNG greyscale", save(camera, "PNG")),
        "chelsea_palette.png": (
            "chelsea.png 451x300 quantised to 64 colours, PNG palette",
            save(chelsea.quantize(64), "PNG"),
        ),
        "astronaut_16bit.png": ("astronaut.png downsized to 128x128, PNG 16-bit RGB", rgb16_png(astro16)),
        "chelsea_interlaced.png": (
            "chelsea.png downsized to 150x100, Adam7-interlaced PNG RGB",
            interlaced_png(np.asarray(photo("chelsea.png", 150))),
        ),
    }


def expected(encoded):
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(encoded))).convert("RGB")
    out = np.asarray(EVAL(image))
    if (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all():
        return save(Image.fromarray(out[..., 0]), "PNG", optimize=True)
    return save(Image.fromarray(out), "PNG", optimize=True)


def write_topk():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1000, generator=generator) * 4
    logits[[17, 281, 999]] += torch.tensor([9.0, 10.0, 8.5])
    probabilities = torch.softmax(logits, 0)
    top = torch.topk(probabilities, 5)
    record = {
        "logits": [float(v) for v in logits],
        "softmax": [float(v) for v in probabilities.numpy()],
        "top5": {"indices": top.indices.tolist(), "values": [float(v) for v in top.values]},
    }
    (OUT / "topk.json").write_text(json.dumps(record) + "\n")


def write_labels():
    names = ",\n".join(f"  {json.dumps(name)}" for name in _IMAGENET_CATEGORIES)
    (ROOT / "src" / "labels" / "imagenet.ts").write_text(
        "/**\n"
        " * The 1000 ImageNet-1k class names in torchvision's order (index = class id),\n"
        " * from `torchvision.models._meta._IMAGENET_CATEGORIES`.\n"
        " *\n"
        " * Generated by `tools/make_image_fixtures.py`; do not edit.\n"
        " *\n"
        " * @module\n"
        " */\n\n"
        "/**\n"
        " * ImageNet-1k class names, indexed by class id.\n"
        " *\n"
        " * @example\n"
        " * ```ts\n"
        ' * import { IMAGENET_CLASSES } from "./imagenet.ts";\n'
        " * console.log(IMAGENET_CLASSES[281]); // \"tabby\"\n"
        " * ```\n"
        " */\n"
        f"export const IMAGENET_CLASSES: readonly string[] = Object.freeze([\n{names},\n]);\n"
    )


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, (source, encoded) in fixtures().items():
        (OUT / name).write_bytes(encoded)
        stem = name.rsplit(".", 1)[0]
        (OUT / f"{stem}.expected.png").write_bytes(expected(encoded))
        manifest.append({"input": name, "expected": f"{stem}.expected.png", "source": source})
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    chelsea = Image.open(SKIMAGE / "chelsea.png").convert("RGB")
    (ROOT / "assets" / "chelsea.jpg").write_bytes(save(chelsea, "JPEG", quality=85))
    write_topk()
    write_labels()


if __name__ == "__main__":
    main()
