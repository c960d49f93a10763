/**
 * Reads the bytes of a file path, a URL, a `Response` or a stream within a
 * budget stated up front: never more than `maxBytes` (a regular file's size
 * and an HTTP `Content-Length` are checked before anything is read, and a
 * device file or an endless body stops at the limit), and never longer than
 * `timeout` or past an `AbortSignal`. Shared by image and weight loading.
 *
 * @module
 */

import { OptionError } from "./errors.ts";
import { describeValue, type ErrorClass } from "./validate.ts";

/** The largest buffer allocated on a declared length alone, before the bytes arrive. */
const MAX_PREALLOCATION = 256 * 2 ** 20;
/** The longest finite timeout: timers fire at once past 2^31 - 1 ms. */
const MAX_TIMEOUT = 2 ** 31 - 1;

/**
 * Checks a `timeout` option: milliseconds above 0 and at most 2^31 - 1 (about
 * 24.8 days, the most a timer can wait), or `Infinity` for none.
 *
 * @param value The option as given.
 * @param defaultMs Returned for `undefined`.
 * @returns The timeout in milliseconds.
 * @throws {OptionError} For anything else (0, NaN, a string, 2^31 ms).
 *
 * @example
 * ```ts
 * import { checkTimeout } from "./read_bytes.ts";
 * console.log(checkTimeout(undefined, 60_000), checkTimeout(Infinity, 60_000)); // 60000 Infinity
 * ```
 */
export function checkTimeout(value: unknown, defaultMs: number): number {
  if (value === undefined) return defaultMs;
  if (value === Infinity) return value;
  if (typeof value !== "number" || !(value > 0) || value > MAX_TIMEOUT) {
    throw new OptionError(
      `Expected timeout to be milliseconds above 0 and at most ${MAX_TIMEOUT}, or Infinity for ` +
        `none, got ${describeValue(value)}`,
    );
  }
  return value;
}

/** Where {@linkcode readBytes} reads from. */
export type ByteSource = string | URL | Response | ReadableStream<Uint8Array>;

/** Options of {@linkcode readBytes}. */
export interface ReadBytesOptions {
  /** Most bytes read; more is an error. */
  maxBytes: number;
  /** Stops the read (the error's `cause` is the signal's reason). */
  signal?: AbortSignal;
  /** Milliseconds before the read fails; `Infinity` for none. */
  timeout: number;
  /** The error class thrown for every failure (I/O, HTTP status, size, time). */
  error: ErrorClass;
  /** What is read, for messages (`"image"`, `"weight file"`). */
  what: string;
  /**
   * What the message for a FIFO path tells the caller to do instead (default:
   * read it and pass the bytes as a `ReadableStream` or a `Response`).
   */
  instead?: string;
}

/**
 * Reads `source` into one buffer: a string with a scheme (`https://...`,
 * `file:///...`) or a `URL` is fetched (or read, for `file:`), another string
 * is a path. A known length (a regular file's size, `Content-Length` without
 * `Content-Encoding`) is checked against `maxBytes` first and sizes the
 * buffer; otherwise the buffer grows by doubling, up to `maxBytes`. A path
 * must name a regular file or a device: a FIFO is refused before it is
 * opened (as `ImageFolder` skips FIFOs), since opening one without a
 * writer waits in a call that cannot be cancelled, and that pending call would
 * keep the process alive after the timeout error; pass a pipe's bytes as a
 * stream instead.
 *
 * @param source A path, URL, `Response` or byte stream.
 * @param options The budget and the error class to throw.
 * @returns The bytes.
 * @throws {GoogLeNetError} Of class `options.error`, for any failure.
 *
 * @example
 * ```ts
 * import { readBytes } from "./read_bytes.ts";
 * import { ImageError } from "./errors.ts";
 * const options = { maxBytes: 4, timeout: 1000, error: ImageError, what: "image" };
 * console.log(await readBytes(new Response("abc"), options)); // Uint8Array(3) [97, 98, 99]
 * await readBytes(new Response("abcde"), options).catch((e) => console.log(e.message));
 * // Image of 5 bytes or more exceeds maxBytes (4)
 * ```
 */
