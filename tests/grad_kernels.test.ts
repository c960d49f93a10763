/**
 * The training kernels (backward pass) of both SIMD builds against plain
 * TypeScript references in f64, on odd shapes: channel counts that are not
 * multiples of 4 or 8, batch 3, ceil-mode partial windows, ties and NaN in
 * max pools, 5x5 on 7x7 maps, conv1's 7x7 stride 2 on 3 channels, a 1x1 on
 * a channel slice of a wider tensor, output channels not a multiple of 8.
 * Tolerances: the weight and bias gradients within 1e-5 x max |reference|;
 * the pools within 1e-6 (max pool exactly: integer gradients); the
 * forward-without-ReLU variants bit for bit against the ReLU kernels and
 * within 1e-5 of the reference. Every chunked kernel is also run in several
 * chunks and must give the bits of one chunk, and the accumulating kernels
 * must add to what was there (and the others overwrite it).
 */

import assert from "node:assert/strict";
import { type KernelArena, kernelArena, random, sameBits } from "./_support/kernel_arena.ts";
import { describeModule, type KernelExports, kernelUrl } from "../src/backend/wasm/kernels.ts";
import { BackendError } from "../src/errors.ts";
import { runChunk } from "../src/backend/wasm/executor.ts";
import { assertClose } from "./_support/assert_close.ts";
import { packedSize, packGemm, packWinograd } from "../src/backend/pack.ts";
import type { WinogradVariant } from "../src/graph/ops.ts";

const BUILDS = [["relaxed-simd", false], ["simd", false]] as const;

type Arena = KernelArena;
function arena(isa: "relaxed-simd" | "simd"): Promise<Arena> {
  return kernelArena(isa, 512);
}

/** Random integers in [-range, range] (sums of them are exact in f32). */
function integers(seed: number, n: number, range: number): Float32Array {
  return random(seed, n).map((v) => Math.round(v * range));
}

/** Strided NHWC tensor [pixels, stride] holding `data` [pixels, c] at channel `offset`. */
function strided(data: Float32Array, c: number, stride: number, offset: number): Float32Array {
  const pixels = data.length / c;
  const out = random(99, pixels * stride, 7); // other channels: noise that must not be read
  for (let p = 0; p < pixels; p++) {
    for (let ch = 0; ch < c; ch++) out[p * stride + offset + ch] = data[p * c + ch];
  }
  return out;
}

/** The [pixels, c] channels at `offset` of a strided [pixels, stride] tensor. */
function unstrided(data: Float32Array, c: number, stride: number, offset: number): Float32Array {
  const pixels = data.length / stride;
  const out = new Float32Array(pixels * c);
  for (let p = 0; p < pixels; p++) {
    for (let ch = 0; ch < c; ch++) out[p * c + ch] = data[p * stride + offset + ch];
  }
  return out;
}

/** Splits [0, n) at the given fractions (distinct integer bounds only). */
function cuts(n: number, fractions: number[]): number[] {
  const bounds = [0, ...fractions.map((f) => Math.floor(n * f)), n];
  return [...new Set(bounds)].filter((b) => b >= 0 && b <= n).sort((a, b) => a - b);
}

// ---------------------------------------------------------------- convolution

interface ConvShape {
  n: number;
  h: number;
  w: number;
  c: number;
  oc: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  /** Floats per input pixel (> c: a channel slice of a wider tensor, at channel `xoff`). */
  xstride?: number;
  xoff?: number;
  /** Floats per dY pixel (> oc: a slice). */
  dystride?: number;
}

function outSize(s: ConvShape): [number, number] {
  return [
    Math.floor((s.h + 2 * s.ph - s.kh) / s.sh) + 1,
    Math.floor((s.w + 2 * s.pw - s.kw) / s.sw) + 1,
  ];
}

/** im2col(x)[m, kk] in f64, kk = (i * kw + j) * c + ch; zero outside the input. */
function im2colRef(x: Float32Array, s: ConvShape): { cols: Float64Array; m: number; k: number } {
  const [oh, ow] = outSize(s);
  const k = s.kh * s.kw * s.c, m = s.n * oh * ow;
  const cols = new Float64Array(m * k);
  for (let img = 0; img < s.n; img++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const row = ((img * oh + oy) * ow + ox) * k;
        for (let i = 0; i < s.kh; i++) {
          for (let j = 0; j < s.kw; j++) {
            const iy = oy * s.sh - s.ph + i, ix = ox * s.sw - s.pw + j;
            if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
            for (let ch = 0; ch < s.c; ch++) {
              cols[row + (i * s.kw + j) * s.c + ch] = x[((img * s.h + iy) * s.w + ix) * s.c + ch];
            }
          }
        }
      }
    }
  }
  return { cols, m, k };
}

/** y[m, o] = bias[o] + sum_kk im2col(x)[m, kk] * wt[o, kk] (wt in packed row order), f64. */
function convRef(
  x: Float32Array,
  wt: Float32Array,
  bias: Float32Array,
  s: ConvShape,
): Float64Array {
  const { cols, m, k } = im2colRef(x, s);
  const y = new Float64Array(m * s.oc);
  for (let r = 0; r < m; r++) {
    for (let o = 0; o < s.oc; o++) {
      let sum = bias[o];
      for (let kk = 0; kk < k; kk++) sum += cols[r * k + kk] * wt[o * k + kk];
      y[r * s.oc + o] = sum;
    }
  }
  return y;
}

/** dw0[o, kk] + sum_m dy[m, o] * im2col(x)[m, kk], f64. */
function weightGradRef(
  x: Float32Array,
  dy: Float32Array,
  dw0: Float32Array,
  s: ConvShape,
): Float64Array {
  const { cols, m, k } = im2colRef(x, s);
  const dw = Float64Array.from(dw0);
  for (let r = 0; r < m; r++) {
    for (let o = 0; o < s.oc; o++) {
      const g = dy[r * s.oc + o];
      if (g === 0) continue;
      for (let kk = 0; kk < k; kk++) dw[o * k + kk] += g * cols[r * k + kk];
    }
  }
  return dw;
}

