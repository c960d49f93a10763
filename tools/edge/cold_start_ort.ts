/**
 * The cold start of onnxruntime-web measured as `cold_start.ts` measures
 * ours, so the bench can print a ratio that holds across machines: a fresh
 * process with the model already in memory (here the ONNX bytes of the same
 * seed GoogLeNet and weights, built before the clock starts), then import
 * `onnxruntime-web` -> create a session on its Wasm execution provider with
 * `numThreads` threads -> first logits of a 224x224 image. Prints one JSON
 * line of milliseconds. Run by `deno task bench` from the repository (the
 * import map names the package):
 *
 * ```sh
 * deno run --allow-read --allow-env tools/edge/cold_start_ort.ts [threads]
 * ```
 *
 * @module
 */

import { buildOnnxGoogLeNet } from "../../bench/peers/onnx_googlenet.ts";
import { seedStateDictShapes } from "../../bench/peers/seed_architecture.ts";
import { deterministicStateDict } from "../deterministic.ts";

const threads = Number(Deno.args[0] ?? "1");
const model = buildOnnxGoogLeNet(deterministicStateDict(seedStateDictShapes()));

const started = performance.now();
const ort = await import("onnxruntime-web");
const imported = performance.now();
ort.env.wasm.numThreads = threads;
ort.env.wasm.simd = true;
const session = await ort.InferenceSession.create(model, {
  executionProviders: ["wasm"],
  graphOptimizationLevel: "all",
});
const created = performance.now();
const run = async () => {
  const input = new ort.Tensor("float32", new Float32Array(3 * 224 * 224), [1, 3, 224, 224]);
  const outputs = await session.run({ [session.inputNames[0]]: input });
  return outputs[session.outputNames[0]].dims;
};
const shape = await run();
const done = performance.now();
const second = performance.now();
await run();
const warm = performance.now() - second;
await session.release();
console.log(JSON.stringify({
  runtime: "onnxruntime-web wasm",
  threads,
  shape,
  ms: {
    import: imported - started,
    create: created - imported,
    firstForward: done - created,
    importToFirstLogits: done - started,
    sinceProcessStart: done,
    warmForward: warm,
  },
}));
