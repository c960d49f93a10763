/**
 * Image in, top-k classes out: the evaluation transform, a forward pass in
 * eval mode, softmax and the class names.
 *
 * @module
 */

import { ImageError, OptionError, ShapeError } from "./errors.ts";
import {
  acquireDecodePool,
  type DecodePool,
  decodeSettings,
  decodeWorkersAvailable,
  releaseDecodePool,
} from "./image/decode_pool.ts";
import { imageBytes } from "./image/decode.ts";
import {
  type CheckedLoadOptions,
  checkLoadOptions,
  type ImageSource,
  loadChecked,
} from "./image/load.ts";
import type { PixelData } from "./image/pixels.ts";
import {
  type EvalTransform,
  evalTransform,
  PREPROCESS_OPTION_KEYS,
  preprocessChecked,
  type PreprocessOptions,
  snapshot,
  transformSource,
} from "./image/preprocess.ts";
import { readBytes } from "./read_bytes.ts";
import { IMAGENET_CLASSES } from "./labels/imagenet.ts";
import { checkLabels, type Prediction, topK } from "./labels/top_k.ts";
import { GoogLeNet } from "./model/googlenet.ts";
import { Tensor } from "./tensor.ts";
import { checkInstance, checkInteger, checkOptions, describeValue } from "./validate.ts";

const CLASSIFY_OPTION_KEYS = [
  ...PREPROCESS_OPTION_KEYS,
  "top",
  "labels",
  "batchSize",
  "decodeWorkers",
];
/** Most decode workers one call may ask for. */
const MAX_DECODE_WORKERS = 64;

/** Options of {@linkcode classify} and {@linkcode classifyBatch}. */
export interface ClassifyOptions extends PreprocessOptions {
  /** How many classes to return per image (default 5). */
  top?: number;
  /**
   * Class names, one per output of the model (default: the 1000 ImageNet
   * classes for 1000-class models, `class <i>` otherwise).
   */
  labels?: readonly string[];
  /**
   * Images per forward pass of {@linkcode classifyBatch}. The results do not
   * depend on it (each image's logits are the same bits in any batch).
   *
   * @default {8}
   */
  batchSize?: number;
  /**
   * Workers that decode and preprocess the next images while the kernels run
   * the current batch (`0`: everything on the calling thread). At most
   * `batchSize` images are decoded ahead of the batch that runs; those of a
   * batch that no worker has started when it is needed are decoded on the
   * calling thread. When the model's threads take every core, the workers run
   * at the lowest scheduling priority where the runtime allows it (Deno with
   * `--allow-sys`), so that they use idle cycles and do not take a core from
   * the kernel threads. Where
   * `Worker` does not exist (edge runtimes), or the images fit in one batch,
   * decoding runs on the calling thread whatever this says.
   *
   * @default {1}
   */
  decodeWorkers?: number;
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
 * The top classes of several images, run in batches of `batchSize`. With
 * `decodeWorkers` (1 by default) the next images are read, decoded and
 * preprocessed in workers while the model runs the current batch, so a
 * stream of photos runs near the model's own images/s; the results are the
 * same bits as decoding on the calling thread. Idle decode workers never keep
 * the process alive (in Deno; where they would, they end 1 s after the call).
 *
 * @param model A model; it runs in eval mode for this call whatever its mode.
 * @param images At least one image.
 * @param options `top`, `labels` and the transform's options.
 * @returns One list of predictions per image, in order.
 * @throws {OptionError} When `model` is not a GoogLeNet, `images` not an array or an option
 * unknown or invalid.
 * @throws {ShapeError} When `images` is empty or `labels` has not one name per class.
 * @throws {ImageError} When an image cannot be read or decoded.
 * @throws {BackendError} When a decode worker died or failed in another way.
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
  const batchSize = checkInteger("batchSize", checked.batchSize, { min: 1, default: 8 });
  const workers = checkInteger("decodeWorkers", checked.decodeWorkers, {
    min: 0,
    max: MAX_DECODE_WORKERS,
    default: 1,
  });
  const transform = evalTransform(checked);
  const load = checkLoadOptions(checked);
  if (!Array.isArray(images)) {
    throw new OptionError(`Expected images to be an array of images, got ${describeValue(images)}`);
  }
  const n = model.numClasses;
  const rows = (logits: Tensor) =>
    Array.from(
      { length: logits.shape[0] },
      (_, i) => topK(logits.data.subarray(i * n, (i + 1) * n), top, labels),
    );
  if (workers === 0 || images.length <= batchSize || !decodeWorkersAvailable()) {
    const out: Prediction[][] = [];
    for (let start = 0; start === 0 || start < images.length; start += batchSize) {
      const part = images.slice(start, start + batchSize);
      out.push(...rows(await evaluate(model, await preprocessChecked(part, transform, load))));
    }
    return out;
  }
  // Where the kernel threads take every core, the decode workers yield to them.
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  const pool = acquireDecodePool(workers, { lowPriority: model.backend.threads >= cores });
  let failed = true;
  try {
    const out = await pipeline(model, images.map(snapshot), transform, load, pool, batchSize, rows);
    failed = false;
    return out;
  } finally {
    // After a failure the images still queued in the workers are of no use.
    releaseDecodePool(pool, { discard: failed });
  }
}

