/**
 * Accuracy, loss and a confusion matrix of a model over a data loader (eval
 * mode, main head only), and their text rendering: what the train command
 * reports per epoch and the evaluate command prints.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { GoogLeNet } from "../model/googlenet.ts";
import type { Batch } from "../data/loader.ts";
import type { Tensor } from "../tensor.ts";
import { crossEntropy } from "./loss.ts";

/** What {@linkcode evaluateModel} measures. */
export interface Evaluation {
  /** Images evaluated. */
  count: number;
  /** Share of images whose top-1 class is the label (0 to 1). */
  accuracy: number;
  /** Mean cross-entropy of the main head. */
  loss: number;
  /** `confusion[true][predicted]` counts. */
  confusion: number[][];
  /** Wall-clock seconds, loading included. */
  seconds: number;
}

/** What {@linkcode evaluateModel} reads of a batch (a `DataLoader`'s batches have more). */
export type EvaluatedBatch = Pick<Batch, "input" | "labels">;

/** Options of {@linkcode evaluateModel}. */
export interface EvaluateOptions {
  /** Called after each batch with the images done so far. */
  onBatch?: (done: number) => void;
  /** Stop early when it returns true (checked between batches). */
  stop?: () => boolean;
}

/**
 * Runs the model in eval mode over every batch and counts: accuracy, mean
 * loss, the confusion matrix. The model is left in eval mode.
 *
 * @param model The model.
 * @param batches Batches of inputs and labels (a `DataLoader`).
 * @param options Progress callback, early stop.
 * @returns The measurements.
 *
 * @example
 * ```ts
 * import { evaluateModel } from "./evaluate.ts";
 * import { GoogLeNet, Tensor } from "../../mod.ts";
 * const model = await GoogLeNet.create({ numClasses: 3, auxLogits: false, threads: 1 });
 * const batches = [{ input: Tensor.zeros([2, 3, 64, 64]), labels: new Int32Array([0, 2]), indices: new Int32Array([0, 1]) }];
 * const result = await evaluateModel(model, batches);
 * console.log(result.count, result.confusion.length); // 2 3
 * await model.dispose();
 * ```
 */
export async function evaluateModel(
  model: GoogLeNet,
  batches: AsyncIterable<EvaluatedBatch> | Iterable<EvaluatedBatch>,
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const classes = model.numClasses;
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  const start = performance.now();
  let count = 0, correct = 0, lossSum = 0;
  model.eval();
  for await (const { input, labels } of batches) {
    const logits = (await model.forward(input)) as Tensor;
    lossSum += crossEntropy(logits, labels).loss * labels.length;
    const predicted = argmaxRows(logits);
    for (let i = 0; i < labels.length; i++) {
      confusion[labels[i]][predicted[i]]++;
      if (predicted[i] === labels[i]) correct++;
    }
    count += labels.length;
    options.onBatch?.(count);
    if (options.stop?.()) break;
  }
  return {
    count,
    accuracy: count ? correct / count : 0,
    loss: count ? lossSum / count : NaN,
    confusion,
    seconds: (performance.now() - start) / 1000,
  };
}

/**
 * The index of each row's largest logit (the first on ties; NaN counts as largest, as `torch.argmax`).
 *
 * @param logits `[N, C]`.
 * @returns N class indices.
 *
 * @example
 * ```ts
 * import { argmaxRows } from "./evaluate.ts";
 * import { Tensor } from "../tensor.ts";
 * console.log(argmaxRows(new Tensor(new Float32Array([1, 3, 2, 5, 0, 0]), [2, 3]))); // Int32Array(2) [1, 0]
 * ```
 */
export function argmaxRows(logits: Tensor): Int32Array {
  if (logits.shape.length !== 2) {
    throw new OptionError(`Expected logits [N, C], got [${logits.shape.join(", ")}]`);
  }
  const [n, c] = logits.shape;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) {
      const v = logits.data[i * c + j], b = logits.data[i * c + best];
      if (v > b || (Number.isNaN(v) && !Number.isNaN(b))) best = j;
    }
    out[i] = best;
  }
  return out;
}

/**
 * Per-class accuracy and a confusion matrix as fixed-width text.
 *
 * @param confusion `confusion[true][predicted]` counts.
 * @param classes Class names.
 * @returns Lines of text (no trailing newline).
 *
 * @example
 * ```ts
 * import { confusionText } from "./evaluate.ts";
 * console.log(confusionText([[3, 1], [0, 4]], ["cat", "dog"]).includes("cat")); // true
 * ```
 */
export function confusionText(
  confusion: readonly (readonly number[])[],
  classes: readonly string[],
): string {
  const lines: string[] = [];
  const width = Math.max(5, ...classes.map((c) => c.length));
  lines.push("Per-class accuracy:");
  confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    const share = total ? `${(100 * row[i] / total).toFixed(1).padStart(5)} %` : "    - ";
    lines.push(`  ${classes[i].padEnd(width)}  ${share}  (${row[i]}/${total})`);
  });
  const cell = Math.max(4, ...confusion.flat().map((v) => String(v).length + 1));
  lines.push(
    "",
    "Confusion matrix (rows: true class, columns: predicted class, in the order above):",
  );
  lines.push(" ".repeat(width + 2) + confusion.map((_, j) => String(j).padStart(cell)).join(""));
  confusion.forEach((row, i) => {
    lines.push(
      `  ${classes[i].padEnd(width)}${row.map((v) => String(v).padStart(cell)).join("")}  ${i}`,
    );
  });
  return lines.join("\n");
}
