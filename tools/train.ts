/**
 * Trains GoogLeNet on a folder of images or on Fashion-MNIST:
 *
 *   deno task train <dir|fashion-mnist> [--epochs N] [--steps N] [--batch 16] [--lr 1e-4] ...
 *
 * `<dir>` holds one folder per class (torchvision's `ImageFolder`), or the
 * IDX files of MNIST/Fashion-MNIST (`fashion-mnist` names Debian's
 * `/usr/share/datasets/fashion-mnist`; 28x28 grey images are resized to
 * `--size` and replicated to 3 channels). Each epoch ends with a validation
 * pass (eval mode, no aux heads); the weights with the best validation
 * accuracy go to `--out` (`.pth` that PyTorch's `load_state_dict` accepts, or
 * `.safetensors`), the latest to `<out>.last.<ext>`, each with the
 * optimizer's state in `<checkpoint>.optim.safetensors` (for `--resume`) and
 * `classes.json` in the same folder (what `deno task classify` reads). Ctrl-C
 * saves the latest checkpoint and exits; `--resume` continues it, an epoch
 * that stopped inside from the batch after the last one trained on (the
 * sidecar records `epochBatches`, and the loss and accuracy so far, so the
 * epoch's record covers the whole epoch). `--json` prints one JSON record per
 * step (or per `--log-every` steps) and per epoch on stdout.
 *
 * @module
 */

import { runCommand, UsageError } from "./_cli.ts";
import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  Adam,
  AdamW,
  type Augmentation,
  DataLoader,
  type Dataset,
  GoogLeNet,
  loadWeights,
  type Optimizer,
  SGD,
  splitDataset,
  trainTransform,
  validationTransform,
} from "../mod.ts";
import {
  CheckpointError,
  type ClassesFile,
  classesPath,
  fitCheckpoint,
  type Progress,
  readSidecar,
  saveCheckpoint,
  sidecarPath,
} from "../src/train/checkpoint.ts";
import { describeValue } from "../src/validate.ts";
import { limitDataset, openDataset } from "../src/train/data_source.ts";
import { readBytes } from "../src/read_bytes.ts";
import { argmaxRows, evaluateModel } from "../src/train/evaluate.ts";

const USAGE =
  `Usage: deno task train <dir|fashion-mnist> [--epochs N] [--steps N] [--batch 16] [--lr 1e-4]
         [--optimizer adamw|adam|sgd] [--weights init.pth] [--trainable fc.] [--variant seed|torchvision]
         [--size 224] [--no-aux] [--val-split 0.1] [--val DIR] [--augment torchvision|flip|none]
         [--out best.pth] [--resume CHECKPOINT] [--seed S] [--threads N] [--workers N] [--limit N]
         [--json] [--log-every N]

  <dir>               one sub-folder of images per class (PNG/JPEG), or a folder of IDX files
                      (train-images-idx3-ubyte[.gz] ...); "fashion-mnist" is /usr/share/datasets/fashion-mnist
  --epochs N          passes over the training images (default 1; with --steps alone, until N steps)
  --steps N           stop after N optimizer steps in this run (validation and checkpoint at the end)
  --batch N           images per step (default 16)
  --lr X              learning rate (default 1e-4)
  --optimizer NAME    adamw (default; weight decay 0.01), adam, or sgd (momentum 0.9)
  --weights FILE      start from these weights (.pth or .safetensors) instead of the initialisation
                      (Kaiming fan-out for convolutions, N(0, 0.01) for linear layers)
  --trainable P,...   train only parameters whose names start with these prefixes (e.g. fc.); with
                      --weights of another class count, the head is re-initialised
  --variant NAME      seed (default: the project's reference) or torchvision
  --size N            images are resized to N x N (default 224; the aux heads need 223 to 270)
  --no-aux            without the two auxiliary heads (needed for --size under 223)
  --val-split X       share of the images held back for validation, below 1 (default 0.1; 0: none)
  --val DIR           a separate validation folder (same class folders) instead of --val-split
  --augment NAME      torchvision (RandomResizedCrop + flip, default), flip (resize + flip), none (resize)
  --out FILE          best checkpoint (default best.pth; .safetensors by extension); also writes
                      <out>.last.<ext>, <checkpoint>.optim.safetensors and classes.json next to it
  --resume FILE       continue from a checkpoint this command wrote (weights, optimizer, step count,
                      dropout stream, and an unfinished epoch from the batch after its last one)
  --seed S            seed of the initialisation, split, shuffles, augmentation, dropout: 0 to
                      4294967295 (default 0)
  --threads N         Wasm threads (default: all cores)
  --workers N         image decoding workers (default: min(2, cores))
  --limit N           use N images of the data set (a seeded choice) before the split
  --json              JSON records on stdout: one per step (or --log-every N) and per epoch
  --log-every N       steps between progress records (default 1 with --json, else 10)`;

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

