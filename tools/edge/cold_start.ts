/**
 * Cold start of a fresh process, weights already in memory: import `mod.ts`
 * -> create the model (seed variant, no aux heads) from a state dict ->
 * first logits of a 224x224 image. Prints one JSON line of milliseconds,
 * with, for scale, the time this process then takes to touch as many fresh
 * bytes as the model's Wasm memory (one write per 4 KB page): the part of
 * the cold start that is page faults, which no library code can avoid.
 * The optional arguments are the backend (`auto`, the default, or `wasm`) and
 * the thread count (default: all cores).
 * Run by `tests/edge_entry.test.ts` and `deno task bench`:
 *
 * ```sh
 * deno run --no-prompt --allow-read=src tools/edge/cold_start.ts [auto|wasm] [threads]
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
const backend = Deno.args[0] === "wasm" ? "wasm" : "auto";
const threads = Deno.args[1] ? { threads: Number(Deno.args[1]) } : {};
const model = await GoogLeNet.create({ auxLogits: false, stateDict, backend, ...threads });
const created = performance.now();
const logits = await model.forward(Tensor.zeros([1, 3, 224, 224]));
const done = performance.now();
const second = performance.now();
await model.forward(Tensor.zeros([1, 3, 224, 224]));
const warm = performance.now() - second;
const bytes = model.backend.memoryBytes();
const touchStart = performance.now();
const fresh = new Uint8Array(bytes);
for (let i = 0; i < bytes; i += 4096) fresh[i] = 1;
const touchFresh = performance.now() - touchStart;
const report = {
  backend: model.backend.kind,
  threads: model.backend.threads,
  memoryMB: bytes / 1048576,
  isa: (model.backend as { isa?: string }).isa ?? null,
  shape: (logits as { shape: readonly number[] }).shape,
  ms: {
    import: imported - started,
    create: created - imported,
    firstForward: done - created,
    importToFirstLogits: done - started,
    sinceProcessStart: done,
    warmForward: warm,
    touchFreshMemory: touchFresh,
  },
};
await model.dispose();
console.log(JSON.stringify(report));
