/**
 * onnxruntime-web peers running the ONNX model of `onnx_googlenet.ts`: the
 * Wasm execution provider (SIMD, 1 or more threads), each runner in a worker
 * of its own (`ort_web_worker.ts`), and the WebGPU execution provider, in
 * process.
 *
 * @module
 */

import { BackendError } from "../../src/errors.ts";
import type { Tensor } from "../../src/tensor.ts";
import { buildOnnxGoogLeNet } from "./onnx_googlenet.ts";
import { openOrtWebSession } from "./ort_web_session.ts";
import type { OrtWebReply, OrtWebRequest } from "./ort_web_worker.ts";
import { checkSeedInput } from "./seed_architecture.ts";
import type { PeerOptions, PeerRunner, PeerUnavailable } from "./types.ts";

/** Sends requests to a worker one at a time and returns its replies. */
class WorkerClient {
  #worker = new Worker(new URL("./ort_web_worker.ts", import.meta.url), { type: "module" });
  #queue: Promise<unknown> = Promise.resolve();

  async call(
    request: OrtWebRequest,
    transfer: Transferable[] = [],
  ): Promise<Extract<OrtWebReply, { ok: true }>> {
    const reply = this.#queue.then(() =>
      new Promise<OrtWebReply>((resolve, reject) => {
        this.#worker.onmessage = (e: MessageEvent<OrtWebReply>) => resolve(e.data);
        this.#worker.onerror = (e: ErrorEvent) => {
          e.preventDefault();
          reject(new BackendError(`onnxruntime-web worker failed: ${e.message}`));
        };
        this.#worker.postMessage(request, transfer);
      })
    );
    this.#queue = reply.catch(() => {});
    const answer = await reply;
    if (!answer.ok) {
      throw new BackendError(`onnxruntime-web ${request.kind} failed: ${answer.error}`);
    }
    return answer;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/** Wraps `run`/`release` as a PeerRunner that checks its input and refuses use after dispose. */
function runner(
  name: string,
  threads: number,
  run: (input: Tensor) => Promise<Float32Array>,
  release: () => Promise<void>,
): PeerRunner {
  let disposed = false;
  return {
    name,
    threads,
    run(input: Tensor): Promise<Float32Array> {
      if (disposed) return Promise.reject(new BackendError(`${name} was disposed`));
      try {
        checkSeedInput(input);
      } catch (e) {
        return Promise.reject(e);
      }
      return run(input);
    },
    async dispose(): Promise<void> {
      if (disposed) return;
      disposed = true;
      await release();
    },
  };
}

/**
 * onnxruntime-web's Wasm execution provider (`ort-wasm-simd-threaded.wasm`,
 * always SIMD) with `env.wasm.numThreads = threads`, in a worker of its own.
 * Under Deno the package resolves to its Node build, whose thread pool runs
 * on `node:worker_threads`; Deno provides those, so `threads > 1` is real
 * multithreading.
 *
 * @param stateDict The seed GoogLeNet's state dict (PyTorch names and layouts).
 * @param options `threads`: size of the intra-op thread pool (default 1).
 * @returns A runner taking NCHW `[N, 3, 224, 224]` input.
 * @throws {BackendError} When onnxruntime-web cannot create the session.
 *
 * @example
 * ```ts
 * import { createOrtWebRunner } from "./ort_web.ts";
 * import { seedStateDictShapes } from "./seed_architecture.ts";
 * import { deterministicInput, deterministicStateDict } from "../../tools/deterministic.ts";
 * const peer = await createOrtWebRunner(deterministicStateDict(seedStateDictShapes()), { threads: 2 });
 * const logits = await peer.run(deterministicInput("x", [1, 3, 224, 224]));
 * console.log(logits.length); // 1000
 * await peer.dispose();
 * ```
 */
export async function createOrtWebRunner(
  stateDict: ReadonlyMap<string, Tensor>,
  options: PeerOptions = {},
): Promise<PeerRunner> {
  const threads = options.threads ?? 1;
  const model = buildOnnxGoogLeNet(stateDict);
  const client = new WorkerClient();
  try {
    await client.call({ kind: "init", model, threads }, [model.buffer]);
  } catch (e) {
    client.terminate();
    throw e;
  }
  return runner(
    `onnxruntime-web wasm (${threads}t)`,
    threads,
    async (input) =>
      (await client.call({ kind: "run", data: input.data, shape: [...input.shape] })).logits!,
    async () => {
      try {
        await client.call({ kind: "dispose" });
      } finally {
        client.terminate();
      }
    },
  );
}

/**
 * onnxruntime-web's WebGPU execution provider (its JSEP build) on Deno's
 * `navigator.gpu`, in process: in a worker the build fails to resolve its own
 * URL against the worker's `location`. Without a hardware adapter Deno offers
 * Mesa's llvmpipe (a CPU rasteriser) as a fallback adapter, which runs but is
 * no GPU: the runner's name says which adapter it got.
 *
 * @param stateDict The seed GoogLeNet's state dict (PyTorch names and layouts).
 * @returns A runner taking NCHW `[N, 3, 224, 224]` input, or why there is none (no adapter).
 * @throws {BackendError} When onnxruntime-web cannot create the session.
 *
 * @example
 * ```ts
 * import { createOrtWebGpuRunner } from "./ort_web.ts";
 * import { seedStateDictShapes } from "./seed_architecture.ts";
 * import { isRunner } from "./types.ts";
 * import { deterministicStateDict } from "../../tools/deterministic.ts";
 * const peer = await createOrtWebGpuRunner(deterministicStateDict(seedStateDictShapes()));
 * if (isRunner(peer)) await peer.dispose();
 * else console.log(peer.reason);
 * ```
 */
export async function createOrtWebGpuRunner(
  stateDict: ReadonlyMap<string, Tensor>,
): Promise<PeerRunner | PeerUnavailable> {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) return { name: "onnxruntime-web webgpu", reason: "navigator.gpu has no adapter" };
  const kind = adapter.info.isFallbackAdapter ? "fallback adapter" : "adapter";
  const name = `onnxruntime-web webgpu (${kind} ${
    adapter.info.description || adapter.info.vendor
  })`;
  let session;
  try {
    session = await openOrtWebSession(buildOnnxGoogLeNet(stateDict), "webgpu", 1);
  } catch (e) {
    throw new BackendError(`${name} could not create the session`, { cause: e });
  }
  return runner(name, 1, (input) => session.run(input.data, input.shape), session.release);
}
