/**
 * WebGPU failure modes, each a {@linkcode BackendError} with a useful message
 * and never a hang: activations or weights beyond the device's limits (the
 * limits are lowered through the backend's `limits` option, as a device
 * cannot be requested below the defaults), a shader that does not compile, a
 * destroyed device, a disposed backend. Ignored, with the reason printed,
 * when the runtime has no WebGPU adapter.
 */

import assert from "node:assert/strict";
import { BackendError } from "../src/errors.ts";
import { PlanBuilder } from "../src/graph/planner.ts";
import { MaxPool2d } from "../src/model/layers.ts";
import { Tensor } from "../src/tensor.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { compilePipeline, probeAdapter, requestDevice } from "../src/backend/webgpu/device.ts";

const { adapter, reason } = await probeAdapter();
if (adapter === null) console.log(`webgpu_errors: ignored, ${reason}`);
const ignore = adapter === null;

/** A one-maxpool plan on an [n, 8, 32, 32] input, and its input. */
function poolPlan(n = 1) {
  const b = new PlanBuilder();
  const x = b.alloc(n, 32, 32, 8, "input");
  const y = new MaxPool2d("pool", 2, 2, 0, false).lower(b, x);
  const plan = b.build(x, [{ value: y, shape: [n, 16, 16, 8] }]);
  const input = new Tensor(Float32Array.from({ length: n * 8 * 32 * 32 }, (_, i) => i), [
    n,
    8,
    32,
    32,
  ]);
  return { plan, input };
}

/** Fails the test instead of hanging when `promise` does not settle within `ms`. */
async function settles<T>(promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "webgpu: an activation buffer beyond maxStorageBufferBindingSize is a BackendError",
  ignore,
  async fn() {
    const backend = await WebGpuBackend.create({
      weightFloats: 0,
      adapter: adapter!,
      limits: { maxStorageBufferBindingSize: 16 * 1024 },
    });
    try {
      const { plan, input } = poolPlan();
      await assert.rejects(
        () => backend.run(plan, input, []),
        (e) =>
          e instanceof BackendError && /"pool".*maxStorageBufferBindingSize is 16\.0 KiB/.test(
            e.message,
          ),
      );
      // The same plan runs with the device's own limits.
      const ok = await WebGpuBackend.create({ weightFloats: 0, adapter: adapter! });
      const [out] = await ok.run(plan, input, []);
      assert.equal(out.length, 16 * 16 * 8);
      await ok.dispose();
    } finally {
      await backend.dispose();
    }
  },
});

Deno.test({
  name: "webgpu: an arena or weights beyond maxBufferSize is a BackendError",
  ignore,
  async fn() {
    await assert.rejects(
      () =>
        WebGpuBackend.create({
          weightFloats: 1 << 20,
          adapter: adapter!,
          limits: { maxBufferSize: 1 << 20 },
        }),
      (e) => e instanceof BackendError && /weights need a 4\.0 MiB GPU buffer/.test(e.message),
    );
    const backend = await WebGpuBackend.create({
      weightFloats: 0,
      adapter: adapter!,
      limits: { maxBufferSize: 16 * 1024 },
    });
    try {
      const { plan, input } = poolPlan(2);
      await assert.rejects(
        () => backend.run(plan, input, []),
        (e) => e instanceof BackendError && /maxBufferSize/.test(e.message),
      );
    } finally {
      await backend.dispose();
    }
  },
});

Deno.test({
  name: "webgpu: a shader that does not compile is a BackendError carrying the WGSL message",
  ignore,
  async fn() {
    const device = await requestDevice(adapter!);
    try {
      const broken = "@compute @workgroup_size(1)\nfn main() {\n  let x: i32 = 1.5;\n}\n";
      await assert.rejects(
        () => settles(compilePipeline(device, "broken", broken)),
        (e) => {
          assert.ok(e instanceof BackendError, `expected BackendError, got ${e}`);
          assert.match(
            e.message,
            /Compiling the WebGPU kernel "broken" failed: .*(i32|f32|abstract)/s,
          );
          console.log(`  ${e.message.split("\n")[0]}`);
          return true;
        },
      );
    } finally {
      device.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: running on a destroyed device is a BackendError, not a hang",
  ignore,
  async fn() {
    const device = await requestDevice(adapter!);
    const backend = await WebGpuBackend.create({ weightFloats: 0, device });
    const { plan, input } = poolPlan();
    await backend.run(plan, input, []);
    device.destroy();
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        () => settles(backend.run(plan, input, [])),
        (e) => e instanceof BackendError && /device was lost/.test(e.message),
      );
    }
    await backend.dispose();
  },
});

Deno.test({
  name: "webgpu: running on a disposed backend is a BackendError",
  ignore,
  async fn() {
    const backend = await WebGpuBackend.create({ weightFloats: 16, adapter: adapter! });
    await backend.dispose();
    const { plan, input } = poolPlan();
    await assert.rejects(() => backend.run(plan, input, []), /disposed/);
    assert.throws(() => backend.weights(), BackendError);
  },
});
