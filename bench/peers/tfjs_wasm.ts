/**
 * TensorFlow.js peer: the seed GoogLeNet written with tfjs ops on
 * `@tensorflow/tfjs-backend-wasm` (XNNPACK kernels, SIMD build), in NHWC
 * with HWIO filters, the layout its kernels want.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { BackendError } from "../../src/errors.ts";
import type { Tensor } from "../../src/tensor.ts";
import {
  checkSeedInput,
  type ConvSpec,
  SEED_CLASSES,
  SEED_FEATURES,
  SEED_STAGES,
  seedConvs,
  stateDictEntry,
} from "./seed_architecture.ts";
import type { PeerOptions, PeerRunner, PeerUnavailable } from "./types.ts";

/** Why tfjs-backend-wasm runs one thread only under Deno (the reason its 2-thread peer reports). */
export const TFJS_THREADS_UNAVAILABLE: string =
  "tfjs-backend-wasm multithreading needs Emscripten pthread workers: tfjs disables them when " +
  "process.versions.node exists (Deno), and forced on they are started from a blob: URL " +
  "holding a CommonJS script, which Deno's node:worker_threads rejects (ERR_WORKER_PATH); " +
  "the browser path needs classic workers, which Deno lacks";

let backend: Promise<boolean> | undefined;

/** Loads the wasm backend once per process from the npm package's own files; resolves SIMD. */
function initBackend(): Promise<boolean> {
  backend ??= (async () => {
    // Under Deno the package runs its Node build, which reads the .wasm file
    // with node:fs: point it at the package's dist folder, not a CDN.
    setWasmPaths(new URL("./", import.meta.resolve("@tensorflow/tfjs-backend-wasm")).pathname);
    if (!(await tf.setBackend("wasm"))) throw new Error("tfjs could not start its wasm backend");
    return await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") as boolean;
  })();
  return backend;
}

interface ConvWeights {
  /** HWIO. */
  readonly filter: tf.Tensor4D;
  readonly bias: tf.Tensor1D;
}

/**
 * The seed GoogLeNet on tfjs-backend-wasm: input NCHW is transposed to NHWC
 * inside `run` (counted in its time); each `BasicConv2d` is one
 * `tf.fused.conv2d` (bias + ReLU fused) with PyTorch's symmetric padding;
 * the stride-2 ceil-mode max pools are `tf.maxPool(3, 2, "same")`, which for
 * the even sizes of a 224x224 input (112, 56, 28, 14) pads the same single
 * bottom/right row and column as ceil mode and yields the same output size;
 * branch4's pool is `tf.maxPool(3, 1, "same")` (= padding 1); then
 * `tf.concat`, `tf.mean` over H and W, and `tf.fused.matMul` with `fc`.
 *
 * @param stateDict The seed GoogLeNet's state dict (PyTorch names and layouts).
 * @param options `threads`: only 1 works under Deno (see {@link TFJS_THREADS_UNAVAILABLE}).
 * @returns A runner taking NCHW `[N, 3, 224, 224]` input, or why it is unavailable.
 * @throws {StateDictError} When a key is missing or has the wrong shape.
 *
 * @example
 * ```ts
 * import { createTfjsWasmRunner } from "./tfjs_wasm.ts";
 * import { seedStateDictShapes } from "./seed_architecture.ts";
 * import { isRunner } from "./types.ts";
 * import { deterministicInput, deterministicStateDict } from "../../tools/deterministic.ts";
 * const peer = await createTfjsWasmRunner(deterministicStateDict(seedStateDictShapes()));
 * if (isRunner(peer)) {
 *   console.log((await peer.run(deterministicInput("x", [1, 3, 224, 224]))).length); // 1000
 *   await peer.dispose();
 * }
 * ```
 */
export async function createTfjsWasmRunner(
  stateDict: ReadonlyMap<string, Tensor>,
  options: PeerOptions = {},
): Promise<PeerRunner | PeerUnavailable> {
  const threads = options.threads ?? 1;
  if (threads !== 1) {
    return { name: `tfjs-backend-wasm (${threads}t)`, reason: TFJS_THREADS_UNAVAILABLE };
  }
  const simd = await initBackend();
  const name = `tfjs-backend-wasm ${simd ? "simd" : "no simd"} (1t)`;

  const convs = new Map<string, ConvWeights>();
  for (const { key, outChannels: o, inChannels: i, kernel: k } of seedConvs()) {
    const w = stateDictEntry(stateDict, `${key}.weight`, [o, i, k, k]);
    const b = stateDictEntry(stateDict, `${key}.bias`, [o]);
    const filter = tf.tidy(() => tf.transpose(tf.tensor4d(w.data, [o, i, k, k]), [2, 3, 1, 0]));
    convs.set(key, { filter: filter as tf.Tensor4D, bias: tf.tensor1d(b.data) });
  }
  // fc.weight as [in, out]: tfjs-backend-wasm 4.22's fused MatMul returns
  // wrong values with transposeB and a bias, so transpose once here.
  const fc = stateDictEntry(stateDict, "fc.weight", [SEED_CLASSES, SEED_FEATURES]);
  const fcWeight = tf.tidy(() =>
    tf.transpose(tf.tensor2d(fc.data, [SEED_CLASSES, SEED_FEATURES]))
  ) as tf.Tensor2D;
  const fcBias = tf.tensor1d(stateDictEntry(stateDict, "fc.bias", [SEED_CLASSES]).data);

  const convRelu = (x: tf.Tensor4D, spec: ConvSpec): tf.Tensor4D => {
    const { filter, bias } = convs.get(spec.key)!;
    return tf.fused.conv2d({
      x,
      filter,
      bias,
      strides: spec.stride,
      pad: spec.padding,
      activation: "relu",
    });
  };
  const forward = (input: Tensor, n: number): tf.Tensor2D =>
    tf.tidy(() => {
      const [, c, h, w] = input.shape;
      let x = tf.transpose(tf.tensor4d(input.data, [n, c, h, w]), [0, 2, 3, 1]) as tf.Tensor4D;
      for (const stage of SEED_STAGES) {
        if (stage.kind === "conv") {
          x = convRelu(x, stage.conv);
        } else if (stage.kind === "maxpool") {
          x = tf.maxPool(x, 3, 2, "same");
        } else {
          const { convBranches, poolProjection } = stage.block;
          const branches = convBranches.map((specs) => specs.reduce(convRelu, x));
          branches.push(convRelu(tf.maxPool(x, 3, 1, "same"), poolProjection));
          x = tf.concat(branches, 3);
        }
      }
      const features = tf.mean(x, [1, 2]) as tf.Tensor2D;
      return tf.fused.matMul({
        a: features,
        b: fcWeight,
        bias: fcBias,
      }) as tf.Tensor2D;
    });

  let disposed = false;
  return {
    name,
    threads,
    async run(input: Tensor): Promise<Float32Array> {
      if (disposed) throw new BackendError(`${name} was disposed`);
      const logits = forward(input, checkSeedInput(input));
      try {
        return (await logits.data()) as Float32Array;
      } finally {
        logits.dispose();
      }
    },
    dispose(): Promise<void> {
      if (!disposed) {
        disposed = true;
        for (const { filter, bias } of convs.values()) tf.dispose([filter, bias]);
        tf.dispose([fcWeight, fcBias]);
      }
      return Promise.resolve();
    },
  };
}