const WEIGHT_GRAD_CASES: Record<string, ConvShape> = {
  // conv1: im2col path (c < 8), 2 x 12 x 12 = 288 output pixels: two pixel blocks.
  "conv1 7x7 stride 2 pad 3, c 3, oc 10": {
    n: 2,
    h: 23,
    w: 23,
    c: 3,
    oc: 10,
    kh: 7,
    kw: 7,
    sh: 2,
    sw: 2,
    ph: 3,
    pw: 3,
  },
  // Direct path, c % 8 = 4 (a partial column tile per tap), batch 3, oc 13.
  "3x3 pad 1, batch 3, c 12, oc 13": {
    n: 3,
    h: 9,
    w: 7,
    c: 12,
    oc: 13,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
    dystride: 17,
  },
  "5x5 pad 2 on 7x7, c 16, oc 8": {
    n: 1,
    h: 7,
    w: 7,
    c: 16,
    oc: 8,
    kh: 5,
    kw: 5,
    sh: 1,
    sw: 1,
    ph: 2,
    pw: 2,
  },
  // Direct path with 24 x 24 output rows: 10 rows a block, three blocks.
  "3x3 pad 1 on 24x24, c 8, oc 7": {
    n: 1,
    h: 24,
    w: 24,
    c: 8,
    oc: 7,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
  },
  "3x3 stride 2 no padding, c 9, oc 6": {
    n: 2,
    h: 11,
    w: 10,
    c: 9,
    oc: 6,
    kh: 3,
    kw: 3,
    sh: 2,
    sw: 2,
    ph: 0,
    pw: 0,
  },
  // Direct path, stride 2 with padding: taps start past the left and top edges.
  "7x7 stride 2 pad 3, c 8, oc 9": {
    n: 1,
    h: 15,
    w: 12,
    c: 8,
    oc: 9,
    kh: 7,
    kw: 7,
    sh: 2,
    sw: 2,
    ph: 3,
    pw: 3,
  },
  // Dense path on a channel slice of a 36-channel tensor, 2 x 13 x 11 = 286 pixels.
  "1x1 on a channel slice, c 20 of 36, oc 11": {
    n: 2,
    h: 13,
    w: 11,
    c: 20,
    oc: 11,
    kh: 1,
    kw: 1,
    sh: 1,
    sw: 1,
    ph: 0,
    pw: 0,
    xstride: 36,
    xoff: 8,
    dystride: 14,
  },
  "1x1 stride 2, c 16, oc 5": {
    n: 1,
    h: 9,
    w: 9,
    c: 16,
    oc: 5,
    kh: 1,
    kw: 1,
    sh: 2,
    sw: 2,
    ph: 0,
    pw: 0,
  },
  "linear: batch 5, 37 -> 9": {
    n: 5,
    h: 1,
    w: 1,
    c: 37,
    oc: 9,
    kh: 1,
    kw: 1,
    sh: 1,
    sw: 1,
    ph: 0,
    pw: 0,
  },
  "linear: batch 3, 5 -> 14 (im2col path)": {
    n: 3,
    h: 1,
    w: 1,
    c: 5,
    oc: 14,
    kh: 1,
    kw: 1,
    sh: 1,
    sw: 1,
    ph: 0,
    pw: 0,
  },
};

for (const [isa] of BUILDS) {
  for (const [name, s] of Object.entries(WEIGHT_GRAD_CASES)) {
    Deno.test(`conv2d_weight_grad ${name} (${isa})`, async () => {
      const a = await arena(isa);
      const [oh, ow] = outSize(s);
      const k = s.kh * s.kw * s.c, m = s.n * oh * ow;
      const xstride = s.xstride ?? s.c, xoff = s.xoff ?? 0, dystride = s.dystride ?? s.oc;
      const x = random(1, s.n * s.h * s.w * s.c);
      const dy = random(2, m * s.oc);
      const dw0 = random(3, s.oc * k, 0.5);
      const expected = weightGradRef(x, dy, dw0, s);
      const xAt = a.put(strided(x, s.c, xstride, xoff)) + xoff * 4;
      const dyAt = a.put(strided(dy, s.oc, dystride, 0));
      const scratchBytes = a.k.conv2d_weight_grad_scratch_bytes(s.c, s.kh, s.kw, ow, s.oc);
      const scratch = a.alloc(scratchBytes / 4 + 16);
      const run = (dw: number, o0: number, o1: number, q0: number, q1: number) =>
        a.k.conv2d_weight_grad(
          xAt,
          xstride,
          s.n,
          s.h,
          s.w,
          s.c,
          s.kh,
          s.kw,
          s.sh,
          s.sw,
          s.ph,
          s.pw,
          oh,
          ow,
          dyAt,
          dystride,
          s.oc,
          dw,
          scratch,
          o0,
          o1,
          q0,
          q1,
        );
      // One chunk.
      const whole = a.put(dw0);
      run(whole, 0, s.oc, 0, k);
      const rel = assertClose(a.f32(whole, s.oc * k), expected, 1e-5, name);
      // The scratch stayed within its size: the guard after it is unwritten.
      assert.ok(a.f32(scratch + scratchBytes, 16).every(Number.isNaN), "scratch overrun");
      // Chunks over (o, kk) at odd bounds give the same bits.
      const chunked = a.put(dw0);
      const os = cuts(s.oc, [0.3, 0.55]), qs = cuts(k, [0.21, 0.5, 0.77]);
      for (let i = 0; i + 1 < os.length; i++) {
        for (let j = 0; j + 1 < qs.length; j++) run(chunked, os[i], os[i + 1], qs[j], qs[j + 1]);
      }
      sameBits(a.bits(chunked, s.oc * k), a.bits(whole, s.oc * k), `${name} chunked`);
      console.log(
        `  max rel error ${rel.toExponential(2)}; ${os.length - 1}x${
          qs.length - 1
        } chunks bit-identical`,
      );
    });
  }
}

Deno.test("conv2d_weight_grad touches only rows [o0, o1) and columns [q0, q1)", async () => {
  const a = await arena("simd");
  const s = WEIGHT_GRAD_CASES["3x3 pad 1, batch 3, c 12, oc 13"];
  const [oh, ow] = outSize(s);
  const k = s.kh * s.kw * s.c;
  const xAt = a.put(random(1, s.n * s.h * s.w * s.c));
  const dyAt = a.put(random(2, s.n * oh * ow * s.oc));
  const scratch = a.alloc(a.k.conv2d_weight_grad_scratch_bytes(s.c, s.kh, s.kw, ow, s.oc) / 4);
  const dw = a.alloc(s.oc * k, 0);
  const [o0, o1, q0, q1] = [3, 10, 17, 70];
  a.k.conv2d_weight_grad(
    xAt,
    s.c,
    s.n,
    s.h,
    s.w,
    s.c,
    s.kh,
    s.kw,
    s.sh,
    s.sw,
    s.ph,
    s.pw,
    oh,
    ow,
    dyAt,
    s.oc,
    s.oc,
    dw,
    scratch,
    o0,
    o1,
    q0,
    q1,
  );
  const out = a.f32(dw, s.oc * k);
  for (let o = 0; o < s.oc; o++) {
    for (let q = 0; q < k; q++) {
      const inside = o >= o0 && o < o1 && q >= q0 && q < q1;
      assert.equal(out[o * k + q] !== 0, inside, `dw[${o}, ${q}]`);
    }
  }
});

// ---------------------------------------------- Winograd weight gradients

