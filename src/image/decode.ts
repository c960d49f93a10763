/**
 * Image decoding: PNG or JPEG bytes to upright 8-bit RGB, with a pixel limit
 * enforced before anything is decompressed.
 *
 * @module
 */

import { ImageError, OptionError } from "../errors.ts";
import { checkBoolean, checkInteger, checkOptions, describeValue } from "../validate.ts";
import { type DecodeHow, decodeJpegPixels, jpegPixelsToSamples, readJpegHeader } from "./jpeg.ts";
import { applyOrientation } from "./orientation.ts";
import { type DecodedImage, type RgbImage, rgbOf } from "./pixels.ts";
import { decodePng, readPngHeader } from "./png.ts";

/** Default {@linkcode DecodeOptions.maxPixels}: 64 megapixels. */
export const DEFAULT_MAX_PIXELS = 64_000_000;
/** The largest `maxPixels` accepted: 2^30 pixels (3 GiB of RGB). */
const MAX_MAX_PIXELS = 2 ** 30;

/** Every option name of {@linkcode DecodeOptions}. */
export const DECODE_OPTION_KEYS: readonly string[] = Object.freeze([
  "maxPixels",
  "exifOrientation",
]);

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
 * @throws {OptionError} When `bytes` is not bytes or an option is unknown or invalid.
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
  const checked = checkDecodeOptions(checkOptions("decodeImage", options, DECODE_OPTION_KEYS));
  return decodeChecked(imageBytes(bytes), checked);
}

/**
 * The decode options with their defaults, each checked (the names are not:
 * callers whose options extend {@linkcode DecodeOptions} check those).
 *
 * @param options Options as given.
 * @returns `maxPixels` and `exifOrientation`, checked.
 * @throws {OptionError} When `maxPixels` is not an integer from 1 to 2^30 or
 * `exifOrientation` not a boolean.
 *
 * @example
 * ```ts
 * import { checkDecodeOptions } from "./decode.ts";
 * console.log(checkDecodeOptions({})); // { maxPixels: 64000000, exifOrientation: true }
 * ```
 */
export function checkDecodeOptions(options: DecodeOptions): Required<DecodeOptions> {
  return {
    maxPixels: checkInteger("maxPixels", options.maxPixels, {
      min: 1,
      max: MAX_MAX_PIXELS,
      default: DEFAULT_MAX_PIXELS,
    }),
    exifOrientation: checkBoolean("exifOrientation", options.exifOrientation, { default: true }),
  };
}

/**
 * The encoded bytes of an image given as a `Uint8Array`, another typed
 * array, a `DataView` or an `ArrayBuffer`.
 *
 * @param bytes The image as given.
 * @returns A `Uint8Array` over the same bytes.
 * @throws {OptionError} When `bytes` is none of those.
 *
 * @example
 * ```ts
 * import { imageBytes } from "./decode.ts";
 * console.log(imageBytes(new ArrayBuffer(2)).length); // 2
 * ```
 */
export function imageBytes(bytes: unknown): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (ArrayBuffer.isView(bytes)) {
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  throw new OptionError(
    `Expected the image as bytes (a Uint8Array or ArrayBuffer), got ${describeValue(bytes)}`,
  );
}

/**
 * {@linkcode decodeImage} with options already checked.
 *
 * @param data The encoded image.
 * @param options Checked options.
 * @returns The decoded, upright image.
 * @throws {ImageError} As {@linkcode decodeImage}.
 *
 * @example
 * ```ts
 * import { decodeChecked } from "./decode.ts";
 * const bytes = await Deno.readFile("assets/chelsea.jpg");
 * const image = decodeChecked(bytes, { maxPixels: 1e6, exifOrientation: true });
 * console.log(image.width); // 451
 * ```
 */
export function decodeChecked(data: Uint8Array, options: Required<DecodeOptions>): RgbImage {
  return rgbOf(decodeSamples(data, options));
}

/**
 * {@linkcode decodeChecked} for a caller that takes grey as one channel and
 * may read only part of the image.
 *
 * @param data The encoded image.
 * @param options Checked options.
 * @param how `reads`: for a JPEG stored upright (or with `exifOrientation` off), the pixels
 * the caller will read of a `width` x `height` image; the others may be left unset (see
 * `JpegDecodeOptions.region`). `inPlace`: a JPEG's pixels may be a view of the kernels'
 * memory, valid until the next image kernel call (see `JpegDecodeOptions.inPlace`). `grey`:
 * a greyscale JPEG comes out as one channel (a `GreyImage`), not replicated to RGB.
 * @returns The decoded, upright image: RGB, or grey with `grey`.
 * @throws {ImageError} As {@linkcode decodeImage}.
 *
 * @example
 * ```ts
 * import { decodeSamples } from "./decode.ts";
 * const bytes = await Deno.readFile("tests/fixtures/images/camera_grey_q90.jpg");
 * const image = decodeSamples(bytes, { maxPixels: 1e6, exifOrientation: true }, { grey: true });
 * console.log(image.data.length === image.width * image.height); // true
 * ```
 */
export function decodeSamples(
  data: Uint8Array,
  options: Required<DecodeOptions>,
  how: DecodeHow = {},
): DecodedImage {
  const { maxPixels, exifOrientation } = options;
  if (PNG_SIGNATURE.every((b, i) => data[i] === b)) {
    const header = readPngHeader(data);
    checkSize(header.width, header.height, maxPixels);
    return decodePng(data, header);
  }
  if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) {
    const header = readJpegHeader(data);
    checkSize(header.width, header.height, maxPixels);
    const upright = !exifOrientation || header.orientation === 1;
    const region = how.reads && upright ? how.reads(header.width, header.height) : undefined;
    const image = jpegPixelsToSamples(
      decodeJpegPixels(data, {
        maxPixels,
        rgb: !how.grey,
        region,
        inPlace: how.inPlace ?? false,
        frameSize: header,
      }),
    );
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
