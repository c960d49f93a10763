/**
 * Plan steps: the operations a backend may run at once. Checked float by
 * float: within a step, no operation writes a float that another one reads
 * or writes (arena reuse included).
 */

import assert from "node:assert/strict";
import { GoogLeNet } from "../mod.ts";
import type { Op, Plan, View } from "../src/graph/ops.ts";
import { PlanBuilder } from "../src/graph/planner.ts";

// What an operation reads and writes, as the kernels do it.
function touches(op: Op): { reads: [View, number][]; writes: [View, number][] } {
  switch (op.kind) {
    case "conv2d": {
      const more = op.moreOutputs.map((o) => [o.y, o.channels] as [View, number]);
      const first = op.weights.n - more.reduce((s, [, c]) => s + c, 0);
      return { reads: [[op.x, op.c]], writes: [[op.y, first], ...more] };
    }
    case "linear":
      return { reads: [[op.x, op.weights.k]], writes: [[op.y, op.weights.n]] };
    case "dropout":
      return { reads: [[op.x, op.x.stride]], writes: [[op.x, op.x.stride]] };
    case "maxpool2d":
    case "avgpool2d":
    case "adaptive_avgpool2d":
      return { reads: [[op.x, op.c]], writes: [[op.y, op.c]] };
    case "conv2d_grad_input": {
      const reads: [View, number][] = [[op.dy, op.c]];
      if (op.accumulate) reads.push([op.dx, op.oc]);
      return { reads, writes: [[op.dx, op.oc]] };
    }
    case "conv2d_grad_weight":
      return { reads: [[op.x, op.c], [op.dy, op.oc]], writes: [] };
    case "relu_grad":
      return { reads: [[op.y, op.c], [op.dy, op.c]], writes: [[op.dy, op.c]] };
    case "pack_gemm":
    case "pack_winograd":
    case "fold_batchnorm":
    case "optim_step":
    case "zero":
      // Weight-region work (the optimizer step, the repack after it, zeroGrad): no arena float.
      return { reads: [], writes: [] };
    case "maxpool2d_grad":
    case "avgpool2d_grad":
    case "adaptive_avgpool2d_grad": {
      const reads: [View, number][] = [[op.dy, op.c]];
      if (op.kind === "maxpool2d_grad") reads.push([op.x, op.c]);
      if (op.accumulate) reads.push([op.dx, op.c]);
      return { reads, writes: [[op.dx, op.c]] };
    }
  }
}

// Calls fn(float) for each float of `channels` channels of `view`, every pixel of its buffer.
function eachFloat(plan: Plan, view: View, channels: number, fn: (f: number) => void): void {
  const { offset, size } = plan.buffers[view.buffer];
  const start = offset + view.channelOffset;
  for (let p = 0, pixels = size / view.stride; p < pixels; p++) {
    const at = start + p * view.stride;
    for (let c = 0; c < channels; c++) fn(at + c);
  }
}

// Throws if two operations of one step conflict on some float.
function assertStepsIndependent(plan: Plan): void {
  const writer = new Int32Array(plan.arenaSize);
  for (const step of plan.steps) {
    writer.fill(-1);
    for (const i of step) {
      for (const [view, channels] of touches(plan.ops[i]).writes) {
        eachFloat(plan, view, channels, (f) => {
          if (writer[f] !== -1 && writer[f] !== i) {
            assert.fail(
              `${plan.ops[i].name} and ${plan.ops[writer[f]]?.name} both write float ${f}`,
            );
          }
          writer[f] = i;
        });
      }
    }
    for (const i of step) {
      for (const [view, channels] of touches(plan.ops[i]).reads) {
        eachFloat(plan, view, channels, (f) => {
          if (writer[f] !== -1 && writer[f] !== i) {
            assert.fail(
              `${plan.ops[i].name} reads float ${f}, which ${plan.ops[writer[f]]?.name} writes`,
            );
          }
        });
      }
    }
  }
}

Deno.test("every operation is in exactly one step, in plan order", async () => {
  const model = await GoogLeNet.create({ threads: 1, backend: "wasm" });
  try {
    const plan = model.plan([2, 3, 224, 224]);
    assert.deepEqual(plan.steps.flat(), plan.ops.map((_, i) => i));
  } finally {
    await model.dispose();
  }
});

Deno.test("an Inception block runs as two steps: 1x1 convolutions and max pool, then the rest", async () => {
  const model = await GoogLeNet.create({ threads: 1, backend: "wasm" });
  try {
    const plan = model.plan([1, 3, 224, 224]);
    const names = plan.steps.map((s) => s.map((i) => plan.ops[i].name));
    assert.deepEqual(names.find((s) => s[0].startsWith("inception4c")), [
      "inception4c.branch1.conv+128+24",
      "inception4c.branch4.0",
    ]);
    assert.deepEqual(names.find((s) => s[0] === "inception4c.branch2.1.conv"), [
      "inception4c.branch2.1.conv",
      "inception4c.branch3.1.conv",
      "inception4c.branch4.1.conv",
    ]);
    // Stem (5) + 9 blocks x 2 + maxpool3, maxpool4, avgpool, fc.
    assert.equal(plan.steps.length, 27);
  } finally {
    await model.dispose();
  }
});