/**
 * 3x3 "same" stride-1 convolutions for `winograd_f4x3_weight_grad`: maps not
 * a multiple of the 4x4 output tile (partial tiles at the right and bottom,
 * a map smaller than one tile), more tiles than one pass of 64, channels
 * in more than one dU block (at most 96 output x 64 input channels, split
 * evenly: 68 = 40 + 28 input channels, a partial 8-column GEMM tile; 100 =
 * 52 + 48 output channels), output blocks that end in a panel of 2 or 4
 * channels (20, 132 = 68 + 64), strided slices.
 */
const WINOGRAD_GRAD_CASES: Record<string, ConvShape> = {
  "batch 3, 9x11, c 68, oc 72, strided": {
    n: 3,
    h: 9,
    w: 11,
    c: 68,
    oc: 72,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
    xstride: 76,
    xoff: 4,
    dystride: 80,
  },
  "batch 2, 7x7, c 12, oc 20": {
    n: 2,
    h: 7,
    w: 7,
    c: 12,
    oc: 20,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
  },
  "batch 3, 14x13, c 68, oc 8": {
    n: 3,
    h: 14,
    w: 13,
    c: 68,
    oc: 8,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
  },
  "batch 5, 15x14, c 68, oc 100 (80 tiles)": {
    n: 5,
    h: 15,
    w: 14,
    c: 68,
    oc: 100,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
  },
  "batch 1, 3x2, c 4, oc 132": {
    n: 1,
    h: 3,
    w: 2,
    c: 4,
    oc: 132,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    ph: 1,
    pw: 1,
  },
};

/**
 * 5x5 "same" stride-1 convolutions for `winograd_f2x5_weight_grad`: odd maps
 * (partial 2x2 tiles), a map smaller than one patch, channels crossing its
 * 128 x 48 dU blocks (a partial 8-column GEMM tile), strided slices, more
 * tiles than one GEMM pass takes (256).
 */
const WINOGRAD5_GRAD_CASES: Record<string, ConvShape> = {
  "batch 3, 9x11, c 20, oc 52, strided": {
    n: 3,
    h: 9,
    w: 11,
    c: 20,
    oc: 52,
    kh: 5,
    kw: 5,
    sh: 1,
    sw: 1,
    ph: 2,
    pw: 2,
    xstride: 28,
    xoff: 4,
    dystride: 60,
  },
  "batch 2, 14x14, c 52, oc 136": {
    n: 2,
    h: 14,
    w: 14,
    c: 52,
    oc: 136,
    kh: 5,
    kw: 5,
    sh: 1,
    sw: 1,
    ph: 2,
    pw: 2,
  },
  "batch 1, 3x2, c 4, oc 8": {
    n: 1,
    h: 3,
    w: 2,
    c: 4,
    oc: 8,
    kh: 5,
    kw: 5,
    sh: 1,
    sw: 1,
    ph: 2,
    pw: 2,
  },
  "batch 4, 28x28, c 4, oc 12 (784 tiles)": {
    n: 4,
    h: 28,
    w: 28,
    c: 4,
    oc: 12,
    kh: 5,
    kw: 5,
    sh: 1,
    sw: 1,
    ph: 2,
    pw: 2,
  },
};

/**
 * The Winograd weight-gradient kernels, their scratch sizes, cases and
 * tolerances (of max |reference|). F(2x2, 5x5)'s error is 1.0-1.5e-5 on
 * these cases (the direct kernel's 1e-6 to 2e-6): its transforms reach the
 * points +-2 with a 5-tap kernel, so dU is up to 2^4 larger than the dW it sums to.
 */
const WINOGRAD_GRAD_KERNELS = [
  ["winograd_f4x3_weight_grad", "winograd_weight_grad_scratch_bytes", WINOGRAD_GRAD_CASES, 1e-5],
  [
    "winograd_f2x5_weight_grad",
    "winograd_f2x5_weight_grad_scratch_bytes",
    WINOGRAD5_GRAD_CASES,
    3e-5,
  ],
] as const;

for (const [isa] of BUILDS) {
  for (const [kernelName, scratchName, cases, tolerance] of WINOGRAD_GRAD_KERNELS) {
    for (const [name, s] of Object.entries(cases)) {
      Deno.test(`${kernelName} ${name} (${isa})`, async () => {
        const a = await arena(isa);
        const kernel = a.k[kernelName];
        const scratchBytes = a.k[scratchName]?.();
        assert.ok(kernel && scratchBytes, "the module has the Winograd weight gradients");
        const k = s.kh * s.kw * s.c, m = s.n * s.h * s.w;
        const xstride = s.xstride ?? s.c, xoff = s.xoff ?? 0, dystride = s.dystride ?? s.oc;
        const x = random(11, m * s.c);
        const dy = random(12, m * s.oc);
        const dw0 = random(13, s.oc * k, 0.5);
        const expected = weightGradRef(x, dy, dw0, s);
        const xAt = a.put(strided(x, s.c, xstride, xoff)) + xoff * 4;
        const dyAt = a.put(strided(dy, s.oc, dystride, 0));
        const scratch = a.alloc(scratchBytes / 4 + 16);
        const run = (dw: number, o0: number, o1: number, c0: number, c1: number) =>
          kernel(
            xAt,
            xstride,
            s.n,
            s.h,
            s.w,
            s.c,
            dyAt,
            dystride,
            s.oc,
            dw,
            scratch,
            o0,
            o1,
            c0,
            c1,
          );
        // One chunk: accumulated onto dw0, within 1e-5 of the f64 reference.
        const whole = a.put(dw0);
        run(whole, 0, s.oc, 0, s.c);
        const rel = assertClose(a.f32(whole, s.oc * k), expected, tolerance, name);
        assert.ok(a.f32(scratch + scratchBytes, 16).every(Number.isNaN), "scratch overrun");
        // Chunks over (o, c) at multiples of 4 give the same bits; a chunk touches only its block.
        const four = (f: number[], n: number) => [...new Set(cuts(n, f).map((b) => b - b % 4))];
        const os = four([0.3, 0.55], s.oc), cs = four([0.21, 0.5, 0.77], s.c);
        const chunked = a.put(dw0);
        for (let i = 0; i + 1 < os.length; i++) {
          for (let j = 0; j + 1 < cs.length; j++) run(chunked, os[i], os[i + 1], cs[j], cs[j + 1]);
        }
        sameBits(a.bits(chunked, s.oc * k), a.bits(whole, s.oc * k), `${name} chunked`);
        const part = a.put(dw0);
        const [o0, o1, c0, c1] = [os[1 % os.length], s.oc, cs[1 % cs.length], s.c];
        run(part, o0, o1, c0, c1);
        const got = a.f32(part, s.oc * k), direct = a.f32(whole, s.oc * k);
        for (let o = 0; o < s.oc; o++) {
          for (let q = 0; q < k; q++) {
            const ch = q % s.c, inside = o >= o0 && o < o1 && ch >= c0 && ch < c1;
            const want = inside ? direct[o * k + q] : dw0[o * k + q];
            if (got[o * k + q] !== want) {
              assert.fail(`${name}: dw[${o}, ${q}] outside/inside the block`);
            }
          }
        }
        console.log(
          `  max rel error ${rel.toExponential(2)}; ${os.length - 1}x${
            cs.length - 1
          } chunks bit-identical`,
        );
      });
    }
  }
}

