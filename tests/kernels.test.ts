/**
 * Every kernel against PyTorch, on the fixture shapes of
 * `tools/make_fixtures.py` (7x7 stride 2, 5x5, 3x3, 1x1 and strided
 * convolutions, ceil-mode and padded pools, the 5/3 average pool, adaptive
 * average pool, linear, softmax), on the Wasm backend with 1 and 2 threads.
 * Tolerance: max |ours - torch| <= 1e-4 * max |torch|.
 */

import assert from "node:assert/strict";
import { WasmBackend } from "../src/backend/wasm/backend.ts";
import { assertClose } from "./_support/assert_close.ts";
import { loadFixtures } from "./_support/fixtures.ts";
import { caseWeightFloats, type OpCase, prepareCase, runCase } from "./_support/op_cases.ts";
import { deterministicInput } from "../tools/deterministic.ts";

const RTOL = 1e-4;
const fixtures = await loadFixtures("kernels");

for (const threads of [1, 2]) {
  for (const [name, params] of fixtures.cases) {
    const c = params as OpCase;
    if (c.op === "softmax") continue;
    Deno.test(`kernel ${name} matches PyTorch (wasm, ${threads} thread${threads > 1 ? "s" : ""})`, async () => {
      const prepared = prepareCase(name, c);
      const backend = await WasmBackend.create({
        weightFloats: caseWeightFloats(prepared),
        threads,
        memoryLimit: 1 << 30,
      });
      try {
        const out = await runCase(backend, name, prepared);
        const rel = assertClose(out, fixtures.tensors.get(name)!.data, RTOL, name);
        console.log(`  ${name}: max rel error ${rel.toExponential(2)}`);
      } finally {
        await backend.dispose();
      }
    });
  }
}

Deno.test("kernel softmax matches PyTorch and turns a NaN row into NaN", async () => {
  const c = fixtures.cases.get("softmax") as OpCase;
  const [rows, cols] = c.shape;
  // The backend's memory has a fixed size: reserve the rows as weights (they start at byte 64).
  const backend = await WasmBackend.create({
    weightFloats: 256 + rows * cols,
    threads: 1,
    memoryLimit: 1 << 30,
  });
  try {
    const x = deterministicInput("softmax.x", c.shape).data.map((v) => v * (c.scale as number));
    const at = 1024;
    new Float32Array(backend.memory.buffer, at, x.length).set(x);
    backend.kernels.softmax(at, rows, cols);
    const out = new Float32Array(backend.memory.buffer, at, x.length).slice();
    assertClose(out, fixtures.tensors.get("softmax")!.data, RTOL, "softmax");
    const row = new Float32Array(backend.memory.buffer, at, 4);
    row.set([1, Number.NaN, 2, 3]);
    backend.kernels.softmax(at, 1, 4);
    assert.ok(row.every(Number.isNaN), `expected all NaN, got ${row}`);
  } finally {
    await backend.dispose();
  }
});