function parseNumber(
  name: string,
  value: string | undefined,
  fallback: number,
  { integer = true, min = integer ? 1 : 0, max = Infinity, belowMax = false }: {
    integer?: boolean;
    min?: number;
    max?: number;
    /** Whether `max` itself is refused. */
    belowMax?: boolean;
  } = {},
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (
    value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isSafeInteger(n)) ||
    n < min || n > max || (belowMax && n === max)
  ) {
    const range = max === Infinity
      ? `>= ${min}`
      : belowMax
      ? `from ${min} up to (not including) ${max}`
      : `from ${min} to ${max}`;
    throw new UsageError(
      `--${name} must be ${integer ? "an integer" : "a number"} ${range}, got "${value}"`,
    );
  }
  return n;
}

/** `best.pth` -> `best.last.pth`. */
function lastPath(out: string): string {
  const match = /^(.*?)(\.[^./]+)?$/.exec(out)!;
  return `${match[1]}.last${match[2] ?? ""}`;
}

/** Up to 8 names, then how many in all. */
function someNames(names: readonly string[]): string {
  return names.length <= 8
    ? names.join(", ")
    : `${names.slice(0, 8).join(", ")}, ... (${names.length} in all)`;
}

/**
 * `classes.json` names the classes of every checkpoint in its folder. Fails
 * when it lists other classes than this run's and the folder holds
 * checkpoints this run does not write: replacing it would mislabel them.
 */
async function checkSharedClasses(out: string, classes: readonly string[]): Promise<void> {
  const path = classesPath(out);
  let names: unknown;
  try {
    // Bounded like every read from a path: a FIFO or a device file named classes.json cannot stall it.
    const options = { maxBytes: 16 * 2 ** 20, timeout: 10_000, error: CheckpointError, what: path };
    const text = new TextDecoder().decode(await readBytes(path, options));
    names = (JSON.parse(text) as { classes?: unknown }).classes;
  } catch (error) {
    // None, or not a file we can read as JSON: the first save replaces it.
    if (error instanceof CheckpointError || error instanceof SyntaxError) return;
    throw error;
  }
  if (Array.isArray(names) && names.join("\n") === classes.join("\n")) return;
  const dir = path.slice(0, -"classes.json".length) || "./";
  const mine = new Set([out, lastPath(out)].map((p) => p.slice(p.lastIndexOf("/") + 1)));
  const others: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (
      entry.isFile && /\.(pth|pt|safetensors)$/i.test(entry.name) &&
      !/\.optim\.safetensors$/i.test(entry.name) && !mine.has(entry.name)
    ) others.push(entry.name);
  }
  if (others.length === 0) return;
  const listed = Array.isArray(names) ? someNames(names.map(String)) : "none readable";
  throw new UsageError(
    `${path} lists other classes (${listed}) for the checkpoints beside it (${
      someNames(others.sort())
    }): this run's classes (${
      someNames(classes)
    }) would replace it and mislabel them; expected --out in another folder`,
  );
}

/** The optimizers this command trains with (`--optimizer`). */
const OPTIMIZERS = ["adamw", "adam", "sgd"];