// ---------------------------------------------------------------- bias, ReLU

for (const [isa] of BUILDS) {
  Deno.test(`bias_grad sums dy over pixels into db, any channel split bit-identical (${isa})`, async () => {
    const a = await arena(isa);
    const pixels = 301, oc = 43, dystride = 47; // 43 = 2 x 16 + 2 x 4 + 3
    const dy = random(5, pixels * oc);
    const db0 = random(6, oc);
    const expected = Float64Array.from(db0);
    for (let p = 0; p < pixels; p++) for (let o = 0; o < oc; o++) expected[o] += dy[p * oc + o];
    const dyAt = a.put(strided(dy, oc, dystride, 0));
    const whole = a.put(db0);
    a.k.bias_grad(dyAt, dystride, pixels, whole, 0, oc);
    const rel = assertClose(a.f32(whole, oc), expected, 1e-5, "bias_grad");
    const chunked = a.put(db0);
    const bounds = [0, 5, 22, 23, 41, oc];
    for (let i = 0; i + 1 < bounds.length; i++) {
      a.k.bias_grad(dyAt, dystride, pixels, chunked, bounds[i], bounds[i + 1]);
    }
    sameBits(a.bits(chunked, oc), a.bits(whole, oc), "bias_grad chunked");
    console.log(`  max rel error ${rel.toExponential(2)}`);
  });

  Deno.test(`relu_backward zeroes dy where the output is <= 0 and passes it where NaN (${isa})`, async () => {
    const a = await arena(isa);
    const pixels = 9, c = 7, dystride = 9, ystride = 11;
    const special = [Number.NaN, -0, 0, 1e-30, -1e-30, Infinity, -Infinity];
    const y = random(7, pixels * c).map((v, i) => (i % 5 === 0 ? special[(i / 5) % 7] : v));
    const dy = random(8, pixels * c);
    const dyFull = strided(dy, c, dystride, 0);
    const dyAt = a.put(dyFull);
    const yAt = a.put(strided(y, c, ystride, 0));
    const [r0, r1] = [2, 8];
    a.k.relu_backward(dyAt, dystride, yAt, ystride, c, r0, r1);
    const out = a.f32(dyAt, pixels * dystride);
    for (let p = 0; p < pixels; p++) {
      for (let ch = 0; ch < dystride; ch++) {
        const i = p * dystride + ch;
        const inside = p >= r0 && p < r1 && ch < c;
        // torch 1.13: threshold_backward(grad, y, 0) = y <= 0 ? 0 : grad (NaN y passes grad).
        const want = inside && y[p * c + ch] <= 0 ? 0 : dyFull[i];
        assert.ok(Object.is(out[i], want), `pixel ${p} channel ${ch}: ${out[i]} != ${want}`);
      }
    }
  });
}

// ---------------------------------------------------------------- pools

interface PoolShape {
  n: number;
  h: number;
  w: number;
  c: number;
  k: number;
  s: number;
  p: number;
  ceil: boolean;
}

/** PyTorch's pooling output size (ceil_mode: the last window must start inside the input or left padding). */
function poolOut(size: number, k: number, s: number, p: number, ceil: boolean): number {
  let out = Math.floor((size + 2 * p - k + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= size + p) out--;
  return out;
}

/** dx[n, h, w, c] of max_pool2d in f64, argmax as PyTorch 1.13's CPU kernel. */
function maxPoolBackwardRef(
  x: Float32Array,
  dy: Float32Array,
  s: PoolShape,
  oh: number,
  ow: number,
) {
  const dx = new Float64Array(s.n * s.h * s.w * s.c);
  for (let img = 0; img < s.n; img++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const y0 = Math.max(oy * s.s - s.p, 0), y1 = Math.min(oy * s.s - s.p + s.k, s.h);
        const x0 = Math.max(ox * s.s - s.p, 0), x1 = Math.min(ox * s.s - s.p + s.k, s.w);
        for (let ch = 0; ch < s.c; ch++) {
          let best = -Infinity, at = y0 * s.w + x0;
          for (let iy = y0; iy < y1; iy++) {
            for (let ix = x0; ix < x1; ix++) {
              const v = x[((img * s.h + iy) * s.w + ix) * s.c + ch];
              if (v > best || Number.isNaN(v)) {
                best = v;
                at = iy * s.w + ix;
              }
            }
          }
          dx[(img * s.h * s.w + at) * s.c + ch] += dy[((img * oh + oy) * ow + ox) * s.c + ch];
        }
      }
    }
  }
  return dx;
}

/** dx of avg_pool2d (count_include_pad = true) in f64. */
function avgPoolBackwardRef(dy: Float32Array, s: PoolShape, oh: number, ow: number) {
  const dx = new Float64Array(s.n * s.h * s.w * s.c);
  for (let img = 0; img < s.n; img++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const ys = oy * s.s - s.p, ye = Math.min(ys + s.k, s.h + s.p);
        const xs = ox * s.s - s.p, xe = Math.min(xs + s.k, s.w + s.p);
        const div = (ye - ys) * (xe - xs);
        for (let iy = Math.max(ys, 0); iy < Math.min(ye, s.h); iy++) {
          for (let ix = Math.max(xs, 0); ix < Math.min(xe, s.w); ix++) {
            for (let ch = 0; ch < s.c; ch++) {
              dx[((img * s.h + iy) * s.w + ix) * s.c + ch] +=
                dy[((img * oh + oy) * ow + ox) * s.c + ch] / div;
            }
          }
        }
      }
    }
  }
  return dx;
}

/** dx of adaptive_avg_pool2d in f64 (PyTorch's bins). */
function adaptiveBackwardRef(dy: Float32Array, s: PoolShape, oh: number, ow: number) {
  const dx = new Float64Array(s.n * s.h * s.w * s.c);
  for (let img = 0; img < s.n; img++) {
    for (let oy = 0; oy < oh; oy++) {
      const y0 = Math.floor((oy * s.h) / oh), y1 = Math.ceil(((oy + 1) * s.h) / oh);
      for (let ox = 0; ox < ow; ox++) {
        const x0 = Math.floor((ox * s.w) / ow), x1 = Math.ceil(((ox + 1) * s.w) / ow);
        const div = (y1 - y0) * (x1 - x0);
        for (let iy = y0; iy < y1; iy++) {
          for (let ix = x0; ix < x1; ix++) {
            for (let ch = 0; ch < s.c; ch++) {
              dx[((img * s.h + iy) * s.w + ix) * s.c + ch] +=
                dy[((img * oh + oy) * ow + ox) * s.c + ch] / div;
            }
          }
        }
      }
    }
  }
  return dx;
}

