/**
 * `torch.utils.data.DataLoader` for Deno: batches of transformed samples,
 * shuffled per epoch with a seed, decoded and augmented in a pool of workers
 * a few batches ahead of the training loop.
 *
 * @module
 */

import { DatasetError, GoogLeNetError, OptionError } from "../errors.ts";
import { checkDecodeOptions, DECODE_OPTION_KEYS, type DecodeOptions } from "../image/decode.ts";
import type { PixelData } from "../image/pixels.ts";
import { Tensor } from "../tensor.ts";
import { type BatchItem, type BatchResult, transformBatch } from "./batch.ts";
import { checkDataset, type Dataset } from "./dataset.ts";
import type { SkippedFile } from "./image_folder.ts";
import { checkSeed, mixSeed, Random } from "./random.ts";
import {
  CenterCrop,
  Compose,
  Normalize,
  RandomHorizontalFlip,
  RandomResizedCrop,
  Resize,
  ToTensor,
  type Transform,
  transformFromSpec,
} from "./transforms.ts";
import { checkTimeout } from "../read_bytes.ts";
import { checkBoolean, checkInteger, checkOptions, describeValue } from "../validate.ts";
import { webWorker } from "../web_worker.ts";

/** A batch: the stacked inputs and their labels. */
export interface Batch {
  /** `[B, 3, H, W]` float32 inputs, NCHW. */
  readonly input: Tensor;
  /** Class index per sample. */
  readonly labels: Int32Array;
  /** Data set index per sample. */
  readonly indices: Int32Array;
  /**
   * The batch's position in its epoch, from 0 to `loader.length - 1` (a batch
   * whose samples were all skipped is not yielded, but keeps its position).
   */
  readonly batchIndex: number;
}

/** Options of {@linkcode DataLoader}. */
export interface DataLoaderOptions {
  /**
   * The pipeline applied to each decoded image; it must end in a `[3, H, W]`
   * tensor of one size. Workers rebuild it from its `spec`, so only the
   * built-in transforms (and `Compose` of them) run there: any other transform
   * runs on the calling thread when `workers` is left out, and is an
   * `OptionError` with `workers` above 0.
   */
  transform: Transform;
  /** Samples per batch. @default {1} */
  batchSize?: number;
  /** Visit the samples in a new seeded order each epoch. @default {false} */
  shuffle?: boolean;
  /**
   * Seed of the shuffles and of every sample's augmentation, an integer from
   * -(2^31) to 2^32 - 1 (one 32-bit word: -1 is 4294967295).
   * @default {0}
   */
  seed?: number;
  /** Leave out the last batch when it is smaller than `batchSize`. @default {false} */
  dropLast?: boolean;
  /**
   * Worker threads that decode and augment; 0 does it on the calling thread.
   * At most `max(8, 2 * navigator.hardwareConcurrency)`: each worker is a V8
   * isolate, and more than the cores add memory, not speed. Workers left
   * without work for {@linkcode LOADER_IDLE_MS} end (so that a loader whose
   * iterator is abandoned does not keep the process alive) and restart on the
   * next request.
   *
   * @default {Math.min(2, navigator.hardwareConcurrency)}, 0 for a transform that is not built in
   */
  workers?: number;
  /** Batches in flight ahead of the consumer. @default {2 * max(1, workers)} */
  prefetch?: number;
  /** Keep the workers between epochs (then call `close()`), as PyTorch's `persistent_workers`. @default {false} */
  persistentWorkers?: boolean;
  /**
   * Create the workers without any permission (`deno: { permissions: "none" }`;
   * they only receive bytes). Needs Deno's `--unstable-worker-options` (or
   * `"unstable": ["worker-options"]` in deno.json): where the command line can
   * be read (`--allow-all`, or `--allow-run=ps`) and the feature is off, the
   * constructor throws an `OptionError` instead of letting Deno end the process
   * (exit code 70); elsewhere Deno's own check stands.
   *
   * @default {false}
   */
  sandbox?: boolean;
  /**
   * Longest time a worker with work may go without finishing a sample before
   * the iteration fails (a worker that ended silently, or hangs), in ms.
   *
   * @default {60_000}
   */
  timeout?: number;
  /** Decoding limits. */
  decode?: DecodeOptions;
  /** Called once per sample that could not be read or decoded (it is left out of its batch). */
  onSkip?: (file: SkippedFile) => void;
}

