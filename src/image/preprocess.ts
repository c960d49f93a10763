/**
 * torchvision's standard ImageNet evaluation transform on PIL images:
 * `Resize(256)`, `CenterCrop(224)`, `ToTensor()`, `Normalize(mean, std)`.
 *
 * @module
 */

import { ImageError, OptionError, ShapeError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import { readBytes } from "../read_bytes.ts";
import {
  checkBoolean,
  checkEnum,
  checkInteger,
  checkNumber,
  checkOptions,
  describeValue,
} from "../validate.ts";
import { checkDecodeOptions, decodeSamples, imageBytes } from "./decode.ts";
import { decodeJpegDraftReading } from "./jpeg.ts";
import {
  type CheckedLoadOptions,
  checkLoadOptions,
  type ImageSource,
  LOAD_OPTION_KEYS,
  loadChecked,
  type LoadImageOptions,
} from "./load.ts";
import type { DecodedImage, PixelData } from "./pixels.ts";
import { normalizeToChw } from "./normalize.ts";
import { resizeReads, resizeSamples } from "./resize.ts";

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
/** Largest `resize`: the resized image is never made whole, but its long side must stay exact. */
const MAX_RESIZE = 65_536;
/** Most float32 elements of a batch preprocessBatch allocates (1 GiB). */
const MAX_BATCH_ELEMENTS = 2 ** 28;

/** Every option name of {@linkcode PreprocessOptions}. */
export const PREPROCESS_OPTION_KEYS: readonly string[] = Object.freeze([
  ...LOAD_OPTION_KEYS,
  "resize",
  "crop",
  "normalization",
  "mean",
  "std",
  "draft",
]);

/** Options of {@linkcode preprocess}. */
export interface PreprocessOptions extends LoadImageOptions {
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
  /**
   * The fast path for large JPEGs, **not torchvision-exact**: decode at the
   * smallest of 1/1, 1/2, 1/4, 1/8 scale (in the DCT domain) that keeps the
   * shorter side at least `resize`, as Pillow's `draft("RGB", (resize,
   * resize))` does, then resize and crop. The tensor equals torchvision's
   * transform of Pillow's drafted image, not of the full-size one. PNGs and
   * JPEGs whose shorter side is under `2 * resize` are decoded as without it.
   *
   * @default {false}
   */
  draft?: boolean;
}

/**
 * Turns an image into the `[1, 3, crop, crop]` float32 tensor torchvision's
 * evaluation transform makes from the same image opened with PIL
 * (`exif_transpose` and `convert("RGB")` included): the shorter side resized
 * to `resize` with Pillow's antialiased bilinear filter, the longer side to
 * `floor(resize * long / short)`, a centred `crop`x`crop` square (offsets
 * rounded half to even, as Python's `round`), scaled to [0, 1] and normalised.
 * Bytes and pixels in memory are used as they are when the call is made
 * (copied first), whatever happens to the caller's arrays afterwards.
 *
 * @param image PNG/JPEG bytes, a file path, a URL or decoded pixels.
 * @param options Sizes, normalisation and decoding options.
 * @returns A `[1, 3, crop, crop]` NCHW tensor.
 * @throws {ImageError} When the image cannot be read or decoded or is too large.
 * @throws {ShapeError} When decoded pixels have inconsistent dimensions.
 * @throws {OptionError} When an option is unknown, of the wrong type or out of range.
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
  const checked = checkOptions("preprocess", options, PREPROCESS_OPTION_KEYS);
  const transform = evalTransform(checked);
  const load = checkLoadOptions(checked);
  return new Tensor(await transformSource(snapshot(image), load, transform), [
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
 * @throws {OptionError} When an option is unknown, of the wrong type or out of range.
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
  const checked = checkOptions("preprocessBatch", options, PREPROCESS_OPTION_KEYS);
  return await preprocessChecked(images, evalTransform(checked), checkLoadOptions(checked));
}

/**
 * Checks the transform options of {@linkcode PreprocessOptions} (not the
 * names) and returns the resize-crop-normalise step they describe. `crop`
 * is at most `resize`, and its square at most `maxPixels`.
 *
 * @param options Options as given.
 * @returns The transform of one decoded image, with its `crop` size.
 * @throws {OptionError} When an option has the wrong type or is out of range.
 *
 * @example
 * ```ts
 * import { evalTransform } from "./preprocess.ts";
 * console.log(evalTransform({ crop: 200 }).crop); // 200
 * ```
 */
export function evalTransform(options: PreprocessOptions): EvalTransform {
  const resize = checkInteger("resize", options.resize, { min: 1, max: MAX_RESIZE, default: 256 });
  const { maxPixels } = checkDecodeOptions(options);
  const crop = checkInteger("crop", options.crop, {
    min: 1,
    max: Math.min(resize, Math.floor(Math.sqrt(maxPixels))),
    default: 224,
  });
  const normalization = checkEnum("normalization", options.normalization, ["imagenet", "half"], {
    default: "imagenet",
  });
  const preset = PRESETS[normalization];
  const mean = channelValues("mean", options.mean ?? preset[0]);
  const std = channelValues("std", options.std ?? preset[1]);
  if (std.some((s) => s === 0)) {
    throw new OptionError(`Expected std to be non-zero, got [${std.join(", ")}]`);
  }
  const draft = checkBoolean("draft", options.draft, { default: false });
  const apply = (image: DecodedImage, into?: Float32Array) => {
    const cropped = resizeAndCrop(image, resize, crop);
    // Nothing resized: the pixels may be the decoder's in the kernels' memory (transformSource),
    // which the normalisation's memory may overwrite or detach, so it gets a copy.
    return normalizeToChw(
      cropped === image ? { ...image, data: image.data.slice() } : cropped,
      mean,
      std,
      { into },
    );
  };
  return Object.assign(apply, { crop, resize, draft, mean, std });
}

/**
 * The checked evaluation transform of one decoded image, with the settings
 * it was made from (enough to make it again in a worker).
 */
export interface EvalTransform {
  /**
   * Resize, crop and normalise one decoded image (RGB, or grey standing for
   * its RGB replica) into CHW float32: a new array, or the first
   * `3 * crop * crop` floats of `into` (returned).
   */
  (image: DecodedImage, into?: Float32Array): Float32Array;
  /** Side of the crop. */
  readonly crop: number;
  /** Length the shorter side is resized to. */
  readonly resize: number;
  /** Whether JPEGs are decoded by the fast path (see {@linkcode PreprocessOptions.draft}). */
  readonly draft: boolean;
  /** Per-channel mean. */
  readonly mean: Float32Array;
  /** Per-channel standard deviation. */
  readonly std: Float32Array;
}

/**
 * Loads an image for `transform`: as {@linkcode loadChecked}, except that
 * with `transform.draft` a JPEG is decoded at the reduced scale Pillow's
 * `draft()` picks for `transform.resize`, and that of a JPEG stored upright
 * only the pixels the transform's resize reads for its crop are made (the
 * others are unspecified: the image is for `transform` alone), and that a
 * greyscale JPEG stays one channel (the transform replicates it when it
 * normalises).
 *
 * @param source Encoded bytes, a path, a URL or decoded pixels.
 * @param load Checked load options.
 * @param transform From {@linkcode evalTransform}.
 * @returns The upright RGB or grey image the transform starts from.
 * @throws {ImageError} When the image cannot be read or decoded or is too large.
 *
 * @example
 * ```ts
 * import { evalTransform, loadForTransform } from "./preprocess.ts";
 * import { checkLoadOptions } from "./load.ts";
 * const image = await loadForTransform(
 *   "assets/chelsea.jpg",
 *   checkLoadOptions({}),
 *   evalTransform({ resize: 100, crop: 100, draft: true }),
 * );
 * console.log(image.width, image.height); // 226 150
 * ```
 */
export async function loadForTransform(
  source: ImageSource,
  load: CheckedLoadOptions,
  transform: EvalTransform,
): Promise<DecodedImage> {
  const bytes = await sourceBytes(source, load);
  if (bytes === undefined) return await loadChecked(source, load); // pixels, or a wrong type
  return decodeForTransform(bytes, load, transform, false);
}

/**
 * `transform(await loadForTransform(source, load, transform))`, without
 * copying a JPEG's decoded pixels out of the kernels' memory: the bytes are
 * read first, then the image is decoded and transformed in one synchronous
 * step, so no other decode can run in between and the resize reads the
 * pixels where the decoder made them. Same result, bit for bit.
 *
 * @param source Encoded bytes, a path, a URL or decoded pixels.
 * @param load Checked load options.
 * @param transform From {@linkcode evalTransform}.
 * @param into Where to write the tensor data (a view of a batch), instead of a new array.
 * @returns The image's CHW float32 tensor data (`into`'s first floats when given).
 * @throws {ImageError} When the image cannot be read or decoded or is too large.
 *
 * @example
 * ```ts
 * import { evalTransform, transformSource } from "./preprocess.ts";
 * import { checkLoadOptions } from "./load.ts";
 * const data = await transformSource("assets/chelsea.jpg", checkLoadOptions({}), evalTransform({}));
 * console.log(data.length); // 150528
 * ```
 */
export async function transformSource(
  source: ImageSource,
  load: CheckedLoadOptions,
  transform: EvalTransform,
  into?: Float32Array,
): Promise<Float32Array> {
  const bytes = await sourceBytes(source, load);
  if (bytes === undefined) return transform(await loadChecked(source, load), into);
  return transform(decodeForTransform(bytes, load, transform, true), into);
}

/** The encoded bytes of a path, URL or byte source (read within budget); `undefined` for pixels. */
async function sourceBytes(
  source: ImageSource,
  load: CheckedLoadOptions,
): Promise<Uint8Array | undefined> {
  if (typeof source === "string" || source instanceof URL) {
    return await readBytes(source, { ...load, error: ImageError, what: "image" });
  }
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return imageBytes(source);
  return undefined;
}

/**
 * Decodes `bytes` for `transform`: only what its resize reads, at draft scale with `draft`, a
 * greyscale JPEG as one channel (resized as one, replicated when normalised).
 */
function decodeForTransform(
  bytes: Uint8Array,
  load: CheckedLoadOptions,
  transform: EvalTransform,
  inPlace: boolean,
): DecodedImage {
  // A JPEG decoder only makes what the resize reads of the crop.
  const reads = (width: number, height: number) => {
    const { w, h, region } = cropGeometry(width, height, transform.resize, transform.crop);
    return resizeReads(width, height, w, h, region);
  };
  if (!transform.draft || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) {
    return decodeSamples(bytes, load, { reads, inPlace, grey: true });
  }
  return decodeJpegDraftReading(
    bytes,
    {
      minSide: transform.resize,
      maxPixels: load.maxPixels,
      exifOrientation: load.exifOrientation,
    },
    { reads, inPlace, grey: true },
  );
}

/**
 * {@linkcode preprocessBatch} with its options already checked. The batch's
 * size is checked before it is allocated, and the images are read and decoded
 * one at a time, so memory holds one decoded image besides the batch.
 *
 * @param images At least one image.
 * @param transform From {@linkcode evalTransform}.
 * @param load Checked load options.
 * @returns An `[N, 3, crop, crop]` NCHW tensor, images in order.
 * @throws {ShapeError} When `images` is empty.
 * @throws {OptionError} When `images` is not an array or the batch exceeds 2^28 elements.
 *
 * @example
 * ```ts
 * import { evalTransform, preprocessChecked } from "./preprocess.ts";
 * import { checkLoadOptions } from "./load.ts";
 * const batch = await preprocessChecked(["assets/chelsea.jpg"], evalTransform({}), checkLoadOptions({}));
 * console.log(batch.shape); // [1, 3, 224, 224]
 * ```
 */
export async function preprocessChecked(
  images: readonly ImageSource[],
  transform: EvalTransform,
  load: CheckedLoadOptions,
): Promise<Tensor> {
  if (!Array.isArray(images)) {
    throw new OptionError(`Expected images to be an array of images, got ${describeValue(images)}`);
  }
  if (images.length === 0) throw new ShapeError("Expected at least one image in the batch, got 0");
  // Bytes and pixels in memory are copied now, so the batch is the images as they were when the
  // call was made, whatever the caller does to its arrays while paths and URLs are read.
  const list = images.map(snapshot);
  const size = 3 * transform.crop * transform.crop;
  if (list.length * size > MAX_BATCH_ELEMENTS) {
    throw new OptionError(
      `Expected a batch of at most ${MAX_BATCH_ELEMENTS} float32 elements (1 GiB), got ` +
        `${list.length} images of ${size}`,
    );
  }
  const out = new Float32Array(list.length * size);
  for (let n = 0; n < list.length; n++) {
    await transformSource(list[n], load, transform, out.subarray(n * size, (n + 1) * size));
  }
  return new Tensor(out, [list.length, 3, transform.crop, transform.crop]);
}

function channelValues(name: string, values: unknown): Float32Array {
  if (!Array.isArray(values) || values.length !== 3) {
    throw new OptionError(
      `Expected ${name} to be 3 finite numbers (R, G, B), got ${describeValue(values)}`,
    );
  }
  return Float32Array.from(values, (v, i) => checkNumber(`${name}[${i}]`, v));
}

/**
 * A copy of an in-memory image (encoded bytes or pixels); paths and URLs as
 * they are. Callers that keep an image past the call take one first.
 *
 * @param source An image as given.
 * @returns The copy, or `source` itself for paths and URLs.
 *
 * @example
 * ```ts
 * import { snapshot } from "./preprocess.ts";
 * const bytes = new Uint8Array([1, 2]);
 * console.log(snapshot(bytes) !== bytes); // true
 * ```
 */
export function snapshot(source: ImageSource): ImageSource {
  if (source instanceof ArrayBuffer) return source.slice(0);
  if (ArrayBuffer.isView(source)) return imageBytes(source).slice();
  if (typeof source === "object" && source !== null && "data" in source) {
    const { data, width, height, channels } = source as PixelData;
    const copy = ArrayBuffer.isView(data) ? data.slice() : data;
    return channels === undefined
      ? { data: copy, width, height }
      : { data: copy, width, height, channels };
  }
  return source;
}

/**
 * torchvision `Resize(size)` (shorter side to `size`, longer to
 * `int(size * long / short)`) then `CenterCrop(crop)`, computing only the
 * pixels the crop keeps: a 1 x N image's 256 x 256N resize is never made.
 */
function resizeAndCrop(image: DecodedImage, size: number, crop: number): DecodedImage {
  const { w, h, region } = cropGeometry(image.width, image.height, size, crop);
  return resizeSamples(image, w, h, region);
}

/** The resize's size (`w` x `h`) and its centre crop, for a `width` x `height` image. */
function cropGeometry(width: number, height: number, size: number, crop: number) {
  const long = Math.trunc((size * Math.max(width, height)) / Math.min(width, height));
  const [w, h] = width <= height ? [size, long] : [long, size];
  const region = {
    left: halfToEven(w - crop),
    top: halfToEven(h - crop),
    width: crop,
    height: crop,
  };
  return { w, h, region };
}

/** `int(round(diff / 2))` with Python's round-half-to-even. */
function halfToEven(diff: number): number {
  const half = diff >> 1;
  return diff % 2 === 1 && half % 2 === 1 ? half + 1 : half;
}
