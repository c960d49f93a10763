/**
 * Images as an attacker sends them: small PNG and JPEG seeds mutated
 * thousands of times (seeded, so failures reproduce), PNGs whose chunks are
 * rearranged with valid CRCs, and the PNG structure rules of issue 14. Every
 * outcome must be an image or a `GoogLeNetError`, and after every case a good
 * call must give the baseline tensor bit for bit. Thin images are checked
 * against PIL + torchvision (fixtures from `tools/make_fuzz_fixtures.py`).
 */

import assert from "node:assert/strict";
import { GoogLeNetError, ImageError } from "../src/errors.ts";
import { decodeImage } from "../src/image/decode.ts";
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  preprocess,
  preprocessBatch,
} from "../src/image/preprocess.ts";
import { crc32 } from "../src/weights/zip.ts";
import {
  ancillaryBombPng,
  badDepthPng,
  greyPng,
  ihdrData,
  pngChunk,
  pngOf,
  rgbIdat,
  twoIhdrPng,
} from "./_support/hostile_bytes.ts";

const DIR = new URL("./fixtures/fuzz/", import.meta.url);
const SEEDS = [
  "fuzz_baseline.jpg",
  "fuzz_progressive.jpg",
  "fuzz_grey.jpg",
  "fuzz_palette.png",
  "fuzz_interlaced.png",
];
const ITERATIONS = 800;
/** Keeps mutated headers from asking for large (if bounded) images. */
const OPTIONS = { maxPixels: 1 << 20 };

/** Mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0xffffffff, 0x10000, 1 << 24];

/** One random mutation: bit flips, byte or 32-bit overwrites, truncation, insertion, deletion. */
function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  const at = () => Math.floor(random() * bytes.length);
  const out = bytes.slice();
  switch (Math.floor(random() * 6)) {
    case 0:
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) out[at()] ^= 1 << (random() * 8);
      return out;
    case 1:
      out[at()] = INTERESTING[Math.floor(random() * 5)];
      return out;
    case 2: {
      if (out.length < 4) return out.subarray(0, 0);
      const i = Math.min(at(), out.length - 4);
      const value = INTERESTING[Math.floor(random() * INTERESTING.length)];
      new DataView(out.buffer).setUint32(i, value >>> 0, random() < 0.5);
      return out;
    }
    case 3:
      return out.subarray(0, at());
    case 4: {
      const i = at();
      const inserted = new Uint8Array(1 + Math.floor(random() * 8)).map(() => random() * 256);
      return Uint8Array.from([...out.subarray(0, i), ...inserted, ...out.subarray(i)]);
    }
    default: {
      const i = at();
      return Uint8Array.from([...out.subarray(0, i), ...out.subarray(i + 1 + random() * 8)]);
    }
  }
}

/** The chunks of a well-formed PNG, as [type, data]. */
function chunksOf(png: Uint8Array): [string, Uint8Array][] {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: [string, Uint8Array][] = [];
  for (let at = 8; at + 12 <= png.length;) {
    const length = view.getUint32(at);
    chunks.push([
      String.fromCharCode(...png.subarray(at + 4, at + 8)),
      png.slice(at + 8, at + 8 + length),
    ]);
    at += 12 + length;
  }
  return chunks;
}

/**
 * A PNG-aware mutation with valid CRCs, so that the decoder gets past the
 * checksums: a chunk duplicated, dropped, moved or with its data mutated.
 */
function mutateChunks(png: Uint8Array, random: () => number): Uint8Array {
  const chunks = chunksOf(png);
  const pick = () => Math.floor(random() * chunks.length);
  switch (Math.floor(random() * 4)) {
    case 0:
      chunks.splice(pick(), 0, chunks[pick()]);
      break;
    case 1:
      chunks.splice(pick(), 1);
      break;
    case 2: {
      const [moved] = chunks.splice(pick(), 1);
      chunks.splice(pick(), 0, moved);
      break;
    }
    default: {
      const i = pick();
      chunks[i] = [chunks[i][0], mutate(chunks[i][1], random)];
    }
  }
  return pngOf(chunks.map(([type, data]) => pngChunk(type, data)));
}

/** Decodes and preprocesses `input`; anything but a whole image or a GoogLeNetError fails. */
async function attempt(input: Uint8Array, what: string): Promise<boolean> {
  try {
    const image = decodeImage(input, OPTIONS);
    // A decoded image is whole: never a short buffer that classifies as black.
    assert.equal(image.data.length, image.width * image.height * 3, `${what}: RGB size`);
    const tensor = await preprocess(input, OPTIONS);
    assert.equal(tensor.data.length, 3 * 224 * 224, `${what}: tensor size`);
    return true;
  } catch (error) {
    if (error instanceof GoogLeNetError) return false;
    throw new Error(`${what}: ${error instanceof Error ? error.stack : error}`, { cause: error });
  }
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const i = x.findIndex((v, k) => v !== y[k]);
  assert.equal(i, -1, `${what}: element ${i} is ${a[i]}, expected ${b[i]}`);
}

