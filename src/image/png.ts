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
  if (bytes.length < 33 || view.getUint32(12) !== 0x49484452) {
    throw new ImageError("Truncated or malformed PNG: expected an IHDR chunk after the signature");
  }
  const depth = bytes[24];
  const colorType = bytes[25];
  const channels = CHANNELS[colorType];
  if (channels === undefined || ![1, 2, 4, 8, 16].includes(depth)) {
    throw new ImageError(
      `Unsupported PNG: expected colour type 0, 2, 3, 4 or 6 with bit depth 1 to 16, got colour type ${colorType} at depth ${depth}`,
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
 * @throws {ImageError} When the data is corrupt, truncated (CRC and size are
 * checked) or decompresses to more bytes than the header allows.
 *
 * @example
 * ```ts
 * import { decodePng, readPngHeader } from "./png.ts";
 * const bytes = await Deno.readFile("tests/fixtures/images/coffee_rgb.png");
 * console.log(decodePng(bytes, readPngHeader(bytes)).width); // 300
 * ```
 */
export function decodePng(bytes: Uint8Array, header: PngHeader): RgbImage {
  checkInflatedSize(bytes, rawSize(header));
  const { width, height } = header;
  try {
    const png = decode(bytes, { checkCrc: true });
    if (png.palette) {
      return {
        data: interleavedToRgb(convertIndexedToRgb(png), png.palette[0].length),
        width,
        height,
      };
    }
    if (png.depth === 16) {
      const wide = png.data;
      const narrow = new Uint8Array(wide.length);
      for (let i = 0; i < wide.length; i++) {
        narrow[i] = png.channels === 1 ? Math.min(wide[i], 255) : wide[i] >> 8;
      }
      return { data: interleavedToRgb(narrow, png.channels), width, height };
    }
    const data = png.depth < 8
      ? unpackGrey(png.data as Uint8Array, header)
      : png.data as Uint8Array;
    return { data: interleavedToRgb(data, png.channels), width, height };
  } catch (error) {
    throw new ImageError(
      `Cannot decode PNG: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
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
