/**
 * The JPEG decoder against libjpeg-turbo as Pillow uses it: decoded samples
 * byte for byte on a corpus Pillow encodes (qualities 50-100; 4:4:4, 4:2:2,
 * 4:2:0; greyscale; progressive; restart intervals; sizes 1x1 to 4095x3;
 * Adobe CMYK; and, re-muxed from Pillow's blocks, 4:4:0, 4:1:1 and 2x4 luma), `preprocess` against torchvision's evaluation transform, and
 * the budgets that refuse hostile headers before allocating.
 *
 * The committed fixtures (tests/fixtures/jpeg/, made by
 * `tools/make_jpeg_corpus.py tests/fixtures/jpeg --fixtures`) run everywhere;
 * the full corpus and the torchvision tensors are made at test time by
 * /usr/bin/python3 with Pillow and torchvision, and skipped with the reason
 * printed when those are missing.
 */

import assert from "node:assert/strict";
import { ImageError } from "../src/errors.ts";
import {
  decodeJpeg,
  decodeJpegDraft,
  decodeJpegPixels,
  decodeJpegPixels as decode,
  type JpegDecodeOptions,
  jpegPixelsToRgb,
} from "../src/image/jpeg.ts";
import { buildHuffmanTable, FAST_AC_BITS, fastAcPairs } from "../src/image/jpeg/entropy.ts";
import { MAX_PASSES } from "../src/image/jpeg/decoder.ts";
import { jpegScanBomb } from "./_support/edge_bytes.ts";
import { idctIslow } from "../src/image/jpeg/idct.ts";
import { idctScaled } from "../src/image/jpeg/idct_scaled.ts";
import { yccToRgbRow } from "../src/image/jpeg/color.ts";
import { imageKernels, kernelArena, residentOffset } from "../src/image/simd.ts";
import { evalTransform, loadForTransform, preprocess } from "../src/image/preprocess.ts";
import { checkLoadOptions } from "../src/image/load.ts";
import { decodeImage } from "../src/image/decode.ts";
import { resizeBilinear, resizeSamples, setResizeSimd } from "../src/image/resize.ts";
import { channelsOf, rgbOf } from "../src/image/pixels.ts";

const FIXTURES = new URL("./fixtures/jpeg/", import.meta.url);
const TOOL = new URL("../tools/make_jpeg_corpus.py", import.meta.url);
const PYTHON = "/usr/bin/python3";

interface Case {
  name: string;
  width: number;
  height: number;
  mode: "L" | "RGB" | "CMYK";
  bytes: number;
}

const CHANNELS = { L: 1, RGB: 3, CMYK: 4 } as const;

/**
 * Decodes every case of a corpus folder on the Wasm SIMD kernels (`simd`) or
 * the TypeScript path and compares with Pillow's bytes; returns the case names.
 */
async function checkCorpus(dir: URL, simd: boolean): Promise<string[]> {
  const manifest: Case[] = JSON.parse(await Deno.readTextFile(new URL("manifest.json", dir)));
  assert(manifest.length > 0, "empty corpus");
  for (const c of manifest) {
    const bytes = await Deno.readFile(new URL(`${c.name}.jpg`, dir));
    const decoded = decodeJpegPixels(bytes, { simd });
    assert.equal(decoded.width, c.width, c.name);
    assert.equal(decoded.height, c.height, c.name);
    assert.equal(decoded.channels, CHANNELS[c.mode], c.name);
    const raw = await Deno.readFile(new URL(`${c.name}.raw`, dir));
    assertBytesEqual(decoded.data, raw, `${c.name} (${c.mode})`);
    const rgb = jpegPixelsToRgb(decoded);
    assert.equal(rgb.data.length, c.width * c.height * 3);
    if (c.mode === "CMYK") {
      assertBytesEqual(rgb.data, await Deno.readFile(new URL(`${c.name}.rgb`, dir)), c.name);
    } else if (c.mode === "L") {
      for (let i = 0; i < raw.length; i++) {
        assert.ok(rgb.data[3 * i] === raw[i] && rgb.data[3 * i + 2] === raw[i], c.name);
      }
      // Greyscale replicated to RGB by the decoder itself (what decodeJpeg asks for).
      const direct = decodeJpegPixels(bytes, { simd, rgb: true });
      assert.equal(direct.channels, 3, c.name);
      assertBytesEqual(direct.data, rgb.data, `${c.name} (rgb: true)`);
    }
  }
  return manifest.map((c) => c.name);
}

function assertBytesEqual(ours: Uint8Array, theirs: Uint8Array, what: string): void {
  assert.equal(ours.length, theirs.length, `${what}: length`);
  let count = 0;
  let max = 0;
  let first = -1;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - theirs[i]);
    if (d !== 0) {
      if (first < 0) first = i;
      count++;
      max = Math.max(max, d);
    }
  }
  assert.equal(
    count,
    0,
    `${what}: ${count} samples differ from Pillow's, up to ${max} levels, first at ${first}`,
  );
}

/** Runs the corpus maker into a fresh folder; undefined (with the reason) when Python cannot. */
async function makeCorpus(flags: string[]): Promise<{ dir?: URL; reason?: string }> {
  const dir = await Deno.makeTempDir({ prefix: "jpeg_corpus_" });
  try {
    const { code, stderr } = await new Deno.Command(PYTHON, {
      args: [TOOL.pathname, dir, ...flags],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      const text = new TextDecoder().decode(stderr).trim().split("\n").at(-1);
      return { reason: `${PYTHON} ${TOOL.pathname} failed: ${text}` };
    }
  } catch (error) {
    return { reason: `cannot run ${PYTHON}: ${(error as Error).message}` };
  }
  return { dir: new URL(`file://${dir}/`) };
}

Deno.test("JPEG: the Wasm SIMD kernels compile here", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  assert.equal(typeof imageKernels(memory)?.idct_islow_blocks, "function");
});

Deno.test("JPEG: committed fixtures decode to Pillow's bytes (Wasm SIMD and TypeScript)", async () => {
  await checkCorpus(FIXTURES, false);
  const names = await checkCorpus(FIXTURES, true);
  assert.ok(names.includes("size_1x1_420") && names.includes("restart_5_444"));
  assert.ok(names.includes("cmyk_progressive") && names.includes("size_4095x3_420"));
  assert.ok(names.includes("sampling_440") && names.includes("sampling_411"));
});

