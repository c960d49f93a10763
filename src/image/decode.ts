/**
 * Image decoding: PNG or JPEG bytes to upright 8-bit RGB, with a pixel limit
 * enforced before anything is decompressed.
 *
 * @module
 */

import { ImageError } from "../errors.ts";
import { decodeJpeg, readJpegHeader } from "./jpeg.ts";
import { applyOrientation } from "./orientation.ts";
import type { RgbImage } from "./pixels.ts";
import { decodePng, readPngHeader } from "./png.ts";

/** Default {@linkcode DecodeOptions.maxPixels}: 64 megapixels. */
export const DEFAULT_MAX_PIXELS = 64_000_000;

/** Options of {@linkcode decodeImage}. */
export interface DecodeOptions {
  /**
   * Largest `width * height` the header may declare; larger images are
   * refused before decoding (decompression bombs).
   *
   * @default {64_000_000}
   */
  maxPixels?: number;
  /**
   * Turn JPEGs upright according to their EXIF orientation, like Pillow's
   * `ImageOps.exif_transpose`.
   *
   * @default {true}
   */
  exifOrientation?: boolean;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Decodes PNG (greyscale, RGB, RGBA, palette, 1- to 16-bit, interlaced) or
 * JPEG (baseline, progressive, greyscale) bytes to 8-bit RGB, converting like
 * Pillow's `convert("RGB")` (alpha dropped, not composited).
 *
 * @param bytes The encoded image.
 * @param options Pixel limit and EXIF handling.
 * @returns The decoded, upright image.
 * @throws {ImageError} When the bytes are not PNG or JPEG, are corrupt or
 * truncated, or declare more than `maxPixels` pixels.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./decode.ts";
 * const image = decodeImage(await Deno.readFile("assets/chelsea.jpg"));
 * console.log(image.width, image.height, image.data.length); // 451 300 405900
 * ```
 */
export function decodeImage(
  bytes: Uint8Array | ArrayBuffer,
  options: DecodeOptions = {},
): RgbImage {
  const { maxPixels = DEFAULT_MAX_PIXELS, exifOrientation = true } = options;
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (PNG_SIGNATURE.every((b, i) => data[i] === b)) {
    const header = readPngHeader(data);
    checkSize(header.width, header.height, maxPixels);
    return decodePng(data, header);
  }
  if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) {
    const header = readJpegHeader(data);
    checkSize(header.width, header.height, maxPixels);
    const image = decodeJpeg(data, maxPixels);
    return exifOrientation ? applyOrientation(image, header.orientation) : image;
  }
  const head = Array.from(data.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new ImageError(
    `Unsupported image format: expected PNG or JPEG bytes, got ${data.length} bytes starting ${
      head || "(empty)"
    }`,
  );
}

function checkSize(width: number, height: number, maxPixels: number): void {
  if (width < 1 || height < 1) {
    throw new ImageError(`Invalid image size ${width}x${height}: expected positive dimensions`);
  }
  if (width * height > maxPixels) {
    throw new ImageError(
      `Image is ${width}x${height} (${
        width * height
      } pixels): expected at most ${maxPixels} pixels (maxPixels), refusing to decode a possible decompression bomb`,
    );
  }
}
