/**
 * Decoding in workers, so that a classification pipeline decodes and
 * preprocesses the next images while the kernels run the current batch
 * (`classifyBatch`). A worker receives encoded bytes or pixels (the calling
 * thread reads paths and URLs within their budgets) and sends back the
 * evaluation transform's CHW float32 tensor; the results are the bits
 * `preprocess` gives on the calling thread, from the same modules.
 *
 * Images go to the workers at once (a worker must have its images while the
 * calling thread is busy in the kernels), each with a claim word in a
 * `SharedArrayBuffer`: a worker claims an image before decoding it, and the
 * calling thread can take back one no worker has claimed
 * ({@linkcode DecodePool.withdraw}) and decode it itself instead of waiting.
 * Such images are copied to the worker, not transferred. A pool made with `lowPriority` (when the
 * kernel threads take every core) has its workers lower their own scheduling
 * priority where the runtime allows it (`nice` 19, Deno with `--allow-sys`):
 * they then use the cycles the kernel threads leave idle instead of taking a
 * core from them, and whatever they have not started when the batch is
 * needed, the calling thread decodes.
 *
 * Life cycle: in Deno the workers are `node:worker_threads` Workers (its
 * Web `Worker` has no `unref`), held (`ref`) only while they owe images, so an
 * idle pool never keeps the process alive, and the shared pool lives
 * {@linkcode DECODE_IDLE_UNREF_MS} after its last call: a program that
 * classifies in rounds keeps its warm workers (their start, module load and
 * JIT warm-up cost 50-75 ms of CPU each time). Where only a Web `Worker`
 * exists and it keeps the process alive, the shared pool ends
 * {@linkcode DECODE_IDLE_MS} after its last call, so a program that never
 * disposes of anything still exits; the next call starts new workers. Faults: a worker whose `error` event fires
 * (it threw outside a job, or the runtime ended it) fails every image it
 * owes with a {@linkcode BackendError} and ends the pool (so does one that
 * exits by itself); so does a worker
 * that answers nothing for `timeout` ms while it owes images. An image the
 * worker could not decode is rejected with the error it raised there
 * (`ImageError`, `ShapeError`, `OptionError`; anything else becomes a
 * `BackendError`).
 *
 * @module
 */

import {
  BackendError,
  type GoogLeNetError,
  ImageError,
  OptionError,
  ShapeError,
} from "../errors.ts";
import type { CheckedLoadOptions } from "./load.ts";
import { webWorker } from "../web_worker.ts";
import type { PixelData } from "./pixels.ts";
import type { EvalTransform } from "./preprocess.ts";

/** How long an idle shared pool of workers that keep the process alive lives after its last call, in ms. */
export const DECODE_IDLE_MS = 1000;
/**
 * How long an idle shared pool of workers that do not keep the process alive
 * (Deno's `node:worker_threads`, unref'd while idle) lives after its last
 * call, in ms: its memory (the worker's heap and kernel arena, tens of MB
 * after large photos) is given back then.
 */
export const DECODE_IDLE_UNREF_MS = 30_000;
/** How long a worker that owes images may answer nothing before the pool fails, in ms. */
const SILENCE_MS = 60_000;

/** What a worker needs to make the transform again: plain, cloneable values. */
export interface DecodeSettings {
  /** `resize` of the transform. */
  resize: number;
  /** `crop` of the transform. */
  crop: number;
  /** Per-channel mean. */
  mean: number[];
  /** Per-channel standard deviation. */
  std: number[];
  /** The fast path. */
  draft: boolean;
  /** Decoding limits; the worker never reads paths or URLs, so no byte or time budget. */
  load: CheckedLoadOptions;
}

/** One image sent to a worker. */
export interface DecodeJob {
  /** Pool-wide request number. */
  id: number;
  /** Encoded bytes (the worker may keep them: they are transferred) or pixels. */
  source: Uint8Array | PixelData;
  /**
   * Where the worker writes the tensor, a view of a `SharedArrayBuffer` (the
   * image's place in its batch); absent: the worker sends a new array.
   */
  into?: Float32Array;
  /** The transform. */
  settings: DecodeSettings;
  /** For tests: make the worker fail on this image (see {@linkcode injectDecodeFault}). */
  fault?: DecodeFault;
  /** The worker runs at the lowest scheduling priority (set at its first image). */
  lowPriority: boolean;
  /**
   * 0 while nobody has the image, 1 once the worker claimed it, 2 once the
   * calling thread took it back (the worker then skips it); absent where
   * `SharedArrayBuffer` is not.
   */
  claim?: Int32Array;
}

