/**
 * The classify command:
 *
 *   deno task classify <image>... [--weights torchvision|FILE] [--cache-dir DIR]
 *                      [--variant seed|torchvision] [--top 5] [--json] [--threads N] [--batch 8]
 *
 * Paths are resolved from the directory the command was started in (`deno
 * task` runs tools from the repository root and passes that directory as
 * `INIT_CWD`). `--weights torchvision` downloads torchvision's pretrained
 * GoogLeNet on first use into a cache (src/weights/hub.ts). An image that
 * cannot be read is reported on stderr and the others still print; the exit
 * code is then 1. A successful run writes nothing on stderr unless stderr is
 * a terminal (a download's progress bar, a batch progress line).
 *
 * @module
 */

import { ioReason, readJsonBeside, runCommand, UsageError } from "./_cli.ts";
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  classifyBatch,
  GoogLeNet,
  GoogLeNetError,
  loadWeights,
  type Prediction,
  pretrainedWeights,
} from "../mod.ts";
import { loadImage } from "../src/image/mod.ts";
import type { StateDict } from "../src/weights/mod.ts";

const USAGE = `Usage: deno task classify <image>... [--weights torchvision|FILE] [--cache-dir DIR]
                           [--variant seed|torchvision] [--top 5] [--json] [--threads N] [--batch 8]

  --weights torchvision  torchvision's ImageNet GoogLeNet, downloaded on first use (52 MB) from
                         download.pytorch.org into the cache (GOOGLENET_WASM_WEIGHTS_URL replaces the URL)
  --weights FILE         a PyTorch .pth/.pt (ZIP or legacy format) or .safetensors state dict;
                         without --weights the model has random weights and its predictions mean nothing
  --cache-dir DIR        where downloads are kept (default: $GOOGLENET_WASM_CACHE, else
                         ~/.cache/googlenet-wasm on Linux, ~/Library/Caches/googlenet-wasm on macOS,
                         %LOCALAPPDATA%\\googlenet-wasm on Windows)
  --variant NAME         "seed" (the project's reference) or "torchvision"; guessed from the weights
  --top K                classes per image (default 5)
  --json                 print JSON instead of a table
  --threads N            threads, at most the number of cores (default: all cores)
  --batch N              images per forward pass (default 8)
  --demo                 also classify the repository's sample photo (assets/chelsea.jpg)`;

const NO_WEIGHTS =
  `Note: no --weights given, so the model has random initial weights and these predictions
are meaningless. For real ImageNet predictions add --weights torchvision (torchvision's
pretrained GoogLeNet, downloaded once), or pass a local googlenet-1378be20.pth with --weights.`;

const SAMPLE = new URL("../assets/chelsea.jpg", import.meta.url);

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  }
  return n;
}

/** Picks the model definition a state dict was saved from. */
function modelOptions(sd: StateDict | null, variant: string | undefined) {
  const name = variant ?? (sd?.has("conv1.bn.running_mean") ? "torchvision" : "seed");
  if (name !== "seed" && name !== "torchvision") {
    throw new UsageError(`--variant must be "seed" or "torchvision", got "${name}"`);
  }
  const fc = sd?.get("fc.weight");
  return {
    variant: name as "seed" | "torchvision",
    numClasses: fc?.shape[0] ?? 1000,
    // torchvision's files carry untrained aux heads that its googlenet() drops; the seed's are used if present.
    auxLogits: name === "seed" && (sd?.has("aux1.fc2.weight") ?? false),
  };
}

/** The state dict `--weights` names: pretrained weights (downloaded once) or a file. */
async function readWeights(
  weights: string,
  from: (path: string) => string,
  cacheDir: string | undefined,
): Promise<StateDict> {
  if (weights === "torchvision") {
    try {
      return await loadWeights(await pretrainedWeights("torchvision", { cacheDir }));
    } catch (error) {
      if (!(error instanceof GoogLeNetError)) throw error;
      throw new UsageError(
        `${error.message}. Pass --weights FILE to use a local copy of googlenet-1378be20.pth`,
      );
    }
  }
  const path = from(weights);
  try {
    return await loadWeights(path);
  } catch (error) {
    if (error instanceof GoogLeNetError || !(error instanceof Error)) throw error;
    throw new UsageError(`Cannot read the weights file ${weights}: ${ioReason(error)}`);
  }
}

/**
 * What `deno task train` writes next to its checkpoints: the class names and
 * the input size and normalisation the model was trained with; null when the
 * weights have no classes.json beside them.
 */
async function readClassesFile(
  weights: string,
  from: (path: string) => string,
): Promise<
  { labels: string[]; resize?: number; crop?: number; mean?: number[]; std?: number[] } | null
