/**
 * One F(2x2, 3x3) Winograd convolution of GoogLeNet at batch 1, one thread,
 * with its weights hot (the same copy every call, in cache) and cold (24
 * copies cycled, so each call reads its weights from L3 or memory, as every
 * forward does at batch 1):
 *
 *   deno run --allow-all bench/winograd_weights_cold.ts [C,OC,H]
 *
 * C,OC,H: input and output channels and the map's side (default 192,384,7:
 * inception5b's 3x3; 160,320,14 is inception4e's). Prints the host, the
 * median times and GFLOP/s in the transformed domain (16 GEMMs).
 *
 * @module
 */

import { instantiateKernels, kernelUrl, withFixedMemory } from "../src/backend/wasm/kernels.ts";
import { cpuModel, loadAverage } from "./_record.ts";

const [c, oc, h] = (Deno.args[0] ?? "192,384,7").split(",").map(Number);
const COPIES = 24;
const ROUNDS = 8;
const PAGE = 65536;
const nn = 16, m = 2;
const tiles = Math.ceil(h / m) ** 2;
const panels = Math.ceil(oc / 8);
// Bias (padded to 4), then 16 GEMM-packed matrices of depth c.
const weightBytes = Math.ceil(oc / 4) * 16 + nn * (c + 1) * 32 * panels;
const X = 1 << 20, Y = 4 << 20, SCRATCH = 8 << 20, U = 64 << 20;
const pages = Math.ceil((U + COPIES * weightBytes) / PAGE);
const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
const bytes = withFixedMemory(await Deno.readFile(kernelUrl("relaxed-simd", false)), pages);
const k = instantiateKernels(new WebAssembly.Module(bytes), memory);
k.gemm_variant(1); // loadsplat-u2, the calibration's choice on the Intel host
const floats = new Float32Array(memory.buffer);
for (let i = 0; i < floats.length; i++) floats[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;

const run = (u: number) => {
  const start = performance.now();
  k.winograd_f2x3_bias_relu(X, c, h, h, c, u, oc, Y, oc, SCRATCH, 0, tiles);
  return performance.now() - start;
};
const hot: number[] = [], cold: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < COPIES; i++) cold.push(run(U + i * weightBytes));
  for (let i = 0; i < COPIES; i++) hot.push(run(U));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const flops = 2 * nn * tiles * c * oc;
const line = (name: string, ms: number) =>
  `${name} ${ms.toFixed(3)} ms (${(flops / ms / 1e6).toFixed(1)} GFLOP/s)`;
console.log(`host: ${await cpuModel()}, load ${loadAverage()}`);
console.log(
  `F(2x2, 3x3), c ${c}, oc ${oc}, ${h}x${h} map, ${tiles} tiles, ${
    (weightBytes / 1e6).toFixed(1)
  } MB of weights: ${line("hot", median(hot))}, ${line(`cold (${COPIES} copies)`, median(cold))}`,
);