Deno.test("no two operations of a step touch the same float, in eval and in training mode", async () => {
  for (const variant of ["seed", "torchvision"] as const) {
    const model = await GoogLeNet.create({ threads: 1, backend: "wasm", variant });
    try {
      assertStepsIndependent(model.plan([2, 3, 96, 112]));
      model.train();
      assertStepsIndependent(model.plan([1, 3, 224, 224]));
    } finally {
      await model.dispose();
    }
  }
});

Deno.test("an operation that writes memory an earlier one of the step read starts a new step", () => {
  const b = new PlanBuilder();
  const pool = (x: View, y: View, name: string): Op => ({
    kind: "maxpool2d",
    name,
    x,
    y,
    n: 1,
    h: 8,
    w: 8,
    c: 4,
    k: 3,
    s: 1,
    p: 1,
    oh: 8,
    ow: 8,
  });
  const value = (name: string) => b.alloc(1, 8, 8, 4, name);
  const x = value("x"), t = value("t"), s = value("s");
  b.push(pool(x.view, t.view, "t"), x, t);
  b.push(pool(x.view, s.view, "s"), x, s);
  const v = value("v");
  b.push(pool(t.view, v.view, "v"), t, v);
  // t is dead after "v", so the arena places u where t was: "u" overwrites what "v" reads.
  const u = value("u");
  b.push(pool(s.view, u.view, "u"), s, u);
  const plan = b.build(x, [{ value: v, shape: [1, 256] }, { value: u, shape: [1, 256] }]);
  assert.equal(plan.buffers[u.view.buffer].offset, plan.buffers[t.view.buffer].offset);
  assert.deepEqual(plan.steps, [[0, 1], [2], [3]]);
  assertStepsIndependent(plan);
});

Deno.test("training plans: both halves' steps are independent, and the backward half covers every backward operation once", async () => {
  for (const variant of ["seed", "torchvision"] as const) {
    const model = await GoogLeNet.create({ threads: 1, backend: "wasm", variant });
    try {
      // 224 with the aux heads; 240 (15x15 maps at the aux heads, ceil-mode partial windows)
      // for the seed variant; eval mode at 96x112.
      const shapes = variant === "seed"
        ? [[[1, 3, 224, 224], true], [[1, 3, 240, 240], true], [[2, 3, 96, 112], false]] as const
        : [[[1, 3, 224, 224], true], [[2, 3, 96, 112], false]] as const;
      for (const [shape, train] of shapes) {
        model.train(train);
        const { forward, backward } = model.trainingPlan(shape);
        assertStepsIndependent(forward);
        assertStepsIndependent(backward);
        const start = backward.steps[0][0];
        assert.deepEqual(forward.steps.flat(), forward.ops.slice(0, start).map((_, i) => i));
        assert.deepEqual(backward.steps.flat(), backward.ops.slice(start).map((_, i) => start + i));
        const kinds = new Set(backward.ops.slice(start).map((op) => op.kind));
        for (
          const kind of ["conv2d_grad_input", "conv2d_grad_weight", "relu_grad", "maxpool2d_grad"]
        ) {
          assert.ok(kinds.has(kind as Op["kind"]), `${variant} ${shape}: no ${kind}`);
        }
        // Every trainable layer gets exactly one weight gradient.
        const layers = backward.ops.filter((op) => op.kind === "conv2d_grad_weight").map((op) =>
          op.name
        );
        assert.equal(new Set(layers).size, layers.length);
        assert.equal(layers.length, train ? 64 : 58);
        // Every max pool over ReLU outputs (maxpool1-4 and the Inception pools of 3b, 4b-4e and
        // 5b, whose input is the block before's output) writes that gradient last: its backward
        // masks it, and the ReLUs of the layers that made it get no relu_grad (masked once, not
        // twice). The pools that read a pool's output (3a, 4a, 5a) mask nothing.
        const fused = backward.ops.flatMap((op) =>
          op.kind === "maxpool2d_grad" && op.relu ? [op] : []
        );
        assert.equal(fused.length, 10, `${variant} ${shape}: ${fused.length} pools masked`);
        for (const pool of fused) {
          const at = backward.ops.indexOf(pool);
          assert.ok(
            !backward.ops.slice(at + 1).some((op) =>
              "dx" in op && typeof op.dx === "object" && op.dx.buffer === pool.dx.buffer
            ),
            `${variant} ${shape}: ${pool.name}'s gradient written after its mask`,
          );
        }
        let byPool = 0;
        for (const op of backward.ops) {
          if (
            op.kind !== "conv2d_grad_weight" || !fused.some((p) => p.dx.buffer === op.dy.buffer)
          ) {
            continue;
          }
          byPool++;
          assert.ok(
            !backward.ops.some((r) => r.kind === "relu_grad" && r.dy.buffer === op.dy.buffer),
            `${variant} ${shape}: ${op.name} masked twice`,
          );
        }
        // conv1, conv3 and the four branches of inception3a, 3b, 4a-4e and 5a.
        assert.equal(byPool, 34, `${variant} ${shape}: ${byPool} layers masked by their pool`);
      }
    } finally {
      await model.dispose();
    }
  }
});
