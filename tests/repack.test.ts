/**
 * Training's repack in Wasm (`src/backend/repack.ts`, `asm/pack.ts`): after an
 * optimizer step the packed forms of every trainable layer (GEMM panels,
 * Winograd forms, the transposed and flipped input-gradient weights and their
 * Winograd forms) are re-derived from staged copies on every thread. They
 * must be the bits of the TypeScript packing (`packLayer` in
 * `src/backend/repack.ts`, `packWinograd` in f64), for every layer shape of
 * both variants with aux heads and both `prefer` choices, on 1 and 2
 * threads (torchvision's BatchNorm layers folded by the kernels, with drawn
 * running statistics); and the logits after a repack must be those of a
 * fresh model created with the same weights, also with the GEMM panels the
 * repack leaves out (weights with a Winograd form) filled with NaN.
 */

import assert from "node:assert/strict";
import { GoogLeNet, type Preference, Tensor } from "../mod.ts";
import {
  convRowOrder,
  identityRowOrder,
  nhwcFlattenRowOrder,
  packWinograd,
  winogradSize,
} from "../src/backend/pack.ts";
import type { WinogradVariant } from "../src/graph/ops.ts";
import { kernelArena } from "./_support/kernel_arena.ts";
import {
  gatherOf,
  type RepackLayer,
  setRepackInWasm,
  WeightStaging,
} from "../src/backend/repack.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { deterministicStateDict } from "../tools/deterministic.ts";

type VariantName = "seed" | "torchvision";

/** A model after one backward (training regions allocated) and one weight change. */
async function updated(
  variant: VariantName,
  prefer: Preference,
  threads: number,
  wasm: boolean,
  trainable?: string[],
): Promise<GoogLeNet> {
  setRepackInWasm(wasm);
  try {
    const model = await GoogLeNet.create({
      variant,
      prefer,
      threads,
      seed: 7,
      numClasses: 10,
      trainable,
    });
    // Every tensor drawn, so that a BatchNorm fold meets running statistics other than 0 and 1.
    const shapes = [...model.stateDict()].map(([k, t]) => [k, t.shape] as const);
    model.loadStateDict(deterministicStateDict(shapes));
    // Eval mode: the main head alone, so a small input will do; gradients start training.
    const x = new Tensor(
      Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37)),
      [2, 3, 64, 64],
    );
    await model.backward(x, [1, 8]);
    await model.updateParameters((params) => {
      params.forEach((p, j) => {
        for (let i = 0; i < p.data.length; i++) p.data[i] += 1e-3 * (((i * 7 + j) % 13) - 6);
      });
    });
    return model;
  } finally {
    setRepackInWasm(true);
  }
}

/**
 * The GEMM panels the Wasm repack leaves as they were (weights with a Winograd
 * form, which no kernel reads), set to 0 in `blobs` so that the rest compares.
 */
function clearUnread(model: GoogLeNet, ...blobs: Float32Array[]): number {
  const ranges = (model.backend as unknown as WasmBackend).unreadPanels();
  for (const { offset, floats } of ranges) {
    for (const b of blobs) b.fill(0, offset, offset + floats);
  }
  return ranges.length;
}

/** Indices where two blobs differ (bitwise) over the first `length` floats. */
function differences(a: Float32Array, b: Float32Array, length: number): number[] {
  const out: number[] = [];
  const ua = new Uint32Array(a.buffer, a.byteOffset, length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, length);
  for (let i = 0; i < length && out.length < 5; i++) if (ua[i] !== ub[i]) out.push(i);
  return out;
}

const CASES: [VariantName, Preference, number[]][] = [
  ["seed", "memory", [1, 2]],
  ["seed", "speed", [2]],
  ["torchvision", "memory", [2]],
  ["torchvision", "speed", [1, 2]],
];

