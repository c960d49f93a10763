/**
 * classify = the evaluation transform, an eval-mode forward and top-k, with
 * labels checked against the model's classes.
 */

import assert from "node:assert/strict";
import {
  classify,
  classifyBatch,
  GoogLeNet,
  preprocess,
  ShapeError,
  type Tensor,
  topK,
} from "../mod.ts";

const photo = new URL("../assets/chelsea.jpg", import.meta.url);

Deno.test("classify gives the top-k of an eval-mode forward of the preprocessed image", async () => {
  const model = await GoogLeNet.create({ threads: 1, seed: 4 });
  model.train();
  const rows = await classify(model, photo, { top: 5 });
  assert.equal(model.training, true, "the model's mode is restored");
  const logits = (await model.eval().forward(await preprocess(photo))) as Tensor;
  assert.deepEqual(rows, topK(logits.data, 5));
  assert.equal(rows.length, 5);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].probability >= rows[i].probability);
  await model.dispose();
});

Deno.test("classifyBatch runs several images as one batch, in order", async () => {
  const model = await GoogLeNet.create({ threads: 1, auxLogits: false });
  const bytes = await Deno.readFile(photo);
  const [a, b] = await classifyBatch(model, [bytes, photo], { top: 3 });
  assert.deepEqual(a, b);
  await model.dispose();
});

Deno.test("classify names classes with custom labels and rejects a wrong label count", async () => {
  const model = await GoogLeNet.create({ threads: 1, numClasses: 3, auxLogits: false });
  const rows = await classify(model, photo, { top: 3, labels: ["cat", "dog", "fish"] });
  assert.deepEqual(rows.map((r) => r.label).sort(), ["cat", "dog", "fish"]);
  assert.ok(Math.abs(rows.reduce((s, r) => s + r.probability, 0) - 1) < 1e-6);
  await assert.rejects(() => classify(model, photo, { labels: ["cat"] }), ShapeError);
  const unnamed = await classify(model, photo, { top: 1 });
  assert.match(unnamed[0].label, /^class [0-2]$/);
  await model.dispose();
});
