/**
 * `winograd_f4x3_weight_grad` on every GoogLeNet layer that trains by it
 * (3x3 "same" convolutions on maps of 14x14 and up), batch 16, one thread,
 * against another build of the kernels: the same inputs in two memories,
 * alternating rounds, per-layer median ratio and range, and the outputs
 * compared bit for bit. Times are the process's CPU time (`process.cpuUsage`),
 * which time spent waiting for a core does not inflate (the host is shared). `--direct` also times `conv2d_weight_grad` (the direct
 * kernel) on the same shapes, the 7x7 layers of inception5 included, in the
 * same rounds. A diagnostic for kernel work, not a record: it writes nothing.
 *
 *   deno run --config deno.dev.jsonc --allow-read bench/winograd_weight_grad.ts \
 *     --old OLD.wasm [--new NEW.wasm] [--rounds 7] [--direct] [--simd] [--only conv3,4e]
 *
 * OLD.wasm: e.g. `git show main:src/backend/wasm/kernels/kernels-relaxed.wasm`.
 *
 * @module
 */

import process from "node:process";
import { instantiateKernels, type KernelExports, kernelUrl } from "../src/backend/wasm/kernels.ts";
import { cpuModel, loadAverage } from "./_record.ts";

const args = Deno.args;
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const isa = args.includes("--simd") ? "simd" : "relaxed-simd";
const rounds = Number(option("--rounds") ?? 7);
const withDirect = args.includes("--direct");
const only = option("--only")?.split(",");
const oldPath = option("--old");
const newPath = option("--new");

interface Layer {
  name: string;
  side: number;
  c: number;
  oc: number;
}

/** GoogLeNet's 3x3 convolutions (seed variant), batch 16. */
const LAYERS: Layer[] = [
  { name: "conv3", side: 56, c: 64, oc: 192 },
  { name: "3a", side: 28, c: 96, oc: 128 },
  { name: "3b", side: 28, c: 128, oc: 192 },
  { name: "4a", side: 14, c: 96, oc: 208 },
  { name: "4b", side: 14, c: 112, oc: 224 },
  { name: "4c", side: 14, c: 128, oc: 256 },
  { name: "4d", side: 14, c: 144, oc: 288 },
  { name: "4e", side: 14, c: 160, oc: 320 },
  { name: "5a", side: 7, c: 160, oc: 320 },
  { name: "5b", side: 7, c: 192, oc: 384 },
].filter((l) => !only || only.includes(l.name));
const N = 16;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const modules: [string, WebAssembly.Module][] = [
  ["new", new WebAssembly.Module(await Deno.readFile(newPath ?? kernelUrl(isa, false)))],
];
if (oldPath) modules.unshift(["old", new WebAssembly.Module(await Deno.readFile(oldPath))]);

// Layout per memory: x, dy, dw, scratch, at fixed places sized for the largest layer.
const floats = (l: Layer) => ({
  x: N * l.side * l.side * l.c,
  dy: N * l.side * l.side * l.oc,
  dw: l.oc * 9 * l.c + l.oc,
});
const room = (f: number) => Math.ceil(f * 4 / 4096) * 4096 + 4096;
const maxOf = (key: "x" | "dy" | "dw") => Math.max(...LAYERS.map((l) => floats(l)[key]));
const X = 65536,
  DY = X + room(maxOf("x")),
  DW = DY + room(maxOf("dy")),
  SCRATCH = DW + room(maxOf("dw"));

interface Instance {
  name: string;
  k: KernelExports;
  memory: WebAssembly.Memory;
}
const instances: Instance[] = modules.map(([name, module]) => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k = instantiateKernels(module, memory);
  let scratch = k.winograd_weight_grad_scratch_bytes!();
  for (const l of LAYERS) {
    scratch = Math.max(scratch, k.conv2d_weight_grad_scratch_bytes(l.c, 3, 3, l.side, l.oc));
  }
  const bytes = SCRATCH + scratch + 65536;
  memory.grow(Math.ceil(bytes / 65536) - 1);
  return { name, k, memory };
});

