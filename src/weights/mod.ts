/**
 * Weight files: PyTorch checkpoints (`torch.save`, the ZIP format of PyTorch
 * >= 1.6 and the legacy format before it) and safetensors, read into float32
 * {@linkcode StateDict}s and written back; pretrained weights downloaded on
 * first use into a cache.
 * Reading never executes anything from a file: pickles run through an
 * allow-list interpreter, and malformed or hostile input raises
 * `WeightsFormatError`.
 *
 * @example
 * ```ts
 * import { loadWeights, writePth } from "./mod.ts";
 * import { Tensor } from "../tensor.ts";
 * const file = writePth(new Map([["fc.bias", Tensor.zeros([10])]]));
 * console.log((await loadWeights(file)).get("fc.bias")?.shape); // [10]
 * ```
 *
 * @module
 */

export type { StateDict } from "./state_dict.ts";
export { loadWeights, type LoadWeightsOptions, type WeightsSource } from "./load.ts";
export { readPth, writePth, type WritePthOptions } from "./pth.ts";
export {
  CACHE_ENV,
  cacheDir,
  type CacheDirOptions,
  type DownloadOptions,
  downloadWeights,
  PRETRAINED_WEIGHTS,
  pretrainedWeights,
  WEIGHTS_URL_ENV,
} from "./hub.ts";
export {
  readSafetensors,
  type Safetensors,
  writeSafetensors,
  type WriteSafetensorsOptions,
} from "./safetensors.ts";
export type { FloatDType } from "./dtype.ts";
