/**
 * Imports googlenet-wasm from a URL and prints the logits of a deterministic
 * input as one JSON line. Run by `tests/edge_url_import.test.ts` with no
 * permission but `--allow-import` and `--allow-net` for the serving host:
 *
 * ```sh
 * deno run --no-prompt --allow-import=127.0.0.1:PORT --allow-net=127.0.0.1:PORT \
 *   tools/edge/url_import.ts http://127.0.0.1:PORT/ THREADS WEIGHTS
 * ```
 *
 * THREADS is a number or `default` (the option left out); WEIGHTS is `seed`
 * (the seeded initialisation) or a path on the server of a safetensors file,
 * parsed by the library's own `readSafetensors` (`src/weights/mod.ts`).
 *
 * @module
 */

const started = performance.now();
const [base, threadsArg = "1", weights = "seed"] = Deno.args;
if (!base) throw new Error("usage: url_import.ts BASE_URL [THREADS|default] [seed|WEIGHTS_PATH]");

const lib = await import(new URL("mod.ts", base).href);
const { deterministicInput } = await import(new URL("tools/deterministic.ts", base).href);
const imported = performance.now();

const model = await lib.GoogLeNet.create({
  auxLogits: false,
  ...(threadsArg === "default" ? {} : { threads: Number(threadsArg) }),
});
const created = performance.now();

if (weights !== "seed") {
  const { readSafetensors } = await import(new URL("src/weights/mod.ts", base).href);
  const response = await fetch(new URL(weights, base));
  if (!response.ok) throw new Error(`GET ${weights}: HTTP ${response.status}`);
  const parsed = await readSafetensors(new Uint8Array(await response.arrayBuffer()));
  // Either a Map of tensors or an object holding one as `tensors`.
  model.loadStateDict(parsed instanceof Map ? parsed : parsed.tensors);
}
const loaded = performance.now();

const logits = await model.forward(deterministicInput("edge", [1, 3, 224, 224]));
const done = performance.now();
const report = {
  threads: model.backend.threads,
  kind: model.backend.kind,
  isa: model.backend.isa ?? null,
  ms: {
    import: imported - started,
    create: created - imported,
    weights: loaded - created,
    firstForward: done - loaded,
    sinceProcessStart: done,
  },
  logits: Array.from(logits.data),
};
await model.dispose();
console.log(JSON.stringify(report));
