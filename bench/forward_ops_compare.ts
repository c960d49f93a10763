/**
 * The forward pass at batch 1 on one thread, operation by operation, in an
 * old kernel binary against the current one, in the same process and memory:
 *
 *   deno run --config deno.dev.jsonc --allow-all bench/forward_ops_compare.ts [OLD.wasm] [ROUNDS] [--ops]
 *
 * OLD.wasm is a relaxed-SIMD non-threads build (e.g. `git show
 * HEAD~1:src/backend/wasm/kernels/kernels-relaxed.wasm > /tmp/old.wasm`). Both
 * binaries run over the one model's memory (its weights and arena), in
 * alternating rounds (which runs first alternates too); the table gives each
 * layer class's median per-round total and the range of the per-round ratios,
 * and every round checks that both binaries give the same arena, bit for bit.
 * Without OLD.wasm it profiles the current binary alone. ROUNDS: 11 by
 * default; `--ops` adds a row per operation with its GFLOP/s (a Winograd
 * convolution's in the transformed domain: its n^2 GEMMs' multiply-adds). Print
 * the host with every figure: the table's first line does.
 *
 * @module
 */

import { GoogLeNet } from "../mod.ts";
import type { WasmBackend } from "../src/backend/wasm/backend.ts";
import { runChunk, schedule, scratchBytes } from "../src/backend/wasm/executor.ts";
import {
  instantiateKernels,
  type KernelExports,
  withFixedMemory,
} from "../src/backend/wasm/kernels.ts";
import type { Plan } from "../src/graph/ops.ts";
import { WINOGRAD_SHAPES } from "../src/backend/pack.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import { cpuModel, loadAverage } from "./_record.ts";

const oldPath = Deno.args[0]?.endsWith(".wasm") ? Deno.args[0] : undefined;
const rounds = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 11);
// --ops: every operation's row too, with its GFLOP/s (a Winograd op's in the transformed domain).
const perOp = Deno.args.includes("--ops");

const model = await GoogLeNet.create({ backend: "wasm", auxLogits: false, threads: 1 });
model.loadStateDict(
  deterministicStateDict([...model.stateDict()].map(([k, t]) => [k, t.shape] as const)),
);
const input = deterministicInput("bench batch 1", [1, 3, 224, 224]);
const backend = model.backend as WasmBackend;
const plan: Plan = model.plan([1, 3, 224, 224]);
// One run places the plan (moving to a memory that holds it) and the input in the arena.
await backend.profile(plan, input);
const memory = backend.memory;
const current = backend.kernels;
const variant = current.gemm_variant(-1);
const kernels: [string, KernelExports][] = [["new", current]];
if (oldPath) {
  const bytes = withFixedMemory(await Deno.readFile(oldPath), memory.buffer.byteLength / 65536);
  const old = instantiateKernels(new WebAssembly.Module(bytes), memory);
  old.gemm_variant(variant);
  kernels.unshift(["old", old]);
}

// The backend's layout, as backend.ts computes it (weights | scratch | arena).
const align = (n: number, to: number) => Math.ceil(n / to) * to;
const weightFloats = backend.weights().length;
const scratch = align(64 + weightFloats * 4, 64);
const perThread = Math.max(...kernels.map(([, k]) => scratchBytes(k, plan)));
const layout = {
  weights: 64,
  scratch,
  scratchBytes: perThread,
  arena: align(scratch + perThread, 64),
};
if (layout.arena + plan.arenaSize * 4 > memory.buffer.byteLength) {
  throw new Error("The plan does not fit the model's memory with the larger scratch");
}
const arenaStart = layout.arena / 4, arenaEnd = arenaStart + plan.arenaSize;
// The arena as the backend's run left it (its input in place), from where that run put it.
const ownArena = align(scratch + scratchBytes(current, plan), 64) / 4;
const inputCopy = new Float32Array(memory.buffer).slice(ownArena, ownArena + plan.arenaSize);

