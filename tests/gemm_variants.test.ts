/**
 * The GEMM micro-kernel variants (asm/gemm.ts, chosen at start-up by
 * src/backend/wasm/calibrate.ts) do the same multiply-adds in the same order
 * for every output, so each gives the same bits: a table of shapes (row
 * tails of 1 to 5, odd and even depths, partial panels, the three epilogues),
 * then whole forward and backward passes with each variant forced, on 1 and 2
 * threads. The calibration itself: it measures every variant, picks one,
 * leaves the memory it probed as it was, and a forced name is checked.
 */

import assert from "node:assert/strict";
import { BackendError, GEMM_KERNELS, GoogLeNet, type Tensor } from "../mod.ts";
import { calibrateGemm, CALIBRATION_BYTES } from "../src/backend/wasm/calibrate.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { compileKernels, instantiateKernels } from "../src/backend/wasm/kernels.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { assertSameBits } from "./_support/edge_child.ts";

/** [rows M, columns N, depth K]: tails of 1-5 rows, K odd/even/1, N not a multiple of 8. */
const SHAPES: [number, number, number][] = [
  [1, 8, 1],
  [5, 3, 7],
  [6, 8, 2],
  [7, 16, 9],
  [11, 13, 64],
  [12, 24, 33],
  [23, 40, 128],
  [48, 17, 147],
];
const EXPORTS = ["gemm_bias", "gemm_bias_relu", "gemm_acc"] as const;

Deno.test("GEMM variants give the same bits on every shape and epilogue", async () => {
  const { module } = await compileKernels(false);
  const memory = new WebAssembly.Memory({ initial: 64 });
  const k = instantiateKernels(module, memory);
  const f32 = new Float32Array(memory.buffer);
  for (const [m, n, depth] of SHAPES) {
    const panels = Math.ceil(n / 8);
    const a = 1024, w = a + m * depth * 4, c = w + panels * (depth + 1) * 32;
    const av = deterministicInput(`gemm a ${m} ${depth}`, [m * depth]).data;
    const wv = deterministicInput(`gemm w ${n} ${depth}`, [panels * (depth + 1) * 8]).data;
    const cv = deterministicInput(`gemm c ${m} ${n}`, [m * n]).data;
    for (const name of EXPORTS) {
      const results = GEMM_KERNELS.map((_, v) => {
        f32.set(av, a / 4);
        f32.set(wv, w / 4);
        f32.set(cv, c / 4);
        assert.equal(k.gemm_variant(v), v);
        k[name](n, depth, a, depth, w, c, n, 0, m, 0, panels);
        return f32.slice(c / 4, c / 4 + m * n);
      });
      for (let v = 1; v < results.length; v++) {
        assertSameBits(results[v], results[0], `${name} ${m}x${n}x${depth}, ${GEMM_KERNELS[v]}`);
      }
      // Not a vacuous comparison: the output changed.
      assert.notDeepEqual(results[0], cv, `${name} ${m}x${n}x${depth} wrote nothing`);
    }
  }
});

for (const threads of [1, 2]) {
  Deno.test(`forward and backward give the same bits with every GEMM variant (${threads} thread${threads > 1 ? "s" : ""})`, async () => {
    const x = deterministicInput("gemm variants x", [2, 3, 64, 72]);
    const labels = [3, 917];
    const outs: { logits: Float32Array; grads: Map<string, Float32Array> }[] = [];
    for (const gemmKernel of GEMM_KERNELS) {
      const model = await GoogLeNet.create({ auxLogits: false, threads, seed: 5, gemmKernel });
      try {
        const backend = model.backend as WasmBackend;
        assert.equal(backend.gemm.kernel, gemmKernel);
        assert.equal(backend.gemm.source, "forced");
        const logits = ((await model.forward(x)) as Tensor).data;
        model.train();
        await model.backward(x, labels, { dropout: false });
        const grads = new Map([...model.gradients()].map(([key, t]) => [key, t.data]));
        outs.push({ logits, grads });
      } finally {
        await model.dispose();
      }
    }
    for (let v = 1; v < outs.length; v++) {
      assertSameBits(outs[v].logits, outs[0].logits, `logits, ${GEMM_KERNELS[v]}`);
      for (const [key, g] of outs[0].grads) {
        assertSameBits(outs[v].grads.get(key)!, g, `${key}.grad, ${GEMM_KERNELS[v]}`);
      }
    }
  });
}

Deno.test("the calibration measures every variant, picks the fastest and leaves the probed memory as it was", async () => {
  const { module } = await compileKernels(false);
  const pages = Math.ceil(CALIBRATION_BYTES / 65536);
  const memory = new WebAssembly.Memory({ initial: pages });
  const kernels = instantiateKernels(module, memory);
  const result = calibrateGemm(kernels);
  assert.ok(GEMM_KERNELS.includes(result.kernel));
  assert.equal(result.source, "measured");
  for (const name of GEMM_KERNELS) {
    assert.ok(
      Number.isFinite(result.rates[name]) && result.rates[name] > 0,
      `${name}: ${result.rates[name]}`,
    );
  }
  const fastest = GEMM_KERNELS.reduce((a, b) => (result.rates[b] > result.rates[a] ? b : a));
  assert.equal(result.kernel, fastest);
  assert.equal(kernels.gemm_variant(-1), GEMM_KERNELS.indexOf(result.kernel));
  assert.ok(result.ms < 1000, `took ${result.ms} ms`);
  // A fresh memory is zeros, and a GEMM of zeros writes zeros.
  assert.ok(new Uint8Array(memory.buffer).every((b) => b === 0), "the probe left bytes behind");
  console.log(
    `  ${result.kernel} in ${result.ms.toFixed(1)} ms: ${
      GEMM_KERNELS.map((k) => `${k} ${result.rates[k].toFixed(1)} GFLOP/s`).join(", ")
    }`,
  );
});

Deno.test("gemmKernel: an unknown name is refused with the names; auto calibrates once per process", async () => {
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    GoogLeNet.create({ gemmKernel: "fast" as any, threads: 1 }),
    (e: unknown) =>
      e instanceof BackendError && /gemmKernel/.test(e.message) &&
      GEMM_KERNELS.every((k) => e.message.includes(k)),
  );
  const a = await GoogLeNet.create({ auxLogits: false, threads: 1 });
  const b = await GoogLeNet.create({ auxLogits: false, threads: 1 });
  try {
    const ga = (a.backend as WasmBackend).gemm, gb = (b.backend as WasmBackend).gemm;
    assert.equal(ga.source, "measured");
    assert.equal(gb, ga, "the second model reuses the process's calibration");
  } finally {
    await a.dispose();
    await b.dispose();
  }
});