Deno.test("JPEG: the full Pillow-made corpus decodes byte for byte, and preprocess equals torchvision", async (t) => {
  const { dir, reason } = await makeCorpus(["--tensors"]);
  if (!dir) {
    console.log(`SKIPPED: ${reason}`);
    return;
  }
  try {
    await t.step("decoded samples equal Pillow's (TypeScript path)", async () => {
      await checkCorpus(dir, false);
    });
    await t.step("decoded samples equal Pillow's (Wasm SIMD)", async () => {
      const names = await checkCorpus(dir, true);
      console.log(`${names.length} JPEGs byte-equal to Pillow's decode`);
      const kinds = ["q50_444", "q100_422", "420", "grey", "progressive", "restart", "cmyk", "440"];
      for (const kind of [...kinds, "411", "2x4"]) {
        assert.ok(names.some((n) => n.includes(kind)), `corpus lacks ${kind}`);
      }
    });
    await t.step("decoding at 1/2, 1/4, 1/8 equals Pillow's draft()", async () => {
      let checked = 0;
      for await (const entry of Deno.readDir(dir)) {
        const match = entry.name.match(/^(.*)\.d([248])\.raw$/);
        if (!match) continue;
        const scale = Number(match[2]) as 2 | 4 | 8;
        const bytes = await Deno.readFile(new URL(`${match[1]}.jpg`, dir));
        const expected = await Deno.readFile(new URL(entry.name, dir));
        for (const simd of [true, false]) {
          const ours = decodeJpegPixels(bytes, { scale, simd });
          assertBytesEqual(ours.data, expected, `${entry.name} (simd ${simd})`);
        }
        checked++;
      }
      console.log(`${checked} scaled decodes byte-equal to Pillow's draft()`);
      assert.ok(checked >= 24, `expected at least 24 draft references, got ${checked}`);
    });
    await t.step("preprocess equals Resize(256)/CenterCrop(224)/ToTensor/Normalize", async () => {
      const missing = await Deno.readTextFile(new URL("NO_TENSORS", dir)).catch(() => null);
      if (missing !== null) {
        console.log(`SKIPPED: no torchvision for the reference tensors (${missing})`);
        return;
      }
      let checked = 0;
      for await (const entry of Deno.readDir(dir)) {
        if (!entry.name.endsWith(".f32")) continue;
        const name = entry.name.slice(0, -4);
        const file: Uint8Array = await Deno.readFile(new URL(entry.name, dir));
        const expected = new Float32Array(file.buffer, file.byteOffset, file.length / 4);
        const tensor = await preprocess(await Deno.readFile(new URL(`${name}.jpg`, dir)));
        assert.equal(tensor.data.length, expected.length, name);
        let max = 0;
        for (let i = 0; i < expected.length; i++) {
          max = Math.max(max, Math.abs(tensor.data[i] - expected[i]));
        }
        console.log(`${name}: max |ours - torchvision| = ${max}`);
        assert.ok(max <= 1e-6, `${name}: max |diff| ${max} > 1e-6`);
        checked++;
      }
      assert.ok(checked >= 6, `expected at least 6 tensors, got ${checked}`);
    });
  } finally {
    await Deno.remove(dir.pathname, { recursive: true });
  }
});

/** SOI, a frame header of the given size (3 components, 4:2:0) and `padding` bytes of APP data. */
function header(width: number, height: number, padding: number): Uint8Array {
  const app = [0xff, 0xe1, (padding + 2) >> 8, (padding + 2) & 255, ...new Array(padding).fill(0)];
  const sof = [0xff, 0xc0, 0, 17, 8, height >> 8, height & 255, width >> 8, width & 255, 3];
  sof.push(1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1);
  return new Uint8Array([0xff, 0xd8, ...app, ...sof, 0xff, 0xd9]);
}

Deno.test("JPEG budgets: a 65535x65535 header in 2 KB fails before allocating", () => {
  const bytes = header(65535, 65535, 2000);
  assert.ok(bytes.length < 2100);
  // Even with the pixel limit lifted, the block count cannot fit the file.
  assert.throws(
    () => decodeJpegPixels(bytes, { maxPixels: 2 ** 33, maxBytes: 2 ** 40 }),
    (e: Error) => e instanceof ImageError && /blocks, but 2\d+ bytes hold at most/.test(e.message),
  );
  assert.throws(() => decodeJpegPixels(bytes), (e: Error) => /maxPixels/.test(e.message));
});

Deno.test("JPEG budgets: the memory budget is checked from the header", () => {
  // 1000x1000 in a file long enough for its blocks: 1 MB of output, ~4.6 MB planned.
  const bytes = header(1000, 1000, 30_000);
  assert.throws(
    () => decodeJpegPixels(bytes, { maxBytes: 1_000_000 }),
    (e: Error) =>
      e instanceof ImageError && /needs \d+ bytes .* at most 1000000 \(maxBytes\)/.test(e.message),
  );
  // Within budget the header passes and the missing scan is what fails.
  assert.throws(
    () => decodeJpegPixels(bytes),
    (e: Error) => e instanceof ImageError && /no scan holds the data/.test(e.message),
  );
});

Deno.test("JPEG budgets: the scans may pass over the frame's blocks at most MAX_PASSES times", () => {
  // 64x64 greyscale progressive files: a DC scan, then AC scans of one end-of-band run each (a
  // byte that costs a pass over the 64 blocks; a 64-megapixel frame made this way took 53 s per
  // 1000 scans on the TypeScript path, 3 s on the Wasm one).
  assert.equal(MAX_PASSES, 100);
  for (const simd of [true, false]) {
    const { data } = decode(jpegScanBomb(MAX_PASSES), { simd });
    assert.ok(data.every((v) => v === 128), `${MAX_PASSES} passes decode (${simd})`); // Pillow's
    assert.throws(
      () => decode(jpegScanBomb(MAX_PASSES + 1), { simd }),
      (e: Error) =>
        e instanceof ImageError &&
        /scans pass over the frame's 64 blocks more than 100 times/.test(e.message),
    );
  }
});

for (const simd of [true, false]) {
  Deno.test(`JPEG: truncated, corrupt and unsupported data give ImageError (${simd ? "Wasm" : "TypeScript"})`, async () => {
    const decodeJpegPixels = (bytes: Uint8Array) => decode(bytes, { simd });
    const good = await Deno.readFile(new URL("odd_17x33_420.jpg", FIXTURES));
    const sos = good.findLastIndex((b, i) => b === 0xff && good[i + 1] === 0xda);
    assert.ok(sos > 0);
    // Cut inside the entropy-coded data.
    const cut = good.subarray(0, sos + 40);
    assert.throws(
      () => decodeJpegPixels(cut),
      (e: Error) => e instanceof ImageError && /Truncated/.test(e.message),
    );
    // A progressive file without its last scans.
    const progressive = await Deno.readFile(new URL("progressive_odd.jpg", FIXTURES));
    const lastScan = progressive.findLastIndex((b, i) => b === 0xff && progressive[i + 1] === 0xda);
    assert.throws(
      () => decodeJpegPixels(progressive.subarray(0, lastScan)),
      (e: Error) => e instanceof ImageError && /Truncated/.test(e.message),
    );
    // Arithmetic coding (SOF9) is refused by name.
    const arithmetic = good.slice();
    const sof = arithmetic.findIndex((b, i) => b === 0xff && arithmetic[i + 1] === 0xc0);
    arithmetic[sof + 1] = 0xc9;
    assert.throws(() => decodeJpegPixels(arithmetic), /SOF9/);
    // A Huffman table with more codes than its lengths allow.
    const dht = good.slice();
    const at = dht.findIndex((b, i) => b === 0xff && dht[i + 1] === 0xc4);
    dht[at + 5] = 3; // three 1-bit codes
    assert.throws(() => decodeJpegPixels(dht), (e: Error) => e instanceof ImageError);
    // A restart marker out of sequence.
    const restarts = await Deno.readFile(new URL("restart_5_444.jpg", FIXTURES));
    const rst = restarts.findIndex((b, i) => b === 0xff && restarts[i + 1] === 0xd0);
    assert.ok(rst > 0);
    const swapped = restarts.slice();
    swapped[rst + 1] = 0xd3;
    assert.throws(
      () => decodeJpegPixels(swapped),
      (e: Error) =>
        e instanceof ImageError && /expected restart marker RST0 after MCU 5/.test(e.message),
    );
    // 12-bit samples.
    const twelve = good.slice();
    twelve[sof + 4] = 12;
    assert.throws(() => decodeJpegPixels(twelve), /12-bit samples, expected 8-bit/);
    // Headers one byte longer than their fields, and markers libjpeg does not know (Pillow 9.4:
    // "broken data stream" or "cannot identify" for each): the scan header's extra byte moved the
    // image data's start, and an 0xff that a changed byte of the data made ended the scan early.
    const splice = (bytes: Uint8Array, at: number, insert: number[]) =>
      new Uint8Array([...bytes.subarray(0, at), ...insert, ...bytes.subarray(at)]);
    const longer = (bytes: Uint8Array, marker: number) => {
      const at = bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === marker);
      const length = (bytes[at + 2] << 8) | bytes[at + 3];
      const out = splice(bytes, at + 2 + length, [0]);
      out[at + 3]++;
      return out;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ["SOS + 1", longer(good, 0xda), /scan header \(SOS\) of 11 bytes for 3 components/],
      ["SOF + 1", longer(good, 0xc0), /frame header \(SOF\) of 16 bytes for 3 components/],
      ["DRI + 1", longer(restarts, 0xdd), /DRI segment of 3 bytes, expected 2/],
      ...[0x02, 0x5a, 0xbf, 0xc8, 0xde, 0xdf, 0xf0, 0xfd].map((
        code,
      ): [string, Uint8Array, RegExp] => [
        `marker ${code}`,
        splice(good, sos, [0xff, code, 0, 2]),
        new RegExp(`unknown marker 0xff${code.toString(16).padStart(2, "0")} at byte ${sos}`),
      ]),
    ];
    for (const [name, bytes, message] of cases) {
      assert.throws(
        () => decodeJpegPixels(bytes),
        (e: Error) => e instanceof ImageError && message.test(e.message),
        name,
      );
    }
    // DAC, APPn and COM segments are skipped (Pillow reads these files).
    for (const code of [0xcc, 0xe5, 0xfe]) decodeJpegPixels(splice(good, sos, [0xff, code, 0, 2]));
  });
}

