/**
 * torchvision's transforms on 8-bit RGB images, equal to torchvision 0.14 on
 * PIL images: `RandomResizedCrop`, `RandomHorizontalFlip`, `Resize`,
 * `CenterCrop`, `ToTensor`, `Normalize` and `Compose`, with the same
 * arithmetic (crop boxes, Python's rounding, Pillow's antialiased bilinear
 * filter in 22-bit fixed point, float32 normalisation).
 *
 * Random draws come from a {@linkcode RandomSource}: the seeded
 * {@linkcode Random} by default, which cannot reproduce torch's generator; a
 * crop box given to {@linkcode resizedCrop} gives torchvision's pixels.
 *
 * Every transform has a JSON `spec`, so that loader workers can rebuild it
 * ({@linkcode transformFromSpec}).
 *
 * @module
 */

import { OptionError, ShapeError } from "../errors.ts";
import { DEFAULT_MAX_PIXELS } from "../image/decode.ts";
import type { RgbImage } from "../image/pixels.ts";
import { resizeBilinear } from "../image/resize.ts";
import { Tensor } from "../tensor.ts";
import { describeValue } from "../validate.ts";
import { Random, type RandomSource } from "./random.ts";

/** What a transform takes and gives: an RGB image, or a `[3, H, W]` tensor after `ToTensor`. */
export type TransformValue = RgbImage | Tensor;

/** A crop rectangle in pixels; it may reach outside the image (filled with black). */
export interface Box {
  /** First row. */
  readonly top: number;
  /** First column. */
  readonly left: number;
  /** Rows. */
  readonly height: number;
  /** Columns. */
  readonly width: number;
}

/** The JSON description of a transform, from which {@linkcode transformFromSpec} rebuilds it. */
export type TransformSpec =
  | {
    name: "RandomResizedCrop";
    size: [number, number];
    scale: [number, number];
    ratio: [number, number];
  }
  | { name: "RandomHorizontalFlip"; p: number }
  | { name: "Resize"; size: number | [number, number]; maxSize?: number }
  | { name: "CenterCrop"; size: [number, number] }
  | { name: "ToTensor" }
  | { name: "Normalize"; mean: number[]; std: number[] }
  | { name: "Compose"; transforms: TransformSpec[] };

/** A transform: a step of a pipeline, as torchvision's `nn.Module` transforms. */
export interface Transform {
  /** The JSON description. */
  readonly spec: TransformSpec;
  /**
   * Applies the transform.
   *
   * @param input An RGB image (or a tensor, for the steps after `ToTensor`).
   * @param random The source of random draws (random transforms only).
   * @returns The transformed value.
   */
  apply(input: TransformValue, random?: RandomSource): TransformValue;
}

/** Options of {@linkcode RandomResizedCrop}. */
export interface RandomResizedCropOptions {
  /** Range of the crop's area as a share of the image's. @default {[0.08, 1]} */
  scale?: readonly [number, number];
  /** Range of the crop's aspect ratio (width / height). @default {[3 / 4, 4 / 3]} */
  ratio?: readonly [number, number];
}

/** `int(round(x))` with Python's round-half-to-even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** An unseeded generator, for calls that pass no random source (as torch without a seed). */
function freshRandom(): Random {
  return new Random(crypto.getRandomValues(new Uint32Array(1))[0]);
}

