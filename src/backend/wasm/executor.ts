/**
 * Runs a plan's operations on the Wasm kernels. The same function runs on
 * the calling thread and on every worker. Each operation is cut into a few
 * chunks per thread (of rows, panels, tiles or pool rows) that the threads
 * claim from a shared counter, so a thread the OS pauses holds up at most one
 * chunk; the threads meet at a barrier between operations. Chunk bounds do
 * not depend on which thread runs them, so results are bit-identical for any
 * thread count.
 *
 * @module
 */

import type { Op, Plan, View } from "../../graph/ops.ts";
import { PANEL_WIDTH, WINOGRAD_SHAPES } from "../pack.ts";
import type { KernelExports } from "./kernels.ts";

/** Where a plan lives in linear memory (byte addresses). */
export interface MemoryLayout {
  /** Start of the packed weight blob. */
  readonly weights: number;
  /** Start of the per-thread im2col scratch. */
  readonly scratch: number;
  /** Scratch bytes per thread. */
  readonly scratchBytes: number;
  /** Start of the activation arena. */
  readonly arena: number;
}

/** The micro-kernel's rows: row splits are multiples of it. */
const MR = 6;

/** Thread `tid`'s share [start, end) of `total` items, in multiples of `grain`. */
export function share(
  total: number,
  tid: number,
  threads: number,
  grain: number,
): [number, number] {
  const chunk = Math.ceil(total / grain / threads) * grain;
  const start = Math.min(total, tid * chunk);
  return [start, Math.min(total, start + chunk)];
}

/** Chunks per thread of a large operation: enough to absorb a paused thread, few enough to stay cheap. */
const CHUNKS_PER_THREAD = 4;

/**
 * How many chunks `units` items are cut into for `threads` threads: one for
 * a single thread; else up to CHUNKS_PER_THREAD per thread, each at least
 * `least` items, and never fewer than one per thread.
 */
export function chunkCount(units: number, threads: number, least: number): number {
  if (threads === 1) return 1;
  return Math.max(threads, Math.min(threads * CHUNKS_PER_THREAD, Math.floor(units / least)));
}

/**
 * Hands out the chunks of each operation of a run to the threads that ask.
 * With no control block (one thread) it hands out every chunk in order;
 * with one, each claim is an `Atomics.add` on the shared counter at `index`,
 * which the calling thread zeroes before each run. Every thread calls
 * {@linkcode WorkQueue.forEach} once per operation, so after an operation of
 * `count` chunks the counter has moved by exactly `count + threads` claims
 * (one failed claim per thread), which is how each thread knows where the
 * next operation's chunks start without further synchronisation.
 */
export class WorkQueue {
  #control: Int32Array | null;
  #index: number;
  #base = 0;

  constructor(control: Int32Array | null = null, index = 0) {
    this.#control = control;
    this.#index = index;
  }

  /** Starts a run (the counter is back at zero). */
  reset(): void {
    this.#base = 0;
  }

