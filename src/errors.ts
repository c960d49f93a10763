/**
 * Typed errors thrown by googlenet-wasm. Every error says what was wrong and
 * what was expected, so callers can branch on the class and show the message.
 *
 * @module
 */

/**
 * Base class of every error this library throws on purpose.
 *
 * @example
 * ```ts
 * import { GoogLeNetError, ShapeError } from "./errors.ts";
 * const err = new ShapeError("Expected rank 4, got rank 2");
 * console.log(err instanceof GoogLeNetError); // true
 * ```
 */
export class GoogLeNetError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong and what was expected.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A tensor or input has the wrong rank, shape, size or contents.
 *
 * @example
 * ```ts
 * import { ShapeError } from "./errors.ts";
 * const error = new ShapeError("Expected input [N, 3, H, W], got [3, 224, 224]");
 * console.log(error.name); // "ShapeError"
 * ```
 */
export class ShapeError extends GoogLeNetError {}

/**
 * A state dict does not fit the model: a missing or unexpected key, or a
 * tensor of the wrong shape. The model is left unchanged.
 *
 * @example
 * ```ts
 * import { StateDictError } from "./errors.ts";
 * const error = new StateDictError('Missing key "fc.weight"');
 * console.log(error.name); // "StateDictError"
 * ```
 */
export class StateDictError extends GoogLeNetError {}

/**
 * A weight file (PyTorch zip, pickle or safetensors) is malformed, truncated,
 * unsupported or refers to something the reader refuses to execute.
 *
 * @example
 * ```ts
 * import { WeightsFormatError } from "./errors.ts";
 * const error = new WeightsFormatError("Truncated safetensors header: expected 120 bytes, got 12");
 * console.log(error.name); // "WeightsFormatError"
 * ```
 */
export class WeightsFormatError extends GoogLeNetError {}

/**
 * An image could not be decoded or is too large to decode safely.
 *
 * @example
 * ```ts
 * import { ImageError } from "./errors.ts";
 * const error = new ImageError("Unsupported image format: expected PNG or JPEG bytes");
 * console.log(error.name); // "ImageError"
 * ```
 */
export class ImageError extends GoogLeNetError {}

/**
 * A backend (Wasm or WebGPU) could not be created or failed while running.
 *
 * @example
 * ```ts
 * import { BackendError } from "./errors.ts";
 * const error = new BackendError('Backend "webgpu" requested but no WebGPU adapter is available');
 * console.log(error.name); // "BackendError"
 * ```
 */
export class BackendError extends GoogLeNetError {}

/**
 * A request needs more memory than the configured `memoryLimit` allows.
 *
 * @example
 * ```ts
 * import { MemoryLimitError } from "./errors.ts";
 * const error = new MemoryLimitError("Batch needs 900 MB of Wasm memory, memoryLimit is 512 MB");
 * console.log(error.name); // "MemoryLimitError"
 * ```
 */
export class MemoryLimitError extends GoogLeNetError {}

/**
 * The object was disposed and can no longer be used.
 *
 * @example
 * ```ts
 * import { DisposedError } from "./errors.ts";
 * const error = new DisposedError("GoogLeNet was disposed: create a new model");
 * console.log(error.name); // "DisposedError"
 * ```
 */
export class DisposedError extends GoogLeNetError {}

/**
 * An argument or option of a public function has the wrong type or value, or
 * an options object names an option that does not exist. The message names
 * the option, the value given and what is allowed.
 *
 * @example
 * ```ts
 * import { OptionError } from "./errors.ts";
 * const error = new OptionError("Expected top to be an integer >= 1, got 0");
 * console.log(error.name); // "OptionError"
 * ```
 */
export class OptionError extends GoogLeNetError {}

/**
 * A data set is malformed or unusable: an IDX file whose header does not fit
 * its size, an image folder without images, class names that clash.
 *
 * @example
 * ```ts
 * import { DatasetError } from "./errors.ts";
 * const error = new DatasetError("No class folder under photos/ has an image");
 * console.log(error.name); // "DatasetError"
 * ```
 */
export class DatasetError extends GoogLeNetError {}

/**
 * Downloading a file failed: no network, no answer in time, an HTTP error, or
 * bytes whose SHA-256 do not match the hash the file is published with.
 *
 * @example
 * ```ts
 * import { DownloadError } from "./errors.ts";
 * const error = new DownloadError("Could not download https://example.com/w.pth: HTTP 404");
 * console.log(error.name); // "DownloadError"
 * ```
 */
export class DownloadError extends GoogLeNetError {}
