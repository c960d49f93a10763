/**
 * Cold start of a fresh process: import `mod.ts` -> create the model with
 * default options -> first logits of a 224x224 image. Prints one JSON line of
 * milliseconds. Run by `tests/edge_entry.test.ts`:
 *
 * ```sh
 * deno run --no-prompt --allow-read=src tools/edge/cold_start.ts
 * ```
 *
 * @module
 */

const started = performance.now();
const { GoogLeNet, Tensor } = await import("../../mod.ts");
const imported = performance.now();
const model = await GoogLeNet.create();
const created = performance.now();
const logits = await model.forward(Tensor.zeros([1, 3, 224, 224]));
const done = performance.now();
const second = performance.now();
await model.forward(Tensor.zeros([1, 3, 224, 224]));
const warm = performance.now() - second;
const report = {
  threads: model.backend.threads,
  isa: (model.backend as { isa?: string }).isa ?? null,
  shape: (logits as { shape: readonly number[] }).shape,
  ms: {
    import: imported - started,
    create: created - imported,
    firstForward: done - created,
    importToFirstLogits: done - started,
    sinceProcessStart: done,
    warmForward: warm,
  },
};
await model.dispose();
console.log(JSON.stringify(report));
