/**
 * `maxpool2d_backward` (asm/pool.ts) against a reference that adds in f32 in
 * the kernel's documented order: windows in output order (row-major), each
 * dy added at its window's argmax (PyTorch 1.13's CPU rule: first maximum in
 * window order, the last NaN wins). Non-integer gradients on inputs with many
 * ties route several windows' gradients to one pixel, so the order of the
 * additions shows in the bits; overwrite and accumulate, channel counts that
 * use the 16-channel path, its NaN rescan and the 4- and 1-channel tails, and
 * finite inputs (no rescan) whose maxima tie between 0 and -0.
 */

import assert from "node:assert/strict";
import { instantiateKernels, kernelUrl } from "../src/backend/wasm/kernels.ts";

interface Shape {
  n: number;
  h: number;
  w: number;
  c: number;
  k: number;
  s: number;
  p: number;
  ceil: boolean;
  /** No NaN or infinities: ties among 0, -0 and two other levels (the kernel's NaN-free path). */
  finite?: boolean;
}

const SHAPES: Record<string, Shape> = {
  "3x3/1 pad 1, 9x7, 37 channels, batch 2": {
    n: 2,
    h: 9,
    w: 7,
    c: 37,
    k: 3,
    s: 1,
    p: 1,
    ceil: false,
  },
  "3x3/2 ceil, 11x11, 20 channels": { n: 1, h: 11, w: 11, c: 20, k: 3, s: 2, p: 0, ceil: true },
  "2x2/1, 5x6, 16 channels, batch 3": { n: 3, h: 5, w: 6, c: 16, k: 2, s: 1, p: 0, ceil: false },
  "3x3/1 pad 1, 8x9, 48 channels, finite, -0 and 0": {
    n: 2,
    h: 8,
    w: 9,
    c: 48,
    k: 3,
    s: 1,
    p: 1,
    ceil: false,
    finite: true,
  },
  "3x3/2 ceil, 24x23, 32 channels, batch 3, finite, -0 and 0": {
    n: 3,
    h: 24,
    w: 23,
    c: 32,
    k: 3,
    s: 2,
    p: 0,
    ceil: true,
    finite: true,
  },
};

function poolOut(size: number, k: number, s: number, p: number, ceil: boolean): number {
  let out = Math.floor((size + 2 * p - k + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= size + p) out--;
  return out;
}

/** A deterministic generator in [0, 1). */
function rng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * dx = dx0 + each dy at its argmax, added in f32 in output order (windows
 * row-major), or with the windows taken column by column when `columns`.
 */
function reference(
  x: Float32Array,
  dy: Float32Array,
  dx0: Float32Array,
  s: Shape,
  oh: number,
  ow: number,
  columns = false,
) {
  const dx = dx0.slice();
  for (let img = 0; img < s.n; img++) {
    for (let i = 0; i < oh * ow; i++) {
      {
        const oy = columns ? i % oh : Math.floor(i / ow),
          ox = columns ? Math.floor(i / oh) : i % ow;
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
          const i = (img * s.h * s.w + at) * s.c + ch;
          dx[i] = Math.fround(dx[i] + dy[((img * oh + oy) * ow + ox) * s.c + ch]);
        }
      }
    }
  }
  return dx;
}

for (const isa of ["relaxed-simd", "simd"] as const) {
  for (const [name, s] of Object.entries(SHAPES)) {
    Deno.test(`maxpool2d_backward adds in output order, bit for bit: ${name} (${isa})`, async () => {
      const module = new WebAssembly.Module(await Deno.readFile(kernelUrl(isa, false)));
      const memory = new WebAssembly.Memory({ initial: 64 });
      const k = instantiateKernels(module, memory);
      const oh = poolOut(s.h, s.k, s.s, s.p, s.ceil), ow = poolOut(s.w, s.k, s.s, s.p, s.ceil);
      const random = rng(s.h * 131 + s.c);
      const pixels = s.n * s.h * s.w;
      // Three levels (ties everywhere), a few NaN, -Infinity and +Infinity.
      const x = Float32Array.from({ length: pixels * s.c }, (_, i) => {
        if (s.finite) return [0, -0, 1, -1][Math.floor(random() * 4)];
        if (i % 41 === 7) return Number.NaN;
        if (i % 53 === 3) return -Infinity;
        if (i % 97 === 11) return Infinity;
        return Math.floor(random() * 3);
      });
      const dy = Float32Array.from({ length: s.n * oh * ow * s.c }, () => random() - 0.5);
      const dx0 = Float32Array.from({ length: pixels * s.c }, () => (random() - 0.5) * 1e-3);
      const [xAt, dyAt, dxAt] = [1 << 16, 1 << 20, 2 << 20];
      new Float32Array(memory.buffer, xAt, x.length).set(x);
      new Float32Array(memory.buffer, dyAt, dy.length).set(dy);
      const units = s.n * Math.ceil(s.c / 16);
      const dx = new Float32Array(memory.buffer, dxAt, pixels * s.c);
      for (const accumulate of [0, 1]) {
        dx.set(accumulate ? dx0 : dx0.map(() => Number.NaN));
        k.maxpool2d_backward(
          xAt,
          s.c,
          s.h,
          s.w,
          s.c,
          s.k,
          s.s,
          s.p,
          oh,
          ow,
          dyAt,
          s.c,
          dxAt,
          s.c,
          accumulate,
          0,
          units,
        );
        const expected = reference(
          x,
          dy,
          accumulate ? dx0 : new Float32Array(dx0.length),
          s,
          oh,
          ow,
        );
        const a = new Uint32Array(dx.slice().buffer), b = new Uint32Array(expected.buffer);
        const wrong = a.findIndex((v, i) => v !== b[i]);
        assert.equal(
          wrong,
          -1,
          `accumulate ${accumulate}: float ${wrong}: ${dx[wrong]} vs ${expected[wrong]}`,
        );
        // The order of the additions shows in the bits: windows column by column give other sums.
        const other = new Uint32Array(
          reference(x, dy, accumulate ? dx0 : new Float32Array(dx0.length), s, oh, ow, true).buffer,
        );
        assert.ok(other.some((v, i) => v !== b[i]), "the case does not depend on the order");
      }
    });
  }
}