export async function readBytes(
  source: ByteSource,
  options: ReadBytesOptions,
): Promise<Uint8Array> {
  const controller = new AbortController();
  const { signal } = options;
  const onAbort = () =>
    controller.abort(
      new options.error(`Aborted reading the ${options.what}: ${describeReason(signal?.reason)}`, {
        cause: signal?.reason,
      }),
    );
  const timer = Number.isFinite(options.timeout)
    ? setTimeout(
      () =>
        controller.abort(
          new options.error(
            `Timed out reading the ${options.what} after ${options.timeout} ms (timeout)`,
          ),
        ),
      options.timeout,
    )
    : undefined;
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  let onStop = () => {};
  // A stalled network read or stream may never return: the race ends the call anyway.
  const stopped = new Promise<never>((_, reject) => {
    onStop = () => reject(controller.signal.reason);
    controller.signal.addEventListener("abort", onStop, { once: true });
  });
  stopped.catch(() => {});
  try {
    if (controller.signal.aborted) throw controller.signal.reason;
    return await Promise.race([read(source, options, controller.signal), stopped]);
  } catch (error) {
    if (controller.signal.aborted) throw controller.signal.reason;
    if (error instanceof options.error) throw error;
    throw new options.error(
      `Cannot read the ${options.what} ${describeSource(source)}: ${describeReason(error)}`,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    controller.signal.removeEventListener("abort", onStop);
  }
}

async function read(
  source: ByteSource,
  options: ReadBytesOptions,
  signal: AbortSignal,
): Promise<Uint8Array> {
  signal.throwIfAborted();
  if (source instanceof ReadableStream) return await readStream(source, undefined, options, signal);
  if (source instanceof Response) return await readResponse(source, options, signal);
  const url = source instanceof URL
    ? source
    : /^[a-z][a-z0-9+.-]*:\/\//i.test(source)
    ? new URL(source)
    : undefined;
  if (url === undefined || url.protocol === "file:") {
    const path = url ?? (source as string);
    // Stat first: opening a FIFO waits for a writer in a call nothing can cancel, and that
    // pending call would keep the process alive after the timeout. A path Deno cannot stat
    // is left to the open, which names the problem.
    if (await Deno.stat(path).then((info) => info.isFifo, () => false)) {
      throw fifoError(source, options);
    }
    const file = await Deno.open(path, { read: true });
    let length: number | undefined;
    try {
      const info = await file.stat();
      if (info.isDirectory) throw new options.error(`Expected a file, got the directory ${source}`);
      // Made a FIFO since the stat: its reads may never end either.
      if (info.isFifo) throw fifoError(source, options);
      // A regular file's size is known; devices report 0 and are read to the limit.
      length = info.isFile && info.size > 0 ? info.size : undefined;
      if (length !== undefined && length > options.maxBytes) throw tooLarge(length, options);
    } catch (error) {
      file.close();
      throw error;
    }
    if (length !== undefined) return await readFile(file, length, options, signal);
    return await readStream(file.readable, length, options, signal);
  }
  return await readResponse(await fetch(url, { signal }), options, signal);
}

async function readResponse(
  response: Response,
  options: ReadBytesOptions,
  signal: AbortSignal,
): Promise<Uint8Array> {
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    throw new options.error(
      `Could not download the ${options.what} from ${response.url || "the response"}: HTTP ` +
        `${response.status} ${response.statusText}, expected 200 OK`,
    );
  }
  if (!response.body) return new Uint8Array(0);
  // Content-Length counts encoded bytes, so it sizes the buffer only without Content-Encoding.
  const length = response.headers.get("content-encoding")
    ? undefined
    : Number(response.headers.get("content-length") ?? NaN);
  const known = Number.isSafeInteger(length) ? length : undefined;
  if (known !== undefined && known > options.maxBytes) {
    await response.body.cancel().catch(() => {});
    throw tooLarge(known, options);
  }
  return await readStream(response.body, known, options, signal);
}