for (const [index, name] of SEEDS.entries()) {
  Deno.test(`fuzz: mutated ${name} decodes or throws a GoogLeNetError; the seed's tensor stays bit-identical`, async () => {
    const seed = await Deno.readFile(new URL(name, DIR));
    const baseline = (await preprocess(seed)).data;
    const random = prng(100 + index);
    const png = name.endsWith(".png");
    let accepted = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const input = png && random() < 0.5 ? mutateChunks(seed, random) : mutate(seed, random);
      if (await attempt(input, `${name}, iteration ${i}`)) accepted++;
      if (i % 100 === 99) sameBits((await preprocess(seed)).data, baseline, `${name} after ${i}`);
    }
    sameBits((await preprocess(seed)).data, baseline, `${name} at the end`);
    console.log(`  ${name}: ${accepted} of ${ITERATIONS} mutations still decode`);
    assert.ok(accepted > 0, "some mutations (in pixel data) must still decode");
    assert.ok(accepted < ITERATIONS, "some mutations must be refused");
  });
}

Deno.test("PNG structure: two IHDR chunks, a forbidden colour-type/bit-depth pair and misplaced chunks are ImageErrors", async () => {
  const idat = await rgbIdat(8, 8);
  const iend = pngChunk("IEND", new Uint8Array());
  const ihdr = pngChunk("IHDR", ihdrData(8, 8));
  const plte = pngChunk("PLTE", new Uint8Array(48));
  const cases: [string, Uint8Array, RegExp][] = [
    ["two IHDR", await twoIhdrPng(), /expected one IHDR chunk, found a second/],
    ["RGB at depth 1", await badDepthPng(), /colour type 2 at bit depth 1/],
    [
      "RGBA at depth 4",
      pngOf([pngChunk("IHDR", ihdrData(8, 8, 4, 6)), idat, iend]),
      /colour type 6 at bit depth 4/,
    ],
    [
      "palette at depth 16",
      pngOf([pngChunk("IHDR", ihdrData(8, 8, 16, 3)), idat, iend]),
      /colour type 3 at bit depth 16/,
    ],
    ["colour type 5", pngOf([pngChunk("IHDR", ihdrData(8, 8, 8, 5)), idat, iend]), /colour type 5/],
    [
      "palette image without PLTE",
      pngOf([pngChunk("IHDR", ihdrData(8, 8, 8, 3)), idat, iend]),
      /without a PLTE/,
    ],
    [
      "PLTE after IDAT",
      pngOf([pngChunk("IHDR", ihdrData(8, 8, 8, 3)), idat, plte, iend]),
      /PLTE before the image data/,
    ],
    ["no IDAT", pngOf([ihdr, iend]), /at least one IDAT/],
    ["no IEND", pngOf([ihdr, idat]), /Truncated PNG/],
    [
      "unknown critical chunk",
      pngOf([ihdr, pngChunk("ABCD", new Uint8Array(4)), idat, iend]),
      /unknown critical chunk/,
    ],
    ["chunk length past the end", pngOf([ihdr, idat, iend]).slice(0, 60), /Truncated PNG/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(
      () => decodeImage(bytes),
      (e: unknown) => e instanceof ImageError && message.test(e.message),
      what,
    );
  }
  // The ancillary chunks are skipped, not inflated: the image is the one without them.
  const plain = decodeImage(await greyPng(8, 8));
  const bomb = decodeImage(await ancillaryBombPng(64 << 20));
  assert.deepEqual(bomb.data, plain.data);
  assert.ok(crc32(plain.data) !== 0);
});

Deno.test("thin images: preprocess resizes only the crop's region, exactly as PIL + torchvision do", async () => {
  for (const name of ["thin_3x700", "thin_700x2"]) {
    const tensor = await preprocess(new URL(`${name}.png`, DIR));
    const reference = decodeImage(await Deno.readFile(new URL(`${name}.expected.png`, DIR)));
    assert.equal(reference.width, 224);
    const pixels = 224 * 224;
    let max = 0;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < pixels; i++) {
        const level = (tensor.data[c * pixels + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
        max = Math.max(max, Math.abs(level - reference.data[i * 3 + c]));
      }
    }
    console.log(`  ${name}: max ${max.toFixed(4)} levels from PIL + torchvision`);
    assert.ok(max < 1e-3, `${name}: max ${max} levels`);
  }
});

Deno.test("preprocess and preprocessBatch use in-memory images as they were when called", async () => {
  const bytes = await greyPng(40, 30);
  const pixels = { data: new Uint8Array(40 * 30 * 3).fill(200), width: 40, height: 30 };
  const expected = [
    (await preprocess(bytes.slice(), { resize: 32, crop: 32 })).data,
    (await preprocess({ ...pixels, data: pixels.data.slice() }, { resize: 32, crop: 32 })).data,
  ];
  const single = [
    preprocess(bytes, { resize: 32, crop: 32 }),
    preprocess(pixels, { resize: 32, crop: 32 }),
  ];
  const batch = preprocessBatch(["assets/chelsea.jpg", bytes, pixels], { resize: 32, crop: 32 });
  // The caller changes its arrays while the calls are pending (the batch is reading a file).
  bytes.fill(0);
  pixels.data.fill(0);
  sameBits((await single[0]).data, expected[0], "preprocess(bytes)");
  sameBits((await single[1]).data, expected[1], "preprocess(pixels)");
  const n = 3 * 32 * 32;
  const out = (await batch).data;
  sameBits(out.subarray(n, 2 * n), expected[0], "preprocessBatch, bytes");
  sameBits(out.subarray(2 * n, 3 * n), expected[1], "preprocessBatch, pixels");
});
