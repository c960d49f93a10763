/**
 * Benchmark peers: third-party runtimes loaded with the seed GoogLeNet and
 * the same weights as this library, each taking NCHW `[N, 3, 224, 224]`
 * input and returning `[N * 1000]` logits.
 *
 * @module
 */

export type { PeerOptions, PeerRunner, PeerUnavailable } from "./types.ts";
export { isRunner } from "./types.ts";
export type { Tensor } from "../../src/tensor.ts";
export { buildOnnxGoogLeNet, ONNX_INPUT, ONNX_OUTPUT } from "./onnx_googlenet.ts";
export { createOrtWebGpuRunner, createOrtWebRunner } from "./ort_web.ts";
export { createTfjsWasmRunner, TFJS_THREADS_UNAVAILABLE } from "./tfjs_wasm.ts";
export { createOrtNodeRunner } from "./ort_node.ts";
export {
  type ConvSpec,
  type InceptionSpec,
  SEED_INPUT_SIZE,
  SEED_STAGES,
  type SeedStage,
  seedStateDictShapes,
} from "./seed_architecture.ts";
