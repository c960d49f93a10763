/**
 * The edge entry points, each in a child Deno so this test runner keeps its
 * own globals:
 *
 * - a scope without `Worker`, `SharedArrayBuffer` and `navigator.gpu`
 *   (Cloudflare Workers, some embedders): `threads: 4` quietly runs
 *   single-threaded on Wasm, with the single-threaded logits;
 * - a runtime that forbids Wasm code generation from bytes: a precompiled
 *   `WebAssembly.Module` passed as `wasmModule` is enough, and the library
 *   never tries to compile;
 * - the cold start of a fresh process (import -> first 224x224 logits), printed.
 */

import assert from "node:assert/strict";
import { GoogLeNet, type GoogLeNetOptions, type Tensor } from "../mod.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { assertSameBits, childJson, edgeScript, ROOT, runDeno } from "./_support/edge_child.ts";

interface EntryReport {
  threads: number;
  kind: string;
  globals?: { Worker: string; SharedArrayBuffer: string; gpu: boolean };
  refusals?: string[];
  logits: number[];
}

const SRC = new URL("src/", ROOT).pathname;
const KERNELS = new URL("src/backend/wasm/kernels/", ROOT);
const RUN = ["run", "--no-prompt", "--no-config", "--no-lock"];

/** This process's logits for the same input and options. */
async function inProcess(options: GoogLeNetOptions): Promise<Float32Array> {
  const model = await GoogLeNet.create(options);
  const logits = (await model.forward(deterministicInput("edge", [1, 3, 224, 224]))) as Tensor;
  await model.dispose();
  return logits.data;
}

Deno.test("without Worker, SharedArrayBuffer and navigator.gpu, threads: 4 runs single-threaded on Wasm with the same logits", async () => {
  // Read access to the kernel binaries only: nothing may start a worker.
  const result = await runDeno([
    ...RUN,
    `--allow-read=${KERNELS.pathname}`,
    edgeScript("no_threads.ts"),
  ]);
  const report = childJson<EntryReport>(result, "no_threads.ts");
  assert.deepEqual(report.globals, {
    Worker: "undefined",
    SharedArrayBuffer: "undefined",
    gpu: false,
  });
  assert.equal(report.threads, 1);
  assert.equal(report.kind, "wasm");
  assertSameBits(report.logits, await inProcess({ threads: 1 }), "logits without workers");
});

for (
  const { file, threads, note } of [
    { file: "kernels-relaxed.wasm", threads: "1", note: "threads: 1" },
    { file: "kernels-simd.wasm", threads: "default", note: "default threads, plain SIMD build" },
  ]
) {
  Deno.test(`a precompiled ${file} as wasmModule works where compiling Wasm from bytes is forbidden (${note})`, async () => {
    const bytes = await Deno.readFile(new URL(file, KERNELS));
    // No permission at all: the bytes arrive on stdin, and a fetch of the binary would fail.
    const result = await runDeno([...RUN, edgeScript("precompiled.ts"), threads], {
      stdin: bytes,
    });
    const report = childJson<EntryReport>(result, `precompiled.ts < ${file}`);
    assert.deepEqual(report.refusals, [], "the library tried to compile Wasm");
    assert.equal(report.kind, "wasm");
    // A non-threads build cannot share its memory with workers.
    assert.equal(report.threads, 1);
    const expected = await inProcess({ threads: 1, wasmModule: new WebAssembly.Module(bytes) });
    assertSameBits(report.logits, expected, `logits with a precompiled ${file}`);
  });
}

Deno.test("a precompiled threads build runs on workers, given read access to the worker's modules", async () => {
  const file = "kernels-relaxed-threads.wasm";
  const bytes = await Deno.readFile(new URL(file, KERNELS));
  if (!WebAssembly.validate(bytes)) {
    console.log(`  SKIP: this engine does not validate ${file} (no relaxed SIMD)`);
    return;
  }
  // Deno loads a worker's file: modules under --allow-read, unlike the main module graph.
  const result = await runDeno([...RUN, `--allow-read=${SRC}`, edgeScript("precompiled.ts"), "2"], {
    stdin: bytes,
  });
  const report = childJson<EntryReport>(result, `precompiled.ts < ${file}`);
  assert.deepEqual(report.refusals, []);
  assert.equal(report.threads, 2);
  assertSameBits(
    report.logits,
    await inProcess({ threads: 1, wasmModule: new WebAssembly.Module(bytes) }),
    "logits on 2 threads with a precompiled threads build",
  );
});

Deno.test("cold start: a fresh process imports mod.ts and gets its first 224x224 logits (figure printed)", async () => {
  const result = await runDeno([
    ...RUN,
    `--allow-read=${ROOT.pathname}`,
    edgeScript("cold_start.ts"),
  ]);
  const report = childJson<{ threads: number; isa: string; ms: Record<string, number> }>(
    result,
    "cold_start.ts",
  );
  const ms = Object.entries(report.ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(", ");
  console.log(`  cold start (threads ${report.threads}, ${report.isa}): ${ms}`);
  console.log(`  process spawn to exit: ${result.ms.toFixed(0)} ms`);
  // A loose bound: catches a pathological regression, not a slow CI machine.
  assert.ok(report.ms.importToFirstLogits < 20_000);
});