/**
 * A worker's answer: the tensor (the job's `into` where it had one), the
 * error it raised, or that the image was taken back.
 */
export type DecodeReply =
  | { id: number; data: Float32Array }
  | { id: number; error: { name: string; message: string } }
  | { id: number; skipped: true };

/**
 * A fault a test makes: `"throw"`, the worker throws while decoding (the
 * image's result is rejected); `"exit"`, the worker dies (every image it
 * owes is rejected and the pool ends); `"hang"`, the worker waits forever
 * without a word (the pool's silence limit fails it).
 */
export type DecodeFault = "throw" | "exit" | "hang";

let injected: DecodeFault | undefined;

/**
 * For tests: makes the worker that decodes the next image submitted fail.
 *
 * @param fault What the worker does.
 *
 * @example
 * ```ts
 * import { injectDecodeFault } from "./decode_pool.ts";
 * injectDecodeFault("throw");
 * injectDecodeFault(undefined); // cleared again
 * ```
 */
export function injectDecodeFault(fault: DecodeFault | undefined): void {
  injected = fault;
}

/**
 * Whether decoding can run in workers here (`Worker` exists). Edge runtimes
 * without it decode on the calling thread.
 *
 * @returns `true` where `Worker` is a constructor.
 *
 * @example
 * ```ts
 * import { decodeWorkersAvailable } from "./decode_pool.ts";
 * console.log(decodeWorkersAvailable()); // true in Deno
 * ```
 */
export function decodeWorkersAvailable(): boolean {
  return webWorker() !== undefined;
}

/**
 * The settings a worker needs to make `transform` again.
 *
 * @param transform From `evalTransform`.
 * @param load Checked load options.
 * @returns Cloneable settings.
 *
 * @example
 * ```ts
 * import { decodeSettings } from "./decode_pool.ts";
 * import { evalTransform } from "./preprocess.ts";
 * import { checkLoadOptions } from "./load.ts";
 * console.log(decodeSettings(evalTransform({}), checkLoadOptions({})).crop); // 224
 * ```
 */
export function decodeSettings(
  transform: EvalTransform,
  load: CheckedLoadOptions,
): DecodeSettings {
  const { resize, crop, draft } = transform;
  return {
    resize,
    crop,
    draft,
    mean: Array.from(transform.mean),
    std: Array.from(transform.std),
    load: { ...load, signal: undefined, timeout: Infinity },
  };
}

interface Pending {
  resolve(data: Float32Array): void;
  reject(error: Error): void;
  worker: number;
  job: DecodeJob;
}

/**
 * A fixed number of decode workers and the images they owe. Images go to
 * the worker that owes the fewest; each worker decodes its images in order,
 * skipping those the calling thread took back.
 *
 * @example
 * ```ts
 * import { DecodePool, decodeSettings } from "./decode_pool.ts";
 * import { evalTransform } from "./preprocess.ts";
 * import { checkLoadOptions } from "./load.ts";
 * const pool = new DecodePool(1);
 * const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
 * const data = await pool.decode(await Deno.readFile("assets/chelsea.jpg"), settings);
 * console.log(data.length); // 150528
 * pool.close();
 * ```
 */
export class DecodePool {
  readonly #workers: DecodeThread[] = [];
  readonly #pending = new Map<number, Pending>();
  /** The id of each promise {@linkcode decode} returned, for {@linkcode withdraw}. */
  readonly #ids = new WeakMap<Promise<Float32Array>, number>();
  /** Per worker: images owed (taken back ones until it skips them), and when it last answered or was given work while idle. */
  readonly #owed: number[] = [];
  readonly #heard: number[] = [];
  #next = 0;
  #failure: Error | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  readonly #silenceMs: number;
  /** Whether the workers run at the lowest scheduling priority. */
  readonly lowPriority: boolean;
  /** Whether idle workers leave the process free to exit (they are held only while they owe images). */
  readonly unrefable: boolean;