/**
 * The crop box torchvision 0.14's `RandomResizedCrop.get_params` picks for a
 * `width`x`height` image: up to 10 tries of an area share uniform in `scale`
 * and a log-uniform aspect ratio (float32 `log`/`exp`, as torch computes
 * them), `w = int(round(sqrt(area * ratio)))`, `h = int(round(sqrt(area /
 * ratio)))`, accepted when it fits and then placed uniformly; else the centred
 * crop of the whole image with its ratio clamped to `ratio`.
 *
 * torch's float32 `exp` may differ from the correctly rounded one in the last
 * bit; that changes `w` or `h` only when the square root lands within about
 * 1e-7 of a half.
 *
 * @param width Image width.
 * @param height Image height.
 * @param options The `scale` and `ratio` ranges.
 * @param random The source of random draws (4 per try: area, ratio, then two
 * `randint` placements once a try fits).
 * @returns The crop box.
 *
 * @example
 * ```ts
 * import { randomResizedCropBox } from "./transforms.ts";
 * import { Random } from "./random.ts";
 * const box = randomResizedCropBox(640, 480, {}, new Random(1));
 * console.log(box.left + box.width <= 640 && box.top + box.height <= 480); // true
 * ```
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  options: RandomResizedCropOptions = {},
  random: RandomSource = freshRandom(),
): Box {
  const { scale = [0.08, 1], ratio = [3 / 4, 4 / 3] } = options;
  const area = height * width;
  const logLow = Math.fround(Math.log(Math.fround(ratio[0])));
  const logHigh = Math.fround(Math.log(Math.fround(ratio[1])));
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * random.uniform(scale[0], scale[1]);
    const aspect = Math.fround(Math.exp(random.uniform(logLow, logHigh)));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const top = random.randint(0, height - h + 1);
      const left = random.randint(0, width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  const low = Math.min(ratio[0], ratio[1]);
  const high = Math.max(ratio[0], ratio[1]);
  let w = width;
  let h = height;
  if (inRatio < low) h = roundHalfEven(w / low);
  else if (inRatio > high) w = roundHalfEven(h * high);
  return {
    top: Math.floor((height - h) / 2),
    left: Math.floor((width - w) / 2),
    height: h,
    width: w,
  };
}

/**
 * Cuts `box` out of `image` like PIL's `Image.crop`: parts outside the image
 * are black.
 *
 * @param image The source image.
 * @param box The rectangle, at least 1x1.
 * @returns The cropped image.
 * @throws {OptionError} When the box is not made of integers, is empty, or is over 64 megapixels
 * and larger than the image.
 *
 * @example
 * ```ts
 * import { crop } from "./transforms.ts";
 * const image = { data: new Uint8Array([1, 1, 1, 2, 2, 2]), width: 2, height: 1 };
 * console.log(crop(image, { top: 0, left: 1, height: 1, width: 2 }).data); // Uint8Array(6) [2, 2, 2, 0, 0, 0]
 * ```
 */
export function crop(image: RgbImage, box: Box): RgbImage {
  const { top, left, height, width } = box;
  if (![top, left, height, width].every(Number.isSafeInteger) || height < 1 || width < 1) {
    throw new OptionError(
      `Expected an integer crop box of at least 1x1, got top ${top}, left ${left}, ${width}x${height}`,
    );
  }
  if (top === 0 && left === 0 && width === image.width && height === image.height) return image;
  checkPixels("The crop", width, height, { input: image });
  const data = new Uint8Array(width * height * 3);
  const x0 = Math.max(left, 0);
  const x1 = Math.min(left + width, image.width);
  if (x1 > x0) {
    for (let y = Math.max(top, 0); y < Math.min(top + height, image.height); y++) {
      const from = (y * image.width + x0) * 3;
      data.set(
        image.data.subarray(from, from + (x1 - x0) * 3),
        ((y - top) * width + x0 - left) * 3,
      );
    }
  }
  return { data, width, height };
}

/**
 * torchvision's `F.resized_crop` on a PIL image: `crop(box)`, then Pillow's
 * antialiased bilinear resize to `size` (`[height, width]`).
 *
 * @param image The source image.
 * @param box The crop rectangle.
 * @param size Output `[height, width]`, or one number for a square.
 * @returns The resized crop.
 * @throws {OptionError} When the box or size is invalid.
 *
 * @example
 * ```ts
 * import { resizedCrop } from "./transforms.ts";
 * const image = { data: new Uint8Array(4 * 4 * 3).fill(9), width: 4, height: 4 };
 * const out = resizedCrop(image, { top: 1, left: 1, height: 2, width: 2 }, 3);
 * console.log(out.width, out.height, out.data[0]); // 3 3 9
 * ```
 */
export function resizedCrop(
  image: RgbImage,
  box: Box,
  size: number | readonly [number, number],
): RgbImage {
  const [h, w] = pair("size", size);
  return resizeBilinear(crop(image, box), w, h);
}

/**
 * Mirrors an image left to right (`F.hflip`), or each row of a `[C, H, W]` tensor.
 *
 * @param input The image or tensor.
 * @returns A mirrored copy.
 *
 * @example
 * ```ts
 * import { hflip } from "./transforms.ts";
 * const image = { data: new Uint8Array([1, 2, 3, 4, 5, 6]), width: 2, height: 1 };
 * console.log((hflip(image) as { data: Uint8Array }).data); // Uint8Array(6) [4, 5, 6, 1, 2, 3]
 * ```
 */