/** Reads a stream into one buffer, preallocated when `length` is known (to 256 MiB), grown by doubling otherwise. */
async function readStream(
  stream: ReadableStream<Uint8Array>,
  length: number | undefined,
  options: ReadBytesOptions,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const { maxBytes } = options;
  const reader = stream.getReader();
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    // A declared length sizes the buffer up to 256 MiB: a server may claim 2 GB and send nothing.
    let buffer = new Uint8Array(Math.min(length ?? 1 << 16, maxBytes, MAX_PREALLOCATION));
    let size = 0;
    while (true) {
      signal.throwIfAborted();
      const { done, value } = await Promise.race([reader.read(), aborted]);
      if (done) break;
      if (!(value instanceof Uint8Array)) {
        throw new options.error(
          `Expected the ${options.what} stream to yield Uint8Array chunks, got ${typeof value}`,
        );
      }
      if (size + value.length > maxBytes) throw tooLarge(size + value.length, options);
      if (size + value.length > buffer.length) {
        const grown = new Uint8Array(
          Math.min(maxBytes, Math.max(2 * buffer.length, size + value.length)),
        );
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(value, size);
      size += value.length;
    }
    return buffer.subarray(0, size);
  } catch (error) {
    // Not awaited: cancelling a source whose read is stuck (a terminal) would wait for that read.
    reader.cancel().catch(() => {});
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

/**
 * Reads a regular file of `length` bytes (its size when opened) straight into
 * one buffer, a byte longer so that the end is seen without another buffer: a
 * file that grew since grows it by doubling, up to `maxBytes`. Without the
 * stream's chunks this costs half the CPU time (0.19 against 0.41 ms per
 * 134 KB photo, timer and abort handling included). Closes the file.
 */
async function readFile(
  file: Deno.FsFile,
  length: number,
  options: ReadBytesOptions,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const { maxBytes } = options;
  try {
    let buffer = new Uint8Array(Math.min(length, maxBytes, MAX_PREALLOCATION) + 1);
    let size = 0;
    while (true) {
      signal.throwIfAborted();
      if (size === buffer.length) {
        if (size > maxBytes) throw tooLarge(size, options);
        const grown = new Uint8Array(Math.min(maxBytes + 1, 2 * buffer.length));
        grown.set(buffer);
        buffer = grown;
      }
      const count = await file.read(buffer.subarray(size));
      if (count === null) break;
      size += count;
    }
    signal.throwIfAborted();
    if (size > maxBytes) throw tooLarge(size, options);
    return buffer.subarray(0, size);
  } finally {
    file.close();
  }
}

/** The error for a path that names a FIFO. */
function fifoError(source: ByteSource, { what, error, instead }: ReadBytesOptions) {
  return new error(
    `Expected the ${what} ${describeSource(source)} to be a regular file or a device, got a ` +
      `FIFO: opening or reading it waits for a writer, a wait that outlasts the timeout and ` +
      `keeps the process alive; ${
        instead ?? "read it yourself and pass the bytes as a ReadableStream or a Response"
      }`,
  );
}

function tooLarge(size: number, { what, maxBytes, error }: ReadBytesOptions) {
  const name = what[0].toUpperCase() + what.slice(1);
  return new error(`${name} of ${size} bytes or more exceeds maxBytes (${maxBytes})`);
}

function describeSource(source: ByteSource): string {
  if (typeof source === "string") return JSON.stringify(source);
  if (source instanceof URL) return source.href;
  return source instanceof Response ? "from the response" : "from the stream";
}

function describeReason(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
