/**
 * The native ceiling: onnxruntime-node (ONNX Runtime's CPU execution provider
 * as a Node-API addon, MLAS kernels) running the ONNX model of
 * `onnx_googlenet.ts`, loaded lazily so that the other peers work where the
 * addon does not.
 *
 * @module
 */

import { BackendError } from "../../src/errors.ts";
import type { Tensor } from "../../src/tensor.ts";
import { buildOnnxGoogLeNet } from "./onnx_googlenet.ts";
import { checkSeedInput } from "./seed_architecture.ts";
import type { PeerOptions, PeerRunner, PeerUnavailable } from "./types.ts";

/**
 * onnxruntime-node with `intraOpNumThreads = threads`, sequential execution
 * and all graph optimisations. Under Deno the addon needs `--allow-ffi`
 * (and `--allow-read`, `--allow-env`).
 *
 * @param stateDict The seed GoogLeNet's state dict (PyTorch names and layouts).
 * @param options `threads`: intra-op threads (default 1).
 * @returns A runner taking NCHW `[N, 3, 224, 224]` input, or why the addon
 *   could not be loaded.
 * @throws {BackendError} When the addon loads but cannot create the session.
 *
 * @example
 * ```ts
 * import { createOrtNodeRunner } from "./ort_node.ts";
 * import { seedStateDictShapes } from "./seed_architecture.ts";
 * import { isRunner } from "./types.ts";
 * import { deterministicStateDict } from "../../tools/deterministic.ts";
 * const peer = await createOrtNodeRunner(deterministicStateDict(seedStateDictShapes()));
 * if (isRunner(peer)) await peer.dispose();
 * else console.log(peer.reason);
 * ```
 */
export async function createOrtNodeRunner(
  stateDict: ReadonlyMap<string, Tensor>,
  options: PeerOptions = {},
): Promise<PeerRunner | PeerUnavailable> {
  const threads = options.threads ?? 1;
  const name = `onnxruntime-node cpu (${threads}t)`;
  let ort: typeof import("onnxruntime-node");
  try {
    ort = await import("onnxruntime-node");
  } catch (e) {
    return { name, reason: `onnxruntime-node did not load: ${(e as Error).message}` };
  }
  let session: import("onnxruntime-node").InferenceSession;
  try {
    session = await ort.InferenceSession.create(buildOnnxGoogLeNet(stateDict), {
      executionProviders: ["cpu"],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    });
  } catch (e) {
    throw new BackendError(`onnxruntime-node could not create the session`, { cause: e });
  }
  let disposed = false;
  return {
    name,
    threads,
    async run(input: Tensor): Promise<Float32Array> {
      if (disposed) throw new BackendError(`${name} was disposed`);
      checkSeedInput(input);
      const x = new ort.Tensor("float32", input.data, [...input.shape]);
      const outputs = await session.run({ [session.inputNames[0]]: x });
      return outputs[session.outputNames[0]].data as Float32Array;
    },
    async dispose(): Promise<void> {
      if (disposed) return;
      disposed = true;
      await session.release();
    },
  };
}
