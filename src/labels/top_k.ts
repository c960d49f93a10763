/**
 * Class probabilities from logits: softmax and the k most likely classes.
 *
 * @module
 */

import { OptionError, ShapeError } from "../errors.ts";
import { checkInstance, checkInteger, describeValue } from "../validate.ts";
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
 * @throws {OptionError} When `logits` is not a `Float32Array`.
 *
 * @example
 * ```ts
 * import { softmax } from "./top_k.ts";
 * console.log(softmax(new Float32Array([0, Math.log(3)]))); // Float32Array(2) [0.25, 0.75]
 * ```
 */
export function softmax(logits: Float32Array): Float32Array {
  checkInstance("logits", logits, [Float32Array]);
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
 * (ties keep the lower index first). NaN ranks above every number, as in
 * `torch.topk` and `torch.sort`, so a row with NaN lists its NaN classes first
 * (with NaN probabilities, as softmax of such a row gives).
 *
 * @param logits One row of scores, one per class.
 * @param k How many classes to return, at least 1; capped at the row length.
 * @param labels Class names, one per logit. Defaults to {@linkcode IMAGENET_CLASSES}.
 * @returns Up to `k` predictions.
 * @throws {OptionError} When `logits` is not a `Float32Array`, `k` not a positive integer or
 *   `labels` not an array of strings.
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
  checkInstance("logits", logits, [Float32Array]);
  checkInteger("k", k, { min: 1 });
  checkLabels(labels);
  if (labels.length !== logits.length) {
    throw new ShapeError(
      `Expected ${logits.length} labels (one per logit), got ${labels.length}`,
    );
  }
  const probabilities = softmax(logits);
  const order = Array.from(probabilities.keys()).sort((a, b) =>
    rank(logits[a], logits[b]) || a - b
  );
  return order.slice(0, k).map((index) => ({
    index,
    label: labels[index],
    probability: probabilities[index],
  }));
}

/**
 * Descending order with NaN above +Infinity (torch's rule); 0 for ties and
 * between NaNs, so that the index decides. Subtracting alone is not a
 * consistent comparator once NaN is in the row.
 */
function rank(a: number, b: number): number {
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  if (aNaN || bNaN) return aNaN === bNaN ? 0 : aNaN ? -1 : 1;
  return a > b ? -1 : a < b ? 1 : 0;
}

/**
 * Checks that `labels` is an array of strings.
 *
 * @param labels The class names as given.
 * @param name What they are called in messages.
 * @throws {OptionError} When it is not an array or an entry is not a string.
 *
 * @example
 * ```ts
 * import { checkLabels } from "./top_k.ts";
 * checkLabels(["cat", "dog"]);
 * try {
 *   checkLabels(["cat", 2]);
 * } catch (error) {
 *   console.log((error as Error).message); // Expected labels to be strings, got 2 at index 1
 * }
 * ```
 */
export function checkLabels(labels: unknown, name = "labels"): asserts labels is string[] {
  if (!Array.isArray(labels)) {
    throw new OptionError(
      `Expected ${name} to be an array of class names, got ${describeValue(labels)}`,
    );
  }
  const bad = labels.findIndex((label) => typeof label !== "string");
  if (bad >= 0) {
    throw new OptionError(
      `Expected ${name} to be strings, got ${describeValue(labels[bad])} at index ${bad}`,
    );
  }
}
