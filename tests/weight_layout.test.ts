/**
 * The backend's weight layout (`src/backend/layout.ts`): kernels chosen
 * from the layers' shapes give every convolution the Winograd form it had
 * when the model chose by layer name (both variants, both `prefer` choices),
 * and WebGPU's blob holds no Winograd form (it allocates and uploads the GEMM
 * panels alone).
 *
 * @module
 */

import assert from "node:assert/strict";
import { GoogLeNet } from "../mod.ts";
import type { Conv2dOp } from "../src/graph/ops.ts";
import { chooseWinograd, layoutWeights } from "../src/backend/layout.ts";
import { packedSize } from "../src/backend/pack.ts";

/** The choice the model made by name before: conv3 and inception3 F(4x4, 3x3), the 5x5s F(2x2, 5x5), inception4/5 by `prefer`. */
function byName(name: string, kh: number, prefer: "memory" | "speed"): string | null {
  if (kh === 5) return "f2x5";
  if (kh !== 3) return null;
  if (prefer === "speed" || /^(conv3|inception3)/.test(name)) return "f4x3";
  return "f2x3";
}

for (const variant of ["seed", "torchvision"] as const) {
  for (const prefer of ["memory", "speed"] as const) {
    Deno.test(`${variant}, prefer ${prefer}: Winograd forms chosen from shapes equal the former choice by name`, async () => {
      const model = await GoogLeNet.create({ variant, prefer, threads: 1, backend: "wasm" });
      try {
        const convs = model.plan([1, 3, 224, 224]).ops.filter((op): op is Conv2dOp =>
          op.kind === "conv2d"
        );
        assert.ok(convs.length >= 39, `${convs.length} convolutions`);
        let winograd = 0;
        for (const op of convs) {
          const expected = byName(op.name, op.kh, prefer);
          assert.equal(op.winograd?.variant ?? null, expected, op.name);
          if (expected) winograd++;
        }
        assert.ok(winograd >= 18, `${winograd} Winograd convolutions`);
      } finally {
        await model.dispose();
      }
    });
  }
}

Deno.test("chooseWinograd: shapes only (stride, padding, channels, kernel, map size)", () => {
  const conv = {
    kernelSize: 3,
    stride: 1,
    padding: 1,
    inChannels: 64,
    outChannels: 64,
    mapSize: 28,
  };
  assert.equal(chooseWinograd(conv, "memory"), "f4x3");
  assert.equal(chooseWinograd({ ...conv, mapSize: 14 }, "memory"), "f2x3");
  assert.equal(chooseWinograd({ ...conv, mapSize: 14 }, "speed"), "f4x3");
  assert.equal(chooseWinograd({ ...conv, stride: 2 }, "speed"), null);
  assert.equal(chooseWinograd({ ...conv, padding: 0 }, "speed"), null);
  assert.equal(chooseWinograd({ ...conv, inChannels: 3 }, "speed"), null);
  assert.equal(chooseWinograd({ ...conv, kernelSize: 5, padding: 2 }, "memory"), "f2x5");
  assert.equal(chooseWinograd({ ...conv, kernelSize: 7, padding: 3 }, "memory"), null);
  const layers = [
    { key: "a", k: 64, n: 16, conv: { ...conv, kernelSize: 1, padding: 0 } },
    { key: "b", k: 576, n: 64, conv },
    { key: "c", k: 64, n: 10, conv: null },
  ];
  const wasm = layoutWeights(layers, "wasm", "memory"),
    gpu = layoutWeights(layers, "webgpu", "memory");
  assert.equal(wasm.layers.get("b")!.winograd?.variant, "f4x3");
  assert.ok([...gpu.layers.values()].every((l) => l.winograd === null));
  assert.ok(gpu.floats < wasm.floats);
  // The GEMM panels are back to back on WebGPU: each starts where the previous ends.
  assert.equal(gpu.layers.get("b")!.packed.offset, packedSize(64, 16));
  assert.equal(gpu.layers.get("c")!.packed.offset, packedSize(64, 16) + packedSize(576, 64));
  assert.equal(gpu.floats, packedSize(64, 16) + packedSize(576, 64) + packedSize(64, 10));
});

Deno.test("WebGPU's blob holds the GEMM panels alone (no Winograd form allocated or uploaded)", async (t) => {
  let model: GoogLeNet;
  try {
    model = await GoogLeNet.create({ backend: "webgpu", auxLogits: false, prefer: "speed" });
  } catch (error) {
    console.log(`  skipped: no WebGPU adapter here (${(error as Error).message})`);
    return;
  }
  try {
    const wasm = await GoogLeNet.create({
      backend: "wasm",
      auxLogits: false,
      prefer: "speed",
      threads: 1,
    });
    try {
      const ops = model.plan([1, 3, 224, 224]).ops.filter((op) => op.kind === "conv2d");
      assert.ok(ops.every((op) => op.kind === "conv2d" && op.winograd === null));
      const gpuFloats = model.backend.weights().length, wasmFloats = wasm.backend.weights().length;
      await t.step("sizes", () => {
        console.log(
          `  weights: WebGPU ${(gpuFloats * 4 / 1e6).toFixed(1)} MB, Wasm ${
            (wasmFloats * 4 / 1e6).toFixed(1)
          } MB`,
        );
      });
      assert.ok(gpuFloats < wasmFloats * 0.4, `${gpuFloats} vs ${wasmFloats} floats`);
      // Same weights, same state dict: the layouts differ, the parameters do not.
      const gpuState = model.stateDict();
      for (const [key, tensor] of wasm.stateDict()) {
        assert.deepEqual(gpuState.get(key)!.data, tensor.data, key);
      }
    } finally {
      await wasm.dispose();
    }
  } finally {
    await model.dispose();
  }
});
