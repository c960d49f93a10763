/**
 * Pretrained weights on first use, as `torch.hub` and transformers.js fetch
 * them: downloaded once from their published URL into a cache directory,
 * checked against the SHA-256 prefix in the file name
 * (`googlenet-1378be20.pth`), written to a temporary file and renamed, so the
 * cache never holds a partial or corrupt file. A progress bar is drawn on
 * stderr only when stderr is a terminal.
 *
 * Needs Deno's `--allow-env` (to find the cache), `--allow-read`,
 * `--allow-write` (the cache) and `--allow-net` (the download).
 *
 * @module
 */

import { DownloadError } from "../errors.ts";

/**
 * The published pretrained weights, by name: torchvision's ImageNet GoogLeNet
 * (`torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1`), 52 MB, a legacy-format
 * `.pth` whose state dict loads into `GoogLeNet.create({ variant: "torchvision", auxLogits: false })`.
 *
 * @example
 * ```ts
 * import { PRETRAINED_WEIGHTS } from "./hub.ts";
 * console.log(PRETRAINED_WEIGHTS.torchvision); // "https://download.pytorch.org/models/googlenet-1378be20.pth"
 * ```
 */
export const PRETRAINED_WEIGHTS: Readonly<Record<"torchvision", string>> = {
  torchvision: "https://download.pytorch.org/models/googlenet-1378be20.pth",
};

/**
 * Environment variable that replaces the cache directory.
 *
 * @example
 * ```ts
 * import { CACHE_ENV, cacheDir } from "./hub.ts";
 * console.log(cacheDir({ env: (name) => name === CACHE_ENV ? "/data/w" : undefined })); // "/data/w"
 * ```
 */
export const CACHE_ENV = "GOOGLENET_WASM_CACHE";
/**
 * Environment variable that replaces the URL of {@linkcode pretrainedWeights}
 * (a mirror, or a local server in tests).
 *
 * @example
 * ```ts
 * import { WEIGHTS_URL_ENV } from "./hub.ts";
 * console.log(WEIGHTS_URL_ENV); // "GOOGLENET_WASM_WEIGHTS_URL"
 * ```
 */
export const WEIGHTS_URL_ENV = "GOOGLENET_WASM_WEIGHTS_URL";

