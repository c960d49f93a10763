/**
 * A persistent pool of kernel workers sharing one `WebAssembly.Memory`. The
 * calling thread is thread 0 and works too; a run costs one notify to start
 * and one barrier per plan step.
 *
 * Life cycle. The workers ("the crew") can end and be started again while
 * the pool lives; the pool keeps the module, the memory and the installed
 * plans, and sends them to a new crew before its first run:
 * - Idle: where a live worker keeps the host process alive (Deno: a `Worker`
 *   has no `unref`), the crew ends after {@linkcode IDLE_MS} without a run, so
 *   that a program that never calls `dispose()` still exits. The next run
 *   starts a new crew (tens of milliseconds).
 * - Faults: a worker that throws, or that the runtime ends, is caught: its
 *   `error` event is handled (it never reaches the host as an uncaught
 *   error), a run in progress is given up with a {@linkcode BackendError}
 *   (the calling thread sees the fault flag or the worker's silent heartbeat
 *   at a barrier, see barrier.ts), the crew is ended, and the next run starts
 *   a new one. The weights are not touched by a failed run, so later runs
 *   give the same results as before.
 *
 * @module
 */

import type { Plan } from "../../graph/ops.ts";
import { BackendError } from "../../errors.ts";
import {
  controlWords,
  FAILED,
  FAULT,
  PLAN,
  RUN,
  SEEDS,
  startRun,
  STEPS,
  TRACE,
} from "./barrier.ts";
import {
  type ChunkTrace,
  type MemoryLayout,
  runSteps,
  type Schedule,
  schedule,
  split,
  WorkQueue,
} from "./executor.ts";
import type { KernelExports } from "./kernels.ts";
import { webWorker } from "../../web_worker.ts";
import type { WorkerFault, WorkerMessage } from "./worker.ts";

/** Whether this runtime can run kernel workers (Worker and SharedArrayBuffer exist). */
export function threadsAvailable(): boolean {
  return webWorker() !== undefined &&
    typeof globalThis.SharedArrayBuffer === "function";
}

/**
 * How long the workers may sit idle before they end, where a live worker
 * would keep the host process alive (Deno). A program that is done exits
 * about this long after its last run.
 */
export const IDLE_MS = 1000;

/** How long a message to a worker may go unanswered (a worker that ended in silence never answers). */
const REPLY_MS = 30_000;

/** A fault a test makes (see {@linkcode injectWorkerFault}). */
export type InjectedFault = WorkerFault | "terminate";

let injected: InjectedFault | null = null;

/**
 * For tests: makes worker 1 of the next pool run fail. `"throw"`: it throws
 * an uncaught error as the run starts; `"exit"`: it ends itself without a
 * word as the run starts; `"terminate"`: the pool terminates it before the
 * run, as a runtime that kills a worker would; `"throw-now"`: it throws an
 * uncaught error before the run (between runs). Not part of the public API.
 */
export function injectWorkerFault(fault: InjectedFault | null): void {
  injected = fault;
}

/** The workers of one start, their control block, and their error state. */
interface Crew {
  readonly workers: Worker[];
  readonly control: Int32Array;
  readonly queue: WorkQueue;
  /** Why a worker failed (set by its error event), or null. */
  failed: string | null;
  /** Resolved by the first worker error (for the test hook that waits for one). */
  readonly fault: Promise<void>;
  /**
   * Aborted when the crew is ended: requests still waiting for a worker's
   * answer give up then, not after {@linkcode REPLY_MS} (a terminated worker
   * answers nothing and raises no event).
   */
  readonly ended: AbortController;
}

interface Installed {
  readonly id: number;
  readonly steps: Schedule;
  readonly layout: MemoryLayout;
}

/** Workers plus the calling thread, running plans together. */
export class ThreadPool {
  readonly threads: number;
  #module: WebAssembly.Module;
  #memory: WebAssembly.Memory;
  #kernels: KernelExports;
  #crew: Crew | null = null;
  #starting: Promise<Crew> | null = null;
  #plans = new Map<Plan, Installed>();
  #nextId = 1;
  /** Operations awaiting the workers (the idle timer leaves the crew alone meanwhile). */
  #busy = 0;
  #lastUsed = 0;
  #idleTimer: number | undefined;
  #disposed = false;

