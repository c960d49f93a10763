/**
 * The optimizers' Wasm kernels (`asm/optim.ts`) against their TypeScript
 * rules (`src/train/sgd.ts`, `adam.ts`), which tests/training_parity.test.ts
 * checks against PyTorch: the same weights and the same state tensors, bit
 * for bit, after three steps, on 1 and 2 threads, for both variants (the
 * torchvision one mixes both paths: its folded BatchNorm layers update in
 * TypeScript, its linear layers in Wasm) with the aux heads, whose fc1 reads
 * its gradient through the NHWC-flattening gather. Also: the state moves
 * between the model's Wasm memory and the optimizers (stateDict, a second
 * optimizer taking the memory, loadStateDict) without changing a bit. And the
 * two staging regions a stepped layer alternates between: a state dict read
 * after the kernels wrote the step, before it resolved, still shows the
 * weights before it; a frozen bias is carried across; the steps reuse one
 * plan per region, their constants written to Wasm memory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Adam, AdamW, GoogLeNet, type Optimizer, SGD, type Tensor } from "../mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { inverseGather, setOptimizerInWasm } from "../src/model/optim_state.ts";
import { gatherOf } from "../src/backend/repack.ts";
import { convRowOrder, nhwcFlattenRowOrder } from "../src/backend/pack.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import type { OptimizerStateDict } from "../src/train/optimizer.ts";
import type { Plan } from "../src/graph/ops.ts";

const STEPS = [
  { name: "optw_step0", labels: [8] },
  { name: "optw_step1", labels: [3] },
  { name: "optw_step2", labels: [5] },
];
/** The seed variant's aux heads need 224x224 (a 4x4 map after their 5x5 average pool). */
const SHAPE = [1, 3, 224, 224];

async function makeModel(variant: "seed" | "torchvision", threads: number): Promise<GoogLeNet> {
  const model = await GoogLeNet.create({ variant, numClasses: 10, threads, backend: "wasm" });
  const shapes = [...model.stateDict()].map(([k, t]) => [k, t.shape] as const);
  model.loadStateDict(deterministicStateDict(shapes));
  return model.train();
}

async function kernelsPresent(): Promise<boolean> {
  const model = await GoogLeNet.create({ numClasses: 2, auxLogits: false, threads: 1 });
  try {
    return (model.backend as WasmBackend).updatesParameters;
  } finally {
    await model.dispose();
  }
}

const present = await kernelsPresent();
const SKIP = "the kernel binaries predate asm/optim.ts: run `deno task build`";

/** Steps `opt` on `model` through `steps`; a smaller lr for the last, as a schedule would. */
async function train(model: GoogLeNet, opt: Optimizer, steps = STEPS): Promise<void> {
  for (const [i, step] of steps.entries()) {
    if (i === 2) opt.lr = opt.lr / 2;
    opt.zeroGrad();
    await model.backward(deterministicInput(step.name, SHAPE), step.labels, { dropout: false });
    await opt.step();
  }
}

/** Bits of every float, for exact comparisons (NaN-safe). */
function bits(t: Tensor | Float32Array): Uint32Array {
  const data = t instanceof Float32Array ? t : t.data;
  return new Uint32Array(data.buffer, data.byteOffset, data.length);
}

function assertSameWeights(a: GoogLeNet, b: GoogLeNet, what: string): void {
  const sa = a.stateDict(), sb = b.stateDict();
  for (const [key, t] of sa) assert.deepEqual(bits(sb.get(key)!), bits(t), `${what}: ${key}`);
}

function assertSameState(a: OptimizerStateDict, b: OptimizerStateDict, what: string): void {
  assert.deepEqual(b.names, a.names, what);
  assert.deepEqual([...b.state.keys()], [...a.state.keys()], `${what}: parameters with state`);
  for (const [i, s] of a.state) {
    const t = b.state.get(i)!;
    assert.deepEqual(Object.keys(t), Object.keys(s), `${what}: keys of ${a.names[i]}`);
    for (const [k, v] of Object.entries(s)) {
      if (typeof v === "number") assert.equal(t[k], v, `${what}: ${a.names[i]}.${k}`);
      else {
        assert.deepEqual(bits(t[k] as Tensor), bits(v), `${what}: ${a.names[i]}.${k}`);
        assert.deepEqual((t[k] as Tensor).shape, v.shape);
      }
    }
  }
}

