/**
 * Image sources: encoded bytes, a file path, a URL or decoded pixels, all
 * turned into an upright 8-bit RGB image.
 *
 * @module
 */

import { ImageError, OptionError } from "../errors.ts";
import { checkTimeout, readBytes } from "../read_bytes.ts";
import { checkInstance, checkInteger, checkOptions, describeValue } from "../validate.ts";
import {
  checkDecodeOptions,
  DECODE_OPTION_KEYS,
  decodeChecked,
  type DecodeOptions,
  imageBytes,
} from "./decode.ts";
import { type PixelData, type RgbImage, toRgb } from "./pixels.ts";

/**
 * Anything {@linkcode loadImage} accepts: PNG/JPEG bytes, a file path, an
 * `http:`, `https:` or `file:` URL (as a `URL` or a string), or decoded pixels.
 */
export type ImageSource = Uint8Array | ArrayBuffer | string | URL | PixelData;

/** Options of {@linkcode loadImage}: decoding, and the budget of reading a path or URL. */
export interface LoadImageOptions extends DecodeOptions {
  /**
   * Largest encoded file read from a path or URL, in bytes, checked before
   * reading when the size is known and while reading otherwise.
   *
   * @default {268435456}
   */
  maxBytes?: number;
  /** Stops a download or read in progress. */
  signal?: AbortSignal;
  /**
   * Milliseconds a path or URL may take to read (`Infinity` for none).
   *
   * @default {60000}
   */
  timeout?: number;
}

/** Every option name of {@linkcode LoadImageOptions}. */
export const LOAD_OPTION_KEYS: readonly string[] = Object.freeze([
  ...DECODE_OPTION_KEYS,
  "maxBytes",
  "signal",
  "timeout",
]);
const DEFAULT_MAX_BYTES = 256 * 2 ** 20;
const DEFAULT_TIMEOUT = 60_000;

/** {@linkcode LoadImageOptions} with defaults, checked. */
export interface CheckedLoadOptions extends Required<DecodeOptions> {
  /** Byte budget. */
  maxBytes: number;
  /** Abort signal, if any. */
  signal: AbortSignal | undefined;
  /** Time budget in milliseconds. */
  timeout: number;
}

/**
 * Reads, fetches or decodes `source` into an upright 8-bit RGB image.
 *
 * @param source Encoded bytes, a path, a URL or decoded pixels.
 * @param options Decoding options (pixel limit, EXIF handling) and the read budget.
 * @returns The RGB image.
 * @throws {ImageError} When the image cannot be read, fetched (HTTP error, `maxBytes`,
 * `timeout`, `signal`) or decoded, or is too large.
 * @throws {ShapeError} When decoded pixels have inconsistent dimensions.
 * @throws {OptionError} When `source` is of another type or an option is unknown or invalid.
 *
 * @example
 * ```ts
 * import { loadImage } from "./load.ts";
 * const image = await loadImage("assets/chelsea.jpg");
 * console.log(image.width, image.height); // 451 300
 * ```
 */
export async function loadImage(
  source: ImageSource,
  options: LoadImageOptions = {},
): Promise<RgbImage> {
  const checked = checkLoadOptions(checkOptions("loadImage", options, LOAD_OPTION_KEYS));
  return await loadChecked(source, checked);
}

/**
 * The load options with their defaults, each checked (not the names).
 *
 * @param options Options as given.
 * @returns Every option, checked.
 * @throws {OptionError} When an option has the wrong type or is out of range.
 *
 * @example
 * ```ts
 * import { checkLoadOptions } from "./load.ts";
 * console.log(checkLoadOptions({ timeout: 5000 }).timeout); // 5000
 * ```
 */
export function checkLoadOptions(options: LoadImageOptions): CheckedLoadOptions {
  return {
    ...checkDecodeOptions(options),
    maxBytes: checkInteger("maxBytes", options.maxBytes, { min: 0, default: DEFAULT_MAX_BYTES }),
    signal: checkInstance("signal", options.signal, [AbortSignal], { default: undefined }),
    timeout: checkTimeout(options.timeout, DEFAULT_TIMEOUT),
  };
}

/**
 * {@linkcode loadImage} with options already checked.
 *
 * @param source Encoded bytes, a path, a URL or decoded pixels.
 * @param options Checked options.
 * @returns The RGB image.
 * @throws {ImageError} As {@linkcode loadImage}.
 *
 * @example
 * ```ts
 * import { checkLoadOptions, loadChecked } from "./load.ts";
 * const image = await loadChecked("assets/chelsea.jpg", checkLoadOptions({}));
 * console.log(image.height); // 300
 * ```
 */
export async function loadChecked(
  source: ImageSource,
  options: CheckedLoadOptions,
): Promise<RgbImage> {
  if (typeof source === "string" || source instanceof URL) {
    const bytes = await readBytes(source, { ...options, error: ImageError, what: "image" });
    return decodeChecked(bytes, options);
  }
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    return decodeChecked(imageBytes(source), options);
  }
  if (typeof source === "object" && source !== null && "data" in source) {
    const image = toRgb(source);
    if (image.width * image.height > options.maxPixels) {
      throw new ImageError(
        `Pixels of ${image.width}x${image.height} exceed maxPixels (${options.maxPixels})`,
      );
    }
    return image;
  }
  throw new OptionError(
    "Expected the image as PNG/JPEG bytes, a path, a URL or pixels ({ data, width, height }), " +
      `got ${describeValue(source)}`,
  );
}
