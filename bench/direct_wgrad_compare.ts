/**
 * The weight gradients of GoogLeNet's k > 1 convolutions that do not go by
 * Winograd F(4x4, 3x3): conv1's 7x7 stride 2 and the 5x5 layers (by F(2x2,
 * 5x5) on maps of 12x12 and up, as the executor chooses, where the module
 * has it), batch 16, one thread: an old binary against the
 * current one on the same inputs in two memories, alternating rounds, the
 * median and range of the per-round ratios (new / old time) and each
 * layer's GFLOP/s, outputs compared bit for bit (or, where they differ, the
 * largest difference against the old output's largest element). Times are the process's
 * CPU time (the host's vCPUs are shared). A script, not a test:
 *
 *   git show main:src/backend/wasm/kernels/kernels-relaxed.wasm > /tmp/old.wasm
 *   deno run --config deno.dev.jsonc --allow-all bench/direct_wgrad_compare.ts /tmp/old.wasm [ROUNDS [NEW.wasm]] [--simd]
 *
 * `LAYERS=conv1,5b` runs only the layers whose names contain one of those.
 *
 * @module
 */

import { instantiateKernels, type KernelExports, kernelUrl } from "../src/backend/wasm/kernels.ts";
import process from "node:process";
import { cpuModel, loadAverage } from "./_record.ts";

const args = Deno.args.filter((a) => !a.startsWith("--"));
if (args.length < 1) {
  console.error("Usage: direct_wgrad_compare.ts OLD.wasm [ROUNDS [NEW.wasm]] [--simd]");
  Deno.exit(2);
}
const rounds = Number(args[1] ?? 7);
const isa = Deno.args.includes("--simd") ? "simd" : "relaxed-simd";
const modules = [
  new WebAssembly.Module(await Deno.readFile(args[0])),
  new WebAssembly.Module(await Deno.readFile(args[2] ?? kernelUrl(isa, false))),
];

interface Shape {
  name: string;
  h: number;
  c: number;
  oc: number;
  k: number;
  s: number;
}

const N = 16;
const SHAPES: Shape[] = [
  { name: "conv1", h: 224, c: 3, oc: 64, k: 7, s: 2 },
  { name: "3a.branch3.1", h: 28, c: 16, oc: 32, k: 5, s: 1 },
  { name: "3b.branch3.1", h: 28, c: 32, oc: 96, k: 5, s: 1 },
  { name: "4a.branch3.1", h: 14, c: 16, oc: 48, k: 5, s: 1 },
  { name: "4b.branch3.1", h: 14, c: 24, oc: 64, k: 5, s: 1 },
  { name: "4c.branch3.1", h: 14, c: 24, oc: 64, k: 5, s: 1 },
  { name: "4d.branch3.1", h: 14, c: 32, oc: 64, k: 5, s: 1 },
  { name: "4e.branch3.1", h: 14, c: 32, oc: 128, k: 5, s: 1 },
  { name: "5a.branch3.1", h: 7, c: 32, oc: 128, k: 5, s: 1 },
  { name: "5b.branch3.1", h: 7, c: 48, oc: 128, k: 5, s: 1 },
];

const filter = Deno.env.get("LAYERS");
const shapes = filter
  ? SHAPES.filter((s) => filter.split(",").some((f) => s.name.includes(f)))
  : SHAPES;