const OPTIMIZERS: [string, (m: GoogLeNet) => Optimizer, string | null][] = [
  [
    "SGD (momentum 0.9, dampening 0.1, weight decay 1e-3)",
    (m) => new SGD(m, { lr: 0.01, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3 }),
    "momentum_buffer",
  ],
  [
    "SGD (Nesterov)",
    (m) => new SGD(m, { lr: 0.01, momentum: 0.9, nesterov: true }),
    "momentum_buffer",
  ],
  ["SGD (plain)", (m) => new SGD(m, { lr: 0.05 }), null],
  [
    "Adam (weight decay 1e-2 through the gradient)",
    (m) => new Adam(m, { lr: 1e-3, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 1e-2 }),
    "exp_avg_sq",
  ],
  ["AdamW (weight decay 0.1)", (m) => new AdamW(m, { lr: 1e-3, weightDecay: 0.1 }), "exp_avg"],
];

Deno.test("inverseGather undoes the packing row orders: conv (c, kh, kw) and NHWC flattening", () => {
  for (
    const [order, k] of [[convRowOrder(3, 7, 7), 147], [
      nhwcFlattenRowOrder(128, 4, 4),
      2048,
    ]] as const
  ) {
    const inv = inverseGather(gatherOf(order, k)!)!;
    for (let s = 0; s < k; s++) assert.equal(order((s % inv.c) * inv.a + Math.floor(s / inv.c)), s);
  }
  assert.equal(inverseGather({ c: 1, a: 0, b: 1 }), null);
});

for (const variant of ["seed", "torchvision"] as const) {
  for (const [title, make, slot] of OPTIMIZERS) {
    if (variant === "torchvision" && title !== "AdamW (weight decay 0.1)") continue;
    Deno.test({
      name:
        `${title}, ${variant}: the Wasm kernels give the TypeScript rule's bits (1 and 2 threads)`,
      ignore: !present,
      fn: async () => {
        // The reference: the TypeScript rule (the test hook turns the optimizer kernels off).
        setOptimizerInWasm(false);
        const ref = await makeModel(variant, 1);
        let refState: OptimizerStateDict;
        try {
          const opt = make(ref);
          await train(ref, opt);
          assert.equal(ref.optimizerState(opt, "fc.weight", slot ?? "momentum_buffer"), null);
          refState = opt.stateDict();
        } finally {
          setOptimizerInWasm(true);
        }
        try {
          for (const threads of [1, 2]) {
            const model = await makeModel(variant, threads);
            try {
              const opt = make(model);
              await train(model, opt);
              if (slot) {
                // The state is the model's: fc's in Wasm memory (not a TypeScript tensor).
                assert.ok(
                  model.optimizerState(opt, "fc.weight", slot),
                  "fc's state in Wasm memory",
                );
              }
              assertSameWeights(ref, model, `${threads} thread(s)`);
              assertSameState(refState, opt.stateDict(), `${threads} thread(s)`);
              // Logits from the repacked weights agree too.
              const x = deterministicInput("optw_eval", [1, 3, 64, 64]);
              ref.eval();
              model.eval();
              const [a, b] = [await ref.forward(x), await model.forward(x)] as Tensor[];
              assert.deepEqual(bits(b), bits(a), "logits");
              ref.train();
            } finally {
              await model.dispose();
            }
          }
        } finally {
          await ref.dispose();
        }
      },
    });
  }
}

