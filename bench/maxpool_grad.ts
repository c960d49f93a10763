/**
 * `maxpool2d_backward` on GoogLeNet's 13 max pools at training's batch (16,
 * `BENCH_POOL_BATCH`), one thread, two binaries over two memories with the
 * same inputs, in alternating rounds: per pool the median time of each and the
 * median and range of the per-round ratios, and the output floats that differ.
 * As in a training step: maxpool1-4 overwrite and mask (`relu`), the
 * Inception pools over a block's output add and mask, those over a pool's
 * output overwrite. Each call's dx starts as the last call left it. Inputs
 * are ReLU-like (half zeros, values on a 1/64 grid: many ties). Times are the
 * process's CPU time (the host is shared).
 *
 *   deno run --config deno.dev.jsonc --allow-read --allow-env --allow-sys bench/maxpool_grad.ts OLD.wasm [NEW.wasm]
 *
 * (`git show main:src/backend/wasm/kernels/kernels-relaxed.wasm > /tmp/old.wasm`; NEW defaults to
 * the current relaxed-SIMD binary.) `--step`: see `STEP`; `--fusion`: the fused Inception pools
 * against the two passes in one binary. A diagnostic, not a record: it writes nothing.
 *
 * @module
 */

import { instantiateKernels, type KernelExports, kernelUrl } from "../src/backend/wasm/kernels.ts";
import process from "node:process";
import { cpuModel, loadAverage } from "./_record.ts";

const BATCH = Number(Deno.env.get("BENCH_POOL_BATCH") ?? 16);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 7);
const [oldPath, newPath] = Deno.args.filter((a) => !a.startsWith("--"));
if (!oldPath) throw new Error("Usage: bench/maxpool_grad.ts OLD.wasm [NEW.wasm]");
const modules = await Promise.all(
  [oldPath, newPath ?? kernelUrl("relaxed-simd", false)].map(async (p) =>
    new WebAssembly.Module(await Deno.readFile(p))
  ),
);

// [name, h, c, k, s, p, oh, relu, accumulate], as the training plan runs them
const POOLS: [string, number, number, number, number, number, number, number, number][] = [
  ["maxpool1", 112, 64, 3, 2, 0, 56, 1, 0],
  ["maxpool2", 56, 192, 3, 2, 0, 28, 1, 0],
  ["inception3a.branch4.0", 28, 192, 3, 1, 1, 28, 0, 0],
  ["inception3b.branch4.0", 28, 256, 3, 1, 1, 28, 1, 1],
  ["maxpool3", 28, 480, 3, 2, 0, 14, 1, 0],
  ["inception4a.branch4.0", 14, 480, 3, 1, 1, 14, 0, 0],
  ["inception4b.branch4.0", 14, 512, 3, 1, 1, 14, 1, 1],
  ["inception4c.branch4.0", 14, 512, 3, 1, 1, 14, 1, 1],
  ["inception4d.branch4.0", 14, 512, 3, 1, 1, 14, 1, 1],
  ["inception4e.branch4.0", 14, 528, 3, 1, 1, 14, 1, 1],
  ["maxpool4", 14, 832, 3, 2, 0, 7, 1, 0],
  ["inception5a.branch4.0", 7, 832, 3, 1, 1, 7, 0, 0],
  ["inception5b.branch4.0", 7, 832, 3, 1, 1, 7, 1, 1],
];

const MB = 1 << 20;
const X = MB, DY = X + 52 * MB, DX = DY + 16 * MB;
const PAGES = (DX + 52 * MB) >> 16;
const mems = modules.map(() => new WebAssembly.Memory({ initial: PAGES }));
const ks = modules.map((m, i) => instantiateKernels(m, mems[i]));
for (const mem of mems) {
  const x = new Float32Array(mem.buffer, X, (52 * MB) / 4);
  for (let i = 0; i < x.length; i++) {
    const v = (((i * 2654435761) >>> 0) % 1000) / 1000 - 0.5;
    x[i] = Math.max(0, Math.round(v * 64) / 64);
  }
  const dy = new Float32Array(mem.buffer, DY, (16 * MB) / 4);
  for (let i = 0; i < dy.length; i++) dy[i] = (((i * 40503) >>> 0) % 997) / 997 - 0.5;
}

/** The process's CPU time in ms (user + system): waiting for a core on a loaded host does not count. */
const now = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];

/**
 * With `--step`, the old binary runs each pool as the plan did before the Inception pools over a
 * block's output were written last (overwriting, unmasked, then `relu_backward` over the
 * gradient: its four branches' relu_grad), the new one as the plan does now.
 */
