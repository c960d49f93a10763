import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { IMAGENET_CLASSES } from "../src/labels/imagenet.ts";
import { softmax, topK } from "../src/labels/top_k.ts";

const fixture: {
  logits: number[];
  softmax: number[];
  top5: { indices: number[]; values: number[] };
} = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/images/topk.json", import.meta.url)),
);
const logits = Float32Array.from(fixture.logits);

Deno.test("IMAGENET_CLASSES has torchvision's 1000 names in order", () => {
  assert.equal(IMAGENET_CLASSES.length, 1000);
  assert.equal(IMAGENET_CLASSES[0], "tench");
  assert.equal(IMAGENET_CLASSES[281], "tabby");
  assert.equal(IMAGENET_CLASSES[999], "toilet tissue");
  assert.ok(Object.isFrozen(IMAGENET_CLASSES));
});

Deno.test("softmax matches torch.softmax within 1e-6 relative", () => {
  const probabilities = softmax(logits);
  fixture.softmax.forEach((expected, i) => {
    assert.ok(
      Math.abs(probabilities[i] - expected) <= 1e-6 * expected + 1e-12,
      `class ${i}: ${probabilities[i]} vs ${expected}`,
    );
  });
});

Deno.test("softmax is stable for large logits and propagates NaN", () => {
  assert.deepEqual(softmax(new Float32Array([1000, 1000])), new Float32Array([0.5, 0.5]));
  assert.ok(softmax(new Float32Array([1, NaN, 2])).every(Number.isNaN));
});

Deno.test("topK matches torch.topk on the fixture row", () => {
  const top = topK(logits, 5);
  assert.deepEqual(top.map((p) => p.index), fixture.top5.indices);
  assert.deepEqual(top.map((p) => p.label), fixture.top5.indices.map((i) => IMAGENET_CLASSES[i]));
  top.forEach((p, i) => assert.ok(Math.abs(p.probability - fixture.top5.values[i]) <= 1e-6));
});

Deno.test("topK uses custom labels, caps k at the row length and keeps ties in index order", () => {
  const top = topK(new Float32Array([2, 5, 2]), 10, ["a", "b", "c"]);
  assert.deepEqual(top.map((p) => p.label), ["b", "a", "c"]);
});

Deno.test("topK returns NaN probabilities for a NaN row", () => {
  const top = topK(new Float32Array([1, NaN, 3]), 3, ["a", "b", "c"]);
  assert.equal(top.length, 3);
  assert.ok(top.every((p) => Number.isNaN(p.probability)));
});

Deno.test("topK rejects bad k and mismatched labels", () => {
  assert.throws(() => topK(logits, 0), RangeError);
  assert.throws(() => topK(logits, 1.5), RangeError);
  assert.throws(() => topK(logits, 1, ["a"]), ShapeError);
  assert.throws(() => topK(new Float32Array(3), 1), /Expected 3 labels/);
});