export function hflip(input: TransformValue): TransformValue {
  if (input instanceof Tensor) {
    const width = input.shape[input.shape.length - 1];
    const data = new Float32Array(input.data.length);
    for (let row = 0; row < data.length; row += width) {
      for (let x = 0; x < width; x++) data[row + x] = input.data[row + width - 1 - x];
    }
    return new Tensor(data, input.shape);
  }
  const { width, height } = input;
  const data = new Uint8Array(input.data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0, to = y * width * 3, from = (y * width + width - 1) * 3; x < width; x++) {
      data[to++] = input.data[from];
      data[to++] = input.data[from + 1];
      data[to++] = input.data[from + 2];
      from -= 3;
    }
  }
  return { data, width, height };
}

/**
 * The most pixels an image a transform makes may have, unless its input has
 * more: the decoders' default `maxPixels`. A larger size (a typo such as
 * 22400) would be allocated, and end the process when memory runs out,
 * instead of being an error. An output no larger than its input is never
 * refused: an image decoded under a raised `maxPixels` may be cropped.
 */
const MAX_PIXELS = DEFAULT_MAX_PIXELS;

/**
 * Throws when a `w` x `h` output of `what` is over {@linkcode MAX_PIXELS} and
 * over the `input` image's pixels.
 */
function checkPixels(
  what: string,
  w: number,
  h: number,
  { input, hint = "" }: { input?: RgbImage; hint?: string } = {},
): void {
  const inputPixels = input ? input.width * input.height : 0;
  const [limit, source] = inputPixels > MAX_PIXELS
    ? [inputPixels, "the input's pixels"]
    : [MAX_PIXELS, "the decoders' default maxPixels"];
  if (w * h > limit) {
    throw new OptionError(
      `${what} would be ${w}x${h} (${
        w * h
      } pixels): expected at most ${limit} pixels (${source})${hint}`,
    );
  }
}

/** `[h, w]` from a number or a pair of positive integers, within {@linkcode MAX_PIXELS}. */
function pair(name: string, size: number | readonly number[]): [number, number] {
  const [h, w] = typeof size === "number" ? [size, size] : size;
  if (
    (typeof size !== "number" && size.length !== 2) || !Number.isSafeInteger(h) ||
    !Number.isSafeInteger(w) || h < 1 || w < 1
  ) {
    throw new OptionError(
      `Expected ${name} to be a positive integer or [height, width], got ${JSON.stringify(size)}`,
    );
  }
  checkPixels(`An output of ${name} ${JSON.stringify(size)}`, w, h);
  return [h, w];
}

function range(name: string, value: readonly number[]): [number, number] {
  if (
    value.length !== 2 || !value.every((v) => Number.isFinite(v) && v > 0) || value[0] > value[1]
  ) {
    throw new OptionError(
      `Expected ${name} to be [min, max] with 0 < min <= max, got ${JSON.stringify(value)}`,
    );
  }
  return [value[0], value[1]];
}

function imageInput(name: string, input: TransformValue): RgbImage {
  if (input instanceof Tensor) {
    throw new ShapeError(`${name} expects an RGB image, got a tensor: put it before ToTensor`);
  }
  return input;
}

function tensorInput(name: string, input: TransformValue): Tensor {
  if (!(input instanceof Tensor) || input.shape.length !== 3) {
    throw new ShapeError(
      `${name} expects a [C, H, W] tensor, got ${
        input instanceof Tensor ? `shape [${input.shape.join(", ")}]` : "an image"
      }: put it after ToTensor`,
    );
  }
  return input;
}

/**
 * `transforms.RandomResizedCrop(size, scale, ratio)`: a random box from
 * {@linkcode randomResizedCropBox}, resized bilinearly to `size`.
 *
 * @example
 * ```ts
 * import { RandomResizedCrop } from "./transforms.ts";
 * import { Random } from "./random.ts";
 * const image = { data: new Uint8Array(64 * 48 * 3), width: 64, height: 48 };
 * const out = new RandomResizedCrop(32).apply(image, new Random(0));
 * console.log("width" in out && [out.width, out.height]); // [32, 32]
 * ```
 */