interface Pending {
  resolve(result: BatchResult): void;
  reject(error: Error): void;
  worker: number;
}

/**
 * How long a loader's workers may go without work before they end (a live
 * Deno worker keeps the process alive, so an iterator that is only peeked
 * must not); the next request starts new ones. As the thread pool's `IDLE_MS`.
 */
export const LOADER_IDLE_MS = 1000;

/** The option names {@linkcode DataLoader} accepts. */
const OPTION_NAMES = [
  "transform",
  "batchSize",
  "shuffle",
  "seed",
  "dropLast",
  "workers",
  "prefetch",
  "persistentWorkers",
  "sandbox",
  "timeout",
  "decode",
  "onSkip",
] as const;

/** The transforms a worker can rebuild from their spec (exact classes: a subclass's own code would not run there). */
const BUILT_IN: readonly (abstract new (...args: never[]) => Transform)[] = [
  RandomResizedCrop,
  RandomHorizontalFlip,
  Resize,
  CenterCrop,
  ToTensor,
  Normalize,
];

/** Why `transform` cannot run in a worker, or `undefined` when it can. */
function notForWorkers(transform: Transform): string | undefined {
  const proto = Object.getPrototypeOf(transform);
  if (proto === Compose.prototype) {
    for (const step of (transform as Compose).transforms) {
      const why = notForWorkers(step);
      if (why !== undefined) return why;
    }
  } else if (!BUILT_IN.some((type) => proto === type.prototype)) {
    return `${describeValue(transform)} is not one of the built-in transforms`;
  }
  try {
    transformFromSpec(transform.spec);
  } catch (error) {
    return `its spec cannot be rebuilt: ${(error as Error).message}`;
  }
  return undefined;
}

/**
 * Whether Deno's worker-options feature (`--unstable-worker-options`, or
 * `"unstable": ["worker-options"]` in a config file) is on: `false` when the
 * command line can be read and neither is found, `undefined` when it cannot be
 * told. Creating a worker with `deno.permissions` without the feature ends the
 * process (exit code 70), which no `try` catches, and no API says whether it
 * is on. The command line comes from `/proc/self/cmdline` (Linux; Deno allows
 * it only under `--allow-all`), else from `ps` where running it is allowed.
 */