for (const [variant, prefer, threadCounts] of CASES) {
  Deno.test(`repack: Wasm gives the TypeScript packing's bits (${variant}, prefer ${prefer})`, async () => {
    const reference = await updated(variant, prefer, 1, false);
    const expected = reference.backend.weights().slice();
    await reference.dispose();
    for (const threads of threadCounts) {
      const model = await updated(variant, prefer, threads, true);
      const blob = model.backend.weights().slice();
      // Every 3x3 and 5x5 layer has two such ranges (forward and transposed panels).
      assert.ok(clearUnread(model, expected, blob) >= 2 * 19, "no unread panels");
      // The staging region (folded weights and biases) follows the TypeScript path's regions.
      assert.ok(
        blob.length > expected.length + 6_000_000,
        `staging region missing: ${blob.length} vs ${expected.length} floats`,
      );
      assert.deepEqual(differences(expected, blob, expected.length), [], `threads ${threads}`);
      await model.dispose();
    }
  });
}

Deno.test("repack: frozen layers pack in TypeScript, trainable ones in Wasm, same bits", async () => {
  // Only inception5b (1.35M weights) and fc (10K) train: they are staged, the rest (5.6M
  // more) is not. inception5b's BatchNorm layers keep the folded weights and the PyTorch
  // tensors the kernels fold them from (8 bytes per weight), fc two regions the optimizer
  // kernels alternate between (8 bytes): about 2.7M floats in all.
  const trainable = ["inception5b.", "fc."];
  const reference = await updated("torchvision", "speed", 2, false, trainable);
  const expected = reference.backend.weights().slice();
  await reference.dispose();
  const model = await updated("torchvision", "speed", 2, true, trainable);
  const blob = model.backend.weights().slice();
  // inception5b's 3x3 and 5x5 layers (two each).
  assert.equal(clearUnread(model, expected, blob), 4);
  const staged = blob.length - expected.length;
  assert.ok(staged > 2_500_000 && staged < 3_500_000, `staged ${staged} floats`);
  assert.deepEqual(differences(expected, blob, expected.length), []);
  await model.dispose();
});

Deno.test("repack: logits after a Wasm repack equal a fresh model's with the same weights", async () => {
  for (const variant of ["seed", "torchvision"] as const) {
    const model = await updated(variant, "speed", 2, true);
    model.eval();
    const fresh = await GoogLeNet.create({
      variant,
      prefer: "speed",
      threads: 2,
      numClasses: 10,
      stateDict: model.stateDict(),
    });
    const x = new Tensor(
      Float32Array.from({ length: 3 * 96 * 96 }, (_, i) => Math.cos(i * 0.11)),
      [1, 3, 96, 96],
    );
    const a = (await model.forward(x)) as Tensor;
    const b = (await fresh.forward(x)) as Tensor;
    assert.deepEqual(differences(a.data, b.data, a.data.length), [], variant);
    // The step changed the weights: the logits are not those of the initial weights.
    const initial = await GoogLeNet.create({
      variant,
      prefer: "speed",
      threads: 2,
      seed: 7,
      numClasses: 10,
    });
    const c = (await initial.forward(x)) as Tensor;
    assert.notDeepEqual(differences(a.data, c.data, a.data.length), []);
    await Promise.all([model.dispose(), fresh.dispose(), initial.dispose()]);
  }
});

Deno.test("repack: training reads no GEMM panel the repack leaves out (NaN there changes no bit)", async () => {
  const x = new Tensor(
    Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.cos(i * 0.23)),
    [2, 3, 64, 64],
  );
  const run = async (threads: number, poison: boolean) => {
    const model = await updated("seed", "memory", threads, true);
    if (poison) {
      const blob = model.backend.weights();
      const ranges = (model.backend as unknown as WasmBackend).unreadPanels();
      assert.ok(ranges.length >= 2 * 19);
      for (const { offset, floats } of ranges) blob.fill(NaN, offset, offset + floats);
      model.backend.weightsChanged();
    }
    await model.zeroGrad();
    const { loss } = await model.backward(x, [3, 5]);
    const grads = model.parameters().map((p) => p.grad);
    model.eval();
    const logits = (await model.forward(x)) as Tensor;
    await model.dispose();
    return { loss, grads, logits: logits.data };
  };
  for (const threads of [1, 2]) {
    const clean = await run(threads, false), poisoned = await run(threads, true);
    assert.ok(Number.isFinite(clean.loss));
    assert.equal(Object.is(poisoned.loss, clean.loss), true, `loss, threads ${threads}`);
    assert.deepEqual(differences(poisoned.logits, clean.logits, clean.logits.length), []);
    assert.ok(clean.grads.filter((g) => g).length > 50, "gradients reached");
    clean.grads.forEach((g, i) => {
      const p = poisoned.grads[i];
      assert.equal(p === null, g === null, `gradient ${i}`);
      if (g && p) assert.deepEqual(differences(p, g, g.length), [], `gradient ${i}`);
    });
  }
});

