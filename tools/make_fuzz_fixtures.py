"""Small images for tests/image_fuzz.test.ts, written with Debian's PIL and torchvision.

- fuzz_*.jpg / fuzz_*.png: 24x16 seeds that the fuzzer mutates (baseline, progressive and
  greyscale JPEG; palette and Adam7-interlaced PNG).
- thin_*.png and thin_*.expected.png: very thin images and what PIL + torchvision's
  Resize(256) + CenterCrop(224) make of them (the full resize is 256 x 59733 for 3 x 700),
  to check that resizing only the crop's region is exact.

Run: /usr/bin/python3 tools/make_fuzz_fixtures.py
"""

import os

from PIL import Image
from torchvision import transforms

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fuzz")


def pattern(width, height):
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (x * 10 % 256, y * 15 % 256, (x * y) % 256)
    return image


def main():
    os.makedirs(OUT, exist_ok=True)
    seed = pattern(24, 16)
    seed.save(os.path.join(OUT, "fuzz_baseline.jpg"), quality=85)
    seed.save(os.path.join(OUT, "fuzz_progressive.jpg"), quality=85, progressive=True, subsampling=0)
    seed.convert("L").save(os.path.join(OUT, "fuzz_grey.jpg"), quality=90)
    seed.quantize(16).save(os.path.join(OUT, "fuzz_palette.png"))
    seed.save(os.path.join(OUT, "fuzz_interlaced.png"), interlace=1)
    transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    for width, height in [(3, 700), (700, 2)]:
        thin = Image.new("RGB", (width, height))
        pixels = thin.load()
        for y in range(height):
            for x in range(width):
                t = x + y
                pixels[x, y] = (t * 7 % 256, (t * 3 + 40) % 256, 255 - t % 256)
        name = f"thin_{width}x{height}"
        thin.save(os.path.join(OUT, f"{name}.png"))
        transform(thin).save(os.path.join(OUT, f"{name}.expected.png"))


if __name__ == "__main__":
    main()