function workerOptionsEnabled(): boolean | undefined {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno?.permissions?.querySync === undefined) return undefined;
  const granted = (descriptor: Deno.PermissionDescriptor) => {
    try {
      return deno.permissions.querySync(descriptor).state === "granted";
    } catch {
      return false;
    }
  };
  const read = (path: string) => {
    try {
      return granted({ name: "read", path }) ? deno.readTextFileSync(path) : undefined;
    } catch {
      return undefined;
    }
  };
  let args = read("/proc/self/cmdline")?.split("\0").filter((arg) => arg !== "");
  if (
    args === undefined && deno.build.os !== "windows" && granted({ name: "run", command: "ps" })
  ) {
    try {
      const { success, stdout } = new Deno.Command("ps", {
        args: ["-ww", "-o", "args=", "-p", String(deno.pid)],
        stdout: "piped",
        stderr: "null",
      }).outputSync();
      if (success) args = new TextDecoder().decode(stdout).trim().split(/\s+/);
    } catch {
      // no ps
    }
  }
  if (args === undefined) return undefined;
  // A compiled program carries its flags inside: nothing to read.
  if (!/^deno(\.exe)?$/.test((args[0] ?? "").split("/").pop()!)) return undefined;
  if (args.some((arg) => arg === "--unstable-worker-options" || arg === "--unstable")) return true;
  if (args.includes("--no-config")) return false;
  // Config files: the one named by --config, and deno.json(c) above the working
  // folder and the main module (wherever Deno may have found one).
  const configs: string[] = [];
  args.forEach((arg, i) => {
    if (arg === "--config" || arg === "-c") configs.push(args[i + 1] ?? "");
    else if (arg.startsWith("--config=")) configs.push(arg.slice("--config=".length));
  });
  const dirs: string[] = [];
  let unsure = false;
  try {
    dirs.push(deno.cwd());
  } catch {
    unsure = true; // no read permission for the working folder
  }
  if (deno.mainModule?.startsWith("file:")) {
    dirs.push(decodeURIComponent(new URL(".", deno.mainModule).pathname));
  }
  for (let dir of dirs) {
    for (;;) {
      dir = dir.replace(/\/+$/, "");
      configs.push(`${dir}/deno.json`, `${dir}/deno.jsonc`);
      if (dir === "") break;
      dir = dir.slice(0, dir.lastIndexOf("/"));
    }
  }
  for (const path of configs) {
    if (!granted({ name: "read", path })) unsure = true;
    else if (/["']worker-options["']/.test(read(path) ?? "")) return true;
  }
  return unsure ? undefined : false;
}

/** The last epoch a loader runs: the epoch is one 32-bit word of the shuffle and augmentation seeds. */
const MAX_EPOCH = 2 ** 32 - 1;

/**
 * Checks an epoch number: an integer from 0 to 2^32 - 1. Seeds take the
 * epoch's low 32 bits, so epoch 2^32 would repeat epoch 0's order and
 * augmentation; it is refused instead.
 */
function checkEpoch(epoch: unknown): number {
  return checkInteger("epoch", epoch, { min: 0, max: MAX_EPOCH });
}

/** The workers of one loader and the requests they owe. */
class Pool {
  readonly workers: Worker[] = [];
  readonly pending = new Map<number, Pending>();
  failure: Error | undefined;
  #next = 0;
  #closed = false;
  readonly #size: number;
  readonly #transform: Transform;
  readonly #options: DataLoaderOptions;
  readonly #timeout: number;
  /** Samples each worker has finished (a worker bumps its slot), where SharedArrayBuffer exists. */
  readonly #progress: Int32Array | undefined;
  /** Per worker: the progress count last seen and when it last moved. */
  readonly #seen: { count: number; at: number }[] = [];
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #lastUsed = 0;

  constructor(count: number, transform: Transform, options: DataLoaderOptions) {
    this.#size = count;
    this.#transform = transform;
    this.#options = options;
    this.#timeout = checkTimeout(options.timeout, 60_000);
    this.#progress = typeof SharedArrayBuffer === "function"
      ? new Int32Array(new SharedArrayBuffer(4 * count))
      : undefined;
    this.#start();
  }

  /** Starts the workers (again, after they ended idle). */
  #start(): void {
    const options = this.#options;
    const url = new URL("./loader_worker.ts", import.meta.url);
    this.#seen.length = 0;
    for (let k = 0; k < this.#size; k++) {
      const worker = new (webWorker()!)(
        url,
        options.sandbox
          ? { type: "module", deno: { permissions: "none" } } as WorkerOptions
          : { type: "module" },
      );
      worker.onmessage = (event) => this.#answer(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.fail(new DatasetError(`Loader worker ${k} died: ${event.message}`));
      };
      worker.onmessageerror = () => {
        this.fail(new DatasetError(`Loader worker ${k} sent a message that cannot be read`));
      };
      worker.postMessage({
        type: "init",
        transform: this.#transform.spec,
        decode: options.decode ?? {},
        progress: this.#progress,
        slot: k,
      });
      this.workers.push(worker);
      this.#seen.push({ count: this.#count(k), at: 0 });
    }
    this.#touch();
  }

  /**
   * Notes a use and arms the idle timer: workers without a request for
   * {@linkcode LOADER_IDLE_MS} end (the timer does not keep the process alive).
   */
  #touch(): void {
    this.#lastUsed = performance.now();
    if (this.#idleTimer !== undefined) return;
    const check = (delay: number) => {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = undefined;
        if (this.workers.length === 0) return;
        const idle = performance.now() - this.#lastUsed;
        if (this.pending.size === 0 && idle >= LOADER_IDLE_MS) this.#end();
        else check(Math.max(1, LOADER_IDLE_MS - idle));
      }, delay);
      const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
      deno?.unrefTimer?.(this.#idleTimer as unknown as number);
    };
    check(LOADER_IDLE_MS);
  }

  /** Ends the workers; the next request starts new ones. */
  #end(): void {
    for (const worker of this.workers) worker.terminate();
    this.workers.length = 0;
    this.#stopWatchdog();
  }

  run(worker: number, items: BatchItem[]): Promise<BatchResult> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.#closed) return Promise.reject(new DatasetError("The loader's workers were closed"));
    if (this.workers.length === 0) this.#start();
    this.#touch();
    const id = this.#next++;
    const transfer = items.map((item) =>
      (item.source instanceof Uint8Array ? item.source : item.source.data).buffer as ArrayBuffer
    );
    return new Promise((resolve, reject) => {
      if (![...this.pending.values()].some((p) => p.worker === worker)) {
        this.#seen[worker] = { count: this.#count(worker), at: performance.now() };
      }
      this.pending.set(id, { resolve, reject, worker });
      this.workers[worker].postMessage({ type: "batch", id, items }, transfer);
      this.#watchdog ??= setInterval(() => this.#watch(), Math.min(1000, this.#timeout / 4));
    });
  }

  #count(worker: number): number {
    return this.#progress === undefined ? 0 : Atomics.load(this.#progress, worker);
  }

  /** Fails the pool when a worker with work has finished no sample for `timeout` ms. */
  #watch(): void {
    const now = performance.now();
    const busy = new Set([...this.pending.values()].map((p) => p.worker));
    for (const worker of busy) {
      const count = this.#count(worker);
      const seen = this.#seen[worker];
      if (count !== seen.count) this.#seen[worker] = { count, at: now };
      else if (now - seen.at > this.#timeout) {
        this.fail(
          new DatasetError(
            `Loader worker ${worker} finished no sample in ${this.#timeout} ms (timeout): it ended or hangs`,
          ),
        );
        return;
      }
    }
  }

  #answer(message: { type: string; id: number; name?: string; message?: string } & BatchResult) {
    const pending = this.pending.get(message.id);
    if (pending === undefined) return;
    this.pending.delete(message.id);
    this.#touch();
    this.#seen[pending.worker] = { count: this.#count(pending.worker), at: performance.now() };
    if (this.pending.size === 0) this.#stopWatchdog();
    if (message.type === "done") pending.resolve(message);
    else {
      pending.reject(
        new DatasetError(`Loader worker failed: ${message.name}: ${message.message}`),
      );
    }
  }

  #stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  /** Rejects every request with `error` and stops the workers. */
  fail(error: Error): void {
    this.failure ??= error;
    for (const [id, pending] of this.pending) {
      pending.reject(this.failure);
      this.pending.delete(id);
    }
    this.close();
  }

  close(): void {
    this.#closed = true;
    this.#end();
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }
}

