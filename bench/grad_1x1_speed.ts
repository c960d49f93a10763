/**
 * The 1x1 convolutions' and linear layers' backward, kernel by kernel: every
 * such `conv2d_grad_weight` (weight and bias gradient) and `conv2d_grad_input`
 * of a GoogLeNet training step (seed variant with aux heads, batch 16,
 * 224x224), each run alone through the executor's dispatch (`runChunk`) on
 * one thread, with the shapes, strides and channel slices of the real plan.
 *
 *   deno run --config deno.dev.jsonc --allow-all bench/grad_1x1_speed.ts [--old OLD.wasm] [--rounds 7]
 *
 * With `--old` (e.g. `git show main:src/backend/wasm/kernels/kernels-relaxed.wasm > /tmp/old.wasm`)
 * (and `--only weight` or `--only input` for one kind) it runs OLD.wasm and the current binary over the same inputs in two memories, in alternating
 * rounds (the order swapped each round), and prints per operation the median ms of each and the
 * median and range of the per-round ratios new / old, then per kind the totals; the outputs are
 * compared bit for bit (one call from the same state), and the current binary's two-thread chunks,
 * run one after another, against its one-thread result. Times are the process's CPU time (the
 * host is shared: time spent waiting for a core is not the kernel's). A diagnostic, not a record.
 *
 * @module
 */

import process from "node:process";
import { GoogLeNet } from "../mod.ts";
import { instantiateKernels, type KernelExports, kernelUrl } from "../src/backend/wasm/kernels.ts";
import {
  type Chunk,
  type MemoryLayout,
  runChunk,
  schedule,
  scratchBytes,
} from "../src/backend/wasm/executor.ts";
import type { Op, Plan } from "../src/graph/ops.ts";
import { cpuModel, loadAverage } from "./_record.ts";

type GradOp = Op & { kind: "conv2d_grad_weight" | "conv2d_grad_input" };

const arg = (name: string) => {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Deno.args[at + 1] : undefined;
};
const ROUNDS = Number(arg("--rounds") ?? 7);
const BATCH = 16;
const oldPath = arg("--old");
/** `--only weight` or `--only input`: one kind. */
const only = arg("--only");

// The plan's 1x1 and linear backward operations, one per layer and kind.
const model = await GoogLeNet.create({
  backend: "wasm",
  variant: "seed",
  auxLogits: true,
  threads: 1,
});
const plan = model.train().trainingPlan([BATCH, 3, 224, 224]).backward;
const ops = (plan.ops as readonly Op[]).filter((op): op is GradOp =>
  (op.kind === "conv2d_grad_weight" || op.kind === "conv2d_grad_input") &&
  op.kh === 1 && op.kw === 1 && op.sh === 1 && op.sw === 1 && op.ph === 0 && op.pw === 0 &&
  !("winograd" in op && op.winograd) && (!only || op.kind === `conv2d_grad_${only}`)
);
await model.dispose();

/** A plan of one operation over its own buffers: [x or dy, dy or dx] at the arena's start. */
function single(op: GradOp): { plan: Plan; weightFloats: number; arenaFloats: number } {
  const pixels = op.n * op.h * op.w, outPixels = op.n * op.oh * op.ow;
  const [a, b] = op.kind === "conv2d_grad_weight"
    ? [{ v: op.x, px: pixels }, { v: op.dy, px: outPixels }]
    : [{ v: op.dy, px: pixels }, { v: op.dx, px: outPixels }];
  const sizeA = a.px * a.v.stride, sizeB = b.px * b.v.stride;
  const buffers = [{ size: sizeA, offset: 0 }, { size: sizeB, offset: sizeA }];
  const viewA = { ...a.v, buffer: 0 }, viewB = { ...b.v, buffer: 1 };
  const moved: Op = op.kind === "conv2d_grad_weight"
    ? { ...op, x: viewA, dy: viewB, grad: { ...op.grad, offset: 0 } }
    : { ...op, dy: viewA, dx: viewB, weights: { ...op.weights, offset: 0 } };
  const weightFloats = op.kind === "conv2d_grad_weight"
    ? op.grad.n * (op.grad.k + 1)
    : Math.ceil(op.oc / 8) * (op.weights.k + 1) * 8;
  return {
    plan: { ...plan, ops: [moved], steps: [[0]], buffers, arenaSize: sizeA + sizeB },
    weightFloats,
    arenaFloats: sizeA + sizeB,
  };
}

const singles = ops.map(single);
const maxWeights = Math.max(...singles.map((s) => s.weightFloats));
const maxArena = Math.max(...singles.map((s) => s.arenaFloats));

interface Binary {
  name: string;
  k: KernelExports;
  memory: WebAssembly.Memory;
  layout: MemoryLayout;
}

function load(name: string, bytes: Uint8Array): Binary {
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  // Scratch for one thread, the largest any of the plans needs.
  const probe = instantiateKernels(module, new WebAssembly.Memory({ initial: 1 }));
  const scratch = Math.max(...singles.map((s) => scratchBytes(probe, s.plan)));
  const weights = 65536;
  const scratchAt = weights + Math.ceil((maxWeights * 4) / 64) * 64;
  const arena = scratchAt + Math.ceil(scratch / 64) * 64 + 4096;
  const bytesAll = arena + maxArena * 4 + 65536;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytesAll / 65536) });
  const k = instantiateKernels(module, memory, 1);
  return { name, k, memory, layout: { weights, scratch: scratchAt, scratchBytes: scratch, arena } };
}

const current = load("new", await Deno.readFile(kernelUrl("relaxed-simd", false)));
const binaries = oldPath ? [load("old", await Deno.readFile(oldPath)), current] : [current];

