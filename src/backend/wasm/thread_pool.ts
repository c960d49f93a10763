/**
 * A persistent pool of kernel workers sharing one `WebAssembly.Memory`. The
 * calling thread is thread 0 and works too; a run costs one notify to start
 * and one barrier per plan step.
 *
 * @module
 */

import type { Plan } from "../../graph/ops.ts";
import { BackendError } from "../../errors.ts";
import { controlWords, FAILED, PLAN, RUN, SEEDS, STEPS } from "./barrier.ts";
import {
  type MemoryLayout,
  runSteps,
  type Schedule,
  schedule,
  split,
  WorkQueue,
} from "./executor.ts";
import type { KernelExports } from "./kernels.ts";
import type { WorkerMessage } from "./worker.ts";

/** Whether this runtime can run kernel workers (Worker and SharedArrayBuffer exist). */
export function threadsAvailable(): boolean {
  return typeof globalThis.Worker === "function" &&
    typeof globalThis.SharedArrayBuffer === "function";
}

/** Workers plus the calling thread, running plans together. */
export class ThreadPool {
  readonly threads: number;
  #workers: Worker[];
  #control: Int32Array;
  #kernels: KernelExports;
  #queue: WorkQueue;
  #plans = new Map<Plan, { id: number; steps: Schedule }>();
  #nextId = 1;

  private constructor(workers: Worker[], control: Int32Array, kernels: KernelExports) {
    this.#workers = workers;
    this.#control = control;
    this.#kernels = kernels;
    this.#queue = new WorkQueue(control, workers.length + 1);
    this.threads = workers.length + 1;
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
    const control = new Int32Array(new SharedArrayBuffer(controlWords(threads) * 4));
    const workers: Worker[] = [];
    try {
      const booted: Promise<void>[] = [];
      for (let tid = 1; tid < threads; tid++) {
        const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
        workers.push(worker);
        booted.push(request(worker, {
          type: "init",
          module,
          memory,
          control: control.buffer as SharedArrayBuffer,
          tid,
          threads,
          prefault: prefault && pageSlice(prefault, tid, threads),
        }, "ready"));
      }
      // Allow every boot to settle before judging, so none rejects unobserved.
      const results = await Promise.allSettled(booted);
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    } catch (cause) {
      for (const w of workers) w.terminate();
      throw new BackendError(`Cannot start ${threads - 1} kernel workers: ${cause}`, { cause });
    }
    return new ThreadPool(workers, control, kernels);
  }

  /** Sends `plan` to the workers once (before its first run). */
  async install(plan: Plan, layout: MemoryLayout): Promise<void> {
    if (this.#plans.has(plan)) return;
    const id = this.#nextId++;
    await Promise.all(
      this.#workers.map((w) => request(w, { type: "plan", id, plan, layout }, "planned")),
    );
    this.#plans.set(plan, { id, steps: schedule(this.#kernels, plan, this.threads) });
  }

  /**
   * Has every thread use `memory` through `module`'s `kernels` from now on.
   * The workers then fault in the byte range `prefault` of the fresh memory
   * (split among them, each slice from its end) while the caller copies the
   * weights into it from its start.
   */
  async rebind(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    prefault: [number, number] | null = null,
  ): Promise<void> {
    await Promise.all(
      this.#workers.map((w, i) =>
        request(w, {
          type: "memory",
          module,
          memory,
          prefault: prefault && pageSlice(prefault, i + 1, this.threads),
        }, "rebound")
      ),
    );
    this.#kernels = kernels;
  }

  /** Forgets a plan on every worker. */
  forget(plan: Plan): void {
    const id = this.#plans.get(plan)?.id;
    if (id === undefined) return;
    this.#plans.delete(plan);
    for (const w of this.#workers) w.postMessage({ type: "forget", id } satisfies WorkerMessage);
  }

  /** Runs an installed plan on all threads; returns when every thread is done. */
  run(plan: Plan, layout: MemoryLayout, seeds: readonly number[]): void {
    const installed = this.#plans.get(plan);
    if (!installed) throw new Error("Internal: plan not installed on the thread pool");
    const c = this.#control;
    Atomics.store(c, PLAN, installed.id);
    Atomics.store(c, STEPS, installed.steps.length);
    Atomics.store(c, FAILED, 0);
    c.fill(0, controlWords(0));
    this.#queue.reset();
    seeds.forEach((s, i) => Atomics.store(c, SEEDS + i, s));
    Atomics.add(c, RUN, 1);
    Atomics.notify(c, RUN);
    const own = c.subarray(SEEDS);
    const failure = runSteps(
      this.#kernels,
      plan,
      layout,
      installed.steps,
      this.#queue,
      c,
      0,
      own,
      false,
    );
    if (Atomics.load(c, FAILED) !== 0) {
      throw new BackendError(
        `A kernel failed while running the plan${failure ? `: ${failure}` : ""}`,
        {
          cause: failure,
        },
      );
    }
  }

  /** Stops the workers. */
  dispose(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}

// Worker tid's slice of the byte range [start, end), in whole 4 KB pages.
function pageSlice([start, end]: [number, number], tid: number, threads: number): [number, number] {
  const [p0, p1] = split(Math.ceil((end - start) / 4096), tid - 1, threads - 1, 1);
  return [start + p0 * 4096, Math.min(end, start + p1 * 4096)];
}

function request(worker: Worker, message: WorkerMessage, reply: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (event: MessageEvent) => {
      if (event.data?.type !== reply) return;
      cleanup();
      resolve();
    };
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      cleanup();
      reject(new Error(event.message));
    };
    const cleanup = () => {
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    worker.postMessage(message);
  });
}