/** One forward pass in eval mode, the model's mode restored. */
async function evaluate(model: GoogLeNet, batch: Tensor): Promise<Tensor> {
  const training = model.training;
  // The plan is chosen when forward is called, so the mode can be restored at once.
  const pending = model.eval().forward(batch);
  model.train(training);
  return (await pending) as Tensor;
}

/**
 * Batches of `batchSize` through the model, the images of the next batch
 * decoded by `pool` meanwhile: before batch k runs, the images up to the end
 * of batch k + 1 are queued for the workers (paths and URLs read here first),
 * so at most `batchSize` images are decoded ahead of the running batch; of
 * batch k, the calling thread decodes those no worker has started.
 */
async function pipeline(
  model: GoogLeNet,
  list: readonly ImageSource[],
  transform: EvalTransform,
  load: CheckedLoadOptions,
  pool: DecodePool,
  batchSize: number,
  rows: (logits: Tensor) => Prediction[][],
): Promise<Prediction[][]> {
  const settings = decodeSettings(transform, load);
  const size = 3 * transform.crop * transform.crop;
  // Each batch's floats, written where they go by the workers (shared memory) and by this thread.
  const shared = typeof SharedArrayBuffer === "function";
  const batches = new Map<number, Float32Array>();
  const batchOf = (index: number) => {
    const k = Math.floor(index / batchSize);
    let batch = batches.get(k);
    if (batch === undefined) {
      const bytes = Math.min(batchSize, list.length - k * batchSize) * size * 4;
      batch = new Float32Array(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
      batches.set(k, batch);
    }
    return batch;
  };
  const slot = (index: number) => {
    const at = (index % batchSize) * size;
    return batchOf(index).subarray(at, at + size);
  };
  const jobs: (Promise<Float32Array> | undefined)[] = [];
  let submitted = 0;
  const submitUpTo = async (end: number) => {
    for (; submitted < Math.min(end, list.length); submitted++) {
      const source = await workerSource(list[submitted], load);
      const job = pool.decode(source, settings, shared ? slot(submitted) : undefined);
      job.catch(() => {}); // awaited in order below; a rejection before then is not unhandled
      jobs[submitted] = job;
    }
  };
  const out: Prediction[][] = [];
  for (let start = 0; start < list.length; start += batchSize) {
    const end = Math.min(start + batchSize, list.length);
    await submitUpTo(end + batchSize);
    const batch = batchOf(start);
    // The images no worker has claimed are decoded here, from the back (the workers go from the
    // front, then on with the next batch); then the others are awaited, and the first failure in
    // image order is thrown. The first batch has nothing to hide behind: the workers are still
    // starting, so the calling thread decodes most of it.
    const here: ({ done: true } | { error: unknown } | undefined)[] = [];
    for (let i = end - 1; i >= start; i--) {
      const source = pool.withdraw(jobs[i]!);
      if (source === undefined) continue;
      try {
        await transformSource(source, load, transform, slot(i));
        here[i - start] = { done: true };
      } catch (error) {
        here[i - start] = { error };
      }
    }
    for (let i = start; i < end; i++) {
      const mine = here[i - start];
      if (mine && "error" in mine) throw mine.error;
      if (!mine) {
        const data = await jobs[i]!;
        // Written in place (shared memory) or sent back (no SharedArrayBuffer here).
        if (data.buffer !== batch.buffer) batch.set(data, (i - start) * size);
      }
      jobs[i] = undefined;
    }
    batches.delete(start / batchSize); // the model takes the batch; the call holds it no more
    out.push(
      ...rows(
        await evaluate(model, new Tensor(batch, [end - start, 3, transform.crop, transform.crop])),
      ),
    );
  }
  return out;
}

/** What a worker decodes: the bytes of a path or URL (read here, within budget), bytes, or pixels. */
async function workerSource(
  source: ImageSource,
  load: CheckedLoadOptions,
): Promise<Uint8Array | PixelData> {
  if (typeof source === "string" || source instanceof URL) {
    return await readBytes(source, { ...load, error: ImageError, what: "image" });
  }
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return imageBytes(source);
  if (typeof source === "object" && source !== null && "data" in source) return source;
  await loadChecked(source, load); // throws the OptionError of a wrong type
  throw new OptionError(`Expected an image, got ${describeValue(source)}`);
}

function defaultLabels(numClasses: number): readonly string[] {
  if (numClasses === IMAGENET_CLASSES.length) return IMAGENET_CLASSES;
  return Array.from({ length: numClasses }, (_, i) => `class ${i}`);
}
