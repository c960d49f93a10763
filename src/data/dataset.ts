/**
 * What a data set is to the rest of the pipeline: a length, class names and
 * samples by index; subsets and the seeded train/validation split.
 *
 * @module
 */

import { DatasetError, OptionError } from "../errors.ts";
import { decodeImage, type DecodeOptions } from "../image/decode.ts";
import { type PixelData, type RgbImage, toRgb } from "../image/pixels.ts";
import { checkSeed, Random } from "./random.ts";
import { checkOptions, describeValue } from "../validate.ts";

/** A decoded sample: an 8-bit RGB image and its class index. */
export interface Sample {
  /** The image, 3 channels (grey replicated, alpha dropped). */
  readonly image: RgbImage;
  /** Index into the data set's `classes`. */
  readonly label: number;
}

/**
 * A sample before decoding, as it travels to a loader worker: encoded bytes
 * (PNG or JPEG) or raw pixels, its label and a name for error messages.
 */
export interface RawSample {
  /** PNG/JPEG bytes, or pixels with 1, 3 or 4 channels. */
  readonly source: Uint8Array | PixelData;
  /** Index into the data set's `classes`. */
  readonly label: number;
  /** The file path, or a description such as `"image 17"`. */
  readonly name: string;
}

/** A map-style data set, like `torch.utils.data.Dataset` with `__len__`. */
export interface Dataset {
  /** Number of samples. */
  readonly length: number;
  /** Class names; labels index into it. */
  readonly classes: readonly string[];
  /**
   * The undecoded sample at `index` (file read, not decoded).
   *
   * @param index From 0 to `length - 1`.
   */
  raw(index: number): Promise<RawSample>;
  /**
   * The decoded sample at `index`.
   *
   * @param index From 0 to `length - 1`.
   */
  get(index: number): Promise<Sample>;
  /**
   * How reports name sample `index` (a file path); `"sample <index>"` when absent.
   *
   * @param index From 0 to `length - 1`.
   */
  name?(index: number): string;
}

/**
 * Decodes a {@linkcode RawSample}'s source to RGB.
 *
 * @param raw The sample.
 * @param options Decoding limits.
 * @returns The RGB image.
 * @throws {ImageError} When the bytes are not a decodable PNG or JPEG.
 *
 * @example
 * ```ts
 * import { decodeRaw } from "./dataset.ts";
 * const raw = { source: { data: new Uint8Array([7]), width: 1, height: 1 }, label: 0, name: "x" };
 * console.log(decodeRaw(raw).data); // Uint8Array(3) [7, 7, 7]
 * ```
 */
export function decodeRaw(raw: RawSample, options?: DecodeOptions): RgbImage {
  return raw.source instanceof Uint8Array ? decodeImage(raw.source, options) : toRgb(raw.source);
}

/**
 * Checks that `index` is an integer in `[0, length)`.
 *
 * @param index The requested index.
 * @param length The data set's length.
 * @throws {OptionError} When it is not.
 */
export function checkIndex(index: number, length: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index >= length) {
    throw new OptionError(`Expected a sample index from 0 to ${length - 1}, got ${index}`);
  }
}

/**
 * The samples of another data set at given indices, like
 * `torch.utils.data.Subset`.
 *
 * @example
 * ```ts
 * import { Subset } from "./dataset.ts";
 * import { IdxDataset } from "./idx.ts";
 * const base = new IdxDataset({
 *   images: { dtype: "uint8", shape: [3, 1, 1], data: new Uint8Array([10, 20, 30]) },
 *   labels: { dtype: "uint8", shape: [3], data: new Uint8Array([0, 1, 2]) },
 * });
 * const subset = new Subset(base, [2, 0]);
 * console.log(subset.length, (await subset.get(0)).label); // 2 2
 * ```
 */
export class Subset implements Dataset {
  /** The underlying data set. */
  readonly dataset: Dataset;
  /** Indices into `dataset`, in subset order. */
  readonly indices: readonly number[];

  /**
   * Creates the subset.
   *
   * @param dataset The underlying data set.
   * @param indices Indices into it.
   * @throws {OptionError} When an index is out of range.
   */
  constructor(dataset: Dataset, indices: readonly number[]) {
    for (const i of indices) checkIndex(i, dataset.length);
    this.dataset = dataset;
    this.indices = Object.freeze([...indices]);
  }

  /** Number of samples in the subset. */
  get length(): number {
    return this.indices.length;
  }

  /** The underlying data set's class names. */
  get classes(): readonly string[] {
    return this.dataset.classes;
  }