console.log(
  `host: ${await cpuModel()}, load ${loadAverage().join(" ")}; ${isa}, batch ${N}, one thread, ` +
    `${rounds} alternating rounds; process CPU ms per call (medians), ratio to ${
      instances[0].name
    }'s ` +
    `in the same round (median, range)`,
);

const winograd = (inst: Instance, l: Layer) =>
  inst.k.winograd_f4x3_weight_grad!(
    X,
    l.c,
    N,
    l.side,
    l.side,
    l.c,
    DY,
    l.oc,
    l.oc,
    DW,
    SCRATCH,
    0,
    l.oc,
    0,
    l.c,
  );
const direct = (inst: Instance, l: Layer) =>
  inst.k.conv2d_weight_grad(
    X,
    l.c,
    N,
    l.side,
    l.side,
    l.c,
    3,
    3,
    1,
    1,
    1,
    1,
    l.side,
    l.side,
    DY,
    l.oc,
    l.oc,
    DW,
    SCRATCH,
    0,
    l.oc,
    0,
    9 * l.c,
  );

const totals = new Map<string, number>();
for (const l of LAYERS) {
  const f = floats(l);
  for (const inst of instances) {
    const v = new Float32Array(inst.memory.buffer);
    for (let i = 0; i < f.x; i++) v[X / 4 + i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    for (let i = 0; i < f.dy; i++) v[DY / 4 + i] = ((i * 40503 + 7) % 997) / 997 - 0.5;
  }
  const runs: [string, (inst: Instance) => void][] = [];
  if (l.side >= 7) runs.push(["winograd", (inst) => winograd(inst, l)]);
  if (withDirect) runs.push(["direct", (inst) => direct(inst, l)]);
  // Bits: each build's Winograd result from zeros.
  let diffs = 0;
  if (instances.length > 1) {
    const outs = instances.map((inst) => {
      new Float32Array(inst.memory.buffer, DW, f.dw).fill(0);
      winograd(inst, l);
      return new Uint32Array(inst.memory.buffer.slice(DW, DW + f.dw * 4));
    });
    for (let i = 0; i < f.dw; i++) if (outs[0][i] !== outs[1][i]) diffs++;
  }
  const times = new Map<string, number[]>();
  for (let round = 0; round < rounds + 1; round++) {
    const order = round % 2 ? [...instances].reverse() : instances;
    for (const inst of order) {
      for (const [kind, run] of runs) {
        if (kind === "direct" && inst !== instances[instances.length - 1]) continue;
        const t = process.cpuUsage();
        run(inst);
        const used = process.cpuUsage(t);
        const ms = (used.user + used.system) / 1000;
        if (round > 0) {
          times.set(`${inst.name} ${kind}`, [...(times.get(`${inst.name} ${kind}`) ?? []), ms]);
        }
      }
    }
  }
  const base = times.get(`${instances[0].name} ${runs[0][0]}`) ?? [...times.values()][0];
  const parts = [...times].map(([key, ms]) => {
    totals.set(key, (totals.get(key) ?? 0) + median(ms));
    const ratios = ms.map((t, i) => t / base[i]);
    return `${key} ${median(ms).toFixed(1)} (x${median(ratios).toFixed(3)}, ${
      Math.min(...ratios).toFixed(3)
    }-${Math.max(...ratios).toFixed(3)})`;
  });
  const macs = N * l.side * l.side * 9 * l.c * l.oc;
  console.log(
    `${l.name} ${l.side}x${l.side} c${l.c} oc${l.oc} (${(2 * macs / 1e9).toFixed(2)} GFLOP): ${
      parts.join("; ")
    }${instances.length > 1 ? `; differing floats ${diffs}` : ""}`,
  );
}
console.log(
  `totals of the medians, ms: ${
    [...totals].map(([k, ms]) => `${k} ${ms.toFixed(1)}`).join(", ")
  }; load ${loadAverage().join(" ")}`,
);