export class RandomResizedCrop implements Transform {
  /** The JSON description. */
  readonly spec: TransformSpec & { name: "RandomResizedCrop" };

  /**
   * Creates the transform.
   *
   * @param size Output side, or `[height, width]`.
   * @param options The `scale` and `ratio` ranges.
   * @throws {OptionError} When a size or range is invalid.
   */
  constructor(size: number | readonly [number, number], options: RandomResizedCropOptions = {}) {
    this.spec = {
      name: "RandomResizedCrop",
      size: pair("size", size),
      scale: range("scale", options.scale ?? [0.08, 1]),
      ratio: range("ratio", options.ratio ?? [3 / 4, 4 / 3]),
    };
  }

  /**
   * Crops a random box and resizes it.
   *
   * @param input An RGB image.
   * @param random The source of random draws (unseeded when omitted).
   * @returns The `size` image.
   */
  apply(input: TransformValue, random: RandomSource = freshRandom()): RgbImage {
    const image = imageInput("RandomResizedCrop", input);
    const box = randomResizedCropBox(image.width, image.height, this.spec, random);
    return resizedCrop(image, box, this.spec.size);
  }
}

/**
 * `transforms.RandomHorizontalFlip(p)`: mirrors when a uniform draw in
 * `[0, 1)` is below `p`.
 *
 * @example
 * ```ts
 * import { RandomHorizontalFlip } from "./transforms.ts";
 * const image = { data: new Uint8Array([1, 1, 1, 2, 2, 2]), width: 2, height: 1 };
 * const out = new RandomHorizontalFlip(1).apply(image);
 * console.log("width" in out && out.data[0]); // 2
 * ```
 */
export class RandomHorizontalFlip implements Transform {
  /** The JSON description. */
  readonly spec: TransformSpec & { name: "RandomHorizontalFlip" };

  /**
   * Creates the transform.
   *
   * @param p Probability of flipping, in `[0, 1]`. @default {0.5}
   * @throws {OptionError} When `p` is not a number in range.
   */
  constructor(p = 0.5) {
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
      throw new OptionError(`Expected p in [0, 1], got ${describeValue(p)}`);
    }
    this.spec = { name: "RandomHorizontalFlip", p };
  }

  /**
   * Flips with probability `p`.
   *
   * @param input An image or tensor.
   * @param random The source of random draws (unseeded when omitted).
   * @returns The input or its mirror image.
   */
  apply(input: TransformValue, random: RandomSource = freshRandom()): TransformValue {
    return random.uniform(0, 1) < this.spec.p ? hflip(input) : input;
  }
}

/** Options of {@linkcode Resize}. */
export interface ResizeOptions {
  /** With an integer size: the longer side's cap, as torchvision's `max_size`. */
  maxSize?: number;
}

/**
 * `transforms.Resize(size)` with PIL's bilinear filter: an integer resizes the
 * shorter side to `size` and the longer to `int(size * long / short)`;
 * `[height, width]` resizes to exactly that.
 *
 * @example
 * ```ts
 * import { Resize } from "./transforms.ts";
 * const image = { data: new Uint8Array(28 * 28 * 3), width: 28, height: 28 };
 * const out = new Resize(224).apply(image);
 * console.log("width" in out && [out.width, out.height]); // [224, 224]
 * ```
 */
export class Resize implements Transform {
  /** The JSON description. */
  readonly spec: TransformSpec & { name: "Resize" };

  /**
   * Creates the transform.
   *
   * @param size The shorter side, or `[height, width]`.
   * @param options `maxSize` for an integer size.
   * @throws {OptionError} When the size is invalid or over 64 megapixels, or `maxSize` is not above it.
   */
  constructor(size: number | readonly [number, number], options: ResizeOptions = {}) {
    const [h, w] = pair("size", size);
    const { maxSize } = options;
    if (maxSize !== undefined) {
      if (typeof size !== "number") {
        throw new OptionError("Expected maxSize only with an integer size (the shorter side)");
      }
      if (!Number.isSafeInteger(maxSize) || maxSize <= size) {
        throw new OptionError(
          `Expected maxSize to be an integer above size ${size}, got ${maxSize}`,
        );
      }
    }
    this.spec = typeof size === "number"
      ? { name: "Resize", size: h, ...(maxSize === undefined ? {} : { maxSize }) }
      : { name: "Resize", size: [h, w] };
  }

