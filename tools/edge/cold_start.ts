/**
 * Cold start of a fresh process, weights already in memory: import `mod.ts`
 * -> create the model (seed variant, no aux heads) from a state dict ->
 * first logits of a 224x224 image. Prints one JSON line of milliseconds.
 * Run by `tests/edge_entry.test.ts` and `deno task bench`:
 *
 * ```sh
 * deno run --no-prompt --allow-read=src tools/edge/cold_start.ts
 * ```
 *
 * @module
 */

import { deterministicStateDict } from "../deterministic.ts";

const keys: [string, number[]][] = JSON.parse(
  await Deno.readTextFile(new URL("../../tests/fixtures/state_dict.json", import.meta.url)),
).no_aux;
const stateDict = deterministicStateDict(keys);

const started = performance.now();
const { GoogLeNet, Tensor } = await import("../../mod.ts");
const imported = performance.now();
const model = await GoogLeNet.create({ auxLogits: false, stateDict });
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
