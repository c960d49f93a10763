/**
 * GFLOP/s of the backward kernels on GoogLeNet shapes, one thread, against
 * `fma_peak` (the forward micro-kernel's instruction mix on L1 data). A
 * script, not a test: `deno run --allow-read bench/grad_kernels_speed.ts [--simd]`.
 *
 * `--compare OLD.wasm` instead times training's repack kernels (`pack_gemm`,
 * `pack_winograd` on every GoogLeNet layer's forward and input-gradient
 * forms) and `maxpool2d_backward` (every pool of GoogLeNet at batch 1) in
 * OLD.wasm (e.g. `git show HEAD:src/backend/wasm/kernels/kernels-relaxed.wasm`)
 * against the current binary: same inputs in two memories, alternating
 * rounds, medians of the per-round totals, outputs compared bit for bit.
 *
 * @module
 */

import { instantiateKernels, type KernelExports, kernelUrl } from "../src/backend/wasm/kernels.ts";
import { cpuModel, loadAverage } from "./_record.ts";

const isa = Deno.args.includes("--simd") ? "simd" : "relaxed-simd";
const module = new WebAssembly.Module(await Deno.readFile(kernelUrl(isa, false)));

const compareAt = Deno.args.indexOf("--compare");
if (compareAt >= 0) {
  await compare(new WebAssembly.Module(await Deno.readFile(Deno.args[compareAt + 1])));
  Deno.exit(0);
}

interface Shape {
  name: string;
  n: number;
  h: number;
  w: number;
  c: number;
  oc: number;
  k: number;
  s: number;
  p: number;
}