  /**
   * Resizes.
   *
   * @param input An RGB image.
   * @returns The resized image (the input itself when the size is unchanged).
   * @throws {OptionError} When an integer size makes the image over 64 megapixels and larger
   * than the input (see `maxSize`).
   */
  apply(input: TransformValue): RgbImage {
    const image = imageInput("Resize", input);
    const { size, maxSize } = this.spec;
    let w: number;
    let h: number;
    if (typeof size === "number") {
      const short = Math.min(image.width, image.height);
      const long = Math.max(image.width, image.height);
      let newShort = size;
      let newLong = Math.trunc((size * long) / short);
      if (maxSize !== undefined && newLong > maxSize) {
        newShort = Math.trunc((maxSize * newShort) / newLong);
        newLong = maxSize;
      }
      [w, h] = image.width <= image.height ? [newShort, newLong] : [newLong, newShort];
      checkPixels(
        `Resize(${size}) of a ${image.width}x${image.height} image`,
        w,
        h,
        {
          input: image,
          hint: maxSize === undefined ? "; pass maxSize to cap the longer side" : "",
        },
      );
    } else {
      [h, w] = size;
    }
    return resizeBilinear(image, w, h);
  }
}

/**
 * `transforms.CenterCrop(size)`: the centred box (offsets rounded half to
 * even), padded with black where the image is smaller, as torchvision pads.
 *
 * @example
 * ```ts
 * import { CenterCrop } from "./transforms.ts";
 * const image = { data: new Uint8Array(5 * 5 * 3), width: 5, height: 5 };
 * const out = new CenterCrop(3).apply(image);
 * console.log("width" in out && [out.width, out.height]); // [3, 3]
 * ```
 */
export class CenterCrop implements Transform {
  /** The JSON description. */
  readonly spec: TransformSpec & { name: "CenterCrop" };

  /**
   * Creates the transform.
   *
   * @param size Side, or `[height, width]`.
   * @throws {OptionError} When the size is invalid.
   */
  constructor(size: number | readonly [number, number]) {
    this.spec = { name: "CenterCrop", size: pair("size", size) };
  }

  /**
   * Crops the centre.
   *
   * @param input An RGB image.
   * @returns The `size` crop.
   */
  apply(input: TransformValue): RgbImage {
    const image = imageInput("CenterCrop", input);
    const [h, w] = this.spec.size;
    const offset = (inner: number, outer: number) =>
      outer > inner ? -Math.floor((outer - inner) / 2) : roundHalfEven((inner - outer) / 2);
    return crop(image, {
      top: offset(image.height, h),
      left: offset(image.width, w),
      height: h,
      width: w,
    });
  }
}

/**
 * `transforms.ToTensor()`: an RGB image to a float32 `[3, H, W]` tensor in
 * `[0, 1]` (`x / 255`).
 *
 * @example
 * ```ts
 * import { ToTensor } from "./transforms.ts";
 * const out = new ToTensor().apply({ data: new Uint8Array([255, 0, 51]), width: 1, height: 1 });
 * console.log(out.shape, out.data); // [3, 1, 1] Float32Array(3) [1, 0, 0.20000000298023224]
 * ```
 */
export class ToTensor implements Transform {
  /** The JSON description. */
  readonly spec: TransformSpec & { name: "ToTensor" } = { name: "ToTensor" };

  /**
   * Converts.
   *
   * @param input An RGB image.
   * @returns The planar float tensor.
   */
  apply(input: TransformValue): Tensor {
    const image = imageInput("ToTensor", input);
    const pixels = image.width * image.height;
    const out = new Float32Array(3 * pixels);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < pixels; i++) out[c * pixels + i] = image.data[i * 3 + c] / 255;
    }
    return new Tensor(out, [3, image.height, image.width]);
  }
}

/** Options of {@linkcode Normalize}. */
export interface NormalizeOptions {
  /** Per-channel mean (one value for all channels, or R, G, B). @default {[0.5]} */
  mean?: readonly number[];
  /** Per-channel standard deviation. @default {[0.5]} */
  std?: readonly number[];
}

/**
 * `transforms.Normalize(mean, std)`: `(x - mean) / std` per channel, in
 * float32 as torch computes it. The default, mean and std 0.5, maps `[0, 1]`
 * to `[-1, 1]`.
 *
 * @example
 * ```ts
 * import { Normalize } from "./transforms.ts";
 * import { Tensor } from "../tensor.ts";
 * const x = new Tensor(new Float32Array([0, 0.5, 1]), [3, 1, 1]);
 * console.log(new Normalize().apply(x).data); // Float32Array(3) [-1, 0, 1]
 * ```
 */
