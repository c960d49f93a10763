/**
 * PNG reading: the IHDR header, a bounded check of the compressed image data,
 * and decoding (fast-png) to 8-bit RGB with Pillow's conversion rules.
 *
 * @module
 */

import { convertIndexedToRgb, decode } from "npm:fast-png@8.0.0";
import { Unzlib } from "npm:fflate@0.8.2";
import { ImageError } from "../errors.ts";
import { interleavedToRgb, type RgbImage } from "./pixels.ts";

/** What a PNG's IHDR chunk declares. */
export interface PngHeader {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** Bits per sample: 1, 2, 4, 8 or 16. */
  readonly depth: number;
  /** Samples per pixel: 1 (grey or palette), 2 (grey + alpha), 3 (RGB) or 4 (RGBA). */
  readonly channels: number;
  /** Whether the image is Adam7-interlaced. */
  readonly interlaced: boolean;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** The bit depths the PNG specification allows for each colour type. */
const DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
const IHDR = 0x49484452;
const PLTE = 0x504c5445;
const IDAT = 0x49444154;
const IEND = 0x49454e44;
/** Adam7 passes as [x0, y0, dx, dy]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];
/** Compressed bytes fed to the inflater at a time, bounding each step's output (deflate expands at most ~1032x). */
const INFLATE_STEP = 4096;

/**
 * Reads the IHDR chunk that follows the PNG signature.
 *
 * @param bytes The PNG file.
 * @returns The declared size and sample layout.
 * @throws {ImageError} When IHDR is missing, truncated or declares an unsupported layout.
 *
 * @example
 * ```ts
 * import { readPngHeader } from "./png.ts";
 * const bytes = await Deno.readFile("tests/fixtures/images/camera_grey.png");
 * console.log(readPngHeader(bytes).channels); // 1
 * ```
 */
export function readPngHeader(bytes: Uint8Array): PngHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 33 || view.getUint32(8) !== 13 || view.getUint32(12) !== 0x49484452) {
    throw new ImageError("Truncated or malformed PNG: expected an IHDR chunk after the signature");
  }
  const depth = bytes[24];
  const colorType = bytes[25];
  const channels = CHANNELS[colorType];
  if (channels === undefined || !DEPTHS[colorType].includes(depth)) {
    throw new ImageError(
      `Invalid PNG: colour type ${colorType} at bit depth ${depth}, expected one of the PNG ` +
        "specification's pairs (grey 0: 1, 2, 4, 8, 16; RGB 2: 8, 16; palette 3: 1, 2, 4, 8; " +
        "grey + alpha 4: 8, 16; RGBA 6: 8, 16)",
    );
  }
  if (bytes[26] !== 0 || bytes[27] !== 0 || bytes[28] > 1) {
    throw new ImageError(
      `Invalid PNG: compression ${bytes[26]}, filter ${bytes[27]}, interlace ${bytes[28]}: ` +
        "expected compression 0, filter 0 and interlace 0 or 1",
    );
  }
  return {
    width: view.getUint32(16),
    height: view.getUint32(20),
    depth,
    channels,
    interlaced: bytes[28] === 1,
  };
}

/**
 * Decodes a PNG to 8-bit RGB like Pillow's `Image.open(...).convert("RGB")`:
 * palette entries are looked up, alpha is dropped, greyscale below 8 bits is
 * scaled to 0..255, 16-bit colour keeps the high byte, and 16-bit greyscale
 * is clipped to 255 (Pillow 9 opens it as 32-bit "I" and clips on conversion).
 *
 * @param bytes The PNG file.
 * @param header Its header, from {@linkcode readPngHeader}.
 * @returns The decoded image.
 * Only the critical chunks (IHDR, PLTE, IDAT, IEND) reach the decoder:
 * ancillary ones (iCCP, zTXt, iTXt, ...) are skipped without being inflated,
 * so only IDAT is ever decompressed, and never past the size the header
 * declares. The chunk structure is checked first: one IHDR, at most one PLTE
 * before the image data (required for palette images), IDAT present, IEND.
 *
 * @throws {ImageError} When the data is corrupt, truncated (CRC and size are
 * checked), decompresses to more bytes than the header allows, or the chunks
 * break the rules above.
 *
 * @example
 * ```ts
 * import { decodePng, readPngHeader } from "./png.ts";
 * const bytes = await Deno.readFile("tests/fixtures/images/coffee_rgb.png");
 * console.log(decodePng(bytes, readPngHeader(bytes)).width); // 300
 * ```
 */