Deno.test("resizeBilinear: the Wasm SIMD passes give the TypeScript passes' bytes", () => {
  let cases = 0;
  for (const [w, h] of [[451, 300], [37, 5], [1, 1], [2, 9], [640, 480]]) {
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < data.length; i++) data[i] = (Math.imul(i, 2654435761) >>> 13) & 255;
    const image = { data, width: w, height: h };
    for (const [ow, oh] of [[384, 256], [256, 341], [w, 7], [5, h], [w * 2, h * 3], [1, 1]]) {
      const regions = [undefined, {
        left: ow >> 2,
        top: Math.floor(oh / 3),
        width: Math.max(1, ow >> 1),
        height: Math.max(1, oh >> 1),
      }];
      for (const region of regions) {
        setResizeSimd(false);
        const expected = resizeBilinear(image, ow, oh, region).data;
        setResizeSimd(true);
        assertBytesEqual(
          resizeBilinear(image, ow, oh, region).data,
          expected,
          `${w}x${h} -> ${ow}x${oh}`,
        );
        cases++;
      }
    }
  }
  assert.equal(cases, 60);
});

Deno.test("resizeSamples: a grey image resized as one channel gives each channel of its RGB replica's resize (Wasm SIMD and TypeScript)", () => {
  let cases = 0;
  // Widths and row counts off multiples of 4 and 8; downscales of up to 40 taps per pixel.
  for (const [w, h] of [[451, 300], [37, 5], [1, 1], [2, 9], [640, 480], [13, 7]]) {
    const data = new Uint8Array(w * h);
    for (let i = 0; i < data.length; i++) data[i] = (Math.imul(i, 2654435761) >>> 13) & 255;
    const grey = { data, width: w, height: h, channels: 1 as const };
    const rgb = rgbOf(grey);
    for (
      const [ow, oh] of [[384, 256], [256, 341], [w, 7], [5, h], [w * 2, h * 3], [1, 1], [31, 6]]
    ) {
      const regions = [undefined, {
        left: ow >> 2,
        top: Math.floor(oh / 3),
        width: Math.max(1, ow >> 1),
        height: Math.max(1, oh >> 1),
      }];
      for (const region of regions) {
        setResizeSimd(false);
        const expected = resizeBilinear(rgb, ow, oh, region).data.filter((_, i) => i % 3 === 0);
        for (const simd of [false, true]) {
          setResizeSimd(simd);
          const ours = resizeSamples(grey, ow, oh, region);
          assert.equal(channelsOf(ours), 1);
          assertBytesEqual(ours.data, expected, `${w}x${h} -> ${ow}x${oh} (simd ${simd})`);
        }
        cases++;
      }
    }
  }
  setResizeSimd(true);
  assert.equal(cases, 84);
});

Deno.test("resizeBilinear reads a just-decoded JPEG where the decoder left it, with the same bytes", async () => {
  const bytes = await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url));
  const region = { left: 40, top: 0, width: 224, height: 224 };
  const first = decodeJpeg(bytes, 1 << 24);
  kernelArena(1); // any kernel call in between: the resize copies the image in
  assert.equal(residentOffset(first.data), undefined);
  const copied = resizeBilinear(first, 336, 224, region).data;
  const image = decodeJpeg(bytes, 1 << 24);
  assert.equal(
    residentOffset(image.data) !== undefined,
    imageKernels(new WebAssembly.Memory({ initial: 1 })) !== undefined,
  );
  const image2 = decodeJpeg(bytes, 1 << 24);
  assert.equal(residentOffset(image.data), undefined, "stale after another decode");
  assertBytesEqual(resizeBilinear(image2, 336, 224, region).data, copied, "read in place");
  assert.equal(residentOffset(image2.data), undefined, "used once");
});

Deno.test("preprocess decodes only what its crop reads, and gives the tensor of the whole decode", async () => {
  const names = [
    ...[...Deno.readDirSync(FIXTURES)].filter((e) => e.name.endsWith(".jpg")).map((e) =>
      new URL(e.name, FIXTURES)
    ),
    ...["astronaut_baseline", "camera_grey_q90", "rocket_progressive", "chelsea_exif6"].map((n) =>
      new URL(`./fixtures/images/${n}.jpg`, import.meta.url)
    ),
    new URL("../assets/chelsea.jpg", import.meta.url),
  ];
  const settings = [[256, 224], [64, 17], [100, 100], [33, 1], [300, 250], [9, 3]];
  let checked = 0;
  for (const url of names) {
    const bytes = await Deno.readFile(url);
    for (const [resize, crop] of settings) {
      for (const draft of [false, true]) {
        const transform = evalTransform({ resize, crop, draft, maxPixels: 1 << 24 });
        // The whole image decoded, then the transform.
        const whole = draft
          ? decodeJpegDraft(bytes, { minSide: resize, maxPixels: 1 << 24 })
          : decodeImage(bytes);
        const expected = transform(whole);
        const ours = (await preprocess(bytes, { resize, crop, draft })).data;
        // The same partial decode with a kernel call in between: the resize
        // reads the decoder's copy (only the rows it made are copied out).
        const image = await loadForTransform(bytes, checkLoadOptions({}), transform);
        // A greyscale JPEG comes as one channel, resized as one.
        assert.equal(channelsOf(image), url.pathname.endsWith("_grey_q90.jpg") ? 1 : 3);
        kernelArena(1);
        const fromCopy = transform(image);
        for (let i = 0; i < expected.length; i++) {
          if (!Object.is(ours[i], expected[i]) || !Object.is(fromCopy[i], expected[i])) {
            assert.fail(
              `${url.pathname.split("/").at(-1)} resize ${resize} crop ${crop} draft ${draft}: ` +
                `element ${i} (${Object.is(ours[i], expected[i]) ? "from the copy" : "in place"})`,
            );
          }
        }
        checked++;
      }
    }
  }
  assert.ok(checked >= 200, `checked ${checked}`);
});

