/**
 * Training checkpoints on disk: the model's weights (`.pth` that PyTorch's
 * `load_state_dict` accepts, or `.safetensors`), `classes.json` next to them,
 * and a sidecar `<checkpoint>.optim.safetensors` with the optimizer's state
 * and the run's progress, for `--resume`. Every file is written to a
 * temporary name in the same folder and then renamed over the old one, so a
 * failed write (disk full, no permission) leaves the previous checkpoint intact.
 *
 * @module
 */

import { GoogLeNetError, OptionError, StateDictError } from "../errors.ts";
import { readBytes } from "../read_bytes.ts";
import { describeValue } from "../validate.ts";
import { Tensor } from "../tensor.ts";
import { readSafetensors, writeSafetensors } from "../weights/safetensors.ts";
import { writePth } from "../weights/pth.ts";
import type { StateDict } from "../weights/state_dict.ts";
import type { OptimizerStateDict, ParameterState } from "./optimizer.ts";

/**
 * A checkpoint could not be written or read back (the message names the file
 * and says what is intact).
 *
 * @example
 * ```ts
 * import { CheckpointError } from "./checkpoint.ts";
 * console.log(new CheckpointError("Cannot write best.pth").name); // "CheckpointError"
 * ```
 */
export class CheckpointError extends GoogLeNetError {}

/** What `classes.json` holds: the class names and how images were prepared for the model. */
export interface ClassesFile {
  /** Class names, label order. */
  classes: string[];
  /** Model definition the weights belong to. */
  variant: "seed" | "torchvision";
  /** Input side the model was trained at (images resized to `size` x `size`). */
  size: number;
  /** Per-channel normalisation mean. */
  mean: number[];
  /** Per-channel normalisation std. */
  std: number[];
}

/** What the optimizer sidecar records besides the optimizer's state. */
export interface Progress {
  /** Optimizer kind (`"adamw"`, `"adam"`, `"sgd"`). */
  optimizer: string;
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps taken in total. */
  step: number;
  /** Best validation accuracy so far (0 to 1), or null without validation. */
  bestAccuracy: number | null;
  /**
   * Batches of epoch `epoch + 1` done when the run stopped inside it (0, or
   * absent in sidecars written before it was recorded, at an epoch's start).
   */
  epochBatches?: number;
  /**
   * The loss summed over the images of the unfinished epoch's batches done
   * (each batch's mean loss times its images), so that a resumed run reports
   * the whole epoch's mean; absent in older sidecars.
   */
  epochLoss?: number;
  /** Images trained on in the unfinished epoch's batches done (absent in older sidecars). */
  epochImages?: number;
  /** Of those, the images the model classified correctly (absent in older sidecars). */
  epochCorrect?: number;
  /** The model's `dropoutState` when saved (absent in older sidecars). */
  dropoutState?: number[];
  /** Anything else worth keeping (the command's options). */
  [key: string]: unknown;
}

/** Options of {@linkcode saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** Written as `classes.json` in the checkpoint's folder. */
  classes?: ClassesFile;
  /** The optimizer's state, written to the sidecar with `progress`. */
  optimizer?: OptimizerStateDict;
  /** The run's progress, written to the sidecar. */
  progress?: Progress;
}

/**
 * The sidecar path of a checkpoint: `<checkpoint>.optim.safetensors`.
 *
 * @param checkpoint The checkpoint's path.
 * @returns The sidecar's path.
 *
 * @example
 * ```ts
 * import { sidecarPath } from "./checkpoint.ts";
 * console.log(sidecarPath("runs/best.pth")); // "runs/best.pth.optim.safetensors"
 * ```
 */
export function sidecarPath(checkpoint: string): string {
  return `${checkpoint}.optim.safetensors`;
}

/**
 * The `classes.json` path next to a checkpoint.
 *
 * @param checkpoint The checkpoint's path.
 * @returns `classes.json` in the same folder.
 *
 * @example
 * ```ts
 * import { classesPath } from "./checkpoint.ts";
 * console.log(classesPath("runs/best.pth")); // "runs/classes.json"
 * ```
 */
export function classesPath(checkpoint: string): string {
  const slash = checkpoint.lastIndexOf("/");
  return slash < 0 ? "classes.json" : `${checkpoint.slice(0, slash + 1)}classes.json`;
}

