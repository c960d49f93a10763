/**
 * JPEG photo to top-5, end to end (issue 16 item 4): `classifyBatch` on 64
 * JPEG photos of mixed sizes (320-2048 px, tools/photo_set.ts, made by
 * Pillow from skimage's photos at run time) as file paths, against the model
 * alone on the same images already preprocessed (`model.forward` on batches
 * of 8, the same batches `classifyBatch` runs). On 1 and 2 kernel threads:
 * - `classifyBatch`, `decodeWorkers: 1` (the default: a worker decoding the
 *   next batch while the kernels run the current one);
 * - `classifyBatch`, `decodeWorkers: 0` (every image decoded on the calling
 *   thread between batches, the path before the pipeline);
 * - `classifyBatch`, `draft: true`, `decodeWorkers: 1` (the fast path).
 * The configurations run in turn within each round, the order rotated from
 * round to round (the machine is shared and its load moves); the table gives
 * the median images/s of each and the median of the per-round ratios to the
 * model alone (goal of the pipeline: >= 85 %; a line per thread count says
 * whether the median meets it), and the CPU time per image
 * of the whole process (`process.cpuUsage`: the calling thread, kernel and
 * decode workers), which the load of a shared machine skews less than wall
 * time: its excess over the model's is what decoding costs, whichever
 * thread pays it. Every figure is printed with
 * the host line. `PIPELINE_ROUNDS` sets the rounds (default 5).
 *
 * Run: `deno task bench:pipeline`.
 *
 * @module
 */

import process from "node:process";
import { classifyBatch, GoogLeNet, preprocessBatch, type Tensor } from "../mod.ts";
import { makePhotoSet } from "../tools/photo_set.ts";
import { hostLine, startRun } from "./_record.ts";

const ROUNDS = Number(Deno.env.get("PIPELINE_ROUNDS") ?? 5);
const BATCH = 8;

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const info = await startRun();
const dir = await Deno.makeTempDir({ prefix: "classify_pipeline_bench_" });
try {
  const photos = await makePhotoSet(dir, 64);
  if (typeof photos === "string") {
    console.log(`SKIPPED: cannot make the photos: ${photos}`);
  } else {
    await bench(photos);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

async function bench(photos: string[]): Promise<void> {
  const batches: Tensor[] = [];
  for (let i = 0; i < photos.length; i += BATCH) {
    batches.push(await preprocessBatch(photos.slice(i, i + BATCH)));
  }
  const lines: string[] = [];
  const goals: string[] = [];
  for (const threads of [1, 2]) {
    const model = await GoogLeNet.create({ threads, auxLogits: false });
    const configs: [string, () => Promise<unknown>][] = [
      ["model alone (preprocessed tensors)", async () => {
        for (const batch of batches) await model.forward(batch);
      }],
      ["classifyBatch, decodeWorkers: 1", () => classifyBatch(model, photos, { decodeWorkers: 1 })],
      ["classifyBatch, decodeWorkers: 0", () => classifyBatch(model, photos, { decodeWorkers: 0 })],
      [
        "classifyBatch, draft: true, decodeWorkers: 1",
        () => classifyBatch(model, photos, { draft: true, decodeWorkers: 1 }),
      ],
    ];
    for (const [, run] of configs) await run(); // warm-up: plans, workers, Wasm
    const rates: number[][] = configs.map(() => []);
    const cpu: number[][] = configs.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < configs.length; k++) {
        const c = (k + round) % configs.length;
        const start = performance.now();
        const startCpu = process.cpuUsage();
        await configs[c][1]();
        rates[c].push(photos.length / ((performance.now() - start) / 1000));
        const used = process.cpuUsage(startCpu);
        cpu[c].push((used.user + used.system) / 1000 / photos.length);
      }
      console.log(
        `${threads} thread(s), round ${round + 1}/${ROUNDS}: ` +
          rates.map((r) => r.at(-1)!.toFixed(1)).join(" / ") + " images/s",
      );
    }
    await model.dispose();
    // The goal's row: classifyBatch with its default decode worker.
    const shares = rates[1].map((r, i) => (r / rates[0][i]) * 100);
    const share = median(shares);
    goals.push(
      `- ${threads} thread(s): ${share.toFixed(1)} % (rounds ${Math.min(...shares).toFixed(1)}-` +
        `${Math.max(...shares).toFixed(1)} %; the model's CPU per image over ` +
        `classifyBatch's: ${
          ((median(cpu[0]) / median(cpu[1])) * 100).toFixed(1)
        } %, the bound when both cores are busy): ` +
        (share >= 85 ? "met" : "NOT met"),
    );
    for (let c = 0; c < configs.length; c++) {
      const ratio = c === 0
        ? ""
        : `${(median(rates[c].map((r, i) => r / rates[0][i])) * 100).toFixed(0)} %`;
      lines.push(
        `| ${threads} | ${configs[c][0]} | ${median(rates[c]).toFixed(1)} | ${
          Math.min(...rates[c]).toFixed(1)
        }-${Math.max(...rates[c]).toFixed(1)} | ${ratio} | ${median(cpu[c]).toFixed(1)} |`,
      );
    }
  }
  info.loadAverage.end = Deno.loadavg().map((v) => Math.round(v * 100) / 100);
  console.log(
    `\nJPEG -> top-5 on 64 photos (320-2048 px), batches of ${BATCH}, median of ${ROUNDS} alternating rounds`,
  );
  console.log(hostLine(info));
  console.log(
    "| threads | run | images/s | range | of model alone (median of rounds) | CPU ms / image (all threads) |",
  );
  console.log("| ---: | --- | ---: | ---: | ---: | ---: |");
  for (const line of lines) console.log(line);
  console.log(
    "\nGoal of the pipeline (issue 16): classifyBatch (decodeWorkers: 1) at >= 85 % of the model " +
      "alone's images/s",
  );
  for (const line of goals) console.log(line);
}
