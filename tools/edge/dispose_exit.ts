/**
 * Creates a multi-threaded model, queues forward calls, disposes it while
 * they wait, and then simply returns: the process must exit on its own (the
 * kernel workers released). Prints one JSON line of how the queued calls
 * settled. Run by `tests/concurrency.test.ts`:
 *
 * ```sh
 * deno run --no-prompt --allow-read=src tools/edge/dispose_exit.ts
 * ```
 *
 * @module
 */

const { GoogLeNet, Tensor } = await import("../../mod.ts");

const model = await GoogLeNet.create({ threads: 2, auxLogits: false });
const threads = model.backend.threads;
const calls = Array.from({ length: 8 }, () => model.forward(Tensor.zeros([1, 3, 32, 32])));
const disposed = model.dispose();
const late = Array.from({ length: 4 }, () => model.forward(Tensor.zeros([1, 3, 32, 32])));
const settled = await Promise.allSettled([...calls, ...late]);
await disposed;
console.log(JSON.stringify({
  threads,
  settled: settled.map((s) => s.status === "fulfilled" ? "fulfilled" : s.reason?.name),
}));
// No Deno.exit(): the test checks that nothing keeps the process alive.