/**
 * Checks the progress fields this command writes besides those `readSidecar`
 * checks: the optimizer's name, and `batch`, `seed` and `trainImages` (absent
 * in older sidecars), which a resume compares with this run's.
 */
function checkCommandProgress(checkpoint: string, progress: Progress): void {
  const expect = (field: string, ok: boolean, what: string) => {
    if (ok) return;
    throw new CheckpointError(
      `Cannot resume from ${checkpoint}: ${sidecarPath(checkpoint)} records ${field} ${
        describeValue(progress[field])
      }, expected ${what}`,
    );
  };
  const integer = (field: string, min: number) => {
    const v = progress[field];
    return v === undefined || (Number.isSafeInteger(v) && (v as number) >= min);
  };
  expect("optimizer", OPTIMIZERS.includes(progress.optimizer), "adamw, adam or sgd");
  expect("batch", integer("batch", 1), "an integer >= 1 (--batch)");
  expect("seed", integer("seed", 0), "an integer >= 0 (--seed)");
  expect("trainImages", integer("trainImages", 0), "an integer >= 0 (training images)");
  // The unfinished epoch's loss and accuracy so far (absent in older sidecars, all three or none).
  const done = progress.epochBatches ?? 0;
  const batch = typeof progress.batch === "number" ? progress.batch : Infinity;
  const most = done * batch;
  const loss = progress.epochLoss;
  expect(
    "epochLoss",
    loss === undefined || (typeof loss === "number" && Number.isFinite(loss) && loss >= 0),
    "a finite number >= 0 (the loss summed over the images of the unfinished epoch)",
  );
  const images = progress.epochImages;
  const least = done > 0 ? 1 : 0;
  expect(
    "epochImages",
    images === undefined ||
      (Number.isSafeInteger(images) && images >= least && images <= most),
    `an integer from ${least} to ${most} (images trained on in the ${done} batches of epoch ${
      (progress.epoch as number) + 1
    } done)`,
  );
  const correct = progress.epochCorrect;
  const seen = images ?? 0;
  expect("epochLoss", seen > 0 || !loss, "0 when no image of the epoch was trained on");
  expect(
    "epochCorrect",
    correct === undefined ||
      (Number.isSafeInteger(correct) && correct >= 0 && correct <= seen),
    `an integer from 0 to ${seen} (images of the unfinished epoch classified correctly)`,
  );
  const present = [loss, images, correct].filter((v) => v !== undefined).length;
  if (present !== 0 && present !== 3) {
    throw new CheckpointError(
      `Cannot resume from ${checkpoint}: ${
        sidecarPath(checkpoint)
      } records some of epochLoss, epochImages and epochCorrect but not all: expected all three ` +
        `(the unfinished epoch's loss and accuracy so far) or none (an older sidecar)`,
    );
  }
}

/**
 * Checks that the step and epoch counts this run may reach stay safe
 * integers (what a sidecar may record): a run that counted past 2^53 - 1
 * would write a checkpoint that no run can resume; and that the epochs stay
 * within the 2^32 the data loader runs.
 */
function checkCountRoom(
  name: string | null,
  progress: Progress & { epochBatches: number },
  loader: DataLoader,
  { steps, epochs }: { steps: number; epochs: number },
): void {
  // --steps alone bounds the epochs, --epochs alone the steps: both bounds are finite.
  const moreSteps = Math.min(steps, epochs * loader.length - progress.epochBatches);
  const moreEpochs = Math.min(epochs, Math.ceil((progress.epochBatches + steps) / loader.length));
  const room = [
    {
      field: "step",
      count: progress.step,
      more: moreSteps,
      what: "steps",
      most: Number.MAX_SAFE_INTEGER,
      limit: `2^53 - 1 (${Number.MAX_SAFE_INTEGER}), the most a checkpoint can record`,
    },
    {
      field: "epoch",
      count: progress.epoch,
      more: moreEpochs,
      what: "epochs",
      // Epochs 0 to 2^32 - 1: the loader's seeds take the epoch as one 32-bit word.
      most: 2 ** 32,
      limit: `2^32 (${2 ** 32}), the most epochs the data loader runs`,
    },
  ];
  for (const { field, count, more, what, most, limit } of room) {
    // NaN (a training set of no batch) takes no step either.
    if (!(count + more > most)) continue;
    const past = `the ${what} count would pass ${limit}`;
    if (name === null) {
      throw new UsageError(
        `This run may take up to ${more} ${what} (--epochs ${epochs} of ${loader.length} batches` +
          `${steps === Infinity ? "" : `, --steps ${steps}`}): ${past}; expected fewer`,
      );
    }
    throw new CheckpointError(
      `Cannot resume from ${name}: ${
        sidecarPath(name)
      } records ${field} ${count}, and this run may add up to ${more} ${what}: ${past}; ` +
        `expected a checkpoint this command wrote (or start from its weights with --weights)`,
    );
  }
}