/**
 * Writes `bytes` to `path` through a temporary file in the same folder and a
 * rename, so that `path` is either its old content or the new one, never a
 * partial file.
 *
 * @param path The destination.
 * @param bytes The content.
 * @throws {CheckpointError} When the temporary file cannot be written or renamed; it is removed, `path` untouched.
 *
 * @example
 * ```ts
 * import { writeAtomic } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * await writeAtomic(`${dir}/a.bin`, new Uint8Array([1, 2]));
 * console.log(await Deno.readFile(`${dir}/a.bin`)); // Uint8Array(2) [1, 2]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw new CheckpointError(
      `Cannot write ${path}: ${(error as Error).message.replace(/ \(os error \d+\).*$/, "")}; ` +
        `the file there before (if any) is intact`,
      { cause: error },
    );
  }
}

/**
 * Encodes a state dict for `path`: safetensors when it ends in
 * `.safetensors`, else a `torch.save`-style ZIP `.pth`.
 *
 * @param path The destination (only its extension matters).
 * @param stateDict The tensors.
 * @returns The file's bytes.
 *
 * @example
 * ```ts
 * import { encodeWeights } from "./checkpoint.ts";
 * import { Tensor } from "../tensor.ts";
 * const bytes = encodeWeights("w.safetensors", new Map([["b", Tensor.zeros([2])]]));
 * console.log(bytes[8]); // 123, the "{" of the JSON header
 * ```
 */
export function encodeWeights(path: string, stateDict: StateDict): Uint8Array {
  return path.toLowerCase().endsWith(".safetensors")
    ? writeSafetensors(stateDict)
    : writePth(stateDict);
}

/**
 * Saves a checkpoint: the weights at `path`, `classes.json` next to it and,
 * with `optimizer` or `progress`, the sidecar `<path>.optim.safetensors`.
 * Every file is first written under a temporary name; only when all are
 * written are they renamed into place, so a failure (disk full) leaves the
 * previous files, weights and sidecar alike, as they were.
 *
 * @param path The checkpoint (`.pth`, `.pt` or `.safetensors`).
 * @param stateDict The model's state dict.
 * @param options Class names, optimizer state and progress.
 * @throws {CheckpointError} When a file cannot be written (the previous ones are kept).
 *
 * @example
 * ```ts
 * import { saveCheckpoint } from "./checkpoint.ts";
 * import { Tensor } from "../tensor.ts";
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(`${dir}/best.pth`, new Map([["fc.bias", Tensor.zeros([2])]]), {
 *   classes: { classes: ["cat", "dog"], variant: "seed", size: 224, mean: [0.5], std: [0.5] },
 * });
 * console.log(JSON.parse(await Deno.readTextFile(`${dir}/classes.json`)).classes); // ["cat", "dog"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  path: string,
  stateDict: StateDict,
  options: SaveCheckpointOptions = {},
): Promise<void> {
  const files: [string, () => Uint8Array][] = [[path, () => encodeWeights(path, stateDict)]];
  if (options.optimizer || options.progress) {
    files.push([sidecarPath(path), () => encodeSidecar(options.optimizer, options.progress)]);
  }
  if (options.classes) {
    const text = JSON.stringify(options.classes, null, 2) + "\n";
    files.push([classesPath(path), () => new TextEncoder().encode(text)]);
  }
  const suffix = `.tmp-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const written: string[] = [];
  try {
    for (const [target, encode] of files) {
      written.push(target + suffix);
      await Deno.writeFile(target + suffix, encode());
    }
    for (const [target] of files) await Deno.rename(target + suffix, target);
  } catch (error) {
    await Promise.all(written.map((tmp) => Deno.remove(tmp).catch(() => {})));
    throw new CheckpointError(
      `Cannot save the checkpoint ${path}: ${
        (error as Error).message.replace(/ \(os error \d+\).*$/, "")
      }; the checkpoint there before (if any) is intact`,
      { cause: error },
    );
  }
}

/** The optimizer state and progress as one safetensors file (tensors `state.<index>.<key>`). */
function encodeSidecar(
  optimizer: OptimizerStateDict | undefined,
  progress: Progress | undefined,
): Uint8Array {
  const tensors = new Map<string, Tensor>();
  const scalars: Record<string, Record<string, number>> = {};
  for (const [index, state] of optimizer?.state ?? []) {
    for (const [key, value] of Object.entries(state)) {
      if (value instanceof Tensor) tensors.set(`state.${index}.${key}`, value);
      else (scalars[index] ??= {})[key] = value;
    }
  }
  const metadata: Record<string, string> = { progress: JSON.stringify(progress ?? null) };
  if (optimizer) {
    metadata.optimizer = JSON.stringify({
      paramGroups: optimizer.paramGroups,
      names: optimizer.names,
      scalars,
    });
  }
  return writeSafetensors(tensors, { metadata });
}

