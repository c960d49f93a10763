/**
 * The classify command:
 *
 *   deno task classify <image>... [--weights FILE] [--variant seed|torchvision]
 *                      [--top 5] [--json] [--threads N] [--batch 8]
 *
 * Images are run in batches; it prints a table (or JSON), the time per image
 * and, for long runs, a progress line on stderr.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { classifyBatch, GoogLeNet, GoogLeNetError, loadWeights } from "../mod.ts";
import type { StateDict } from "../src/weights/mod.ts";

const USAGE = `Usage: deno task classify <image>... [--weights FILE] [--variant seed|torchvision]
                           [--top 5] [--json] [--threads N] [--batch 8]

  --weights FILE   a PyTorch .pth/.pt or .safetensors state dict; without it the model runs on
                   seeded random weights and its predictions mean nothing
  --variant NAME   "seed" (the project's reference) or "torchvision"; guessed from the weights
  --top K          classes per image (default 5)
  --json           print JSON instead of a table
  --threads N      threads (default: all cores)
  --batch N        images per forward pass (default 8)`;

const NO_WEIGHTS =
  `Note: no --weights given, so the model has random initial weights and these predictions
are meaningless. For real ImageNet predictions use torchvision's pretrained GoogLeNet:
  python3 -c "import torchvision; torchvision.models.googlenet(weights='DEFAULT')"
then pass ~/.cache/torch/hub/checkpoints/googlenet-1378be20.pth with --weights.`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new GoogLeNetError(`--${name} must be a positive integer, got "${value}"`);
  }
  return n;
}

/** Picks the model definition a state dict was saved from. */
function modelOptions(sd: StateDict | null, variant: string | undefined) {
  const name = variant ?? (sd?.has("conv1.bn.running_mean") ? "torchvision" : "seed");
  if (name !== "seed" && name !== "torchvision") {
    throw new GoogLeNetError(`--variant must be "seed" or "torchvision", got "${name}"`);
  }
  const fc = sd?.get("fc.weight");
  return {
    variant: name as "seed" | "torchvision",
    numClasses: fc?.shape[0] ?? 1000,
    // torchvision's files carry untrained aux heads that its googlenet() drops; the seed's are used if present.
    auxLogits: name === "seed" && (sd?.has("aux1.fc2.weight") ?? false),
  };
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      weights: { type: "string" },
      variant: { type: "string" },
      top: { type: "string" },
      json: { type: "boolean", default: false },
      threads: { type: "string" },
      batch: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const top = positiveInt("top", values.top, 5);
  const batch = positiveInt("batch", values.batch, 8);
  const threads = values.threads === undefined
    ? undefined
    : positiveInt("threads", values.threads, 1);
  const stateDict = values.weights ? await loadWeights(values.weights) : null;
  const options = modelOptions(stateDict, values.variant);
  const model = await GoogLeNet.create({
    ...options,
    threads,
    ...(stateDict ? { stateDict } : {}),
  });
  if (!stateDict) console.error(NO_WEIGHTS + "\n");
  try {
    const results: { image: string; predictions: unknown[] }[] = [];
    const start = performance.now();
    for (let i = 0; i < positionals.length; i += batch) {
      const images = positionals.slice(i, i + batch);
      const rows = await classifyBatch(model, images, { top });
      images.forEach((image, j) => results.push({ image, predictions: rows[j] }));
      if (positionals.length > batch) {
        const done = Math.min(i + batch, positionals.length);
        const rate = done / ((performance.now() - start) / 1000);
        await Deno.stderr.write(
          new TextEncoder().encode(
            `\r${done}/${positionals.length} images, ${rate.toFixed(1)} images/s`,
          ),
        );
      }
    }
    if (positionals.length > batch) console.error();
    const msPerImage = (performance.now() - start) / positionals.length;
    if (values.json) {
      console.log(JSON.stringify({ variant: options.variant, msPerImage, results }, null, 2));
    } else {
      for (const { image, predictions } of results) {
        console.log(image);
        for (
          const [rank, p]
            of (predictions as { index: number; label: string; probability: number }[]).entries()
        ) {
          console.log(
            `  ${rank + 1}. ${
              (100 * p.probability).toFixed(2).padStart(6)
            } %  ${p.label} (${p.index})`,
          );
        }
      }
      console.log(
        `${positionals.length} image(s), ${msPerImage.toFixed(1)} ms per image ` +
          `(${options.variant} variant, ${model.backend.kind}, ${model.backend.threads} thread(s), decoding included)`,
      );
    }
    return 0;
  } finally {
    await model.dispose();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (
      !(error instanceof GoogLeNetError || error instanceof RangeError ||
        error instanceof TypeError)
    ) throw error;
    console.error(`Error: ${error.message}`);
    Deno.exit(1);
  }
}
