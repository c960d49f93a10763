/**
 * The ZIP container of PyTorch checkpoints: a lazy reader of the central
 * directory (stored entries are returned as views, deflated ones inflated by
 * fflate after their sizes are checked) and a writer of stored entries whose
 * data is aligned as PyTorch's own writer aligns it.
 *
 * @module
 */

import { inflateSync } from "npm:fflate@0.8.2";
import { WeightsFormatError } from "../errors.ts";

/** One file of a ZIP archive, as its central directory describes it. */
export interface ZipEntry {
  /** Path inside the archive. */
  readonly name: string;
  /** 0 (stored) or 8 (deflated). */
  readonly method: number;
  /** CRC-32 of the uncompressed bytes. */
  readonly crc32: number;
  /** Bytes in the archive. */
  readonly compressedSize: number;
  /** Bytes once uncompressed. */
  readonly size: number;
  /** Offset of the entry's local header. */
  readonly headerOffset: number;
}

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
/** Deflate expands at most 1032:1, so a larger claimed size is a lie. */
const MAX_DEFLATE_RATIO = 1032;
/** PyTorch aligns every record's data to this many bytes. */
const DATA_ALIGNMENT = 64;

/**
 * Whether `bytes` starts like a ZIP archive (a local file header, or the end
 * record of an empty archive).
 *
 * @param bytes The file.
 * @returns `true` for `PK\x03\x04` or `PK\x05\x06`.
 *
 * @example
 * ```ts
 * import { isZip } from "./zip.ts";
 * console.log(isZip(new Uint8Array([0x50, 0x4b, 3, 4]))); // true
 * ```
 */
export function isZip(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  const signature = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  return signature === LOCAL_HEADER || signature === END_OF_DIRECTORY;
}

/**
 * Reads the central directory of a ZIP archive (ZIP64 included) without
 * touching the entries' data.
 *
 * @param bytes The whole archive.
 * @returns The entries by name, in directory order.
 * @throws {WeightsFormatError} When the directory is missing, truncated or inconsistent.
 *
 * @example
 * ```ts
 * import { readZipDirectory, writeZip } from "./zip.ts";
 * const zip = writeZip([{ name: "a/version", data: new TextEncoder().encode("3\n") }]);
 * console.log([...readZipDirectory(zip).keys()]); // ["a/version"]
 * ```
 */
export function readZipDirectory(bytes: Uint8Array): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = findEndOfDirectory(view);
  let count = view.getUint16(end + 10, true);
  let directorySize = view.getUint32(end + 12, true);
  let directoryOffset = view.getUint32(end + 16, true);
  const locator = end - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR) {
    const at = readU64(view, locator + 8, bytes.length);
    if (at + 56 > bytes.length || view.getUint32(at, true) !== ZIP64_END_OF_DIRECTORY) {
      throw new WeightsFormatError(
        "Corrupt ZIP archive: expected a ZIP64 end-of-directory record where the locator points",
      );
    }
    count = readU64(view, at + 32, bytes.length);
    directorySize = readU64(view, at + 40, bytes.length);
    directoryOffset = readU64(view, at + 48, bytes.length);
  }
  if (directoryOffset + directorySize > bytes.length || count * 46 > directorySize) {
    throw new WeightsFormatError(
      `Truncated ZIP archive: central directory of ${count} entries at offset ${directoryOffset} ` +
        `(${directorySize} bytes) does not fit in the ${bytes.length}-byte file`,
    );
  }
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder();
  let at = directoryOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directoryOffset + directorySize || view.getUint32(at, true) !== CENTRAL_HEADER) {
      throw new WeightsFormatError(
        `Corrupt ZIP archive: expected central directory entry ${i} at offset ${at}`,
      );
    }
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > directoryOffset + directorySize) {
      throw new WeightsFormatError(
        `Corrupt ZIP archive: central directory entry ${i} runs past the directory`,
      );
    }
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    const sizes = {
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      headerOffset: view.getUint32(at + 42, true),
    };
    readZip64Extra(view, at + 46 + nameLength, extraLength, sizes);
    if (entries.has(name)) {
      throw new WeightsFormatError(`Corrupt ZIP archive: entry "${name}" appears twice`);
    }
    entries.set(name, {
      name,
      method: view.getUint16(at + 10, true),
      crc32: view.getUint32(at + 16, true),
      ...sizes,
    });
    at = next;
  }
  checkSpans(view, entries, directoryOffset);
  return entries;
}