/** Options of {@linkcode readSidecar}. */
export interface ReadSidecarOptions {
  /**
   * Most bytes the sidecar may have: twice `loadWeights`' default, as Adam
   * keeps two tensors per parameter.
   *
   * @default {4_294_967_296} (4 GiB)
   */
  maxBytes?: number;
}

/** Default {@linkcode ReadSidecarOptions.maxBytes}. */
const DEFAULT_SIDECAR_MAX_BYTES = 2 ** 32;
/** Milliseconds the sidecar's read may take (as `loadWeights`' default). */
const SIDECAR_TIMEOUT = 300_000;

/** What {@linkcode readSidecar} returns. */
export interface Sidecar {
  /** The optimizer's state, for `Optimizer.loadStateDict`; null when none was saved. */
  optimizer: OptimizerStateDict | null;
  /** The run's progress (`epochBatches` 0 when the file has none); null when none was saved. */
  progress: (Progress & { epochBatches: number }) | null;
}

/**
 * Reads a checkpoint's sidecar (`<checkpoint>.optim.safetensors`) within a
 * byte budget: a FIFO there is refused before it is opened, and a device
 * stops at `maxBytes`.
 *
 * @param checkpoint The checkpoint's path (not the sidecar's).
 * @param options The byte budget.
 * @returns The optimizer state and progress.
 * @throws {CheckpointError} When the sidecar is missing, a FIFO, larger than
 * `maxBytes` or malformed, or its
 * progress has a field of the wrong kind (the message names it and what it must be).
 *
 * @example
 * ```ts
 * import { readSidecar, saveCheckpoint } from "./checkpoint.ts";
 * import { Tensor } from "../tensor.ts";
 * const dir = await Deno.makeTempDir();
 * const progress = { optimizer: "adamw", epoch: 1, step: 10, bestAccuracy: 0.5 };
 * await saveCheckpoint(`${dir}/c.pth`, new Map([["b", Tensor.zeros([1])]]), { progress });
 * console.log((await readSidecar(`${dir}/c.pth`)).progress?.step); // 10
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSidecar(
  checkpoint: string,
  options: ReadSidecarOptions = {},
): Promise<Sidecar> {
  const path = sidecarPath(checkpoint);
  const { maxBytes = DEFAULT_SIDECAR_MAX_BYTES } = options ?? {};
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new OptionError(
      `Expected maxBytes to be an integer >= 0, got ${describeValue(maxBytes)}`,
    );
  }
  let bytes: Uint8Array;
  try {
    // Not Deno.readFile: it would wait forever on a FIFO and read a device until memory runs out.
    bytes = await readBytes(path, {
      maxBytes,
      timeout: SIDECAR_TIMEOUT,
      error: CheckpointError,
      what: "optimizer state",
      instead: "copy it to a regular file next to the checkpoint",
    });
  } catch (error) {
    throw new CheckpointError(
      `Cannot resume from ${checkpoint}: its optimizer state ${path} cannot be read (${
        (error as Error).message.replace(/ \(os error \d+\).*$/, "")
      }); expected the sidecar file the train command writes next to each checkpoint`,
      { cause: error },
    );
  }
  try {
    const { tensors, metadata } = readSafetensors(bytes);
    const progress = checkProgress(JSON.parse(metadata.progress ?? "null"), checkpoint, path);
    if (metadata.optimizer === undefined) return { optimizer: null, progress };
    const meta = JSON.parse(metadata.optimizer) as {
      paramGroups: OptimizerStateDict["paramGroups"];
      names: string[];
      scalars: Record<string, Record<string, number>>;
    };
    const state = new Map<number, ParameterState>();
    const entry = (index: number) => {
      let s = state.get(index);
      if (!s) state.set(index, s = {});
      return s;
    };
    for (const [index, values] of Object.entries(meta.scalars)) {
      Object.assign(entry(Number(index)), values);
    }
    for (const [key, tensor] of tensors) {
      const match = /^state\.(\d+)\.(.+)$/.exec(key);
      if (!match) throw new Error(`unexpected tensor "${key}"`);
      entry(Number(match[1]))[match[2]] = tensor;
    }
    return { optimizer: { state, paramGroups: meta.paramGroups, names: meta.names }, progress };
  } catch (error) {
    if (error instanceof CheckpointError) throw error;
    throw new CheckpointError(
      `Cannot resume from ${checkpoint}: ${path} is not an optimizer state this command wrote (${
        (error as Error).message
      })`,
      { cause: error },
    );
  }
}

/** Progress as parsed from a sidecar, each known field checked; `epochBatches` defaults to 0. */
function checkProgress(
  value: unknown,
  checkpoint: string,
  path: string,
): (Progress & { epochBatches: number }) | null {
  const fail = (what: string) =>
    new CheckpointError(`Cannot resume from ${checkpoint}: ${path} records ${what}`);
  if (value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw fail(`the progress ${describeValue(value)}, expected an object`);
  }
  const p = value as Record<string, unknown>;
  const expect = (ok: boolean, field: string, what: string) => {
    if (!ok) throw fail(`${field} ${describeValue(p[field])}, expected ${what}`);
  };
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  expect(typeof p.optimizer === "string", "optimizer", "an optimizer name");
  expect(count(p.epoch), "epoch", "an integer >= 0 (epochs done)");
  expect(count(p.step), "step", "an integer >= 0 (steps done)");
  expect(
    p.bestAccuracy === null ||
      (typeof p.bestAccuracy === "number" && p.bestAccuracy >= 0 && p.bestAccuracy <= 1),
    "bestAccuracy",
    "null or a number from 0 to 1",
  );
  expect(
    p.epochBatches === undefined || count(p.epochBatches),
    "epochBatches",
    "an integer >= 0 (batches of the unfinished epoch done)",
  );
  const words = p.dropoutState;
  expect(
    words === undefined ||
      (Array.isArray(words) && words.length === 4 &&
        words.every((w) => Number.isSafeInteger(w) && w >= 0 && w < 2 ** 32) &&
        words.some((w) => w !== 0)),
    "dropoutState",
    "4 integers from 0 to 2^32 - 1, not all 0",
  );
  return { ...(p as Progress), epochBatches: (p.epochBatches as number | undefined) ?? 0 };
}

