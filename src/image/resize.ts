/**
 * Pillow-exact bilinear resizing (`Image.resize(size, Image.BILINEAR)`) of
 * 8-bit RGB (and grey) images, the resampling torchvision's `Resize` uses on PIL images.
 *
 * @module
 */

import { checkInteger } from "../validate.ts";
import { channelsOf, type DecodedImage, type RgbImage, rgbOf } from "./pixels.ts";
import { type PassSource, resamplePassSimd } from "./resample_simd.ts";

/** Fixed-point fraction bits of Pillow's 8-bit resampler (`32 - 8 - 2`). */
const PRECISION_BITS = 22;

/** A rectangle of the resized image: the only part {@linkcode resizeBilinear} computes. */
export interface ResizeRegion {
  /** First column. */
  left: number;
  /** First row. */
  top: number;
  /** Columns. */
  width: number;
  /** Rows. */
  height: number;
}

/**
 * Resizes like Pillow 9's `ImagingResample` with the bilinear filter: a
 * separable triangle filter whose support grows with the downscale factor
 * (antialiasing), normalised coefficients in 22-bit fixed point, the
 * horizontal pass first, each pass rounded and clipped to 8 bits.
 *
 * With `region`, only that rectangle of the `width` x `height` result is
 * computed, and memory is bounded by it and the input rows it reads: every
 * output pixel depends only on its own coefficients, so the rectangle is
 * bit-identical to cropping the full resize (which is never made).
 *
 * @param image The source image.
 * @param width Output width, a positive integer.
 * @param height Output height, a positive integer.
 * @param region The part of the output to compute (default: all of it).
 * @returns The resized image or region (`image` itself when nothing changes).
 * @throws {OptionError} When a size is not a positive integer or `region` is not inside the output.
 *
 * @example
 * ```ts
 * import { resizeBilinear } from "./resize.ts";
 * const image = { data: new Uint8Array([0, 0, 0, 255, 255, 255]), width: 2, height: 1 };
 * console.log(resizeBilinear(image, 1, 1).data); // Uint8Array(3) [128, 128, 128]
 * // The middle 2x1 pixels of a 1 x 10^9 resize, without making it:
 * console.log(resizeBilinear(image, 1e9, 1, { left: 5e8, top: 0, width: 2, height: 1 }).width); // 2
 * ```
 */
export function resizeBilinear(
  image: RgbImage,
  width: number,
  height: number,
  region: ResizeRegion = { left: 0, top: 0, width, height },
): RgbImage {
  // Three channels whatever else the object carries (a `channels` field is not an RgbImage's).
  const rgb = { data: image.data, width: image.width, height: image.height };
  const resized = resizeSamples(rgb, width, height, region);
  return resized === rgb ? image : rgbOf(resized);
}

/**
 * {@linkcode resizeBilinear} of an RGB or a grey image: a grey one is
 * resized as its one channel and stays grey (each channel is resampled on
 * its own, so this equals the resize of its RGB replica, one channel of it).
 *
 * @param image The source image, RGB or grey.
 * @param width Output width, a positive integer.
 * @param height Output height, a positive integer.
 * @param region The part of the output to compute (default: all of it).
 * @returns The resized image or region, RGB or grey as `image` (`image` itself when nothing changes).
 * @throws {OptionError} When a size is not a positive integer or `region` is not inside the output.
 *
 * @example
 * ```ts
 * import { resizeSamples } from "./resize.ts";
 * const image = { data: new Uint8Array([0, 255]), width: 2, height: 1, channels: 1 as const };
 * console.log(resizeSamples(image, 1, 1).data); // Uint8Array(1) [128]
 * ```
 */
export function resizeSamples(
  image: DecodedImage,
  width: number,
  height: number,
  region: ResizeRegion = { left: 0, top: 0, width, height },
): DecodedImage {
  checkInteger("width", width, { min: 1, max: Number.MAX_SAFE_INTEGER });
  checkInteger("height", height, { min: 1, max: Number.MAX_SAFE_INTEGER });
  checkInteger("region.width", region.width, { min: 1, max: width });
  checkInteger("region.height", region.height, { min: 1, max: height });
  checkInteger("region.left", region.left, { min: 0, max: width - region.width });
  checkInteger("region.top", region.top, { min: 0, max: height - region.height });
  const { left, top, width: w, height: h } = region;
  const whole = w === image.width && h === image.height;
  if (width === image.width && height === image.height && whole) return image;
  const channels = channelsOf(image);
  // Input rows the vertical pass reads (all of the region's rows when it does not run).
  const vertical = height !== image.height ? coefficients(image.height, height, top, h) : undefined;
  const rowFirst = vertical ? vertical.first : top;
  const rows = vertical ? vertical.last - vertical.first : h;
  let data: Uint8Array;
  if (width !== image.width) {
    data = resamplePass(
      { data: image.data, width: image.width, channels },
      rowFirst,
      rows,
      coefficients(image.width, width, left, w),
      true,
      vertical !== undefined,
    );
  } else {
    data = new Uint8Array(w * rows * channels);
    for (let y = 0; y < rows; y++) {
      const from = ((rowFirst + y) * image.width + left) * channels;
      data.set(image.data.subarray(from, from + w * channels), y * w * channels);
    }
  }
  if (vertical) data = resamplePass({ data, width: w, channels }, 0, rows, vertical, false);
  return channels === 1 ? { data, width: w, height: h, channels } : { data, width: w, height: h };
}