  private constructor(
    threads: number,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    kernels: KernelExports,
  ) {
    this.threads = threads;
    this.#module = module;
    this.#memory = memory;
    this.#kernels = kernels;
  }

  /**
   * Starts `threads - 1` workers over `memory`; settles when all are ready.
   * The workers then fault in the byte range `prefault` (split among them,
   * each slice from its end) while the caller writes it from its start.
   */
  static async create(
    threads: number,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    prefault: [number, number] | null = null,
  ): Promise<ThreadPool> {
    const pool = new ThreadPool(threads, module, memory, kernels);
    pool.#crew = await pool.#start(prefault);
    pool.#touch();
    return pool;
  }

  /** Sends `plan` to the workers once (before its first run; a new crew gets every installed plan). */
  async install(plan: Plan, layout: MemoryLayout): Promise<void> {
    this.#check();
    if (this.#plans.has(plan)) return;
    const id = this.#nextId++;
    this.#plans.set(plan, { id, steps: schedule(this.#kernels, plan, this.threads), layout });
    const crew = this.#crew;
    if (!crew || crew.failed) return;
    await this.#use(
      crew,
      (w) => request(w, { type: "plan", id, plan, layout }, "planned", crew.ended.signal),
    );
  }

  /**
   * Has every thread use `memory` through `module`'s `kernels` from now on.
   * The workers then fault in the byte range `prefault` of the fresh memory
   * (split among them, each slice from its end) while the caller copies the
   * weights into it from its start. A crew that cannot switch is let go (the
   * next run starts one over the new memory).
   */
  async rebind(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    prefault: [number, number] | null = null,
  ): Promise<void> {
    this.#check();
    this.#module = module;
    this.#memory = memory;
    this.#kernels = kernels;
    const crew = this.#crew;
    if (!crew || crew.failed) return;
    await this.#use(crew, (w, i) =>
      request(
        w,
        {
          type: "memory",
          module,
          memory,
          gemmVariant: kernels.gemm_variant(-1),
          prefault: prefault && pageSlice(prefault, i + 1, this.threads),
        },
        "rebound",
        crew.ended.signal,
      ));
  }

  /** Forgets a plan on every worker. */
  forget(plan: Plan): void {
    const id = this.#plans.get(plan)?.id;
    if (id === undefined) return;
    this.#plans.delete(plan);
    for (const w of this.#crew?.workers ?? []) {
      w.postMessage({ type: "forget", id } satisfies WorkerMessage);
    }
  }

  /**
   * Runs an installed plan on all threads; settles when every thread is
   * done. Starts workers first when there are none (idle or failed ones were
   * let go). The run itself is synchronous: the calling thread works.
   *
   * @throws {BackendError} When a kernel fails, when a worker fails or stops
   * during the run (the workers are then let go, and the next run starts new
   * ones), or when workers cannot be started.
   */
  async run(
    plan: Plan,
    layout: MemoryLayout,
    seeds: readonly number[],
    trace: ChunkTrace | null = null,
  ): Promise<void> {
    const installed = this.#plans.get(plan);
    if (!installed) throw new Error("Internal: plan not installed on the thread pool");
    let crew = await this.#awake();
    if (injected) crew = await this.#inject(crew, injected);
    this.#check();
    if (trace) {
      const message: WorkerMessage = {
        type: "trace",
        buffer: trace.buffer.buffer as SharedArrayBuffer,
        records: trace.records,
        done: trace.done.buffer as SharedArrayBuffer,
      };
      // A crew that fails to take the trace is let go; the new one must be given it too, or
      // its workers run untraced and the caller waits for records that never come.
      for (let attempt = 0; attempt < 2; attempt++) {
        const to = crew;
        await this.#use(to, (w) => request(w, message, "tracing", to.ended.signal));
        this.#check();
        if (!to.failed) break;
        if (attempt === 1) {
          throw new BackendError(
            `Cannot trace the run: the kernel workers did not take the trace (${to.failed})`,
          );
        }
        crew = await this.#awake();
      }
    }
    const c = crew.control;
    Atomics.store(c, PLAN, installed.id);
    Atomics.store(c, STEPS, installed.steps.length);
    Atomics.store(c, FAILED, 0);
    Atomics.store(c, FAULT, 0);
    Atomics.store(c, TRACE, trace ? 1 : 0);
    c.fill(0, controlWords(0));
    crew.queue.reset();
    seeds.forEach((s, i) => Atomics.store(c, SEEDS + i, s));
    startRun();
    Atomics.add(c, RUN, 1);
    Atomics.notify(c, RUN);
    let failure: unknown;
    try {
      failure = runSteps(
        this.#kernels,
        plan,
        layout,
        installed.steps,
        crew.queue,
        c,
        0,
        c.subarray(SEEDS),
        false,
        trace,
      );
    } catch (cause) {
      // A worker failed or went silent (barrier.ts): the others wait at a
      // barrier that will never open. Let them all go.
      this.#end(crew);
      throw cause instanceof BackendError
        ? new BackendError(
          `${cause.message}: the run is given up and the next one starts new workers`,
          { cause },
        )
        : cause;
    } finally {
      this.#touch();
    }
    if (Atomics.load(c, FAILED) !== 0) {
      throw new BackendError(
        `A kernel failed while running the plan${failure ? `: ${failure}` : ""}`,
        { cause: failure },
      );
    }
  }

  /** Stops the workers for good. */
  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#crew) this.#end(this.#crew);
  }

  #check(): void {
    if (this.#disposed) throw new BackendError("The thread pool was disposed");
  }

  /**
   * Makes sure workers are running (starting new ones when idle or failed
   * ones were let go), so that a run can start at once.
   *
   * @throws {BackendError} When workers cannot be started.
   */
  async wake(): Promise<void> {
    await this.#awake();
  }

  // A crew ready to run: the current one, or a new one when there is none or it failed.
  async #awake(): Promise<Crew> {
    this.#check();
    if (this.#crew?.failed) this.#end(this.#crew);
    if (this.#crew) return this.#crew;
    this.#starting ??= this.#start(null).then((crew) => {
      if (this.#disposed) {
        this.#end(crew);
        throw new BackendError("The thread pool was disposed");
      }
      this.#crew = crew;
      return crew;
    }).finally(() => this.#starting = null);
    this.#busy++;
    try {
      return await this.#starting;
    } finally {
      this.#busy--;
    }
  }

  // Starts a crew over the current module and memory, with every installed plan.
  async #start(prefault: [number, number] | null): Promise<Crew> {
    const threads = this.threads;
    const control = new Int32Array(new SharedArrayBuffer(controlWords(threads) * 4));
    let failed!: () => void;
    const crew: Crew = {
      workers: [],
      control,
      queue: new WorkQueue(control, threads),
      failed: null,
      fault: new Promise<void>((resolve) => failed = resolve),
      ended: new AbortController(),
    };
    try {
      const booted: Promise<void>[] = [];
      for (let tid = 1; tid < threads; tid++) {
        const Worker = webWorker()!;
        const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
        crew.workers.push(worker);
        // Handled for the worker's whole life: a worker's error must never end the host.
        const onError = (event: Event) => {
          event.preventDefault();
          const message = (event as ErrorEvent).message ?? event.type;
          crew.failed ??= `kernel worker ${tid} failed: ${message}`;
          failed();
        };
        worker.addEventListener("error", onError);
        worker.addEventListener("messageerror", onError);
        const messages: Promise<void>[] = [request(
          worker,
          {
            type: "init",
            module: this.#module,
            memory: this.#memory,
            control: control.buffer as SharedArrayBuffer,
            tid,
            threads,
            gemmVariant: this.#kernels.gemm_variant(-1),
            prefault: prefault && pageSlice(prefault, tid, threads),
          },
          "ready",
          crew.ended.signal,
        )];
        for (const [plan, { id, layout }] of this.#plans) {
          messages.push(
            request(worker, { type: "plan", id, plan, layout }, "planned", crew.ended.signal),
          );
        }
        booted.push(...messages);
      }
      // Allow every boot to settle before judging, so none rejects unobserved.
      const results = await Promise.allSettled(booted);
      const failure = results.find((r) => r.status === "rejected");
      if (failure) throw (failure as PromiseRejectedResult).reason;
    } catch (cause) {
      for (const w of crew.workers) w.terminate();
      crew.ended.abort();
      throw new BackendError(`Cannot start ${threads - 1} kernel workers: ${cause}`, { cause });
    }
    return crew;
  }

  // Sends a request to every worker of `crew`; a crew that fails to answer is let go.
  async #use(crew: Crew, send: (w: Worker, i: number) => Promise<void>): Promise<void> {
    this.#busy++;
    try {
      const results = await Promise.allSettled(crew.workers.map(send));
      const failure = results.find((r) => r.status === "rejected");
      if (failure) {
        crew.failed ??= String((failure as PromiseRejectedResult).reason);
        this.#end(crew);
      }
    } finally {
      this.#busy--;
      this.#touch();
    }
  }

  // Applies a test's fault to worker 1 of `crew`; returns the crew to run on.
  async #inject(crew: Crew, fault: InjectedFault): Promise<Crew> {
    injected = null;
    const worker = crew.workers[0];
    if (!worker) return crew;
    if (fault === "terminate") {
      // Termination takes effect a little later: give it time to, so that
      // this run (not the next) meets the dead worker.
      worker.terminate();
      this.#busy++;
      try {
        await new Promise((resolve) => setTimeout(resolve, 200));
      } finally {
        this.#busy--;
      }
    } else if (fault === "throw-now") {
      worker.postMessage({ type: "fault", fault } satisfies WorkerMessage);
      this.#busy++;
      try {
        await crew.fault;
      } finally {
        this.#busy--;
      }
      return this.#awake();
    } else {
      await this.#use(
        crew,
        (w, i) =>
          i === 0
            ? request(w, { type: "fault", fault }, "armed", crew.ended.signal)
            : Promise.resolve(),
      );
    }
    return crew;
  }

  #end(crew: Crew): void {
    for (const w of crew.workers) w.terminate();
    crew.failed ??= "ended";
    crew.ended.abort();
    if (this.#crew === crew) this.#crew = null;
  }

  // Notes a use of the workers and arms the idle timer where idle workers would keep the host alive.
  #touch(): void {
    this.#lastUsed = performance.now();
    const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
    if (this.#idleTimer !== undefined || this.#disposed || !deno?.unrefTimer) return;
    const check = (delay: number) => {
      const timer = setTimeout(() => {
        this.#idleTimer = undefined;
        if (!this.#crew || this.#disposed) return;
        const idle = performance.now() - this.#lastUsed;
        if (this.#busy === 0 && idle >= IDLE_MS) this.#end(this.#crew);
        else check(Math.max(1, IDLE_MS - idle));
      }, delay) as unknown as number;
      this.#idleTimer = timer;
      // The timer itself must not keep the host alive either.
      deno.unrefTimer!(timer);
    };
    check(IDLE_MS);
  }
}

// Worker tid's slice of the byte range [start, end), in whole 4 KB pages.
function pageSlice([start, end]: [number, number], tid: number, threads: number): [number, number] {
  const [p0, p1] = split(Math.ceil((end - start) / 4096), tid - 1, threads - 1, 1);
  return [start + p0 * 4096, Math.min(end, start + p1 * 4096)];
}

function request(
  worker: Worker,
  message: WorkerMessage,
  reply: string,
  ended: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ended.aborted) {
      reject(new BackendError(`The kernel workers were stopped before "${message.type}"`));
      return;
    }
    // A plan's reply names its plan: several plans may be in flight to one worker
    // (a new crew gets every installed plan at once), and a run must not start
    // before the worker has every one of them.
    const id = message.type === "plan" ? message.id : undefined;
    const onMessage = (event: MessageEvent) => {
      if (event.data?.type !== reply || (id !== undefined && event.data.id !== id)) return;
      cleanup();
      resolve();
    };
    const onError = (event: Event) => {
      event.preventDefault();
      cleanup();
      reject(new Error((event as ErrorEvent).message ?? event.type));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`No answer to "${message.type}" within ${REPLY_MS} ms`));
    }, REPLY_MS);
    const onEnded = () => {
      cleanup();
      reject(new BackendError(`The kernel workers were stopped while "${message.type}" waited`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      ended.removeEventListener("abort", onEnded);
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
      worker.removeEventListener("messageerror", onError);
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    worker.addEventListener("messageerror", onError);
    ended.addEventListener("abort", onEnded);
    worker.postMessage(message);
  });
}
