/**
 * The Web Worker constructor this library starts its threads with.
 *
 * Emscripten builds loaded into the same process (TensorFlow.js's wasm backend,
 * onnxruntime-web) may replace `globalThis.Worker` with Node's
 * `worker_threads.Worker`, an EventEmitter without `addEventListener` or
 * `onmessage`. The constructor is therefore taken when this module is first
 * evaluated, and a later global is used only when it is a Web Worker again.
 *
 * @module
 */

type WorkerConstructor = typeof Worker;

function isWebWorker(value: unknown): value is WorkerConstructor {
  return typeof value === "function" &&
    typeof (value as WorkerConstructor).prototype?.addEventListener === "function" &&
    typeof (value as WorkerConstructor).prototype?.postMessage === "function";
}

const captured: WorkerConstructor | undefined = isWebWorker(globalThis.Worker)
  ? globalThis.Worker
  : undefined;

/**
 * The Web Worker constructor: the current global when it is one, else the one
 * present when this library was loaded, else `undefined` (no workers here).
 *
 * @returns A constructor whose instances have `addEventListener`, `postMessage` and `terminate`.
 *
 * @example
 * ```ts
 * import { webWorker } from "./web_worker.ts";
 * console.log(webWorker() !== undefined); // true in Deno
 * ```
 */
export function webWorker(): WorkerConstructor | undefined {
  const current = globalThis.Worker;
  return isWebWorker(current) ? current : captured;
}
