/**
 * The model's contract beyond its numbers: PyTorch's state-dict keys and
 * shapes, all-or-nothing loading with errors that name the key, the two
 * initialisations, train/eval behaviour, dropout, and input validation.
 */

import assert from "node:assert/strict";
import { DisposedError, GoogLeNet, ShapeError, StateDictError, Tensor } from "../mod.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";

const reference: Record<"aux" | "no_aux", [string, number[]][]> = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/state_dict.json", import.meta.url)),
);

function std(values: Float32Array): { mean: number; std: number } {
  let s = 0, s2 = 0;
  for (const v of values) {
    s += v;
    s2 += v * v;
  }
  const mean = s / values.length;
  return { mean, std: Math.sqrt(s2 / values.length - mean * mean) };
}

Deno.test("stateDict has PyTorch's keys, shapes and order, with and without aux heads", async () => {
  for (const [auxLogits, keys] of [[true, reference.aux], [false, reference.no_aux]] as const) {
    const model = await GoogLeNet.create({ auxLogits, threads: 1 });
    const ours = [...model.stateDict()].map(([k, t]) => [k, [...t.shape]]);
    assert.deepEqual(ours, keys);
    await model.dispose();
  }
});

Deno.test("loadStateDict then stateDict gives back exactly what was loaded", async () => {
  const model = await GoogLeNet.create({ threads: 1 });
  const sd = deterministicStateDict(reference.aux);
  model.loadStateDict(sd);
  for (const [k, t] of model.stateDict()) assert.deepEqual(t.data, sd.get(k)!.data, k);
  await model.dispose();
});

Deno.test("loadStateDict is all or nothing, and its errors name the key and both shapes", async () => {
  const model = await GoogLeNet.create({ threads: 1, seed: 3 });
  const before = model.stateDict();
  const x = deterministicInput("x", [1, 3, 64, 64]);
  const logitsBefore = (await model.forward(x)) as Tensor;

  const good = deterministicStateDict(reference.aux);
  const wrongShape = new Map(good);
  wrongShape.set("inception4b.branch3.1.conv.weight", Tensor.zeros([64, 24, 3, 3]));
  assert.throws(
    () => model.loadStateDict(wrongShape),
    (e: Error) =>
      e instanceof StateDictError && e.message.includes('"inception4b.branch3.1.conv.weight"') &&
      e.message.includes("expected shape [64, 24, 5, 5], got [64, 24, 3, 3]"),
  );
  const missing = new Map(good);
  missing.delete("fc.bias");
  assert.throws(() => model.loadStateDict(missing), /missing keys "fc.bias"/);
  const extra = new Map(good);
  extra.set("fc.weight_typo", Tensor.zeros([1]));
  assert.throws(() => model.loadStateDict(extra), /unexpected keys "fc.weight_typo"/);
  assert.throws(
    () => model.loadStateDict({ "fc.bias": "nope" } as never, { strict: false }),
    /expected a Tensor/,
  );

  // Nothing changed: same parameters, same logits.
  for (const [k, t] of model.stateDict()) assert.deepEqual(t.data, before.get(k)!.data, k);
  assert.deepEqual(((await model.forward(x)) as Tensor).data, logitsBefore.data);
  await model.dispose();
});

Deno.test("a state dict without aux keys loads into auxLogits: false, and only non-strictly into aux models", async () => {
  const sd = deterministicStateDict(reference.no_aux);
  const plain = await GoogLeNet.create({ auxLogits: false, threads: 1 });
  plain.loadStateDict(sd);
  const withAux = await GoogLeNet.create({ threads: 1 });
  assert.throws(() => withAux.loadStateDict(sd), /missing keys "aux1.conv.conv.weight"/);
  withAux.loadStateDict(sd, { strict: false });
  const x = deterministicInput("x", [1, 3, 96, 96]);
  assert.deepEqual(
    ((await plain.forward(x)) as Tensor).data,
    ((await withAux.forward(x)) as Tensor).data,
  );
  await plain.dispose();
  await withAux.dispose();
});

Deno.test("default initialisation is PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases", async () => {
  const sd = (await GoogLeNet.create({ threads: 1, seed: 7 })).stateDict();
  for (const key of ["conv3.conv.weight", "inception5b.branch1.conv.bias", "fc.weight"]) {
    const t = sd.get(key)!;
    const fanIn = key.endsWith("bias")
      ? sd.get(key.replace("bias", "weight"))!.shape.slice(1).reduce((a, b) => a * b, 1)
      : t.shape.slice(1).reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    assert.ok(t.data.every((v) => Math.abs(v) <= bound), `${key} exceeds its bound`);
    const s = std(t.data);
    assert.ok(
      Math.abs(s.std - bound / Math.sqrt(3)) < 0.1 * bound,
      `${key} std ${s.std} vs ${bound / Math.sqrt(3)}`,
    );
  }
});