  /**
   * Starts `size` workers.
   *
   * @param size Number of workers, at least 1.
   * @param options `silenceMs`: how long a worker that owes images may answer nothing (60 s);
   * `lowPriority`: the workers lower their scheduling priority (`nice` 19) where allowed;
   * `webWorker`: Web Workers even in Deno (for tests: the path of browsers and of a library
   * imported by URL).
   */
  constructor(
    size: number,
    options: { silenceMs?: number; lowPriority?: boolean; webWorker?: boolean } = {},
  ) {
    this.#silenceMs = options.silenceMs ?? SILENCE_MS;
    this.lowPriority = options.lowPriority ?? false;
    const url = new URL("./decode_worker.ts", import.meta.url);
    for (let k = 0; k < size; k++) {
      this.#workers.push(
        startThread(url, options.webWorker ?? false, {
          reply: (reply) => this.#answer(k, reply),
          died: (message) => this.fail(new BackendError(`Decode worker ${k} died: ${message}`)),
          unreadable: () =>
            this.fail(new BackendError(`Decode worker ${k} sent a message that cannot be read`)),
        }),
      );
      this.#owed.push(0);
      this.#heard.push(0);
    }
    this.unrefable = this.#workers.every((worker) => worker.unrefable);
  }

  /** Number of workers. */
  get size(): number {
    return this.#workers.length;
  }

  /** Whether a worker died or went silent (the pool is then closed). */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /**
   * Decodes and transforms one image in a worker. Encoded bytes are
   * transferred: the caller must not use them afterwards.
   *
   * @param source Encoded bytes or pixels.
   * @param settings From {@linkcode decodeSettings}.
   * @param into Where the worker writes the tensor: a view of a `SharedArrayBuffer` (its floats
   * are then not sent back and forth), else a new array comes back.
   * @returns The CHW float32 tensor of the image (`into` when given).
   * @throws {ImageError} When the image cannot be decoded (and the other errors the transform raises).
   * @throws {BackendError} When the worker died, went silent, or failed otherwise.
   */
  decode(
    source: Uint8Array | PixelData,
    settings: DecodeSettings,
    into?: Float32Array,
  ): Promise<Float32Array> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const worker = this.#owed.indexOf(Math.min(...this.#owed));
    const id = this.#next++;
    const claim = typeof SharedArrayBuffer === "function"
      ? new Int32Array(new SharedArrayBuffer(4))
      : undefined;
    const job: DecodeJob = { id, source, settings, lowPriority: this.lowPriority, claim };
    if (into !== undefined && into.buffer instanceof SharedArrayBuffer) job.into = into;
    if (injected !== undefined) [job.fault, injected] = [injected, undefined];
    // Bytes that may be taken back stay here too (copied to the worker); the others are transferred.
    const transfer = source instanceof Uint8Array && claim === undefined
      ? [source.buffer as ArrayBuffer]
      : [];
    const promise = new Promise<Float32Array>((resolve, reject) => {
      if (this.#owed[worker] === 0) {
        this.#heard[worker] = performance.now();
        this.#workers[worker].hold(true); // the process waits for what it owes
      }
      this.#owed[worker]++;
      this.#pending.set(id, { resolve, reject, worker, job });
      this.#workers[worker].post(job, transfer);
      if (this.#watchdog === undefined) {
        this.#watchdog = setInterval(() => this.#watch(), Math.min(1000, this.#silenceMs / 4));
        unref(this.#watchdog);
      }
    });
    this.#ids.set(promise, id);
    return promise;
  }

  /**
   * Takes back an image that no worker has claimed, so that the caller can
   * decode it itself: the promise {@linkcode decode} returned for it then
   * never settles, and the worker skips it. Images that carry an injected
   * fault stay with the workers.
   *
   * @param promise A promise {@linkcode decode} returned.
   * @returns The image's bytes or pixels, or `undefined` when a worker has it or it is done.
   *
   * @example
   * ```ts
   * import { DecodePool, decodeSettings } from "./decode_pool.ts";
   * import { evalTransform } from "./preprocess.ts";
   * import { checkLoadOptions } from "./load.ts";
   * const pool = new DecodePool(1);
   * const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
   * const bytes = await Deno.readFile("assets/chelsea.jpg");
   * const first = pool.decode(bytes.slice(), settings);
   * const second = pool.decode(bytes.slice(), settings);
   * console.log(pool.withdraw(second) instanceof Uint8Array); // true: the worker had not claimed it
   * await first;
   * console.log(pool.withdraw(first)); // undefined: done
   * pool.close();
   * ```
   */
  withdraw(promise: Promise<Float32Array>): Uint8Array | PixelData | undefined {
    const id = this.#ids.get(promise);
    const pending = id === undefined ? undefined : this.#pending.get(id);
    const claim = pending?.job.claim;
    if (claim === undefined || pending!.job.fault !== undefined) return undefined;
    if (Atomics.compareExchange(claim, 0, 0, 2) !== 0) return undefined; // a worker has it
    this.#pending.delete(id!);
    return pending!.job.source;
  }

  #answer(worker: number, reply: DecodeReply): void {
    if (--this.#owed[worker] === 0) this.#workers[worker]?.hold(false); // none after close
    this.#heard[worker] = performance.now();
    if (this.#owed.every((owed) => owed === 0)) this.#stopWatchdog();
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return; // taken back, or the pool failed
    this.#pending.delete(reply.id);
    if ("data" in reply) pending.resolve(pending.job.into ?? reply.data); // the caller's view
    else if ("error" in reply) pending.reject(rebuildError(reply.error));
  }

  #watch(): void {
    const now = performance.now();
    for (let k = 0; k < this.#workers.length; k++) {
      if (this.#owed[k] > 0 && now - this.#heard[k] > this.#silenceMs) {
        this.fail(
          new BackendError(
            `Decode worker ${k} answered nothing in ${this.#silenceMs} ms while it owed ${
              this.#owed[k]
            } images: it ended or hangs`,
          ),
        );
        return;
      }
    }
  }

  #stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  /**
   * Rejects every image owed with `error` and ends the workers.
   *
   * @param error The reason.
   */
  fail(error: Error): void {
    this.#failure ??= error;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(this.#failure);
    }
    this.close();
  }

  /** Ends the workers; images still owed are rejected with a {@linkcode BackendError}. */
  close(): void {
    this.#failure ??= new BackendError("The decode pool was closed");
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(this.#failure);
    }
    const workers = this.#workers.splice(0);
    for (const worker of workers) worker.terminate();
    this.#stopWatchdog();
  }
}