/**
 * Every entry's local header and data must lie before the central directory
 * and share no byte with another entry's: then the declared sizes, each
 * checked against deflate's ratio when inflated, add up to at most
 * {@linkcode MAX_DEFLATE_RATIO} times the file, however many entries the
 * directory lists (a directory pointing many entries at one compressed
 * stream is refused here, before anything is inflated).
 */
function checkSpans(view: DataView, entries: Map<string, ZipEntry>, directoryOffset: number): void {
  const spans = [...entries.values()].map((entry) => {
    const at = entry.headerOffset;
    if (at + 30 > directoryOffset) {
      throw new WeightsFormatError(
        `Corrupt ZIP archive: the local header of "${entry.name}" at offset ${at} is not ` +
          `before the central directory (offset ${directoryOffset})`,
      );
    }
    const end = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true) +
      entry.compressedSize;
    if (end > directoryOffset) {
      throw new WeightsFormatError(
        `Corrupt ZIP archive: "${entry.name}" (${entry.compressedSize} bytes at offset ${at}) ` +
          `runs into the central directory at offset ${directoryOffset}`,
      );
    }
    return { entry, at, end };
  }).sort((a, b) => a.at - b.at);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].at < spans[i - 1].end) {
      throw new WeightsFormatError(
        `Corrupt ZIP archive: entries "${spans[i - 1].entry.name}" and "${spans[i].entry.name}" ` +
          `share bytes (offsets ${spans[i - 1].at} and ${spans[i].at}): expected each entry's ` +
          "data once, refusing a possible decompression bomb",
      );
    }
  }
}

/**
 * The uncompressed bytes of one entry: a view of `bytes` when stored, a new
 * array when deflated. The CRC-32 is checked either way.
 *
 * @param bytes The whole archive.
 * @param entry An entry of {@linkcode readZipDirectory}`(bytes)`.
 * @param options `maxSize`: the most bytes a deflated entry may inflate to (default: no limit
 *   beyond deflate's 1032:1 ratio), checked before inflating.
 * @returns The entry's data.
 * @throws {WeightsFormatError} When the entry is truncated, corrupt or uses another compression.
 *
 * @example
 * ```ts
 * import { readZipDirectory, readZipEntry, writeZip } from "./zip.ts";
 * const zip = writeZip([{ name: "a/version", data: new TextEncoder().encode("3\n") }]);
 * const entry = readZipDirectory(zip).get("a/version")!;
 * console.log(new TextDecoder().decode(readZipEntry(zip, entry))); // "3\n"
 * ```
 */
export function readZipEntry(
  bytes: Uint8Array,
  entry: ZipEntry,
  options: { maxSize?: number } = {},
): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = entry.headerOffset;
  if (header + 30 > bytes.length || view.getUint32(header, true) !== LOCAL_HEADER) {
    throw new WeightsFormatError(
      `Corrupt ZIP archive: expected the local header of "${entry.name}" at offset ${header}`,
    );
  }
  const start = header + 30 + view.getUint16(header + 26, true) + view.getUint16(header + 28, true);
  if (start + entry.compressedSize > bytes.length) {
    throw new WeightsFormatError(
      `Truncated ZIP archive: "${entry.name}" needs ${entry.compressedSize} bytes at offset ` +
        `${start}, the file has ${bytes.length}`,
    );
  }
  const raw = bytes.subarray(start, start + entry.compressedSize);
  let data: Uint8Array;
  if (entry.method === 0) {
    if (entry.size !== entry.compressedSize) {
      throw new WeightsFormatError(
        `Corrupt ZIP archive: stored entry "${entry.name}" claims ${entry.size} bytes ` +
          `but holds ${entry.compressedSize}`,
      );
    }
    data = raw;
  } else if (entry.method === 8) {
    data = inflate(raw, entry, options.maxSize ?? Infinity);
  } else {
    throw new WeightsFormatError(
      `Unsupported ZIP compression method ${entry.method} for "${entry.name}": ` +
        "expected 0 (stored) or 8 (deflate)",
    );
  }
  if (crc32(data) !== entry.crc32) {
    throw new WeightsFormatError(`Corrupt ZIP archive: CRC-32 mismatch in "${entry.name}"`);
  }
  return data;
}