Deno.test("repack: with the unread panels NaN, eval logits at small and odd sizes equal a fresh model's (torchvision, speed, 3 threads, frozen stem)", async () => {
  // Tiny maps (a 32x32 input leaves inception5 1x1 maps), odd sizes, batch 1 and 3; the
  // f4x3 Winograd forms of prefer "speed", BatchNorm folded, a frozen stem, 3 threads.
  const trainable = ["inception", "aux", "fc."];
  const model = await updated("torchvision", "speed", 3, true, trainable);
  const ranges = (model.backend as unknown as WasmBackend).unreadPanels();
  assert.ok(ranges.length >= 2 * 18, `${ranges.length} unread ranges`);
  const blob = model.backend.weights();
  for (const { offset, floats } of ranges) blob.fill(NaN, offset, offset + floats);
  model.backend.weightsChanged();
  const fresh = await GoogLeNet.create({
    variant: "torchvision",
    prefer: "speed",
    threads: 3,
    numClasses: 10,
    stateDict: model.stateDict(),
  });
  model.eval();
  for (const [n, h, w] of [[3, 32, 32], [1, 41, 99]]) {
    const x = new Tensor(
      Float32Array.from({ length: n * 3 * h * w }, (_, i) => Math.sin(i * 0.29 + h)),
      [n, 3, h, w],
    );
    const a = (await model.forward(x)) as Tensor;
    const b = (await fresh.forward(x)) as Tensor;
    assert.ok(a.data.every(Number.isFinite), `${n}x${h}x${w}: not finite`);
    assert.deepEqual(differences(a.data, b.data, a.data.length), [], `${n}x${h}x${w}`);
  }
  await Promise.all([model.dispose(), fresh.dispose()]);
});

Deno.test("repack: gatherOf reproduces every row order the model packs with", () => {
  const cases: [ReturnType<typeof convRowOrder>, number][] = [
    [convRowOrder(3, 7, 7), 147],
    [convRowOrder(64, 1, 1), 64],
    [convRowOrder(96, 3, 3), 864],
    [convRowOrder(16, 5, 5), 400],
    [nhwcFlattenRowOrder(128, 4, 4), 2048],
    [identityRowOrder, 1024],
  ];
  for (const [order, k] of cases) {
    const g = gatherOf(order, k);
    assert.ok(g, `no gather for k ${k}`);
    for (let r = 0; r < k; r++) {
      assert.equal((r % g.c) * g.a + Math.floor(r / g.c) * g.b, order(r));
    }
  }
  // An order of neither form is refused (the layer is then packed in TypeScript).
  assert.equal(gatherOf((r) => (r * 5) % 8, 8), null);
});