export function decodePng(bytes: Uint8Array, header: PngHeader): RgbImage {
  const critical = criticalChunks(bytes, header);
  checkInflatedSize(critical, rawSize(header));
  const { width, height } = header;
  let image: RgbImage;
  try {
    const png = decode(critical, { checkCrc: true });
    if (png.width !== width || png.height !== height) {
      throw new Error(`decoded ${png.width}x${png.height}, the header says ${width}x${height}`);
    }
    if (png.palette) {
      image = {
        data: interleavedToRgb(convertIndexedToRgb(png), png.palette[0].length),
        width,
        height,
      };
    } else if (png.depth === 16) {
      const wide = png.data;
      const narrow = new Uint8Array(wide.length);
      for (let i = 0; i < wide.length; i++) {
        narrow[i] = png.channels === 1 ? Math.min(wide[i], 255) : wide[i] >> 8;
      }
      image = { data: interleavedToRgb(narrow, png.channels), width, height };
    } else {
      const data = png.depth < 8
        ? unpackGrey(png.data as Uint8Array, header)
        : png.data as Uint8Array;
      image = { data: interleavedToRgb(data, png.channels), width, height };
    }
  } catch (error) {
    throw new ImageError(
      `Cannot decode PNG: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  if (image.data.length !== width * height * 3) {
    throw new ImageError(
      `Cannot decode PNG: got ${image.data.length} bytes of RGB, expected ${width * height * 3} ` +
        `for ${width}x${height}`,
    );
  }
  return image;
}

/**
 * Walks the chunks, checks their order and sizes, and returns the signature
 * and the critical chunks only (a new array no larger than `bytes`).
 */
function criticalChunks(bytes: Uint8Array, header: PngHeader): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kept: [number, number][] = [[0, 8]];
  let size = 8;
  const seen = { IHDR: 0, PLTE: 0, IDAT: 0 };
  let offset = 8;
  let ended = false;
  while (!ended) {
    if (offset + 12 > bytes.length) {
      throw new ImageError(
        `Truncated PNG: expected a chunk at byte ${offset}, the file has ${bytes.length} bytes`,
      );
    }
    const length = view.getUint32(offset);
    const type = view.getUint32(offset + 4);
    const end = offset + 12 + length;
    if (end > bytes.length) {
      throw new ImageError(
        `Truncated PNG: chunk ${chunkName(bytes, offset)} of ${length} bytes at byte ${offset} ` +
          `runs past the end of the ${bytes.length}-byte file`,
      );
    }
    const fail = (what: string) =>
      new ImageError(`Invalid PNG: ${what} (chunk ${chunkName(bytes, offset)} at byte ${offset})`);
    if (type === IHDR) {
      if (seen.IHDR++) throw fail("expected one IHDR chunk, found a second");
    } else if (!seen.IHDR) {
      throw fail("expected IHDR as the first chunk");
    } else if (type === PLTE) {
      if (seen.PLTE++) throw fail("expected at most one PLTE chunk, found a second");
      if (seen.IDAT) throw fail("expected PLTE before the image data");
      const entries = length / 3;
      const most = header.channels === 1 && header.depth <= 8 ? 1 << header.depth : 256;
      if (!Number.isInteger(entries) || entries < 1 || entries > most) {
        throw fail(`expected a palette of 1 to ${most} RGB entries, got ${length} bytes`);
      }
    } else if (type === IDAT) {
      seen.IDAT++;
    } else if (type === IEND) {
      ended = true;
    } else if (!(bytes[offset + 4] & 0x20)) {
      throw fail("unknown critical chunk, expected IHDR, PLTE, IDAT or IEND");
    }
    if (type === IHDR || type === PLTE || type === IDAT || type === IEND) {
      kept.push([offset, end]);
      size += end - offset;
    }
    offset = end;
  }
  if (!seen.IDAT) throw new ImageError("Invalid PNG: expected at least one IDAT chunk, found none");
  if (!seen.PLTE && header.channels === 1 && bytes[25] === 3) {
    throw new ImageError("Invalid PNG: a palette image (colour type 3) without a PLTE chunk");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const [start, end] of kept) {
    out.set(bytes.subarray(start, end), at);
    at += end - start;
  }
  return out;
}

/** The 4-letter type of the chunk at `offset`, quoted, for messages. */
function chunkName(bytes: Uint8Array, offset: number): string {
  return JSON.stringify(String.fromCharCode(...bytes.subarray(offset + 4, offset + 8)));
}

/** Bytes the filtered scanlines of `header`'s image take once decompressed. */
function rawSize({ width, height, depth, channels, interlaced }: PngHeader): number {
  const rowBytes = (w: number) => Math.ceil((w * depth * channels) / 8) + 1;
  if (!interlaced) return height * rowBytes(width);
  let size = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil((width - x0) / dx);
    const h = Math.ceil((height - y0) / dy);
    if (w > 0 && h > 0) size += h * rowBytes(w);
  }
  return size;
}

/**
 * Inflates the IDAT chunks in small steps, discarding the output, and fails
 * as soon as it exceeds `expected` bytes or if it falls short of it.
 */
function checkInflatedSize(bytes: Uint8Array, expected: number): void {
  let total = 0;
  const inflater = new Unzlib((chunk) => {
    total += chunk.length;
    if (total > expected) {
      throw new ImageError(
        `PNG image data decompresses to more than the ${expected} bytes its header declares: refusing a possible decompression bomb`,
      );
    }
  });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 8; offset + 8 <= bytes.length;) {
    const start = offset + 8;
    const end = start + view.getUint32(offset);
    const type = view.getUint32(offset + 4);
    if (type === 0x49454e44 || end > bytes.length) break; // IEND, or truncated
    if (type === 0x49444154) { // IDAT
      for (let step = start; step < end; step += INFLATE_STEP) {
        try {
          inflater.push(bytes.subarray(step, Math.min(step + INFLATE_STEP, end)));
        } catch (error) {
          if (error instanceof ImageError) throw error;
          throw new ImageError(`Corrupt PNG image data: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }
    }
    offset = end + 4;
  }
  if (total < expected) {
    throw new ImageError(
      `Truncated PNG: expected ${expected} bytes of image data after decompression, got ${total}`,
    );
  }
}

/** Unpacks 1-, 2- or 4-bit greyscale rows to one byte per pixel, scaled to 0..255. */
function unpackGrey(packed: Uint8Array, { width, height, depth }: PngHeader): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  const scale = 255 / mask;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)];
      out[y * width + x] = ((byte >> (8 - depth - (bit & 7))) & mask) * scale;
    }
  }
  return out;
}