export class Normalize implements Transform {
  /** The JSON description. */
  readonly spec: TransformSpec & { name: "Normalize" };

  /**
   * Creates the transform.
   *
   * @param options Mean and std, 1 or 3 values each.
   * @throws {OptionError} When a value is not finite, a std is 0, or the counts are wrong.
   */
  constructor(options: NormalizeOptions = {}) {
    const { mean = [0.5], std = [0.5] } = options;
    for (const [name, values] of [["mean", mean], ["std", std]] as const) {
      if ((values.length !== 1 && values.length !== 3) || !values.every(Number.isFinite)) {
        throw new OptionError(
          `Expected ${name} to be 1 or 3 finite numbers, got ${JSON.stringify(values)}`,
        );
      }
    }
    if (std.some((s) => s === 0)) throw new OptionError(`Expected a non-zero std, got ${std}`);
    this.spec = { name: "Normalize", mean: [...mean], std: [...std] };
  }

  /**
   * Normalises a copy.
   *
   * @param input A `[3, H, W]` (or `[1, H, W]`) tensor.
   * @returns The normalised tensor.
   */
  apply(input: TransformValue): Tensor {
    const tensor = tensorInput("Normalize", input);
    const [channels, height, width] = tensor.shape;
    const { mean, std } = this.spec;
    if (mean.length !== 1 && mean.length !== channels) {
      throw new ShapeError(`Normalize has ${mean.length} means for a ${channels}-channel tensor`);
    }
    const pixels = height * width;
    const out = new Float32Array(tensor.data.length);
    for (let c = 0; c < channels; c++) {
      const m = Math.fround(mean[mean.length === 1 ? 0 : c]);
      const s = Math.fround(std[std.length === 1 ? 0 : c]);
      for (let i = c * pixels; i < (c + 1) * pixels; i++) {
        out[i] = Math.fround(tensor.data[i] - m) / s;
      }
    }
    return new Tensor(out, tensor.shape);
  }
}

/**
 * `transforms.Compose([...])`: the transforms in order, sharing one random source.
 *
 * @example
 * ```ts
 * import { Compose, Normalize, Resize, ToTensor } from "./transforms.ts";
 * const pipeline = new Compose([new Resize([4, 6]), new ToTensor(), new Normalize()]);
 * const image = { data: new Uint8Array(2 * 2 * 3), width: 2, height: 2 };
 * console.log(pipeline.tensor(image).shape); // [3, 4, 6]
 * ```
 */
export class Compose implements Transform {
  /** The steps. */
  readonly transforms: readonly Transform[];

  /**
   * Creates the pipeline.
   *
   * @param transforms The steps, in order.
   */
  constructor(transforms: readonly Transform[]) {
    this.transforms = Object.freeze([...transforms]);
  }

  /** The JSON description. */
  get spec(): TransformSpec {
    return { name: "Compose", transforms: this.transforms.map((t) => t.spec) };
  }

  /**
   * Runs the steps.
   *
   * @param input An RGB image.
   * @param random The source of random draws, shared by the steps (unseeded when omitted).
   * @returns The last step's output.
   */
  apply(input: TransformValue, random: RandomSource = freshRandom()): TransformValue {
    return this.transforms.reduce((value, t) => t.apply(value, random), input);
  }

  /**
   * Runs the steps on an image and checks that they end in a tensor (the
   * pipeline ends with `ToTensor`, and maybe `Normalize`).
   *
   * @param input An RGB image.
   * @param random The source of random draws (unseeded when omitted).
   * @returns The `[3, H, W]` tensor.
   * @throws {ShapeError} When the pipeline gives an image, not a tensor.
   */
  tensor(input: RgbImage, random: RandomSource = freshRandom()): Tensor {
    const out = this.apply(input, random);
    if (!(out instanceof Tensor)) {
      throw new ShapeError("Expected the transform to end in a tensor: add ToTensor() at the end");
    }
    return out;
  }
}