/**
 * Iterates over a data set in batches, like `torch.utils.data.DataLoader`:
 * each `for await` is one epoch; with `shuffle` each epoch visits the samples
 * in a new order drawn from `(seed, epoch)`. Every sample's augmentation uses
 * `new Random(mixSeed(seed, epoch, index))`, so a seed gives the same batches
 * whatever the number of workers.
 *
 * Files are read on the calling thread and decoded and transformed in
 * `workers` Deno workers (transferred bytes in, a transferred `Float32Array`
 * out; each batch split among them), `prefetch` batches ahead. A sample that cannot be read or decoded is
 * left out of its batch and reported (`skipped`, `onSkip`); a transform that
 * throws, or a worker that dies or stops answering, rejects the iteration with
 * a `DatasetError` and stops the workers.
 *
 * @example
 * ```ts
 * import { DataLoader } from "./loader.ts";
 * import { IdxDataset } from "./idx.ts";
 * import { trainTransform } from "./transforms.ts";
 * const dataset = new IdxDataset({
 *   images: { dtype: "uint8", shape: [5, 4, 4], data: new Uint8Array(80) },
 *   labels: { dtype: "uint8", shape: [5], data: new Uint8Array([0, 1, 2, 3, 4]) },
 * });
 * const loader = new DataLoader(dataset, {
 *   transform: trainTransform("flip", { size: 8 }),
 *   batchSize: 2,
 *   shuffle: true,
 *   workers: 0,
 * });
 * for await (const { input, labels } of loader) console.log(input.shape, labels.length);
 * // [2, 3, 8, 8] 2, [2, 3, 8, 8] 2, [1, 3, 8, 8] 1
 * ```
 */
