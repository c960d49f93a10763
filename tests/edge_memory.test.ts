/**
 * Memory on the edge: a batch-1 224x224 inference fits in 64 MiB of Wasm
 * memory; `memoryLimit` refuses a too large batch or image up front (nothing
 * grown, the model still works); and 1000 sequential inferences grow neither
 * the Wasm memory nor the JS heap (measured in a child with `--expose-gc`).
 */

import assert from "node:assert/strict";
import { GoogLeNet, MemoryLimitError, Tensor } from "../mod.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { assertSameBits, childJson, edgeScript, ROOT, runDeno } from "./_support/edge_child.ts";

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(2)} MiB`;

Deno.test("a batch-1 224x224 eval forward (auxLogits: false, threads: 1) uses < 64 MiB of Wasm memory", async () => {
  const model = await GoogLeNet.create({ auxLogits: false, threads: 1 });
  const before = model.backend.memoryBytes();
  await model.forward(Tensor.zeros([1, 3, 224, 224]));
  const after = model.backend.memoryBytes();
  console.log(`  Wasm memory: ${mib(before)} after create, ${mib(after)} after the forward`);
  await model.dispose();
  assert.ok(after < 64 * MiB, `${mib(after)} is not below 64 MiB`);
});

Deno.test("memoryLimit refuses a too large batch and a 4096x4096 image up front, and the model still works", async () => {
  const model = await GoogLeNet.create({ auxLogits: false, threads: 1, memoryLimit: 64 * MiB });
  const good = deterministicInput("good", [1, 3, 64, 64]);
  const expected = ((await model.forward(good)) as Tensor).data;
  const grown = model.backend.memoryBytes();

  // 9.6 MB of input, but its activations would need far more than 64 MiB.
  const batch = Tensor.zeros([16, 3, 224, 224]);
  await assert.rejects(
    () => model.forward(batch) as Promise<unknown>,
    (e: Error) =>
      e instanceof MemoryLimitError &&
      /\[16, 3, 224, 224\] needs .* MiB .* limit is 64\.0 MiB/.test(
        e.message,
      ),
  );
  const huge = Tensor.zeros([1, 3, 4096, 4096]); // 201 MB of JS memory, affordable here
  await assert.rejects(() => model.forward(huge) as Promise<unknown>, MemoryLimitError);
  assert.equal(model.backend.memoryBytes(), grown, "the failed calls grew the Wasm memory");

  assertSameBits(
    ((await model.forward(good)) as Tensor).data,
    expected,
    "logits after the refusals",
  );
  await model.dispose();
});

Deno.test("memoryLimit below the weights' size fails at create with MemoryLimitError", async () => {
  await assert.rejects(
    () => GoogLeNet.create({ threads: 1, memoryLimit: 8 * MiB }),
    (e: Error) =>
      e instanceof MemoryLimitError && /weights need .* memoryLimit is 8\.0 MiB/.test(e.message),
  );
});

interface LeakReport {
  runs: number;
  threads: number;
  gc: boolean;
  same: boolean;
  msPerRun: number;
  snapshots: {
    after: number;
    wasmBytes: number;
    heapUsed: number;
    external: number;
    rss: number;
  }[];
}

// 1000 runs single-threaded; 300 on 2 threads, whose barriers are slow on a busy 2-core machine.
for (const [threads, runs] of [[1, 1000], [2, 300]]) {
  Deno.test(`${runs} sequential inferences (threads: ${threads}) grow neither the Wasm memory nor the JS heap`, async () => {
    const result = await runDeno([
      "run",
      "--no-prompt",
      "--no-config",
      "--no-lock",
      "--v8-flags=--expose-gc",
      `--allow-read=${new URL("src/", ROOT).pathname}`,
      edgeScript("leak.ts"),
      String(runs),
      String(threads),
    ], { timeoutMs: 60_000 });
    const report = childJson<LeakReport>(result, "leak.ts");
    const [warm, end] = report.snapshots;
    const js = (s: typeof warm) => s.heapUsed + s.external;
    console.log(
      `  ${report.runs} runs at ${report.msPerRun.toFixed(2)} ms: Wasm ${mib(warm.wasmBytes)} -> ` +
        `${mib(end.wasmBytes)}; heapUsed+external after GC ${mib(js(warm))} -> ${mib(js(end))} ` +
        `(${(js(end) - js(warm)) / (end.after - warm.after)} B/run); rss ${mib(warm.rss)} -> ` +
        `${mib(end.rss)} (not asserted: the allocator keeps freed pages)`,
    );
    assert.ok(report.gc, "--expose-gc did not expose gc()");
    assert.ok(report.same, "the logits changed over the runs");
    assert.equal(end.wasmBytes, warm.wasmBytes, "the Wasm memory grew");
    // Measured: ~40 KB in all whether 1000 or 4000 runs (JIT warm-up, not per run). A leak of
    // one 1000-float output per run would be 1 to 4 MB here.
    assert.ok(js(end) - js(warm) < 512 * 1024, `the JS heap grew by ${mib(js(end) - js(warm))}`);
  });
}