/** Where {@linkcode cacheDir} looks: injectable for tests; defaults to this process. */
export interface CacheDirOptions {
  /** The operating system (default `Deno.build.os`). */
  os?: typeof Deno.build.os;
  /** Reads an environment variable (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
}

/**
 * The directory where downloaded weights are kept: `$GOOGLENET_WASM_CACHE`
 * when set, otherwise the platform's cache folder plus `googlenet-wasm`:
 * `$XDG_CACHE_HOME` or `~/.cache` on Linux and other Unixes,
 * `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows.
 *
 * @param options The operating system and environment to use.
 * @returns An absolute path (not created).
 * @throws {DownloadError} When neither the variables nor a home directory are set.
 *
 * @example
 * ```ts
 * import { cacheDir } from "./hub.ts";
 * const env = { HOME: "/home/ada" } as Record<string, string>;
 * console.log(cacheDir({ os: "linux", env: (name) => env[name] })); // "/home/ada/.cache/googlenet-wasm"
 * ```
 */
export function cacheDir(options: CacheDirOptions = {}): string {
  const os = options.os ?? Deno.build.os;
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const set = (name: string) => env(name) || undefined; // An empty variable counts as unset.
  const override = set(CACHE_ENV);
  if (override) return override;
  const home = set(os === "windows" ? "USERPROFILE" : "HOME");
  const join = (...parts: string[]) => parts.join(os === "windows" ? "\\" : "/");
  let base: string | undefined;
  if (os === "windows") {
    base = set("LOCALAPPDATA") ?? (home && join(home, "AppData", "Local"));
  } else if (os === "darwin") {
    base = home && join(home, "Library", "Caches");
  } else {
    base = set("XDG_CACHE_HOME") ?? (home && join(home, ".cache"));
  }
  if (!base) {
    throw new DownloadError(
      `Cannot find a cache directory: set ${CACHE_ENV} (or ${
        os === "windows" ? "LOCALAPPDATA" : "HOME"
      })`,
    );
  }
  return join(base, "googlenet-wasm");
}

/** Options of {@linkcode downloadWeights} and {@linkcode pretrainedWeights}. */
export interface DownloadOptions {
  /** Where files are kept (default {@linkcode cacheDir}`()`). */
  cacheDir?: string;
  /** Cancels the download; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Milliseconds to wait for the server's answer, and then between two parts
   * of the body, before giving up (default 30,000).
   */
  timeout?: number;
  /**
   * Progress: `true` draws a bar on stderr, `false` nothing, a function is
   * called with the bytes received and the total (when known). Default: a
   * bar when stderr is a terminal.
   */
  progress?: boolean | ((received: number, total: number | undefined) => void);
  /** Largest file accepted, in bytes (default 1 GiB). */
  maxBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BYTES = 2 ** 30;
/** torchvision's `HASH_REGEX`: the hex digits between the last `-` and the extension. */
const HASH_PREFIX = /-([a-f0-9]+)\.[^./]*$/;

/**
 * The path of the file at `url` in the cache, downloaded first if it is not
 * there. The SHA-256 of the download must start with the hex digits after
 * the last `-` of the file name (torchvision's convention: `googlenet-1378be20.pth`);
 * a file name without them is not checked. The bytes are written to a
 * temporary file in the cache directory and renamed once verified.
 *
 * @param url An `http:` or `https:` URL.
 * @param options Cache directory, cancellation, timeout, progress and size limit.
 * @returns The absolute path of the cached file.
 * @throws {DownloadError} When the network or the server fails (with the reason), no answer
 *   comes within `timeout`, the file exceeds `maxBytes`, or its hash does not match.
 *
 * @example
 * ```ts
 * import { downloadWeights } from "./hub.ts";
 * const server = Deno.serve({ port: 0, onListen() {} }, () => new Response("weights"));
 * const url = `http://localhost:${server.addr.port}/w.bin`; // No hash in the name: not checked.
 * const path = await downloadWeights(url, { cacheDir: await Deno.makeTempDir() });
 * console.log(await Deno.readTextFile(path)); // "weights"
 * await server.shutdown();
 * ```
 */
export async function downloadWeights(
  url: string | URL,
  options: DownloadOptions = {},
): Promise<string> {
  const href = new URL(url);
  const name = decodeURIComponent(href.pathname.split("/").at(-1) ?? "");
  if (!/^https?:$/.test(href.protocol) || !name || name.includes("\\")) {
    throw new DownloadError(
      `Cannot download ${href}: expected an http: or https: URL that ends in a file name`,
    );
  }
  const dir = options.cacheDir ?? cacheDir();
  const path = `${dir}/${name}`;
  try {
    if ((await Deno.stat(path)).isFile) return path;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const bytes = await fetchBytes(href, options);
  const expected = HASH_PREFIX.exec(name)?.[1];
  if (expected) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const actual = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    if (!actual.startsWith(expected)) {
      throw new DownloadError(
        `Downloaded ${href} has SHA-256 ${actual}, expected one starting with ${expected} ` +
          "(the hash in its name): the file was not saved",
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  const temporary = await Deno.makeTempFile({ dir, prefix: `${name}.`, suffix: ".part" });
  try {
    await Deno.writeFile(temporary, bytes);
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  return path;
}

/**
 * The path of published pretrained weights in the cache, downloaded on first
 * use (see {@linkcode downloadWeights}). The URL is
 * {@linkcode PRETRAINED_WEIGHTS}`[name]`, or `$GOOGLENET_WASM_WEIGHTS_URL`
 * when set (a mirror, or a local server in tests).
 *
 * @param name Which weights (`"torchvision"`).
 * @param options Cache directory, cancellation, timeout, progress and size limit.
 * @returns The absolute path of the cached file.
 * @throws {DownloadError} As {@linkcode downloadWeights}.
 *
 * @example
 * ```ts
 * import { pretrainedWeights } from "./hub.ts";
 * // Without the variable: torchvision's file, into ~/.cache/googlenet-wasm/ on Linux. Here a mirror:
 * const server = Deno.serve({ port: 0, onListen() {} }, () => new Response("not weights"));
 * Deno.env.set("GOOGLENET_WASM_WEIGHTS_URL", `http://localhost:${server.addr.port}/googlenet.pth`);
 * const path = await pretrainedWeights("torchvision", { cacheDir: await Deno.makeTempDir() });
 * console.log(path.endsWith("/googlenet.pth")); // true
 * Deno.env.delete("GOOGLENET_WASM_WEIGHTS_URL");
 * await server.shutdown();
 * ```
 */
export async function pretrainedWeights(
  name: keyof typeof PRETRAINED_WEIGHTS = "torchvision",
  options: DownloadOptions = {},
): Promise<string> {
  if (!Object.hasOwn(PRETRAINED_WEIGHTS, name)) {
    throw new DownloadError(
      `Unknown pretrained weights "${name}": expected ${
        Object.keys(PRETRAINED_WEIGHTS).map((k) => `"${k}"`).join(", ")
      }`,
    );
  }
  return await downloadWeights(Deno.env.get(WEIGHTS_URL_ENV) || PRETRAINED_WEIGHTS[name], options);
}

/** Fetches `url` into one buffer, aborting after `timeout` ms without an answer or data. */
async function fetchBytes(url: URL, options: DownloadOptions): Promise<Uint8Array<ArrayBuffer>> {
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const idle = new AbortController();
  let timer = setTimeout(() => idle.abort(), timeout);
  const rearm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(), timeout);
  };
  const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
  const fail = (error: unknown): never => {
    if (options.signal?.aborted) throw options.signal.reason;
    if (idle.signal.aborted) {
      throw new DownloadError(
        `Could not download ${url}: no data from the server for ${timeout / 1000} s`,
      );
    }
    if (error instanceof DownloadError) throw error;
    throw new DownloadError(`Could not download ${url}: ${reason(error)}`, { cause: error });
  };
  const report = progressReporter(url, options.progress);
  try {
    const response = await fetch(url, { signal }).catch(fail);
    if (!response.ok) {
      await response.body?.cancel();
      throw new DownloadError(
        `Could not download ${url}: HTTP ${response.status} ${response.statusText}, expected 200 OK`,
      );
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    const total = !response.headers.get("content-encoding") && Number.isSafeInteger(length)
      ? length
      : undefined;
    const tooLarge = (size: number) =>
      new DownloadError(
        `Could not download ${url}: ${size} bytes or more exceeds maxBytes (${maxBytes})`,
      );
    if (total !== undefined && total > maxBytes) throw tooLarge(total);
    let buffer = new Uint8Array(total ?? 1 << 20);
    let size = 0;
    report(0, total);
    const reader = response.body!.getReader();
    while (true) {
      rearm();
      const { done, value } = await reader.read().catch(fail);
      if (done) break;
      if (size + value.length > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(size + value.length);
      }
      if (size + value.length > buffer.length) {
        const grown = new Uint8Array(
          Math.min(maxBytes, Math.max(2 * buffer.length, size + value.length)),
        );
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(value, size);
      size += value.length;
      report(size, total);
    }
    if (total !== undefined && size !== total) {
      throw new DownloadError(
        `Could not download ${url}: the connection ended after ${size} of ${total} bytes`,
      );
    }
    report(size, total, true);
    return buffer.subarray(0, size);
  } catch (error) {
    return fail(error);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The most specific part of a fetch error: its deepest cause, without the
 * URL ("dns error: failed to lookup address information: Name or service not known").
 */
function reason(error: unknown): string {
  let deepest = error;
  while (deepest instanceof Error && deepest.cause instanceof Error) deepest = deepest.cause;
  const message = deepest instanceof Error ? deepest.message : String(deepest);
  return message.replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/^client error \(Connect\): /, "");
}

type Reporter = (received: number, total: number | undefined, done?: boolean) => void;

function progressReporter(url: URL, progress: DownloadOptions["progress"]): Reporter {
  if (typeof progress === "function") return (received, total) => progress(received, total);
  if (!(progress ?? Deno.stderr.isTerminal())) return () => {};
  const name = url.pathname.split("/").at(-1);
  const encoder = new TextEncoder();
  let last = 0;
  return (received, total, done = false) => {
    const now = Date.now();
    if (!done && now - last < 100 && received !== 0) return;
    last = now;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    let line = `Downloading ${name}: ${mb(received)} MB`;
    if (total) {
      const width = 30;
      const filled = Math.round((width * received) / total);
      line = `Downloading ${name} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ` +
        `${Math.floor((100 * received) / total)}% ${mb(received)}/${mb(total)} MB`;
    }
    Deno.stderr.writeSync(encoder.encode(`\r${line}${done ? "\n" : ""}`));
  };
}