> {
  const path = from(weights).replace(/[^/]*$/, "classes.json");
  // deno-lint-ignore no-explicit-any
  const parsed: any = await readJsonBeside(path, "the class names next to the weights");
  if (parsed === null) return null;
  const info = Array.isArray(parsed) ? { classes: parsed } : parsed;
  if (!Array.isArray(info?.classes) || info.classes.some((c: unknown) => typeof c !== "string")) {
    throw new UsageError(
      `${path} has no class names: expected {"classes": ["name", ...]} or a list of names`,
    );
  }
  return {
    labels: info.classes,
    ...(typeof info.size === "number" ? { resize: info.size, crop: info.size } : {}),
    ...(Array.isArray(info.mean) && Array.isArray(info.std)
      ? { mean: info.mean, std: info.std }
      : {}),
  };
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      weights: { type: "string" },
      "cache-dir": { type: "string" },
      variant: { type: "string" },
      top: { type: "string" },
      json: { type: "boolean", default: false },
      threads: { type: "string" },
      batch: { type: "string" },
      demo: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const images = [...positionals, ...(values.demo ? ["assets/chelsea.jpg"] : [])];
  if (values.help || images.length === 0) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  // `deno task` runs this from the repository root; INIT_CWD is where the user typed the command.
  const cwd = Deno.env.get("INIT_CWD") || Deno.cwd();
  const from = (path: string) => isAbsolute(path) ? path : resolve(cwd, path);
  const sources = positionals.map(from);
  if (values.demo) sources.push(fileURLToPath(SAMPLE));

  const top = positiveInt("top", values.top, 5);
  const batch = positiveInt("batch", values.batch, 8);
  const cores = navigator.hardwareConcurrency || 1;
  let threads = positiveInt("threads", values.threads, cores);
  if (threads > cores) {
    console.error(
      `Note: --threads ${threads} is more than the ${cores} cores here; using ${cores}`,
    );
    threads = cores;
  }
  const cacheDir = values["cache-dir"] === undefined ? undefined : from(values["cache-dir"]);
  const stateDict = values.weights ? await readWeights(values.weights, from, cacheDir) : null;
  const options = modelOptions(stateDict, values.variant);
  // A checkpoint of deno task train: its class names and preprocessing.
  const trained = stateDict && values.weights !== "torchvision"
    ? await readClassesFile(values.weights!, from)
    : null;
  const model = await GoogLeNet.create({
    ...options,
    threads,
    ...(stateDict ? { stateDict } : {}),
  });
  if (!stateDict) console.error(NO_WEIGHTS + "\n");
  const tty = Deno.stderr.isTerminal();
  try {
    const results: ({ image: string; predictions: Prediction[] } | {
      image: string;
      error: string;
    })[] = [];
    let failed = 0;
    const start = performance.now();
    for (let i = 0; i < images.length; i += batch) {
      // Decode one by one so that an unreadable image is reported alone.
      const decoded = [];
      for (let j = i; j < Math.min(i + batch, images.length); j++) {
        try {
          decoded.push({ image: images[j], pixels: await loadImage(sources[j]) });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          console.error(`Error: ${images[j]}: ${message}`);
          results.push({ image: images[j], error: message });
          failed++;
        }
      }
      if (decoded.length > 0) {
        const rows = await classifyBatch(model, decoded.map((d) => d.pixels), { top, ...trained });
        decoded.forEach(({ image }, j) => results.push({ image, predictions: rows[j] }));
      }
      if (tty && images.length > batch) {
        const done = Math.min(i + batch, images.length);
        const rate = done / ((performance.now() - start) / 1000);
        const line = `\r${done}/${images.length} images, ${rate.toFixed(1)} images/s`;
        await Deno.stderr.write(
          new TextEncoder().encode(line + (done === images.length ? "\n" : "")),
        );
      }
    }
    const classified = images.length - failed;
    const msPerImage = classified ? (performance.now() - start) / classified : 0;
    if (values.json) {
      console.log(JSON.stringify(
        {
          variant: options.variant,
          threads: model.backend.threads,
          msPerImage: Math.round(msPerImage * 10) / 10,
          results,
        },
        null,
        2,
      ));
    } else {
      for (const result of results) {
        if (!("predictions" in result)) continue;
        console.log(result.image);
        for (const [rank, p] of result.predictions.entries()) {
          const percent = (100 * p.probability).toFixed(2).padStart(6);
          console.log(`  ${rank + 1}. ${percent} %  ${p.label} (${p.index})`);
        }
      }
      console.log(
        `${classified} image(s), ${msPerImage.toFixed(1)} ms per image ` +
          `(${options.variant} variant, ${model.backend.kind}, ${model.backend.threads} thread(s), decoding included)` +
          (failed ? `; ${failed} could not be read` : ""),
      );
    }
    return failed ? 1 : 0;
  } finally {
    await model.dispose();
  }
}

if (import.meta.main) await runCommand(main, 1);
