/**
 * Loads a weight file from bytes, a path, a URL, a `Response` or a stream,
 * detecting its format from its first bytes.
 *
 * @module
 */

import { WeightsFormatError } from "../errors.ts";
import { isPickle, readPth } from "./pth.ts";
import { isSafetensors, readSafetensors } from "./safetensors.ts";
import type { StateDict } from "./state_dict.ts";
import { isZip } from "./zip.ts";

/** Where {@linkcode loadWeights} reads a weight file from. */
export type WeightsSource =
  | Uint8Array
  | ArrayBuffer
  | string
  | URL
  | Response
  | ReadableStream<Uint8Array>;

/** Options of {@linkcode loadWeights}. */
export interface LoadWeightsOptions {
  /** Largest file accepted from a URL, `Response` or stream, in bytes (default 2 GiB). */
  maxBytes?: number;
  /** Aborts a `fetch`. */
  signal?: AbortSignal;
}

const DEFAULT_MAX_BYTES = 2 ** 31;

/**
 * Reads a PyTorch checkpoint (`torch.save` ZIP, PyTorch >= 1.6) or a
 * safetensors file into float32 tensors. Strings with a scheme
 * (`https://...`, `file:///...`) and `URL`s are fetched, or read from disk
 * for `file:`; other strings are file paths. The file is held once: paths
 * are read into one buffer, streams of known length into one preallocated
 * buffer, and aligned float32 tensors are views of it.
 *
 * @param source The file, as bytes or where to read it.
 * @param options Size limit and abort signal.
 * @returns The tensors by state-dict key.
 * @throws {WeightsFormatError} When the format is not recognised, the file is malformed,
 *   larger than `maxBytes`, or the HTTP response is not OK. I/O failures propagate as they are
 *   (`Deno.errors.NotFound` for a missing path, `TypeError` from `fetch` for a network error).
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
  return parseWeights(await readSource(source, options));
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

async function readSource(source: WeightsSource, options: LoadWeightsOptions): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (source instanceof ReadableStream) return await readStream(source, undefined, options);
  if (source instanceof Response) return await readResponse(source, options);
  const url = source instanceof URL
    ? source
    : /^[a-z][a-z0-9+.-]*:\/\//i.test(source)
    ? new URL(source)
    : undefined;
  if (url?.protocol === "file:" || url === undefined) return await Deno.readFile(url ?? source);
  return await readResponse(await fetch(url, { signal: options.signal }), options);
}

async function readResponse(response: Response, options: LoadWeightsOptions): Promise<Uint8Array> {
  if (!response.ok) {
    await response.body?.cancel();
    throw new WeightsFormatError(
      `Could not download the weights from ${response.url || "the response"}: HTTP ` +
        `${response.status} ${response.statusText}, expected 200 OK`,
    );
  }
  if (!response.body) return new Uint8Array(0);
  // Content-Length counts encoded bytes, so it sizes the buffer only without Content-Encoding.
  const length = response.headers.get("content-encoding")
    ? undefined
    : Number(response.headers.get("content-length") ?? NaN);
  return await readStream(
    response.body,
    Number.isSafeInteger(length) ? length : undefined,
    options,
  );
}

/** Reads a stream into one buffer, preallocated when `length` is known, grown by doubling otherwise. */
async function readStream(
  stream: ReadableStream<Uint8Array>,
  length: number | undefined,
  options: LoadWeightsOptions,
): Promise<Uint8Array> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const tooLarge = (size: number) =>
    new WeightsFormatError(`Weight file of ${size} bytes or more exceeds maxBytes (${maxBytes})`);
  if (length !== undefined && length > maxBytes) throw tooLarge(length);
  let buffer = new Uint8Array(length ?? 1 << 20);
  let size = 0;
  for await (const chunk of stream) {
    if (size + chunk.length > maxBytes) {
      await stream.cancel().catch(() => {});
      throw tooLarge(size + chunk.length);
    }
    if (size + chunk.length > buffer.length) {
      const grown = new Uint8Array(
        Math.min(maxBytes, Math.max(2 * buffer.length, size + chunk.length)),
      );
      grown.set(buffer.subarray(0, size));
      buffer = grown;
    }
    buffer.set(chunk, size);
    size += chunk.length;
  }
  return buffer.subarray(0, size);
}