  /**
   * The undecoded sample at `index` of the subset.
   *
   * @param index From 0 to `length - 1`.
   * @returns The raw sample.
   */
  async raw(index: number): Promise<RawSample> {
    checkIndex(index, this.length);
    return await this.dataset.raw(this.indices[index]);
  }

  /**
   * The underlying data set's name for sample `index` of the subset.
   *
   * @param index From 0 to `length - 1`.
   * @returns A file path, or `"sample <index>"`.
   */
  name(index: number): string {
    checkIndex(index, this.length);
    const i = this.indices[index];
    return this.dataset.name?.(i) ?? `sample ${i}`;
  }

  /**
   * The decoded sample at `index` of the subset.
   *
   * @param index From 0 to `length - 1`.
   * @returns The sample.
   */
  async get(index: number): Promise<Sample> {
    checkIndex(index, this.length);
    return await this.dataset.get(this.indices[index]);
  }
}

/** Options of {@linkcode splitDataset}. */
export interface SplitOptions {
  /** Share of the samples held back for validation, in `[0, 1)`. @default {0.1} */
  valFraction?: number;
  /** Seed of the permutation, an integer from -(2^31) to 2^32 - 1. @default {0} */
  seed?: number;
}

/**
 * Checks that `dataset` looks like a {@linkcode Dataset}: an integer length,
 * a classes array and `raw()`.
 *
 * @param dataset The value given as a data set.
 * @throws {OptionError} When it does not.
 *
 * @example
 * ```ts
 * import { checkDataset } from "./dataset.ts";
 * try {
 *   checkDataset(null);
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Expected dataset to be a Dataset (an integer length, a classes array and raw()), got null
 * }
 * ```
 */
export function checkDataset(dataset: unknown): void {
  const d = dataset as Partial<Dataset> | null | undefined;
  if (
    typeof d !== "object" || d === null || !Number.isSafeInteger(d.length) ||
    (d.length as number) < 0 || !Array.isArray(d.classes) || typeof d.raw !== "function"
  ) {
    throw new OptionError(
      `Expected dataset to be a Dataset (an integer length, a classes array and raw()), got ${
        describeValue(dataset)
      }`,
    );
  }
}

/**
 * Splits a data set into training and validation subsets by a seeded random
 * permutation: `floor(length * valFraction)` samples go to validation (as
 * `torch.utils.data.random_split` rounds down and gives the rest to the first
 * split). Each subset keeps its indices in ascending order; shuffling is the
 * loader's job.
 *
 * @param dataset The data set to split.
 * @param options The validation share and the seed.
 * @returns The two subsets, disjoint and together the whole set.
 * @throws {OptionError} When `dataset` is not a data set, an option is
 * unknown, `valFraction` is not a number in `[0, 1)` or `seed` not an
 * integer from -(2^31) to 2^32 - 1.
 * @throws {DatasetError} When the training part would be empty.
 *
 * @example
 * ```ts
 * import { splitDataset } from "./dataset.ts";
 * import { IdxDataset } from "./idx.ts";
 * const dataset = new IdxDataset({
 *   images: { dtype: "uint8", shape: [10, 1, 1], data: new Uint8Array(10) },
 *   labels: { dtype: "uint8", shape: [10], data: new Uint8Array(10) },
 * });
 * const { train, val } = splitDataset(dataset, { valFraction: 0.2, seed: 1 });
 * console.log(train.length, val.length); // 8 2
 * ```
 */
export function splitDataset(
  dataset: Dataset,
  options: SplitOptions = {},
): { train: Subset; val: Subset } {
  checkDataset(dataset);
  const o = checkOptions("splitDataset", options, ["valFraction", "seed"]);
  const valFraction = o.valFraction === undefined ? 0.1 : o.valFraction;
  if (typeof valFraction !== "number" || !(valFraction >= 0 && valFraction < 1)) {
    throw new OptionError(
      `Expected valFraction to be a number from 0 up to (not including) 1, got ${
        describeValue(valFraction)
      }`,
    );
  }
  const seed = checkSeed(o.seed, 0);
  const order = new Random(seed).shuffle(Array.from({ length: dataset.length }, (_, i) => i));
  const valLength = Math.floor(dataset.length * valFraction);
  if (valLength === dataset.length) {
    throw new DatasetError(
      `Cannot split ${dataset.length} samples with valFraction ${valFraction}: expected at least one training sample`,
    );
  }
  const ascending = (a: number, b: number) => a - b;
  return {
    train: new Subset(dataset, order.slice(valLength).sort(ascending)),
    val: new Subset(dataset, order.slice(0, valLength).sort(ascending)),
  };
}