Deno.test("JPEG: the Wasm reduced IDCTs give the TypeScript idctScaled bytes, extreme values included", () => {
  const memory = new WebAssembly.Memory({ initial: 2 });
  const kernels = imageKernels(memory);
  if (!kernels) {
    console.log("SKIPPED: Wasm SIMD cannot be compiled here");
    return;
  }
  let seed = 12345;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const blocks = 64;
  const coef = new Int16Array(memory.buffer, 4096, blocks * 64);
  const quant = new Uint16Array(64);
  const extremes = [0, 1, -1, 32767, -32768, 2047, -2048];
  for (let b = 0; b < blocks; b++) {
    // Sparse, dense, and extreme blocks: each term kept with a probability that varies per block.
    const density = b % 4 === 0 ? 0 : b % 4 === 1 ? 0.1 : b % 4 === 2 ? 0.5 : 1;
    for (let i = 0; i < 64; i++) {
      if (i > 0 && random() >= density) continue;
      coef[b * 64 + i] = b >= 48
        ? extremes[Math.floor(random() * extremes.length)]
        : Math.floor(random() * 512 - 256);
    }
  }
  let checked = 0;
  for (const size of [4, 2, 1]) {
    for (const big of [false, true]) {
      for (let i = 0; i < 64; i++) quant[i] = big ? 65535 - i : 1 + Math.floor(random() * 99);
      new Int32Array(memory.buffer, 0, 64).set(quant);
      const stride = 8 * size;
      kernels.idct_reduced_blocks(4096, 8, 8, 8, 0, 20480, stride, size, 1024, false, 0, 0);
      const ours = new Uint8Array(memory.buffer, 20480, stride * 8 * size);
      const expected = new Uint8Array(stride * 8 * size);
      for (let b = 0; b < blocks; b++) {
        const at = Math.floor(b / 8) * size * stride + (b % 8) * size;
        idctScaled(size, coef, b * 64, quant, expected, at, stride);
      }
      assertBytesEqual(ours, expected, `size ${size}, quant ${big ? "65535" : "1-99"}`);
      checked++;
      if (size === 1) {
        // Blocks kept as their DC terms alone (2 bytes each).
        const dc = new Int16Array(memory.buffer, 24576, blocks);
        for (let b = 0; b < blocks; b++) dc[b] = coef[b * 64];
        kernels.idct_reduced_blocks(24576, 8, 8, 8, 0, 20480, stride, size, 1024, true, 0, 0);
        assertBytesEqual(ours, expected, `DC terms alone, quant ${big ? "65535" : "1-99"}`);
        checked++;
      }
    }
  }
  assert.equal(checked, 8);
});

Deno.test("JPEG: the Wasm islow IDCT gives the TypeScript idctIslow bytes, extreme values and blocks zero outside their top-left 2x2, 4x4, 8x4 or 4x8 terms included, also with the DC terms apart and unmarked blocks unread", () => {
  const memory = new WebAssembly.Memory({ initial: 2 });
  const kernels = imageKernels(memory);
  if (!kernels) {
    console.log("SKIPPED: Wasm SIMD cannot be compiled here");
    return;
  }
  let seed = 54321;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const blocks = 64;
  const COEF = 4096;
  const OUT = 20480;
  const DC = 28672;
  const MARKS = 29696;
  const coef = new Int16Array(memory.buffer, COEF, blocks * 64);
  const clean = new Int16Array(blocks * 64);
  const extremes = [0, 1, -1, 32767, -32768, 2047, -2048];
  // The terms a block may have (rows x columns from the top left): the kernel's shortcuts.
  const shapes = [[8, 8], [2, 2], [4, 4], [8, 4], [4, 8], [2, 4], [4, 2], [1, 2]];
  for (let b = 0; b < blocks; b++) {
    // DC alone, sparse and dense blocks of each shape; extreme values in the last 32.
    const density = b % 4 === 0 ? 0 : b % 4 === 1 ? 0.1 : b % 4 === 2 ? 0.5 : 1;
    const [high, wide] = shapes[(b >> 2) % shapes.length];
    for (let i = 0; i < 64; i++) {
      if (i > 0 && (random() >= density || i >> 3 >= high || (i & 7) >= wide)) continue;
      clean[b * 64 + i] = b >= 32
        ? extremes[Math.floor(random() * extremes.length)]
        : Math.floor(random() * 512 - 256);
    }
  }
  const quant = new Uint16Array(64);
  const stride = 8 * 8;
  let checked = 0;
  for (const big of [false, true]) {
    for (let i = 0; i < 64; i++) quant[i] = big ? 65535 - i : 1 + Math.floor(random() * 99);
    new Int32Array(memory.buffer, 0, 64).set(quant);
    const expected = new Uint8Array(stride * 64);
    for (let b = 0; b < blocks; b++) {
      idctIslow(
        clean,
        b * 64,
        quant,
        expected,
        Math.floor(b / 8) * 8 * stride + (b % 8) * 8,
        stride,
      );
    }
    coef.set(clean);
    kernels.idct_islow_blocks(COEF, 8, 8, 8, 0, OUT, stride, 0, 0);
    assertBytesEqual(
      new Uint8Array(memory.buffer, OUT, stride * 64),
      expected,
      `quant ${quant[0]}`,
    );
    // A progressive frame's layout: the DC terms apart (the blocks' own are not read) and
    // blocks with no AC term unmarked and never cleared (their memory is not read).
    const dc = new Int16Array(memory.buffer, DC, blocks);
    const marks = new BigUint64Array(memory.buffer, MARKS, blocks);
    for (let b = 0; b < blocks; b++) {
      dc[b] = clean[b * 64];
      const ac = clean.subarray(b * 64 + 1, b * 64 + 64).some((v) => v !== 0);
      marks[b] = ac ? 1n : 0n;
      coef[b * 64] = 12345;
      if (!ac) coef.fill(-7, b * 64, b * 64 + 64);
    }
    new Uint8Array(memory.buffer, OUT, stride * 64).fill(0);
    kernels.idct_islow_blocks(COEF, 8, 8, 8, 0, OUT, stride, DC, MARKS);
    assertBytesEqual(
      new Uint8Array(memory.buffer, OUT, stride * 64),
      expected,
      `DC apart, quant ${quant[0]}`,
    );
    checked += 2;
  }
  assert.equal(checked, 4);
});

Deno.test("JPEG: the Wasm YCbCr -> RGB conversion gives yccToRgbRow's bytes for every (Y, Cb, Cr)", () => {
  // Row r, column x: Cb = x & 255, Cr = (x >> 8) & 255 (the chroma planes are one row, stride
  // 0), Y = (r + 7x) & 255: each (Cb, Cr) pair meets every Y. 13 more columns reach the kernel's
  // 8-pixel step and its scalar tail.
  const width = 65536 + 13;
  const rows = 256;
  const DESC = 0;
  const Y = 1024;
  const CB = Y + width * rows;
  const CR = CB + width;
  const OUT = CR + width;
  const memory = new WebAssembly.Memory({ initial: Math.ceil((OUT + width * rows * 3) / 65536) });
  const kernels = imageKernels(memory);
  if (!kernels) {
    console.log("SKIPPED: Wasm SIMD cannot be compiled here");
    return;
  }
  const bytes = new Uint8Array(memory.buffer);
  for (let x = 0; x < width; x++) {
    bytes[CB + x] = x & 255;
    bytes[CR + x] = (x >> 8) & 255;
    for (let r = 0; r < rows; r++) bytes[Y + r * width + x] = (r + 7 * x) & 255;
  }
  // Per component: plane, stride, width, height, hExpand, vExpand (full size: no upsampling).
  const words = new Int32Array(memory.buffer, DESC, 36);
  [[Y, width], [CB, 0], [CR, 0]].forEach(([plane, stride], i) => {
    words.set([plane, stride, width, rows, 1, 1, 0, 0, 0, 0, 0, 0], 12 * i);
  });
  kernels.convert_image(DESC, 1, OUT, width, 0, rows, 0, width);
  const expected = new Uint8Array(width * 3);
  const cb = bytes.slice(CB, CB + width);
  const cr = bytes.slice(CR, CR + width);
  for (let r = 0; r < rows; r++) {
    yccToRgbRow(bytes.subarray(Y + r * width, Y + (r + 1) * width), cb, cr, expected, 0, width);
    const row = bytes.subarray(OUT + r * width * 3, OUT + (r + 1) * width * 3);
    if (!row.every((v, i) => v === expected[i])) assertBytesEqual(row, expected, `row ${r}`);
  }
});

