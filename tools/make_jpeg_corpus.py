"""Makes the JPEG corpus of tests/jpeg_exact.test.ts with Pillow (libjpeg-turbo).

    python3 tools/make_jpeg_corpus.py OUT_DIR [--fixtures] [--tensors] [--large]

For each case it writes NAME.jpg (encoded by Pillow), NAME.raw (the samples of
Image.open(NAME.jpg) in its own mode: L, RGB or CMYK), for CMYK also NAME.rgb
(the bytes of .convert("RGB"); for L and RGB that is the raw samples
replicated or as is), and a manifest.json listing name, size, mode and file
length.

--fixtures   only the small cases committed under tests/fixtures/jpeg/
--tensors    also NAME.f32 for the photo cases: torchvision's Resize(256),
             CenterCrop(224), ToTensor, Normalize(ImageNet) of the RGB image,
             float32 little-endian, CHW; and NAME.dS.raw, the samples after
             Image.draft(mode, (width // S, height // S)) for S = 2, 4, 8
--large      adds photos big enough to time the decoder (3000x2000 baseline,
             4000x3000 progressive, made from skimage photos upscaled by Pillow)
             without reference output

Restart intervals: Pillow 9 cannot write them, so restart_markers() re-emits a
baseline file's entropy-coded data with an RSTn every N MCUs (DC predictions
restarted, the same Huffman tables); Pillow then decodes the result.
"""

import io
import json
import os
import sys

from PIL import Image

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data/"


def photo(name):
    return Image.open(os.path.join(SKIMAGE, name + ".png")).convert("RGB")


def encode(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


# ---------------------------------------------------------------- restarts


def segments(data):
    """Yields (marker, start, end) of each segment up to and including SOS."""
    pos = 2
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        yield marker, pos, pos + 2 + length
        if marker == 0xDA:
            return
        pos += 2 + length


class Huffman:
    def __init__(self, counts, values):
        self.decode = {}
        self.encode = {}
        code, k = 0, 0
        for length in range(1, 17):
            for _ in range(counts[length - 1]):
                self.decode[(length, code)] = values[k]
                self.encode[values[k]] = (length, code)
                code += 1
                k += 1
            code <<= 1


class Bits:
    def __init__(self, data):
        self.bits = []
        i = 0
        while i < len(data):
            b = data[i]
            if b == 0xFF:
                if data[i + 1] != 0:
                    break
                i += 1
            self.bits.extend((b >> (7 - k)) & 1 for k in range(8))
            i += 1
        self.pos = 0

    def get(self, n):
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bits[self.pos]
            self.pos += 1
        return v

    def symbol(self, table):
        code, length = 0, 0
        while True:
            code = (code << 1) | self.get(1)
            length += 1
            if (length, code) in table.decode:
                return table.decode[(length, code)]


class Writer:
    def __init__(self):
        self.out = bytearray()
        self.acc, self.n = 0, 0

    def put(self, value, n):
        for k in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> k) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc, self.n = 0, 0

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def extend(v, s):
    return v - (1 << s) + 1 if s and v < (1 << (s - 1)) else v


def category(v):
    return abs(v).bit_length()


