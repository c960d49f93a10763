/**
 * googlenet-wasm against onnxruntime-web's Wasm EP at batch 1, in alternating
 * rounds in one process (which runs first alternates too), so that a shared
 * host's drift falls on both alike:
 *
 *   deno run --config deno.dev.jsonc --allow-all bench/ratio_ort_web.ts [THREADS] [ROUNDS]
 *
 * Each round times 5 forwards of each: the median wall time of the 5, and the
 * process's CPU time per forward (all threads; time spent waiting for a core
 * while other jobs run does not count), and takes their ratios. Prints the
 * host, the medians and the median and range of the per-round ratios.
 * `googlenet_bench.ts` runs each runtime's iterations in one block instead,
 * minutes apart from the other's.
 *
 * @module
 */

import { GoogLeNet, type Tensor } from "../mod.ts";
import { createOrtWebRunner } from "./peers/mod.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { cpuModel, loadAverage } from "./_record.ts";
import process from "node:process";

const threads = Number(Deno.args[0] ?? 1);
const rounds = Number(Deno.args[1] ?? 15);
const model = await GoogLeNet.create({ backend: "wasm", auxLogits: false, threads });
model.loadStateDict(
  deterministicStateDict([...model.stateDict()].map(([k, t]) => [k, t.shape] as const)),
);
const peer = await createOrtWebRunner(model.stateDict(), { threads });
const input = deterministicInput("bench batch 1", [1, 3, 224, 224]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** The median wall time of 5 runs, and the process's CPU time per run (all its threads). */
async function time(run: () => Promise<unknown>): Promise<[number, number]> {
  const ms: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    await run();
    ms.push(performance.now() - start);
  }
  const used = process.cpuUsage(cpu);
  return [median(ms), (used.user + used.system) / 5000];
}
const runOurs = () => model.forward(input) as Promise<Tensor>;
const runTheirs = () => peer.run(input);
// Warm-up: TurboFan, ORT's arena.
for (let i = 0; i < 3; i++) {
  await runOurs();
  await runTheirs();
}
const ours: [number, number][] = [], theirs: [number, number][] = [];
for (let r = 0; r < rounds; r++) {
  if (r % 2 === 0) {
    ours.push(await time(runOurs));
    theirs.push(await time(runTheirs));
  } else {
    theirs.push(await time(runTheirs));
    ours.push(await time(runOurs));
  }
}
const summary = (which: 0 | 1) => {
  const ratios = ours.map((o, i) => o[which] / theirs[i][which]);
  return `googlenet-wasm ${median(ours.map((o) => o[which])).toFixed(1)} ms, onnxruntime-web wasm ${
    median(theirs.map((t) => t[which])).toFixed(1)
  } ms; ours / theirs per round: median ${median(ratios).toFixed(3)}, range ${
    Math.min(...ratios).toFixed(3)
  }-${Math.max(...ratios).toFixed(3)}`;
};
console.log(
  `host: ${await cpuModel()}, load ${loadAverage()}; ${threads} thread(s), batch 1, ${rounds} ` +
    `alternating rounds\n  wall time: ${summary(0)}\n  process CPU time: ${summary(1)}`,
);
await peer.dispose();
Deno.exit(0);
