/**
 * The synchronisation words shared by the calling thread and the workers: a
 * run counter that starts a plan, a sense-reversing barrier between plan
 * steps, an error flag, and one chunk counter per thread that work is
 * claimed from. All live in one small SharedArrayBuffer.
 *
 * @module
 */

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

const SPINS = 20_000;

/**
 * Waits until all `threads` threads have arrived. Spins briefly, then sleeps
 * with `Atomics.wait` where the thread may block (workers), else keeps spinning.
 */
export function barrier(control: Int32Array, threads: number, mayBlock: boolean): void {
  const generation = Atomics.load(control, GENERATION);
  if (Atomics.add(control, ARRIVED, 1) === threads - 1) {
    Atomics.store(control, ARRIVED, 0);
    Atomics.add(control, GENERATION, 1);
    Atomics.notify(control, GENERATION);
    return;
  }
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(control, GENERATION) !== generation) return;
  }
  while (Atomics.load(control, GENERATION) === generation) {
    if (mayBlock) Atomics.wait(control, GENERATION, generation, 50);
  }
}
