/**
 * torchvision's `ToTensor()` then `Normalize(mean, std)` of an 8-bit RGB
 * image (or a grey one, as its RGB replica) into planar CHW float32, on the Wasm SIMD kernels where they compile
 * (`asm/image/normalize.ts`) and in TypeScript elsewhere: the same float32
 * operations in the same order, so the same bits either way.
 *
 * @module
 */

import { channelsOf, type DecodedImage } from "./pixels.ts";
import { kernelArena } from "./simd.ts";

/**
 * `x / 255`, then `(x - mean[c]) / std[c]`, each rounded to float32 as torch
 * computes it, channel planes in R, G, B order. A grey image gives the
 * tensor of its RGB replica (`convert("RGB")`: three equal channels).
 *
 * @param image The RGB or grey image.
 * @param mean Per-channel mean (float32).
 * @param std Per-channel standard deviation (float32).
 * @param options `simd: false` runs the TypeScript path (for tests); `into`: write the
 * floats there (at least `3 * width * height` of them; a view of a batch, for one) instead of
 * into a new array.
 * @returns `3 * width * height` floats, plane by plane (`into`'s first ones when given).
 *
 * @example
 * ```ts
 * import { normalizeToChw } from "./normalize.ts";
 * const image = { data: new Uint8Array([255, 0, 51]), width: 1, height: 1 };
 * const half = new Float32Array([0.5, 0.5, 0.5]);
 * console.log(normalizeToChw(image, half, half)); // Float32Array(3) [ 1, -1, -0.6000000238418579 ]
 * ```
 */
export function normalizeToChw(
  image: DecodedImage,
  mean: Float32Array,
  std: Float32Array,
  options: { simd?: boolean; into?: Float32Array } = {},
): Float32Array {
  const pixels = image.width * image.height;
  const channels = channelsOf(image);
  const into = options.into?.subarray(0, 3 * pixels);
  if (into !== undefined && into.length < 3 * pixels) {
    throw new RangeError(`Expected into to hold ${3 * pixels} floats, got ${into.length}`);
  }
  if (options.simd ?? true) {
    const src = 0;
    const out = Math.ceil((pixels * channels + 16) / 16) * 16;
    const arena = kernelArena(out + pixels * 12);
    if (arena) {
      const { memory, kernels } = arena;
      new Uint8Array(memory.buffer).set(image.data.subarray(0, pixels * channels), src);
      kernels.normalize_to_chw(
        src,
        pixels,
        channels,
        out,
        mean[0],
        mean[1],
        mean[2],
        std[0],
        std[1],
        std[2],
      );
      const made = new Float32Array(memory.buffer, out, pixels * 3);
      if (into === undefined) return made.slice();
      into.set(made);
      return into;
    }
  }
  const out = into ?? new Float32Array(3 * pixels);
  for (let c = 0; c < 3; c++) {
    const s = channels === 1 ? 0 : c;
    for (let i = 0; i < pixels; i++) {
      const x = Math.fround(image.data[i * channels + s] / 255);
      out[c * pixels + i] = Math.fround(x - mean[c]) / std[c];
    }
  }
  return out;
}
