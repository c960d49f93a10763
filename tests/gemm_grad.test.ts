/**
 * The 1x1 and linear backward kernels of both SIMD builds: `gemm_weight_grad`
 * (weight and bias gradient in one pass) against an f64 reference within
 * 1e-5 x max |reference|, and bit for bit against `conv2d_weight_grad` +
 * `bias_grad` (the kernels it replaces for these layers) on shapes that take
 * each of its paths (pixel blocks with a partial last one, the few-pixel
 * order of linear layers, the transposed order of few output channels, partial
 * column tiles, channel slices of wider tensors, fewer than 8 channels), in
 * one chunk and in chunks at odd bounds; and `gemm_bias_by_rows` /
 * `gemm_acc_by_rows` bit for bit against `gemm_bias` / `gemm_acc`.
 */

import assert from "node:assert/strict";
import { type KernelArena, kernelArena, random, sameBits } from "./_support/kernel_arena.ts";
import { packedSize, packGemm } from "../src/backend/pack.ts";
import { assertClose } from "./_support/assert_close.ts";

const BUILDS = ["relaxed-simd", "simd"] as const;

type Arena = KernelArena;
function arena(isa: "relaxed-simd" | "simd"): Promise<Arena> {
  return kernelArena(isa);
}
interface Case {
  pixels: number;
  c: number;
  oc: number;
  /** Floats per pixel of x (its c channels start at `xoff`) and of dy. */
  xstride: number;
  xoff: number;
  dystride: number;
}

const CASES: Record<string, Case> = {
  // Two blocks (256 + 44 pixels), a partial column tile (21 = 16 + 5), row tiles 6 + 6 + 1.
  "1x1 on channel slices, 300 pixels, c 21 of 29, oc 13 of 17": {
    pixels: 300,
    c: 21,
    oc: 13,
    xstride: 29,
    xoff: 5,
    dystride: 17,
  },
  // A linear layer's few rows: strips first, dW row tile by row tile.
  "linear, 16 rows, 37 -> 11": { pixels: 16, c: 37, oc: 11, xstride: 37, xoff: 0, dystride: 11 },
  "linear, 5 rows, 64 -> 100": { pixels: 5, c: 64, oc: 100, xstride: 64, xoff: 0, dystride: 100 },
  // Few output channels: the transposed order, dY read in place (16 = 8 + 8).
  "few outputs, 301 pixels, c 200 of 208, oc 16": {
    pixels: 301,
    c: 200,
    oc: 16,
    xstride: 208,
    xoff: 8,
    dystride: 16,
  },
  // ... and with a partial column tile of dY (20 = 8 + 8 + 4), copied to a strip.
  "few outputs, 533 pixels, c 131, oc 20 of 24": {
    pixels: 533,
    c: 131,
    oc: 20,
    xstride: 131,
    xoff: 0,
    dystride: 24,
  },
  "fewer than 8 channels, 70 pixels, c 5, oc 14": {
    pixels: 70,
    c: 5,
    oc: 14,
    xstride: 5,
    xoff: 0,
    dystride: 14,
  },
};

/** Splits [0, n) at the given fractions (distinct bounds). */
function cuts(n: number, fractions: number[]): number[] {
  const bounds = [0, ...fractions.map((f) => Math.floor(n * f)), n];
  return [...new Set(bounds)].sort((a, b) => a - b);
}