const MAX_POOL_CASES: Record<string, PoolShape> = {
  "1x1 stride 2 (rows and columns no window reaches stay zero), c 21": {
    n: 2,
    h: 8,
    w: 6,
    c: 21,
    k: 1,
    s: 2,
    p: 0,
    ceil: false,
  },
  "3x3 stride 2 ceil mode on 9x8 (partial windows), c 5": {
    n: 2,
    h: 9,
    w: 8,
    c: 5,
    k: 3,
    s: 2,
    p: 0,
    ceil: true,
  },
  "3x3 stride 1 pad 1, batch 3, c 20 (units of 16 + 4)": {
    n: 3,
    h: 6,
    w: 7,
    c: 20,
    k: 3,
    s: 1,
    p: 1,
    ceil: true,
  },
  "2x2 stride 2 ceil mode on 7x7, c 35": { n: 1, h: 7, w: 7, c: 35, k: 2, s: 2, p: 0, ceil: true },
  "3x3 stride 2 ceil mode on 112x112-like 13x13, c 64": {
    n: 1,
    h: 13,
    w: 13,
    c: 64,
    k: 3,
    s: 2,
    p: 0,
    ceil: true,
  },
};

const AVG_POOL_CASES: Record<string, PoolShape> = {
  "2x2 stride 3 (rows and columns no window reaches stay zero), c 9": {
    n: 1,
    h: 9,
    w: 7,
    c: 9,
    k: 2,
    s: 3,
    p: 0,
    ceil: false,
  },
  "5x5 stride 3 (aux head) on 14x14, c 19": {
    n: 2,
    h: 14,
    w: 14,
    c: 19,
    k: 5,
    s: 3,
    p: 0,
    ceil: false,
  },
  "3x3 stride 1 pad 1 (padding in the divisor), c 6": {
    n: 3,
    h: 5,
    w: 6,
    c: 6,
    k: 3,
    s: 1,
    p: 1,
    ceil: false,
  },
  "3x3 stride 2 pad 1 ceil mode (divisor clipped at h + p), c 17": {
    n: 1,
    h: 8,
    w: 7,
    c: 17,
    k: 3,
    s: 2,
    p: 1,
    ceil: true,
  },
};

const ADAPTIVE_CASES: Record<string, PoolShape & { oh: number; ow: number }> = {
  "7x7 -> 4x4 (overlapping bins), c 18": {
    n: 2,
    h: 7,
    w: 7,
    c: 18,
    k: 0,
    s: 0,
    p: 0,
    ceil: false,
    oh: 4,
    ow: 4,
  },
  "14x14 -> 4x4 (aux head), c 7": {
    n: 1,
    h: 14,
    w: 14,
    c: 7,
    k: 0,
    s: 0,
    p: 0,
    ceil: false,
    oh: 4,
    ow: 4,
  },
  "7x7 -> 1x1 (global), batch 3, c 33": {
    n: 3,
    h: 7,
    w: 7,
    c: 33,
    k: 0,
    s: 0,
    p: 0,
    ceil: false,
    oh: 1,
    ow: 1,
  },
  "5x6 -> 3x4, c 4": { n: 1, h: 5, w: 6, c: 4, k: 0, s: 0, p: 0, ceil: false, oh: 3, ow: 4 },
};

type PoolRun = (dy: number, dx: number, accumulate: number, g0: number, g1: number) => void;

/**
 * Runs a backward pool through its units: overwrite (dx full of NaN before),
 * then accumulate onto a known dx, then in chunks of units; checks the
 * reference (exactly when `rtol` is 0), the accumulation, bit-identical chunks
 * and that channels past c of the strided dx are untouched.
 */
function checkPoolBackward(
  a: Arena,
  s: PoolShape,
  dy: Float32Array,
  expected: Float64Array,
  run: PoolRun,
  rtol: number,
  what: string,
): number {
  const dystride = s.c + 3, dxstride = s.c + 5;
  const pixels = s.n * s.h * s.w;
  const units = s.n * Math.ceil(s.c / 16);
  const dyAt = a.put(strided(dy, s.c, dystride, 0));
  // Overwrite: dx starts as NaN; the padding channels too, and must stay NaN.
  const dx = a.alloc(pixels * dxstride);
  run(dyAt, dx, 0, 0, units);
  const got = a.f32(dx, pixels * dxstride);
  for (let p = 0; p < pixels; p++) {
    for (let ch = s.c; ch < dxstride; ch++) {
      assert.ok(Number.isNaN(got[p * dxstride + ch]), `${what}: channel ${ch} past c was written`);
    }
  }
  const rel = assertClose(unstrided(got.slice(), s.c, dxstride, 0), expected, rtol, what);
  // Accumulate onto dx0 (integers, so exact cases stay exact).
  const dx0 = integers(11, pixels * s.c, 4);
  const acc = a.put(strided(dx0, s.c, dxstride, 0));
  run(dyAt, acc, 1, 0, units);
  assertClose(
    unstrided(a.f32(acc, pixels * dxstride).slice(), s.c, dxstride, 0),
    expected.map((v, i) => v + dx0[i]),
    rtol,
    `${what} accumulate`,
  );
  // Chunks of units, bit-identical to one chunk.
  const chunked = a.alloc(pixels * dxstride);
  const bounds = cuts(units, [0.34, 0.5, 0.8]);
  for (let i = 0; i + 1 < bounds.length; i++) run(dyAt, chunked, 0, bounds[i], bounds[i + 1]);
  sameBits(a.bits(chunked, pixels * dxstride), a.bits(dx, pixels * dxstride), `${what} chunked`);
  return rel;
}

