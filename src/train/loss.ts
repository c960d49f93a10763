/**
 * Cross-entropy from logits, as PyTorch's `F.cross_entropy` (log-softmax by
 * log-sum-exp, then the negative log-likelihood, mean over the batch), with
 * its gradient with respect to the logits.
 *
 * @module
 */

import { ShapeError } from "../errors.ts";
import { checkNumber, describeValue } from "../validate.ts";
import type { Tensor } from "../tensor.ts";

/** The loss and the gradient of `weight * loss` with respect to the logits. */
export interface CrossEntropy {
  /** Mean over the batch of `logsumexp(z) - z[label]` (unweighted). */
  readonly loss: number;
  /** `weight * (softmax(z) - onehot(label)) / N`, `[N, classes]`, float32. */
  readonly grad: Float32Array;
}

/**
 * Cross-entropy of `logits` `[N, classes]` against integer `labels`, mean
 * over the batch, and the gradient of `weight` times it. Computed in float64
 * with the maximum subtracted first (log-sum-exp), like PyTorch; a row
 * holding NaN or infinities gives a NaN loss, as PyTorch's does.
 *
 * @param logits Scores `[N, classes]`.
 * @param labels N class indices in `[0, classes)`.
 * @param weight The factor the gradient carries (0.3 for an auxiliary head).
 * @returns The loss and the gradient with respect to `logits`.
 * @throws {ShapeError} When the labels do not match the logits.
 *
 * @example
 * ```ts
 * import { crossEntropy, Tensor } from "../../mod.ts";
 * const logits = new Tensor(new Float32Array([2, 0, 0, 0, 2, 0]), [2, 3]);
 * const { loss } = crossEntropy(logits, Int32Array.from([0, 1]));
 * console.log(loss.toFixed(4)); // "0.2395"
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  labels: ArrayLike<number>,
  weight = 1,
): CrossEntropy {
  if (logits.shape.length !== 2) {
    throw new ShapeError(`Expected logits of shape [N, classes], got [${logits.shape.join(", ")}]`);
  }
  const [n, classes] = logits.shape;
  checkLabels(labels, n, classes);
  checkNumber("weight", weight);
  const z = logits.data;
  const grad = new Float32Array(n * classes);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    let max = -Infinity;
    for (let j = 0; j < classes; j++) max = Math.max(max, z[row + j]);
    let sum = 0;
    for (let j = 0; j < classes; j++) sum += Math.exp(z[row + j] - max);
    const logSum = max + Math.log(sum);
    const label = labels[i];
    total += logSum - z[row + label];
    for (let j = 0; j < classes; j++) {
      const p = Math.exp(z[row + j] - logSum);
      grad[row + j] = (weight * (p - (j === label ? 1 : 0))) / n;
    }
  }
  return { loss: total / n, grad };
}

/**
 * Checks N integer labels in `[0, classes)`.
 *
 * @throws {ShapeError} Naming the first bad label.
 */
export function checkLabels(labels: ArrayLike<number>, n: number, classes: number): void {
  if (
    labels === null || typeof labels !== "object" || typeof labels.length !== "number"
  ) {
    throw new ShapeError(`Expected labels as an Int32Array or an array of ${n} class indices`);
  }
  if (labels.length !== n) {
    throw new ShapeError(`Expected ${n} labels (one per image), got ${labels.length}`);
  }
  for (let i = 0; i < n; i++) {
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= classes) {
      throw new ShapeError(
        `Label ${i} is ${describeValue(label)}: expected an integer class index in [0, ${classes})`,
      );
    }
  }
}