  /** Runs `body(i)` for each chunk `i` of `count` that this thread claims. */
  forEach(count: number, threads: number, body: (chunk: number) => void): void {
    const c = this.#control;
    if (!c) {
      for (let i = 0; i < count; i++) body(i);
      return;
    }
    const base = this.#base;
    for (let i = Atomics.add(c, this.#index, 1) - base; i < count;) {
      body(i);
      i = Atomics.add(c, this.#index, 1) - base;
    }
    this.#base = base + count + threads;
  }
}

/** The queue of a single thread: every chunk, in order. */
export const SERIAL: WorkQueue = new WorkQueue();

/**
 * Runs `body(m0, m1, p0, p1)` for this thread's chunks of a GEMM with `rows`
 * rows and `panels` column panels: chunks of rows (multiples of MR) when each
 * thread gets at least 8 micro-kernel tiles of them, else of panels (small
 * maps and batch-1 linear layers).
 */
function gemmChunks(
  rows: number,
  panels: number,
  threads: number,
  queue: WorkQueue,
  body: (m0: number, m1: number, p0: number, p1: number) => void,
): void {
  if (rows >= 8 * MR * threads) {
    const count = chunkCount(rows, threads, 4 * MR);
    queue.forEach(count, threads, (i) => {
      const [m0, m1] = share(rows, i, count, MR);
      if (m0 < m1) body(m0, m1, 0, panels);
    });
  } else {
    const count = chunkCount(panels, threads, 2);
    queue.forEach(count, threads, (i) => {
      const [p0, p1] = share(panels, i, count, 1);
      if (p0 < p1) body(0, rows, p0, p1);
    });
  }
}

/** Runs `body(r0, r1)` for this thread's chunks of `rows` rows (grain 1, or MR when cut finer than one chunk per thread). */
function rowChunks(
  rows: number,
  threads: number,
  queue: WorkQueue,
  least: number,
  body: (r0: number, r1: number) => void,
): void {
  const count = chunkCount(rows, threads, least);
  const grain = count > threads ? Math.min(MR, least) : 1;
  queue.forEach(count, threads, (i) => {
    const [r0, r1] = share(rows, i, count, grain);
    if (r0 < r1) body(r0, r1);
  });
}

/** Scratch bytes one thread needs for the plan's convolutions. */
export function scratchBytes(kernels: KernelExports, plan: Plan): number {
  let bytes = 0;
  for (const op of plan.ops) {
    if (op.kind === "conv2d" && op.winograd) {
      bytes = Math.max(bytes, kernels.winograd_scratch_bytes(op.c, op.weights.n));
    } else if (op.kind === "conv2d" && !isPointwise(op)) {
      bytes = Math.max(bytes, kernels.conv2d_scratch_bytes(op.kh * op.kw * op.c));
    }
  }
  return Math.ceil(bytes / 64) * 64;
}

function sum(outputs: readonly { channels: number }[]): number {
  return outputs.reduce((total, o) => total + o.channels, 0);
}

function isPointwise(op: Op & { kind: "conv2d" }): boolean {
  return op.kh === 1 && op.kw === 1 && op.sh === 1 && op.sw === 1 && op.ph === 0 && op.pw === 0;
}

/**
 * Runs thread `tid`'s chunks of operation `op` (claimed from `queue`; all of
 * them for one thread). Every thread calls it for every operation.
 */
export function runOp(
  k: KernelExports,
  plan: Plan,
  layout: MemoryLayout,
  op: Op,
  tid: number,
  threads: number,
  seeds: ArrayLike<number>,
  queue: WorkQueue = SERIAL,
): void {
  const at = (v: View) => layout.arena + (plan.buffers[v.buffer].offset + v.channelOffset) * 4;
  const scratch = layout.scratch + tid * layout.scratchBytes;
  switch (op.kind) {
    case "conv2d": {
      if (op.winograd) {
        const { variant } = op.winograd;
        const { m } = WINOGRAD_SHAPES[variant];
        const tiles = op.n * Math.ceil(op.oh / m) * Math.ceil(op.ow / m);
        const kernel = k[`winograd_${variant}_bias_relu`];
        const u = layout.weights + op.winograd.offset * 4;
        rowChunks(tiles, threads, queue, 4 * MR, (t0, t1) =>
          kernel(
            at(op.x),
            op.x.stride,
            op.h,
            op.w,
            op.c,
            u,
            op.weights.n,
            at(op.y),
            op.y.stride,
            scratch,
            t0,
            t1,
          ));
        return;
      }
      const w = layout.weights + op.weights.offset * 4;
      const panels = Math.ceil(op.weights.n / PANEL_WIDTH);
      if (isPointwise(op)) {
        // Each output takes its own panels of the GEMM; the driver adds 32 bytes per panel to C.
        const outputs = [
          { y: op.y, channels: op.weights.n - sum(op.moreOutputs) },
          ...op.moreOutputs,
        ];
        gemmChunks(op.n * op.oh * op.ow, panels, threads, queue, (m0, m1, p0, p1) => {
          let first = 0;
          for (const { y, channels } of outputs) {
            const last = first + Math.ceil(channels / PANEL_WIDTH);
            const from = Math.max(p0, first), to = Math.min(p1, last);
            if (from < to) {
              const c = at(y) - first * PANEL_WIDTH * 4;
              k.gemm_bias_relu(
                op.weights.n,
                op.c,
                at(op.x),
                op.x.stride,
                w,
                c,
                y.stride,
                m0,
                m1,
                from,
                to,
              );
            }
            first = last;
          }
        });
      } else {
        gemmChunks(
          op.n * op.oh * op.ow,
          panels,
          threads,
          queue,
          (m0, m1, p0, p1) =>
            k.conv2d_bias_relu(
              at(op.x),
              op.x.stride,
              op.h,
              op.w,
              op.c,
              op.kh,
              op.kw,
              op.sh,
              op.sw,
              op.ph,
              op.pw,
              op.oh,
              op.ow,
              w,
              op.weights.n,
              at(op.y),
              op.y.stride,
              scratch,
              m0,
              m1,
              p0,
              p1,
            ),
        );
      }
      return;
    }
    case "linear": {
      const gemm = op.relu ? k.gemm_bias_relu : k.gemm_bias;
      const w = layout.weights + op.weights.offset * 4;
      const panels = Math.ceil(op.weights.n / PANEL_WIDTH);
      gemmChunks(op.m, panels, threads, queue, (m0, m1, p0, p1) =>
        gemm(
          op.weights.n,
          op.weights.k,
          at(op.x),
          op.x.stride,
          w,
          at(op.y),
          op.y.stride,
          m0,
          m1,
          p0,
          p1,
        ));
      return;
    }
    case "maxpool2d":
    case "avgpool2d": {
      const pool = op.kind === "maxpool2d" ? k.maxpool2d : k.avgpool2d;
      rowChunks(op.n * op.oh, threads, queue, 2, (r0, r1) =>
        pool(
          at(op.x),
          op.x.stride,
          op.h,
          op.w,
          op.c,
          op.k,
          op.s,
          op.p,
          op.oh,
          op.ow,
          at(op.y),
          op.y.stride,
          r0,
          r1,
        ));
      return;
    }
    case "adaptive_avgpool2d": {
      rowChunks(op.n * op.oh, threads, queue, 2, (r0, r1) =>
        k.adaptive_avgpool2d(
          at(op.x),
          op.x.stride,
          op.h,
          op.w,
          op.c,
          op.oh,
          op.ow,
          at(op.y),
          op.y.stride,
          r0,
          r1,
        ));
      return;
    }
    case "dropout":
      // One chunk: whichever thread claims it draws the whole mask.
      queue.forEach(1, threads, () => k.dropout(at(op.x), op.count, op.p, seeds[op.stream]));
      return;
  }
}
