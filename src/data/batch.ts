/**
 * One batch's decoding and augmentation, the work a loader worker does (or
 * the calling thread, with `workers: 0`).
 *
 * @module
 */

import { ShapeError } from "../errors.ts";
import type { DecodeOptions } from "../image/decode.ts";
import type { PixelData } from "../image/pixels.ts";
import { decodeRaw } from "./dataset.ts";
import type { SkippedFile } from "./image_folder.ts";
import { Random } from "./random.ts";
import { Compose, type Transform } from "./transforms.ts";
import { Tensor } from "../tensor.ts";

/** A sample on its way to a worker: undecoded, with the seed of its augmentation. */
export interface BatchItem {
  /** PNG/JPEG bytes or pixels. */
  readonly source: Uint8Array | PixelData;
  /** Class index. */
  readonly label: number;
  /** File path or description, for reports. */
  readonly name: string;
  /** Index in the data set. */
  readonly index: number;
  /** Seed of this sample's random draws. */
  readonly seed: number;
}

/** A transformed batch: `[n, 3, H, W]` values, labels and data set indices of the samples kept. */
export interface BatchResult {
  /** The stacked tensors, `n * 3 * H * W` values. */
  readonly data: Float32Array;
  /** `[n, 3, H, W]`; `[0, 3, 0, 0]` when every sample was skipped. */
  readonly shape: number[];
  /** Class index per kept sample. */
  readonly labels: Int32Array;
  /** Data set index per kept sample. */
  readonly indices: Int32Array;
  /** Samples that could not be decoded. */
  readonly skipped: SkippedFile[];
}

/**
 * Decodes and transforms `items`, each with `new Random(item.seed)`, and
 * stacks the tensors. A sample that cannot be decoded is skipped and
 * reported; a transform that fails, or tensors of different shapes, throw.
 *
 * @param items The samples.
 * @param transform A pipeline that ends in a `[3, H, W]` tensor.
 * @param decode Decoding limits.
 * @param onSample Called after each sample (a worker's heartbeat).
 * @returns The batch.
 * @throws {ShapeError} When the transform does not give `[3, H, W]` tensors of one shape.
 *
 * @example
 * ```ts
 * import { transformBatch } from "./batch.ts";
 * import { validationTransform } from "./transforms.ts";
 * const grey = { data: new Uint8Array(4), width: 2, height: 2, channels: 1 as const };
 * const items = [
 *   { source: grey, label: 3, name: "a", index: 0, seed: 1 },
 *   { source: new Uint8Array([1, 2]), label: 4, name: "broken.png", index: 1, seed: 2 },
 * ];
 * const batch = transformBatch(items, validationTransform({ size: 8 }));
 * console.log(batch.shape, batch.labels, batch.skipped.length); // [1, 3, 8, 8] Int32Array(1) [3] 1
 * ```
 */
export function transformBatch(
  items: readonly BatchItem[],
  transform: Transform,
  decode: DecodeOptions = {},
  onSample?: () => void,
): BatchResult {
  const tensors: Tensor[] = [];
  const labels: number[] = [];
  const indices: number[] = [];
  const skipped: SkippedFile[] = [];
  for (const item of items) {
    onSample?.();
    let image;
    try {
      image = decodeRaw(item, decode);
    } catch (error) {
      skipped.push({ path: item.name, reason: (error as Error).message });
      continue;
    }
    const random = new Random(item.seed);
    const out = transform instanceof Compose
      ? transform.tensor(image, random)
      : transform.apply(image, random);
    if (!(out instanceof Tensor) || out.shape.length !== 3 || out.shape[0] !== 3) {
      throw new ShapeError(
        `Expected the transform to give a [3, H, W] tensor, got ${
          out instanceof Tensor ? `[${out.shape.join(", ")}]` : "an image"
        }: end it with ToTensor()`,
      );
    }
    if (tensors.length > 0 && out.shape.join() !== tensors[0].shape.join()) {
      throw new ShapeError(
        `Cannot stack samples of shapes [${tensors[0].shape.join(", ")}] and [${
          out.shape.join(", ")
        }] (${item.name}): expected one size, end the transform with a crop or Resize([h, w])`,
      );
    }
    tensors.push(out);
    labels.push(item.label);
    indices.push(item.index);
  }
  const shape = tensors.length === 0 ? [0, 3, 0, 0] : [tensors.length, ...tensors[0].shape];
  const size = tensors.length === 0 ? 0 : tensors[0].size;
  const data = new Float32Array(tensors.length * size);
  tensors.forEach((t, i) => data.set(t.data, i * size));
  return {
    data,
    shape,
    labels: Int32Array.from(labels),
    indices: Int32Array.from(indices),
    skipped,
  };
}
