/**
 * How far the optimizer step's kernels are from memory bandwidth, same run:
 * the AdamW update plan and the repack plan of one training step (seed
 * variant with aux heads, batch-16 figures per step), captured from a real
 * step and re-run alone, split by operation kind, each against a plain copy
 * (`copyWithin` in an array of 128 MB of its own) that reads and writes as many bytes as
 * the operations do (AdamW: x, g, m, v read, x', m, v written, 28 bytes an
 * element; a packing: its source read, its packed form written). Rounds
 * alternate the parts; medians and ranges over `BENCH_PARTS_ROUNDS`
 * (default 7), on `BENCH_PARTS_THREADS` threads (default 1; the copy runs on
 * one). `BENCH_PARTS_OLD_KERNELS=path/kernels-relaxed.wasm` (e.g. from `git
 * show main:src/backend/wasm/kernels/kernels-relaxed.wasm`) also runs the
 * AdamW plan, the repack's `pack_winograd` operations and its whole plan of
 * a second model built on that binary in the same rounds and prints new / old
 * (both models then get explicit modules: run against the current binary, the
 * AdamW ratio was 1.016, 1.004-1.038), in wall time and in process CPU time
 * (`process.cpuUsage`: with 2 threads that counts the workers too). The old
 * binary must take the rule's constants from memory (`ruleConstants`):
 * binaries built before that took them as arguments and have no optimizer
 * kernels for this code.
 *
 *   deno run --config deno.dev.jsonc -A bench/optimizer_parts.ts
 *
 * @module
 */

import { AdamW, GoogLeNet } from "../mod.ts";
import { WasmBackend } from "../src/backend/wasm/backend.ts";
import { packedSize, winogradSize } from "../src/backend/pack.ts";
import type { Plan, WeightOp } from "../src/graph/ops.ts";
import { weightPlan } from "../src/backend/repack.ts";
import { deterministicInput } from "../tools/deterministic.ts";
import { hostLine, loadAverage, startRun } from "./_record.ts";
import process from "node:process";

const ROUNDS = Number(Deno.env.get("BENCH_PARTS_ROUNDS") ?? 7);
const THREADS = Number(Deno.env.get("BENCH_PARTS_THREADS") ?? 1);

const OLD = Deno.env.get("BENCH_PARTS_OLD_KERNELS");

/** A model after one backward and one AdamW step, with the weight plans that step ran. */
async function stepped(wasmModule?: WebAssembly.Module) {
  const model = await GoogLeNet.create({
    initWeights: true,
    threads: THREADS,
    seed: 3,
    wasmModule,
  });
  model.train();
  await model.backward(deterministicInput("optimizer bench", [2, 3, 224, 224]), [1, 2]);
  const plans: Plan[] = [];
  const runWeights = WasmBackend.prototype.runWeights;
  WasmBackend.prototype.runWeights = function (plan) {
    plans.push(plan);
    return runWeights.call(this, plan);
  };
  await new AdamW(model, { lr: 1e-4 }).step();
  WasmBackend.prototype.runWeights = runWeights;
  return { model, backend: model.backend as unknown as WasmBackend, plans };
}

const info = await startRun();
// With BENCH_PARTS_OLD_KERNELS both models get an explicit module (the current one of the same
// name for this one), so that they differ in the binary alone.
const compile = async (path: string) => new WebAssembly.Module(await Deno.readFile(path));
const current = OLD
  ? await compile(
    new URL(`../src/backend/wasm/kernels/${OLD.split("/").pop()}`, import.meta.url).pathname,
  )
  : undefined;
const { model, backend, plans } = await stepped(current);
// BENCH_PARTS_OLD_KERNELS: a kernels-*.wasm file (e.g. `git show main:src/backend/wasm/kernels/
// kernels-relaxed.wasm`) whose AdamW update runs in the same rounds, on a second model.
const old = OLD ? await stepped(await compile(OLD)) : null;
const optim = plans.find((p) => p.ops[0]?.kind === "optim_step")!;
const weightOps = (p: Plan) => p.ops as readonly WeightOp[];
const repack = plans.find((p) => p.ops.some((op) => op.kind === "pack_gemm"))!;

/** Floats an operation reads and writes. */
function traffic(op: WeightOp): number {
  switch (op.kind) {
    case "optim_step":
      return 7 * op.size;
    case "pack_gemm":
      return op.weights.k * op.weights.n + packedSize(op.weights.k, op.weights.n);
    case "pack_winograd":
      return op.weights.k * op.weights.n + winogradSize(op.c, op.weights.n, op.weights.variant);
    default:
      return 0;
  }
}

