/**
 * The training API in the order PyTorch users write it, awaited or not, and
 * its checks (cases found by a hostile review):
 * - `loadStateDict` while a step and a forward are queued: they run on the
 *   weights they were made with, the load applies after them, and the model
 *   ends with exactly the loaded weights;
 * - `backward; step; zeroGrad` without awaits gives the awaited loop's weights;
 * - `zeroGrad` (its zeroing runs on the kernels' threads): the gradients read
 *   as zeros at once, and the next backward starts from zero;
 * - `updateParameters` whose callback throws after writing still leaves
 *   `stateDict()` and the kernels agreeing; an async callback is awaited;
 * - torchvision's gradients (a folded BatchNorm, by the chain rule) do not
 *   change when the weights change after the backward that made them;
 * - an optimizer's `loadStateDict` refuses malformed state (a parameter's
 *   state without all of its keys, a group key it does not keep) and restores the
 *   group's hyper-parameters; called while a step is queued it applies after
 *   that step (which keeps the hyper-parameters it was called with) and
 *   before the steps called after it, as the awaited loop does; `trainable` must select a parameter that
 *   trains; `train()` takes a boolean; `crossEntropy`'s weight is a number;
 * - `dropoutState` set on a fresh model of the same weights continues the
 *   masks of the model it was read from (what `--resume` relies on); a
 *   malformed state is refused; each word is read once (a getter or proxy
 *   cannot pass the check with one value and set another), a hole or a huge
 *   length is refused;
 * - Adam's `betas` getter hands out a frozen pair: writing into it throws,
 *   instead of setting an unchecked beta under a step already called.
 */

import assert from "node:assert/strict";
import {
  Adam,
  crossEntropy,
  GoogLeNet,
  OptionError,
  SGD,
  ShapeError,
  StateDictError,
  Tensor,
} from "../mod.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { Random } from "../src/model/random.ts";

const x = deterministicInput("api", [2, 3, 64, 64]);
const small = (seed: number, more: Record<string, unknown> = {}) =>
  GoogLeNet.create({ numClasses: 3, auxLogits: false, threads: 1, backend: "wasm", seed, ...more });
const logits = async (m: GoogLeNet) => ((await m.eval().forward(x)) as Tensor).data;

Deno.test("loadStateDict behind a queued step and forward: they see the old weights, the end state is the loaded one", async () => {
  const m = await small(1, { trainable: ["fc."] }), other = await small(7);
  try {
    const before = await logits(m);
    const loaded = await logits(other);
    m.train();
    await m.backward(x, [0, 1], { dropout: false });
    const opt = new SGD(m, { lr: 10 });
    const step = opt.step();
    m.eval();
    const queued = m.forward(x);
    m.loadStateDict(other.stateDict());
    // stateDict() shows the load at once, though it applies after the queued calls.
    assert.deepEqual(m.stateDict().get("fc.bias")!.data, other.stateDict().get("fc.bias")!.data);
    await step;
    const seen = ((await queued) as Tensor).data;
    assert.notDeepEqual(seen, before, "the queued forward saw the step");
    assert.notDeepEqual(seen, loaded, "the queued forward ran before the load");
    assert.deepEqual(await logits(m), loaded, "the load applied after the step, not under it");
    for (const [key, t] of other.stateDict()) {
      assert.deepEqual(m.stateDict().get(key)!.data, t.data, key);
    }
  } finally {
    await m.dispose();
    await other.dispose();
  }
});