/**
 * The input pixels {@linkcode resizeBilinear} reads to make `region` of a
 * `width` x `height` resize of a `inWidth` x `inHeight` image: the columns
 * and rows of the filter windows that touch it. A decoder may leave every
 * other pixel unset.
 *
 * @param inWidth Width of the input image.
 * @param inHeight Height of the input image.
 * @param width Width of the whole resize.
 * @param height Height of the whole resize.
 * @param region The part of the resize computed.
 * @returns Input columns `left` to `right` and rows `top` to `bottom` (exclusive).
 *
 * @example
 * ```ts
 * import { resizeReads } from "./resize.ts";
 * const reads = resizeReads(750, 500, 384, 256, { left: 80, top: 16, width: 224, height: 224 });
 * console.log(reads); // { left: 155, top: 30, right: 595, bottom: 470 }
 * ```
 */
export function resizeReads(
  inWidth: number,
  inHeight: number,
  width: number,
  height: number,
  region: ResizeRegion,
): { left: number; top: number; right: number; bottom: number } {
  const across = width !== inWidth
    ? coefficients(inWidth, width, region.left, region.width)
    : { first: region.left, last: region.left + region.width };
  const down = height !== inHeight
    ? coefficients(inHeight, height, region.top, region.height)
    : { first: region.top, last: region.top + region.height };
  return { left: across.first, top: down.first, right: across.last, bottom: down.last };
}

let useSimd = true;

/**
 * Turns the Wasm SIMD resampling passes off or on (they give the same bytes;
 * for tests and benchmarks of the TypeScript path).
 *
 * @param on Whether to use the kernels where they compile.
 *
 * @example
 * ```ts
 * import { setResizeSimd } from "./resize.ts";
 * setResizeSimd(false);
 * setResizeSimd(true);
 * ```
 */
export function setResizeSimd(on: boolean): void {
  useSimd = on;
}

/** Per output pixel of a window: first input index (relative to `first`) and tap count, and fixed-point weights. */
interface Coefficients {
  bounds: Int32Array;
  weights: Int32Array;
  taps: number;
  /** Outputs computed. */
  length: number;
  /** The lowest and one past the highest input index read. */
  first: number;
  last: number;
}

/**
 * One separable pass over `rows` rows of a `src.width`-wide image of
 * `src.channels` interleaved channels starting at row `rowFirst`: rows are
 * resampled (`horizontal`) to `c.length` columns, or columns to `c.length`
 * rows (then `rows` is the input height, read from row `c.first`).
 */
function resamplePass(
  src: PassSource,
  rowFirst: number,
  rows: number,
  c: Coefficients,
  horizontal: boolean,
  chained = false,
): Uint8Array {
  if (useSimd) {
    // `chained`: the next pass reads the output at once, where the kernels wrote it.
    const out = resamplePassSimd(src, rowFirst, rows, c, horizontal, { resident: chained });
    if (out) return out;
  }
  const { data, width, channels } = src;
  const { bounds, weights, taps, length } = c;
  const lines = horizontal ? rows : width;
  // Strides in samples: along the resampled axis and from one line to the next.
  const inStep = horizontal ? channels : width * channels;
  const inLine = horizontal ? width * channels : channels;
  const inStart = horizontal ? (rowFirst * width + c.first) * channels : 0;
  const outWidth = horizontal ? length : width;
  const outStep = horizontal ? channels : outWidth * channels;
  const outLine = horizontal ? outWidth * channels : channels;
  const out = new Uint8Array(outWidth * (horizontal ? rows : length) * channels);
  const half = 1 << (PRECISION_BITS - 1);
  for (let line = 0; line < lines; line++) {
    for (let i = 0; i < length; i++) {
      const first = bounds[2 * i];
      const count = bounds[2 * i + 1];
      const k = i * taps;
      const base = inStart + line * inLine + first * inStep;
      for (let ch = 0; ch < channels; ch++) {
        let acc = half;
        for (let t = 0, s = base + ch; t < count; t++, s += inStep) acc += data[s] * weights[k + t];
        const v = acc >> PRECISION_BITS;
        out[line * outLine + i * outStep + ch] = v > 255 ? 255 : v; // weights are never negative
      }
    }
  }
  return out;
}

/**
 * Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear
 * filter, for the outputs `start` to `start + length` of an `outLength`
 * resize: per output pixel the first input index (relative to the lowest one
 * read) and tap count, and `taps` fixed-point weights.
 */
function coefficients(
  inLength: number,
  outLength: number,
  start: number,
  length: number,
): Coefficients {
  const scale = inLength / outLength;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const inverse = 1 / filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(length * 2);
  const weights = new Int32Array(length * taps);
  const k = new Float64Array(taps);
  let lowest = inLength;
  let highest = 0;
  for (let i = 0; i < length; i++) {
    const center = (start + i + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inLength) - first;
    let sum = 0;
    for (let t = 0; t < count; t++) {
      const w = Math.max(0, 1 - Math.abs((t + first - center + 0.5) * inverse));
      k[t] = w;
      sum += w;
    }
    for (let t = 0; t < count; t++) {
      const w = sum === 0 ? 0 : k[t] / sum;
      weights[i * taps + t] = Math.trunc(w * (1 << PRECISION_BITS) + 0.5);
    }
    bounds[2 * i] = first;
    bounds[2 * i + 1] = count;
    lowest = Math.min(lowest, first);
    highest = Math.max(highest, first + count);
  }
  for (let i = 0; i < length; i++) bounds[2 * i] -= lowest;
  return { bounds, weights, taps, length, first: lowest, last: Math.max(highest, lowest) };
}