/** The process's CPU time (user + system), ms: on a shared host less noisy than wall time. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** One binary's instance over its own memory holding one shape's operands. */
function setup(module: WebAssembly.Module, s: Shape) {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k: KernelExports = instantiateKernels(module, memory);
  const p = Math.floor(s.k / 2), o = Math.floor((s.h + 2 * p - s.k) / s.s) + 1;
  const kk = s.k * s.k * s.c, m = N * o * o;
  const floats = [N * s.h * s.h * s.c, m * s.oc, s.oc * kk];
  let at = 1024;
  const [x, dy, dw] = floats.map((f) => {
    const a = at;
    at += Math.ceil(f * 4 / 64) * 64 + 64;
    return a;
  });
  // As the executor: 5x5 on maps of 12x12 and up by F(2x2, 5x5) where the module has it
  // (DIRECT=1: never; WINOGRAD=1: on 7x7 maps too).
  const winograd = s.k === 5 && !Deno.env.get("DIRECT") && (s.h >= 12 || Deno.env.get("WINOGRAD"));
  const wino = winograd ? k.winograd_f2x5_weight_grad : undefined;
  const scratch = at;
  at +=
    (wino
      ? k.winograd_f2x5_weight_grad_scratch_bytes!()
      : k.conv2d_weight_grad_scratch_bytes(s.c, s.k, s.k, o, s.oc)) + 64;
  memory.grow(Math.ceil(at / 65536));
  const view = new Float32Array(memory.buffer);
  for (let i = x / 4; i < dw / 4; i++) view[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  const run = () => {
    view.fill(0, dw / 4, dw / 4 + s.oc * kk);
    if (wino) {
      wino(x, s.c, N, s.h, s.h, s.c, dy, s.oc, s.oc, dw, scratch, 0, s.oc, 0, s.c);
      return;
    }
    k.conv2d_weight_grad(
      x,
      s.c,
      N,
      s.h,
      s.h,
      s.c,
      s.k,
      s.k,
      s.s,
      s.s,
      p,
      p,
      o,
      o,
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
  };
  const bits = () => new Uint32Array(memory.buffer, dw, s.oc * kk).slice();
  const values = () => new Float32Array(memory.buffer, dw, s.oc * kk).slice();
  return { run, bits, values, flops: 2 * m * s.oc * kk };
}

console.log(
  `${await cpuModel()}; load ${loadAverage()}; ${isa}, batch ${N}, one thread, ${rounds} rounds; old ${
    args[0]
  }`,
);
console.log(
  "| layer | old ms | new ms | new/old median (range) | old GFLOP/s | new GFLOP/s | bits |",
);
console.log("|---|---:|---:|---:|---:|---:|---|");
let oldTotal = 0, newTotal = 0;
for (const s of shapes) {
  const [a, b] = modules.map((m) => setup(m, s));
  a.run();
  b.run();
  const [ba, bb] = [a.bits(), b.bits()];
  const [va, vb] = [a.values(), b.values()];
  let diff = 0, scale = 0;
  for (let i = 0; i < va.length; i++) {
    diff = Math.max(diff, Math.abs(va[i] - vb[i]));
    scale = Math.max(scale, Math.abs(va[i]));
  }
  const same = ba.every((v, i) => v === bb[i])
    ? "same"
    : `max diff ${(diff / scale).toExponential(1)} of max`;
  const ta: number[] = [], tb: number[] = [], ratio: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [a, b] : [b, a];
    const t: number[] = [];
    for (const side of order) {
      const t0 = cpuMs();
      side.run();
      t.push(cpuMs() - t0);
    }
    const [oldMs, newMs] = r % 2 === 0 ? t : [t[1], t[0]];
    ta.push(oldMs);
    tb.push(newMs);
    ratio.push(newMs / oldMs);
  }
  const [ma, mb] = [median(ta), median(tb)];
  oldTotal += ma;
  newTotal += mb;
  console.log(
    `| ${s.name} ${s.h}x${s.h} c${s.c} ${s.k}x${s.k}/${s.s} oc${s.oc} | ${ma.toFixed(2)} | ${
      mb.toFixed(2)
    } | ${median(ratio).toFixed(3)} (${Math.min(...ratio).toFixed(3)}-${
      Math.max(...ratio).toFixed(3)
    }) | ${(a.flops / ma / 1e6).toFixed(1)} | ${(b.flops / mb / 1e6).toFixed(1)} | ${same} |`,
  );
}
console.log(`Total of medians: old ${oldTotal.toFixed(1)} ms, new ${newTotal.toFixed(1)} ms`);
