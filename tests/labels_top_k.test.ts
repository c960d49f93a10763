import assert from "node:assert/strict";
import { OptionError, ShapeError } from "../src/errors.ts";
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
  assert.throws(() => topK(logits, 0), OptionError);
  assert.throws(() => topK(logits, 1.5), OptionError);
  assert.throws(() => topK(logits, "5" as never), /Expected k to be an integer >= 1, got "5"/);
  assert.throws(() => topK([1, 2] as never, 1), /Expected logits to be a Float32Array/);
  assert.throws(() => topK(new Float32Array(2), 1, ["a", 2] as never), /got 2 at index 1/);
  assert.throws(() => topK(logits, 1, ["a"]), ShapeError);
  assert.throws(() => topK(new Float32Array(3), 1), /Expected 3 labels/);
});

Deno.test("topK ranks NaN above every number, as torch.topk does (checked with PyTorch 1.13)", () => {
  // torch.topk(tensor([1, nan, 3, nan, -inf, inf, 3]), 7).indices == [1, 3, 5, 2, 6, 0, 4]
  const row = new Float32Array([1, NaN, 3, NaN, -Infinity, Infinity, 3]);
  const labels = ["a", "b", "c", "d", "e", "f", "g"];
  assert.deepEqual(topK(row, 7, labels).map((p) => p.index), [1, 3, 5, 2, 6, 0, 4]);
  // The ranking must not depend on where the NaN sits: a consistent comparator.
  for (let at = 0; at < 50; at++) {
    const many = Float32Array.from({ length: 50 }, (_, i) => (i * 37) % 50);
    many[at] = NaN;
    const order = topK(many, 50, Array.from(many, String)).map((p) => p.index);
    assert.equal(order[0], at);
    const rest = order.slice(1).map((i) => many[i]);
    assert.deepEqual(rest, [...rest].sort((a, b) => b - a), `NaN at ${at}`);
  }
});