for (const [isa] of BUILDS) {
  for (const [name, s] of Object.entries(MAX_POOL_CASES)) {
    Deno.test(`maxpool2d_backward ${name}, ties and NaN (${isa})`, async () => {
      const a = await arena(isa);
      const oh = poolOut(s.h, s.k, s.s, s.p, s.ceil), ow = poolOut(s.w, s.k, s.s, s.p, s.ceil);
      // Values on 3 levels (many ties), some NaN, some windows all -Infinity.
      const x = integers(21, s.n * s.h * s.w * s.c, 1);
      for (let i = 0; i < x.length; i += 23) x[i] = Number.NaN;
      for (let i = 5; i < x.length; i += 37) x[i] = -Infinity;
      const dy = integers(22, s.n * oh * ow * s.c, 9);
      const expected = maxPoolBackwardRef(x, dy, s, oh, ow);
      const xstride = s.c + 2;
      const xAt = a.put(strided(x, s.c, xstride, 0));
      const rel = checkPoolBackward(
        a,
        s,
        dy,
        expected,
        (dyAt, dx, accumulate, g0, g1) =>
          a.k.maxpool2d_backward(
            xAt,
            xstride,
            s.h,
            s.w,
            s.c,
            s.k,
            s.s,
            s.p,
            oh,
            ow,
            dyAt,
            s.c + 3,
            dx,
            s.c + 5,
            accumulate,
            g0,
            g1,
          ),
        0,
        name,
      );
      assert.equal(rel, 0);
    });
  }

  Deno.test(`maxpool2d_backward with relu: relu_backward's bits after it, any units, accumulated too (${isa})`, async () => {
    const a = await arena(isa);
    for (const [name, s] of Object.entries(MAX_POOL_CASES)) {
      const oh = poolOut(s.h, s.k, s.s, s.p, s.ceil), ow = poolOut(s.w, s.k, s.s, s.p, s.ceil);
      const pixels = s.n * s.h * s.w, units = s.n * Math.ceil(s.c / 16);
      // Values on 5 levels around 0 (ties, zeros, negatives), -0, NaN.
      const x = integers(31, pixels * s.c, 2);
      for (let i = 3; i < x.length; i += 17) x[i] = -0;
      for (let i = 7; i < x.length; i += 29) x[i] = Number.NaN;
      const xstride = s.c + 2, dxstride = s.c + 5;
      const xAt = a.put(strided(x, s.c, xstride, 0));
      const dyAt = a.put(strided(random(32, s.n * oh * ow * s.c), s.c, s.c + 3, 0));
      const dx0 = strided(random(33, pixels * s.c), s.c, dxstride, 0);
      for (const accumulate of [0, 1]) {
        const run = (dx: number, relu: number, g0: number, g1: number) =>
          a.k.maxpool2d_backward(
            xAt,
            xstride,
            s.h,
            s.w,
            s.c,
            s.k,
            s.s,
            s.p,
            oh,
            ow,
            dyAt,
            s.c + 3,
            dx,
            dxstride,
            accumulate,
            g0,
            g1,
            relu,
          );
        // The two passes: the pool's backward, then relu_backward on every pixel.
        const twoPasses = a.put(dx0);
        run(twoPasses, 0, 0, units);
        a.k.relu_backward(twoPasses, dxstride, xAt, xstride, s.c, 0, pixels);
        const what = `${name}${accumulate ? ", accumulated" : ""}`;
        const fused = a.put(dx0);
        run(fused, 1, 0, units);
        sameBits(a.bits(fused, pixels * dxstride), a.bits(twoPasses, pixels * dxstride), what);
        const chunked = a.put(dx0);
        const bounds = cuts(units, [0.34, 0.5, 0.8]);
        for (let i = 0; i + 1 < bounds.length; i++) run(chunked, 1, bounds[i], bounds[i + 1]);
        sameBits(
          a.bits(chunked, pixels * dxstride),
          a.bits(twoPasses, pixels * dxstride),
          `${what} chunked`,
        );
        // The mask did something: some gradient was zeroed where x <= 0.
        const plain = a.put(dx0);
        run(plain, 0, 0, units);
        const p = a.f32(plain, pixels * dxstride), f = a.f32(fused, pixels * dxstride);
        assert.ok(p.some((v, i) => v !== 0 && f[i] === 0), `${what}: nothing masked`);
      }
    }
  });

  Deno.test(`maxpool2d_grad with relu on a module built before the pool took relu: masked after it (${isa})`, async () => {
    const a = await arena(isa);
    const s = MAX_POOL_CASES["3x3 stride 1 pad 1, batch 3, c 20 (units of 16 + 4)"];
    const oh = poolOut(s.h, s.k, s.s, s.p, s.ceil), ow = poolOut(s.w, s.k, s.s, s.p, s.ceil);
    const pixels = s.n * s.h * s.w, units = s.n * Math.ceil(s.c / 16);
    const xstride = s.c + 2, dxstride = s.c + 5;
    const xAt = a.put(strided(integers(41, pixels * s.c, 2), s.c, xstride, 0));
    const dyAt = a.put(strided(random(42, s.n * oh * ow * s.c), s.c, s.c + 3, 0));
    const run = (k: KernelExports) => {
      const dxAt = a.alloc(pixels * dxstride);
      // One operation over buffers at absolute addresses (an arena at 0).
      const view = (buffer: number, stride: number) => ({ buffer, channelOffset: 0, stride });
      const plan = {
        ops: [{
          kind: "maxpool2d_grad" as const,
          name: "pool",
          x: view(0, xstride),
          dy: view(1, s.c + 3),
          dx: view(2, dxstride),
          ...s,
          oh,
          ow,
          accumulate: false,
          relu: true,
        }],
        steps: [[0]],
        buffers: [xAt, dyAt, dxAt].map((at) => ({ size: 0, offset: at / 4 })),
        arenaSize: 0,
        input: 0,
        outputs: [],
        dropoutStreams: 0,
        inputTransform: null,
        weightLayout: null,
      };
      const layout = { weights: 0, scratch: 0, scratchBytes: 0, arena: 0 };
      const [from, to] = [Math.floor(units / 3), units];
      runChunk(k, plan, layout, { op: 0, r0: 0, r1: from, p0: 0, p1: 0 }, 0, []);
      runChunk(k, plan, layout, { op: 0, r0: from, r1: to, p0: 0, p1: 0 }, 0, []);
      return a.bits(dxAt, pixels * dxstride);
    };
    // The old export: 17 parameters, no relu.
    const old: KernelExports = {
      ...a.k,
      maxpool2d_backward: (...args: number[]) =>
        (a.k.maxpool2d_backward as (...args: number[]) => void)(...args.slice(0, 17)),
    };
    sameBits(run(old), run(a.k), "old module, masked by relu_backward");
    // This build's export takes relu itself (the executor then adds no pass).
    assert.equal(a.k.maxpool2d_backward.length, 18);
  });

  Deno.test(`maxpool2d_backward routes a tie to the first maximum, NaN to the last NaN (${isa})`, async () => {
    const a = await arena(isa);
    // One 4-channel 3x3 window (k 3, stride 3): channel 0 all equal, 1 max twice, 2 NaN twice, 3 all -inf.
    const x = new Float32Array(9 * 4);
    for (let p = 0; p < 9; p++) {
      x[p * 4] = 2;
      x[p * 4 + 1] = p === 4 || p === 7 ? 5 : 1;
      x[p * 4 + 2] = p === 2 || p === 6 ? Number.NaN : 9;
      x[p * 4 + 3] = -Infinity;
    }
    const xAt = a.put(x), dyAt = a.put([1, 2, 3, 4]), dx = a.alloc(36);
    a.k.maxpool2d_backward(xAt, 4, 3, 3, 4, 3, 3, 0, 1, 1, dyAt, 4, dx, 4, 0, 0, 1);
    const got = a.f32(dx, 36);
    const at = [0, 1, 2, 3].map((ch) => [...Array(9).keys()].filter((p) => got[p * 4 + ch] !== 0));
    assert.deepEqual(at, [[0], [4], [6], [0]]);
  });

  for (const [name, s] of Object.entries(AVG_POOL_CASES)) {
    Deno.test(`avgpool2d_backward ${name} (${isa})`, async () => {
      const a = await arena(isa);
      const oh = poolOut(s.h, s.k, s.s, s.p, s.ceil), ow = poolOut(s.w, s.k, s.s, s.p, s.ceil);
      const dy = random(31, s.n * oh * ow * s.c);
      const expected = avgPoolBackwardRef(dy, s, oh, ow);
      const rel = checkPoolBackward(
        a,
        s,
        dy,
        expected,
        (dyAt, dx, accumulate, g0, g1) =>
          a.k.avgpool2d_backward(
            dyAt,
            s.c + 3,
            s.h,
            s.w,
            s.c,
            s.k,
            s.s,
            s.p,
            oh,
            ow,
            dx,
            s.c + 5,
            accumulate,
            g0,
            g1,
          ),
        1e-6,
        name,
      );
      console.log(`  max rel error ${rel.toExponential(2)}`);
    });
  }

  for (const [name, s] of Object.entries(ADAPTIVE_CASES)) {
    Deno.test(`adaptive_avgpool2d_backward ${name} (${isa})`, async () => {
      const a = await arena(isa);
      const dy = random(41, s.n * s.oh * s.ow * s.c);
      const expected = adaptiveBackwardRef(dy, s, s.oh, s.ow);
      const rel = checkPoolBackward(
        a,
        s,
        dy,
        expected,
        (dyAt, dx, accumulate, g0, g1) =>
          a.k.adaptive_avgpool2d_backward(
            dyAt,
            s.c + 3,
            s.h,
            s.w,
            s.c,
            s.oh,
            s.ow,
            dx,
            s.c + 5,
            accumulate,
            g0,
            g1,
          ),
        1e-6,
        name,
      );
      console.log(`  max rel error ${rel.toExponential(2)}`);
    });
  }

  Deno.test(`pool backwards are the adjoints of the forward pools (${isa})`, async () => {
    // <pool(x), dy> = <x, pool_backward(dy)> with the kernels on both sides.
    const a = await arena(isa);
    const s: PoolShape = { n: 2, h: 9, w: 8, c: 6, k: 3, s: 2, p: 1, ceil: true };
    const oh = poolOut(s.h, s.k, s.s, s.p, s.ceil), ow = poolOut(s.w, s.k, s.s, s.p, s.ceil);
    const x = random(51, s.n * s.h * s.w * s.c), dy = random(52, s.n * oh * ow * s.c);
    const xAt = a.put(x), dyAt = a.put(dy);
    const y = a.alloc(dy.length), dx = a.alloc(x.length);
    const dot = (p: ArrayLike<number>, q: ArrayLike<number>) => {
      let sum = 0;
      for (let i = 0; i < p.length; i++) sum += p[i] * q[i];
      return sum;
    };
    const units = s.n;
    a.k.avgpool2d(xAt, s.c, s.h, s.w, s.c, s.k, s.s, s.p, oh, ow, y, s.c, 0, 0, s.n * oh);
    a.k.avgpool2d_backward(dyAt, s.c, s.h, s.w, s.c, s.k, s.s, s.p, oh, ow, dx, s.c, 0, 0, units);
    const lhs = dot(a.f32(y, dy.length), dy), rhs = dot(x, a.f32(dx, x.length));
    assert.ok(Math.abs(lhs - rhs) <= 1e-5 * Math.abs(lhs), `avg: ${lhs} vs ${rhs}`);
    a.k.adaptive_avgpool2d(xAt, s.c, s.h, s.w, s.c, 4, 3, y, s.c, 0, s.n * 4);
    a.k.adaptive_avgpool2d_backward(dyAt, s.c, s.h, s.w, s.c, 4, 3, dx, s.c, 0, 0, units);
    const n = s.n * 12 * s.c;
    const lhs2 = dot(a.f32(y, n), dy.subarray(0, n)), rhs2 = dot(x, a.f32(dx, x.length));
    assert.ok(Math.abs(lhs2 - rhs2) <= 1e-5 * Math.abs(lhs2), `adaptive: ${lhs2} vs ${rhs2}`);
  });
}