Deno.test("initWeights draws Kaiming normal (fan_out) conv weights, N(0, 0.01) linear weights and zero biases", async () => {
  const model = await GoogLeNet.create({ threads: 1, initWeights: true, seed: 11 });
  const sd = model.stateDict();
  const conv = sd.get("conv3.conv.weight")!; // fan_out = 192 * 3 * 3
  assert.ok(
    Math.abs(std(conv.data).std - Math.sqrt(2 / (192 * 9))) < 0.03 * Math.sqrt(2 / (192 * 9)),
  );
  assert.ok(Math.abs(std(conv.data).mean) < 0.003);
  assert.ok(Math.abs(std(sd.get("fc.weight")!.data).std - 0.01) < 0.0005);
  for (const [k, t] of sd) if (k.endsWith("bias")) assert.ok(t.data.every((v) => v === 0), k);
  await model.dispose();
});

Deno.test("initialisation is reproducible per seed and differs across seeds", async () => {
  const [a, b, c] = await Promise.all(
    [1, 1, 2].map((seed) => GoogLeNet.create({ threads: 1, seed })),
  );
  assert.deepEqual(
    a.stateDict().get("conv1.conv.weight")!.data,
    b.stateDict().get("conv1.conv.weight")!.data,
  );
  assert.notDeepEqual(
    a.stateDict().get("conv1.conv.weight")!.data,
    c.stateDict().get("conv1.conv.weight")!.data,
  );
  await Promise.all([a, b, c].map((m) => m.dispose()));
});

Deno.test("training mode returns [logits, aux2, aux1], applies seeded dropout, eval returns logits", async () => {
  const make = async () => {
    const m = await GoogLeNet.create({ threads: 1, seed: 5 });
    m.loadStateDict(deterministicStateDict(reference.aux));
    return m;
  };
  const [a, b] = [await make(), await make()];
  const x = deterministicInput("x", [2, 3, 224, 224]);
  const evalOut = await a.forward(x);
  assert.ok(evalOut instanceof Tensor);
  assert.deepEqual(evalOut.shape, [2, 1000]);

  const clean = (await a.train().forward(x, { dropout: false })) as Tensor[];
  assert.equal(clean.length, 3);
  for (const t of clean) assert.deepEqual(t.shape, [2, 1000]);
  assert.deepEqual(clean[0].data, evalOut.data, "without dropout the training logits equal eval's");

  const dropped = (await a.forward(x)) as Tensor[];
  for (let i = 0; i < 3; i++) assert.notDeepEqual(dropped[i].data, clean[i].data);
  const again = (await b.train().forward(x)) as Tensor[];
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(again[i].data, dropped[i].data, "same seed, same masks");
  }
  const next = (await a.forward(x)) as Tensor[];
  assert.notDeepEqual(next[0].data, dropped[0].data, "each call draws new masks");

  const noAux = await GoogLeNet.create({ threads: 1, auxLogits: false });
  assert.ok((await noAux.train().forward(x)) instanceof Tensor);
  await Promise.all([a.dispose(), b.dispose(), noAux.dispose()]);
});

Deno.test("forward rejects wrong ranks, channel counts, empty and too small inputs with a ShapeError", async () => {
  const model = await GoogLeNet.create({ threads: 1 });
  const cases: [Tensor, RegExp][] = [
    [Tensor.zeros([3, 224, 224]), /rank 4 \[N, 3, H, W\], got rank 3/],
    [Tensor.zeros([1, 1, 224, 224]), /Expected 3 input channels/],
    [Tensor.zeros([1, 4, 32, 32]), /Expected 3 input channels/],
    [Tensor.zeros([0, 3, 224, 224]), /non-empty input/],
    [Tensor.zeros([1, 3, 8, 8]), /too small/],
  ];
  for (const [input, message] of cases) {
    await assert.rejects(
      async () => await model.forward(input),
      (e: Error) => e instanceof ShapeError && message.test(e.message),
    );
  }
  assert.throws(() => model.forward([1, 2, 3] as never), ShapeError);
  const ok = (await model.forward(Tensor.zeros([1, 3, 224, 224]))) as Tensor;
  assert.deepEqual(ok.shape, [1, 1000]);
  await model.dispose();
  assert.throws(() => model.forward(Tensor.zeros([1, 3, 224, 224])), DisposedError);
  assert.throws(() => model.stateDict(), DisposedError);
});
