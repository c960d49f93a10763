/**
 * Pillow-exact bilinear resizing (`Image.resize(size, Image.BILINEAR)`) of
 * 8-bit RGB images, the resampling torchvision's `Resize` uses on PIL images.
 *
 * @module
 */

import type { RgbImage } from "./pixels.ts";

/** Fixed-point fraction bits of Pillow's 8-bit resampler (`32 - 8 - 2`). */
const PRECISION_BITS = 22;

/**
 * Resizes like Pillow 9's `ImagingResample` with the bilinear filter: a
 * separable triangle filter whose support grows with the downscale factor
 * (antialiasing), normalised coefficients in 22-bit fixed point, the
 * horizontal pass first, each pass rounded and clipped to 8 bits.
 *
 * @param image The source image.
 * @param width Output width, a positive integer.
 * @param height Output height, a positive integer.
 * @returns The resized image (`image` itself when the size is unchanged).
 *
 * @example
 * ```ts
 * import { resizeBilinear } from "./resize.ts";
 * const image = { data: new Uint8Array([0, 0, 0, 255, 255, 255]), width: 2, height: 1 };
 * console.log(resizeBilinear(image, 1, 1).data); // Uint8Array(3) [128, 128, 128]
 * ```
 */
export function resizeBilinear(image: RgbImage, width: number, height: number): RgbImage {
  let { data } = image;
  if (width !== image.width) {
    data = resamplePass(data, image.width, image.height, width, true);
  }
  if (height !== image.height) {
    data = resamplePass(data, width, image.height, height, false);
  }
  return data === image.data ? image : { data, width, height };
}

/**
 * One separable pass over a `width`x`height` RGB image, resampling rows
 * (`horizontal`) or columns to `outLength` pixels.
 */
function resamplePass(
  src: Uint8Array,
  width: number,
  height: number,
  outLength: number,
  horizontal: boolean,
): Uint8Array {
  const inLength = horizontal ? width : height;
  const lines = horizontal ? height : width;
  const { bounds, weights, taps } = coefficients(inLength, outLength);
  // Strides in samples: along the resampled axis and from one line to the next.
  const inStep = horizontal ? 3 : width * 3;
  const inLine = horizontal ? width * 3 : 3;
  const outWidth = horizontal ? outLength : width;
  const outStep = horizontal ? 3 : outWidth * 3;
  const outLine = horizontal ? outWidth * 3 : 3;
  const out = new Uint8Array(outWidth * (horizontal ? height : outLength) * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let line = 0; line < lines; line++) {
    for (let i = 0; i < outLength; i++) {
      const first = bounds[2 * i];
      const count = bounds[2 * i + 1];
      const k = i * taps;
      const base = line * inLine + first * inStep;
      for (let c = 0; c < 3; c++) {
        let acc = half;
        for (let t = 0, s = base + c; t < count; t++, s += inStep) acc += src[s] * weights[k + t];
        const v = acc >> PRECISION_BITS;
        out[line * outLine + i * outStep + c] = v > 255 ? 255 : v; // weights are never negative
      }
    }
  }
  return out;
}

/**
 * Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear
 * filter: per output pixel the first input index and tap count (`bounds`) and
 * `taps` fixed-point weights.
 */
function coefficients(inLength: number, outLength: number) {
  const scale = inLength / outLength;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const inverse = 1 / filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outLength * 2);
  const weights = new Int32Array(outLength * taps);
  const k = new Float64Array(taps);
  for (let i = 0; i < outLength; i++) {
    const center = (i + 0.5) * scale;
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
  }
  return { bounds, weights, taps };
}