export class DataLoader implements AsyncIterable<Batch> {
  /** The data set. */
  readonly dataset: Dataset;
  /** Samples per batch. */
  readonly batchSize: number;
  /** Worker threads (0: the calling thread). */
  readonly workers: number;
  readonly #options: DataLoaderOptions;
  readonly #prefetch: number;
  readonly #skipped = new Map<string, SkippedFile>();
  #epoch = 0;
  /** The batch the next iteration starts at (set by `seek`, back to 0 once it starts). */
  #startBatch = 0;
  #pool: Pool | undefined;

  /**
   * Creates the loader (workers start with the first epoch).
   *
   * @param dataset The data set.
   * @param options Transform, batching, shuffling and workers.
   * @throws {OptionError} When an option is invalid.
   */
  constructor(dataset: Dataset, options: DataLoaderOptions) {
    const given = checkOptions("DataLoader", options, OPTION_NAMES);
    checkDataset(dataset);
    const { transform } = given;
    if (typeof transform?.apply !== "function") {
      throw new OptionError(
        `Expected a transform (for example trainTransform("torchvision")), got ${
          describeValue(transform)
        }`,
      );
    }
    this.dataset = dataset;
    this.batchSize = checkInteger("batchSize", given.batchSize, { min: 1, default: 1 });
    const cores = webWorker() !== undefined ? navigator.hardwareConcurrency ?? 1 : 0;
    // Each worker is a V8 isolate (tens of MB): more than twice the cores add memory, not speed.
    const maxWorkers = Math.max(8, 2 * cores);
    if (given.workers !== undefined) {
      checkInteger("workers", given.workers, { min: 0 });
      if (given.workers > maxWorkers) {
        throw new OptionError(
          `Expected workers to be an integer from 0 to ${maxWorkers} (twice the ${cores} cores, ` +
            `at least 8: more workers than cores add memory, not speed), got ${given.workers}`,
        );
      }
    }
    // Workers rebuild the transform from its spec, so only the built-in transforms run there;
    // any other runs on the calling thread (the default), or is refused with workers > 0.
    const custom = notForWorkers(transform);
    if (custom !== undefined && (given.workers ?? 0) > 0) {
      throw new OptionError(
        `Expected workers: 0 with this transform (${custom}): loader workers run only the ` +
          `built-in transforms (RandomResizedCrop, RandomHorizontalFlip, Resize, CenterCrop, ` +
          `ToTensor, Normalize, Compose of them); leave workers out or pass 0 to run it on ` +
          `the calling thread`,
      );
    }
    this.workers = given.workers ?? (custom === undefined ? Math.min(2, cores) : 0);
    if (this.workers > 0 && webWorker() === undefined) {
      throw new OptionError(
        `Expected workers: 0 in a runtime without Worker, got workers: ${this.workers}`,
      );
    }
    this.#prefetch = checkInteger("prefetch", given.prefetch, {
      min: 1,
      default: 2 * Math.max(1, this.workers),
    });
    checkSeed(given.seed, 0);
    checkTimeout(given.timeout, 60_000);
    for (const name of ["shuffle", "dropLast", "persistentWorkers", "sandbox"] as const) {
      checkBoolean(name, given[name], { default: false });
    }
    if (given.onSkip !== undefined && typeof given.onSkip !== "function") {
      throw new OptionError(`Expected onSkip to be a function, got ${describeValue(given.onSkip)}`);
    }
    if (
      given.decode !== undefined &&
      (typeof given.decode !== "object" || given.decode === null || Array.isArray(given.decode))
    ) {
      throw new OptionError(
        `Expected decode to be an object of decoding limits, got ${describeValue(given.decode)}`,
      );
    }
    // Checked and copied now: a bad limit would otherwise fail every sample's decode, each
    // reported as a skipped file, and a change to the caller's object would reach later batches.
    const decode = given.decode === undefined ? undefined : Object.freeze(
      checkDecodeOptions(checkOptions("DataLoader's decode", given.decode, DECODE_OPTION_KEYS)),
    );
    if (given.sandbox && this.workers > 0 && workerOptionsEnabled() === false) {
      throw new OptionError(
        "sandbox: true needs Deno's --unstable-worker-options flag (deno run " +
          '--unstable-worker-options ...), or "unstable": ["worker-options"] in deno.json; ' +
          "without it creating the workers would end the process. Pass the flag, or sandbox: false",
      );
    }
    this.#options = { ...given, decode };
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length / this.batchSize;
    return this.#options.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The epoch the next iteration runs (starts at 0, advances with each iteration). */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Sets the epoch the next iteration runs, from its first batch (to resume
   * inside an epoch, {@linkcode DataLoader.seek}).
   *
   * @param epoch An integer from 0 to 2^32 - 1.
   */
  set epoch(epoch: number) {
    this.#epoch = checkEpoch(epoch);
    this.#startBatch = 0;
  }

  /**
   * Makes the next iteration run epoch `epoch` from its batch `batch` on, to
   * resume training that stopped inside an epoch: the batches before `batch`
   * are not read, and the others hold the samples, in the order and with the
   * augmentation, that an iteration of the whole epoch gives them (the order
   * comes from `(seed, epoch)`, each sample's augmentation from
   * `(seed, epoch, index)`). The iterations after it start at batch 0.
   *
   * @param epoch The epoch, an integer from 0 to 2^32 - 1.
   * @param batch Batches of it already done: an integer from 0 to `length - 1` (0 when `length` is 0).
   * @throws {OptionError} When `epoch` or `batch` is out of range (the loader is left as it was).
   *
   * @example
   * ```ts
   * import { DataLoader } from "./loader.ts";
   * import { IdxDataset } from "./idx.ts";
   * import { validationTransform } from "./transforms.ts";
   * const dataset = new IdxDataset({
   *   images: { dtype: "uint8", shape: [5, 2, 2], data: new Uint8Array(20) },
   *   labels: { dtype: "uint8", shape: [5], data: new Uint8Array(5) },
   * });
   * const loader = new DataLoader(dataset, {
   *   transform: validationTransform({ size: 2 }),
   *   batchSize: 2,
   *   shuffle: true,
   *   workers: 0,
   * });
   * const whole = [];
   * for await (const { indices } of loader) whole.push([...indices]);
   * loader.seek(0, 1); // epoch 0 again, without its first batch
   * const rest = [];
   * for await (const { indices, batchIndex } of loader) rest.push([batchIndex, [...indices]]);
   * console.log(rest.length, rest[0][0], String(rest[0][1]) === String(whole[1])); // 2 1 true
   * console.log(loader.epoch); // 1
   * ```
   */
  seek(epoch: number, batch = 0): void {
    checkEpoch(epoch);
    const length = this.length;
    if (!Number.isSafeInteger(batch) || batch < 0 || batch >= Math.max(1, length)) {
      throw new OptionError(
        `Expected batch to be an integer from 0 to ${
          Math.max(0, length - 1)
        } (the epoch's ${length} ` +
          `batches of ${this.batchSize} of ${this.dataset.length} samples), got ${
            describeValue(batch)
          }`,
      );
    }
    this.#epoch = epoch;
    this.#startBatch = batch;
  }

  /** Samples left out so far because they could not be read or decoded (each file once). */
  get skipped(): SkippedFile[] {
    return [...this.#skipped.values()];
  }

  /**
   * The data set indices of an epoch, in visiting order.
   *
   * @param epoch The epoch, an integer from 0 to 2^32 - 1.
   * @returns The indices: `0..length-1`, shuffled by `(seed, epoch)` when `shuffle` is set.
   */
  order(epoch: number): Int32Array {
    checkEpoch(epoch);
    const order = Int32Array.from({ length: this.dataset.length }, (_, i) => i);
    if (this.#options.shuffle) {
      new Random(mixSeed(this.#options.seed ?? 0, epoch, 0x5eed)).shuffle(order);
    }
    return order;
  }

  /**
   * One epoch of batches.
   *
   * @returns An async iterator; breaking out of the loop stops the epoch's work.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    // Past epoch 2^32 - 1 this throws, and the loader stays at that epoch.
    const order = this.order(this.#epoch);
    const epoch = this.#epoch++;
    const start = this.#startBatch;
    this.#startBatch = 0;
    const batches: Int32Array[] = [];
    for (let at = 0; at < order.length; at += this.batchSize) {
      const batch = order.subarray(at, at + this.batchSize);
      if (batch.length === this.batchSize || !this.#options.dropLast) batches.push(batch);
    }
    if (this.workers > 0 && (this.#pool === undefined || this.#pool.failure !== undefined)) {
      this.#pool = new Pool(this.workers, this.#options.transform, this.#options);
    }
    const inflight: Promise<BatchResult>[] = [];
    let next = start;
    let position = start;
    const launch = () => {
      while (inflight.length < this.#prefetch && next < batches.length) {
        const promise = this.#load(batches[next], epoch, next);
        promise.catch(() => {}); // awaited in order below; this only silences early rejections
        inflight.push(promise);
        next++;
      }
    };
    try {
      launch();
      while (inflight.length > 0) {
        const result = await inflight.shift()!;
        const batchIndex = position++;
        launch();
        for (const file of result.skipped) this.#skip(file);
        if (result.labels.length === 0) continue;
        yield {
          input: new Tensor(result.data, result.shape),
          labels: result.labels,
          indices: result.indices,
          batchIndex,
        };
      }
    } finally {
      if (!this.#options.persistentWorkers || this.#pool?.failure !== undefined) this.close();
    }
  }

  /**
   * Stops the workers (a later epoch starts new ones).
   *
   * @example
   * ```ts
   * import { DataLoader } from "./loader.ts";
   * import { IdxDataset } from "./idx.ts";
   * import { validationTransform } from "./transforms.ts";
   * const dataset = new IdxDataset({
   *   images: { dtype: "uint8", shape: [1, 2, 2], data: new Uint8Array(4) },
   *   labels: { dtype: "uint8", shape: [1], data: new Uint8Array(1) },
   * });
   * const loader = new DataLoader(dataset, { transform: validationTransform({ size: 4 }), persistentWorkers: true });
   * for await (const batch of loader) console.log(batch.input.shape); // [1, 3, 4, 4]
   * loader.close();
   * ```
   */
  close(): void {
    this.#pool?.close();
    this.#pool = undefined;
  }

  #skip(file: SkippedFile): void {
    if (this.#skipped.has(file.path)) return;
    this.#skipped.set(file.path, file);
    this.#options.onSkip?.(file);
  }

  async #load(indices: Int32Array, epoch: number, batch: number): Promise<BatchResult> {
    const seed = this.#options.seed ?? 0;
    const skipped: SkippedFile[] = [];
    const raws = await Promise.all(
      Array.from(indices, async (index): Promise<BatchItem | undefined> => {
        const name = () => {
          try {
            return this.dataset.name?.(index) ?? `sample ${index}`;
          } catch {
            return `sample ${index}`;
          }
        };
        let raw;
        try {
          raw = await this.dataset.raw(index);
        } catch (error) {
          if (!(error instanceof GoogLeNetError) || error instanceof OptionError) {
            // Not a file that cannot be read: the data set itself is broken.
            throw new DatasetError(
              `Reading sample ${index} (${name()}) failed: ${
                error instanceof Error ? `${error.name}: ${error.message}` : describeValue(error)
              }`,
              { cause: error },
            );
          }
          skipped.push({ path: name(), reason: error.message });
          return undefined;
        }
        const classes = this.dataset.classes.length;
        if (!Number.isSafeInteger(raw?.label) || raw.label < 0 || raw.label >= classes) {
          throw new DatasetError(
            `Sample ${index} (${name()}) has label ${
              describeValue(raw?.label)
            }: expected an integer from 0 to ${classes - 1} (the data set's ${classes} classes)`,
          );
        }
        const source = raw.source as unknown;
        const pixels = source as PixelData | undefined;
        if (
          !(source instanceof Uint8Array) &&
          !(ArrayBuffer.isView(pixels?.data) && Number.isSafeInteger(pixels?.width) &&
            Number.isSafeInteger(pixels?.height))
        ) {
          throw new DatasetError(
            `Sample ${index} (${name()}) has source ${
              describeValue(source)
            }: expected PNG/JPEG bytes (a Uint8Array) or pixels ({ data, width, height })`,
          );
        }
        return {
          ...raw,
          source: ownBuffer(raw.source),
          index,
          seed: mixSeed(seed, epoch, index),
        };
      }),
    );
    const items = raws.filter((item): item is BatchItem => item !== undefined);
    let result: BatchResult;
    if (this.#pool === undefined) {
      try {
        result = transformBatch(items, this.#options.transform, this.#options.decode);
      } catch (error) {
        throw new DatasetError(`Loading batch ${batch} failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
    } else {
      // Each worker takes a contiguous share of the batch, so a batch is ready
      // in 1/workers of the time (the first batch of an epoch most of all).
      const pool = this.#pool;
      const share = Math.ceil(items.length / this.workers);
      const parts = await Promise.all(
        Array.from(
          { length: Math.max(1, Math.ceil(items.length / share)) },
          (_, k) => pool.run(k, items.slice(k * share, (k + 1) * share)),
        ),
      );
      result = concatResults(parts, batch);
    }
    return skipped.length === 0 ? result : { ...result, skipped: [...skipped, ...result.skipped] };
  }
}

/** The parts of one batch, in order, as one result. */
function concatResults(parts: BatchResult[], batch: number): BatchResult {
  const kept = parts.filter((part) => part.labels.length > 0);
  if (kept.length <= 1) {
    const base = kept[0] ?? parts[0];
    return { ...base, skipped: parts.flatMap((part) => part.skipped) };
  }
  const sample = kept[0].shape.slice(1);
  for (const part of kept) {
    if (part.shape.slice(1).join() !== sample.join()) {
      throw new DatasetError(
        `Loading batch ${batch} failed: cannot stack samples of shapes [${
          sample.join(", ")
        }] and [${
          part.shape.slice(1).join(", ")
        }]: expected one size, end the transform with a crop or Resize([h, w])`,
      );
    }
  }
  const n = kept.reduce((sum, part) => sum + part.labels.length, 0);
  const data = new Float32Array(kept.reduce((sum, part) => sum + part.data.length, 0));
  const labels = new Int32Array(n);
  const indices = new Int32Array(n);
  let at = 0;
  let row = 0;
  for (const part of kept) {
    data.set(part.data, at);
    labels.set(part.labels, row);
    indices.set(part.indices, row);
    at += part.data.length;
    row += part.labels.length;
  }
  return {
    data,
    shape: [n, ...sample],
    labels,
    indices,
    skipped: parts.flatMap((part) => part.skipped),
  };
}

/**
 * The source's bytes copied into a buffer of their own, which the workers may
 * be handed (transferred). Never the data set's own buffer: transferring it
 * would detach the bytes a data set keeps in memory (the next epoch then
 * fails), or one buffer two samples share.
 */
function ownBuffer(source: Uint8Array | PixelData): Uint8Array | PixelData {
  const data = source instanceof Uint8Array ? source : source.data;
  const own = new Uint8Array(data);
  if (source instanceof Uint8Array) return own;
  return { data: own, width: source.width, height: source.height, channels: source.channels };
}