Deno.test("decodeJpegDraft: picks the smallest scale that keeps the shorter side", async () => {
  const bytes = await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url));
  const sizes = [300, 150, 75, 37, 38, 1].map((minSide) => {
    const image = decodeJpegDraft(bytes, { minSide });
    assert.equal(image.data.length, image.width * image.height * 3);
    return `${image.width}x${image.height}`;
  });
  // 300 / 2 = 150 >= 150; 300 / 4 = 75; 300 / 8 = 37 (>= 37, not >= 38).
  assert.deepEqual(sizes, ["451x300", "226x150", "113x75", "57x38", "113x75", "57x38"]);
});

Deno.test("JPEG fuzz: mutated files decode or throw ImageError, on both paths, at every scale (seeded)", async () => {
  let seed = 0x9e3779b9;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const names = ["odd_17x33_420", "progressive_odd", "restart_5_444", "cmyk_progressive"];
  let decoded = 0;
  let refused = 0;
  for (const name of names) {
    const original = await Deno.readFile(new URL(`${name}.jpg`, FIXTURES));
    for (let i = 0; i < 300; i++) {
      const bytes = original.slice(
        0,
        random() < 0.1 ? Math.floor(random() * original.length) : undefined,
      );
      for (let k = 1 + Math.floor(random() * 4); k > 0; k--) {
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      // Every fourth file at 1/2, 1/4 or 1/8 (the reduced IDCTs, streamed or not).
      const scale = ([1, 2, 4, 8] as const)[i % 4];
      const outcomes = [true, false].map((simd) => {
        try {
          const image = decodeJpegPixels(bytes, { simd, maxPixels: 1 << 20, scale });
          return image.data;
        } catch (error) {
          if (!(error instanceof ImageError) && !(error instanceof RangeError)) throw error;
          return (error as Error).message;
        }
      });
      if (typeof outcomes[0] === "string") {
        assert.equal(outcomes[0], outcomes[1], `${name} #${i}: the paths disagree`);
        refused++;
      } else {
        assertBytesEqual(outcomes[0], outcomes[1] as Uint8Array, `${name} #${i}`);
        decoded++;
      }
    }
  }
  console.log(`${decoded} mutated files decoded (same bytes on both paths), ${refused} refused`);
  assert.ok(decoded > 0 && refused > 0);
});

Deno.test("JPEG: where Wasm cannot be compiled at run time, the TypeScript path gives the same bytes", async () => {
  // A child process whose WebAssembly.Module throws, as on Cloudflare Workers.
  const script = `
    WebAssembly.Module = function () { throw new Error("Wasm code generation disallowed by embedder"); };
    const { decodeJpeg } = await import(${
    JSON.stringify(new URL("../src/image/jpeg.ts", import.meta.url).href)
  });
    const { imageKernels } = await import(${
    JSON.stringify(new URL("../src/image/simd.ts", import.meta.url).href)
  });
    const image = decodeJpeg(await Deno.readFile(${
    JSON.stringify(new URL("../assets/chelsea.jpg", import.meta.url).pathname)
  }), 1e8);
    console.log(JSON.stringify({ kernels: imageKernels(new WebAssembly.Memory({ initial: 1 })) !== undefined, sum: image.data.reduce((a, b) => (a * 31 + b) >>> 0, 0) }));
  `;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const child = JSON.parse(new TextDecoder().decode(stdout));
  const bytes = await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url));
  const ours = jpegPixelsToRgb(decodeJpegPixels(bytes));
  assert.equal(child.kernels, false);
  assert.equal(child.sum, ours.data.reduce((a, b) => (a * 31 + b) >>> 0, 0));
});

Deno.test("JPEG: the one-lookup AC table resolves coefficients, runs of 16 zeros and ends of block", () => {
  // Codes: "00" end of block, "01" run 0 size 1, "100" run of 16 zeros, "101" run 2 size 2.
  const counts = new Uint8Array(16);
  counts[1] = 2;
  counts[2] = 2;
  const table = buildHuffmanTable(counts, new Uint8Array([0x00, 0x01, 0xf0, 0x22]));
  const at = (prefix: string) => table.fastAc[parseInt(prefix.padEnd(FAST_AC_BITS, "0"), 2)];
  const entry = (value: number, run: number, bits: number) => (value << 16) | (run << 8) | bits;
  assert.equal(at("00"), entry(0, 63, 2)); // run 63: the position passes 63
  assert.equal(at("011"), entry(1, 0, 3));
  assert.equal(at("010"), entry(-1, 0, 3));
  assert.equal(at("100"), entry(0, 15, 3)); // a 0 stored 15 on, then the next position
  assert.equal(at("10110"), entry(2, 2, 5));
  assert.equal(at("10101"), entry(-2, 2, 5));
  assert.equal(at("11"), 0); // no such code: the decoder's slow path reports it
});

Deno.test("JPEG: the AC pair table holds the symbol after a coefficient or a run of 16 zeros when the prefix holds it whole", () => {
  // The codes of the test above: "00" end of block, "01" run 0 size 1, "100" run of 16 zeros,
  // "101" run 2 size 2.
  const counts = new Uint8Array(16);
  counts[1] = 2;
  counts[2] = 2;
  const table = buildHuffmanTable(counts, new Uint8Array([0x00, 0x01, 0xf0, 0x22]));
  const at = (prefix: string) =>
    fastAcPairs(table.fastAc)[parseInt(prefix.replaceAll(" ", "").padEnd(FAST_AC_BITS, "0"), 2)];
  const pair = (bits: number, step: number, value: number) =>
    bits | (step << 4) | ((value & 31) << 11);
  assert.equal(at("011 00"), pair(5, 64, 0)); // a 1, then the end of the block
  assert.equal(at("010 101 11"), pair(8, 3, 3)); // a -1, then run 2 and a 2
  assert.equal(at("100 100"), pair(6, 16, 0)); // two runs of 16 zeros
  assert.equal(at("100 010"), pair(6, 1, -1));
  assert.equal(at("00"), 0); // nothing after an end of block
  assert.equal(at("011 11"), 3); // no such second code: the first's bits alone
});

Deno.test("JPEG: a block whose last coefficient is at position 63 leaves the next code to the next block (one-lookup pairs)", () => {
  // 16x8 greyscale, 2 blocks. DC: "0" size 0. AC: "00" end of block, "01" run 0 size 1,
  // "100" run of 16 zeros, "101" run 2 size 2. Block 0 ends at position 63 with no end of block:
  // 2 runs of 16 zeros, run 2 and a 2 at 35, then 1s at 36-63. The pairs (35, 36), (37, 38)
  // ... (61, 62) leave the 1 at 63 first in its lookup, whose pair entry reads on into block 1's
  // DC code "0" and AC code "011" as an end of block "00".
  const file = greyJpeg(
    0xc0,
    16,
    [[0x00, 1, ...Array(15).fill(0), 0], [
      0x10,
      0,
      2,
      2,
      ...Array(13).fill(0),
      0x00,
      0x01,
      0xf0,
      0x22,
    ]],
    0,
    [[[0, 63, 0], "0 100 100 101 10" + " 011".repeat(28) + " 0 011 00"]],
  );
  const reference = decode(file, { simd: false });
  const wasm = decode(file, { simd: true });
  assert.deepEqual([wasm.width, wasm.height], [16, 8]);
  assert.deepEqual(Array.from(wasm.data), Array.from(reference.data));
  // Block 1 is a DC-free block with one AC term: not flat.
  assert.notEqual(reference.data[8], reference.data[15]);
});