/**
 * Whether a state-dict key belongs to a layer whose shape depends on the
 * class count (`fc`, `aux1.fc2`, `aux2.fc2`).
 *
 * @param key A state-dict key.
 * @returns True for the heads' last layers.
 *
 * @example
 * ```ts
 * import { isHeadKey } from "./checkpoint.ts";
 * console.log(isHeadKey("aux1.fc2.bias"), isHeadKey("aux1.fc1.bias")); // true false
 * ```
 */
export function isHeadKey(key: string): boolean {
  return /^(fc|aux[12]\.fc2)\./.test(key);
}

/** What a state dict's keys and shapes say about the model it came from. */
export interface CheckpointShape {
  /** `"torchvision"` when it has BatchNorm statistics, else `"seed"`. */
  variant: "seed" | "torchvision";
  /** Rows of `fc.weight`, or null without it. */
  numClasses: number | null;
  /** Whether it holds the auxiliary heads. */
  auxLogits: boolean;
}

/**
 * Tells the variant, class count and aux heads of a state dict.
 *
 * @param stateDict The tensors.
 * @returns What they were saved from.
 *
 * @example
 * ```ts
 * import { describeCheckpoint } from "./checkpoint.ts";
 * import { Tensor } from "../tensor.ts";
 * const sd = new Map([["conv1.conv.weight", Tensor.zeros([64, 3, 7, 7])], ["fc.weight", Tensor.zeros([10, 1024])]]);
 * console.log(describeCheckpoint(sd)); // { variant: "seed", numClasses: 10, auxLogits: false }
 * ```
 */
export function describeCheckpoint(stateDict: StateDict): CheckpointShape {
  return {
    variant: stateDict.has("conv1.bn.running_mean") ? "torchvision" : "seed",
    numClasses: stateDict.get("fc.weight")?.shape[0] ?? null,
    auxLogits: stateDict.has("aux1.fc2.weight"),
  };
}

/** Options of {@linkcode fitCheckpoint}. */
export interface FitCheckpointOptions {
  /** The model's definition. */
  variant: "seed" | "torchvision";
  /** The data set's class count. */
  numClasses: number;
  /** Whether the model has aux heads. */
  auxLogits: boolean;
  /** Re-initialise the head when the class count differs (the user asked for it with `--trainable`). */
  reinitHead: boolean;
  /** Names the file in messages. */
  name: string;
  /** The model's state-dict keys; others in the file are an error. */
  modelKeys: Iterable<string>;
}

