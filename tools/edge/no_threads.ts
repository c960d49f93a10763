/**
 * An edge-like global scope: no `Worker`, no `SharedArrayBuffer`, no
 * `navigator.gpu` (as on Cloudflare Workers and in some embedders). The
 * globals are removed before the library is imported, then
 * `GoogLeNet.create({ threads: 4 })` must run single-threaded on Wasm.
 * Prints one JSON line: what the model chose and the logits of a
 * deterministic 224x224 input. Run by `tests/edge_entry.test.ts`:
 *
 * ```sh
 * deno run --no-prompt --allow-read=src,tools tools/edge/no_threads.ts
 * ```
 *
 * @module
 */

const scope = globalThis as Record<string, unknown>;
delete scope.Worker;
delete scope.SharedArrayBuffer;
// navigator.gpu is a getter on Navigator.prototype in Deno.
delete (Object.getPrototypeOf(navigator) as Record<string, unknown>).gpu;

const { GoogLeNet } = await import("../../mod.ts");
const { deterministicInput } = await import("../deterministic.ts");

const model = await GoogLeNet.create({ threads: 4 });
const logits = await model.forward(deterministicInput("edge", [1, 3, 224, 224]));
const report = {
  globals: {
    Worker: typeof scope.Worker,
    SharedArrayBuffer: typeof scope.SharedArrayBuffer,
    gpu: "gpu" in navigator,
  },
  threads: model.backend.threads,
  kind: model.backend.kind,
  logits: Array.from((logits as { data: Float32Array }).data),
};
await model.dispose();
console.log(JSON.stringify(report));