/** Deterministic values in [-1, 1) for the weights and arena regions an operation uses. */
function fill(b: Binary, s: ReturnType<typeof single>): void {
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  };
  const w = new Float32Array(b.memory.buffer, b.layout.weights, s.weightFloats);
  for (let i = 0; i < w.length; i++) w[i] = next();
  const a = new Float32Array(b.memory.buffer, b.layout.arena, s.arenaFloats);
  for (let i = 0; i < a.length; i++) a[i] = next();
}

/** The floats an operation writes (dW and db, or dx's buffer). */
function outputs(b: Binary, s: ReturnType<typeof single>): Uint32Array {
  const op = s.plan.ops[0] as GradOp;
  if (op.kind === "conv2d_grad_weight") {
    return new Uint32Array(b.memory.buffer, b.layout.weights, s.weightFloats).slice();
  }
  const dx = s.plan.buffers[1];
  return new Uint32Array(b.memory.buffer, b.layout.arena + dx.offset * 4, dx.size).slice();
}

function runAll(b: Binary, p: Plan, chunks: readonly Chunk[]): void {
  for (const chunk of chunks) runChunk(b.k, p, b.layout, chunk, b.layout.scratch, []);
}

function differing(x: Uint32Array, y: Uint32Array): number {
  let d = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) d++;
  return d;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Bits: one call from the same state in every binary, and the current binary's two-thread chunks.
let mismatches = 0;
for (const s of singles) {
  const op = s.plan.ops[0] as GradOp;
  const results = binaries.map((b) => {
    fill(b, s);
    runAll(b, s.plan, schedule(b.k, s.plan, 1)[0][0]);
    return outputs(b, s);
  });
  fill(current, s);
  runAll(current, s.plan, schedule(current.k, s.plan, 2)[0].flat());
  const two = outputs(current, s);
  const d = differing(results[results.length - 1], two) +
    (results.length > 1 ? differing(results[0], results[1]) : 0);
  if (d > 0) {
    mismatches++;
    console.log(`${op.name} ${op.kind}: ${d} floats differ`);
  }
}
console.log(
  `${await cpuModel()}; load ${loadAverage().join(" ")}; bits: ${
    mismatches === 0
      ? `all ${singles.length} operations identical${
        oldPath ? " (old, new," : " ("
      } 1 and 2 threads)`
      : `${mismatches} operations differ`
  }`,
);

/** Process CPU time in ms: the host is shared, and time spent waiting for a core is not the kernel's. */
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

// Timing: each operation repeated to at least ~8 ms of CPU time per sample.
const times = singles.map(() => binaries.map(() => [] as number[]));
const reps = singles.map((s) => {
  const b = current;
  fill(b, s);
  const chunks = schedule(b.k, s.plan, 1)[0][0];
  runAll(b, s.plan, chunks);
  const t = cpu();
  runAll(b, s.plan, chunks);
  return Math.max(1, Math.ceil(8 / Math.max(cpu() - t, 0.01)));
});
for (let round = 0; round < ROUNDS; round++) {
  singles.forEach((s, i) => {
    const order = binaries.map((_, j) => j);
    if (round % 2) order.reverse();
    for (const j of order) {
      const b = binaries[j];
      fill(b, s);
      const chunks = schedule(b.k, s.plan, 1)[0][0];
      runAll(b, s.plan, chunks); // warm
      const t = cpu();
      for (let r = 0; r < reps[i]; r++) runAll(b, s.plan, chunks);
      times[i][j].push((cpu() - t) / reps[i]);
    }
  });
}

const macs = (op: GradOp) => op.n * op.h * op.w * op.c * op.oc;
const last = binaries.length - 1;
console.log(
  `| operation | shape | ${binaries.map((b) => `${b.name} ms (GFLOP/s)`).join(" | ")} |${
    oldPath ? " new/old median (range) |" : ""
  }`,
);
const totals = new Map<string, number[][]>();
singles.forEach((s, i) => {
  const op = s.plan.ops[0] as GradOp;
  const cells = binaries.map((_, j) => {
    const ms = median(times[i][j]);
    return `${ms.toFixed(2)} (${(2 * macs(op) / ms / 1e6).toFixed(0)})`;
  });
  let ratio = "";
  if (oldPath) {
    const r = times[i][0].map((t, k) => times[i][1][k] / t);
    ratio = ` ${median(r).toFixed(3)} (${Math.min(...r).toFixed(3)}-${
      Math.max(...r).toFixed(3)
    }) |`;
  }
  const kind = `${op.kind}${op.h === 1 && op.w === 1 ? " linear" : " 1x1"}`;
  const t = totals.get(kind) ?? binaries.map(() => Array(ROUNDS).fill(0));
  binaries.forEach((_, j) => times[i][j].forEach((ms, k) => t[j][k] += ms));
  totals.set(kind, t);
  const shape = op.kind === "conv2d_grad_weight"
    ? `${op.h}x${op.w} c${op.c} oc${op.oc}`
    : `${op.h}x${op.w} oc${op.c} -> c${op.oc}`;
  console.log(`| ${op.name} ${op.kind.slice(12)} | ${shape} | ${cells.join(" | ")} |${ratio}`);
});
for (const [kind, t] of totals) {
  const cells = t.map((xs) => median(xs).toFixed(1)).join(" / ");
  const r = oldPath ? t[0].map((x, k) => t[last][k] / x) : [];
  console.log(
    `total ${kind}: ${cells} ms${
      oldPath
        ? `, ratio ${median(r).toFixed(3)} (${Math.min(...r).toFixed(3)}-${
          Math.max(...r).toFixed(3)
        })`
        : ""
    }`,
  );
}
