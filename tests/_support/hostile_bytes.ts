/**
 * Small files that expand without bound, and other hostile inputs of issue
 * 14, built at test time (nothing large is committed): a ZIP whose directory
 * points many entries at one deflate stream, a pickle that rebuilds a strided
 * view of one storage many times, PNGs with a compressed ancillary chunk that
 * inflates to hundreds of MB, two IHDR chunks or a forbidden colour-type/bit-
 * depth pair, a 1 x N image, and a pickle whose dict key nests 5000 deep.
 *
 * @module
 */

import { PickleEncoder } from "../../src/weights/pickle.ts";
import { crc32, writeZip } from "../../src/weights/zip.ts";

/** `n` zero bytes compressed as zlib (`"deflate"`) or raw deflate, streamed (no `n`-byte buffer). */
export async function compressedZeros(
  n: number,
  format: "deflate" | "deflate-raw",
): Promise<Uint8Array<ArrayBuffer>> {
  const zero = new Uint8Array(1 << 20);
  let left = n;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left <= 0) return controller.close();
      controller.enqueue(left >= zero.length ? zero : zero.subarray(0, left));
      left -= zero.length;
    },
  });
  const stream = source.pipeThrough(
    new CompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- PNG ----

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** One PNG chunk with its length and CRC. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** The 13 bytes of an IHDR chunk's data. */
export function ihdrData(width: number, height: number, depth = 8, colorType = 2): Uint8Array {
  const data = new Uint8Array(13);
  const view = new DataView(data.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  data.set([depth, colorType, 0, 0, 0], 8);
  return data;
}

/** A PNG of the given chunks (signature first, nothing checked). */
export function pngOf(chunks: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return concat([new Uint8Array(PNG_SIGNATURE), ...chunks]);
}

/** zlib-compressed bytes. */
async function zlib(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The IDAT chunk of a `width` x `height` 8-bit RGB image of grey level `level`. */
export async function rgbIdat(width: number, height: number, level = 128): Promise<Uint8Array> {
  const row = 1 + width * 3;
  const raw = new Uint8Array(height * row).fill(level);
  for (let y = 0; y < height; y++) raw[y * row] = 0; // filter type None
  return pngChunk("IDAT", await zlib(raw));
}

/** A valid `width` x `height` grey (128) RGB PNG with `extra` chunks before its IDAT. */
export async function greyPng(
  width: number,
  height: number,
  extra: Uint8Array[] = [],
): Promise<Uint8Array<ArrayBuffer>> {
  return pngOf([
    pngChunk("IHDR", ihdrData(width, height)),
    ...extra,
    await rgbIdat(width, height),
    pngChunk("IEND", new Uint8Array()),
  ]);
}

/**
 * An 8x8 PNG with an iCCP, a zTXt and an iTXt chunk each holding `inflated`
 * zero bytes compressed (512 MiB is about 0.5 MB of file per chunk).
 */
export async function ancillaryBombPng(inflated: number): Promise<Uint8Array<ArrayBuffer>> {
  const zeros = await compressedZeros(inflated, "deflate");
  const text = (s: string) => new TextEncoder().encode(s);
  return await greyPng(8, 8, [
    pngChunk("iCCP", concat([text("icc\0"), new Uint8Array([0]), zeros])),
    pngChunk("zTXt", concat([text("Comment\0"), new Uint8Array([0]), zeros])),
    pngChunk("iTXt", concat([text("Comment\0"), new Uint8Array([1, 0]), text("\0\0"), zeros])),
  ]);
}

/** An 8x8 PNG with a second IHDR declaring 64x64 after the first. */
export async function twoIhdrPng(): Promise<Uint8Array<ArrayBuffer>> {
  return pngOf([
    pngChunk("IHDR", ihdrData(8, 8)),
    pngChunk("IHDR", ihdrData(64, 64)),
    await rgbIdat(8, 8),
    pngChunk("IEND", new Uint8Array()),
  ]);
}

/** An 8x8 PNG declaring RGB (colour type 2) at bit depth 1, which PNG forbids, over 8-bit data. */
export async function badDepthPng(): Promise<Uint8Array<ArrayBuffer>> {
  return pngOf([
    pngChunk("IHDR", ihdrData(8, 8, 1, 2)),
    await rgbIdat(8, 8),
    pngChunk("IEND", new Uint8Array()),
  ]);
}

// ---- weight files ----

/** A `torch.save`-style pickle of `OrderedDict` items pushed by `body` (between MARK and SETITEMS). */
function statePickle(body: (p: PickleEncoder) => void): Uint8Array<ArrayBuffer> {
  const p = new PickleEncoder().proto().global("collections", "OrderedDict").tuple(() => {})
    .reduce().mark();
  body(p);
  return p.setItems().stop().finish();
}

/** Pushes `("storage", torch.FloatStorage, key, "cpu", numel)` as a persistent id. */
function storageId(p: PickleEncoder, key: string, numel: number): void {
  p.tuple((pid) =>
    pid.string("storage").global("torch", "FloatStorage").string(key).string("cpu").int(numel)
  ).persistentId();
}

/** Pushes the argument tuple of `_rebuild_tensor_v2` for `size` and `stride` over storage `key`. */
function rebuildArgs(
  p: PickleEncoder,
  key: string,
  numel: number,
  size: number[],
  stride: number[],
) {
  p.tuple((a) => {
    storageId(a, key, numel);
    a.int(0);
    a.tuple((s) => size.forEach((d) => s.int(d)));
    a.tuple((s) => stride.forEach((d) => s.int(d)));
    a.false().global("collections", "OrderedDict").tuple(() => {}).reduce();
  });
}

const VERSION = new TextEncoder().encode("3\n");

/**
 * A `.pth` whose ZIP directory lists `entries` storages all pointing at one
 * deflate stream of `inflated` zero bytes: under 100 KB of file, `entries` x
 * `inflated` bytes if each storage is inflated separately.
 */
export async function sharedStreamZip(
  entries: number,
  inflated: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const numel = inflated / 4;
  const pickle = statePickle((p) => {
    for (let i = 0; i < entries; i++) {
      p.string(`w${i}`).global("torch._utils", "_rebuild_tensor_v2");
      rebuildArgs(p, String(i), numel, [numel], [1]);
      p.reduce();
    }
  });
  // Stored entries first (data.pkl, version), then the one deflated stream, then the directory.
  const stored = writeZip([
    { name: "a/data.pkl", data: pickle },
    { name: "a/version", data: VERSION },
  ]);
  const storedView = new DataView(stored.buffer);
  const storedEnd = stored.length - 22;
  const storedDirOffset = storedView.getUint32(storedEnd + 16, true);
  const storedDir = stored.slice(storedDirOffset, storedEnd);
  const deflated = await compressedZeros(inflated, "deflate-raw");
  const crc = crc32(new Uint8Array(inflated));
  const name = new TextEncoder().encode("a/data/0");
  const local = new Uint8Array(30 + name.length);
  const lv = new DataView(local.buffer);
  lv.setUint32(0, 0x04034b50, true);
  lv.setUint16(4, 20, true);
  lv.setUint16(8, 8, true); // deflate
  lv.setUint32(14, crc, true);
  lv.setUint32(18, deflated.length, true);
  lv.setUint32(22, inflated, true);
  lv.setUint16(26, name.length, true);
  local.set(name, 30);
  const streamOffset = storedDirOffset;
  const central: Uint8Array[] = [storedDir];
  for (let i = 0; i < entries; i++) {
    const entryName = new TextEncoder().encode(`a/data/${i}`);
    const c = new Uint8Array(46 + entryName.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, 8, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, deflated.length, true);
    cv.setUint32(24, inflated, true);
    cv.setUint16(28, entryName.length, true);
    cv.setUint32(42, streamOffset, true); // every entry: the same local header and stream
    c.set(entryName, 46);
    central.push(c);
  }
  const directory = concat(central);
  const directoryOffset = streamOffset + local.length + deflated.length;
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries + 2, true);
  ev.setUint16(10, entries + 2, true);
  ev.setUint32(12, directory.length, true);
  ev.setUint32(16, directoryOffset, true);
  return concat([stored.subarray(0, storedDirOffset), local, deflated, directory, eocd]);
}

/**
 * A `.pth` of one `side` x `side` float32 storage whose pickle rebuilds its
 * transpose (a strided view, so a copy) `copies` times through memoised
 * `REDUCE`: about 5 bytes of pickle per copy of `4 * side^2` bytes.
 */
export function reduceBombPth(copies: number, side: number): Uint8Array<ArrayBuffer> {
  const numel = side * side;
  const pickle = statePickle((p) => {
    p.string("w").global("torch._utils", "_rebuild_tensor_v2").put(1);
    rebuildArgs(p, "0", numel, [side, side], [1, side]);
    p.put(2).reduce();
    p.string("copies").tuple((t) => {
      for (let i = 0; i < copies; i++) t.get(1).get(2).reduce();
    });
  });
  return writeZip([
    { name: "a/data.pkl", data: pickle },
    { name: "a/data/0", data: new Uint8Array(numel * 4) },
    { name: "a/version", data: VERSION },
  ]);
}

/** A `.pth` whose state dict's only key is a tuple nested `depth` deep. */
export function nestedKeyPth(depth: number): Uint8Array<ArrayBuffer> {
  // PROTO 2, EMPTY_DICT, EMPTY_TUPLE, TUPLE1 x depth, NONE, SETITEM, STOP.
  const pickle = new Uint8Array([
    0x80,
    2,
    0x7d,
    0x29,
    ...new Array(depth).fill(0x85),
    0x4e,
    0x73,
    0x2e,
  ]);
  return writeZip([{ name: "a/data.pkl", data: pickle }, { name: "a/version", data: VERSION }]);
}

/**
 * `prefix`, `count` copies of `byte`, then `suffix`, compressed as a stream
 * (never held whole).
 */
async function compressedRepeat(
  prefix: number[],
  byte: number,
  count: number,
  suffix: number[],
  format: "deflate" | "deflate-raw",
): Promise<Uint8Array<ArrayBuffer>> {
  const chunk = new Uint8Array(1 << 20).fill(byte);
  let left = count;
  let started = false;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!started) {
        started = true;
        return controller.enqueue(new Uint8Array(prefix));
      }
      if (left <= 0) {
        controller.enqueue(new Uint8Array(suffix));
        return controller.close();
      }
      controller.enqueue(left >= chunk.length ? chunk : chunk.subarray(0, left));
      left -= chunk.length;
    },
  });
  const stream = source.pipeThrough(
    new CompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * A `.pth` whose `data.pkl` is deflated: `PROTO 2`, `count` x `EMPTY_DICT`,
 * `STOP` (1 GiB of pickle in about 1 MB of file; its CRC is not computed, as
 * a reader must refuse it from its declared size).
 */
export async function deflatedPicklePth(count: number): Promise<Uint8Array<ArrayBuffer>> {
  const deflated = await compressedRepeat([0x80, 2], 0x7d, count, [0x2e], "deflate-raw");
  const size = count + 3;
  const name = new TextEncoder().encode("a/data.pkl");
  const local = new Uint8Array(30 + name.length);
  const lv = new DataView(local.buffer);
  lv.setUint32(0, 0x04034b50, true);
  lv.setUint16(4, 20, true);
  lv.setUint16(8, 8, true);
  lv.setUint32(18, deflated.length, true);
  lv.setUint32(22, size, true);
  lv.setUint16(26, name.length, true);
  local.set(name, 30);
  const central = new Uint8Array(46 + name.length);
  const cv = new DataView(central.buffer);
  cv.setUint32(0, 0x02014b50, true);
  cv.setUint16(4, 20, true);
  cv.setUint16(6, 20, true);
  cv.setUint16(10, 8, true);
  cv.setUint32(20, deflated.length, true);
  cv.setUint32(24, size, true);
  cv.setUint16(28, name.length, true);
  central.set(name, 46);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, 1, true);
  ev.setUint16(10, 1, true);
  ev.setUint32(12, central.length, true);
  ev.setUint32(16, local.length + deflated.length, true);
  return concat([local, deflated, central, eocd]);
}