/**
 * Checks that a checkpoint saved inside an epoch can continue it here: the
 * same batch size and seed (the epoch's batches and order) and a batch count
 * within this training set's batches per epoch.
 */
function checkEpochPosition(
  name: string,
  progress: Progress & { epochBatches: number },
  loader: DataLoader,
  seed: number,
): void {
  const where = `${name} stopped after ${progress.epochBatches} batches of epoch ${
    progress.epoch + 1
  }`;
  const same = (flag: string, saved: unknown, given: number) => {
    if (saved === undefined || saved === given) return;
    throw new UsageError(
      `${where} with --${flag} ${saved}, not ${given}: pass --${flag} ${saved} to finish that ` +
        `epoch on the batches it had left`,
    );
  };
  same("batch", progress.batch, loader.batchSize);
  same("seed", progress.seed, seed);
  const images = progress.trainImages;
  if (
    progress.epochBatches >= loader.length ||
    (images !== undefined && images !== loader.dataset.length)
  ) {
    throw new CheckpointError(
      `Cannot resume from ${name}: it stopped after ${progress.epochBatches} batches of epoch ${
        progress.epoch + 1
      }${
        images === undefined ? "" : ` of ${images} training images`
      }, but this training set has ${loader.dataset.length} images, ${loader.length} batches of ` +
        `${loader.batchSize}: expected batches done from 0 to ${
          loader.length - 1
        }, on the images it was trained on (the same data, --limit, --val-split, --val and --seed)`,
    );
  }
}

