/**
 * torchvision 0.14's `googlenet` (BatchNorm with randomised statistics, folded
 * into the convolutions at load; 3x3 branch3; adaptive-pool aux heads;
 * `transform_input`) against the real torchvision, eval logits at batch 1
 * and 2 and at 200x176, and the aux heads with dropout off (BatchNorm uses
 * its running statistics). Tolerance: max |ours - torch| <= 1e-4 * max |torch|.
 */

import assert from "node:assert/strict";
import { GoogLeNet, StateDictError, type Tensor } from "../mod.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { assertClose } from "./_support/assert_close.ts";
import { loadFixtures } from "./_support/fixtures.ts";

const RTOL = 1e-4;
const fixtures = await loadFixtures("torchvision");
const keys: Record<"aux" | "no_aux", [string, number[]][]> = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/torchvision_state_dict.json", import.meta.url)),
);

Deno.test("torchvision variant has torchvision's state-dict keys and shapes, BatchNorm included", async () => {
  for (const [auxLogits, expected] of [[true, keys.aux], [false, keys.no_aux]] as const) {
    const model = await GoogLeNet.create({ variant: "torchvision", auxLogits, threads: 1 });
    assert.deepEqual([...model.stateDict()].map(([k, t]) => [k, [...t.shape]]), expected);
    await model.dispose();
  }
});

Deno.test("torchvision variant matches torchvision 0.14 (eval and aux heads)", async (t) => {
  const model = await GoogLeNet.create({ variant: "torchvision", threads: 2 });
  assert.equal(model.transformInput, true);
  model.loadStateDict(deterministicStateDict(keys.aux));
  for (const [name, c] of fixtures.cases) {
    const shape = c.shape as number[];
    const input = deterministicInput(name, shape);
    await t.step(`${c.mode} ${name} [${shape}]`, async () => {
      if (c.mode === "eval") {
        const logits = (await model.eval().forward(input)) as Tensor;
        const rel = assertClose(logits.data, fixtures.tensors.get(name)!.data, RTOL, name);
        console.log(`  ${name}: max rel error ${rel.toExponential(2)}`);
      } else {
        const out = (await model.train().forward(input, { dropout: false })) as Tensor[];
        for (const [i, part] of ["logits", "aux2", "aux1"].entries()) {
          const rel = assertClose(
            out[i].data,
            fixtures.tensors.get(`${name}.${part}`)!.data,
            RTOL,
            part,
          );
          console.log(`  ${name}.${part}: max rel error ${rel.toExponential(2)}`);
        }
      }
    });
  }
  await model.dispose();
});

Deno.test("torchvision's pretrained layout (aux keys present) loads into a model without aux heads", async () => {
  const withAux = deterministicStateDict(keys.aux);
  const model = await GoogLeNet.create({ variant: "torchvision", auxLogits: false, threads: 1 });
  model.loadStateDict(withAux);
  const seed = await GoogLeNet.create({ auxLogits: false, threads: 1 });
  assert.throws(() => seed.loadStateDict(withAux), StateDictError);
  // Reloading our own state dict (BatchNorm exported in folded form) gives the same logits.
  const x = deterministicInput("x", [1, 3, 96, 96]);
  const before = (await model.forward(x)) as Tensor;
  model.loadStateDict(model.stateDict());
  const after = (await model.forward(x)) as Tensor;
  assertClose(after.data, before.data, 1e-6, "reloaded");
  await model.dispose();
  await seed.dispose();
});
