/**
 * The whole network on the WebGPU backend: against the PyTorch fixtures
 * (eval at 224x224 batch 1, 2 and 4 and 160x192 batch 1 and 4, and training-mode
 * `[logits, aux2, aux1]` with dropout off), within max |diff| <= 1e-3 * max |torch|;
 * and against the Wasm backend at batch 4 and in training mode with dropout
 * on (same seeds, so the same masks), within 1e-3 relative.
 *
 * The model is built as `GoogLeNet.create({ backend: "webgpu" })`.
 *
 * Ignored, with the reason printed, when the runtime has no WebGPU adapter.
 */

import assert from "node:assert/strict";
import { GoogLeNet, type Tensor } from "../mod.ts";
import { probeAdapter } from "../src/backend/webgpu/device.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { assertClose } from "./_support/assert_close.ts";
import { loadFixtures } from "./_support/fixtures.ts";

const RTOL = 1e-3;
const fixtures = await loadFixtures("googlenet");
const { adapter, reason } = await probeAdapter();
if (adapter === null) console.log(`webgpu_googlenet: ignored, ${reason}`);

/** The Wasm reference model and the WebGPU model, with the same fixture weights and seed. */
async function models(): Promise<{ wasm: GoogLeNet; gpu: GoogLeNet; close(): Promise<void> }> {
  const wasm = await GoogLeNet.create({ backend: "wasm", threads: 1, seed: 9 });
  const stateDict = deterministicStateDict([...wasm.stateDict()].map(([k, t]) => [k, t.shape]));
  wasm.loadStateDict(stateDict);
  const gpu = await GoogLeNet.create({ backend: "webgpu", threads: 1, seed: 9, stateDict });
  assert.equal(gpu.backend.kind, "webgpu");
  return {
    wasm,
    gpu,
    async close() {
      await wasm.dispose();
      await gpu.dispose();
    },
  };
}

Deno.test({
  name: "GoogLeNet on WebGPU matches PyTorch and the Wasm backend",
  ignore: adapter === null,
  async fn(t) {
    const { wasm, gpu, close } = await models();
    try {
      for (const [name, c] of fixtures.cases) {
        const shape = c.shape as number[];
        const input = deterministicInput(name, shape);
        const parts = c.mode === "eval"
          ? [name]
          : ["logits", "aux2", "aux1"].map((p) => `${name}.${p}`);
        await t.step(`${c.mode} ${name} [${shape}] vs PyTorch`, async () => {
          gpu.train(c.mode !== "eval");
          const start = performance.now();
          const result = await gpu.forward(input, { dropout: false });
          const out = Array.isArray(result) ? result : [result];
          const ms = performance.now() - start;
          assert.equal(out.length, parts.length);
          for (const [i, key] of parts.entries()) {
            const rel = assertClose(out[i].data, fixtures.tensors.get(key)!.data, RTOL, key);
            console.log(`  ${key}: max rel error ${rel.toExponential(2)} (${ms.toFixed(0)} ms)`);
          }
        });
      }

      await t.step("eval batch 4 equals the Wasm backend", async () => {
        const input = deterministicInput("webgpu_b4", [4, 3, 224, 224]);
        const ref = await wasm.eval().forward(input) as Tensor;
        const out = await gpu.eval().forward(input) as Tensor;
        const rel = assertClose(out.data, ref.data, RTOL, "batch 4");
        console.log(`  batch 4 vs wasm: max rel error ${rel.toExponential(2)}`);
      });

      await t.step("training with dropout equals the Wasm backend for the same seeds", async () => {
        const input = deterministicInput("webgpu_train", [2, 3, 224, 224]);
        // Both models were created with seed 9 and have drawn the same number of masks.
        const ref = await wasm.train().forward(input) as Tensor[];
        const out = await gpu.train().forward(input) as Tensor[];
        for (const [i, part] of ["logits", "aux2", "aux1"].entries()) {
          const rel = assertClose(out[i].data, ref[i].data, RTOL, `dropout ${part}`);
          console.log(`  dropout ${part} vs wasm: max rel error ${rel.toExponential(2)}`);
        }
      });
    } finally {
      await close();
    }
  },
});
