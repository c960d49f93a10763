/**
 * The whole network against the reference PyTorch code: eval logits at
 * 224x224 batch 1, 2 and 4 and at 160x192 batch 1 and 4, and the training-mode outputs
 * `[logits, aux2, aux1]` with dropout made the identity on both sides.
 * Weights and inputs come from `tools/deterministic.ts` on both sides.
 * Tolerance: max |ours - torch| <= 1e-4 * max |torch|, on 1 and 2 threads, and
 * with the `prefer: "speed"` weight layout (F(4x4, 3x3) on every 3x3 convolution).
 */

import assert from "node:assert/strict";
import { GoogLeNet, Tensor } from "../mod.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { assertClose } from "./_support/assert_close.ts";
import { loadFixtures } from "./_support/fixtures.ts";

const RTOL = 1e-4;
const fixtures = await loadFixtures("googlenet");

async function referenceModel(
  threads: number,
  prefer: "memory" | "speed" = "memory",
): Promise<GoogLeNet> {
  const model = await GoogLeNet.create({ threads, prefer });
  const shapes = [...model.stateDict()].map(([k, t]) => [k, t.shape] as const);
  model.loadStateDict(deterministicStateDict(shapes));
  return model;
}

for (const threads of [1, 2]) {
  Deno.test(`GoogLeNet matches PyTorch in eval and training mode (${threads} thread(s))`, async (t) => {
    const model = await referenceModel(threads);
    try {
      for (const [name, c] of fixtures.cases) {
        const shape = c.shape as number[];
        const input = deterministicInput(name, shape);
        if (c.mode === "eval") {
          await t.step(`eval ${name} [${shape}]`, async () => {
            const logits = await model.eval().forward(input);
            assert.ok(logits instanceof Tensor);
            assert.deepEqual(logits.shape, [shape[0], 1000]);
            const rel = assertClose(logits.data, fixtures.tensors.get(name)!.data, RTOL, name);
            console.log(`  ${name}: max rel error ${rel.toExponential(2)}`);
          });
        } else {
          await t.step(`training ${name}: [logits, aux2, aux1]`, async () => {
            const out = await model.train().forward(input, { dropout: false });
            assert.ok(Array.isArray(out) && out.length === 3);
            for (const [i, part] of ["logits", "aux2", "aux1"].entries()) {
              const key = `${name}.${part}`;
              const rel = assertClose(out[i].data, fixtures.tensors.get(key)!.data, RTOL, key);
              console.log(`  ${key}: max rel error ${rel.toExponential(2)}`);
            }
          });
        }
      }
    } finally {
      await model.dispose();
    }
  });
}

Deno.test('prefer: "speed" gives PyTorch\'s logits too (1 and 2 threads)', async () => {
  for (const threads of [1, 2]) {
    const model = await referenceModel(threads, "speed");
    try {
      assert.equal(model.prefer, "speed");
      for (const name of ["eval_224_b2", "eval_160x192_b1"]) {
        const c = fixtures.cases.get(name)!;
        const logits = await model.forward(deterministicInput(name, c.shape as number[]));
        assert.ok(logits instanceof Tensor);
        const rel = assertClose(logits.data, fixtures.tensors.get(name)!.data, RTOL, name);
        console.log(`  ${name}, ${threads} thread(s): max rel error ${rel.toExponential(2)}`);
      }
    } finally {
      await model.dispose();
    }
  }
});
