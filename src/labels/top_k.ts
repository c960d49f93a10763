/**
 * Class probabilities from logits: softmax and the k most likely classes.
 *
 * @module
 */

import { ShapeError } from "../errors.ts";
import { IMAGENET_CLASSES } from "./imagenet.ts";

/** One ranked class of {@linkcode topK}. */
export interface Prediction {
  /** Class index into the logits row. */
  index: number;
  /** Class name (`labels[index]`). */
  label: string;
  /** Softmax probability, 0 to 1 (NaN when the row contains NaN). */
  probability: number;
}

/**
 * Numerically stable softmax of one row of logits (the maximum is subtracted
 * before exponentiating). A row containing NaN gives all-NaN probabilities.
 *
 * @param logits One row of scores.
 * @returns Probabilities summing to 1, same length as `logits`.
 *
 * @example
 * ```ts
 * import { softmax } from "./top_k.ts";
 * console.log(softmax(new Float32Array([0, Math.log(3)]))); // Float32Array(2) [0.25, 0.75]
 * ```
 */
export function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) max = v > max || Number.isNaN(v) ? v : max;
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * The `k` most probable classes of one row of logits, most probable first
 * (ties keep the lower index first).
 *
 * @param logits One row of scores, one per class.
 * @param k How many classes to return, at least 1; capped at the row length.
 * @param labels Class names, one per logit. Defaults to {@linkcode IMAGENET_CLASSES}.
 * @returns Up to `k` predictions.
 * @throws {RangeError} When `k` is not a positive integer.
 * @throws {ShapeError} When `labels` and `logits` differ in length.
 *
 * @example
 * ```ts
 * import { topK } from "./top_k.ts";
 * const top = topK(new Float32Array([1, 3, 2]), 2, ["a", "b", "c"]);
 * console.log(top.map((p) => p.label)); // ["b", "c"]
 * ```
 */
export function topK(
  logits: Float32Array,
  k: number,
  labels: readonly string[] = IMAGENET_CLASSES,
): Prediction[] {
  if (!Number.isSafeInteger(k) || k < 1) {
    throw new RangeError(`Expected k to be a positive integer, got ${k}`);
  }
  if (labels.length !== logits.length) {
    throw new ShapeError(
      `Expected ${logits.length} labels (one per logit), got ${labels.length}`,
    );
  }
  const probabilities = softmax(logits);
  const order = Array.from(probabilities.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  return order.slice(0, k).map((index) => ({
    index,
    label: labels[index],
    probability: probabilities[index],
  }));
}
