/**
 * A peer loaded into the same process may replace `globalThis.Worker` with
 * Node's `worker_threads.Worker` (an EventEmitter: no `addEventListener`, no
 * `onmessage`), as TensorFlow.js's threaded wasm backend and onnxruntime-web do
 * under Deno. The bench failed that way ("worker.addEventListener is not a
 * function"). The library keeps the Web Worker constructor it was loaded with:
 * a 2-thread model still runs, and gives the 1-thread bits.
 */

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { GoogLeNet, type Tensor } from "../mod.ts";
import { webWorker } from "../src/web_worker.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { assertSameBits } from "./_support/edge_child.ts";

/** What Emscripten's Node path installs: an EventEmitter-shaped worker. */
class NodeStyleWorker extends EventEmitter {
  constructor(_url: string | URL) {
    super();
    throw new Error("the foreign Worker was used");
  }
  postMessage(_message: unknown): void {}
  terminate(): void {}
}

Deno.test("a Node-style globalThis.Worker installed after import does not break the threads", async () => {
  const native = globalThis.Worker;
  const x = deterministicInput("foreign worker", [2, 3, 40, 40]);
  const one = await GoogLeNet.create({ auxLogits: false, threads: 1, seed: 7 });
  const expected = (await one.forward(x)) as Tensor;
  one.dispose();
  // deno-lint-ignore no-explicit-any
  (globalThis as any).Worker = NodeStyleWorker;
  try {
    assert.equal(webWorker(), native, "the Web Worker captured at load is used");
    const two = await GoogLeNet.create({ auxLogits: false, threads: 2, seed: 7 });
    const got = (await two.forward(x)) as Tensor;
    two.dispose();
    assertSameBits(got.data, expected.data, "2 threads under a foreign Worker global");
  } finally {
    globalThis.Worker = native;
  }
});
