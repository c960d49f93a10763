/**
 * Image in, top-k classes out: the evaluation transform, a forward pass in
 * eval mode, softmax and the class names.
 *
 * @module
 */

import { ShapeError } from "./errors.ts";
import { checkLoadOptions, type ImageSource } from "./image/load.ts";
import {
  evalTransform,
  PREPROCESS_OPTION_KEYS,
  preprocessChecked,
  type PreprocessOptions,
} from "./image/preprocess.ts";
import { IMAGENET_CLASSES } from "./labels/imagenet.ts";
import { checkLabels, type Prediction, topK } from "./labels/top_k.ts";
import { GoogLeNet } from "./model/googlenet.ts";
import type { Tensor } from "./tensor.ts";
import { checkInstance, checkInteger, checkOptions } from "./validate.ts";

const CLASSIFY_OPTION_KEYS = [...PREPROCESS_OPTION_KEYS, "top", "labels"];

/** Options of {@linkcode classify} and {@linkcode classifyBatch}. */
export interface ClassifyOptions extends PreprocessOptions {
  /** How many classes to return per image (default 5). */
  top?: number;
  /**
   * Class names, one per output of the model (default: the 1000 ImageNet
   * classes for 1000-class models, `class <i>` otherwise).
   */
  labels?: readonly string[];
}

/**
 * The top classes of one image.
 *
 * @param model A model; it runs in eval mode for this call whatever its mode.
 * @param image PNG or JPEG bytes, a path, a URL or decoded pixels.
 * @param options `top`, `labels` and the transform's options.
 * @returns `top` rows of `{ index, label, probability }`, most probable first.
 * @throws {OptionError} When `model` is not a GoogLeNet or an option is unknown or invalid.
 * @throws {ShapeError} When `labels` has not one name per class.
 * @throws {ImageError} When the image cannot be read or decoded.
 *
 * @example
 * ```ts
 * import { classify, GoogLeNet } from "../mod.ts";
 * const model = await GoogLeNet.create({ threads: 1, auxLogits: false });
 * const rows = await classify(model, "assets/chelsea.jpg", { top: 3 });
 * console.log(rows.length); // 3
 * await model.dispose();
 * ```
 */
export async function classify(
  model: GoogLeNet,
  image: ImageSource,
  options: ClassifyOptions = {},
): Promise<Prediction[]> {
  return (await classifyImages("classify", model, [image], options))[0];
}

/**
 * The top classes of several images, run as one batch.
 *
 * @param model A model; it runs in eval mode for this call whatever its mode.
 * @param images At least one image.
 * @param options `top`, `labels` and the transform's options.
 * @returns One list of predictions per image, in order.
 * @throws {OptionError} When `model` is not a GoogLeNet, `images` not an array or an option
 * unknown or invalid.
 * @throws {ShapeError} When `images` is empty or `labels` has not one name per class.
 * @throws {ImageError} When an image cannot be read or decoded.
 *
 * @example
 * ```ts
 * import { classifyBatch, GoogLeNet } from "../mod.ts";
 * const model = await GoogLeNet.create({ threads: 1, auxLogits: false });
 * const rows = await classifyBatch(model, ["assets/chelsea.jpg", "assets/chelsea.jpg"]);
 * console.log(rows.length); // 2
 * await model.dispose();
 * ```
 */
export async function classifyBatch(
  model: GoogLeNet,
  images: readonly ImageSource[],
  options: ClassifyOptions = {},
): Promise<Prediction[][]> {
  return await classifyImages("classifyBatch", model, images, options);
}

async function classifyImages(
  name: string,
  model: GoogLeNet,
  images: readonly ImageSource[],
  options: ClassifyOptions,
): Promise<Prediction[][]> {
  checkInstance("model", model, [GoogLeNet]);
  const checked = checkOptions(name, options, CLASSIFY_OPTION_KEYS);
  const top = checkInteger("top", checked.top, { min: 1, default: 5 });
  if (checked.labels !== undefined) checkLabels(checked.labels);
  const labels = checked.labels ?? defaultLabels(model.numClasses);
  if (labels.length !== model.numClasses) {
    throw new ShapeError(
      `Expected ${model.numClasses} labels for this model, got ${labels.length}`,
    );
  }
  const transform = evalTransform(checked);
  const batch = await preprocessChecked(images, transform, checkLoadOptions(checked));
  const training = model.training;
  // The plan is chosen when forward is called, so the mode can be restored at once.
  const pending = model.eval().forward(batch);
  model.train(training);
  const logits = (await pending) as Tensor;
  const n = model.numClasses;
  return images.map((_, i) => topK(logits.data.subarray(i * n, (i + 1) * n), top, labels));
}

function defaultLabels(numClasses: number): readonly string[] {
  if (numClasses === IMAGENET_CLASSES.length) return IMAGENET_CLASSES;
  return Array.from({ length: numClasses }, (_, i) => `class ${i}`);
}
