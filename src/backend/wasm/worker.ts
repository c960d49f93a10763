/**
 * A kernel worker: instantiates the shared kernel module over the shared
 * memory, keeps the plans it is sent, and runs its share of a plan each time
 * the run counter moves. Started by `ThreadPool`; not for direct use.
 *
 * @module
 */

import type { Plan } from "../../graph/ops.ts";
import { barrier, beat, beatAs, FAILED, FAULT, PLAN, RUN, SEEDS, STEPS, TRACE } from "./barrier.ts";
import {
  type ChunkTrace,
  type MemoryLayout,
  runSteps,
  type Schedule,
  schedule,
  WorkQueue,
} from "./executor.ts";
import { instantiateKernels, type KernelExports } from "./kernels.ts";

/** Messages the pool sends. */
export type WorkerMessage =
  | {
    type: "init";
    module: WebAssembly.Module;
    memory: WebAssembly.Memory;
    control: SharedArrayBuffer;
    tid: number;
    threads: number;
    /** The GEMM micro-kernel variant (calibrate.ts). */
    gemmVariant: number;
    /** Byte range of fresh memory to fault in, last page first (see `prefault`). */
    prefault: [number, number] | null;
  }
  | { type: "plan"; id: number; plan: Plan; layout: MemoryLayout }
  | {
    type: "memory";
    module: WebAssembly.Module;
    memory: WebAssembly.Memory;
    /** The GEMM micro-kernel variant (calibrate.ts). */
    gemmVariant: number;
    /** Byte range of the new memory to fault in, last page first (see `prefault`). */
    prefault: [number, number] | null;
  }
  | { type: "forget"; id: number }
  | { type: "fault"; fault: WorkerFault }
  | { type: "trace"; buffer: SharedArrayBuffer; records: number; done: SharedArrayBuffer };

/**
 * A failure a test makes a worker have (see `injectWorkerFault` in
 * thread_pool.ts): at the start of its next run, throw an uncaught error
 * (`"throw"`) or end itself without a word (`"exit"`); or throw an uncaught
 * error at once, between runs (`"throw-now"`).
 */
export type WorkerFault = "throw" | "exit" | "throw-now";

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
let kernels: KernelExports;
let control: Int32Array;
let tid = 0;
let threads = 1;
let queue: WorkQueue;
const plans = new Map<number, { plan: Plan; layout: MemoryLayout; steps: Schedule }>();
let fault: WorkerFault | null = null;
let trace: ChunkTrace | null = null;

function run(): void {
  const entry = plans.get(Atomics.load(control, PLAN));
  const seeds = control.subarray(SEEDS);
  const count = Atomics.load(control, STEPS);
  queue.reset();
  if (!entry || entry.steps.length !== count) {
    // Cannot happen (plans are installed before they run); if it does, fail
    // the run but meet every barrier, so that no thread is left waiting.
    Atomics.store(control, FAILED, 1);
    for (let i = 0; i < count; i++) barrier(control, threads, true);
    return;
  }
  const traced = Atomics.load(control, TRACE) !== 0 ? trace : null;
  runSteps(
    kernels,
    entry.plan,
    entry.layout,
    entry.steps,
    queue,
    control,
    tid,
    seeds,
    true,
    traced,
  );
}

/**
 * Faults in the pages of [start, end) of a fresh memory from the last page
 * down, while the calling thread writes the weights from the first page up:
 * first-touch page faults are slow on some virtual machines, and this way two
 * threads take them. Each page gets a compare-exchange of 0 with 0, which
 * never changes a value, so it cannot undo a weight already written there.
 */
function prefault(memory: WebAssembly.Memory, start: number, end: number): void {
  const words = new Int32Array(memory.buffer);
  // Plain arithmetic, not bit operations: offsets may pass 2^31.
  for (let at = Math.floor(end / 4096) * 4096 - 4096, i = 0; at >= start; at -= 4096, i++) {
    Atomics.compareExchange(words, at / 4, 0, 0);
    // A run may be waiting for this worker: show it is alive (see barrier.ts).
    if (i % 256 === 0) beat(control, tid);
  }
}

/**
 * How long a worker keeps polling for the next run after one ends before it
 * sleeps: back-to-back runs then start without a wake-up (about 150 us on
 * the dev VM), while an idle pool costs at most this much CPU per run.
 */
const LINGER_MS = 2;

/**
 * Runs each run the calling thread starts. An error outside the kernels
 * (which `runSteps` catches and reports) leaves the run's barriers unmet: the
 * worker sets the fault flag, so that the calling thread gives the run up at
 * once, and lets the error end it (the pool hears of it and starts new
 * workers for the next run).
 */
async function serve(): Promise<void> {
  let seen = Atomics.load(control, RUN);
  while (true) {
    const waited = Atomics.waitAsync(control, RUN, seen);
    if (waited.async) await waited.value;
    let now = Atomics.load(control, RUN);
    while (now !== seen) {
      seen = now;
      if (fault === "exit") return scope.close();
      try {
        if (fault === "throw") throw new Error("Injected worker fault (a test's)");
        run();
      } catch (error) {
        Atomics.store(control, FAILED, 1);
        Atomics.store(control, FAULT, tid);
        throw error;
      }
      const until = performance.now() + LINGER_MS;
      for (let i = 1; now === seen; i++) {
        if (i % 1024 === 0 && performance.now() > until) break;
        now = Atomics.load(control, RUN);
      }
    }
  }
}

scope.onmessage = (event: MessageEvent<WorkerMessage>) => {
  const message = event.data;
  if (message.type === "init") {
    kernels = instantiateKernels(message.module, message.memory, message.gemmVariant);
    control = new Int32Array(message.control);
    queue = new WorkQueue(control, message.threads);
    tid = message.tid;
    threads = message.threads;
    beatAs(tid);
    scope.postMessage({ type: "ready" });
    try {
      if (message.prefault) prefault(message.memory, ...message.prefault);
    } finally {
      // Only a speed-up: whatever happens to it, the worker serves runs.
      serve();
    }
  } else if (message.type === "plan") {
    const steps = schedule(kernels, message.plan, threads);
    plans.set(message.id, { plan: message.plan, layout: message.layout, steps });
    scope.postMessage({ type: "planned", id: message.id });
  } else if (message.type === "memory") {
    kernels = instantiateKernels(message.module, message.memory, message.gemmVariant);
    scope.postMessage({ type: "rebound" });
    try {
      if (message.prefault) prefault(message.memory, ...message.prefault);
    } catch {
      // Only a speed-up.
    }
  } else if (message.type === "fault") {
    if (message.fault === "throw-now") throw new Error("Injected worker fault (a test's)");
    fault = message.fault;
    scope.postMessage({ type: "armed" });
  } else if (message.type === "trace") {
    trace = {
      buffer: new Float64Array(message.buffer),
      records: message.records,
      done: new Int32Array(message.done),
    };
    scope.postMessage({ type: "tracing" });
  } else {
    plans.delete(message.id);
  }
};
