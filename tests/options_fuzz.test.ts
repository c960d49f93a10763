/**
 * The public functions of the image, weights and labels modules called with
 * random arguments and option objects (wrong types, NaN, bigints, symbols,
 * arrays, unknown option names, out-of-range numbers; seeded, so failures
 * reproduce). Every call must succeed or throw a `GoogLeNetError` subclass,
 * and a good call afterwards must give the baseline result bit for bit.
 * `classify` and `classifyBatch` get the same treatment with one small model.
 */

import assert from "node:assert/strict";
import { GoogLeNetError, OptionError } from "../src/errors.ts";
import { classify, classifyBatch } from "../src/classify.ts";
import { decodeImage } from "../src/image/decode.ts";
import { preprocess, preprocessBatch } from "../src/image/preprocess.ts";
import { softmax, topK } from "../src/labels/top_k.ts";
import { GoogLeNet } from "../src/model/googlenet.ts";
import { Tensor } from "../src/tensor.ts";
import { loadWeights } from "../src/weights/load.ts";
import { readPth, writePth } from "../src/weights/pth.ts";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.ts";
import { greyPng } from "./_support/hostile_bytes.ts";

/** Mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values of every kind a caller from plain JavaScript might pass. */
const ODD_VALUES: (() => unknown)[] = [
  () => undefined,
  () => null,
  () => true,
  () => false,
  () => 0,
  () => -0,
  () => -1,
  () => 1,
  () => 1.5,
  () => 3,
  () => 255,
  () => 2 ** 31,
  () => 2 ** 53,
  () => NaN,
  () => Infinity,
  () => -Infinity,
  () => 1e308,
  () => "",
  () => "2",
  () => "false",
  () => "imagenet",
  () => "F64",
  () => "https://127.0.0.1:1/x",
  () => 10n,
  () => Symbol("s"),
  () => [],
  () => [1, 2, 3],
  () => [0.5, 0.5, 0.5],
  () => [0, 0, 0],
  () => [NaN, 1, 1],
  () => ["a", "b"],
  () => ({}),
  () => ({ valueOf: () => 3 }),
  () => () => 1,
  () => new Uint8Array(4),
  () => new Float32Array([1, NaN, 2]),
  () => new ArrayBuffer(8),
  () => new Date(0),
  () => new Map(),
  () => AbortSignal.abort(),
  () => Object.create(null),
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

function oddValue(random: () => number): unknown {
  return pick(random, ODD_VALUES)();
}

/**
 * An options object: some of `valid`'s keys, each with a valid value (4 in 5)
 * or an odd one, sometimes an unknown key, sometimes not an object at all.
 */
function randomOptions(random: () => number, valid: Record<string, (() => unknown)[]>): unknown {
  const roll = random();
  if (roll < 0.08) return oddValue(random);
  if (roll < 0.12) return undefined;
  const options: Record<string, unknown> = {};
  for (const [key, values] of Object.entries(valid)) {
    if (random() < 0.5) continue;
    options[key] = random() < 0.8 ? pick(random, values)() : oddValue(random);
  }
  if (random() < 0.1) options[pick(random, ["size", "maxbytes", "Top", "__proto__x"])] = 1;
  return options;
}

/** Calls `fn`; a result or a GoogLeNetError passes, anything else fails the test. */
async function call(what: string, fn: () => unknown): Promise<"ok" | "refused"> {
  try {
    await fn();
    return "ok";
  } catch (error) {
    if (error instanceof GoogLeNetError) return "refused";
    throw new Error(`${what} threw ${error instanceof Error ? error.stack : String(error)}`, {
      cause: error,
    });
  }
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert.equal(x.length, y.length, what);
  const i = x.findIndex((v, k) => v !== y[k]);
  assert.equal(i, -1, `${what}: element ${i} is ${a[i]}, expected ${b[i]}`);
}

const ITERATIONS = 400;
const image = await greyPng(40, 30);
const PREPROCESS_VALUES: Record<string, (() => unknown)[]> = {
  resize: [() => 64, () => 40, () => 1, () => 65_536],
  crop: [() => 32, () => 64, () => 1],
  normalization: [() => "imagenet", () => "half"],
  mean: [() => [0.5, 0.4, 0.3]],
  std: [() => [0.2, 0.3, 0.4]],
  maxPixels: [() => 1_000_000, () => 100, () => 2 ** 30],
  exifOrientation: [() => true, () => false],
  maxBytes: [() => 1 << 20, () => 10],
  signal: [() => new AbortController().signal],
  timeout: [() => 1000, () => Infinity],
};

Deno.test("options fuzz: preprocess, preprocessBatch and decodeImage accept or throw GoogLeNetError; a good call stays bit-identical", async () => {
  const baseline = (await preprocess(image, { resize: 64, crop: 32 })).data;
  const random = prng(7);
  const counts = { ok: 0, refused: 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const options = randomOptions(random, PREPROCESS_VALUES);
    const source = random() < 0.8 ? image : oddValue(random);
    const what = `iteration ${i}`;
    counts[await call(`preprocess ${what}`, () => preprocess(source as never, options as never))]++;
    const list = random() < 0.8 ? [image, source] : oddValue(random);
    counts[
      await call(`preprocessBatch ${what}`, () => preprocessBatch(list as never, options as never))
    ]++;
    counts[
      await call(`decodeImage ${what}`, () => decodeImage(source as never, options as never))
    ]++;
    if (i % 50 === 49) {
      sameBits((await preprocess(image, { resize: 64, crop: 32 })).data, baseline, what);
    }
  }
  console.log(`  ${counts.ok} calls succeeded, ${counts.refused} refused with a GoogLeNetError`);
  assert.ok(counts.ok > 0 && counts.refused > 0);
});

Deno.test("options fuzz: weight readers and writers accept or throw GoogLeNetError; a good file still loads the same", async () => {
  const good = new Map([["w", new Tensor(Float32Array.of(1, -2, 3.5, 0), [2, 2])]]);
  const pth = writePth(good);
  const safetensors = writeSafetensors(good);
  const random = prng(8);
  const counts = { ok: 0, refused: 0 };
  const stateDicts = [
    () => good,
    () => new Map([["w", { data: new Float32Array(4), shape: [2, 2] }]]),
    () => new Map([[1, good.get("w")]]),
    () =>
      new Map([["w", Object.assign(Object.create(Tensor.prototype), { data: [1], shape: [3] })]]),
    () => ({ w: good.get("w") }),
  ];
  for (let i = 0; i < ITERATIONS; i++) {
    const what = `iteration ${i}`;
    const bytes = random() < 0.5 ? pick(random, [pth, safetensors]) : oddValue(random);
    const loadOptions = randomOptions(random, {
      maxBytes: [() => 1 << 20, () => 16],
      signal: [() => new AbortController().signal, () => AbortSignal.abort()],
      timeout: [() => 1000, () => Infinity],
    });
    counts[
      await call(`loadWeights ${what}`, () => loadWeights(bytes as never, loadOptions as never))
    ]++;
    counts[await call(`readPth ${what}`, () => readPth(bytes as never))]++;
    counts[await call(`readSafetensors ${what}`, () => readSafetensors(bytes as never))]++;
    const dict = random() < 0.6 ? pick(random, stateDicts)() : oddValue(random);
    counts[
      await call(
        `writePth ${what}`,
        () =>
          writePth(
            dict as never,
            randomOptions(random, { name: [() => "archive", () => "a/b"] }) as never,
          ),
      )
    ]++;
    const writeOptions = randomOptions(random, {
      dtype: [() => "F64", () => "F32", () => "F16", () => "BF16", () => "I8"],
      metadata: [() => ({ a: "b" }), () => ({ a: 1 })],
    });
    counts[
      await call(
        `writeSafetensors ${what}`,
        () => writeSafetensors(dict as never, writeOptions as never),
      )
    ]++;
  }
  for (const file of [pth, safetensors]) {
    sameBits((await loadWeights(file)).get("w")!.data, good.get("w")!.data, "good file");
  }
  console.log(`  ${counts.ok} calls succeeded, ${counts.refused} refused with a GoogLeNetError`);
  assert.ok(counts.ok > 0 && counts.refused > 0);
});

Deno.test("options fuzz: topK and softmax accept or throw GoogLeNetError; F64 safetensors round-trip exactly", async () => {
  const logits = Float32Array.of(0.5, 2, -1, 3);
  const labels = ["a", "b", "c", "d"];
  const baseline = topK(logits, 2, labels);
  const random = prng(9);
  const counts = { ok: 0, refused: 0 };
  for (let i = 0; i < ITERATIONS * 4; i++) {
    const row = random() < 0.5 ? logits : oddValue(random);
    const k = random() < 0.5 ? pick(random, [1, 2, 4, 9]) : oddValue(random);
    const names = random() < 0.5 ? labels : oddValue(random);
    counts[await call(`topK ${i}`, () => topK(row as never, k as never, names as never))]++;
    counts[await call(`softmax ${i}`, () => softmax(row as never))]++;
  }
  assert.deepEqual(topK(logits, 2, labels), baseline);
  assert.ok(counts.ok > 0 && counts.refused > 0);
  // dtype "F64" used to write a header saying F64 over 2-byte data (read back as zeros).
  const values = Float32Array.of(1 / 3, -1e-30, 3e38, NaN);
  const file = writeSafetensors(new Map([["x", new Tensor(values, [4])]]), { dtype: "F64" });
  sameBits(readSafetensors(file).tensors.get("x")!.data, values, "F64 round trip");
  assert.throws(
    () => writeSafetensors(new Map(), { dtype: "F8_E4M3" as never }),
    (e: unknown) =>
      e instanceof OptionError && /"F64", "F32", "F16" or "BF16", got "F8_E4M3"/.test(e.message),
  );
});

Deno.test("options fuzz: classify and classifyBatch accept or throw GoogLeNetError; the next good call gives the baseline", async () => {
  const model = await GoogLeNet.create({ threads: 1, auxLogits: false, numClasses: 10, seed: 3 });
  try {
    const good = { resize: 64, crop: 64, top: 3 };
    const baseline = await classify(model, image, good);
    const random = prng(10);
    const counts = { ok: 0, refused: 0 };
    const values = {
      ...PREPROCESS_VALUES,
      resize: [() => 64, () => 70],
      crop: [() => 64],
      top: [() => 1, () => 3, () => 10, () => 11],
      labels: [() => Array.from({ length: 10 }, (_, i) => `c${i}`), () => ["x"]],
    };
    for (let i = 0; i < 60; i++) {
      const options = randomOptions(random, values);
      const what = `iteration ${i}`;
      const target = random() < 0.9 ? model : oddValue(random);
      counts[
        await call(`classify ${what}`, () => classify(target as never, image, options as never))
      ]++;
      const list = random() < 0.8 ? [image] : oddValue(random);
      counts[
        await call(
          `classifyBatch ${what}`,
          () => classifyBatch(model, list as never, options as never),
        )
      ]++;
      assert.deepEqual(await classify(model, image, good), baseline, what);
    }
    console.log(`  ${counts.ok} calls succeeded, ${counts.refused} refused with a GoogLeNetError`);
    assert.ok(counts.ok > 0 && counts.refused > 0);
  } finally {
    await model.dispose();
  }
});