const STEP = Deno.args.includes("--step");
const call = (k: KernelExports, pool: (typeof POOLS)[number]) => {
  const [, h, c, kk, s, p, oh, relu, accumulate] = pool;
  const units = BATCH * Math.ceil(c / 16);
  const f = k.maxpool2d_backward as unknown as (...args: number[]) => void;
  if (STEP && k === ks[0] && accumulate) {
    f(X, c, h, h, c, kk, s, p, oh, oh, DY, c, DX, c, 0, 0, units, 0);
    k.relu_backward(DX, c, X, c, c, 0, BATCH * h * h);
    return;
  }
  f(X, c, h, h, c, kk, s, p, oh, oh, DY, c, DX, c, accumulate, 0, units, relu);
};

if (Deno.args.includes("--fusion")) {
  // The Inception pools over a block's output: overwrite, then relu_backward over the whole
  // buffer (the four branches' relu_grad), against adding to dx with the mask fused (one binary).
  const k = ks[1];
  const f = k.maxpool2d_backward as unknown as (...args: number[]) => void;
  console.log(`host: ${await cpuModel()}; batch ${BATCH}, 1 thread, ${ROUNDS} alternating rounds`);
  console.log("| pool | pool + relu_backward ms | pool, accumulate + relu ms | ratio (range) |");
  console.log("|---|---:|---:|---:|");
  const all = [[] as number[], [] as number[]];
  for (const [name, h, c, kk, s, p, oh] of POOLS) {
    if (!/inception(3b|4[b-e]|5b)/.test(name)) continue;
    const units = BATCH * Math.ceil(c / 16);
    const runs = [
      () => {
        f(X, c, h, h, c, kk, s, p, oh, oh, DY, c, DX, c, 0, 0, units, 0);
        k.relu_backward(DX, c, X, c, c, 0, BATCH * h * h);
      },
      () => f(X, c, h, h, c, kk, s, p, oh, oh, DY, c, DX, c, 1, 0, units, 1),
    ];
    const t = [[] as number[], [] as number[]];
    for (let round = 0; round < ROUNDS; round++) {
      for (const which of round % 2 ? [1, 0] : [0, 1]) {
        const start = now();
        runs[which]();
        t[which].push(now() - start);
      }
    }
    const r = t[0].map((a, i) => t[1][i] / a);
    for (const w of [0, 1]) all[w].push(median(t[w]));
    console.log(
      `| ${name} | ${median(t[0]).toFixed(2)} | ${median(t[1]).toFixed(2)} | ${
        median(r).toFixed(3)
      } (${Math.min(...r).toFixed(3)}-${Math.max(...r).toFixed(3)}) |`,
    );
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  console.log(`| sum of medians | ${sum(all[0]).toFixed(2)} | ${sum(all[1]).toFixed(2)} | |`);
  Deno.exit(0);
}
console.log(
  `host: ${await cpuModel()}, load ${
    loadAverage().map((x) => x.toFixed(2)).join(" ")
  }; batch ${BATCH}, 1 thread, ${ROUNDS} alternating rounds`,
);
const times = POOLS.map(() => [[] as number[], [] as number[]]);
const diffs = POOLS.map((pool) => {
  for (const k of ks) call(k, pool);
  const [, h, c] = pool;
  const n = BATCH * h * h * c;
  const a = new Uint32Array(mems[0].buffer, DX, n), b = new Uint32Array(mems[1].buffer, DX, n);
  let d = 0;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) d++;
  return d;
});
for (let round = 0; round < ROUNDS; round++) {
  POOLS.forEach((pool, i) => {
    for (const which of round % 2 ? [1, 0] : [0, 1]) {
      const t = now();
      call(ks[which], pool);
      times[i][which].push(now() - t);
    }
  });
}
console.log("| pool | old ms | new ms | new/old median (range) | differing floats |");
console.log("|---|---:|---:|---:|---:|");
const totals = [[] as number[], [] as number[]];
for (let r = 0; r < ROUNDS; r++) {
  for (const w of [0, 1]) totals[w].push(times.reduce((sum, t) => sum + t[w][r], 0));
}
POOLS.forEach(([name], i) => {
  const [o, n] = times[i];
  const ratios = o.map((t, r) => n[r] / t);
  console.log(
    `| ${name} | ${median(o).toFixed(2)} | ${median(n).toFixed(2)} | ${
      median(ratios).toFixed(3)
    } (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}) | ${diffs[i]} |`,
  );
});
const tr = totals[0].map((t, r) => totals[1][r] / t);
console.log(
  `| all 13 | ${median(totals[0]).toFixed(2)} | ${median(totals[1]).toFixed(2)} | ${
    median(tr).toFixed(3)
  } (${Math.min(...tr).toFixed(3)}-${Math.max(...tr).toFixed(3)}) | ${
    diffs.reduce((a, b) => a + b)
  } |`,
);
console.log(`load at the end ${loadAverage().map((x) => x.toFixed(2)).join(" ")}`);