/** A `.pth` whose stored pickle pushes `count` empty dicts (one byte each, ~200 bytes of heap). */
export function emptyDictsPth(count: number): Uint8Array<ArrayBuffer> {
  const pickle = new Uint8Array(count + 3).fill(0x7d);
  pickle.set([0x80, 2]);
  pickle[count + 2] = 0x2e;
  return writeZip([{ name: "a/data.pkl", data: pickle }, { name: "a/version", data: VERSION }]);
}

/**
 * A safetensors file of `headerBytes` of JSON header, `{"a": [[], [], ...]}`:
 * one array per 3 bytes, each tens of bytes of heap once parsed.
 */
export function arrayHeaderSafetensors(headerBytes: number): Uint8Array<ArrayBuffer> {
  const file = new Uint8Array(8 + headerBytes).fill(0x20);
  new DataView(file.buffer).setBigUint64(0, BigInt(headerBytes), true);
  const open = new TextEncoder().encode('{"a":[');
  file.set(open, 8);
  let at = 8 + open.length;
  const end = file.length - 4;
  for (; at + 3 <= end; at += 3) file.set([0x5b, 0x5d, 0x2c], at); // "[],"
  file.set([0x5b, 0x5d, 0x5d, 0x7d], at); // "[]]}"
  return file;
}
