/**
 * The operation table (`tests/_support/op_cases.ts`) on the WebGPU backend:
 * every fixture case against PyTorch (tolerance 1e-4 of max |torch|), and
 * against the Wasm backend, and NaN propagation through max pooling and ReLU.
 * Ignored, with the reason printed, when the
 * runtime has no WebGPU adapter.
 */

import assert from "node:assert/strict";
import { Tensor } from "../src/tensor.ts";
import { WasmBackend } from "../src/backend/wasm/backend.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { assertClose } from "./_support/assert_close.ts";
import { loadFixtures } from "./_support/fixtures.ts";
import { caseWeightFloats, type OpCase, prepareCase, runCase } from "./_support/op_cases.ts";
import { probeAdapter } from "../src/backend/webgpu/device.ts";

const RTOL = 1e-4;
const fixtures = await loadFixtures("kernels");
const { adapter, reason } = await probeAdapter();

for (const [name, params] of fixtures.cases) {
  const c = params as OpCase;
  if (c.op === "softmax") continue; // Not an operation of the plan: softmax runs on the host.
  Deno.test({
    name: `kernel ${name} matches PyTorch and the Wasm backend (webgpu)`,
    ignore: adapter === null,
    async fn() {
      const prepared = prepareCase(name, c);
      const weightFloats = caseWeightFloats(prepared);
      const gpu = await WebGpuBackend.create({ weightFloats, adapter: adapter! });
      const wasm = await WasmBackend.create({ weightFloats, threads: 1, memoryLimit: 1 << 30 });
      try {
        const out = await runCase(gpu, name, prepared);
        const torch = assertClose(out, fixtures.tensors.get(name)!.data, RTOL, name);
        const ref = await runCase(wasm, name, prepared);
        const vsWasm = assertClose(out, ref, RTOL, `${name} vs wasm`);
        console.log(
          `  ${name}: max rel error ${torch.toExponential(2)} vs torch, ` +
            `${vsWasm.toExponential(2)} vs wasm`,
        );
      } finally {
        await gpu.dispose();
        await wasm.dispose();
      }
    },
  });
}

if (adapter === null) console.log(`webgpu_ops: ignored, ${reason}`);

Deno.test({
  name: "NaN propagates through max pooling and ReLU as on the Wasm backend (webgpu)",
  ignore: adapter === null,
  async fn() {
    for (const name of ["maxpool_3_s1_p1", "conv_3x3_p1"]) {
      const prepared = prepareCase(name, fixtures.cases.get(name) as OpCase);
      const data = prepared.input.data.slice();
      for (let i = 0; i < data.length; i += 37) data[i] = Number.NaN;
      const withNaN = { ...prepared, input: new Tensor(data, prepared.input.shape) };
      const weightFloats = caseWeightFloats(prepared);
      const gpu = await WebGpuBackend.create({ weightFloats, adapter: adapter! });
      const wasm = await WasmBackend.create({ weightFloats, threads: 1, memoryLimit: 1 << 30 });
      try {
        const out = await runCase(gpu, name, withNaN);
        const ref = await runCase(wasm, name, withNaN);
        const nans = ref.filter(Number.isNaN).length;
        assert.ok(nans > 0, `${name}: expected NaN outputs`);
        assertClose(out, ref, RTOL, `${name} with NaN`);
      } finally {
        await gpu.dispose();
        await wasm.dispose();
      }
    }
  },
});
