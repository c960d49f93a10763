/**
 * Backend selection: the decision of `createBackend` on fake adapter
 * descriptions (hardware, llvmpipe, lavapipe, SwiftShader, fallback, none),
 * and `createBackend` itself on this machine.
 */

import assert from "node:assert/strict";
import {
  type AdapterDescription,
  createBackend,
  decideBackend,
  isSoftwareAdapter,
} from "../src/backend/select.ts";
import { probeAdapter } from "../src/backend/webgpu/device.ts";
import { describeAdapter } from "../src/backend/select.ts";
import { BackendError } from "../src/errors.ts";

function adapter(fields: Partial<AdapterDescription>): AdapterDescription {
  return {
    vendor: "",
    architecture: "",
    device: "",
    description: "",
    isFallbackAdapter: false,
    ...fields,
  };
}

const HARDWARE = [
  adapter({ vendor: "nvidia", architecture: "hopper", description: "NVIDIA H200" }),
  adapter({ vendor: "apple", architecture: "metal-3" }),
  adapter({ vendor: "4098", description: "AMD Radeon RX 7900 XTX (RADV NAVI31)" }),
  adapter({ vendor: "intel", architecture: "gen-12lp" }),
];
const SOFTWARE = [
  adapter({ vendor: "65541", description: "llvmpipe (LLVM 15.0.6, 256 bits)" }),
  adapter({ vendor: "mesa", description: "lavapipe" }),
  adapter({ vendor: "google", architecture: "swiftshader", description: "SwiftShader Device" }),
  adapter({ vendor: "microsoft", description: "Microsoft Basic Render Driver (software)" }),
  adapter({ vendor: "nvidia", isFallbackAdapter: true }),
];

Deno.test("isSoftwareAdapter tells software rasterisers from GPUs", () => {
  for (const a of HARDWARE) assert.equal(isSoftwareAdapter(a), false, JSON.stringify(a));
  for (const a of SOFTWARE) assert.equal(isSoftwareAdapter(a), true, JSON.stringify(a));
});

Deno.test("decideBackend: auto takes WebGPU only on hardware; webgpu needs an adapter", () => {
  for (const a of HARDWARE) {
    assert.equal(decideBackend("auto", a), "webgpu");
    assert.equal(decideBackend("webgpu", a), "webgpu");
    assert.equal(decideBackend("wasm", a), "wasm");
  }
  for (const a of SOFTWARE) {
    assert.equal(decideBackend("auto", a), "wasm");
    assert.equal(decideBackend("webgpu", a), "webgpu");
  }
  assert.equal(decideBackend("auto", null), "wasm");
  assert.equal(decideBackend("wasm", null), "wasm");
  assert.throws(
    () => decideBackend("webgpu", null, "navigator.gpu is missing"),
    (e) =>
      e instanceof BackendError &&
      e.message.startsWith(
        'Backend "webgpu" requested but no WebGPU adapter is available (navigator.gpu is missing)',
      ),
  );
  assert.throws(() => decideBackend("cuda" as "auto", null), /must be "auto", "wasm" or "webgpu"/);
});

Deno.test("createBackend on this machine follows the decision", async () => {
  const { adapter, reason } = await probeAdapter();
  const info = adapter && describeAdapter(adapter);
  console.log(`  adapter: ${info ? JSON.stringify(info) : reason}`);
  const options = { weightFloats: 64, threads: 1, memoryLimit: 1 << 26 };
  const wasm = await createBackend("wasm", options);
  assert.equal(wasm.kind, "wasm");
  await wasm.dispose();
  const auto = await createBackend("auto", options);
  assert.equal(auto.kind, decideBackend("auto", info));
  await auto.dispose();
  if (adapter) {
    const gpu = await createBackend("webgpu", options);
    assert.equal(gpu.kind, "webgpu");
    assert.equal(gpu.weights().length, 64);
    await gpu.dispose();
  } else {
    await assert.rejects(() => createBackend("webgpu", options), BackendError);
  }
});
