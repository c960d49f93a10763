/**
 * Images to tensors: decoding (PNG, JPEG), Pillow-exact resizing and
 * torchvision's ImageNet evaluation transform.
 *
 * @example
 * ```ts
 * import { preprocess } from "./mod.ts";
 * const input = await preprocess("assets/chelsea.jpg");
 * console.log(input.shape); // [1, 3, 224, 224]
 * ```
 *
 * @module
 */

export { decodeImage, type DecodeOptions, DEFAULT_MAX_PIXELS } from "./decode.ts";
export { decodeJpegDraft, type JpegDraftOptions } from "./jpeg.ts";
export { type ImageSource, loadImage, type LoadImageOptions } from "./load.ts";
export { type PixelData, type RgbImage, toRgb } from "./pixels.ts";
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  type Normalization,
  preprocess,
  preprocessBatch,
  type PreprocessOptions,
} from "./preprocess.ts";
export { resizeBilinear } from "./resize.ts";