Deno.test("repack: the backend's staging lays out regions by kind and caches a plan per arrangement", () => {
  const base = {
    packed: { offset: 0, k: 0, n: 0 },
    winograd: null,
    transposed: null,
    batchNormEps: null,
  };
  const fc: RepackLayer = { ...base, key: "fc", k: 16, n: 8, order: identityRowOrder, conv: null };
  const conv = { kernelSize: 3, inChannels: 4, outChannels: 8 };
  const bn: RepackLayer = {
    ...base,
    key: "bn",
    k: 36,
    n: 8,
    order: convRowOrder(4, 3, 3),
    conv,
    batchNormEps: 1e-3,
  };
  // No gather reproduces this order: the model packs such a layer itself.
  const odd: RepackLayer = {
    ...base,
    key: "odd",
    k: 5,
    n: 8,
    order: (r) => (r * 3) % 5,
    conv: null,
  };
  const staging = new WeightStaging();
  const end = staging.stage([fc, odd, bn], 1024, true);
  assert.equal(staging.get("odd"), null);
  const f = staging.get("fc")!, b = staging.get("bn")!;
  // fc: two regions of 144 floats (16 * 8 + 8, 16-aligned); bn: one of 304 and its unfolded tensors.
  assert.deepEqual(f.regions, [{ weight: 1024, bias: 1152 }, { weight: 1168, bias: 1296 }]);
  assert.deepEqual(b.regions, [{ weight: 1312, bias: 1600 }]);
  assert.equal(b.unfolded, 1616);
  assert.equal(end, 1616 + 320);
  assert.equal(new WeightStaging().stage([fc, bn], 1024, false), 1024 + 144 + 304 + 320);

  const plan = staging.plan(["fc", "bn"]);
  assert.deepEqual(plan.steps.map((s) => s.length), [1, 2]);
  assert.equal(plan.ops[0].kind, "fold_batchnorm");
  assert.equal(staging.plan(["fc", "bn"]), plan, "cached");
  f.flip();
  const flipped = staging.plan(["fc", "bn"]);
  assert.notEqual(flipped, plan);
  const source = (p: typeof plan) =>
    p.ops.flatMap((op) => op.kind === "pack_gemm" && op.name === "fc" ? [op.source] : []);
  assert.deepEqual([source(plan), source(flipped)], [[1024], [1168]]);
  f.flip();
  assert.equal(staging.plan(["fc", "bn"]), plan, "the last two arrangements are kept");

  // New tensors go back to back: fc's into its current region, bn's five where its fold reads them.
  const blob = new Float32Array(end + 16);
  const fill = (n: number, v: number) => new Float32Array(n).fill(v);
  f.flip();
  staging.write(blob, [
    { layer: fc, tensors: [fill(128, 1), fill(8, 2)] },
    { layer: bn, tensors: [fill(288, 3), fill(8, 4), fill(8, 5), fill(8, 6), fill(8, 7)] },
  ]);
  const at = (i: number) => blob[i];
  assert.deepEqual([at(1167), at(1168), at(1295), at(1296), at(1303), at(1304)], [
    0,
    1,
    1,
    2,
    2,
    0,
  ]);
  assert.deepEqual([at(1615), at(1616), at(1903), at(1904), at(1935), at(1936)], [
    0,
    3,
    3,
    4,
    7,
    0,
  ]);
  assert.equal(
    blob.subarray(1024, 1168).some((v) => v !== 0),
    false,
    "fc's other region untouched",
  );
  assert.equal(
    blob.subarray(1312, 1616).some((v) => v !== 0),
    false,
    "bn's region left to the fold",
  );
  staging.write(blob, [{ layer: fc, tensors: null }]);

  // A swap carries over what the kernels did not write (here the bias), then makes that region current.
  blob.fill(9, 1024, 1024 + 128); // the kernels' new weight in fc's other region
  staging.swap(blob, [{ key: "fc", weight: true, bias: false }]);
  assert.equal(f.now.weight, 1024);
  assert.deepEqual([at(1024), at(1151), at(1152), at(1159), at(1160)], [9, 9, 2, 2, 0]);
});

/**
 * Weights drawn to break shortcuts in the f64 transform: NaN (with payloads and signs), +-Inf,
 * +-0, f32 subnormals, +-3.4e38, any bit pattern and ordinary values of many magnitudes, mixed
 * in proportions from all finite to all hostile, so that pairs of outputs go both ways through
 * `pack_winograd` (its fast path for finite taps, the reference's loop otherwise).
 */
function hostileWeights(seed: number, n: number, share: number): Float32Array {
  const special = [
    0,
    -0,
    Infinity,
    -Infinity,
    3.4e38,
    -3.4e38,
    1e-45,
    -1e-45,
    1.1e-38,
    -5e-39,
    2 ** -126,
    1,
    -1,
  ];
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  let s = seed;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  for (let i = 0; i < n; i++) {
    const u = next();
    if (next() >= share) out[i] = (u * 2 - 1) * 2 ** Math.floor(next() * 40 - 20);
    else if (u < 0.1) {
      bits[i] = (0x7f800001 + Math.floor(next() * 0x7fffff)) | (next() < 0.5 ? 0x80000000 : 0);
    } else if (u < 0.3) bits[i] = Math.floor(next() * 2 ** 32) & 0x807fffff; // +-0 and subnormals
    else if (u < 0.5) bits[i] = Math.floor(next() * 2 ** 32);
    else out[i] = special[Math.floor(next() * special.length)];
  }
  return out;
}