/** What {@linkcode fitCheckpoint} returns. */
export interface FittedCheckpoint {
  /** The entries to load (non-strictly when `missing` is not empty). */
  stateDict: StateDict;
  /** Model keys the file does not provide (they keep their initial values). */
  missing: string[];
  /** Notes for the user (head re-initialised, aux heads dropped or new). */
  notes: string[];
}

/**
 * Checks that a state dict fits the model a training run builds and adapts
 * what may be adapted: aux heads the model lacks are dropped, aux heads the
 * file lacks start from their initialisation, and with `reinitHead` a head of
 * another class count is left out (re-initialised).
 *
 * @param stateDict The file's tensors.
 * @param options The model's definition and what the user allowed.
 * @returns The entries to load, the keys left to initialisation, notes.
 * @throws {StateDictError} For the other variant, or another class count without `reinitHead`.
 *
 * @example
 * ```ts
 * import { fitCheckpoint } from "./checkpoint.ts";
 * import { Tensor } from "../tensor.ts";
 * const sd = new Map([["fc.weight", Tensor.zeros([1000, 1024])], ["fc.bias", Tensor.zeros([1000])]]);
 * const fit = fitCheckpoint(sd, {
 *   variant: "seed", numClasses: 10, auxLogits: false, reinitHead: true, name: "a.pth",
 *   modelKeys: ["fc.weight", "fc.bias"],
 * });
 * console.log(fit.stateDict.size, fit.missing); // 0 ["fc.weight", "fc.bias"]
 * ```
 */
export function fitCheckpoint(
  stateDict: StateDict,
  options: FitCheckpointOptions,
): FittedCheckpoint {
  const { variant, numClasses, auxLogits, reinitHead, name } = options;
  const found = describeCheckpoint(stateDict);
  if (found.variant !== variant) {
    throw new StateDictError(
      `${name} holds the ${found.variant} variant of GoogLeNet (${
        found.variant === "torchvision" ? "it has BatchNorm statistics" : "it has no BatchNorm"
      }), expected the ${variant} variant: pass --variant ${found.variant}`,
    );
  }
  const notes: string[] = [];
  const out: StateDict = new Map();
  const missing: string[] = [];
  const classesDiffer = found.numClasses !== null && found.numClasses !== numClasses;
  if (classesDiffer && !reinitHead) {
    throw new StateDictError(
      `${name} was trained for ${found.numClasses} classes, expected ${numClasses} (the data set's): ` +
        `pass --trainable fc. (or more prefixes) to re-initialise the head and fine-tune`,
    );
  }
  for (const [key, tensor] of stateDict) {
    if (/^aux[12]\./.test(key) && !auxLogits) continue;
    if (classesDiffer && isHeadKey(key)) continue;
    out.set(key, tensor);
  }
  const keys = new Set(options.modelKeys);
  const unexpected = [...out.keys()].filter((key) => !keys.has(key));
  const absent = [...keys].filter((key) => !out.has(key));
  const allowed = (key: string) =>
    (classesDiffer && isHeadKey(key)) || (!found.auxLogits && /^aux[12]\./.test(key));
  const wrong = [...unexpected, ...absent.filter((key) => !allowed(key))];
  if (wrong.length > 0) {
    throw new StateDictError(
      `${name} does not fit a ${variant} GoogLeNet: ${
        unexpected.length ? `unexpected keys ${quoteSome(unexpected)}` : ""
      }${unexpected.length && wrong.length > unexpected.length ? "; " : ""}${
        wrong.length > unexpected.length
          ? `missing keys ${quoteSome(absent.filter((key) => !allowed(key)))}`
          : ""
      }: expected a state dict saved from this model definition`,
    );
  }
  missing.push(...absent);
  if (found.auxLogits && !auxLogits && variant === "seed") {
    notes.push(`${name}'s aux heads are not used (--no-aux)`);
  }
  if (!found.auxLogits && auxLogits) {
    notes.push(`${name} has no aux heads: they start from their initialisation`);
  }
  if (classesDiffer) {
    notes.push(
      `${name} was trained for ${found.numClasses} classes: the head (fc${
        auxLogits ? ", aux1.fc2, aux2.fc2" : ""
      }) is re-initialised for ${numClasses}`,
    );
  }
  return { stateDict: out, missing, notes };
}

function quoteSome(keys: string[]): string {
  const shown = keys.slice(0, 4).map((key) => `"${key}"`).join(", ");
  return keys.length > 4 ? `${shown} and ${keys.length - 4} more` : shown;
}