/** A marker segment: ff, the code, the big-endian length (2 + the body's), the body. */
function jpegSegment(code: number, body: number[]): number[] {
  return [0xff, code, (body.length + 2) >> 8, (body.length + 2) & 255, ...body];
}

/** Entropy-coded bytes from a string of bits (spaces ignored), padded with ones to a whole byte. */
function bitString(text: string): number[] {
  const bits = text.replaceAll(" ", "");
  const padded = bits.padEnd(Math.ceil(bits.length / 8) * 8, "1");
  return Array.from(
    { length: padded.length / 8 },
    (_, i) => parseInt(padded.slice(8 * i, 8 * i + 8), 2),
  );
}

/**
 * An 8-row greyscale JPEG `width` pixels wide (quantisers 16): its frame marker `sof`, its Huffman
 * tables (DHT bodies), its restart interval (0: none) and its scans, each the scan header's bytes
 * after the component selector, then each restart interval's bits.
 */
function greyJpeg(
  sof: number,
  width: number,
  tables: number[][],
  interval: number,
  scans: [number[], ...string[]][],
): Uint8Array {
  const bytes = [0xff, 0xd8, ...jpegSegment(0xdb, [0, ...Array(64).fill(16)])];
  bytes.push(...jpegSegment(sof, [8, 0, 8, 0, width, 1, 1, 0x11, 0]));
  for (const table of tables) bytes.push(...jpegSegment(0xc4, table));
  if (interval) bytes.push(...jpegSegment(0xdd, [0, interval]));
  for (const [header, ...intervals] of scans) {
    bytes.push(...jpegSegment(0xda, [1, 1, 0, ...header]));
    intervals.forEach((bits, i) => {
      bytes.push(...bitString(bits));
      if (i < intervals.length - 1) bytes.push(0xff, 0xd0 + (i & 7));
    });
  }
  return new Uint8Array([...bytes, 0xff, 0xd9]);
}

/** A JPEG's segments (a scan with its entropy-coded data), SOI first and EOI last. */
function jpegSegments(file: Uint8Array): { code: number; bytes: Uint8Array }[] {
  const out = [{ code: 0xd8, bytes: file.subarray(0, 2) }];
  for (let p = 2; p < file.length;) {
    const code = file[p + 1];
    if (code === 0xd9) {
      out.push({ code, bytes: file.subarray(p, p + 2) });
      break;
    }
    let end = p + 2 + ((file[p + 2] << 8) | file[p + 3]);
    const restart = (b: number) => b === 0 || (b >= 0xd0 && b <= 0xd7);
    if (code === 0xda) {
      while (end < file.length && !(file[end] === 0xff && !restart(file[end + 1]))) {
        end++;
      }
    }
    out.push({ code, bytes: file.subarray(p, end) });
    p = end;
  }
  return out;
}

/** Fills the image kernels' kept memory with the bytes of `random` (what a last image could leave). */
function poisonKernelMemory(random: () => number): void {
  const bytes = new Uint8Array(kernelArena(4 << 20)!.memory.buffer);
  const fill = Math.floor(random() * 256);
  for (let i = 0; i < bytes.length; i += 4096) {
    bytes.fill(fill ^ (i >> 12), i, i + 4096);
    bytes[i + Math.floor(random() * 4096)] = Math.floor(random() * 256);
  }
}

Deno.test("JPEG stale memory: with the kept kernel memory full of garbage, scans dropped or reordered, every scale and edge crops give the TypeScript bytes", () => {
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const names = [
    "progressive_odd",
    "cmyk_progressive",
    "restart_5_444",
    "odd_17x33_420",
    "size_7x9_420",
    "sampling_411",
    "sampling_440",
  ];
  const outcome = (bytes: Uint8Array, options: JpegDecodeOptions) => {
    try {
      const { data, width, channels } = decode(bytes, { maxPixels: 1 << 20, ...options });
      const r = options.region ??
        { left: 0, right: width, top: 0, bottom: data.length / (width * channels) };
      const rows = [];
      for (let y = r.top; y < r.bottom; y++) {
        rows.push(
          ...data.subarray((y * width + r.left) * channels, (y * width + r.right) * channels),
        );
      }
      return Uint8Array.from(rows);
    } catch (error) {
      if (!(error instanceof ImageError)) throw error;
      return error.message;
    }
  };
  let compared = 0;
  for (const name of names) {
    const file = Deno.readFileSync(new URL(`${name}.jpg`, FIXTURES));
    const segments = jpegSegments(file);
    const scans = segments.filter((s) => s.code === 0xda);
    const tables = segments.filter((s) => s.code !== 0xda && s.code !== 0xd9);
    const variants = [file];
    for (let i = 0; i < 8 && scans.length > 1; i++) {
      // The first scan (DC terms) kept; some of the others dropped, sometimes the rest reordered.
      let kept = scans.filter((_, j) => j === 0 || random() < 0.5);
      if (i % 2) {
        kept = kept.map((s) => [random(), s] as const).sort((a, b) => a[0] - b[0]).map((s) => s[1]);
      }
      const parts = [...tables, ...kept, segments.at(-1)!].map((s) => s.bytes);
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
      variants.push(bytes);
    }
    const { width: w, height: h } = decode(file, { simd: false });
    for (const bytes of variants) {
      for (const scale of [1, 2, 4, 8] as const) {
        const W = Math.ceil(w / scale);
        const H = Math.ceil(h / scale);
        const regions = [
          undefined,
          { left: W - 1, right: W, top: H - 1, bottom: H },
          { left: 0, right: 1, top: H - 1, bottom: H },
          { left: Math.max(0, W - 9), right: W, top: 0, bottom: Math.min(H, 5) },
          { left: W >> 1, right: (W >> 1) + 1, top: H >> 1, bottom: (H >> 1) + 1 },
        ];
        for (const region of regions) {
          const expected = outcome(bytes, { simd: false, scale, region });
          for (let round = 0; round < 2; round++) {
            poisonKernelMemory(random);
            const ours = outcome(bytes, { simd: true, scale, region });
            const what = `${name} (${variants.indexOf(bytes)}) 1/${scale} ${
              JSON.stringify(region)
            }`;
            if (typeof expected === "string") assert.equal(ours, expected, what);
            else assertBytesEqual(ours as Uint8Array, expected, what);
            compared++;
          }
        }
      }
    }
  }
  assert.ok(compared > 800, `compared ${compared}`);
});

/** A 32x8 greyscale progressive JPEG (4 blocks, quantisers 16) made of `scans`: each a header (Ss, Se, Ah/Al) and its restart intervals' bytes. */
function tinyProgressive(restartInterval: number, scans: [number[], ...number[][]][]): Uint8Array {
  const bytes = [0xff, 0xd8, ...jpegSegment(0xdb, [0, ...Array(64).fill(16)])];
  bytes.push(...jpegSegment(0xc2, [8, 0, 8, 0, 32, 1, 1, 0x11, 0]));
  bytes.push(...jpegSegment(0xc4, [0x00, 1, ...Array(15).fill(0), 0])); // DC: "0" is 0
  // AC: "00" run 0 size 1, "01" an end-of-band run of 8 + 3 bits, "10" end of block.
  bytes.push(...jpegSegment(0xc4, [0x10, 0, 3, ...Array(14).fill(0), 0x01, 0x30, 0x00]));
  if (restartInterval) bytes.push(...jpegSegment(0xdd, [0, restartInterval]));
  for (const [header, ...intervals] of scans) {
    bytes.push(...jpegSegment(0xda, [1, 1, 0, ...header]));
    intervals.forEach((data, i) => {
      bytes.push(...data);
      if (i < intervals.length - 1) bytes.push(0xff, 0xd0 + (i & 7));
    });
  }
  return new Uint8Array([...bytes, 0xff, 0xd9]);
}