function bar(done: number, total: number, width = 24): string {
  const filled = total ? Math.round((width * done) / total) : 0;
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

const round = (x: number, digits = 4) => Number(x.toFixed(digits));

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      epochs: { type: "string" },
      steps: { type: "string" },
      batch: { type: "string" },
      lr: { type: "string" },
      optimizer: { type: "string" },
      weights: { type: "string" },
      trainable: { type: "string" },
      variant: { type: "string" },
      size: { type: "string" },
      "no-aux": { type: "boolean", default: false },
      "val-split": { type: "string" },
      val: { type: "string" },
      augment: { type: "string" },
      out: { type: "string" },
      resume: { type: "string" },
      seed: { type: "string" },
      threads: { type: "string" },
      workers: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean", default: false },
      "log-every": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const cwd = Deno.env.get("INIT_CWD") || Deno.cwd();
  const from = (path: string) =>
    isAbsolute(path) || path === "fashion-mnist" ? path : resolve(cwd, path);

  const steps = parseNumber("steps", values.steps, Infinity);
  const epochs = parseNumber("epochs", values.epochs, values.steps === undefined ? 1 : Infinity);
  const batchSize = parseNumber("batch", values.batch, 16);
  const lr = parseNumber("lr", values.lr, 1e-4, { integer: false });
  // 1024 keeps a batch of 16 images and its activations (~20 MB per 224 image) within Wasm32.
  const size = parseNumber("size", values.size, 224, { min: 16, max: 1024 });
  // A seed is one 32-bit word (the model's, the loader's and the split's generators).
  const seed = parseNumber("seed", values.seed, 0, { min: 0, max: 2 ** 32 - 1 });
  const valSplit = parseNumber("val-split", values["val-split"], 0.1, {
    integer: false,
    max: 1,
    belowMax: true,
  });
  const limit = parseNumber("limit", values.limit, Infinity, { min: 2 });
  const cores = navigator.hardwareConcurrency || 1;
  const threads = Math.min(parseNumber("threads", values.threads, cores), cores);
  const workers = parseNumber("workers", values.workers, Math.min(2, cores), { min: 0 });
  const logEvery = parseNumber("log-every", values["log-every"], values.json ? 1 : 10);
  const optimizerName = values.optimizer ?? "adamw";
  if (!OPTIMIZERS.includes(optimizerName)) {
    throw new UsageError(`--optimizer must be adamw, adam or sgd, got "${optimizerName}"`);
  }
  const variant = values.variant ?? "seed";
  if (variant !== "seed" && variant !== "torchvision") {
    throw new UsageError(`--variant must be seed or torchvision, got "${variant}"`);
  }
  const augment = (values.augment ?? "torchvision") as Augmentation;
  if (!["torchvision", "flip", "none"].includes(augment)) {
    throw new UsageError(`--augment must be torchvision, flip or none, got "${augment}"`);
  }
  const auxLogits = !values["no-aux"];
  if (auxLogits && (size < 223 || size > 270)) {
    throw new UsageError(
      `--size ${size} does not fit the aux heads (they need 223 to 270): add --no-aux or use --size 224`,
    );
  }
  const trainable = values.trainable?.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (values.weights && values.resume) {
    throw new UsageError("--weights and --resume both give starting weights: pass one of them");
  }
  const out = from(values.out ?? "best.pth");
  const last = lastPath(out);
  const json = values.json;
  const log = (record: Record<string, unknown>) => json && console.log(JSON.stringify(record));
  const say = (line: string) => !json && console.log(line);
  const note = (line: string) => console.error(line);

  // A run that cannot save should fail now, not after its first epoch.
  const existing = await Deno.stat(out).catch(() => null);
  if (existing?.isDirectory) {
    throw new UsageError(
      `--out ${values.out} is a folder: expected a file name such as ${values.out}/best.pth`,
    );
  }
  const probe = `${out}.probe-${Deno.pid}`;
  try {
    await Deno.writeFile(probe, new Uint8Array(0));
    await Deno.remove(probe);
  } catch (error) {
    throw new UsageError(
      `Cannot write next to --out ${values.out ?? "best.pth"}: ${
        (error as Error).message.replace(/ \(os error \d+\).*$/, "")
      }: expected an existing folder this user can write to`,
    );
  }

  // Data.
  const opened = await openDataset(from(positionals[0]), { split: "train" });
  for (const warning of opened.warnings) note(`Warning: ${warning}`);
  const classes = opened.dataset.classes;
  if (classes.length < 2) {
    throw new UsageError(
      `${positionals[0]} has ${classes.length} class (${
        classes.join(", ")
      }): a classifier needs at least 2 class folders`,
    );
  }
  await checkSharedClasses(out, classes);
  let trainSet: Dataset = limitDataset(opened.dataset, limit, seed);
  let valSet: Dataset | null = null;
  if (values.val !== undefined) {
    const val = await openDataset(from(values.val), {
      split: opened.kind === "idx" ? "test" : "train",
    });
    for (const warning of val.warnings) note(`Warning (validation): ${warning}`);
    if (val.dataset.classes.join("\n") !== classes.join("\n")) {
      throw new UsageError(
        `The validation classes (${
          val.dataset.classes.join(", ")
        }) differ from the training classes (${
          classes.join(", ")
        }): expected the same class folders`,
      );
    }
    valSet = limitDataset(val.dataset, limit, seed + 1);
  } else if (valSplit > 0) {
    const split = splitDataset(trainSet, { valFraction: valSplit, seed });
    if (split.val.length === 0) {
      note(
        `Warning: --val-split ${valSplit} of ${trainSet.length} images leaves no validation image`,
      );
    } else valSet = split.val;
    trainSet = split.train;
  }
  const mean = IMAGENET_MEAN, std = IMAGENET_STD;
  let skipped = 0;
  const onSkip = (file: { path: string; reason: string }) => {
    skipped++;
    note(`Skipped ${file.path}: ${file.reason}`);
  };
  const trainLoader = new DataLoader(trainSet, {
    transform: trainTransform(augment, { size, mean, std }),
    batchSize,
    shuffle: true,
    seed,
    workers,
    persistentWorkers: true,
    onSkip,
  });
  const valLoader = valSet &&
    new DataLoader(valSet, {
      transform: validationTransform({ size, mean, std }),
      batchSize,
      workers,
      persistentWorkers: true,
      onSkip,
    });

  // Model and optimizer.
  const model = await GoogLeNet.create({
    numClasses: classes.length,
    auxLogits,
    variant,
    initWeights: true,
    seed,
    threads,
    backend: "wasm",
    ...(trainable?.length ? { trainable } : {}),
  });
  const shutdown: (() => void)[] = [() => trainLoader.close(), () => valLoader?.close()];
  try {
    const start = values.resume ?? values.weights;
    let progress: Progress & { epochBatches: number } = {
      optimizer: optimizerName,
      epoch: 0,
      step: 0,
      bestAccuracy: null,
      epochBatches: 0,
    };
    const optimizer: Optimizer = optimizerName === "sgd"
      ? new SGD(model, { lr, momentum: 0.9 })
      : optimizerName === "adam"
      ? new Adam(model, { lr })
      : new AdamW(model, { lr });
    if (start) {
      const path = from(start);
      const stateDict = await loadWeights(path);
      const fit = fitCheckpoint(stateDict, {
        variant,
        numClasses: classes.length,
        auxLogits,
        reinitHead: (trainable?.length ?? 0) > 0 && !values.resume,
        name: start,
        modelKeys: model.stateDict().keys(),
      });
      for (const line of fit.notes) note(`Note: ${line}`);
      model.loadStateDict(fit.stateDict, { strict: fit.missing.length === 0 });
      if (values.resume) {
        const sidecar = await readSidecar(path);
        if (sidecar.progress) {
          checkCommandProgress(path, sidecar.progress);
          if (sidecar.progress.optimizer !== optimizerName) {
            throw new UsageError(
              `${start} was trained with --optimizer ${sidecar.progress.optimizer}, not ${optimizerName}: pass --optimizer ${sidecar.progress.optimizer} to resume it`,
            );
          }
          progress = { ...sidecar.progress };
        }
        if (sidecar.optimizer) optimizer.loadStateDict(sidecar.optimizer);
        // The learning rate given now wins over the saved one when given.
        if (values.lr !== undefined) optimizer.lr = lr;
        // Dropout continues its stream, as in a run that was not stopped (older sidecars: from the seed).
        if (progress.dropoutState) model.dropoutState = progress.dropoutState;
        if (progress.epochBatches > 0) checkEpochPosition(start, progress, trainLoader, seed);
        if (progress.epochBatches > 0 && progress.epochImages === undefined) {
          note(
            `Note: ${sidecarPath(start)} does not record the loss of the batches of epoch ${
              progress.epoch + 1
            } done (an older sidecar): that epoch's train loss and accuracy cover this run's batches`,
          );
        }
        note(
          `Resuming ${start}: ${progress.step} steps, ${progress.epoch} epochs done${
            progress.epochBatches > 0
              ? `, ${progress.epochBatches} of the ${trainLoader.length} batches of epoch ${
                progress.epoch + 1
              } done`
              : ""
          }${
            progress.bestAccuracy === null
              ? ""
              : `, best validation accuracy ${(100 * progress.bestAccuracy).toFixed(2)} %`
          }`,
        );
      }
    }
    checkCountRoom(values.resume ?? null, progress, trainLoader, { steps, epochs });
    // A resumed run's unfinished epoch goes on from the batch after the last one trained on.
    trainLoader.seek(progress.epoch, progress.epochBatches);
    const classesFile: ClassesFile = { classes: [...classes], variant, size, mean, std };
    const save = async (path: string) => {
      await saveCheckpoint(path, model.stateDict(), {
        classes: classesFile,
        optimizer: optimizer.stateDict(),
        progress: {
          ...progress,
          dropoutState: model.dropoutState,
          size,
          auxLogits,
          augment,
          batch: batchSize,
          seed,
          trainImages: trainSet.length,
        },
      });
    };

    let interrupted = false;
    const onSigint = () => {
      if (interrupted) Deno.exit(130);
      interrupted = true;
      note("\nInterrupted: saving a checkpoint after this step (Ctrl-C again to quit without it)");
    };
    Deno.addSignalListener("SIGINT", onSigint);
    shutdown.push(() => Deno.removeSignalListener("SIGINT", onSigint));

    say(
      `Training the ${variant} GoogLeNet (${
        auxLogits ? "aux heads" : "no aux heads"
      }, ${size}x${size}) on ${opened.description}`,
    );
    say(
      `${trainSet.length} training and ${
        valSet?.length ?? 0
      } validation images, ${classes.length} classes, ` +
        `batch ${batchSize}, ${optimizerName} lr ${optimizer.lr}, ${threads} thread(s), augment ${augment}`,
    );
    log({
      type: "start",
      classes,
      train: trainSet.length,
      val: valSet?.length ?? 0,
      variant,
      auxLogits,
      size,
      batch: batchSize,
      optimizer: optimizerName,
      lr: optimizer.lr,
      threads,
      step: progress.step,
      epoch: progress.epoch,
    });
    const tty = !json && Deno.stderr.isTerminal();
    const encoder = new TextEncoder();
    let runSteps = 0;
    let exitCode = 0;
    for (let e = 0; e < epochs && runSteps < steps && !interrupted; e++) {
      const epoch = trainLoader.epoch;
      model.train();
      const epochStart = performance.now();
      // This run's images (its speed); the epoch's loss and accuracy go on from the batches
      // done before it (resumed), as an uninterrupted run reports them.
      let images = 0;
      let epochImages = progress.epochImages ?? 0;
      let correct = progress.epochCorrect ?? 0, lossSum = progress.epochLoss ?? 0;
      let windowLoss = 0, windowCorrect = 0, windowImages = 0, windowStart = performance.now();
      // Batches of the epoch done before this run (resumed), and where this run will stop in it.
      const first = progress.epochBatches;
      const total = Math.min(trainLoader.length, first + steps - runSteps);
      let stopped = false;
      for await (const { input, labels, batchIndex } of trainLoader) {
        optimizer.zeroGrad();
        const result = await model.backward(input, labels);
        if (!Number.isFinite(result.loss)) {
          note(`Error: the loss is ${result.loss} at step ${progress.step + 1}: lower --lr`);
          exitCode = 1;
          interrupted = stopped = true;
          break;
        }
        await optimizer.step();
        progress.step++;
        runSteps++;
        // A batch whose images were all skipped is not yielded: its position still counts.
        const batches = progress.epochBatches = batchIndex + 1;
        const predicted = argmaxRows(result.logits);
        let hits = 0;
        for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) hits++;
        images += labels.length;
        progress.epochImages = epochImages += labels.length;
        progress.epochCorrect = correct += hits;
        progress.epochLoss = lossSum += result.loss * labels.length;
        windowLoss += result.loss * labels.length;
        windowCorrect += hits;
        windowImages += labels.length;
        const elapsed = (performance.now() - epochStart) / 1000;
        if (tty) {
          const line = `\repoch ${epoch + 1} ${bar(batches, total)} ${batches}/${total} ` +
            `${(images / elapsed).toFixed(1)} img/s loss ${(lossSum / epochImages).toFixed(4)} ` +
            `acc ${(100 * correct / epochImages).toFixed(1)} %`;
          await Deno.stderr.write(encoder.encode(line));
        }
        if (progress.step % logEvery === 0 || batches === total) {
          const seconds = (performance.now() - windowStart) / 1000;
          log({
            type: "step",
            epoch: epoch + 1,
            step: progress.step,
            loss: round(windowLoss / windowImages, 6),
            mainLoss: round(result.mainLoss, 6),
            accuracy: round(windowCorrect / windowImages),
            lr: optimizer.lr,
            imagesPerSecond: round(windowImages / seconds, 2),
          });
          if (!json && !tty) {
            say(
              `epoch ${epoch + 1} step ${progress.step} (${batches}/${total}): loss ${
                (windowLoss / windowImages).toFixed(4)
              }, accuracy ${(100 * windowCorrect / windowImages).toFixed(1)} %, ${
                (windowImages / seconds).toFixed(1)
              } images/s`,
            );
          }
          windowLoss = windowCorrect = windowImages = 0;
          windowStart = performance.now();
        }
        if (interrupted || runSteps >= steps) {
          stopped = true;
          break;
        }
      }
      if (tty) await Deno.stderr.write(encoder.encode("\n"));
      const trainSeconds = (performance.now() - epochStart) / 1000;
      if (exitCode !== 0) break;
      const epochDone = !stopped || progress.epochBatches === trainLoader.length;
      const epochBatches = epochDone ? trainLoader.length : progress.epochBatches;
      if (epochDone) {
        progress.epoch = epoch + 1;
        progress.epochBatches = progress.epochImages = progress.epochCorrect = 0;
        progress.epochLoss = 0;
      }
      if (interrupted) break;
      const val = valLoader
        ? await evaluateModel(model, valLoader, {
          onBatch: tty
            ? (done) =>
              void Deno.stderr.writeSync(
                encoder.encode(
                  `\rvalidating ${bar(done, valSet!.length)} ${done}/${valSet!.length}`,
                ),
              )
            : undefined,
        })
        : null;
      if (tty && val) await Deno.stderr.write(encoder.encode("\n"));
      let saved: string | null = null;
      if (val === null || progress.bestAccuracy === null || val.accuracy > progress.bestAccuracy) {
        if (val) progress.bestAccuracy = val.accuracy;
        await save(out);
        saved = out;
      }
      await save(last);
      const record = {
        type: "epoch",
        epoch: epoch + 1,
        complete: epochDone,
        batches: epochBatches,
        step: progress.step,
        trainLoss: round(lossSum / epochImages, 6),
        trainAccuracy: round(correct / epochImages),
        trainImagesPerSecond: round(images / trainSeconds, 2),
        valLoss: val ? round(val.loss, 6) : null,
        valAccuracy: val ? round(val.accuracy) : null,
        valImagesPerSecond: val ? round(val.count / val.seconds, 2) : null,
        seconds: round(trainSeconds + (val?.seconds ?? 0), 1),
        saved,
        skipped,
      };
      log(record);
      say(
        `epoch ${epoch + 1}${epochDone ? "" : " (partial)"}: train loss ${
          record.trainLoss.toFixed(4)
        }, ` +
          `accuracy ${
            (100 * record.trainAccuracy).toFixed(1)
          } % (${record.trainImagesPerSecond} images/s)` +
          (val
            ? `; validation loss ${val.loss.toFixed(4)}, accuracy ${
              (100 * val.accuracy).toFixed(2)
            } % ` +
              `(${record.valImagesPerSecond} images/s)`
            : "") +
          `; ${
            saved ? `saved ${saved}` : `best stays ${(100 * progress.bestAccuracy!).toFixed(2)} %`
          }` +
          (skipped ? `; ${skipped} image(s) skipped` : ""),
      );
    }
    if (interrupted && exitCode === 0) {
      await save(last);
      log({ type: "interrupted", step: progress.step, saved: last });
      note(`Saved ${last} (step ${progress.step}); continue with --resume ${last}`);
      return 130;
    }
    return exitCode;
  } finally {
    for (const stop of shutdown) stop();
    await model.dispose();
  }
}

if (import.meta.main) await runCommand(main, 2);
