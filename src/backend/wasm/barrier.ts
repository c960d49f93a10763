/**
 * The synchronisation words shared by the calling thread and the workers: a
 * run counter that starts a plan, a sense-reversing barrier between plan
 * steps, an error flag, a fault flag, and per thread a chunk counter that
 * work is claimed from and a heartbeat. All live in one small
 * SharedArrayBuffer.
 *
 * The calling thread cannot sleep (`Atomics.wait` is not allowed there), and
 * while it spins at a barrier no event reaches it: not a worker's error, not
 * its end. So the workers show they are alive in shared memory: a worker
 * that hits an error outside a kernel sets the fault flag, and a worker
 * beats its heartbeat as it waits at a barrier (every 50 ms at most) and
 * while it faults in pages. The calling thread gives a run up with a
 * {@linkcode BackendError} when the fault flag is set, or when a worker it
 * waits for has not beaten for a while (15 s, longer when the
 * run's steps are long): a worker the runtime ended, or one that closed
 * itself.
 *
 * @module
 */

import { BackendError } from "../../errors.ts";

/** Index of the run counter: the main thread bumps it to start a run. */
export const RUN = 0;
/** Index of the barrier's arrival count. */
export const ARRIVED = 1;
/** Index of the barrier's generation. */
export const GENERATION = 2;
/** Index of the error flag (non-zero once any thread failed in this run). */
export const FAILED = 3;
/** Index of the plan id the run executes. */
export const PLAN = 4;
/** Index of the number of plan steps (barriers) in the run. */
export const STEPS = 5;
/** Index of the fault flag: the thread id of a worker that failed outside a kernel (it will not meet the barriers), else 0. */
export const FAULT = 6;
/** Index of the trace flag: non-zero when the run records each chunk's times (see `ChunkTrace`). */
export const TRACE = 7;
/** First of the dropout seeds of the run. */
export const SEEDS = 8;
/** Words of the control block before the chunk counters. */
export const CONTROL_WORDS = 64;
/** Words between chunk counters: one 64-byte cache line each, so claims on different counters do not contend. */
export const CURSOR_STRIDE = 16;

/** Words in the control block of a pool of `threads` threads: one chunk counter per thread after the fixed words (see `WorkQueue`). */
export function controlWords(threads: number): number {
  return CONTROL_WORDS + CURSOR_STRIDE * threads;
}

/** Offset of a thread's heartbeat in its chunk counter's cache line (see {@linkcode beat}). */
const BEAT = 8;

/**
 * Thread `tid` shows it is alive: bumps its heartbeat word (next to its chunk
 * counter, in the words `controlWords` counts).
 */
export function beat(control: Int32Array, tid: number): void {
  Atomics.add(control, CONTROL_WORDS + CURSOR_STRIDE * tid + BEAT, 1);
}

let beating = 0;

/**
 * Makes this thread (a worker, `tid` > 0) beat its heartbeat while it waits
 * at barriers; called once when a worker starts.
 */
export function beatAs(tid: number): void {
  beating = tid;
}

/**
 * How long the calling thread waits at a barrier for a worker whose
 * heartbeat does not move before it gives the run up, at least. A waiting
 * worker beats every 50 ms; a working one does not beat within a chunk. A
 * chunk takes milliseconds, but a training chunk of a large batch on a
 * machine whose cores other processes hold (a worker the OS does not
 * schedule while the calling thread runs) may take seconds: 2 s gave
 * runs up while two test processes shared 2 cores. So the wait is 15 s,
 * stretched to `STALL_STEPS` times the longest plan step the calling
 * thread has run in this run (chunks are near-equal, and it runs several
 * per step). A dead worker is found that much later; never a hang.
 */
const STALL_MS = 15_000;

/** The wait for a silent worker, in longest steps of the calling thread (see `STALL_MS`). */
const STALL_STEPS = 10;

// The calling thread's step times in the current run (see startRun).
let stepStart = 0;
let longestStep = 0;

/** The calling thread starts a run: its step times are measured from now. */
export function startRun(): void {
  stepStart = performance.now();
  longestStep = 0;
}

const SPINS = 20_000;

/**
 * Waits until all `threads` threads have arrived. Spins briefly, then sleeps
 * with `Atomics.wait` where the thread may block (workers, which beat their
 * heartbeat at each wake-up), else keeps spinning (the calling thread, which
 * watches the workers' fault flag and heartbeats: see the module's notes).
 *
 * @throws {BackendError} On the calling thread (`mayBlock` false), when a
 * worker has failed or stopped: the run cannot complete.
 */
export function barrier(control: Int32Array, threads: number, mayBlock: boolean): void {
  const generation = Atomics.load(control, GENERATION);
  if (!mayBlock) {
    const now = performance.now();
    longestStep = Math.max(longestStep, now - stepStart);
    stepStart = now;
  }
  if (Atomics.add(control, ARRIVED, 1) === threads - 1) {
    Atomics.store(control, ARRIVED, 0);
    Atomics.add(control, GENERATION, 1);
    Atomics.notify(control, GENERATION);
    return;
  }
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(control, GENERATION) !== generation) return;
  }
  if (!mayBlock) {
    watch(control, threads, generation);
    stepStart = performance.now(); // the wait is not the calling thread's step
    return;
  }
  while (Atomics.load(control, GENERATION) === generation) {
    if (beating > 0) beat(control, beating);
    Atomics.wait(control, GENERATION, generation, 50);
  }
}

// The calling thread's wait: spins until the generation moves, checking
// every few thousand spins that no worker failed or went silent.
function watch(control: Int32Array, threads: number, generation: number): void {
  const stall = Math.max(STALL_MS, STALL_STEPS * longestStep);
  const beats = new Int32Array(threads);
  const since = new Float64Array(threads).fill(performance.now());
  for (let t = 1; t < threads; t++) beats[t] = heartbeat(control, t);
  for (let i = 1; Atomics.load(control, GENERATION) === generation; i++) {
    if (i % 4096 !== 0) continue;
    const fault = Atomics.load(control, FAULT);
    if (fault !== 0) {
      throw new BackendError(`Kernel worker ${fault} failed during the run`);
    }
    const now = performance.now();
    for (let t = 1; t < threads; t++) {
      const b = heartbeat(control, t);
      if (b !== beats[t]) {
        beats[t] = b;
        since[t] = now;
      } else if (now - since[t] > stall) {
        throw new BackendError(
          `Kernel worker ${t} stopped during the run (no sign of life for ${Math.round(stall)} ms)`,
        );
      }
    }
  }
}

function heartbeat(control: Int32Array, tid: number): number {
  return Atomics.load(control, CONTROL_WORDS + CURSOR_STRIDE * tid + BEAT);
}