function label(op: Plan["ops"][number]): string {
  if (op.kind !== "conv2d") return op.kind;
  if (op.winograd) return `${op.kh}x${op.kw} Winograd`;
  return op.kh === 1 && op.sh === 1 ? "1x1 GEMM" : `${op.kh}x${op.kw}/${op.sh} im2col GEMM`;
}

const seeds = new Array(plan.dropoutStreams).fill(1);
/** One forward with `k`, op by op: ms per layer class, and the arena after it. */
function runOnce(k: KernelExports): { classes: Map<string, number>; arena: Float32Array } {
  new Float32Array(memory.buffer).set(inputCopy, arenaStart);
  const classes = new Map<string, number>();
  for (const chunk of schedule(k, plan, 1).flat(2)) {
    const start = performance.now();
    runChunk(k, plan, layout, chunk, layout.scratch, seeds);
    const ms = performance.now() - start;
    const name = label(plan.ops[chunk.op]);
    classes.set(name, (classes.get(name) ?? 0) + ms);
    if (perOp) classes.set(`  ${plan.ops[chunk.op].name}`, ms);
  }
  const total = [...classes].filter(([c]) => !c.startsWith(" ")).reduce((a, [, ms]) => a + ms, 0);
  classes.set("total", total);
  return { classes, arena: new Float32Array(memory.buffer).slice(arenaStart, arenaEnd) };
}

const times = new Map<string, Map<string, number[]>>(kernels.map(([n]) => [n, new Map()]));
let differing = 0;
for (let r = 0; r < 3; r++) for (const [, k] of kernels) runOnce(k); // warm up (TurboFan)
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? kernels : [...kernels].reverse();
  const arenas: Float32Array[] = [];
  for (const [name, k] of order) {
    const { classes, arena } = runOnce(k);
    arenas.push(arena);
    for (const [c, ms] of classes) {
      const list = times.get(name)!.get(c) ?? [];
      list.push(ms);
      times.get(name)!.set(c, list);
    }
  }
  if (arenas.length === 2) {
    const a = new Uint32Array(arenas[0].buffer), b = new Uint32Array(arenas[1].buffer);
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
  }
}

/** The GFLOP/s of operation row `c` in the current binary's median time. */
function rate(c: string): string {
  const op = plan.ops.find((o) => `  ${o.name}` === c);
  if (!op || op.kind !== "conv2d") return "";
  let flops = 2 * op.n * op.oh * op.ow * op.weights.n * op.weights.k, domain = "";
  if (op.winograd) {
    const { n, m } = WINOGRAD_SHAPES[op.winograd.variant];
    const tiles = op.n * Math.ceil(op.oh / m) * Math.ceil(op.ow / m);
    flops = 2 * n * n * tiles * op.c * op.weights.n;
    domain = ` (${op.winograd.variant}, ${tiles} tiles, c ${op.c}, oc ${op.weights.n})`;
  }
  return `  ${(flops / median(times.get("new")!.get(c)!) / 1e6).toFixed(1)} GFLOP/s${domain}`;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(
  `host: ${await cpuModel()}, load ${await loadAverage()}, ${rounds} alternating rounds, ` +
    `GEMM variant ${variant}, medians of per-round ms`,
);
const classes = [...times.get("new")!.keys()];
for (const c of classes) {
  const cells = kernels.map(([n]) => `${n} ${median(times.get(n)!.get(c)!).toFixed(2)}`);
  let ratio = "";
  if (kernels.length === 2) {
    const o = times.get("old")!.get(c)!, nw = times.get("new")!.get(c)!;
    const rs = o.map((v, i) => nw[i] / v);
    ratio = `  new/old ${median(rs).toFixed(3)} (${Math.min(...rs).toFixed(3)}-${
      Math.max(...rs).toFixed(3)
    })`;
  }
  console.log(`${c.padEnd(22)} ${cells.join("  ")}${ratio}${rate(c)}`);
}
if (kernels.length === 2) console.log(`differing floats in the arena: ${differing}`);