Deno.test({
  name: "Optimizer state moves between Wasm memory and optimizers without changing a bit",
  ignore: !present,
  fn: async () => {
    const make = (m: GoogLeNet) => new Adam(m, { lr: 1e-3, weightDecay: 1e-2 });
    // Three uninterrupted steps.
    const ref = await makeModel("seed", 2);
    const refOpt = make(ref);
    await train(ref, refOpt);
    // Two steps, then the state goes through stateDict() into a new optimizer for the third;
    // a plain SGD step by a third optimizer in between takes the memory (and is undone).
    const model = await makeModel("seed", 2);
    try {
      const first = make(model);
      await train(model, first, STEPS.slice(0, 2));
      const saved = first.stateDict();
      const weights = model.stateDict();
      const other = new SGD(model, { lr: 1, momentum: 0.5 });
      await other.step(); // takes the Wasm memory: first's tensors are handed back to it
      assert.equal(model.optimizerState(first, "fc.weight", "exp_avg"), null);
      assertSameState(saved, first.stateDict(), "handed back");
      model.loadStateDict(weights);
      const second = make(model);
      second.loadStateDict(saved);
      second.lr = first.lr; // train() halves it on the third step
      second.zeroGrad();
      await model.backward(deterministicInput(STEPS[2].name, SHAPE), STEPS[2].labels, {
        dropout: false,
      });
      second.lr = second.lr / 2;
      await second.step();
      assertSameWeights(ref, model, "resumed");
      assertSameState(refOpt.stateDict(), second.stateDict(), "resumed");
    } finally {
      await model.dispose();
      await ref.dispose();
    }
  },
});

Deno.test({
  name:
    "A step writes the other staging region: the weights before it stay readable until it resolves; a frozen bias is carried over",
  ignore: !present,
  fn: async () => {
    const x = deterministicInput("staging regions", [2, 3, 64, 64]);
    const make = async () => {
      const m = await GoogLeNet.create({
        numClasses: 3,
        auxLogits: false,
        threads: 2,
        backend: "wasm",
        trainable: ["fc.weight", "inception5b.branch4"],
      });
      const shapes = [...m.stateDict()].map(([k, t]) => [k, t.shape] as const);
      m.loadStateDict(deterministicStateDict(shapes));
      return m.train();
    };
    const model = await make(), ref = await make();
    try {
      const bias = model.stateDict().get("fc.bias")!.data;
      const backend = model.backend as WasmBackend;
      const run = backend.runWeights;
      const during: Float32Array[] = [];
      const plans: Plan[] = [];
      backend.runWeights = async function (plan) {
        await run.call(this, plan);
        if (plan.ops[0]?.kind === "optim_step") {
          during.push(model.stateDict().get("fc.weight")!.data);
          plans.push(plan);
        }
      };
      const opts = [model, ref].map((m) => new SGD(m, { lr: 0.5, momentum: 0.9 }));
      const before: Float32Array[] = [];
      for (const [i, labels] of [[0, 1], [2, 0], [1, 1]].entries()) {
        before.push(model.stateDict().get("fc.weight")!.data);
        for (const [j, m] of [model, ref].entries()) {
          opts[j].zeroGrad();
          await m.backward(x, labels, { dropout: false });
          setOptimizerInWasm(j === 0);
          try {
            await opts[j].step();
          } finally {
            setOptimizerInWasm(true);
          }
        }
        assert.equal(during.length, i + 1, "the step ran in the kernels");
        assert.deepEqual(bits(during[i]), bits(before[i]), `step ${i}: read before it resolved`);
        assert.notDeepEqual(bits(model.stateDict().get("fc.weight")!), bits(before[i]));
      }
      // One plan per staging region, kept: the third step (its momentum buffer no longer
      // first) runs the first step's plan with its own constants, written to Wasm memory.
      assert.notEqual(plans[1], plans[0], "the other region's plan");
      assert.equal(plans[2], plans[0], "the first step's plan again");
      assertSameWeights(ref, model, "Wasm kernels with two regions vs TypeScript");
      assert.deepEqual(bits(model.stateDict().get("fc.bias")!), bits(bias), "frozen bias");
      const logits = async (m: GoogLeNet) => ((await m.eval().forward(x)) as Tensor).data;
      assert.deepEqual(
        bits(await logits(model)),
        bits(await logits(ref)),
        "packed from the regions",
      );
    } finally {
      await model.dispose();
      await ref.dispose();
    }
  },
});