Deno.test("repack: pack_winograd gives packWinograd's bits on hostile weights (NaN, Inf, -0, subnormals, 3.4e38), forward and transposed", async () => {
  const variants: [WinogradVariant, number][] = [["f2x3", 3], ["f4x3", 3], ["f2x5", 5]];
  let nonFinite = 0, negativeZero = 0, compared = 0;
  for (const isa of ["relaxed-simd", "simd"] as const) {
    for (const [variant, r] of variants) {
      // Odd output counts leave a pair with one output; 8 outputs fill a panel.
      for (const [c, oc] of [[3, 13], [8, 8], [5, 1]]) {
        for (const share of [0, 0.02, 0.3, 1]) {
          const a = await kernelArena(isa);
          const taps = r * r;
          const weight = hostileWeights(c * 131 + oc * 7 + r + share * 1000, oc * c * taps, share);
          const bias = hostileWeights(oc + 5, oc, share);
          // The input-gradient form: W'[i, o, t] = W[o, i, taps - 1 - t], no bias.
          const transposed = new Float32Array(weight.length);
          for (let o = 0; o < oc; o++) {
            for (let i = 0; i < c; i++) {
              for (let t = 0; t < taps; t++) {
                transposed[(i * oc + o) * taps + taps - 1 - t] = weight[(o * c + i) * taps + t];
              }
            }
          }
          const src = a.put(weight), biasAt = a.put(bias);
          const scratch = a.alloc(a.k.pack_winograd_scratch_bytes!() / 4);
          for (const form of ["forward", "transposed"] as const) {
            const [inC, outC] = form === "forward" ? [c, oc] : [oc, c];
            const size = winogradSize(inC, outC, variant);
            const expected = new Float32Array(size);
            if (form === "forward") packWinograd(expected, 0, weight, bias, c, oc, variant);
            else packWinograd(expected, 0, transposed, new Float32Array(c), oc, c, variant);
            const dst = a.alloc(size);
            const n = variant === "f2x3" ? 4 : 6;
            // One panel per call, as the threads' chunks cut them.
            for (let p = 0; p < Math.ceil(outC / 8); p++) {
              if (form === "forward") {
                a.k.pack_winograd!(
                  src,
                  0,
                  c * taps,
                  taps,
                  1,
                  biasAt,
                  c,
                  oc,
                  n,
                  r,
                  dst,
                  scratch,
                  p,
                  p + 1,
                );
              } else {
                a.k.pack_winograd!(
                  src,
                  taps - 1,
                  taps,
                  c * taps,
                  -1,
                  0,
                  oc,
                  c,
                  n,
                  r,
                  dst,
                  scratch,
                  p,
                  p + 1,
                );
              }
            }
            const got = a.bits(dst, size), want = new Uint32Array(expected.buffer);
            // NaN is NaN: which payload a NaN sum keeps is not the same in TypeScript.
            const isNaN = (b: number) => (b & 0x7fffffff) > 0x7f800000;
            for (let i = 0; i < size; i++) {
              if (got[i] !== want[i] && !(isNaN(got[i]) && isNaN(want[i]))) {
                assert.fail(
                  `${isa} ${variant} ${form} c ${c} oc ${oc} share ${share}: float ${i} is ` +
                    `0x${got[i].toString(16)}, packWinograd 0x${want[i].toString(16)}`,
                );
              }
              if ((want[i] & 0x7f800000) === 0x7f800000) nonFinite++;
              if (want[i] === 0x80000000) negativeZero++;
            }
            compared += size;
          }
        }
      }
    }
  }
  // The hostile values reach the results: non-finite ones, and -0 (from tiny negative sums).
  assert.ok(nonFinite > 1000 && negativeZero > 0, `${nonFinite} non-finite, ${negativeZero} -0`);
  assert.ok(compared > 100_000, `${compared} floats`);
});
