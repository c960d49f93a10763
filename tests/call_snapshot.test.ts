/**
 * A call uses its arguments and the weights as they were when it was made
 * (PyTorch's synchronous semantics, kept by a queue of asynchronous calls):
 * - `forward(x)` copies `x` when called: mutating its array, swapping its
 *   `data` or detaching its buffer while the call waits changes nothing;
 * - `loadStateDict(b)` right after `forward(x)` leaves that forward on the old
 *   weights and later calls on `b`'s; it reads each entry once, so a map whose
 *   `get()` answers differently on a second read loads what was checked;
 * - `backward(x, labels)` copies its labels;
 * - an optimizer step waits for queued calls and later calls see its weights.
 */

import assert from "node:assert/strict";
import { AdamW, GoogLeNet, StateDictError, Tensor } from "../mod.ts";
import { deterministicInput } from "../tools/deterministic.ts";

async function model(seed: number, threads = 1): Promise<GoogLeNet> {
  return await GoogLeNet.create({
    seed,
    threads,
    auxLogits: false,
    numClasses: 10,
    backend: "wasm",
  });
}

const logits = async (m: GoogLeNet, x: Tensor) => ((await m.forward(x)) as Tensor).data;

Deno.test("forward uses its input as it was when called", async () => {
  const m = await model(1);
  try {
    const x = deterministicInput("snap", [1, 3, 64, 64]);
    const baseline = await logits(m, x);
    // Queue a call behind a slow one, then change the input while it waits.
    const first = m.forward(deterministicInput("other", [2, 3, 96, 96]));
    const mutated = new Tensor(x.data.slice(), x.shape);
    const a = m.forward(mutated);
    mutated.data.fill(Number.NaN);
    const swapped = new Tensor(x.data.slice(), x.shape);
    const b = m.forward(swapped);
    (swapped as { data: Float32Array }).data = new Float32Array(swapped.size).fill(7);
    const detached = new Tensor(x.data.slice(), x.shape);
    const c = m.forward(detached);
    (detached.data.buffer as ArrayBuffer).transfer();
    assert.equal(detached.data.length, 0, "the buffer was detached");
    await first;
    for (const [name, call] of [["mutated", a], ["swapped", b], ["detached", c]] as const) {
      assert.deepEqual(((await call) as Tensor).data, baseline, name);
    }
  } finally {
    await m.dispose();
  }
});

Deno.test("loadStateDict after a queued forward: that forward sees the old weights, the next the new", async () => {
  const a = await model(1), b = await model(2);
  try {
    const x = deterministicInput("snap", [1, 3, 64, 64]);
    const [la, lb] = [await logits(a, x), await logits(b, x)];
    const pending = a.forward(x);
    a.loadStateDict(b.stateDict());
    const after = a.forward(x);
    assert.deepEqual(((await pending) as Tensor).data, la);
    assert.deepEqual(((await after) as Tensor).data, lb);
    assert.deepEqual(a.stateDict().get("fc.bias")!.data, b.stateDict().get("fc.bias")!.data);
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

Deno.test("loadStateDict reads each entry once: a map that answers differently later loads what was checked", async () => {
  const a = await model(1), b = await model(2);
  try {
    const x = deterministicInput("snap", [1, 3, 64, 64]);
    const lb = await logits(b, x);
    const good = b.stateDict();
    const reads = new Map<string, number>();
    class Fickle extends Map<string, Tensor> {
      override get(key: string): Tensor | undefined {
        const n = (reads.get(key) ?? 0) + 1;
        reads.set(key, n);
        const t = super.get(key)!;
        return n === 1 ? t : new Tensor(new Float32Array(t.size).fill(Number.NaN), t.shape);
      }
    }
    a.loadStateDict(new Fickle(good));
    assert.deepEqual(await logits(a, x), lb);
    assert.ok([...reads.values()].every((n) => n === 1), "an entry was read twice");
    // A tensor whose data changes after the call does not reach the model either.
    const copy = b.stateDict();
    a.loadStateDict(copy);
    for (const t of copy.values()) t.data.fill(Number.NaN);
    assert.deepEqual(await logits(a, x), lb);
    // All or nothing: a bad entry changes nothing.
    const bad = b.stateDict();
    bad.set("fc.weight", new Tensor(new Float32Array(3), [3]));
    assert.throws(() => a.loadStateDict(bad), StateDictError);
    assert.deepEqual(await logits(a, x), lb);
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

Deno.test("backward copies its labels; an optimizer step waits for queued calls", async () => {
  const m = await model(3), ref = await model(3);
  try {
    const x = deterministicInput("snap", [2, 3, 64, 64]);
    for (const net of [m, ref]) net.train();
    const labels = [1, 2];
    const pending = m.backward(x, labels, { dropout: false });
    labels[0] = 9;
    const expected = await ref.backward(x, [1, 2], { dropout: false });
    assert.equal((await pending).loss, expected.loss);
    const before = await logits(m.eval(), x);
    const opt = new AdamW(m, { lr: 1e-2 });
    const queued = m.forward(x);
    const step = opt.step();
    const afterStep = m.forward(x);
    assert.deepEqual(((await queued) as Tensor).data, before, "the queued forward ran first");
    await step;
    assert.notDeepEqual(((await afterStep) as Tensor).data, before, "the step changed the weights");
  } finally {
    await m.dispose();
    await ref.dispose();
  }
});
