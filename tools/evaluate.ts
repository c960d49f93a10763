/**
 * Evaluates a trained GoogLeNet on a folder of images or on Fashion-MNIST's
 * test files, and draws a training run's loss curve:
 *
 *   deno task evaluate <dir|fashion-mnist> --weights best.pth [--plot confusion.svg]
 *   deno task evaluate --log train.jsonl --curve loss.svg
 *
 * Prints the accuracy, the per-class accuracy and a text confusion matrix;
 * `--plot` writes the confusion matrix as SVG. Class names, input size and
 * normalisation come from `classes.json` next to the weights (the train
 * command writes it). `--log` reads the `--json` output of `deno task train`
 * and `--curve` draws its loss per step (and validation loss per epoch) as SVG.
 *
 * @module
 */

import { readJsonBeside, runCommand, UsageError } from "./_cli.ts";
import { dirname, isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DataLoader, type Dataset, GoogLeNet, loadWeights, validationTransform } from "../mod.ts";
import {
  type ClassesFile,
  classesPath,
  describeCheckpoint,
  writeAtomic,
} from "../src/train/checkpoint.ts";
import { limitDataset, openDataset } from "../src/train/data_source.ts";
import { confusionText, evaluateModel } from "../src/train/evaluate.ts";
import { confusionMatrixSvg, type CurveSeries, lossCurveSvg } from "../src/train/plot.ts";

const USAGE =
  `Usage: deno task evaluate <dir|fashion-mnist> --weights best.pth [--plot confusion.svg] [--split test|train]
                           [--limit N] [--batch 16] [--threads N] [--seed S] [--json]
       deno task evaluate --log train.jsonl --curve loss.svg

  <dir>             one sub-folder of images per class, or a folder of IDX files ("fashion-mnist":
                    /usr/share/datasets/fashion-mnist); IDX folders use the test files unless --split train
  --weights FILE    a checkpoint of deno task train (classes.json next to it gives class names, size
                    and normalisation)
  --plot FILE       the confusion matrix as SVG
  --limit N         evaluate N images (a seeded choice)
  --log FILE        a training run's JSON lines (deno task train --json > train.jsonl)
  --curve FILE      its loss curve as SVG (training loss per step, validation loss per epoch)
  --json            one JSON object on stdout instead of text`;

