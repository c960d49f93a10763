import assert from "node:assert/strict";
import { deflateSync, zlibSync } from "npm:fflate@0.8.2";
import { ImageError, OptionError, ShapeError } from "../src/errors.ts";
import {
  decodeImage,
  preprocess,
  preprocessBatch,
  resizeBilinear,
  toRgb,
} from "../src/image/mod.ts";
import { applyOrientation, readExifOrientation } from "../src/image/orientation.ts";
import { channelsOf } from "../src/image/pixels.ts";
import { decodeJpegPixels } from "../src/image/jpeg/decoder.ts";
import { standardHuffmanTables } from "../src/image/jpeg/entropy.ts";

const DIR = new URL("./fixtures/images/", import.meta.url);
const read = (name: string) => Deno.readFile(new URL(name, DIR));

/** A PNG with the given IHDR fields and raw (filter-prefixed, uncompressed) scanlines. */
function png(width: number, height: number, depth: number, colorType: number, raw: Uint8Array) {
  const chunk = (type: string, payload: Uint8Array) => {
    const out = new Uint8Array(12 + payload.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, payload.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(payload, 8);
    view.setUint32(8 + payload.length, crc32(out.subarray(4, 8 + payload.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibSync(raw)),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

Deno.test("decodeImage: low bit depths and 16-bit greyscale convert like Pillow", () => {
  // 2-bit grey, 4 pixels 0..3 in one byte: Pillow scales by 85.
  const grey2 = decodeImage(png(4, 1, 2, 0, new Uint8Array([0, 0b00011011])));
  assert.deepEqual([...grey2.data].filter((_, i) => i % 3 === 0), [0, 85, 170, 255]);
  // 16-bit grey: Pillow 9 opens it as "I" and clips to 255 in convert("RGB").
  const grey16 = decodeImage(png(2, 1, 16, 0, new Uint8Array([0, 0, 200, 1, 0])));
  assert.deepEqual([...grey16.data], [200, 200, 200, 255, 255, 255]);
});

Deno.test("decodeImage: applies EXIF orientation 6 and 8 and can leave it", async () => {
  const bytes = await read("chelsea_exif6.jpg");
  const upright = decodeImage(bytes);
  assert.deepEqual([upright.width, upright.height], [451, 300]);
  const stored = decodeImage(bytes, { exifOrientation: false });
  assert.deepEqual([stored.width, stored.height], [300, 451]);
  const other = decodeImage(await read("chelsea_exif8.jpg"));
  assert.deepEqual([other.width, other.height], [451, 300]);
});

Deno.test("decodeImage, preprocess: the Exif APP1 is the first before the scan, after the frame header too, as Pillow reads it", async () => {
  // chelsea_exif6.jpg: its Exif APP1 (orientation 6) at bytes 20-55, its SOF0 at 194-212. Pillow
  // 9.4 keeps the first APP1 starting "Exif\0" before the SOS: with the APP1 moved after the SOF,
  // ImageOps.exif_transpose still turns the image upright (451x300), and with an "Exif\0\1" APP1
  // before it, it finds no orientation and leaves it as stored (300x451) (checked with
  // /usr/bin/python3 when this test was written). The header scan stopped at the SOF and
  // skipped an "Exif\0\1" segment, so it turned the first file sideways and the second upright.
  const bytes = await read("chelsea_exif6.jpg");
  assert.deepEqual([...bytes.subarray(20, 30)], [0xff, 0xe1, 0, 34, ...EXIF_HEADER]);
  assert.deepEqual([...bytes.subarray(194, 196)], [0xff, 0xc0]);
  const app1 = bytes.subarray(20, 56);
  const afterSof = new Uint8Array([
    ...bytes.subarray(0, 20),
    ...bytes.subarray(56, 213),
    ...app1,
    ...bytes.subarray(213),
  ]);
  const notExif = app1.slice();
  notExif[9] = 1; // "Exif\0\1"
  const secondExif = new Uint8Array([...bytes.subarray(0, 20), ...notExif, ...bytes.subarray(20)]);
  // The first index where two arrays differ, -1 when equal (a diff of the arrays is too large).
  const firstDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
    a.length !== b.length ? 0 : Array.prototype.findIndex.call(a, (v, i) => v !== b[i]);
  const cases: [string, Uint8Array, boolean][] = [
    ["Exif APP1 after the SOF", afterSof, true],
    ["an Exif\\0\\1 APP1 first", secondExif, false],
  ];
  for (const [name, file, exifOrientation] of cases) {
    const image = decodeImage(file);
    const expected = decodeImage(bytes, { exifOrientation });
    assert.deepEqual([image.width, image.height], [expected.width, expected.height], name);
    assert.equal(firstDiff(image.data, expected.data), -1, name);
    for (const draft of [false, true]) {
      const tensor = await preprocess(file, { draft });
      const reference = await preprocess(bytes, { draft, exifOrientation });
      assert.equal(firstDiff(tensor.data, reference.data), -1, `${name}, draft ${draft}`);
    }
  }
});

const EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

Deno.test("applyOrientation: all eight orientations match Pillow's transposes", () => {
  // 3x2 image with pixel values 1..6 (grey in all channels), row-major.
  const image = toRgb({ data: new Uint8Array([1, 2, 3, 4, 5, 6]), width: 3, height: 2 });
  const grey = (o: number) => [...applyOrientation(image, o).data].filter((_, i) => i % 3 === 0);
  assert.deepEqual(grey(1), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(grey(2), [3, 2, 1, 6, 5, 4]); // FLIP_LEFT_RIGHT
  assert.deepEqual(grey(3), [6, 5, 4, 3, 2, 1]); // ROTATE_180
  assert.deepEqual(grey(4), [4, 5, 6, 1, 2, 3]); // FLIP_TOP_BOTTOM
  assert.deepEqual(grey(5), [1, 4, 2, 5, 3, 6]); // TRANSPOSE
  assert.deepEqual(grey(6), [4, 1, 5, 2, 6, 3]); // ROTATE_270 (clockwise)
  assert.deepEqual(grey(7), [6, 3, 5, 2, 4, 1]); // TRANSVERSE
  assert.deepEqual(grey(8), [3, 6, 2, 5, 1, 4]); // ROTATE_90 (counter-clockwise)
  assert.equal(applyOrientation(image, 6).width, 2);
  // A one-channel image (a grey JPEG on its way to the evaluation transform) stays one channel.
  const single = {
    data: new Uint8Array([1, 2, 3, 4, 5, 6]),
    width: 3,
    height: 2,
    channels: 1 as const,
  };
  for (let o = 1; o <= 8; o++) {
    const upright = applyOrientation(single, o);
    assert.deepEqual([...upright.data], grey(o), `orientation ${o}`);
    assert.equal(channelsOf(upright), 1);
    assert.equal(upright.width, o >= 5 ? 2 : 3);
  }
});

Deno.test("readExifOrientation: little-endian TIFF and malformed data", () => {
  // "II", 42, IFD0 at 8, one entry: tag 0x0112, SHORT, count 1, value 8, next IFD 0.
  const ii = Uint8Array.from(
    [[0x49, 0x49, 42, 0, 8, 0, 0, 0], [1, 0], [0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0], [
      0,
      0,
      0,
      0,
    ]]
      .flat(),
  );
  assert.equal(readExifOrientation(ii), 8);
  assert.equal(readExifOrientation(ii.subarray(0, 12)), 1);
  assert.equal(readExifOrientation(new Uint8Array([1, 2, 3])), 1);
});

Deno.test("readExifOrientation: the value read by its TIFF type, the last entry winning, as Pillow's getexif()", () => {
  // A TIFF with IFD0's Orientation entries [type, count, value bytes] (data of more than 4 bytes
  // placed after the IFD), in either byte order.
  const tiff = (little: boolean, entries: [number, number, number[]][]) => {
    const data: number[] = [];
    const at = 8 + 2 + 12 * entries.length + 4;
    const u16 = (v: number) => little ? [v & 255, v >> 8] : [v >> 8, v & 255];
    const u32 = (v: number) =>
      little ? [...u16(v & 0xffff), ...u16(v >>> 16)] : [...u16(v >>> 16), ...u16(v & 0xffff)];
    const out = [
      ...(little ? [0x49, 0x49] : [0x4d, 0x4d]),
      ...u16(42),
      ...u32(8),
      ...u16(entries.length),
    ];
    for (const [type, count, value] of entries) {
      out.push(...u16(0x0112), ...u16(type), ...u32(count));
      if (value.length <= 4) out.push(...value, ...Array(4 - value.length).fill(0));
      else out.push(...u32(at + data.length)), data.push(...value);
    }
    return new Uint8Array([...out, 0, 0, 0, 0, ...data]);
  };
  const be = (bytes: number, v: number) =>
    Array.from({ length: bytes }, (_, i) => (v / 256 ** (bytes - 1 - i)) & 255);
  const double6 = Array.from(new Uint8Array(new Float64Array([6]).buffer)).reverse();
  // What Pillow 9.4's ImageOps.exif_transpose applied to chelsea.jpg with each (checked when written).
  const cases: [string, Uint8Array, number][] = [
    ["LONG 6, big-endian", tiff(false, [[4, 1, be(4, 6)]]), 6],
    ["LONG 0x10006, little-endian", tiff(true, [[4, 1, [6, 0, 1, 0]]]), 1],
    ["SLONG 6", tiff(false, [[9, 1, be(4, 6)]]), 6],
    ["SBYTE 6", tiff(false, [[6, 1, [6]]]), 6],
    ["SSHORT -6", tiff(false, [[8, 1, [0xff, 0xfa]]]), 1],
    ["RATIONAL 12/2", tiff(false, [[5, 1, [...be(4, 12), ...be(4, 2)]]]), 6],
    ["RATIONAL 6/0", tiff(false, [[5, 1, [...be(4, 6), ...be(4, 0)]]]), 1],
    ["DOUBLE 6", tiff(false, [[12, 1, double6]]), 6],
    ["BYTE 6, little-endian (bytes, not a number)", tiff(true, [[1, 1, [6]]]), 1],
    ["ASCII 6", tiff(true, [[2, 1, [6]]]), 1],
    ["UNDEFINED 6", tiff(true, [[7, 1, [6]]]), 1],
    ["SHORT x3 at an offset, first 8", tiff(false, [[3, 3, [0, 8, 0, 3, 0, 3]]]), 8],
    ["SHORT count 0", tiff(true, [[3, 0, [6, 0]]]), 1],
    ["SHORT 6 then SHORT 3", tiff(true, [[3, 1, [6, 0]], [3, 1, [3, 0]]]), 3],
    ["SHORT 6 then BYTE 3", tiff(true, [[3, 1, [6, 0]], [1, 1, [3]]]), 1],
    ["SHORT 6 then an unknown type 99", tiff(true, [[3, 1, [6, 0]], [99, 1, [3, 0]]]), 6],
  ];
  for (const [name, bytes, expected] of cases) {
    assert.equal(readExifOrientation(bytes), expected, name);
  }
});

Deno.test("decodeImage: non-image, empty and truncated bytes give ImageError", async () => {
  assert.throws(
    () => decodeImage(new TextEncoder().encode("hello world")),
    /Unsupported image format/,
  );
  assert.throws(() => decodeImage(new Uint8Array()), ImageError);
  for (const name of ["astronaut_baseline.jpg", "rocket_progressive.jpg", "coffee_rgb.png"]) {
    const bytes = await read(name);
    for (const cut of [3, 20, 200, bytes.length >> 1, bytes.length - 30]) {
      assert.throws(() => decodeImage(bytes.subarray(0, cut)), ImageError, `${name} cut at ${cut}`);
    }
  }
  const corrupt = (await read("coffee_rgb.png")).slice();
  corrupt[1000] ^= 0xff;
  assert.throws(() => decodeImage(corrupt), ImageError);
});

Deno.test("decodeImage: refuses decompression bombs before decoding", () => {
  const huge = png(100_000, 100_000, 8, 2, new Uint8Array(1));
  assert.throws(() => decodeImage(huge), /100000x100000.*at most 64000000 pixels \(maxPixels\)/);
  // JPEG: SOI + SOF0 declaring 65535x65535, no image data.
  const jpeg = new Uint8Array([
    0xff,
    0xd8,
    0xff,
    0xc0,
    0,
    11,
    8,
    0xff,
    0xff,
    0xff,
    0xff,
    1,
    1,
    0x11,
    0,
  ]);
  assert.throws(() => decodeImage(jpeg), /decompression bomb/);
  assert.throws(
    () => decodeImage(png(64, 64, 8, 0, new Uint8Array(65 * 64)), { maxPixels: 4095 }),
    /maxPixels/,
  );
  // A 16x16 PNG whose IDAT inflates to 32 MB.
  const inflating = png(16, 16, 8, 0, new Uint8Array(32 << 20));
  assert.ok(inflating.length < 64 << 10);
  assert.throws(() => decodeImage(inflating), /more than the 272 bytes its header declares/);
  assert.ok(deflateSync); // fflate is the inflater the check relies on
});

Deno.test("preprocess: decoded pixels (RGBA, RGB, grey) equal the encoded path", async () => {
  const image = decodeImage(await read("coffee_rgb.png"));
  const encoded = await preprocess(await read("coffee_rgb.png"));
  assert.deepEqual((await preprocess(image)).data, encoded.data);
  const rgba = new Uint8ClampedArray(image.width * image.height * 4);
  for (let i = 0; i < image.width * image.height; i++) {
    rgba.set(image.data.subarray(i * 3, i * 3 + 3), i * 4);
  }
  assert.deepEqual(
    (await preprocess({ data: rgba, width: image.width, height: image.height })).data,
    encoded.data,
  );
  const grey = decodeImage(await read("camera_grey.png"));
  const single = grey.data.filter((_, i) => i % 3 === 0);
  assert.deepEqual(
    (await preprocess({ data: single, width: grey.width, height: grey.height, channels: 1 })).data,
    (await preprocess(new URL("camera_grey.png", DIR))).data,
  );
});

Deno.test("preprocess: options, presets and batches", async () => {
  const bytes = await read("chelsea_interlaced.png");
  const half = await preprocess(bytes, { normalization: "half", resize: 128, crop: 100 });
  assert.deepEqual(half.shape, [1, 3, 100, 100]);
  assert.ok(half.data.every((v) => v >= -1 && v <= 1));
  const custom = await preprocess(bytes, {
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    resize: 128,
    crop: 100,
  });
  assert.deepEqual(custom.data, half.data);
  const batch = await preprocessBatch([bytes, (await read("coffee_rgb.png")).buffer]);
  assert.deepEqual(batch.shape, [2, 3, 224, 224]);
  assert.deepEqual(batch.data.subarray(0, 3 * 224 * 224), (await preprocess(bytes)).data);
  await assert.rejects(() => preprocess(bytes, { crop: 300 }), OptionError);
  await assert.rejects(() => preprocess(bytes, { std: [1, 0, 1] }), OptionError);
  await assert.rejects(() => preprocess(bytes, { mean: [1, 2] }), OptionError);
  await assert.rejects(() => preprocessBatch([]), ShapeError);
  await assert.rejects(
    () => preprocess({ data: new Uint8Array(5), width: 2, height: 2 }),
    ShapeError,
  );
  await assert.rejects(() => preprocess(new URL("missing.png", DIR)), ImageError);
});

Deno.test("resizeBilinear: matches Pillow's BILINEAR when shrinking and enlarging", () => {
  const grey = (values: number[]) =>
    toRgb({ data: new Uint8Array(values), width: values.length, height: 1, channels: 1 });
  const resized = (values: number[], width: number) =>
    [...resizeBilinear(grey(values), width, 1).data].filter((_, i) => i % 3 === 0);
  // Image.fromarray(...).resize((w, 1), Image.BILINEAR) with Pillow 9.4.
  assert.deepEqual(resized([0, 255, 0, 255], 2), [109, 146]);
  const row = [0, 255, 0, 255, 255, 0, 10];
  assert.deepEqual(resized(row, 3), [109, 180, 58]);
  assert.deepEqual(resized(row, 11), [0, 116, 232, 70, 93, 255, 255, 185, 23, 5, 10]);
  const image = grey(row);
  assert.equal(resizeBilinear(image, 7, 1), image);
});

Deno.test("sample asset decodes and preprocesses", async () => {
  const tensor = await preprocess(new URL("../../../assets/chelsea.jpg", DIR));
  assert.deepEqual(tensor.shape, [1, 3, 224, 224]);
});

Deno.test("decodeImage, preprocess: a second SOI is an ImageError, and both marker readers pass over a stuffed zero to the same frame", async () => {
  // size the header scan found; a decoder reading another frame left the rest of the pixels as
  // whatever the kernels' memory held from the previous image (found by a hostile-input pass).
  const real = await read("astronaut_baseline.jpg");
  const body = real.subarray(2); // the file without its SOI
  const fakeSof = [0xff, 0xc0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0]; // a 1x1 greyscale frame
  // A second SOI: the header scan skips it and reads the 1x1 frame; the decoder read its next two
  // bytes (ff c0) as a segment length and skipped to the real file. libjpeg refuses it.
  const secondSoi = new Uint8Array(4 + 0xffc0 + body.length);
  secondSoi.set([0xff, 0xd8, 0xff, 0xd8, ...fakeSof]);
  secondSoi.set(body, 4 + 0xffc0);
  const message = /second SOI marker \(ff d8\) at byte 2/;
  assert.throws(() => decodeImage(secondSoi), ImageError);
  assert.throws(() => decodeImage(secondSoi), message);
  for (const draft of [false, true]) {
    await preprocess(real); // the kernels' memory holds another image's pixels
    await assert.rejects(preprocess(secondSoi, { draft }), message, `draft ${draft}`);
  }
  // ff 00 where a marker is due, then what looks like a segment length: the header scan and the
  // decoder both pass over the stuffed zero and the bytes after it to the next marker, as
  // libjpeg's next_marker does, so both read the real frame and ignore the 1x1 one after the EOI
  // (Pillow 9.4 decodes this file to the real image's bytes too).
  const stuffed = new Uint8Array(6 + body.length + fakeSof.length + 2);
  stuffed.set([0xff, 0xd8, 0xff, 0x00, (body.length + 2) >> 8, (body.length + 2) & 255]);
  stuffed.set(body, 6);
  stuffed.set([...fakeSof, 0xff, 0xd9], 6 + body.length);
  assert.deepEqual(decodeImage(stuffed).data, decodeImage(real).data);
  for (const draft of [false, true]) {
    await preprocess(secondSoi.subarray(0, 0xffc0)).catch(() => {}); // other bytes in the kernels' memory
    assert.deepEqual(
      (await preprocess(stuffed, { draft })).data,
      (await preprocess(real, { draft })).data,
      `draft ${draft}`,
    );
  }
});

Deno.test("decodeImage: bytes between header segments and a DNL segment are passed over, as libjpeg and Pillow do", async () => {
  // Built from chelsea.jpg (APP0 at byte 2, DQT at 20): Pillow 9.4 decodes each of these files to
  // chelsea's bytes (checked with /usr/bin/python3 when this test was written); libjpeg warns
  // (JWRN_EXTRANEOUS_DATA) or ignores the DNL segment (its read_markers skips it).
  const real = await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url));
  const at = 20;
  assert.deepEqual([...real.subarray(at, at + 2)], [0xff, 0xdb]);
  const insert = (offset: number, extra: number[]) => {
    const out = new Uint8Array(real.length + extra.length);
    out.set(real.subarray(0, offset));
    out.set(extra, offset);
    out.set(real.subarray(offset), offset + extra.length);
    return out;
  };
  const expected = decodeImage(real);
  const cases: [string, Uint8Array][] = [
    ["extraneous bytes", insert(at, [0x00, 0x12, 0x34, 0x6a, 0x75, 0x6e, 0x6b])],
    ["a stuffed zero and fill bytes", insert(at, [0x12, 0xff, 0x00, 0x34, 0xff, 0xff])],
    ["DNL before EOI", insert(real.length - 2, [0xff, 0xdc, 0x00, 0x04, 0x01, 0x2c])],
  ];
  for (const [name, bytes] of cases) {
    const image = decodeImage(bytes);
    assert.equal(image.width, 451, name);
    assert.deepEqual(image.data, expected.data, name);
  }
});

Deno.test("decodeImage: a scan's components are matched as libjpeg-turbo matches them: shared ids in order, the frame's order kept", async () => {
  // chelsea.jpg: SOF0 at byte 158 (component ids at 168, 171, 174), SOS at 609 (selectors at 614,
  // 616, 618). Pillow 9.4 decodes the files with shared ids to chelsea's bytes and refuses the one
  // whose scan lists its components out of the frame's order ("broken data stream"; checked with
  // /usr/bin/python3 when this test was written).
  const real = await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url));
  assert.deepEqual([...real.subarray(158, 160)], [0xff, 0xc0]);
  assert.deepEqual([...real.subarray(609, 611)], [0xff, 0xda]);
  const withIds = (frame: number[], scan: number[]) => {
    const out = real.slice();
    frame.forEach((id, k) => out[168 + 3 * k] = id);
    scan.forEach((id, k) => out[614 + 2 * k] = id);
    return out;
  };
  const expected = decodeImage(real).data;
  for (const ids of [[1, 1, 1], [0, 0, 0], [1, 1, 2], [1, 2, 2]]) {
    assert.deepEqual(decodeImage(withIds(ids, ids)).data, expected, `ids ${ids}`);
  }
  assert.throws(
    () => decodeImage(withIds([1, 2, 3], [2, 1, 3])),
    /scan names component 1 twice or out of the frame's order/,
  );
  assert.throws(() => decodeImage(withIds([1, 2, 3], [1, 1, 3])), ImageError);
  assert.throws(() => decodeImage(withIds([1, 2, 3], [1, 2, 9])), /component 9, not in the frame/);
});

Deno.test("decodeImage: a JPEG without Huffman tables decodes with Annex K's, as libjpeg-turbo and Pillow do (Motion-JPEG frames)", async () => {
  // chelsea.jpg's four DHT segments hold exactly the standard tables; the file without them
  // decodes in Pillow 9.4 to chelsea's bytes (checked with /usr/bin/python3 when this test was
  // written), as do the 4:4:4 and 4:2:0 files Pillow writes with its default tables.
  const real = await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url));
  const kept: number[] = [];
  const tables: string[] = [];
  let at = 2;
  kept.push(0xff, 0xd8);
  while (real[at + 1] !== 0xda) {
    const end = at + 2 + ((real[at + 2] << 8) | real[at + 3]);
    if (real[at + 1] === 0xc4) tables.push(real.subarray(at + 4, end).join());
    else kept.push(...real.subarray(at, end));
    at = end;
  }
  const standard = standardHuffmanTables();
  const bodies = [standard.subarray(0, 29), standard.subarray(29, 58), standard.subarray(58, 237)];
  bodies.push(standard.subarray(237));
  assert.deepEqual(tables.sort(), bodies.map((b) => b.join()).sort());
  const bare = new Uint8Array([...kept, ...real.subarray(at)]);
  for (const simd of [true, false]) {
    assert.deepEqual(decodeJpegPixels(bare, { simd }).data, decodeJpegPixels(real, { simd }).data);
  }
  assert.deepEqual(decodeImage(bare).data, decodeImage(real).data);
  // A table id the standard set lacks (2) stays an error.
  const id2 = bare.slice();
  id2[id2.indexOf(0xda, kept.length - 2) + 5] = 0x22; // the first component's DC and AC table ids
  assert.throws(() => decodeImage(id2), /Huffman table .*2, which was not defined/);
});