// The GEMM panels of a layer that has a Winograd form of the same weights (forward or
// transposed): the executor reads the Winograd form, never those panels.
const winograd = new Set(
  weightOps(repack).flatMap((op) => op.kind === "pack_winograd" ? [op.name] : []),
);
const read = weightOps(repack).filter((op) => !(op.kind === "pack_gemm" && winograd.has(op.name)));
const parts: Record<string, readonly WeightOp[]> = {
  "AdamW update": weightOps(optim),
  ...(old ? { "AdamW, old kernels": weightOps(optim) } : {}),
  "AdamW, gathered gradients": weightOps(optim).filter((op) =>
    op.kind === "optim_step" && op.gather
  ),
  "AdamW, contiguous gradients": weightOps(optim).filter((op) =>
    op.kind === "optim_step" && !op.gather
  ),
  "repack, whole plan": weightOps(repack).filter((op) => op.kind !== "fold_batchnorm"),
  "repack, panels of Winograd layers left out": read.filter((op) => op.kind !== "fold_batchnorm"),
  "repack pack_winograd": weightOps(repack).filter((op) => op.kind === "pack_winograd"),
  "repack pack_gemm": weightOps(repack).filter((op) => op.kind === "pack_gemm"),
  ...(old
    ? {
      "repack pack_winograd, old kernels": weightOps(repack).filter((op) =>
        op.kind === "pack_winograd"
      ),
      "repack, whole plan, old kernels": weightOps(repack).filter((op) =>
        op.kind !== "fold_batchnorm"
      ),
    }
    : {}),
};
// The copies' array, apart from the models' memory (copying in the weight blob overwrote the
// parameters and moments with values that slowed the update down).
const blob = new Float32Array(32 << 20);
const times: Record<string, { op: number[]; cpu: number[]; copy: number[] }> = {};
for (const name of Object.keys(parts)) times[name] = { op: [], cpu: [], copy: [] };
const cpuNow = () => performance.now();
const processCpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
for (let round = 0; round <= ROUNDS; round++) {
  const names = Object.keys(parts);
  if (round % 2) names.reverse();
  for (const name of names) {
    const ops = parts[name];
    const plan = name.startsWith("AdamW")
      ? { ...optim, ops, steps: [ops.map((_, i) => i)] }
      : weightPlan(ops);
    const t0 = cpuNow(), p0 = processCpu();
    if (name === "AdamW, old kernels") {
      await old!.backend.runWeights(old!.plans.find((p) => p.ops[0]?.kind === "optim_step")!);
    } else if (name.endsWith(", old kernels")) {
      await old!.backend.runWeights(plan);
    } else await backend.runWeights(plan);
    const t = cpuNow() - t0, cpu = processCpu() - p0;
    // The same bytes moved by copyWithin: half read, half written, 64 MB at a time.
    const floats = ops.reduce((s, op) => s + traffic(op), 0) / 2;
    const chunk = Math.min(floats, Math.floor(blob.length / 2));
    const c0 = cpuNow();
    for (let done = 0; done < floats; done += chunk) {
      const n = Math.min(chunk, floats - done);
      blob.copyWithin(0, blob.length - n, blob.length);
    }
    const c = cpuNow() - c0;
    if (round > 0) {
      times[name].op.push(t);
      times[name].cpu.push(cpu);
      times[name].copy.push(c);
    }
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
console.log(`threads ${THREADS}, ${ROUNDS} rounds, ms per step (batch 16)`);
for (const [name, ops] of Object.entries(parts)) {
  const { op, copy } = times[name];
  const ratios = op.map((t, i) => t / copy[i]);
  const mb = ops.reduce((s, o) => s + traffic(o), 0) * 4 / 1e6;
  console.log(
    `  ${name} (${ops.length} ops, ${mb.toFixed(0)} MB moved): ${median(op).toFixed(1)} ms, ` +
      `copy of the same bytes ${median(copy).toFixed(1)} ms, ratio ${median(ratios).toFixed(2)} ` +
      `(${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`,
  );
}
const whole = times["repack, whole plan"].op,
  kept = times["repack, panels of Winograd layers left out"].op;
const left = kept.map((t, i) => t / whole[i]);
console.log(
  `  repack without / with the unread panels, same rounds: ${median(left).toFixed(3)} ` +
    `(${Math.min(...left).toFixed(3)}-${Math.max(...left).toFixed(3)})`,
);
if (old) {
  const pairs = [
    ["AdamW update", "AdamW, old kernels"],
    ["repack pack_winograd", "repack pack_winograd, old kernels"],
    ["repack, whole plan", "repack, whole plan, old kernels"],
  ];
  for (const [now, before] of pairs) {
    const range = (key: "op" | "cpu") => {
      const o = times[before][key], n = times[now][key];
      const r = n.map((t, i) => t / o[i]);
      return `${median(r).toFixed(3)} (${Math.min(...r).toFixed(3)}-${Math.max(...r).toFixed(3)})`;
    };
    console.log(
      `  ${now} new / old kernels, same rounds: wall ${range("op")}, process CPU ${range("cpu")}`,
    );
  }
  await old.model.dispose();
}
await model.dispose();
info.loadAverage.end = loadAverage();
console.log(hostLine(info));
