/**
 * Every benchmark peer (bench/peers/) computes the seed GoogLeNet's logits
 * with the same weights as PyTorch: tests/fixtures/peers/seed_logits.json,
 * written by tools/make_peer_fixtures.py. A peer that cannot run here
 * (no addon, no WebGPU adapter) is reported and skipped.
 */

import assert from "node:assert/strict";
import {
  buildOnnxGoogLeNet,
  createOrtNodeRunner,
  createOrtWebGpuRunner,
  createOrtWebRunner,
  createTfjsWasmRunner,
  isRunner,
  type PeerRunner,
  type PeerUnavailable,
  seedStateDictShapes,
} from "../bench/peers/mod.ts";
import { ShapeError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";

interface PeerFixture {
  state_dict: [string, number[]][];
  input: { name: string; shape: number[] };
  logits: number[];
}

const fixture: PeerFixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/peers/seed_logits.json", import.meta.url)),
);
const stateDict = deterministicStateDict(fixture.state_dict);
const input = deterministicInput(fixture.input.name, fixture.input.shape);
const refMax = Math.max(...fixture.logits.map(Math.abs));

async function checkParity(
  create: () => Promise<PeerRunner | PeerUnavailable>,
  batch = 1,
): Promise<void> {
  const peer = await create();
  if (!isRunner(peer)) {
    console.log(`${peer.name}: skipped, ${peer.reason}`);
    return;
  }
  try {
    // Batch > 1 repeats the input, so every row must match the reference.
    const data = new Float32Array(batch * input.size);
    for (let i = 0; i < batch; i++) data.set(input.data, i * input.size);
    const logits = await peer.run(new Tensor(data, [batch, ...input.shape.slice(1)]));
    assert.equal(logits.length, batch * fixture.logits.length);
    let maxDiff = 0;
    logits.forEach((v, i) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - fixture.logits[i % fixture.logits.length]));
    });
    console.log(
      `${peer.name}, batch ${batch}: max|diff| = ${maxDiff.toExponential(2)} ` +
        `(${(maxDiff / refMax).toExponential(2)} of max|ref| = ${refMax.toFixed(3)})`,
    );
    assert.ok(maxDiff <= 1e-4 * refMax, `${peer.name}: max|diff| ${maxDiff} > 1e-4 * ${refMax}`);
    await assert.rejects(peer.run(Tensor.zeros([1, 3, 225, 224])), ShapeError);
  } finally {
    await peer.dispose();
  }
}

// Worker threads of the runtimes outlive a test's ops until they are disposed.
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("seed state-dict table matches PyTorch's keys, shapes and order", () => {
  assert.deepEqual(seedStateDictShapes(), fixture.state_dict);
});

Deno.test("ONNX model embeds every weight once", () => {
  const bytes = buildOnnxGoogLeNet(stateDict);
  const weights = [...stateDict.values()].reduce((n, t) => n + t.data.byteLength, 0);
  assert.ok(bytes.length > weights && bytes.length < weights + 64 * 1024, `${bytes.length} bytes`);
});

Deno.test(
  "onnxruntime-web wasm, 1 thread, matches PyTorch",
  opts,
  () => checkParity(() => createOrtWebRunner(stateDict, { threads: 1 })),
);

Deno.test(
  "onnxruntime-web wasm, 2 threads, batch 2, matches PyTorch",
  opts,
  () => checkParity(() => createOrtWebRunner(stateDict, { threads: 2 }), 2),
);

Deno.test(
  "onnxruntime-web webgpu matches PyTorch",
  opts,
  () => checkParity(() => createOrtWebGpuRunner(stateDict)),
);

Deno.test(
  "tfjs-backend-wasm, batch 2, matches PyTorch",
  opts,
  () => checkParity(() => createTfjsWasmRunner(stateDict), 2),
);

Deno.test("tfjs-backend-wasm reports that 2 threads are unavailable", async () => {
  const peer = await createTfjsWasmRunner(stateDict, { threads: 2 });
  assert.ok(!isRunner(peer) && peer.reason.includes("worker"));
});

Deno.test(
  "onnxruntime-node, 2 threads, matches PyTorch",
  opts,
  () => checkParity(() => createOrtNodeRunner(stateDict, { threads: 2 })),
);