const SHAPES: Shape[] = [
  { name: "conv1 7x7/2, 3 -> 64, batch 16", n: 16, h: 224, w: 224, c: 3, oc: 64, k: 7, s: 2, p: 3 },
  { name: "conv2 1x1, 64 -> 64, 56x56", n: 1, h: 56, w: 56, c: 64, oc: 64, k: 1, s: 1, p: 0 },
  { name: "conv3 3x3, 64 -> 192, 56x56", n: 1, h: 56, w: 56, c: 64, oc: 192, k: 3, s: 1, p: 1 },
  { name: "3a 3x3, 96 -> 128, 28x28", n: 1, h: 28, w: 28, c: 96, oc: 128, k: 3, s: 1, p: 1 },
  { name: "3a 5x5, 16 -> 32, 28x28", n: 1, h: 28, w: 28, c: 16, oc: 32, k: 5, s: 1, p: 2 },
  { name: "4a 1x1, 480 -> 192, 14x14", n: 1, h: 14, w: 14, c: 480, oc: 192, k: 1, s: 1, p: 0 },
  {
    name: "4a 1x1, 480 -> 192, 14x14, batch 8",
    n: 8,
    h: 14,
    w: 14,
    c: 480,
    oc: 192,
    k: 1,
    s: 1,
    p: 0,
  },
  { name: "4e 3x3, 160 -> 320, 14x14", n: 1, h: 14, w: 14, c: 160, oc: 320, k: 3, s: 1, p: 1 },
  { name: "5b 3x3, 192 -> 384, 7x7, batch 8", n: 8, h: 7, w: 7, c: 192, oc: 384, k: 3, s: 1, p: 1 },
  { name: "fc 1024 -> 1000, batch 16", n: 16, h: 1, w: 1, c: 1024, oc: 1000, k: 1, s: 1, p: 0 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function best(xs: number[]): number {
  return Math.max(...xs);
}

const memory = new WebAssembly.Memory({ initial: 2048 });
const k = instantiateKernels(module, memory);

// The peak probe, run next to each measurement (the dev VM's vCPUs are shared,
// so only rates taken side by side compare).
function peak(flops: number): number {
  const iters = Math.max(100_000, Math.round(flops / 96));
  const t = performance.now();
  k.fma_peak(iters, 1024);
  return (iters * 96) / ((performance.now() - t) * 1e6);
}
k.fma_peak(100_000, 1024);

for (const s of SHAPES) {
  const oh = Math.floor((s.h + 2 * s.p - s.k) / s.s) + 1,
    ow = Math.floor((s.w + 2 * s.p - s.k) / s.s) + 1;
  const kk = s.k * s.k * s.c, m = s.n * oh * ow;
  const floats = [s.n * s.h * s.w * s.c, m * s.oc, s.oc * kk];
  const scratchBytes = k.conv2d_weight_grad_scratch_bytes(s.c, s.k, s.k, ow, s.oc);
  let at = 1024;
  const addr = floats.map((f) => {
    const a = at;
    at += Math.ceil((f * 4) / 64) * 64 + 64;
    return a;
  });
  const scratch = at;
  at += scratchBytes + 64;
  if (at > memory.buffer.byteLength) {
    memory.grow(Math.ceil((at - memory.buffer.byteLength) / 65536));
  }
  const view = new Float32Array(memory.buffer);
  for (let i = 0; i < (at - 1024) / 4; i++) view[256 + i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  const [x, dy, dw] = addr;
  const flops = 2 * m * s.oc * kk;
  const run = () =>
    k.conv2d_weight_grad(
      x,
      s.c,
      s.n,
      s.h,
      s.w,
      s.c,
      s.k,
      s.k,
      s.s,
      s.s,
      s.p,
      s.p,
      oh,
      ow,
      dy,
      s.oc,
      s.oc,
      dw,
      scratch,
      0,
      s.oc,
      0,
      kk,
    );
  run();
  const reps = Math.max(5, Math.min(30, Math.round(2e9 / flops)));
  const rates: number[] = [], ratios: number[] = [], peaks: number[] = [];
  for (let r = 0; r < reps; r++) {
    const before = peak(flops);
    const t = performance.now();
    run();
    const rate = flops / ((performance.now() - t) * 1e6);
    const after = peak(flops);
    rates.push(rate);
    peaks.push(before, after);
    ratios.push(rate / ((before + after) / 2));
  }
  // bias_grad on the same dy (one pass over it).
  const bt: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    k.bias_grad(dy, s.oc, m, dw, 0, s.oc);
    bt.push(performance.now() - t);
  }
  console.log(
    `conv2d_weight_grad ${s.name}: best ${best(rates).toFixed(1)} GFLOP/s = ` +
      `${(100 * best(rates) / best(peaks)).toFixed(0)} % of the best fma_peak (${
        best(peaks).toFixed(1)
      }); ` +
      `median ratio ${(100 * median(ratios)).toFixed(0)} % ` +
      `(${(flops / 1e9).toFixed(3)} GFLOP, ${(flops / best(rates) / 1e6).toFixed(2)} ms); ` +
      `bias_grad ${Math.min(...bt).toFixed(3)} ms`,
  );
}

// The memory-bound backward kernels next to their forwards (ms, best of 20), GoogLeNet shapes at batch 1.
{
  const view = new Float32Array(memory.buffer);
  const time = (f: () => void) => {
    f();
    let t = Infinity;
    for (let r = 0; r < 20; r++) {
      const s = performance.now();
      f();
      t = Math.min(t, performance.now() - s);
    }
    return t;
  };
  const [x, y, dy, dx, scratch] = [1 << 20, 16 << 20, 32 << 20, 48 << 20, 64 << 20];
  for (let i = 0; i < (72 << 20) / 4; i++) view[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  const pools = [
    ["maxpool1 3x3/2 ceil, 112x112x64", 112, 64, 3, 2, 0, 56],
    ["maxpool3 3x3/1 pad 1, 28x28x192 (inception3a pool)", 28, 192, 3, 1, 1, 28],
    ["maxpool4 3x3/2 ceil, 28x28x480", 28, 480, 3, 2, 0, 14],
  ] as const;
  for (const [name, h, c, kk, s, p, oh] of pools) {
    const fwd = time(() => k.maxpool2d(x, c, h, h, c, kk, s, p, oh, oh, y, c, scratch, 0, oh));
    const bwd = time(() =>
      k.maxpool2d_backward(x, c, h, h, c, kk, s, p, oh, oh, dy, c, dx, c, 0, 0, Math.ceil(c / 16))
    );
    console.log(`${name}: maxpool2d ${fwd.toFixed(3)} ms, maxpool2d_backward ${bwd.toFixed(3)} ms`);
  }
  const fwd = time(() => k.avgpool2d(x, 528, 14, 14, 528, 5, 3, 0, 4, 4, y, 528, scratch, 0, 4));
  const bwd = time(() =>
    k.avgpool2d_backward(dy, 528, 14, 14, 528, 5, 3, 0, 4, 4, dx, 528, 0, 0, 33)
  );
  console.log(
    `aux avgpool 5x5/3, 14x14x528: avgpool2d ${fwd.toFixed(3)} ms, backward ${bwd.toFixed(3)} ms`,
  );
  const afwd = time(() => k.adaptive_avgpool2d(x, 1024, 7, 7, 1024, 1, 1, y, 1024, 0, 1));
  const abwd = time(() =>
    k.adaptive_avgpool2d_backward(dy, 1024, 7, 7, 1024, 1, 1, dx, 1024, 0, 0, 64)
  );
  console.log(
    `global avgpool 7x7x1024: forward ${afwd.toFixed(3)} ms, backward ${abwd.toFixed(3)} ms`,
  );
  const relu = time(() => k.relu_backward(dy, 64, y, 64, 64, 0, 112 * 112));
  console.log(
    `relu_backward 112x112x64: ${relu.toFixed(3)} ms (${
      (112 * 112 * 64 * 12 / relu / 1e6).toFixed(1)
    } GB/s)`,
  );
}

/** One kernel call of the comparison, on a kernel instance and its memory's bytes. */
type Call = (k: KernelExports) => void;

/** GoogLeNet's (seed variant) repack calls and max pool backward calls, with their output ranges. */
function compareCases(): { name: string; calls: [Call, number, number][] }[] {
  const SRC = 1 << 20, DST = 16 << 20, SCRATCH = 15 << 20;
  const gemm: [Call, number, number][] = [], wino: [Call, number, number][] = [];
  type G = [number, number, number];
  const packed = (k: number, n: number) => Math.ceil(n / 8) * (k + 1) * 8;
  const addGemm = (k: number, n: number, rows: G, cols: G, base: number, bias: boolean) =>
    gemm.push([
      (m) =>
        m.pack_gemm!(
          SRC,
          base,
          k,
          n,
          ...rows,
          ...cols,
          bias ? SRC + 4 * (n * k) : 0,
          DST,
          0,
          Math.ceil(n / 8),
        ),
      DST,
      4 * packed(k, n),
    ]);
  const addWino = (
    c: number,
    oc: number,
    r: number,
    os: number,
    cs: number,
    ts: number,
    base: number,
  ) =>
    wino.push([
      (m) =>
        m.pack_winograd!(SRC, base, os, cs, ts, 0, c, oc, 6, r, DST, SCRATCH, 0, Math.ceil(oc / 8)),
      DST,
      4 * (Math.ceil(oc / 4) * 4 + 36 * packed(c, oc)),
    ]);
  const conv = (inC: number, outC: number, r: number, transposed = true) => {
    const taps = r * r, k = inC * taps;
    addGemm(k, outC, r === 1 ? [1, 0, 1] : [inC, taps, 1], [1, 0, k], 0, true);
    if (transposed) {
      addGemm(outC * taps, inC, [outC, inC * taps, -1], [1, 0, taps], taps - 1, false);
    }
    if (r === 3 || r === 5) {
      addWino(inC, outC, r, inC * taps, taps, 1, 0);
      addWino(outC, inC, r, taps, inC * taps, -1, taps - 1);
    }
  };
  const linear = (k: number, n: number, rows: G) => {
    addGemm(k, n, rows, [1, 0, k], 0, true);
    addGemm(n, k, [1, 0, k], rows, 0, false);
  };
  conv(3, 64, 7, false);
  conv(64, 64, 1);
  conv(64, 192, 3);
  const blocks = [
    [192, 64, 96, 128, 16, 32, 32],
    [256, 128, 128, 192, 32, 96, 64],
    [480, 192, 96, 208, 16, 48, 64],
    [512, 160, 112, 224, 24, 64, 64],
    [512, 128, 128, 256, 24, 64, 64],
    [512, 112, 144, 288, 32, 64, 64],
    [528, 256, 160, 320, 32, 128, 128],
    [832, 256, 160, 320, 32, 128, 128],
    [832, 384, 192, 384, 48, 128, 128],
  ];
  for (const [inC, c1, c3r, c3, c5r, c5, pp] of blocks) {
    conv(inC, c1 + c3r + c5r, 1);
    conv(c3r, c3, 3);
    conv(c5r, c5, 5);
    conv(inC, pp, 1);
  }
  for (const inC of [512, 528]) {
    conv(inC, 128, 1);
    linear(2048, 1024, [128, 16, 1]);
    linear(1024, 1000, [1, 0, 1]);
  }
  linear(1024, 1000, [1, 0, 1]);

  // Max pools at batch 1: [h, c, k, s, p, oh].
  const pools: [number, number, number, number, number, number][] = [
    [112, 64, 3, 2, 0, 56],
    [56, 192, 3, 2, 0, 28],
    [28, 192, 3, 1, 1, 28],
    [28, 256, 3, 1, 1, 28],
    [28, 480, 3, 2, 0, 14],
    [14, 480, 3, 1, 1, 14],
    [14, 512, 3, 1, 1, 14],
    [14, 512, 3, 1, 1, 14],
    [14, 512, 3, 1, 1, 14],
    [14, 528, 3, 1, 1, 14],
    [14, 832, 3, 2, 0, 7],
    [7, 832, 3, 1, 1, 7],
    [7, 832, 3, 1, 1, 7],
  ];
  const DY = 8 << 20;
  const pool: [Call, number, number][] = pools.map(([h, c, kk, st, p, oh]) => [
    (m) =>
      m.maxpool2d_backward(
        SRC,
        c,
        h,
        h,
        c,
        kk,
        st,
        p,
        oh,
        oh,
        DY,
        c,
        DST,
        c,
        0,
        0,
        Math.ceil(c / 16),
      ),
    DST,
    4 * h * h * c,
  ]);
  return [
    { name: "pack_gemm, every layer's forward and input-gradient panels", calls: gemm },
    {
      name: "pack_winograd F(4,3)/F(2,5) n = 6, every 3x3 and 5x5, forward and transposed",
      calls: wino,
    },
    { name: "maxpool2d_backward, GoogLeNet's 13 max pools, batch 1", calls: pool },
  ];
}

async function compare(old: WebAssembly.Module): Promise<void> {
  const mems = [0, 1].map(() => new WebAssembly.Memory({ initial: 1024 + 512 }));
  const ks = [old, module].map((m, i) => instantiateKernels(m, mems[i]));
  for (const mem of mems) {
    // Sources and dy: a fixed pattern with ties (values repeat every 1000), negatives and -0.
    const v = new Float32Array(mem.buffer, 1 << 20, (15 << 20) / 4);
    for (let i = 0; i < v.length; i++) {
      v[i] = i % 977 === 0 ? -0 : ((i * 2654435761) % 1000) / 1000 - 0.5;
    }
  }
  console.log(
    `host: ${await cpuModel()}, load ${loadAverage().map((x) => x.toFixed(2)).join(" ")}`,
  );
  for (const { name, calls } of compareCases()) {
    // Bit identity first.
    let diffs = 0;
    for (const [call, at, bytes] of calls) {
      ks.forEach((k) => call(k));
      const a = new Uint32Array(mems[0].buffer, at, bytes / 4),
        b = new Uint32Array(mems[1].buffer, at, bytes / 4);
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diffs++;
    }
    const totals: number[][] = [[], []];
    for (let round = 0; round < 9; round++) {
      for (const which of round % 2 ? [1, 0] : [0, 1]) {
        const t = performance.now();
        for (const [call] of calls) call(ks[which]);
        totals[which].push(performance.now() - t);
      }
    }
    const [before, after] = totals.map(median);
    console.log(
      `${name}: old ${before.toFixed(2)} ms, new ${after.toFixed(2)} ms (x${
        (before / after).toFixed(2)
      } ` +
        `faster, medians of 9 alternating rounds, ${calls.length} calls); differing output floats: ${diffs}`,
    );
  }
}