Deno.test("JPEG: an end-of-band run ends at its restart interval's end and may pass the image's end (Pillow's bytes, also over a stale memory)", () => {
  // Restart interval 2: the AC first scan's first block starts a run of 15
  // blocks ("01" + "111"), which the restart after block 1 ends; block 2 then
  // has a term at k = 1 ("00" "1", then "10"), block 3 none.
  const across = tinyProgressive(2, [[[0, 0, 0], [0x3f], [0x3f]], [[1, 63, 0], [0x7f], [0x35]]]);
  // No restarts: the run of 15 covers the 4 blocks and passes the end.
  const pastEnd = tinyProgressive(0, [[[0, 0, 0], [0x0f]], [[1, 63, 0], [0x7f]]]);
  // Pillow 9.4 (libjpeg-turbo) on these files: every row alike.
  const flat = Array(8).fill(128);
  const block2 = [131, 130, 130, 129, 127, 126, 126, 125];
  const cases = [
    [across, [...flat, ...flat, ...block2, ...flat]],
    [pastEnd, [...flat, ...flat, ...flat, ...flat]],
  ] as const;
  let seed = 7;
  for (const [bytes, row] of cases) {
    for (const simd of [false, true]) {
      // A last image's bytes where the coefficients go.
      new Uint8Array(kernelArena(1 << 20)!.memory.buffer).fill(seed++ * 37);
      const { data, width, height } = decode(bytes, { simd });
      assert.deepEqual([width, height], [32, 8]);
      for (let y = 0; y < 8; y++) {
        assert.deepEqual(
          Array.from(data.subarray(32 * y, 32 * y + 32)),
          row,
          `row ${y} (${simd ? "Wasm" : "TypeScript"})`,
        );
      }
    }
  }
});

Deno.test("JPEG: refinement scans' end-of-band runs across restarts, a band refined with no term, a DC refinement with no first scan (Pillow's bytes, also over a stale memory)", () => {
  // 32x8 greyscale progressive files (4 blocks, quantisers 16) written as bit
  // strings, each restart interval padded with ones. DC codes: "00" size 0,
  // "01" size 2. AC codes: "00" run 0 size 1, "01" an end-of-band run of
  // 8 + 3 bits, "10" end of block, "110" run 1 size 1.
  const file = (restartInterval: number, scans: [number[], ...string[]][]) =>
    greyJpeg(
      0xc2,
      32,
      [
        [0x00, 0, 2, ...Array(14).fill(0), 0, 2],
        [0x10, 0, 3, 1, ...Array(13).fill(0), 0x01, 0x30, 0x00, 0x11],
      ],
      restartInterval,
      scans,
    );
  // Pillow 9.4 (libjpeg-turbo) on these files: every row alike.
  const cases = [
    [
      "AC 1-5 first, 1-63 refined: a run of 15 blocks, the last block's band empty",
      file(0, [
        [[0, 0, 0x01], "01 11 00 00 01 00"],
        [[1, 5, 0x01], "00 1 10 10 00 0 10 10"],
        [[1, 63, 0x10], "01 111 1 1"],
        [[0, 0, 0x10], "1010"],
      ]),
      [150, 149, 147, 144, 140, 137, 135, 134, ...Array(8).fill(140)].concat(
        [134, 135, 137, 140, 144, 147, 149, 150, ...Array(8).fill(128)],
      ),
    ],
    [
      "restart interval 1: refinement runs that each restart ends",
      file(1, [
        [[0, 0, 0x01], "01 11", "00", "00", "01 00"],
        [[1, 5, 0x01], "00 1 10", "10", "00 0 10", "10"],
        [[1, 63, 0x10], "01 111 1", "00 1 10", "01 000 1", "10"],
      ]),
      [148, 147, 145, 142, 138, 135, 133, 132, 131, 130, 130, 129, 127, 126, 126, 125].concat(
        [120, 121, 123, 126, 130, 133, 135, 136, ...Array(8).fill(116)],
      ),
    ],
    [
      "a DC refinement with no DC first scan",
      file(0, [[[0, 0, 0x10], "1011"], [[1, 63, 0x00], "00 1 10 10 10 10"]]),
      [133, 132, 132, 131, 129, 128, 128, 127, ...Array(8).fill(128), ...Array(16).fill(130)],
    ],
  ] as const;
  let fill = 1;
  for (const [what, bytes, row] of cases) {
    for (const simd of [false, true]) {
      new Uint8Array(kernelArena(1 << 20)!.memory.buffer).fill(fill++ * 89);
      const { data, width, height } = decode(bytes, { simd });
      assert.deepEqual([width, height], [32, 8], what);
      for (let y = 0; y < 8; y++) {
        assert.deepEqual(
          Array.from(data.subarray(32 * y, 32 * y + 32)),
          row,
          `${what}: row ${y} (${simd ? "Wasm" : "TypeScript"})`,
        );
      }
    }
  }
});

Deno.test("JPEG: where the data runs out at a marker, the MCUs after the one that read past it are left as they are until the next restart, as libjpeg's insufficient_data (Pillow's bytes, also over a stale memory)", () => {
  // 64x8 greyscale files (8 blocks, quantisers 16) written as bit strings, each
  // restart interval padded with ones. DC codes: "0" size 2, "10" size 0.
  const file = (sof: number, interval: number, ac: number[], scans: [number[], ...string[]][]) =>
    greyJpeg(
      sof,
      64,
      [
        [0x00, 1, 1, ...Array(14).fill(0), 2, 0],
        [0x10, 1, 1, ...Array(14).fill(0), ...ac],
      ],
      interval,
      scans,
    );
  // Sequential, restart interval 3; AC codes "0" end of block, "10" run 0 size 1. Block 1 reads
  // a zero bit past RST0, so block 2 is left zero (grey, where reading on gave a DC term of -1);
  // the restart resets it, blocks 3-7 are decoded.
  const sequential = file(0xc0, 3, [0x00, 0x01], [
    [[0, 63, 0], "0 10 10 1 0", "0 11 0 10 0 10 0", "0 01 0 10 0"],
  ]);
  // Progressive; AC codes "0" run 0 size 1, "10" end of band. The DC scan runs out in block 3
  // (blocks 4-7 keep a DC term of 0), the AC scan in block 2 (blocks 3-7 get no AC term; reading
  // on gave each 63 terms of -1).
  const progressive = file(0xc2, 0, [0x01, 0x00], [
    [[0, 0, 0], "0 11 10 10 0"],
    [[1, 63, 0], "0 1 10 10 0 1"],
  ]);
  // Pillow 9.4 (libjpeg-turbo) on these files.
  const grey = (n: number) => Array(n).fill(128);
  const sequentialRow = [
    ...[135, 134, 134, 133, 131, 130, 130, 129],
    ...Array(8).fill(132),
    ...grey(8),
    ...Array(24).fill(134),
    ...Array(16).fill(124),
  ];
  const block2 = [
    [30, 171, 115, 146, 122, 134, 124, 127],
    [172, 132, 146, 135, 138, 133, 133, 131],
    [117, 147, 134, 139, 132, 133, 130, 130],
    [150, 138, 141, 136, 136, 133, 132, 131],
    [128, 144, 136, 138, 133, 133, 130, 130],
    [143, 140, 139, 137, 135, 133, 131, 130],
    [134, 143, 138, 138, 134, 133, 131, 130],
    [138, 142, 138, 137, 135, 133, 131, 130],
  ];
  const progressiveRow = (y: number) => [
    ...[137, 136, 136, 135, 133, 132, 132, 131],
    ...Array(8).fill(134),
    ...block2[y],
    ...grey(40),
  ];
  let seed = 11;
  for (const simd of [false, true]) {
    for (
      const [bytes, row] of [[sequential, () => sequentialRow], [
        progressive,
        progressiveRow,
      ]] as const
    ) {
      // A last image's bytes where the coefficients go.
      new Uint8Array(kernelArena(1 << 20)!.memory.buffer).fill(seed++ * 37);
      const { data, width, height } = decode(bytes, { simd });
      assert.deepEqual([width, height], [64, 8]);
      for (let y = 0; y < 8; y++) {
        assert.deepEqual(
          Array.from(data.subarray(64 * y, 64 * y + 64)),
          row(y),
          `${bytes === sequential ? "sequential" : "progressive"} row ${y} (${
            simd ? "Wasm" : "TypeScript"
          })`,
        );
      }
    }
  }
});

