/**
 * googlenet-wasm: GoogLeNet (Inception v1) on WebAssembly SIMD kernels, for
 * Deno and edge runtimes.
 *
 * @example
 * ```ts
 * import { GoogLeNet, Tensor } from "./mod.ts";
 * const model = await GoogLeNet.create({ threads: 1 });
 * const logits = (await model.forward(Tensor.zeros([1, 3, 224, 224]))) as Tensor; // eval mode
 * console.log(logits.shape); // [1, 1000]
 * await model.dispose();
 * ```
 *
 * @module
 */

export { shapeSize, Tensor } from "./src/tensor.ts";
export type { Backend, BackendKind } from "./src/backend/backend.ts";
export type {
  LayerValues,
  RepackLayer,
  StagedLayer,
  Staging,
  SwappedLayer,
} from "./src/backend/repack.ts";
export type { RowOrder } from "./src/backend/pack.ts";
export {
  type AdapterDescription,
  type BackendChoice,
  describeAdapter,
  isSoftwareAdapter,
} from "./src/backend/select.ts";
export type {
  AdamRule,
  AdaptiveAvgPoolGradOp,
  AdaptiveAvgPoolOp,
  BackwardOp,
  BufferSpec,
  Conv2dGradInputOp,
  Conv2dGradWeightOp,
  Conv2dOp,
  ConvGeometry,
  DropoutOp,
  FoldBatchNormOp,
  ForwardOp,
  Gather,
  GradRef,
  LinearOp,
  Op,
  OptimStepOp,
  PackedRef,
  PackGemmOp,
  PackWinogradOp,
  Plan,
  Pool2dGradOp,
  Pool2dOp,
  ReluGradOp,
  SgdRule,
  UpdateRule,
  View,
  WeightLayout,
  WeightOp,
  WinogradRef,
  WinogradVariant,
  ZeroOp,
} from "./src/graph/ops.ts";
export {
  GEMM_KERNELS,
  type GemmCalibration,
  type GemmKernel,
} from "./src/backend/wasm/calibrate.ts";
export { countMacs, type MacCount } from "./src/graph/cost.ts";
export type { VariantName } from "./src/model/variant.ts";
export type { ParameterStep } from "./src/model/optim_state.ts";
export {
  type BackwardOptions,
  type BackwardResult,
  type ForwardOptions,
  GoogLeNet,
  type GoogLeNetOptions,
  type LoadStateDictOptions,
  type Parameter,
  type Preference,
  type StateDictInput,
  type TrainingOutputs,
} from "./src/model/googlenet.ts";
export {
  decodeImage,
  decodeJpegDraft,
  type DecodeOptions,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageSource,
  type JpegDraftOptions,
  type LoadImageOptions,
  type Normalization,
  type PixelData,
  preprocess,
  preprocessBatch,
  type PreprocessOptions,
  type RgbImage,
} from "./src/image/mod.ts";
export {
  loadWeights,
  type LoadWeightsOptions,
  readPth,
  readSafetensors,
  type Safetensors,
  type StateDict,
  type WeightsSource,
  writePth,
  type WritePthOptions,
  writeSafetensors,
  type WriteSafetensorsOptions,
} from "./src/weights/mod.ts";
export type { FloatDType } from "./src/weights/mod.ts";
export {
  cacheDir,
  type CacheDirOptions,
  type DownloadOptions,
  downloadWeights,
  PRETRAINED_WEIGHTS,
  pretrainedWeights,
} from "./src/weights/mod.ts";
export { DownloadError } from "./src/errors.ts";
export { checkLabels, type CrossEntropy, crossEntropy } from "./src/train/loss.ts";
export { Optimizer, type OptimizerStateDict, type ParameterState } from "./src/train/optimizer.ts";
export { SGD, type SGDHyper, type SGDOptions } from "./src/train/sgd.ts";
export { Adam, type AdamHyper, type AdamOptions, AdamW } from "./src/train/adam.ts";
export * from "./src/data/mod.ts";
export { DatasetError } from "./src/errors.ts";
export { IMAGENET_CLASSES } from "./src/labels/imagenet.ts";
export { type Prediction, softmax, topK } from "./src/labels/top_k.ts";
export { classify, classifyBatch, type ClassifyOptions } from "./src/classify.ts";
export {
  BackendError,
  DisposedError,
  GoogLeNetError,
  ImageError,
  MemoryLimitError,
  OptionError,
  ShapeError,
  StateDictError,
  WeightsFormatError,
} from "./src/errors.ts";