Deno.test({
  name:
    "torchvision: while a step's kernels run, and after they fail, every parameter (the BatchNorm layers' too) reads as before the step",
  ignore: !present,
  fn: async () => {
    const model = await GoogLeNet.create({
      variant: "torchvision",
      numClasses: 3,
      auxLogits: false,
      threads: 1,
      backend: "wasm",
    });
    try {
      const shapes = [...model.stateDict()].map(([k, t]) => [k, t.shape] as const);
      model.loadStateDict(deterministicStateDict(shapes));
      model.train();
      const x = deterministicInput("step snapshot", [2, 3, 64, 64]);
      const backend = model.backend as WasmBackend;
      const run = backend.runWeights;
      let during: Map<string, Tensor> | null = null;
      let fail = false;
      backend.runWeights = async function (plan) {
        if (plan.ops[0]?.kind === "optim_step") {
          during = model.stateDict();
          if (fail) throw new Error("injected kernel failure");
        }
        await run.call(this, plan);
      };
      const opt = new Adam(model, { lr: 0.1 });
      const same = (a: Map<string, Tensor>, b: Map<string, Tensor>, what: string) => {
        for (const [key, t] of a) assert.deepEqual(bits(b.get(key)!), bits(t), `${what}: ${key}`);
      };
      await model.backward(x, [0, 1], { dropout: false });
      const before = model.stateDict();
      await opt.step();
      assert.ok(during, "the step ran in the kernels");
      same(before, during!, "read while the kernels ran");
      const after = model.stateDict();
      assert.notDeepEqual(
        bits(after.get("conv1.conv.weight")!),
        bits(before.get("conv1.conv.weight")!),
      );
      assert.notDeepEqual(bits(after.get("fc.weight")!), bits(before.get("fc.weight")!));
      fail = true;
      await assert.rejects(opt.step(), /injected kernel failure/);
      same(after, model.stateDict(), "after a failed step");
    } finally {
      await model.dispose();
    }
  },
});

Deno.test({
  name:
    "Adam without state starts from zero moments in the kernels: after loadStateDict of no state, and after another optimizer's steps",
  ignore: !present,
  fn: async () => {
    const x = deterministicInput("fresh moments", [2, 3, 64, 64]);
    const run = async (wasm: boolean) => {
      const m = await GoogLeNet.create({
        numClasses: 3,
        auxLogits: false,
        threads: 1,
        backend: "wasm",
        trainable: ["fc."],
      });
      const shapes = [...m.stateDict()].map(([k, t]) => [k, t.shape] as const);
      m.loadStateDict(deterministicStateDict(shapes));
      m.train();
      setOptimizerInWasm(wasm);
      try {
        const adam = new Adam(m, { lr: 0.01 });
        const steps: [Optimizer, number[]][] = [
          [adam, [0, 1]],
          [adam, [2, 1]],
          [new AdamW(m, { lr: 0.01 }), [1, 1]],
        ];
        for (const [i, [opt, labels]] of steps.entries()) {
          // Back to no state, as a fresh optimizer's state dict says.
          if (i === 1) adam.loadStateDict(new Adam(m).stateDict());
          await opt.zeroGrad();
          await m.backward(x, labels, { dropout: false });
          await opt.step();
        }
        return m;
      } finally {
        setOptimizerInWasm(true);
      }
    };
    const model = await run(true), ref = await run(false);
    try {
      assertSameWeights(ref, model, "Wasm kernels vs TypeScript");
    } finally {
      await model.dispose();
      await ref.dispose();
    }
  },
});

if (!present) {
  Deno.test(`optimizer kernels skipped: ${SKIP}`, () => console.log(`  skipped: ${SKIP}`));
}
