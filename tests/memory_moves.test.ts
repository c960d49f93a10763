/**
 * The Wasm backend's memory moves (c74704a: one thread uses a fixed-size
 * memory like the threads build, and a larger plan moves to a new one),
 * attacked from the public surface: `model.plan()` + `model.backend.run()`
 * called concurrently, the backend disposed while a run waits, a
 * caller-supplied `wasmModule` (growable memory) at a `memoryLimit` that is
 * not a whole number of 64 KiB pages, and one-thread training whose weights,
 * gradients and Adam state (in Wasm memory, src/model/optim_state.ts) cross
 * several moves, against the same training on a memory that grows in place.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Adam, BackendError, GoogLeNet, MemoryLimitError, Tensor } from "../mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { compileKernels } from "../src/backend/wasm/kernels.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { assertSameBits } from "./_support/edge_child.ts";

/** A caller's precompiled module (the binary the models here run): its memory grows in place, never moves. */
const wasmModule = (await compileKernels(false)).module;

// Each larger than the one before it, so each moves a fixed memory (all but the
// first exceed the 224x224 plan the memory is sized for at create).
const SHAPES = [[1, 3, 224, 224], [4, 3, 224, 224], [2, 3, 288, 288], [6, 3, 224, 224]];

for (const threads of [1, 2]) {
  Deno.test(`concurrent backend.run() calls that move the memory (threads: ${threads}) give the sequential logits`, async () => {
    const inputs = SHAPES.map((s) => deterministicInput(`moves ${s}`, s));
    const sequential = await GoogLeNet.create({ threads, auxLogits: false, seed: 3 });
    const expected: Float32Array[] = [];
    try {
      for (const x of inputs) expected.push(((await sequential.forward(x)) as Tensor).data);
    } finally {
      await sequential.dispose();
    }
    const model = await GoogLeNet.create({ threads, auxLogits: false, seed: 3 });
    try {
      const backend = model.backend;
      const before = backend.memoryBytes();
      const plans = SHAPES.map((s) => model.plan(s));
      const results = await Promise.all(plans.map((plan, i) => backend.run(plan, inputs[i], [])));
      assert.ok(backend.memoryBytes() > before, "the runs moved the memory");
      results.forEach(([logits], i) =>
        assertSameBits(logits, expected[i], `run ${i} (${SHAPES[i]})`)
      );
    } finally {
      await model.dispose();
    }
  });

  Deno.test(`the backend disposed while a run moves its memory (threads: ${threads}): the run gives its logits or rejects with BackendError`, async () => {
    const x = deterministicInput("disposed", [6, 3, 224, 224]);
    // undefined: dispose in the same turn as the call (the run has not started, it must reject).
    for (const delay of [undefined, 0, 1, 20, 60, 150]) {
      const model = await GoogLeNet.create({ threads, auxLogits: false, seed: 3 });
      const backend = model.backend;
      const run = backend.run(model.plan(x.shape), x, []);
      if (delay !== undefined) await new Promise((resolve) => setTimeout(resolve, delay));
      const disposed = backend.dispose();
      const outcome = await run.then(
        ([logits]) => logits,
        (e: unknown) => e,
      );
      await disposed;
      await model.dispose();
      if (outcome instanceof Float32Array) {
        assert.notEqual(delay, undefined, "a run disposed before it started gave logits");
        assert.equal(outcome.length, 6000);
        continue;
      }
      assert.ok(
        outcome instanceof BackendError && /disposed/.test(outcome.message),
        `disposed after ${delay} ms: ${outcome}`,
      );
    }
  });
}

Deno.test("wasmModule with a memoryLimit that is not whole pages: a plan within the limit runs, one over it is a MemoryLimitError", async () => {
  const x = deterministicInput("limit", [2, 3, 224, 224]);
  const reference = await GoogLeNet.create({ threads: 1, auxLogits: false, seed: 3 });
  const plan = reference.plan(x.shape);
  // Weights, scratch and arena: what the forward needs, to the byte (not a multiple of 64 KiB).
  const need = (reference.backend as WasmBackend).planBytes(plan);
  const expected = ((await reference.forward(x)) as Tensor).data;
  await reference.dispose();
  assert.notEqual(need % 65536, 0, "the test needs a limit inside a page");
  const fits = await GoogLeNet.create({
    threads: 1,
    auxLogits: false,
    seed: 3,
    wasmModule,
    memoryLimit: need,
  });
  try {
    assertSameBits(((await fits.forward(x)) as Tensor).data, expected, "at memoryLimit = need");
  } finally {
    await fits.dispose();
  }
  const short = await GoogLeNet.create({
    threads: 1,
    auxLogits: false,
    seed: 3,
    wasmModule,
    memoryLimit: need - 1,
  });
  try {
    await assert.rejects(short.forward(x), MemoryLimitError);
  } finally {
    await short.dispose();
  }
});

Deno.test("one-thread training across memory moves keeps weights, gradients and Adam state: the bits of a memory that grows in place", async () => {
  // Batch and image growth after the training regions and the Adam state were added.
  const steps: [number, number][] = [[1, 64], [3, 224], [1, 64], [2, 256]];
  const train = async (growable: boolean) => {
    const model = await GoogLeNet.create({
      numClasses: 10,
      auxLogits: false,
      threads: 1,
      ...(growable ? { wasmModule } : {}),
    });
    try {
      const shapes = [...model.stateDict()].map(([k, t]) => [k, t.shape] as const);
      model.loadStateDict(deterministicStateDict(shapes));
      model.train();
      const opt = new Adam(model, { lr: 1e-3 });
      // Each memory the backend used (a move replaces the object; growing in place keeps it).
      const memories = new Set<WebAssembly.Memory>([(model.backend as WasmBackend).memory]);
      for (const [i, [n, size]] of steps.entries()) {
        opt.zeroGrad();
        const x = deterministicInput(`moves train ${i}`, [n, 3, size, size]);
        await model.backward(x, Array.from({ length: n }, (_, j) => (3 * i + j) % 10), {
          dropout: false,
        });
        memories.add((model.backend as WasmBackend).memory);
        await opt.step();
        memories.add((model.backend as WasmBackend).memory);
      }
      const grads = model.gradients();
      model.eval();
      const logits =
        ((await model.forward(deterministicInput("moves eval", [2, 3, 96, 96]))) as Tensor)
          .data;
      return {
        memories: memories.size,
        logits,
        params: model.stateDict(),
        grads,
        state: opt.stateDict().state,
      };
    } finally {
      await model.dispose();
    }
  };
  const moved = await train(false), grown = await train(true);
  assert.ok(moved.memories >= 4, `the fixed memory moved: ${moved.memories} memories`);
  assert.equal(grown.memories, 1, "the wasmModule's memory grew in place");
  assertSameBits(moved.logits, grown.logits, "logits after training");
  for (const [key, t] of grown.params) assertSameBits(moved.params.get(key)!.data, t.data, key);
  for (const [key, t] of grown.grads) {
    assertSameBits(moved.grads.get(key)!.data, t.data, `${key}.grad`);
  }
  assert.equal(moved.state.size, grown.state.size);
  assert.ok(grown.state.size > 0, "Adam kept state");
  for (const [index, state] of grown.state) {
    for (const [slot, value] of Object.entries(state)) {
      const other = moved.state.get(index)![slot];
      if (value instanceof Tensor) {
        assertSameBits((other as Tensor).data, value.data, `${index}.${slot}`);
      } else assert.equal(other, value, `${index}.${slot}`);
    }
  }
});