/**
 * Writes a ZIP archive of stored (uncompressed) entries, each entry's data
 * starting at a multiple of 64 bytes as in PyTorch's `torch.save`.
 *
 * @param entries The files, in order.
 * @returns The archive.
 * @throws {WeightsFormatError} When the archive would need ZIP64 (over 4 GiB or 65535 entries).
 *
 * @example
 * ```ts
 * import { writeZip } from "./zip.ts";
 * const zip = writeZip([{ name: "a/version", data: new TextEncoder().encode("3\n") }]);
 * console.log(zip.length > 0); // true
 * ```
 */
export function writeZip(
  entries: readonly { name: string; data: Uint8Array }[],
): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  const names = entries.map((e) => encoder.encode(e.name));
  const offsets: number[] = [];
  const paddings: number[] = [];
  let size = 0;
  entries.forEach((entry, i) => {
    offsets.push(size);
    const unpadded = size + 30 + names[i].length;
    let padding = (DATA_ALIGNMENT - (unpadded % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    if (padding > 0 && padding < 4) padding += DATA_ALIGNMENT; // Room for the extra field's header.
    paddings.push(padding);
    size = unpadded + padding + entry.data.length;
  });
  const directoryOffset = size;
  for (const name of names) size += 46 + name.length;
  const directorySize = size - directoryOffset;
  size += 22;
  if (size > 0xffffffff || entries.length > 0xffff) {
    throw new WeightsFormatError(
      `Archive of ${entries.length} entries and ${size} bytes needs ZIP64: ` +
        "expected at most 65535 entries and 4 GiB",
    );
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  const crcs = entries.map((e) => crc32(e.data));
  entries.forEach((entry, i) => {
    const at = offsets[i];
    view.setUint32(at, LOCAL_HEADER, true);
    writeCommonFields(view, at + 4, crcs[i], entry.data.length, names[i].length);
    view.setUint16(at + 28, paddings[i], true);
    out.set(names[i], at + 30);
    const extra = at + 30 + names[i].length;
    if (paddings[i] > 0) {
      view.setUint16(extra, 0x4246, true); // "FB", PyTorch's padding field.
      view.setUint16(extra + 2, paddings[i] - 4, true);
      out.fill(0x5a, extra + 4, extra + paddings[i]);
    }
    out.set(entry.data, extra + paddings[i]);
  });
  let at = directoryOffset;
  entries.forEach((entry, i) => {
    view.setUint32(at, CENTRAL_HEADER, true);
    view.setUint16(at + 4, 20, true); // Made by: MS-DOS, version 2.0.
    writeCommonFields(view, at + 6, crcs[i], entry.data.length, names[i].length);
    view.setUint32(at + 42, offsets[i], true);
    out.set(names[i], at + 46);
    at += 46 + names[i].length;
  });
  view.setUint32(at, END_OF_DIRECTORY, true);
  view.setUint16(at + 8, entries.length, true);
  view.setUint16(at + 10, entries.length, true);
  view.setUint32(at + 12, directorySize, true);
  view.setUint32(at + 16, directoryOffset, true);
  return out;
}

/**
 * CRC-32 (ISO-HDLC, as ZIP uses) of `bytes`.
 *
 * @param bytes The data.
 * @returns The checksum as an unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * import { crc32 } from "./zip.ts";
 * console.log(crc32(new TextEncoder().encode("123456789")).toString(16)); // "cbf43926"
 * ```
 */
export function crc32(bytes: Uint8Array): number {
  const t = CRC_TABLE;
  let crc = -1;
  let i = 0;
  for (const n = bytes.length - 3; i < n; i += 4) {
    crc ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    crc = t[768 + (crc & 0xff)] ^ t[512 + ((crc >>> 8) & 0xff)] ^
      t[256 + ((crc >>> 16) & 0xff)] ^ t[crc >>> 24];
  }
  for (; i < bytes.length; i++) crc = t[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** Slice-by-4 tables: `t[k * 256 + b]` is the CRC of byte `b` followed by `k` zero bytes. */
const CRC_TABLE = (() => {
  const t = new Int32Array(1024);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[b] = c;
  }
  for (let i = 256; i < 1024; i++) t[i] = t[t[i - 256] & 0xff] ^ (t[i - 256] >>> 8);
  return t;
})();

/** Writes the fields shared by local and central headers, "version needed" (at `f`) to the name length. */
function writeCommonFields(
  view: DataView,
  f: number,
  crc: number,
  size: number,
  nameLength: number,
): void {
  view.setUint16(f, 20, true); // Version needed: 2.0. Flags, method 0 and time stay 0.
  view.setUint16(f + 8, 0x21, true); // Date: 1980-01-01.
  view.setUint32(f + 10, crc, true);
  view.setUint32(f + 14, size, true);
  view.setUint32(f + 18, size, true);
  view.setUint16(f + 22, nameLength, true);
}

function findEndOfDirectory(view: DataView): number {
  const lowest = Math.max(0, view.byteLength - 22 - 0xffff);
  for (let at = view.byteLength - 22; at >= lowest; at--) {
    if (view.getUint32(at, true) === END_OF_DIRECTORY) return at;
  }
  throw new WeightsFormatError(
    "Corrupt ZIP archive: expected an end-of-central-directory record in the last 64 KiB",
  );
}

function readU64(view: DataView, at: number, limit: number): number {
  if (at + 8 > view.byteLength) {
    throw new WeightsFormatError(`Truncated ZIP archive: expected 8 bytes at offset ${at}`);
  }
  const value = view.getBigUint64(at, true);
  if (value > BigInt(limit)) {
    throw new WeightsFormatError(
      `Corrupt ZIP archive: ZIP64 field ${value} exceeds the file size ${limit}`,
    );
  }
  return Number(value);
}

/** Replaces the 0xFFFFFFFF placeholders of `sizes` from a ZIP64 extra field, if any. */
function readZip64Extra(
  view: DataView,
  start: number,
  length: number,
  sizes: { compressedSize: number; size: number; headerOffset: number },
): void {
  const end = start + length;
  for (let at = start; at + 4 <= end;) {
    const id = view.getUint16(at, true);
    const fieldEnd = at + 4 + view.getUint16(at + 2, true);
    if (id === 1) {
      let p = at + 4;
      for (const key of ["size", "compressedSize", "headerOffset"] as const) {
        if (sizes[key] !== 0xffffffff) continue;
        if (p + 8 > fieldEnd || fieldEnd > end) {
          throw new WeightsFormatError("Corrupt ZIP archive: truncated ZIP64 extra field");
        }
        // Sizes are later checked against the file, so any value up to 2^53 is harmless here.
        const value = view.getBigUint64(p, true);
        sizes[key] = value > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(value);
        p += 8;
      }
      return;
    }
    at = fieldEnd;
  }
}

function inflate(raw: Uint8Array, entry: ZipEntry, maxSize: number): Uint8Array {
  if (entry.size > raw.length * MAX_DEFLATE_RATIO + 64) {
    throw new WeightsFormatError(
      `Corrupt ZIP archive: "${entry.name}" claims ${entry.size} bytes from ` +
        `${raw.length} deflated bytes, more than deflate can expand to`,
    );
  }
  if (entry.size > maxSize) {
    throw new WeightsFormatError(
      `"${entry.name}" inflates to ${entry.size} bytes, more than the ${maxSize} allowed: ` +
        "refusing a possible decompression bomb",
    );
  }
  let data: Uint8Array;
  try {
    data = inflateSync(raw, { out: new Uint8Array(entry.size) });
  } catch (error) {
    throw new WeightsFormatError(
      `Corrupt ZIP archive: "${entry.name}" does not inflate (${(error as Error).message})`,
    );
  }
  if (data.length !== entry.size) {
    throw new WeightsFormatError(
      `Corrupt ZIP archive: "${entry.name}" inflates to ${data.length} bytes, expected ${entry.size}`,
    );
  }
  return data;
}