for (const isa of BUILDS) {
  for (const [name, s] of Object.entries(CASES)) {
    Deno.test(`gemm_weight_grad ${name}: conv2d_weight_grad's and bias_grad's bits (${isa})`, async () => {
      const a = await arena(isa);
      const { pixels, c, oc } = s;
      const x = random(1, pixels * s.xstride, 7); // channels outside the slice: must not be read
      const dy = random(2, pixels * s.dystride, 7);
      const dw0 = random(3, oc * c, 0.5), db0 = random(4, oc, 0.5);
      const xv = (m: number, q: number) => x[m * s.xstride + s.xoff + q];
      const expectedW = new Float64Array(oc * c), expectedB = new Float64Array(oc);
      for (let o = 0; o < oc; o++) {
        let b = db0[o];
        for (let m = 0; m < pixels; m++) b += dy[m * s.dystride + o];
        expectedB[o] = b;
        for (let q = 0; q < c; q++) {
          let sum = dw0[o * c + q];
          for (let m = 0; m < pixels; m++) sum += dy[m * s.dystride + o] * xv(m, q);
          expectedW[o * c + q] = sum;
        }
      }
      const xAt = a.put(x) + s.xoff * 4, dyAt = a.put(dy);
      const scratchBytes = a.k.gemm_weight_grad_scratch_bytes!(c, oc);
      const scratch = a.alloc(scratchBytes / 4 + 16);
      const fresh = () => {
        const at = a.alloc(oc * c + oc);
        a.f32(at, oc * c).set(dw0);
        a.f32(at + oc * c * 4, oc).set(db0);
        return at;
      };
      const run = (dw: number, bias: boolean, o0: number, o1: number, q0: number, q1: number) =>
        a.k.gemm_weight_grad!(
          xAt,
          s.xstride,
          pixels,
          c,
          dyAt,
          s.dystride,
          oc,
          dw,
          bias ? dw + oc * c * 4 : 0,
          scratch,
          o0,
          o1,
          q0,
          q1,
        );
      const whole = fresh();
      run(whole, true, 0, oc, 0, c);
      assert.ok(a.f32(scratch + scratchBytes, 16).every(Number.isNaN), "scratch overrun");
      assertClose(a.f32(whole, oc * c), expectedW, 1e-5, `${name} dW`);
      assertClose(a.f32(whole + oc * c * 4, oc), expectedB, 1e-5, `${name} db`);
      // The kernels it replaces, on the same inputs: the same bits.
      const old = fresh();
      const oldScratch = a.alloc(a.k.conv2d_weight_grad_scratch_bytes(c, 1, 1, 1, oc) / 4);
      a.k.conv2d_weight_grad(
        xAt,
        s.xstride,
        pixels,
        1,
        1,
        c,
        1,
        1,
        1,
        1,
        0,
        0,
        1,
        1,
        dyAt,
        s.dystride,
        oc,
        old,
        oldScratch,
        0,
        oc,
        0,
        c,
      );
      a.k.bias_grad(dyAt, s.dystride, pixels, old + oc * c * 4, 0, oc);
      sameBits(a.bits(whole, oc * c + oc), a.bits(old, oc * c + oc), `${name} against the old`);
      // Chunks at odd bounds (bias with the chunks at column 0): the same bits; db = 0 leaves db.
      const chunked = fresh();
      const os = cuts(oc, [0.3, 0.55]), qs = cuts(c, [0.21, 0.5, 0.77]);
      for (let i = 0; i + 1 < os.length; i++) {
        for (let j = 0; j + 1 < qs.length; j++) {
          run(chunked, qs[j] === 0, os[i], os[i + 1], qs[j], qs[j + 1]);
        }
      }
      sameBits(a.bits(chunked, oc * c + oc), a.bits(whole, oc * c + oc), `${name} chunked`);
      const noBias = fresh();
      run(noBias, false, 0, oc, 0, c);
      sameBits(a.bits(noBias, oc * c), a.bits(whole, oc * c), `${name} without the bias`);
      sameBits(
        a.bits(noBias + oc * c * 4, oc),
        new Uint32Array(db0.buffer.slice(0)),
        `${name}: db = 0 left db as it was`,
      );
    });
  }

  // A chunk of few output channels of a wider layer (rows [0, 12) of 64, 56 input channels, 300
  // pixels: the shape the columns order takes) stays within gemm_weight_grad_scratch_bytes(c, oc),
  // which sizes the columns order's scratch only for layers of at most 32 output channels: it
  // wrote 194 KB past the 80 KB it asks for.
  Deno.test(`gemm_weight_grad: chunks of few rows of a wide layer stay within its scratch (${isa})`, async () => {
    const a = await arena(isa);
    const pixels = 300, c = 56, oc = 64;
    const xAt = a.put(random(71, pixels * c, 3)), dyAt = a.put(random(72, pixels * oc, 3));
    const dw0 = random(73, oc * c + oc, 0.5);
    const scratchBytes = a.k.gemm_weight_grad_scratch_bytes!(c, oc);
    const scratch = a.alloc(scratchBytes / 4 + (1 << 16));
    const whole = a.put(dw0), chunked = a.put(dw0);
    const run = (dw: number, o0: number, o1: number) =>
      a.k.gemm_weight_grad!(
        xAt,
        c,
        pixels,
        c,
        dyAt,
        oc,
        oc,
        dw,
        dw + oc * c * 4,
        scratch,
        o0,
        o1,
        0,
        c,
      );
    run(whole, 0, oc);
    for (let o = 0; o < oc; o += 12) {
      run(chunked, o, Math.min(o + 12, oc));
      assert.ok(
        a.f32(scratch + scratchBytes, 1 << 16).every(Number.isNaN),
        `rows [${o}, ${Math.min(o + 12, oc)}): wrote past the ${scratchBytes} scratch bytes`,
      );
    }
    sameBits(a.bits(chunked, oc * c + oc), a.bits(whole, oc * c + oc), "chunks of 12 rows");
    assert.notDeepEqual(a.bits(whole, oc * c), new Uint32Array(dw0.buffer.slice(0, oc * c * 4)));
  });

  Deno.test(`gemm_bias_by_rows / gemm_acc_by_rows: gemm_bias's and gemm_acc's bits (${isa})`, async () => {
    const a = await arena(isa);
    // 23 rows (tails of 5 after 6-row tiles), 21 columns (a partial last panel), depth 13.
    const m = 23, n = 21, k = 13, lda = 15, ldc = 24;
    const A = random(61, m * lda), W = random(62, n * k), bias = random(63, n);
    const packed = new Float32Array(packedSize(k, n));
    packGemm(packed, 0, W, bias, k, n, (r) => r);
    const aAt = a.put(A), wAt = a.put(packed);
    const c0 = random(64, m * ldc);
    const panels = Math.ceil(n / 8);
    const pairs = [
      [a.k.gemm_bias, a.k.gemm_bias_by_rows!, "bias"],
      [a.k.gemm_acc, a.k.gemm_acc_by_rows!, "acc"],
    ] as const;
    for (const [blocked, byRows, what] of pairs) {
      const expected = a.put(c0), got = a.put(c0);
      blocked(n, k, aAt, lda, wAt, expected, ldc, 0, m, 0, panels);
      // Chunks of rows and panels at odd bounds.
      for (const [m0, m1] of [[0, 7], [7, 8], [8, 23]]) {
        byRows(n, k, aAt, lda, wAt, got, ldc, m0, m1, 0, 1);
        byRows(n, k, aAt, lda, wAt, got, ldc, m0, m1, 1, panels);
      }
      sameBits(a.bits(got, m * ldc), a.bits(expected, m * ldc), `gemm_${what}_by_rows`);
      // Columns past n are neither read nor written.
      const out = a.f32(got, m * ldc);
      for (let i = 0; i < m * ldc; i++) {
        if (i % ldc >= n) assert.ok(Object.is(out[i], c0[i]), `column ${i % ldc} written`);
      }
      // The result is not the initial C (the kernels ran).
      assert.notDeepEqual(a.bits(got, m * ldc), new Uint32Array(c0.buffer.slice(0)));
    }
  });
}