/**
 * Rebuilds a transform from its JSON `spec` (how loader workers receive it).
 *
 * @param spec A transform's `spec`.
 * @returns The transform.
 * @throws {OptionError} When the spec names no known transform or has invalid values.
 *
 * @example
 * ```ts
 * import { RandomHorizontalFlip, transformFromSpec } from "./transforms.ts";
 * const copy = transformFromSpec(new RandomHorizontalFlip(0.3).spec);
 * console.log(copy.spec); // { name: "RandomHorizontalFlip", p: 0.3 }
 * ```
 */
export function transformFromSpec(spec: TransformSpec): Transform {
  switch (spec?.name) {
    case "RandomResizedCrop":
      return new RandomResizedCrop(spec.size, spec);
    case "RandomHorizontalFlip":
      return new RandomHorizontalFlip(spec.p);
    case "Resize":
      return new Resize(spec.size, spec);
    case "CenterCrop":
      return new CenterCrop(spec.size);
    case "ToTensor":
      return new ToTensor();
    case "Normalize":
      return new Normalize(spec);
    case "Compose":
      return new Compose(spec.transforms.map(transformFromSpec));
    default: {
      const unknown: never = spec;
      const name = (unknown as { name?: unknown } | undefined)?.name;
      throw new OptionError(
        `Unknown transform ${
          JSON.stringify(name)
        }: expected RandomResizedCrop, RandomHorizontalFlip, Resize, CenterCrop, ToTensor, Normalize or Compose`,
      );
    }
  }
}

/** Augmentation presets of {@linkcode trainTransform}, as the `--augment` flag names them. */
export type Augmentation = "torchvision" | "flip" | "none";

/** Options of {@linkcode trainTransform} and {@linkcode validationTransform}. */
export interface PresetOptions {
  /** Output side. @default {224} */
  size?: number;
  /** Per-channel mean. @default {[0.5]} */
  mean?: readonly number[];
  /** Per-channel std. @default {[0.5]} */
  std?: readonly number[];
}

/**
 * The training pipeline of the reference blog and torchvision's examples:
 * `"torchvision"` is `RandomResizedCrop(size)` + `RandomHorizontalFlip()`;
 * `"flip"` is `Resize([size, size])` + `RandomHorizontalFlip()`; `"none"` is
 * `Resize([size, size])`; each followed by `ToTensor()` and `Normalize`
 * (default mean and std 0.5, so pixels span `[-1, 1]`; pass
 * `FASHION_MNIST_MEAN`/`STD` or ImageNet's for those statistics instead).
 *
 * @param augment The preset.
 * @param options Size and normalisation.
 * @returns The pipeline.
 * @throws {OptionError} When the preset or an option is invalid.
 *
 * @example
 * ```ts
 * import { trainTransform } from "./transforms.ts";
 * import { Random } from "./random.ts";
 * const image = { data: new Uint8Array(28 * 28 * 3), width: 28, height: 28 };
 * console.log(trainTransform("torchvision").tensor(image, new Random(0)).shape); // [3, 224, 224]
 * ```
 */
export function trainTransform(augment: Augmentation, options: PresetOptions = {}): Compose {
  const { size = 224 } = options;
  const tail = [new ToTensor(), new Normalize(options)];
  switch (augment) {
    case "torchvision":
      return new Compose([new RandomResizedCrop(size), new RandomHorizontalFlip(), ...tail]);
    case "flip":
      return new Compose([new Resize([size, size]), new RandomHorizontalFlip(), ...tail]);
    case "none":
      return new Compose([new Resize([size, size]), ...tail]);
    default:
      throw new OptionError(
        `Unknown augmentation ${JSON.stringify(augment)}: expected "torchvision", "flip" or "none"`,
      );
  }
}

/**
 * The validation pipeline of the reference blog: `Resize([size, size])`,
 * `ToTensor()`, `Normalize` (default mean and std 0.5).
 *
 * @param options Size and normalisation.
 * @returns The pipeline.
 *
 * @example
 * ```ts
 * import { validationTransform } from "./transforms.ts";
 * const image = { data: new Uint8Array(30 * 20 * 3), width: 30, height: 20 };
 * console.log(validationTransform({ size: 32 }).tensor(image).shape); // [3, 32, 32]
 * ```
 */
export function validationTransform(options: PresetOptions = {}): Compose {
  const { size = 224 } = options;
  return new Compose([new Resize([size, size]), new ToTensor(), new Normalize(options)]);
}
