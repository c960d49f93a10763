/**
 * The optimizer step alone, same run: AdamW (and SGD with momentum) over
 * every parameter of the seed variant with aux heads on one thread, in the
 * Wasm kernels (`asm/optim.ts`, state in Wasm memory) against the
 * TypeScript rules (gradients converted to PyTorch's layout, then updated in
 * JavaScript), each followed by the same Wasm repack. Two models, one per
 * path, stepping in alternating rounds (which goes first alternates) on the
 * gradients of one backward pass (a step's cost does not depend on their
 * values). Per image means per image of a batch of 16, as in
 * bench/training.ts's profile.
 *
 *   deno run --config deno.dev.jsonc -A bench/optimizer_step.ts
 *
 * `BENCH_OPT_ROUNDS` (default 7) and `BENCH_OPT_THREADS` (default 1).
 *
 * @module
 */

import { AdamW, GoogLeNet, type Optimizer, SGD } from "../mod.ts";
import { setOptimizerInWasm } from "../src/model/optim_state.ts";
import { WasmBackend } from "../src/backend/wasm/backend.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { hostLine, loadAverage, startRun } from "./_record.ts";

const ROUNDS = Number(Deno.env.get("BENCH_OPT_ROUNDS") ?? 7);
const THREADS = Number(Deno.env.get("BENCH_OPT_THREADS") ?? 1);
const BATCH = 16;

async function model(): Promise<GoogLeNet> {
  const m = await GoogLeNet.create({ initWeights: true, threads: THREADS, seed: 3 });
  m.train();
  await m.backward(deterministicInput("optimizer bench", [2, 3, 224, 224]), [1, 2]);
  return m;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Wall time of the kernels' weight plans, by kind: "optim_step" or the repack. */
const kernelMs = { optim: 0, repack: 0 };
const runWeights = WasmBackend.prototype.runWeights;
WasmBackend.prototype.runWeights = async function (plan) {
  const t0 = performance.now();
  await runWeights.call(this, plan);
  kernelMs[plan.ops[0]?.kind === "optim_step" ? "optim" : "repack"] += performance.now() - t0;
};

async function timed(wasm: boolean, f: () => Promise<void>): Promise<number> {
  setOptimizerInWasm(wasm);
  try {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  } finally {
    setOptimizerInWasm(true);
  }
}

const info = await startRun();
const models = { wasm: await model(), ts: await model() };
console.log(
  `threads ${THREADS}, ${ROUNDS} rounds after a warm-up, ms per step (per image of ${BATCH})`,
);
try {
  const make: [string, (m: GoogLeNet) => Optimizer][] = [
    ["AdamW", (m) => new AdamW(m, { lr: 1e-4 })],
    [
      "SGD momentum 0.9, wd 1e-4",
      (m) => new SGD(m, { lr: 1e-3, momentum: 0.9, weightDecay: 1e-4 }),
    ],
  ];
  for (const [name, build] of make) {
    const opts = { wasm: build(models.wasm), ts: build(models.ts) };
    const step = { wasm: [] as number[], ts: [] as number[] };
    const repack = { wasm: [] as number[], ts: [] as number[] };
    const kernels = { wasm: [] as number[], ts: [] as number[] };
    const packs = { wasm: [] as number[], ts: [] as number[] };
    for (let round = 0; round <= ROUNDS; round++) {
      const order = round % 2 ? (["ts", "wasm"] as const) : (["wasm", "ts"] as const);
      for (const path of order) {
        const m = models[path];
        kernelMs.optim = kernelMs.repack = 0;
        const s = await timed(path === "wasm", () => opts[path].step());
        const { optim, repack: pack } = kernelMs;
        const r = await timed(path === "wasm", () => m.updateParameters(() => {}));
        if (round > 0) {
          step[path].push(s);
          repack[path].push(r);
          kernels[path].push(optim);
          packs[path].push(pack);
        }
      }
    }
    const ratios = step.wasm.map((w, i) => w / step.ts[i]);
    const line = (path: "wasm" | "ts") => {
      const s = median(step[path]), k = median(kernels[path]), p = median(packs[path]);
      const rest = s - k - p;
      return `step ${s.toFixed(0)} ms = ${(s / BATCH).toFixed(2)}/image: update kernels ${
        (k / BATCH).toFixed(2)
      }, repack kernels ${(p / BATCH).toFixed(2)}, TypeScript (update, layout conversion, ` +
        `copies) ${(rest / BATCH).toFixed(2)}; updateParameters(() => {}) alone ${
          median(repack[path]).toFixed(0)
        } ms`;
    };
    console.log(`${name}:`);
    console.log(`  Wasm kernels:     ${line("wasm")}`);
    console.log(`  TypeScript rules: ${line("ts")}`);
    console.log(
      `  Wasm / TypeScript step: median ${median(ratios).toFixed(2)} (range ${
        Math.min(...ratios).toFixed(2)
      }-${Math.max(...ratios).toFixed(2)})`,
    );
  }
} finally {
  await models.wasm.dispose();
  await models.ts.dispose();
  info.loadAverage.end = loadAverage();
  console.log(hostLine(info));
}
