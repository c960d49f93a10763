/**
 * `deno task bench`: GoogLeNet batch 1 and 8 at 224x224 on this library, one
 * thread and all cores, with the same weights and input as the peers, plus
 * the kernel peak probe and a per-layer profile. Prints a summary table
 * (see bench/_report.ts) when the run ends.
 *
 * @module
 */

import { GoogLeNet, type Tensor } from "../mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { countMacs } from "../src/graph/cost.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { note, printReport, record } from "./_report.ts";

const CORES = navigator.hardwareConcurrency;
const SHAPES = { "batch 1": [1, 3, 224, 224], "batch 8": [8, 3, 224, 224] } as const;

async function model(threads: number): Promise<GoogLeNet> {
  const m = await GoogLeNet.create({ auxLogits: false, threads });
  m.loadStateDict(
    deterministicStateDict([...m.stateDict()].map(([k, t]) => [k, t.shape] as const)),
  );
  return m;
}

const single = await model(1);
const multi = CORES > 1 ? await model(CORES) : null;
const plan = single.plan([1, 3, 224, 224]);
const macs = countMacs(plan);
const gflop = (2 * macs.total) / 1e9;
const inputs = Object.fromEntries(
  Object.entries(SHAPES).map(([g, shape]) => [g, deterministicInput(`bench ${g}`, shape)]),
) as Record<keyof typeof SHAPES, Tensor>;

// Same logits on every configuration before anything is timed.
const reference = (await single.forward(inputs["batch 1"])) as Tensor;
if (multi) {
  const other = (await multi.forward(inputs["batch 1"])) as Tensor;
  const diff = Math.max(...other.data.map((v, i) => Math.abs(v - reference.data[i])));
  if (diff > 1e-5) throw new Error(`1-thread and ${CORES}-thread logits differ by ${diff}`);
}

for (const [group, input] of Object.entries(inputs)) {
  const images = input.shape[0];
  const configs: [string, GoogLeNet][] = [["googlenet-wasm, 1 thread", single]];
  if (multi) configs.push([`googlenet-wasm, ${CORES} threads`, multi]);
  for (const [name, m] of configs) {
    Deno.bench({
      name,
      group,
      baseline: m === single,
      n: group === "batch 1" ? 30 : 6,
      warmup: 2,
      async fn(b) {
        b.start();
        const start = performance.now();
        await m.forward(input);
        record(group, name, images, performance.now() - start, m === single);
        b.end();
      },
    });
  }
}

// Peak: the micro-kernel's instruction mix on L1-resident data, one thread.
const backend = single.backend as WasmBackend;
const PEAK_ITERS = 2_000_000;
let peakGflops = 0;
Deno.bench({
  name: "peak probe (12 x f32x4 multiply-add per step)",
  group: "peak",
  n: 20,
  warmup: 3,
  fn(b) {
    b.start();
    const start = performance.now();
    backend.kernels.fma_peak(PEAK_ITERS, 64);
    const ms = performance.now() - start;
    b.end();
    peakGflops = Math.max(peakGflops, (PEAK_ITERS * 96) / ms / 1e6);
  },
});

globalThis.addEventListener("unload", () => {
  note(
    `Kernel ISA: ${backend.isa}; cores: ${CORES}; peak probe: ${
      peakGflops.toFixed(1)
    } GFLOP/s (one thread)`,
  );
  note(
    `Multiply-adds per image: ${macs.total} (` +
      Object.entries(macs.byKind).map(([k, v]) => `${k} ${(100 * v / macs.total).toFixed(1)} %`)
        .join(", ") +
      ")",
  );
  printReport(gflop);
});