const ERRORS: Record<string, new (message: string) => GoogLeNetError> = {
  ImageError,
  ShapeError,
  OptionError,
  BackendError,
};

function rebuildError({ name, message }: { name: string; message: string }): Error {
  const Class = ERRORS[name];
  return Class ? new Class(message) : new BackendError(`Decode worker failed: ${name}: ${message}`);
}

/** One decode worker, whichever constructor started it. */
interface DecodeThread {
  /** Whether {@linkcode hold} can let the process exit while the worker lives. */
  readonly unrefable: boolean;
  post(job: DecodeJob, transfer: Transferable[]): void;
  /** Keeps the process alive while `on` (where the runtime lets a worker not do so). */
  hold(on: boolean): void;
  terminate(): void;
}

/** What a {@linkcode DecodeThread} reports. */
interface ThreadEvents {
  reply(reply: DecodeReply): void;
  /** The worker threw outside a job, or ended by itself. */
  died(message: string): void;
  unreadable(): void;
}

/** The `node:worker_threads` Worker, as far as this module uses it. */
interface NodeWorker {
  on(event: "error", listener: (error: Error) => void): void;
  on(event: "exit", listener: () => void): void;
  ref(): void;
  unref(): void;
  terminate(): unknown;
}

type NodeWorkerConstructor = new (
  url: URL,
  options: { type: "module"; workerData: { port: MessagePort }; transferList: MessagePort[] },
) => NodeWorker;

/** Deno's `MessagePort`, which (as Node's) can stop keeping the process alive. */
interface RefPort extends MessagePort {
  ref(): void;
  unref(): void;
}

/**
 * Deno's `node:worker_threads` Worker, for a worker module on disk: unlike
 * Deno's Web `Worker` it has `unref`. Taken through `process.getBuiltinModule`
 * (no static import: runtimes without it still load this module); elsewhere
 * `undefined`, and the Web `Worker` is used. Messages go through a Web
 * `MessageChannel` (whose ports Deno can also unref): Deno's `parentPort`
 * costs about 11 ms of CPU per message of these sizes, the channel 0.3 ms.
 */