Deno.test("JPEG: a sequential component's later scan writes its terms over the earlier scan's (Pillow's bytes, also over a stale memory); another scan after one of every component, and a scan naming a component twice, are ImageErrors as in libjpeg", () => {
  // 16x8 4:4:4 YCbCr files (2 blocks a component, quantisers 16) written as bit strings, each scan
  // padded with ones. DC codes "0" size 2, "10" size 0; AC codes "0" end of block, "10" run 0 size 1.
  const file = (scans: [number[], string][]) => {
    const bytes = [0xff, 0xd8, ...jpegSegment(0xdb, [0, ...Array(64).fill(16)])];
    bytes.push(...jpegSegment(0xc0, [8, 0, 8, 0, 16, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]));
    bytes.push(...jpegSegment(0xc4, [0x00, 1, 1, ...Array(14).fill(0), 2, 0]));
    bytes.push(...jpegSegment(0xc4, [0x10, 1, 1, ...Array(14).fill(0), 0x00, 0x01]));
    for (const [ids, bits] of scans) {
      bytes.push(...jpegSegment(0xda, [ids.length, ...ids.flatMap((id) => [id, 0]), 0, 63, 0]));
      bytes.push(...bitString(bits));
    }
    return new Uint8Array([...bytes, 0xff, 0xd9]);
  };
  const chroma: [number[], string][] = [[[2], "10 0 10 0"], [[3], "10 0 10 0"]];
  // Y (block 0: DC 2 and a term at k = 1; block 1: DC 2), Cb, Cr, then Y again (DC 3 and 1, no
  // AC term): libjpeg keeps block 0's term at k = 1, which clearing the block dropped (Wasm path).
  const merged = file([[[1], "0 10 10 1 0 10 0"], ...chroma, [[1], "0 11 0 0 01 0"]]);
  // Pillow 9.4 (libjpeg-turbo): every row alike.
  const row = [
    ...[137, 137, 137, 136, 136, 136, 136, 136, 136, 135, 135, 135, 133, 133, 133, 132],
    ...[132, 132, 132, 132, 132, 131, 131, 131],
    ...Array(24).fill(130),
  ];
  let seed = 5;
  for (const simd of [false, true]) {
    new Uint8Array(kernelArena(1 << 20)!.memory.buffer).fill(seed++ * 37);
    const { data, width, height } = decode(merged, { simd });
    assert.deepEqual([width, height], [16, 8]);
    for (let y = 0; y < 8; y++) {
      assert.deepEqual(
        Array.from(data.subarray(48 * y, 48 * y + 48)),
        row,
        `row ${y} (${simd ? "Wasm" : "TypeScript"})`,
      );
    }
    // Pillow: "broken data stream" for both (JERR_EOI_EXPECTED, JERR_BAD_COMPONENT_ID).
    const again = file([[[1, 2, 3], "0 10 10 1 0 10 0 10 0 10 0 10 0 10 0"], [
      [1],
      "0 11 0 0 01 0",
    ]]);
    assert.throws(
      () => decode(again, { simd }),
      (e: Error) =>
        e instanceof ImageError && /expected the end of the image \(EOI\)/.test(e.message),
    );
    const twice = file([[[1, 1], "100 100 100 100"], ...chroma]);
    assert.throws(
      () => decode(twice, { simd }),
      (e: Error) => e instanceof ImageError && /names component 1 twice/.test(e.message),
    );
  }
});

Deno.test("JPEG: a sequential component's later scan keeps the earlier terms where its runs of 16 zeros and its end of block fall (Pillow's bytes, also over a stale memory)", () => {
  // 16x8 4:4:4 YCbCr (quantisers 16), chroma flat. DC: "0" size 2, "10" size 0. AC: "0" end of
  // block, "10" run 0 size 1, "110" a run of 16 zeros, "1110" run 14 size 1. Y's first scan: block
  // 0 holds 1s at zig-zag 15, 16, 31, 46, 61, 62 and 63 (no end of block), block 1 nothing. Its
  // later scan: block 0 a run of 16 zeros (to 16) and an end of block, block 1 an end of block.
  // libjpeg keeps the terms at 16 and 63; the one-lookup entries stored 0s there (Wasm path).
  const bytes = [0xff, 0xd8, ...jpegSegment(0xdb, [0, ...Array(64).fill(16)])];
  bytes.push(...jpegSegment(0xc0, [8, 0, 8, 0, 16, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]));
  bytes.push(...jpegSegment(0xc4, [0x00, 1, 1, ...Array(14).fill(0), 2, 0]));
  bytes.push(
    ...jpegSegment(0xc4, [0x10, 1, 1, 1, 1, ...Array(12).fill(0), 0x00, 0x01, 0xf0, 0xe1]),
  );
  const scans: [number, string][] = [
    [1, "10 1110 1 10 1 1110 1 1110 1 1110 1 10 1 10 1  10 0"],
    [2, "10 0 10 0"],
    [3, "10 0 10 0"],
    [1, "10 110 0  10 0"],
  ];
  for (const [id, bits] of scans) {
    bytes.push(...jpegSegment(0xda, [1, id, 0, 0, 63, 0]), ...bitString(bits));
  }
  const file = new Uint8Array([...bytes, 0xff, 0xd9]);
  // Pillow 9.4 (libjpeg-turbo): grey (R = G = B); block 0's luma, block 1 all 128.
  const block0 = [
    [137, 117, 125, 134, 134, 120, 125, 133],
    [127, 132, 123, 136, 120, 131, 130, 126],
    [132, 119, 138, 122, 131, 125, 132, 126],
    [128, 131, 119, 139, 123, 127, 130, 127],
    [130, 122, 136, 125, 125, 130, 130, 126],
    [129, 127, 125, 132, 128, 123, 133, 126],
    [131, 123, 128, 132, 124, 130, 127, 129],
    [123, 132, 135, 123, 120, 133, 139, 119],
  ];
  const expected = block0.flatMap((row) =>
    [...row, ...Array(8).fill(128)].flatMap((v) => [v, v, v])
  );
  let seed = 11;
  for (const simd of [false, true]) {
    new Uint8Array(kernelArena(1 << 20)!.memory.buffer).fill(seed++ * 37);
    const { data, width, height } = decode(file, { simd });
    assert.deepEqual([width, height], [16, 8]);
    assert.deepEqual(Array.from(data), expected, simd ? "Wasm" : "TypeScript");
  }
});
