/**
 * Data for training: the IDX format (MNIST, Fashion-MNIST), torchvision's
 * `ImageFolder`, a seeded train/validation split, torchvision-equal
 * augmentation, and a `DataLoader` that decodes and augments in workers.
 *
 * @example
 * ```ts
 * import { DataLoader, IdxDataset, trainTransform } from "./mod.ts";
 * const dataset = new IdxDataset({
 *   images: { dtype: "uint8", shape: [4, 28, 28], data: new Uint8Array(4 * 784) },
 *   labels: { dtype: "uint8", shape: [4], data: new Uint8Array([0, 1, 2, 3]) },
 * });
 * const loader = new DataLoader(dataset, { transform: trainTransform("none"), batchSize: 4, workers: 0 });
 * for await (const { input, labels } of loader) console.log(input.shape, labels); // [4, 3, 224, 224] Int32Array(4) [0, 1, 2, 3]
 * ```
 *
 * @module
 */

export { type BatchItem, type BatchResult, transformBatch } from "./batch.ts";
export {
  type Dataset,
  decodeRaw,
  type RawSample,
  type Sample,
  splitDataset,
  type SplitOptions,
  Subset,
} from "./dataset.ts";
export {
  DEFAULT_IDX_MAX_BYTES,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  type IdxArray,
  type IdxData,
  IdxDataset,
  type IdxDatasetInit,
  type IdxDType,
  loadFashionMnist,
  type LoadFashionMnistOptions,
  loadIdxDataset,
  type LoadIdxDatasetOptions,
  parseIdx,
  readIdx,
  type ReadIdxOptions,
} from "./idx.ts";
export {
  comparePython,
  ImageFolder,
  type ImageFolderOptions,
  IMG_EXTENSIONS,
  type SkippedFile,
} from "./image_folder.ts";
export { type Batch, DataLoader, type DataLoaderOptions } from "./loader.ts";
export { mixSeed, Random, type RandomSource } from "./random.ts";
export {
  type Augmentation,
  type Box,
  CenterCrop,
  Compose,
  crop,
  hflip,
  Normalize,
  type NormalizeOptions,
  type PresetOptions,
  RandomHorizontalFlip,
  RandomResizedCrop,
  randomResizedCropBox,
  type RandomResizedCropOptions,
  Resize,
  resizedCrop,
  type ResizeOptions,
  ToTensor,
  trainTransform,
  type Transform,
  transformFromSpec,
  type TransformSpec,
  type TransformValue,
  validationTransform,
} from "./transforms.ts";
