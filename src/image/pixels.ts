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
 * An 8-bit greyscale image, one sample per pixel, row-major: a grey JPEG on
 * its way through the evaluation transform, which resizes the one channel and
 * replicates it only when it normalises (Pillow's `convert("RGB")` of "L"
 * makes three equal channels, and each channel is resized on its own, so the
 * result is the same).
 */
export interface GreyImage {
  /** One sample per pixel, row by row. */
  readonly data: Uint8Array;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** Samples per pixel. */
  readonly channels: 1;
}

/** A decoded image that stands for an RGB one: RGB, or grey whose three channels would be equal. */
export type DecodedImage = RgbImage | GreyImage;

/**
 * Samples per pixel of a decoded image.
 *
 * @param image RGB or grey.
 * @returns 1 for a {@linkcode GreyImage}, 3 otherwise.
 *
 * @example
 * ```ts
 * import { channelsOf } from "./pixels.ts";
 * console.log(channelsOf({ data: new Uint8Array(2), width: 2, height: 1, channels: 1 })); // 1
 * ```
 */
export function channelsOf(image: DecodedImage): 1 | 3 {
  return "channels" in image && image.channels === 1 ? 1 : 3;
}

/**
 * A decoded image as RGB: grey replicated into three channels, RGB as it is.
 *
 * @param image RGB or grey.
 * @returns The RGB image (`image` itself unless it is grey).
 *
 * @example
 * ```ts
 * import { rgbOf } from "./pixels.ts";
 * const grey = { data: new Uint8Array([7]), width: 1, height: 1, channels: 1 as const };
 * console.log(rgbOf(grey).data); // Uint8Array(3) [7, 7, 7]
 * ```
 */
export function rgbOf(image: DecodedImage): RgbImage {
  if (channelsOf(image) === 3) return image;
  const { data, width, height } = image;
  return { data: interleavedToRgb(data, 1), width, height };
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
