/**
 * One thread of the all-cores peak probe in `googlenet_bench.ts`: runs the
 * kernels' `fma_peak` on its own memory when asked and answers with the
 * GFLOP/s it reached. Started once per core, asked at the same moment, it
 * shows what each core can do while the others work (on a shared VM one
 * core can be much slower than the other, which bounds multi-thread scaling).
 *
 * Protocol: `{ module }` once (a kernel module with a private memory), then
 * `{ iters }` → the GFLOP/s of `iters` steps of 12 multiply-adds of 4 lanes.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { instantiateKernels, type KernelExports } from "../src/backend/wasm/kernels.ts";

let kernels: KernelExports | undefined;

globalThis.onmessage = (
  event: MessageEvent<{ module: WebAssembly.Module } | { iters: number }>,
) => {
  const message = event.data;
  if ("module" in message) {
    kernels = instantiateKernels(message.module, new WebAssembly.Memory({ initial: 1 }));
    globalThis.postMessage(0);
    return;
  }
  const start = performance.now();
  kernels!.fma_peak(message.iters, 64);
  globalThis.postMessage((message.iters * 96) / (performance.now() - start) / 1e6);
};
