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
 * (the seeded initialisation) or a path on the server of a weight file, read
 * with the library's `loadWeights(url)`. It also classifies the server's
 * `assets/chelsea.jpg` with `classify(model, url)` and prints the top 3.
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

if (weights !== "seed") model.loadStateDict(await lib.loadWeights(new URL(weights, base)));
const loaded = performance.now();

const logits = await model.forward(deterministicInput("edge", [1, 3, 224, 224]));
const done = performance.now();
const top = await lib.classify(model, new URL("assets/chelsea.jpg", base), { top: 3 });
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
  top,
};
await model.dispose();
console.log(JSON.stringify(report));
