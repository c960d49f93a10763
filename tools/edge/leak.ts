/**
 * Runs many sequential inferences on one model and prints, as one JSON line,
 * the Wasm memory size and the JS heap (`heapUsed + external` after a full
 * GC) after a warm-up and at the end, plus the resident set size. Run by
 * `tests/edge_memory.test.ts` with `--v8-flags=--expose-gc`:
 *
 * ```sh
 * deno run --no-prompt --allow-read=src --v8-flags=--expose-gc tools/edge/leak.ts 1000 1
 * ```
 *
 * Arguments: inferences (default 1000) and threads (default 1).
 *
 * @module
 */

const { GoogLeNet } = await import("../../mod.ts");
const { deterministicInput } = await import("../deterministic.ts");

const runs = Number(Deno.args[0] ?? 1000);
const threads = Number(Deno.args[1] ?? 1);
const WARMUP = 50;
const gc = (globalThis as { gc?: () => void }).gc;

interface Snapshot {
  after: number;
  wasmBytes: number;
  heapUsed: number;
  external: number;
  rss: number;
}

const model = await GoogLeNet.create({ auxLogits: false, threads });
// Two inputs, so the plan cache and the input copy see more than one tensor.
const inputs = [
  deterministicInput("leak-a", [1, 3, 32, 32]),
  deterministicInput("leak-b", [1, 3, 32, 32]),
];
const first = await model.forward(inputs[0]) as { data: Float32Array };
const snapshots: Snapshot[] = [];
const snapshot = (after: number) => {
  gc?.();
  gc?.();
  const m = Deno.memoryUsage();
  snapshots.push({
    after,
    wasmBytes: model.backend.memoryBytes(),
    heapUsed: m.heapUsed,
    external: m.external,
    rss: m.rss,
  });
};
let same = true;
const started = performance.now();
for (let i = 1; i <= runs; i++) {
  const out = await model.forward(inputs[i % 2]) as { data: Float32Array };
  if (i % 2 === 0 && !out.data.every((v, j) => Object.is(v, first.data[j]))) same = false;
  if (i === WARMUP || i === runs) snapshot(i);
}
const ms = performance.now() - started;
await model.dispose();
console.log(
  JSON.stringify({ runs, threads, gc: gc !== undefined, same, msPerRun: ms / runs, snapshots }),
);
