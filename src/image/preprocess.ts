/**
 * torchvision's standard ImageNet evaluation transform on PIL images:
 * `Resize(256)`, `CenterCrop(224)`, `ToTensor()`, `Normalize(mean, std)`.
 *
 * @module
 */

import { ShapeError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import type { DecodeOptions } from "./decode.ts";
import { type ImageSource, loadImage } from "./load.ts";
import type { RgbImage } from "./pixels.ts";
import { resizeBilinear } from "./resize.ts";

/** ImageNet channel means (R, G, B) of torchvision's pretrained models. */
export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
/** ImageNet channel standard deviations (R, G, B) of torchvision's pretrained models. */
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);

/**
 * Normalisation presets: `"imagenet"` ({@linkcode IMAGENET_MEAN},
 * {@linkcode IMAGENET_STD}) or `"half"` (mean and std 0.5, mapping to [-1, 1]).
 */
export type Normalization = "imagenet" | "half";

const PRESETS: Record<Normalization, readonly (readonly number[])[]> = {
  imagenet: [IMAGENET_MEAN, IMAGENET_STD],
  half: [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],
};

/** Options of {@linkcode preprocess}. */
export interface PreprocessOptions extends DecodeOptions {
  /** Length the shorter side is resized to. @default {256} */
  resize?: number;
  /** Side of the centred square crop, at most `resize`. @default {224} */
  crop?: number;
  /** Preset for `mean` and `std`. @default {"imagenet"} */
  normalization?: Normalization;
  /** Per-channel (R, G, B) mean, overriding the preset. */
  mean?: readonly number[];
  /** Per-channel (R, G, B) standard deviation, overriding the preset. */
  std?: readonly number[];
}

/**
 * Turns an image into the `[1, 3, crop, crop]` float32 tensor torchvision's
 * evaluation transform makes from the same image opened with PIL
 * (`exif_transpose` and `convert("RGB")` included): the shorter side resized
 * to `resize` with Pillow's antialiased bilinear filter, the longer side to
 * `floor(resize * long / short)`, a centred `crop`x`crop` square (offsets
 * rounded half to even, as Python's `round`), scaled to [0, 1] and normalised.
 *
 * @param image PNG/JPEG bytes, a file path, a URL or decoded pixels.
 * @param options Sizes, normalisation and decoding options.
 * @returns A `[1, 3, crop, crop]` NCHW tensor.
 * @throws {ImageError} When the image cannot be read or decoded or is too large.
 * @throws {ShapeError} When decoded pixels have inconsistent dimensions.
 * @throws {RangeError} When an option is out of range.
 *
 * @example
 * ```ts
 * import { preprocess } from "./preprocess.ts";
 * const input = await preprocess("assets/chelsea.jpg");
 * console.log(input.shape); // [1, 3, 224, 224]
 * ```
 */
export async function preprocess(
  image: ImageSource,
  options: PreprocessOptions = {},
): Promise<Tensor> {
  const transform = evalTransform(options);
  return new Tensor(transform(await loadImage(image, options)), [
    1,
    3,
    transform.crop,
    transform.crop,
  ]);
}

/**
 * {@linkcode preprocess} for several images, stacked into one batch.
 *
 * @param images At least one image, each as {@linkcode preprocess} accepts.
 * @param options Applied to every image.
 * @returns An `[N, 3, crop, crop]` NCHW tensor, images in order.
 * @throws {ShapeError} When `images` is empty or decoded pixels have inconsistent dimensions.
 * @throws {ImageError} When an image cannot be read or decoded or is too large.
 * @throws {RangeError} When an option is out of range.
 *
 * @example
 * ```ts
 * import { preprocessBatch } from "./preprocess.ts";
 * const batch = await preprocessBatch(["assets/chelsea.jpg", "assets/chelsea.jpg"]);
 * console.log(batch.shape); // [2, 3, 224, 224]
 * ```
 */
export async function preprocessBatch(
  images: readonly ImageSource[],
  options: PreprocessOptions = {},
): Promise<Tensor> {
  if (images.length === 0) throw new ShapeError("Expected at least one image in the batch, got 0");
  const transform = evalTransform(options);
  const size = 3 * transform.crop * transform.crop;
  const out = new Float32Array(images.length * size);
  const loaded = await Promise.all(images.map((image) => loadImage(image, options)));
  loaded.forEach((image, n) => out.set(transform(image), n * size));
  return new Tensor(out, [images.length, 3, transform.crop, transform.crop]);
}

/** Validates `options` and returns the resize-crop-normalise step they describe. */
function evalTransform(options: PreprocessOptions) {
  const { resize = 256, crop = 224, normalization = "imagenet" } = options;
  const preset = PRESETS[normalization];
  if (preset === undefined) {
    throw new RangeError(
      `Expected normalization "imagenet" or "half", got ${JSON.stringify(normalization)}`,
    );
  }
  if (!Number.isSafeInteger(resize) || resize < 1) {
    throw new RangeError(`Expected resize to be a positive integer, got ${resize}`);
  }
  if (!Number.isSafeInteger(crop) || crop < 1 || crop > resize) {
    throw new RangeError(
      `Expected crop to be an integer from 1 to resize (${resize}), got ${crop}`,
    );
  }
  const mean = channelValues("mean", options.mean ?? preset[0]);
  const std = channelValues("std", options.std ?? preset[1]);
  if (std.some((s) => s === 0)) {
    throw new RangeError(`Expected a non-zero std, got [${std.join(", ")}]`);
  }
  const apply = (image: RgbImage) => normalize(resizeAndCrop(image, resize, crop), mean, std);
  return Object.assign(apply, { crop });
}

function channelValues(name: string, values: readonly number[]): Float32Array {
  if (values.length !== 3 || !values.every(Number.isFinite)) {
    throw new RangeError(
      `Expected ${name} to be 3 finite numbers (R, G, B), got [${values.join(", ")}]`,
    );
  }
  return Float32Array.from(values);
}

/**
 * torchvision `Resize(size)` (shorter side to `size`, longer to
 * `int(size * long / short)`) then `CenterCrop(crop)`, computing only the
 * pixels the crop keeps: a 1 x N image's 256 x 256N resize is never made.
 */
function resizeAndCrop(image: RgbImage, size: number, crop: number): RgbImage {
  const { width, height } = image;
  const long = Math.trunc((size * Math.max(width, height)) / Math.min(width, height));
  const [w, h] = width <= height ? [size, long] : [long, size];
  const region = {
    left: halfToEven(w - crop),
    top: halfToEven(h - crop),
    width: crop,
    height: crop,
  };
  return resizeBilinear(image, w, h, region);
}

/** `int(round(diff / 2))` with Python's round-half-to-even. */
function halfToEven(diff: number): number {
  const half = diff >> 1;
  return diff % 2 === 1 && half % 2 === 1 ? half + 1 : half;
}

/**
 * `ToTensor` then `Normalize` in float32, operation by operation as torch does
 * (`x / 255`, then `(x - mean) / std`), into planar CHW order.
 */
function normalize(image: RgbImage, mean: Float32Array, std: Float32Array): Float32Array {
  const pixels = image.width * image.height;
  const out = new Float32Array(3 * pixels);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < pixels; i++) {
      const x = Math.fround(image.data[i * 3 + c] / 255);
      out[c * pixels + i] = Math.fround(x - mean[c]) / std[c];
    }
  }
  return out;
}
