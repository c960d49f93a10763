/**
 * Decoded pixel arrays: the 8-bit RGB image every other step works on, and
 * the conversion of caller-supplied pixels (ImageData-like) to it.
 *
 * @module
 */

import { ShapeError } from "../errors.ts";

/**
 * An 8-bit RGB image, row-major, channels interleaved (`data.length` is
 * `width * height * 3`).
 */
export interface RgbImage {
  /** Interleaved R, G, B samples, row by row. */
  readonly data: Uint8Array;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
}

/**
 * Decoded pixels supplied by the caller, such as a canvas `ImageData`.
 */
export interface PixelData {
  /** Interleaved 8-bit samples, row by row. */
  readonly data: Uint8Array | Uint8ClampedArray;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /**
   * Samples per pixel: 1 (grey), 3 (RGB) or 4 (RGBA, alpha ignored). Inferred
   * from `data.length` when omitted.
   */
  readonly channels?: 1 | 3 | 4;
}

/**
 * Converts caller-supplied pixels to 8-bit RGB the way Pillow's
 * `convert("RGB")` does: grey is replicated, alpha is dropped (not composited).
 *
 * @param pixels Grey, RGB or RGBA samples with their dimensions.
 * @returns The RGB image (a copy unless `pixels` is already a 3-channel `Uint8Array`).
 * @throws {ShapeError} When the dimensions are not positive integers, the
 * channel count is not 1, 3 or 4, or `data.length` does not match.
 *
 * @example
 * ```ts
 * import { toRgb } from "./pixels.ts";
 * const rgba = new Uint8ClampedArray([255, 0, 0, 128]);
 * console.log(toRgb({ data: rgba, width: 1, height: 1 }).data); // Uint8Array(3) [255, 0, 0]
 * ```
 */
export function toRgb(pixels: PixelData): RgbImage {
  const { data, width, height } = pixels;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw new ShapeError("Expected pixel data as a Uint8Array or Uint8ClampedArray");
  }
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new ShapeError(`Expected positive integer width and height, got ${width}x${height}`);
  }
  const channels = pixels.channels ?? data.length / (width * height);
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new ShapeError(
      `Expected 1, 3 or 4 channels for a ${width}x${height} image, got ${
        pixels.channels ?? `${data.length} samples`
      }`,
    );
  }
  if (data.length !== width * height * channels) {
    throw new ShapeError(
      `Expected ${
        width * height * channels
      } samples for ${width}x${height}x${channels}, got ${data.length}`,
    );
  }
  return { data: interleavedToRgb(data, channels), width, height };
}

/**
 * Drops alpha and replicates grey: 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)
 * interleaved channels to RGB.
 *
 * @param data Interleaved 8-bit samples.
 * @param channels Samples per pixel, 1 to 4.
 * @returns RGB samples; `data` itself when it is already a 3-channel `Uint8Array`.
 */
export function interleavedToRgb(
  data: Uint8Array | Uint8ClampedArray,
  channels: number,
): Uint8Array {
  if (channels === 3) return data instanceof Uint8Array ? data : new Uint8Array(data);
  const pixels = data.length / channels;
  const out = new Uint8Array(pixels * 3);
  const grey = channels < 3;
  for (let i = 0, j = 0, o = 0; i < pixels; i++, j += channels, o += 3) {
    out[o] = data[j];
    out[o + 1] = data[grey ? j : j + 1];
    out[o + 2] = data[grey ? j : j + 2];
  }
  return out;
}
