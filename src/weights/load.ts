/**
 * Loads a weight file from bytes, a path, a URL, a `Response` or a stream,
 * detecting its format from its first bytes.
 *
 * @module
 */

import { OptionError, WeightsFormatError } from "../errors.ts";
import { checkTimeout, readBytes } from "../read_bytes.ts";
import { checkInstance, checkInteger, checkOptions, describeValue } from "../validate.ts";
import { isPickle, readPth } from "./pth.ts";
import { isSafetensors, readSafetensors } from "./safetensors.ts";
import type { StateDict } from "./state_dict.ts";
import { isZip } from "./zip.ts";

/**
 * Where {@linkcode loadWeights} reads a weight file from: its bytes (any
 * typed array, `DataView`, `ArrayBuffer` or `SharedArrayBuffer`), a path, a
 * URL, a `Response` or a byte stream.
 */
export type WeightsSource =
  | ArrayBufferView
  | ArrayBuffer
  | SharedArrayBuffer
  | string
  | URL
  | Response
  | ReadableStream<Uint8Array>;

/** Options of {@linkcode loadWeights}. */
export interface LoadWeightsOptions {
  /**
   * Largest file accepted from a path, URL, `Response` or stream, in bytes,
   * checked before reading when the size is known and while reading
   * otherwise (default 2 GiB).
   */
  maxBytes?: number;
  /** Stops a download or read in progress. */
  signal?: AbortSignal;
  /** Milliseconds a path, URL, `Response` or stream may take to read (default 300000; `Infinity` for none). */
  timeout?: number;
}

const DEFAULT_MAX_BYTES = 2 ** 31;
const DEFAULT_TIMEOUT = 300_000;
const OPTION_KEYS = ["maxBytes", "signal", "timeout"];

/**
 * Reads a PyTorch checkpoint (`torch.save` ZIP, PyTorch >= 1.6, or the legacy
 * format) or a safetensors file into float32 tensors. Strings with a scheme
 * (`https://...`, `file:///...`) and `URL`s are fetched, or read from disk
 * for `file:`; other strings are file paths. The file is held once: paths
 * are read into one buffer, streams of known length into one preallocated
 * buffer (up to 256 MiB; larger ones grow as their bytes arrive), and
 * aligned float32 tensors are views of it. Bytes in a
 * `SharedArrayBuffer` are copied first (another thread could change them).
 *
 * @param source The file, as bytes or where to read it.
 * @param options Size limit, time limit and abort signal.
 * @returns The tensors by state-dict key.
 * @throws {WeightsFormatError} When the format is not recognised, the file is malformed,
 *   larger than `maxBytes`, cannot be read or downloaded (the `cause` has the I/O error),
 *   the HTTP response is not OK, `timeout` passes or `signal` aborts.
 * @throws {OptionError} When `source` is of another type or an option is invalid.
 *
 * @example
 * ```ts
 * import { loadWeights } from "./load.ts";
 * import { writeSafetensors } from "./safetensors.ts";
 * import { Tensor } from "../tensor.ts";
 * const file = writeSafetensors(new Map([["fc.bias", Tensor.zeros([4])]]));
 * const weights = await loadWeights(file);
 * console.log(weights.get("fc.bias")?.size); // 4
 * ```
 */
export async function loadWeights(
  source: WeightsSource,
  options: LoadWeightsOptions = {},
): Promise<StateDict> {
  const checked = checkOptions("loadWeights", options, OPTION_KEYS);
  const maxBytes = checkInteger("maxBytes", checked.maxBytes, {
    min: 0,
    default: DEFAULT_MAX_BYTES,
  });
  const timeout = checkTimeout(checked.timeout, DEFAULT_TIMEOUT);
  const signal = checkInstance("signal", checked.signal, [AbortSignal], { default: undefined });
  const bytes = inMemory(source);
  if (bytes) return parseWeights(bytes);
  if (
    typeof source !== "string" && !(source instanceof URL) && !(source instanceof Response) &&
    !(source instanceof ReadableStream)
  ) {
    throw new OptionError(
      `Expected the weights source to be bytes (a typed array, DataView, ArrayBuffer or ` +
        `SharedArrayBuffer), a path, a URL, a Response or a ReadableStream, got ${
          describeValue(source)
        }`,
    );
  }
  return parseWeights(
    await readBytes(source, {
      maxBytes,
      timeout,
      signal,
      error: WeightsFormatError,
      what: "weight file",
    }),
  );
}

/** The bytes of an in-memory source, or undefined for one to read. */
function inMemory(source: unknown): Uint8Array | undefined {
  if (source instanceof Uint8Array && !(source.buffer instanceof SharedArrayBuffer)) return source;
  if (ArrayBuffer.isView(source)) {
    const view = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return source.buffer instanceof SharedArrayBuffer ? view.slice() : view;
  }
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof SharedArrayBuffer === "function" && source instanceof SharedArrayBuffer) {
    return new Uint8Array(source).slice();
  }
  return undefined;
}

function parseWeights(bytes: Uint8Array): StateDict {
  if (isZip(bytes) || isPickle(bytes)) return readPth(bytes);
  if (isSafetensors(bytes)) return readSafetensors(bytes).tensors;
  const start = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new WeightsFormatError(
    "Unrecognised weight file: expected a PyTorch checkpoint (torch.save ZIP, PyTorch >= 1.6) " +
      `or safetensors, got ${bytes.length} bytes starting ${start || "(empty)"}`,
  );
}