function nodeWorker(url: URL): NodeWorkerConstructor | undefined {
  if (url.protocol !== "file:" || !("Deno" in globalThis)) return undefined;
  if (typeof (MessagePort.prototype as Partial<RefPort>).unref !== "function") return undefined;
  const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } })
    .process;
  try {
    const module = process?.getBuiltinModule?.("node:worker_threads") as
      | { Worker?: NodeWorkerConstructor }
      | undefined;
    const Worker = module?.Worker;
    return typeof Worker === "function" && typeof Worker.prototype?.unref === "function"
      ? Worker
      : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the worker module at `url`, idle (not holding the process where that is possible). */
function startThread(url: URL, web: boolean, events: ThreadEvents): DecodeThread {
  const NodeWorker = web ? undefined : nodeWorker(url);
  if (NodeWorker !== undefined) {
    const { port1, port2 } = new MessageChannel();
    const port = port1 as RefPort;
    const worker = new NodeWorker(url, {
      type: "module",
      workerData: { port: port2 },
      transferList: [port2],
    });
    let ended = false;
    port.onmessage = (event: MessageEvent<DecodeReply>) => events.reply(event.data);
    port.onmessageerror = () => events.unreadable();
    worker.on("error", (error) => {
      if (!ended) events.died(error?.message ?? String(error));
    });
    worker.on("exit", () => {
      if (!ended) events.died("it exited");
      ended = true;
    });
    worker.unref();
    port.unref();
    return {
      unrefable: true,
      post: (job, transfer) => port.postMessage(job, transfer),
      hold: (on) => {
        if (on) {
          worker.ref();
          port.ref();
        } else {
          worker.unref();
          port.unref();
        }
      },
      terminate: () => {
        ended = true;
        port.close();
        worker.terminate();
      },
    };
  }
  const worker = new (webWorker()!)(url, { type: "module" });
  worker.onmessage = (event: MessageEvent<DecodeReply>) => events.reply(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    events.died(event.message);
  };
  worker.onmessageerror = () => events.unreadable();
  return {
    unrefable: false,
    post: (job, transfer) => worker.postMessage(job, transfer),
    hold: () => {},
    terminate: () => worker.terminate(),
  };
}

function unref(timer: ReturnType<typeof setTimeout>): void {
  const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
  deno?.unrefTimer?.(timer as unknown as number);
}

let shared: DecodePool | undefined;
/** Calls using each pool (the shared one, and older ones that calls still hold). */
const users = new Map<DecodePool, number>();
let idleTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * Takes the shared pool of `size` workers (a new one when there is none, it
 * failed, or it has another size or priority) for one call; give it back
 * with {@linkcode releaseDecodePool}.
 *
 * @param size Number of workers.
 * @param options `lowPriority`: workers at the lowest scheduling priority (see {@linkcode DecodePool}).
 * @returns The pool.
 *
 * @example
 * ```ts
 * import { acquireDecodePool, releaseDecodePool } from "./decode_pool.ts";
 * const pool = acquireDecodePool(1);
 * console.log(pool.size); // 1
 * releaseDecodePool(pool); // ends when idle a while (see DECODE_IDLE_UNREF_MS) unless taken again
 * ```
 */
export function acquireDecodePool(
  size: number,
  options: { lowPriority?: boolean } = {},
): DecodePool {
  clearTimeout(idleTimer);
  idleTimer = undefined;
  const lowPriority = options.lowPriority ?? false;
  if (
    shared === undefined || shared.failed || shared.size !== size ||
    shared.lowPriority !== lowPriority
  ) {
    const old = shared;
    shared = new DecodePool(size, { lowPriority });
    if (old !== undefined && !users.has(old)) old.close();
  }
  users.set(shared, (users.get(shared) ?? 0) + 1);
  return shared;
}

/**
 * Gives back a pool from {@linkcode acquireDecodePool}. The last call to
 * give back the shared pool leaves it to end after {@linkcode DECODE_IDLE_UNREF_MS}
 * without a call where idle workers let the process exit (Deno), else after
 * {@linkcode DECODE_IDLE_MS} (the timer does not keep the process alive; the
 * workers do until then); a pool that failed, was replaced, or is given back with
 * `discard` (its workers may still be busy with images nobody waits for)
 * ends at once when no other call holds it.
 *
 * @param pool The pool taken.
 * @param options `discard`: end the pool when no other call holds it.
 *
 * @example
 * ```ts
 * import { acquireDecodePool, releaseDecodePool } from "./decode_pool.ts";
 * releaseDecodePool(acquireDecodePool(1), { discard: true });
 * ```
 */
export function releaseDecodePool(pool: DecodePool, options: { discard?: boolean } = {}): void {
  const count = (users.get(pool) ?? 1) - 1;
  if (count > 0) {
    users.set(pool, count);
    return;
  }
  users.delete(pool);
  if (pool !== shared || pool.failed || options.discard) {
    if (pool === shared) shared = undefined;
    pool.close();
    return;
  }
  idleTimer = setTimeout(() => {
    idleTimer = undefined;
    if (shared === pool && !users.has(pool)) {
      shared = undefined;
      pool.close();
    }
  }, pool.unrefable ? DECODE_IDLE_UNREF_MS : DECODE_IDLE_MS);
  unref(idleTimer);
}
