/**
 * The edge worker as a classic script for Vercel's `edge-runtime` (which
 * evaluates a script in a Node `vm` context and dispatches `fetch` events):
 * the host puts the precompiled kernel module in the global `KERNELS` and the
 * weights' URL in `WEIGHTS_URL`. Bundled to `vercel.js` by `tools/bundle.ts`;
 * run by `tools/edge/vercel_host.mjs`.
 *
 * @module
 */

import { handleRequest } from "./worker.ts";

interface FetchEvent {
  request: Request;
  respondWith(response: Promise<Response>): void;
}

const scope = globalThis as unknown as {
  KERNELS: WebAssembly.Module;
  WEIGHTS_URL: string;
  addEventListener(type: "fetch", listener: (event: FetchEvent) => void): void;
};

scope.addEventListener("fetch", (event) => {
  event.respondWith(handleRequest(event.request, {
    wasmModule: scope.KERNELS,
    weights: () => fetch(scope.WEIGHTS_URL),
  }));
});