// ---------------------------------------------------------------- forward without ReLU

const f32 = Math.fround;

for (const [isa] of BUILDS) {
  Deno.test(`gemm_acc adds A x B + bias to C, partial panel untouched past n (${isa})`, async () => {
    const a = await arena(isa);
    const m = 11, n = 13, k = 19, lda = 21, ldc = 16;
    const A = random(61, m * lda), W = random(62, n * k), bias = random(63, n);
    const packed = new Float32Array(packedSize(k, n));
    packGemm(packed, 0, W, bias, k, n, (r) => r);
    const aAt = a.put(A), wAt = a.put(packed);
    const c0 = random(64, m * ldc);
    const plain = a.put(c0), acc = a.put(c0), relu = a.put(c0);
    const panels = Math.ceil(n / 8);
    a.k.gemm_bias(n, k, aAt, lda, wAt, plain, ldc, 0, m, 0, panels);
    a.k.gemm_bias_relu(n, k, aAt, lda, wAt, relu, ldc, 0, m, 0, panels);
    for (const [m0, m1] of [[0, 5], [5, 6], [6, 11]]) {
      a.k.gemm_acc(n, k, aAt, lda, wAt, acc, ldc, m0, m1, 0, panels);
    }
    const expected = new Float64Array(m * n);
    for (let r = 0; r < m; r++) {
      for (let o = 0; o < n; o++) {
        let sum = bias[o];
        for (let q = 0; q < k; q++) sum += A[r * lda + q] * W[o * k + q];
        expected[r * n + o] = sum;
      }
    }
    const p = a.f32(plain, m * ldc), q = a.f32(acc, m * ldc), z = a.f32(relu, m * ldc);
    assertClose(unstrided(p.slice(), n, ldc, 0), expected, 1e-5, "gemm_bias");
    for (let i = 0; i < m * ldc; i++) {
      const col = i % ldc;
      if (col >= n) {
        assert.ok(Object.is(q[i], c0[i]), `gemm_acc wrote column ${col} past n`);
        continue;
      }
      assert.ok(
        Object.is(q[i], f32(c0[i] + p[i])),
        `gemm_acc [${i}]: ${q[i]} != ${c0[i]} + ${p[i]}`,
      );
      assert.ok(Object.is(z[i], Math.max(p[i], 0)), `gemm_bias_relu [${i}]`);
    }
  });

  Deno.test(`conv2d_bias / conv2d_acc: the ReLU kernel's result without ReLU, and added (${isa})`, async () => {
    const a = await arena(isa);
    for (
      const s of [
        WEIGHT_GRAD_CASES["conv1 7x7 stride 2 pad 3, c 3, oc 10"],
        WEIGHT_GRAD_CASES["3x3 pad 1, batch 3, c 12, oc 13"],
      ]
    ) {
      const [oh, ow] = outSize(s);
      const k = s.kh * s.kw * s.c, m = s.n * oh * ow, ystride = s.oc + 3;
      const x = random(71, s.n * s.h * s.w * s.c),
        W = random(72, s.oc * k, 0.3),
        bias = random(73, s.oc);
      const packed = new Float32Array(packedSize(k, s.oc));
      packGemm(packed, 0, W, bias, k, s.oc, (r) => r);
      const xAt = a.put(x), wAt = a.put(packed);
      const scratch = a.alloc(a.k.conv2d_scratch_bytes(k) / 4);
      const y0 = random(74, m * ystride);
      const outs = [a.put(y0), a.put(y0), a.put(y0)];
      const kernels = [a.k.conv2d_bias, a.k.conv2d_bias_relu, a.k.conv2d_acc];
      kernels.forEach((kernel, i) =>
        kernel(
          xAt,
          s.c,
          s.h,
          s.w,
          s.c,
          s.kh,
          s.kw,
          s.sh,
          s.sw,
          s.ph,
          s.pw,
          oh,
          ow,
          wAt,
          s.oc,
          outs[i],
          ystride,
          scratch,
          0,
          m,
          0,
          Math.ceil(s.oc / 8),
        )
      );
      const [plain, relu, acc] = outs.map((at) => a.f32(at, m * ystride));
      assertClose(
        unstrided(plain.slice(), s.oc, ystride, 0),
        convRef(x, W, bias, s),
        1e-5,
        "conv2d_bias",
      );
      for (let i = 0; i < m * ystride; i++) {
        if (i % ystride >= s.oc) {
          assert.ok(Object.is(acc[i], y0[i]) && Object.is(plain[i], y0[i]), "wrote past oc");
          continue;
        }
        assert.ok(Object.is(relu[i], Math.max(plain[i], 0)), `relu [${i}]`);
        assert.ok(Object.is(acc[i], f32(y0[i] + plain[i])), `acc [${i}]`);
      }
    }
  });

  for (
    const [variant, r, h, w, c, oc] of [
      ["f4x3", 3, 9, 7, 8, 12],
      ["f2x3", 3, 7, 7, 12, 8],
      ["f2x5", 5, 7, 7, 4, 16],
    ] as const
  ) {
    Deno.test(`winograd_${variant}_bias / _acc: the ReLU kernel's result without ReLU, and added (${isa})`, async () => {
      const a = await arena(isa);
      const s: ConvShape = {
        n: 2,
        h,
        w,
        c,
        oc,
        kh: r,
        kw: r,
        sh: 1,
        sw: 1,
        ph: (r - 1) / 2,
        pw: (r - 1) / 2,
      };
      const k = r * r * c, m = s.n * h * w, ystride = oc + 4, xstride = c + 4;
      const x = random(81, s.n * h * w * c),
        oihw = random(82, oc * c * r * r, 0.3),
        bias = random(83, oc);
      // The reference reads the weight in packed row order (tap-major); the Winograd pack takes OIHW.
      const wt = new Float32Array(oc * k);
      for (let o = 0; o < oc; o++) {
        for (let ci = 0; ci < c; ci++) {
          for (let t = 0; t < r * r; t++) wt[o * k + t * c + ci] = oihw[(o * c + ci) * r * r + t];
        }
      }
      const u = new Float32Array(
        Math.ceil(oc / 4) * 4 + (variant === "f2x3" ? 16 : 36) * packedSize(c, oc),
      );
      packWinograd(u, 0, oihw, bias, c, oc, variant as WinogradVariant);
      const xAt = a.put(strided(x, c, xstride, 0)), uAt = a.put(u);
      const scratch = a.alloc(a.k.winograd_scratch_bytes(c, oc) / 4);
      const tile = variant === "f4x3" ? 4 : 2;
      const tiles = s.n * Math.ceil(h / tile) * Math.ceil(w / tile);
      const y0 = random(84, m * ystride);
      const outs = [a.put(y0), a.put(y0), a.put(y0)];
      const kernels = [
        a.k[`winograd_${variant}_bias`],
        a.k[`winograd_${variant}_bias_relu`],
        a.k[`winograd_${variant}_acc`],
      ];
      kernels.forEach((kernel, i) => {
        // Two chunks of tiles for the accumulating one.
        const bounds = i === 2 ? [0, 3, tiles] : [0, tiles];
        for (let j = 0; j + 1 < bounds.length; j++) {
          kernel(
            xAt,
            xstride,
            h,
            w,
            c,
            uAt,
            oc,
            outs[i],
            ystride,
            scratch,
            bounds[j],
            bounds[j + 1],
          );
        }
      });
      const [plain, relu, acc] = outs.map((at) => a.f32(at, m * ystride));
      const rel = assertClose(
        unstrided(plain.slice(), oc, ystride, 0),
        convRef(x, wt, bias, s),
        1e-5,
        variant,
      );
      for (let i = 0; i < m * ystride; i++) {
        if (i % ystride >= oc) {
          assert.ok(Object.is(acc[i], y0[i]) && Object.is(plain[i], y0[i]), "wrote past oc");
          continue;
        }
        assert.ok(Object.is(relu[i], Math.max(plain[i], 0)), `relu [${i}]`);
        assert.ok(
          Object.is(acc[i], f32(y0[i] + plain[i])),
          `acc [${i}]: ${acc[i]} vs ${y0[i]} + ${plain[i]}`,
        );
      }
      console.log(`  max rel error ${rel.toExponential(2)}`);
    });
  }
}

Deno.test("describeModule refuses a kernel module without the training kernels", () => {
  // A module importing env.memory and exporting only the forward names it checks first.
  const name = (text: string) => [text.length, ...new TextEncoder().encode(text)];
  const imports = [1, ...name("env"), ...name("memory"), 2, 0, 0];
  const exports = [2, ...name("gemm_bias"), 0, 0, ...name("conv2d_bias_relu"), 0, 0];
  const bytes = new Uint8Array([
    0,
    97,
    115,
    109,
    1,
    0,
    0,
    0,
    1,
    4,
    1,
    0x60,
    0,
    0, // type: () -> ()
    2,
    imports.length,
    ...imports,
    3,
    2,
    1,
    0, // one function of type 0
    7,
    exports.length,
    ...exports,
    10,
    4,
    1,
    2,
    0,
    0x0b, // its empty body
  ]);
  assert.throws(
    () => describeModule(new WebAssembly.Module(bytes)),
    (e) => e instanceof BackendError && /lacks the training kernels/.test(e.message),
  );
  const current = new WebAssembly.Module(Deno.readFileSync(kernelUrl("simd", false)));
  assert.equal(describeModule(current).module, current);
});