Deno.test("backward, step, zeroGrad without awaits give the awaited loop's weights", async () => {
  const a = await small(3), b = await small(3);
  try {
    const labels = [[0, 2], [1, 1], [2, 0]];
    const optA = new SGD(a.train(), { lr: 0.1, momentum: 0.9 });
    for (const l of labels) {
      await a.backward(x, l, { dropout: false });
      await optA.step();
      optA.zeroGrad();
    }
    const optB = new SGD(b.train(), { lr: 0.1, momentum: 0.9 });
    const calls: Promise<unknown>[] = [];
    for (const l of labels) {
      calls.push(b.backward(x, l, { dropout: false }), optB.step());
      optB.zeroGrad();
    }
    await Promise.all(calls);
    assert.deepEqual(await logits(b), await logits(a));
    for (const g of b.gradients().values()) assert.ok(g.data.every((v) => v === 0), "zeroed last");
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

Deno.test("zeroGrad: the gradients read as zeros at once, and the next backward starts from zero (1 and 2 threads)", async () => {
  for (const threads of [1, 2]) {
    const a = await small(10, { threads }), b = await small(10, { threads });
    try {
      await a.train().backward(x, [0, 1], { dropout: false });
      a.zeroGrad();
      for (const [key, g] of a.gradients()) assert.ok(g.data.every((v) => v === 0), key);
      const y = deterministicInput("api zero", [2, 3, 64, 64]);
      await a.backward(y, [2, 1], { dropout: false });
      await b.train().backward(y, [2, 1], { dropout: false });
      const fresh = b.gradients();
      for (const [key, g] of a.gradients()) {
        assert.deepEqual(g.data, fresh.get(key)!.data, `${threads} threads: ${key}`);
      }
    } finally {
      await a.dispose();
      await b.dispose();
    }
  }
});

Deno.test("updateParameters: a callback that throws after writing leaves stateDict() and the kernels agreeing; async ones are awaited", async () => {
  const m = await small(4, { trainable: ["fc."] }), ref = await small(4);
  try {
    await assert.rejects(
      () =>
        m.updateParameters((params) => {
          params.find((p) => p.name === "fc.bias")!.data.fill(5);
          throw new Error("half done");
        }),
      /half done/,
    );
    assert.ok(m.stateDict().get("fc.bias")!.data.every((v) => v === 5));
    const sd = m.stateDict();
    ref.loadStateDict(sd);
    assert.deepEqual(await logits(m), await logits(ref), "forward runs what stateDict() shows");
    await m.updateParameters(async (params) => {
      await new Promise((r) => setTimeout(r, 10));
      params.find((p) => p.name === "fc.bias")!.data.fill(-1);
    });
    ref.loadStateDict(m.stateDict());
    assert.ok(m.stateDict().get("fc.bias")!.data.every((v) => v === -1));
    assert.deepEqual(await logits(m), await logits(ref));
  } finally {
    await m.dispose();
    await ref.dispose();
  }
});

Deno.test("torchvision: gradients stay as the backward made them when the weights change afterwards", async () => {
  const m = await GoogLeNet.create({
    variant: "torchvision",
    auxLogits: false,
    numClasses: 3,
    threads: 1,
    backend: "wasm",
  });
  try {
    await m.train().backward(x, [0, 2], { dropout: false });
    const first = m.gradients();
    await new SGD(m, { lr: 1 }).step();
    const after = m.gradients();
    for (const [key, g] of first) assert.deepEqual(after.get(key)!.data, g.data, key);
    // And they add up across backwards like PyTorch's .grad.
    m.zeroGrad();
    await m.backward(x, [0, 2], { dropout: false });
    assert.ok(m.gradients().get("conv1.bn.weight")!.data.some((v) => v !== 0));
  } finally {
    await m.dispose();
  }
});

Deno.test("optimizer loadStateDict: malformed state is refused, the group's hyper-parameters are restored", async () => {
  const m = await small(5, { trainable: ["fc."] });
  try {
    await m.train().backward(x, [0, 1], { dropout: false });
    const saved = new Adam(m, { lr: 1e-3, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.01 });
    await saved.step();
    const sd = saved.stateDict();
    const fresh = new Adam(m);
    fresh.loadStateDict(sd);
    // A parameter not stepped yet has no state: an empty entry loads.
    new Adam(m).loadStateDict({ ...sd, state: new Map([[0, {}]]) });
    assert.deepEqual([...fresh.betas], [0.8, 0.95]);
    assert.equal(fresh.eps, 1e-6);
    assert.equal(fresh.weightDecay, 0.01);
    const broken = (edit: (s: typeof sd) => void) => {
      const copy = saved.stateDict();
      edit(copy);
      return copy;
    };
    const cases: [string, ReturnType<typeof broken>, RegExp][] = [
      ["a null entry", broken((s) => s.state.set(0, null as never)), /must be an object/],
      ["a number entry", broken((s) => s.state.set(0, 5 as never)), /must be an object/],
      ["a misspelt key", broken((s) => (s.state.get(0)!.exp_avgg = 1)), /"exp_avgg": Adam keeps/],
      ["a negative step", broken((s) => (s.state.get(0)!.step = -3)), /non-negative integer/],
      [
        "a string step",
        broken((s) => (s.state.get(0)!.step = "1" as never)),
        /\.step must be a non-negative integer, got "1"$/,
      ],
      [
        "two groups",
        broken((s) => s.paramGroups.push({ ...s.paramGroups[0] })),
        /one parameter group/,
      ],
      ["betas out of range", broken((s) => (s.paramGroups[0].betas = [1.5, 0.9])), /betas/],
      // Each of these loaded: the moments with their bias corrections restarted at step 1, or a
      // step count over zero moments, or a key of another optimizer or PyTorch's dropped.
      [
        "moments without their step",
        broken((s) => delete s.state.get(1)!.step),
        /^Optimizer state "fc\.bias" has "exp_avg", "exp_avg_sq" without "step": expected all of "step", "exp_avg", "exp_avg_sq" \(a parameter stepped\) or none \(not stepped yet\)$/,
      ],
      [
        "a step without moments",
        broken((s) => {
          delete s.state.get(0)!.exp_avg;
          delete s.state.get(0)!.exp_avg_sq;
        }),
        /"fc\.weight" has "step" without "exp_avg", "exp_avg_sq"/,
      ],
      [
        "PyTorch's weight_decay",
        broken((s) => (s.paramGroups[0].weight_decay = 0.5)),
        /^The parameter group has "weight_decay": Adam keeps "betas", "eps", "weightDecay", "lr", "params"$/,
      ],
      [
        "amsgrad and SGD's momentum",
        broken((s) => Object.assign(s.paramGroups[0], { amsgrad: true, momentum: 0.9 })),
        /^The parameter group has "amsgrad", "momentum": Adam keeps /,
      ],
    ];
    for (const [what, dict, message] of cases) {
      const target = new Adam(m);
      assert.throws(
        () => target.loadStateDict(dict),
        (e: Error) => e instanceof StateDictError && message.test(e.message),
        what,
      );
      assert.deepEqual([...target.betas], [0.9, 0.999], `${what}: nothing restored`);
    }
    // Each tensor's data is read once: a getter cannot pass the finite check with one array
    // and be copied from another (NaN moments would then be the state).
    const sneaky = saved.stateDict();
    const t = sneaky.state.get(0)!.exp_avg as Tensor;
    const clean = t.data, poisoned = t.data.slice().fill(NaN);
    let reads = 0;
    Object.defineProperty(t, "data", { get: () => (reads++ < 2 ? clean : poisoned) });
    const target = new Adam(m);
    target.loadStateDict(sneaky);
    assert.deepEqual((target.stateDict().state.get(0)!.exp_avg as Tensor).data, clean);
  } finally {
    await m.dispose();
  }
});

Deno.test("optimizer loadStateDict behind a queued step: ordered like step(), as the awaited loop", async () => {
  const source = await small(8, { trainable: ["fc."] });
  const a = await small(9, { trainable: ["fc."] }), b = await small(9, { trainable: ["fc."] });
  try {
    // A saved state that differs in every way: step counts, moments, betas, eps, lr.
    await source.train().backward(x, [2, 2], { dropout: false });
    const saver = new Adam(source, { lr: 0.05, betas: [0.5, 0.6], eps: 1e-3 });
    await saver.step();
    await saver.step();
    const sd = saver.stateDict();
    const run = async (m: GoogLeNet, awaited: boolean) => {
      const opt = new Adam(m.train(), { lr: 0.01 });
      const calls: Promise<unknown>[] = [];
      const call = async (p: Promise<unknown>) => awaited ? await p : calls.push(p);
      await call(m.backward(x, [0, 1], { dropout: false }));
      await call(opt.step());
      opt.loadStateDict(sd);
      // stateDict() shows the load at once, though it applies after the queued step.
      assert.equal(opt.stateDict().state.get(0)?.step, 2);
      assert.equal(opt.lr, 0.05);
      opt.zeroGrad();
      await call(m.backward(x, [1, 2], { dropout: false }));
      await call(opt.step());
      await Promise.all(calls);
      return { weights: m.stateDict(), state: opt.stateDict() };
    };
    const awaited = await run(a, true), queued = await run(b, false);
    for (const [key, t] of awaited.weights) {
      assert.deepEqual(queued.weights.get(key)!.data, t.data, key);
    }
    assert.deepEqual(queued.state, awaited.state);
    assert.equal(awaited.state.state.get(0)?.step, 3, "the second step continued the loaded state");
    assert.deepEqual(awaited.state.paramGroups[0].betas, [0.5, 0.6]);
  } finally {
    await source.dispose();
    await a.dispose();
    await b.dispose();
  }
});

Deno.test("trainable must select a parameter that trains; train() takes a boolean; crossEntropy's weight is a number", async () => {
  await assert.rejects(
    () => GoogLeNet.create({ trainable: [], threads: 1, backend: "wasm" }),
    (e: Error) => e instanceof StateDictError && /selects no parameter that trains/.test(e.message),
  );
  await assert.rejects(
    () =>
      GoogLeNet.create({
        variant: "torchvision",
        trainable: ["conv1.bn.running_mean"],
        threads: 1,
        backend: "wasm",
      }),
    /selects no parameter that trains/,
  );
  const m = await small(6);
  try {
    assert.throws(() => m.train("false" as never), ShapeError);
    assert.equal(m.training, false);
  } finally {
    await m.dispose();
  }
  const t = new Tensor(new Float32Array([1, 0, 0]), [1, 3]);
  assert.throws(() => crossEntropy(t, [0], "2" as never), OptionError);
  assert.throws(() => crossEntropy(t, [0], Number.NaN), OptionError);
});

Deno.test("dropoutState: a fresh model given another's state draws its next masks; bad states are refused", async () => {
  const labels = [0, 2];
  const a = await small(4), b = await small(4);
  try {
    a.train();
    b.train();
    const firstA = await a.backward(x, labels);
    const firstB = await b.backward(x, labels);
    assert.equal(firstB.loss, firstA.loss, "same seed, same first masks");
    const state = a.dropoutState;
    assert.notDeepEqual(state, b.dropoutState.map(() => 0));
    const secondA = await a.backward(x, labels);
    // b restarts a's stream where it was read: b's next backward repeats a's second.
    b.dropoutState = state;
    const secondB = await b.backward(x, labels);
    assert.equal(secondB.loss, secondA.loss);
    assert.notEqual(secondA.loss, firstA.loss, "the second masks differ from the first");
    assert.deepEqual(b.dropoutState, a.dropoutState);
    for (const bad of [[1, 2, 3], [0, 0, 0, 0], [1, 2, 3, 2 ** 32], [1, 2, 3, 0.5], "1234"]) {
      assert.throws(
        () => (b.dropoutState = bad as never),
        (e: unknown) =>
          e instanceof OptionError &&
          /^Expected dropoutState to be 4 integers from 0 to 2\^32 - 1, not all 0/.test(
            (e as Error).message,
          ),
      );
    }
    assert.deepEqual(b.dropoutState, a.dropoutState, "a refused state changes nothing");
    // Every state it hands out is one it takes back (unsigned words), draw after draw.
    const random = new Random(4 ^ 0x5bd1e995);
    for (let i = 0; i < 64; i++) {
      random.nextUint32();
      b.dropoutState = random.state;
      assert.deepEqual(b.dropoutState, random.state);
    }
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

Deno.test("dropoutState: the state is read once, as it was when set (getters, holes)", async () => {
  const m = await small(4);
  try {
    // Each word is read once: a getter that later reads NaN (or 0) cannot slip past the check.
    const words = [5, 6, 7, 8];
    let reads = 0;
    const changing = [0, 6, 7, 8];
    Object.defineProperty(changing, 0, { get: () => (reads++ === 0 ? 5 : NaN), enumerable: true });
    m.dropoutState = changing;
    assert.deepEqual(m.dropoutState, words);
    assert.equal(reads, 1);
    // A getter that reads 0 once checked would make the state all zero (a stream of zeros).
    let n = 0;
    const zeroing = new Proxy([1, 1, 1, 1], {
      get: (
        t,
        k,
        r,
      ) => (typeof k === "string" && /^\d$/.test(k) && n++ >= 4 ? 0 : Reflect.get(t, k, r)),
    });
    m.dropoutState = zeroing;
    assert.deepEqual(m.dropoutState, [1, 1, 1, 1]);
    // A hole is not an integer (it read as 0).
    const holed = [1, 2, 3];
    holed.length = 4;
    assert.throws(() => (m.dropoutState = holed), OptionError);
    // A huge sparse array is refused from its length, without a copy of it.
    const huge: number[] = [];
    huge.length = 2 ** 32 - 1;
    assert.throws(() => (m.dropoutState = huge), OptionError);
    assert.deepEqual(m.dropoutState, [1, 1, 1, 1], "a refused state changes nothing");
  } finally {
    await m.dispose();
  }
});

Deno.test("Adam's betas cannot be changed through the getter: not unchecked, not under a step already called", async () => {
  const run = async (mutate: boolean) => {
    const m = await small(6, { trainable: ["fc."] });
    try {
      await m.train().backward(x, [0, 1], { dropout: false });
      const opt = new Adam(m, { lr: 0.01, betas: [0.9, 0.999] });
      const step = opt.step();
      // The getter handed out the optimizer's own pair: writing 7 into it bypassed the
      // [0, 1) check and changed the step already called.
      if (mutate) assert.throws(() => ((opt.betas as unknown as number[])[0] = 7), TypeError);
      await step;
      assert.deepEqual([...opt.betas], [0.9, 0.999]);
      assert.deepEqual(opt.stateDict().paramGroups[0].betas, [0.9, 0.999]);
      return m.stateDict().get("fc.weight")!.data.slice();
    } finally {
      await m.dispose();
    }
  };
  assert.deepEqual(await run(true), await run(false));
});