function positiveInt(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${name} must be an integer ${range}, got "${value}"`);
  }
  return n;
}

/** The loss curve of a `deno task train --json` log. */
async function drawCurve(log: string, curve: string, say: (line: string) => void): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(log);
  } catch (error) {
    throw new UsageError(`Cannot read the log ${log}: ${(error as Error).message}`);
  }
  const train: [number, number][] = [], val: [number, number][] = [];
  for (const [n, line] of text.split("\n").entries()) {
    if (!line.trim().startsWith("{")) continue;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line);
    } catch {
      throw new UsageError(
        `${log} line ${n + 1} is not JSON: expected the output of deno task train --json`,
      );
    }
    if (record.type === "step") train.push([record.step as number, record.loss as number]);
    if (record.type === "epoch" && typeof record.valLoss === "number") {
      val.push([record.step as number, record.valLoss]);
    }
  }
  if (train.length === 0) {
    throw new UsageError(
      `${log} has no step records: expected the output of deno task train --json`,
    );
  }
  const series: CurveSeries[] = [{ name: "training loss", color: "#1f77b4", points: train }];
  if (val.length) series.push({ name: "validation loss", color: "#d62728", points: val });
  await writeAtomic(
    curve,
    new TextEncoder().encode(
      lossCurveSvg(series, { title: `Loss (${log.split("/").pop()})`, logY: true }),
    ),
  );
  say(`Wrote ${curve} (${train.length} training points, ${val.length} validation points)`);
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      weights: { type: "string" },
      plot: { type: "string" },
      split: { type: "string" },
      limit: { type: "string" },
      batch: { type: "string" },
      threads: { type: "string" },
      seed: { type: "string" },
      workers: { type: "string" },
      log: { type: "string" },
      curve: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const curveOnly = positionals.length === 0 && values.log !== undefined;
  if (values.help || (positionals.length !== 1 && !curveOnly)) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const cwd = Deno.env.get("INIT_CWD") || Deno.cwd();
  const from = (path: string) =>
    isAbsolute(path) || path === "fashion-mnist" ? path : resolve(cwd, path);
  const say = (line: string) => !values.json && console.log(line);
  if ((values.log === undefined) !== (values.curve === undefined)) {
    throw new UsageError("--log and --curve go together: --log train.jsonl --curve loss.svg");
  }
  // Pictures go into existing folders: say so now, not after the evaluation.
  for (const out of [values.plot, values.curve]) {
    if (out === undefined) continue;
    const folder = dirname(from(out));
    const stat = await Deno.stat(folder).catch(() => null);
    if (!stat?.isDirectory) {
      throw new UsageError(`Cannot write ${out}: the folder ${folder} does not exist`);
    }
  }
  if (values.log !== undefined) await drawCurve(from(values.log), from(values.curve!), say);
  if (curveOnly) return 0;
  if (values.weights === undefined) {
    throw new UsageError("--weights is required: the checkpoint deno task train wrote (--out)");
  }

  // Every flag checked before the weights and the images are read.
  const split = values.split ?? "test";
  if (split !== "test" && split !== "train") {
    throw new UsageError(`--split must be test or train, got "${split}"`);
  }
  // One 32-bit word, as the train command's: 2^32 would choose --seed 0's images.
  const seed = positiveInt("seed", values.seed, 0, 0, 2 ** 32 - 1);
  const limit = positiveInt("limit", values.limit, Infinity);
  const cores = navigator.hardwareConcurrency || 1;
  const threads = Math.min(positiveInt("threads", values.threads, cores), cores);
  const batchSize = positiveInt("batch", values.batch, 16);
  const workers = positiveInt("workers", values.workers, Math.min(2, cores), 0);

  const weightsPath = from(values.weights);
  const stateDict = await loadWeights(weightsPath);
  const shape = describeCheckpoint(stateDict);
  let info: Partial<ClassesFile> = {};
  const infoPath = classesPath(weightsPath);
  const parsed = await readJsonBeside(infoPath, "the class names next to the weights");
  if (parsed !== null) {
    info = Array.isArray(parsed) ? { classes: parsed } : parsed as Partial<ClassesFile>;
  }
  const opened = await openDataset(from(positionals[0]), { split });
  for (const warning of opened.warnings) console.error(`Warning: ${warning}`);
  const classes = info.classes ?? [...opened.dataset.classes];
  if (classes.join("\n") !== opened.dataset.classes.join("\n")) {
    throw new UsageError(
      `The data set's classes (${
        opened.dataset.classes.join(", ")
      }) differ from the model's in ${infoPath} (${
        classes.join(", ")
      }): expected the class folders the model was trained on`,
    );
  }
  if (shape.numClasses !== classes.length) {
    throw new UsageError(
      `${values.weights} has ${shape.numClasses} classes, the data set ${classes.length}: expected a checkpoint trained on these classes`,
    );
  }
  const dataset: Dataset = limitDataset(opened.dataset, limit, seed);
  const size = info.size ?? 224;
  const model = await GoogLeNet.create({
    numClasses: classes.length,
    variant: shape.variant,
    auxLogits: shape.auxLogits && shape.variant === "seed",
    stateDict,
    threads,
    backend: "wasm",
  });
  let skipped = 0;
  const loader = new DataLoader(dataset, {
    transform: validationTransform({ size, mean: info.mean, std: info.std }),
    batchSize,
    workers,
    onSkip: (file) => {
      skipped++;
      console.error(`Skipped ${file.path}: ${file.reason}`);
    },
  });
  try {
    const tty = !values.json && Deno.stderr.isTerminal();
    const encoder = new TextEncoder();
    const result = await evaluateModel(model, loader, {
      onBatch: tty
        ? (done) => void Deno.stderr.writeSync(encoder.encode(`\r${done}/${dataset.length} images`))
        : undefined,
    });
    if (tty) Deno.stderr.writeSync(encoder.encode("\n"));
    const perClass = result.confusion.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total ? row[i] / total : null;
    });
    if (values.plot !== undefined) {
      const title = `${opened.description.split(" from ")[0]}: accuracy ${
        (100 * result.accuracy).toFixed(2)
      } %`;
      await writeAtomic(
        from(values.plot),
        encoder.encode(confusionMatrixSvg(result.confusion, classes, title)),
      );
    }
    if (values.json) {
      console.log(JSON.stringify({
        weights: values.weights,
        data: opened.description,
        count: result.count,
        accuracy: result.accuracy,
        loss: result.loss,
        perClass: Object.fromEntries(classes.map((c, i) => [c, perClass[i]])),
        confusion: result.confusion,
        imagesPerSecond: result.count / result.seconds,
        skipped,
      }));
    } else {
      say(
        `${opened.description}: ${result.count} images evaluated${
          skipped ? `, ${skipped} skipped` : ""
        }`,
      );
      say(
        `Accuracy ${(100 * result.accuracy).toFixed(2)} % (${
          result.confusion.reduce((a, row, i) => a + row[i], 0)
        }/${result.count}), mean loss ${result.loss.toFixed(4)}, ${
          (result.count / result.seconds).toFixed(1)
        } images/s (${model.backend.threads} thread(s), size ${size})`,
      );
      say("");
      say(confusionText(result.confusion, classes));
      if (values.plot !== undefined) say(`\nWrote ${values.plot}`);
    }
    if (info.classes === undefined) {
      console.error(`Note: no ${infoPath}; class names are the data set's, size ${size}`);
    }
    return 0;
  } finally {
    loader.close();
    await model.dispose();
  }
}

if (import.meta.main) await runCommand(main, 2);
