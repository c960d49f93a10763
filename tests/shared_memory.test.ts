/**
 * The threads build runs on a shared memory of fixed size: V8 reloads the
 * size of a shared memory that can grow before every bounds check, which
 * made the kernels about 10 % slower. So the binary's memory import is
 * rewritten to exactly the pages in use (`withFixedMemory`), a threaded model
 * sizes its memory for a 224x224 image up front, and a larger plan moves the
 * model to a new, larger memory. These tests check the rewrite, that a
 * 224x224 forward does not move, that a move keeps the logits bit for bit,
 * and that `memoryLimit` still refuses what does not fit, moving nothing.
 */

import assert from "node:assert/strict";
import { BackendError, GoogLeNet, MemoryLimitError, Tensor } from "../mod.ts";
import { withFixedMemory } from "../src/backend/wasm/kernels.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { assertSameBits } from "./_support/edge_child.ts";

const MiB = 1024 * 1024;
const threadsBinary = await Deno.readFile(
  new URL("../src/backend/wasm/kernels/kernels-simd-threads.wasm", import.meta.url),
);

function instantiate(module: WebAssembly.Module, initial: number, maximum: number) {
  const memory = new WebAssembly.Memory({ initial, maximum, shared: true });
  return new WebAssembly.Instance(module, { env: { memory } });
}

Deno.test("withFixedMemory declares exactly the given pages: only a memory of that size links", async () => {
  const pages = 300;
  const fixed = await WebAssembly.compile(withFixedMemory(threadsBinary, pages));
  assert.ok(instantiate(fixed, pages, pages).exports.gemm_bias);
  // A memory that may grow past the declared maximum, or is too small, does not link.
  assert.throws(() => instantiate(fixed, pages, pages + 1), WebAssembly.LinkError);
  assert.throws(() => instantiate(fixed, pages - 1, pages - 1), WebAssembly.LinkError);
  // The binary as built takes any size.
  const any = await WebAssembly.compile(threadsBinary);
  assert.ok(instantiate(any, pages, pages + 1).exports.gemm_bias);
  // Only the import section changes: the exports are the same.
  assert.deepEqual(WebAssembly.Module.exports(fixed), WebAssembly.Module.exports(any));
});

Deno.test("withFixedMemory refuses a page count out of range and a binary that imports more than memory", () => {
  assert.throws(() => withFixedMemory(threadsBinary, 65537), /0 to 65536 pages, got 65537/);
  assert.throws(() => withFixedMemory(threadsBinary, 1.5), BackendError);
  // (module (type (func)) (import "env" "f" (func (type 0))))
  const functionImport = new Uint8Array([
    0,
    97,
    115,
    109,
    1,
    0,
    0,
    0, // magic, version
    1,
    4,
    1,
    0x60,
    0,
    0, // type section
    2,
    9,
    1,
    3,
    101,
    110,
    118,
    1,
    102,
    0,
    0, // import section
  ]);
  assert.throws(
    () => withFixedMemory(functionImport, 1),
    (e: Error) => e instanceof BackendError && /an import other than a memory/.test(e.message),
  );
  assert.throws(() => withFixedMemory(functionImport.subarray(0, 20), 1), /runs past the end/);
});

Deno.test("a threaded model runs 224x224 in the memory it was created with, and moves to a larger one for a larger batch with the same logits", async () => {
  const one = await GoogLeNet.create({ auxLogits: false, backend: "wasm", threads: 1, seed: 3 });
  const two = await GoogLeNet.create({ auxLogits: false, backend: "wasm", threads: 2, seed: 3 });
  try {
    const image = deterministicInput("shared-1", [1, 3, 224, 224]);
    const batch = deterministicInput("shared-3", [3, 3, 224, 224]);
    const created = two.backend.memoryBytes();
    const first = ((await two.forward(image)) as Tensor).data;
    assert.equal(two.backend.memoryBytes(), created, "a 224x224 forward moved the memory");
    assertSameBits(first, ((await one.forward(image)) as Tensor).data, "batch 1");

    const moved = ((await two.forward(batch)) as Tensor).data;
    const grown = two.backend.memoryBytes();
    console.log(`  Wasm memory ${(created / MiB).toFixed(1)} -> ${(grown / MiB).toFixed(1)} MiB`);
    assert.ok(grown > created, "batch 3 did not need more memory");
    assertSameBits(moved, ((await one.forward(batch)) as Tensor).data, "batch 3 after the move");
    assertSameBits(((await two.forward(image)) as Tensor).data, first, "batch 1 after the move");
    assert.equal(two.backend.memoryBytes(), grown, "a smaller plan moved the memory again");
  } finally {
    await one.dispose();
    await two.dispose();
  }
});

Deno.test("a threaded model refuses a batch over memoryLimit without moving, and still works", async () => {
  const model = await GoogLeNet.create({
    auxLogits: false,
    backend: "wasm",
    threads: 2,
    memoryLimit: 80 * MiB,
  });
  try {
    const image = deterministicInput("shared-limit", [1, 3, 224, 224]);
    const expected = ((await model.forward(image)) as Tensor).data;
    const bytes = model.backend.memoryBytes();
    await assert.rejects(
      () => model.forward(Tensor.zeros([16, 3, 224, 224])) as Promise<unknown>,
      (e: Error) => e instanceof MemoryLimitError && /limit is 80\.0 MiB/.test(e.message),
    );
    assert.equal(model.backend.memoryBytes(), bytes, "the refused call moved the memory");
    assertSameBits(((await model.forward(image)) as Tensor).data, expected, "after the refusal");
  } finally {
    await model.dispose();
  }
});