def restart_markers(data, interval):
    """Re-emits a baseline, interleaved JPEG with a restart every `interval` MCUs."""
    dc, ac, frame, out = {}, {}, None, bytearray(data[:2])
    for marker, start, end in segments(data):
        seg = data[start + 4:end]
        if marker == 0xC4:
            p = 0
            while p < len(seg):
                counts = seg[p + 1:p + 17]
                total = sum(counts)
                table = Huffman(counts, seg[p + 17:p + 17 + total])
                (dc if seg[p] >> 4 == 0 else ac)[seg[p] & 15] = table
                p += 17 + total
        if marker == 0xC0:
            height, width, n = (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
            comps = [(seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(n)]
            frame = (width, height, comps)
        if marker == 0xDA:
            n = seg[0]
            tables = [(dc[seg[2 + 2 * i] >> 4], ac[seg[2 + 2 * i] & 15]) for i in range(n)]
            out += bytes([0xFF, 0xDD, 0, 4, interval >> 8, interval & 255])
        out += data[start:end]
        if marker == 0xDA:
            scan_start = end
    width, height, comps = frame
    max_h = max(h for h, _ in comps)
    max_v = max(v for _, v in comps)
    if len(comps) == 1:
        mcus = -(-width // 8) * -(-height // 8)
        comps = [(1, 1)]
    else:
        mcus = -(-width // (8 * max_h)) * -(-height // (8 * max_v))
    bits = Bits(data[scan_start:])
    writer = Writer()
    pred_in = [0] * len(comps)
    pred_out = [0] * len(comps)
    for mcu in range(mcus):
        if mcu and mcu % interval == 0:
            writer.flush()
            writer.out += bytes([0xFF, 0xD0 + ((mcu // interval - 1) & 7)])
            pred_out = [0] * len(comps)
        for ci, (h, v) in enumerate(comps):
            dct, act = tables[ci]
            for _ in range(h * v):
                s = bits.symbol(dct)
                pred_in[ci] += extend(bits.get(s), s)
                diff = pred_in[ci] - pred_out[ci]
                pred_out[ci] = pred_in[ci]
                s = category(diff)
                writer.put(*reversed(dct.encode[s]))
                writer.put(diff if diff >= 0 else diff + (1 << s) - 1, s)
                k = 1
                while k < 64:
                    rs = bits.symbol(act)
                    writer.put(*reversed(act.encode[rs]))
                    r, s = rs >> 4, rs & 15
                    if s == 0:
                        if r != 15:
                            break
                        k += 16
                        continue
                    writer.put(bits.get(s), s)
                    k += r + 1
    writer.flush()
    return bytes(out) + bytes(writer.out) + b"\xff\xd9"


def read_blocks(data):
    """The blocks of a baseline 4:4:4 JPEG, per component in raster order:
    (absolute DC, [(run/size symbol, extra bits)]), plus the segments to copy."""
    dc, ac, comps, tables, copy = {}, {}, [], None, []
    for marker, start, end in segments(data):
        seg = data[start + 4:end]
        if marker in (0xDB, 0xC4):
            copy.append(data[start:end])
        if marker == 0xC4:
            p = 0
            while p < len(seg):
                counts = seg[p + 1:p + 17]
                total = sum(counts)
                table = Huffman(counts, seg[p + 17:p + 17 + total])
                (dc if seg[p] >> 4 == 0 else ac)[seg[p] & 15] = table
                p += 17 + total
        if marker == 0xC0:
            height, width, n = (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
            assert all(seg[7 + 3 * i] == 0x11 for i in range(n))
            comps = [(seg[6 + 3 * i], seg[8 + 3 * i]) for i in range(n)]  # id, quant table
        if marker == 0xDA:
            tables = [(dc[seg[2 + 2 * i] >> 4], ac[seg[2 + 2 * i] & 15]) for i in range(seg[0])]
            scan_start = end
    bits = Bits(data[scan_start:])
    blocks = [[] for _ in comps]
    preds = [0] * len(comps)
    for _ in range(-(-width // 8) * -(-height // 8)):
        for ci, (dct, act) in enumerate(tables):
            s = bits.symbol(dct)
            preds[ci] += extend(bits.get(s), s)
            symbols, k = [], 1
            while k < 64:
                rs = bits.symbol(act)
                r, size = rs >> 4, rs & 15
                symbols.append((rs, bits.get(size) if size else 0))
                if size == 0:
                    if r != 15:
                        break
                    k += 16
                    continue
                k += r + 1
            blocks[ci].append((preds[ci], symbols))
    return width, comps, tables, copy, blocks


def resample_sampling(data, luma, width, height):
    """A baseline JPEG whose luma has sampling factors `luma` (h, v) and whose
    chroma is 1x1, `width` x `height`, made of the blocks of `data` (a 4:4:4
    baseline JPEG at least as large as the padded luma grid): each block
    re-emitted in the new MCU order with its DC re-predicted."""
    source_width, comps, tables, copy, blocks = read_blocks(data)
    h, v = luma
    src_bw = -(-source_width // 8)
    mcus_x, mcus_y = -(-width // (8 * h)), -(-height // (8 * v))
    sof = bytes([8, height >> 8, height & 255, width >> 8, width & 255, 3])
    factors = [(h << 4) | v, 0x11, 0x11]
    sof += b"".join(bytes([cid, f, tq]) for (cid, tq), f in zip(comps, factors))
    sos = bytes([3]) + b"".join(bytes([cid, 0x00 if i == 0 else 0x11]) for i, (cid, _) in enumerate(comps))
    sos += bytes([0, 63, 0])
    out = bytearray(b"\xff\xd8")
    out += b"".join(copy)
    out += bytes([0xFF, 0xC0, 0, len(sof) + 2]) + sof
    out += bytes([0xFF, 0xDA, 0, len(sos) + 2]) + sos
    writer = Writer()
    preds = [0, 0, 0]

    def put(ci, block):
        value, symbols = block
        dct, act = tables[ci]
        diff = value - preds[ci]
        preds[ci] = value
        s = category(diff)
        writer.put(*reversed(dct.encode[s]))
        writer.put(diff if diff >= 0 else diff + (1 << s) - 1, s)
        for rs, extra in symbols:
            writer.put(*reversed(act.encode[rs]))
            writer.put(extra, rs & 15)

    for my in range(mcus_y):
        for mx in range(mcus_x):
            for bv in range(v):
                for bh in range(h):
                    put(0, blocks[0][(my * v + bv) * src_bw + mx * h + bh])
            put(1, blocks[1][my * src_bw + mx])
            put(2, blocks[2][my * src_bw + mx])
    writer.flush()
    return bytes(out) + bytes(writer.out) + b"\xff\xd9"


# ---------------------------------------------------------------- corpus


def cases():
    astronaut = photo("astronaut")
    chelsea = photo("chelsea")
    coffee = photo("coffee")
    crop = astronaut.crop((100, 40, 260, 160))  # 160x120
    for quality in (50, 75, 95, 100):
        for subsampling, name in ((0, "444"), (1, "422"), (2, "420")):
            yield f"crop_q{quality}_{name}", encode(crop, quality=quality, subsampling=subsampling)
    odd = chelsea.crop((200, 100, 217, 133))  # 17x33
    yield "odd_17x33_420", encode(odd, quality=85, subsampling=2)
    yield "odd_17x33_422", encode(odd, quality=85, subsampling=1)
    for w, h in ((1, 1), (2, 2), (3, 3), (7, 9), (9, 7), (4095, 3), (3, 4095)):
        small = coffee.resize((w, h), Image.BILINEAR)
        for subsampling, name in ((0, "444"), (2, "420")):
            yield f"size_{w}x{h}_{name}", encode(small, quality=90, subsampling=subsampling)
        yield f"size_{w}x{h}_422", encode(small, quality=90, subsampling=1)
    grey = photo("camera").convert("L").crop((0, 0, 203, 141))
    yield "grey_q75", encode(grey, quality=75)
    yield "grey_progressive", encode(grey, quality=90, progressive=True)
    yield "progressive_420", encode(chelsea, quality=85, subsampling=2, progressive=True)
    yield "progressive_444", encode(crop, quality=92, subsampling=0, progressive=True)
    yield "progressive_odd", encode(odd, quality=70, subsampling=1, progressive=True)
    yield "optimized_420", encode(crop, quality=80, optimize=True)
    yield "cmyk", encode(crop.convert("CMYK"), quality=90)
    yield "cmyk_progressive", encode(odd.convert("CMYK"), quality=75, progressive=True)
    base = encode(chelsea.crop((0, 0, 150, 101)), quality=88, subsampling=2)
    yield "restart_1_420", restart_markers(base, 1)
    yield "restart_7_420", restart_markers(base, 7)
    yield "restart_5_444", restart_markers(encode(odd, quality=88, subsampling=0), 5)
    yield "restart_3_grey", restart_markers(encode(grey, quality=60), 3)
    yield "photo_chelsea_420", encode(chelsea, quality=90)
    # Samplings Pillow cannot write: 4:4:0 (h1v2 fancy upsampling), 4:1:1
    # (replication by 4), luma 2x4 (replication by 2 and 4), odd sizes.
    source = encode(astronaut.crop((0, 0, 160, 160)), quality=85, subsampling=0)
    yield "sampling_440", resample_sampling(source, (1, 2), 61, 75)
    yield "sampling_411", resample_sampling(source, (4, 1), 150, 37)
    yield "sampling_2x4", resample_sampling(source, (2, 4), 45, 97)


def large_cases():
    yield "large_3000x2000", encode(photo("coffee").resize((3000, 2000), Image.BICUBIC), quality=90)
    yield "large_4000x3000_progressive", encode(
        photo("astronaut").resize((4000, 3000), Image.BICUBIC), quality=90, progressive=True)


FIXTURES = {"size_1x1_420", "size_7x9_420", "size_9x7_422", "size_4095x3_420", "size_3x4095_422",
            "odd_17x33_420", "odd_17x33_422", "progressive_odd", "cmyk_progressive", "restart_5_444",
            "sampling_440", "sampling_411"}
TENSORS = {"photo_chelsea_420", "progressive_420", "crop_q75_422", "restart_7_420", "cmyk",
           "grey_q75", "odd_17x33_420"}


DRAFTS = {"photo_chelsea_420", "progressive_420", "crop_q75_422", "crop_q50_444", "grey_q75",
          "cmyk", "odd_17x33_420", "restart_7_420", "size_9x7_422", "sampling_440", "sampling_411",
          "sampling_2x4", "grey_progressive", "progressive_444", "cmyk_progressive"}


def torchvision_tensor(image):
    import torchvision.transforms as T
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    return transform(image).numpy().astype("<f4").tobytes()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = []
    for name, data in cases():
        if "--fixtures" in sys.argv and name not in FIXTURES:
            continue
        with open(os.path.join(out, name + ".jpg"), "wb") as f:
            f.write(data)
        image = Image.open(io.BytesIO(data))
        image.load()
        with open(os.path.join(out, name + ".raw"), "wb") as f:
            f.write(image.tobytes())
        if image.mode == "CMYK":
            with open(os.path.join(out, name + ".rgb"), "wb") as f:
                f.write(image.convert("RGB").tobytes())
        if "--tensors" in sys.argv and name in DRAFTS:
            for scale in (2, 4, 8):
                draft = Image.open(io.BytesIO(data))
                draft.draft(draft.mode, (max(1, draft.width // scale), max(1, draft.height // scale)))
                draft.load()
                if draft.size != (-(-image.width // scale), -(-image.height // scale)):
                    continue  # Pillow chose another scale for so small an image
                with open(os.path.join(out, f"{name}.d{scale}.raw"), "wb") as f:
                    f.write(draft.tobytes())
        if "--tensors" in sys.argv and name in TENSORS:
            try:
                tensor = torchvision_tensor(image.convert("RGB"))
                with open(os.path.join(out, name + ".f32"), "wb") as f:
                    f.write(tensor)
            except ImportError as error:  # Pillow without torchvision: no tensors, say why
                with open(os.path.join(out, "NO_TENSORS"), "w") as f:
                    f.write(str(error))
        manifest.append({"name": name, "width": image.width, "height": image.height,
                         "mode": image.mode, "bytes": len(data)})
    if "--large" in sys.argv:
        for name, data in large_cases():
            with open(os.path.join(out, name + ".jpg"), "wb") as f:
                f.write(data)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
