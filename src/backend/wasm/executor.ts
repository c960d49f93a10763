/**
 * Runs a plan's operations on the Wasm kernels. The same functions run on
 * the calling thread and on every worker. Each operation is cut into a few
 * chunks per thread (of rows, panels, tiles or pool rows); the threads claim
 * the chunks of a plan step (operations that may run at once) through a
 * {@linkcode WorkQueue}, so a thread the OS pauses holds up at most one chunk
 * and the small operations of a step fill the tail of its large ones. The
 * threads meet at a barrier between steps. Chunk bounds do not depend on
 * which thread runs them, so results are bit-identical for any thread count.
 *
 * @module
 */

import type { ConvGeometry, Op, Plan, View } from "../../graph/ops.ts";
import { PANEL_WIDTH, WINOGRAD_SHAPES } from "../pack.ts";
import { barrier, CONTROL_WORDS, CURSOR_STRIDE, FAILED } from "./barrier.ts";
import type { KernelExports } from "./kernels.ts";
import { BackendError } from "../../errors.ts";
import {
  elementChunks,
  optimChunks,
  optimScratchBytes,
  runOptimChunk,
  runZeroChunk,
} from "./optim.ts";

/** Where a plan lives in linear memory (byte addresses). */
export interface MemoryLayout {
  /** Start of the packed weight blob. */
  readonly weights: number;
  /** Start of the per-thread scratch (im2col rows, Winograd blocks, pool rows). */
  readonly scratch: number;
  /** Scratch bytes per thread. */
  readonly scratchBytes: number;
  /** Start of the activation arena. */
  readonly arena: number;
}

/** The micro-kernel's rows: row splits are multiples of it. */
const MR = 6;

/**
 * Chunk `i` of `count` near-equal chunks of `total` items: whole multiples of
 * `grain` (the last may be shorter), at most one grain apart in size.
 */
export function split(
  total: number,
  i: number,
  count: number,
  grain: number,
): [number, number] {
  const groups = Math.ceil(total / grain);
  const start = Math.min(total, Math.floor((i * groups) / count) * grain);
  return [start, Math.min(total, Math.floor(((i + 1) * groups) / count) * grain)];
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
 * Hands out the chunks of each step of a run to the threads that ask. Each
 * thread has its own list of a step's chunks (its share of each operation:
 * the rows next to those it made in the step before), claims from it first,
 * then takes what is left of the other threads' lists, so that a thread the
 * OS pauses holds up at most one chunk. Each claim is an `Atomics.add` on the
 * list's counter in the control block (`controlWords`), which the calling
 * thread zeroes before each run. Every thread calls
 * {@linkcode WorkQueue.forEach} once per step and fails one claim on every
 * list, so after a step each list's counter has moved by exactly its length
 * plus the thread count, which is how each thread knows where the next
 * step's claims start without further synchronisation.
 */
export class WorkQueue {
  #control: Int32Array;
  #bases: number[];

  /** A queue over the counters of `control` (`controlWords(threads)` words) for `threads` threads. */
  constructor(control: Int32Array, threads: number) {
    this.#control = control;
    this.#bases = new Array(threads).fill(0);
  }

  /** Starts a run (the counters are back at zero). */
  reset(): void {
    this.#bases.fill(0);
  }

  /**
   * Runs `body(item)` for each item of `lists` (one per thread) that thread
   * `tid` claims: from its own list first, then from the others'.
   */
  forEach<T>(lists: readonly (readonly T[])[], tid: number, body: (item: T) => void): void {
    const c = this.#control;
    const threads = lists.length;
    for (let k = 0; k < threads; k++) {
      const owner = (tid + k) % threads;
      const list = lists[owner];
      const at = CONTROL_WORDS + CURSOR_STRIDE * owner;
      const base = this.#bases[owner];
      for (let i = Atomics.add(c, at, 1) - base; i < list.length;) {
        body(list[i]);
        i = Atomics.add(c, at, 1) - base;
      }
      this.#bases[owner] = base + list.length + threads;
    }
  }
}

/**
 * One chunk of an operation: the operation's index in the plan and the
 * ranges it covers: rows [r0, r1) (GEMM rows, Winograd tiles, pool output
 * rows) and, for GEMMs, weight panels [p0, p1).
 */
export interface Chunk {
  readonly op: number;
  readonly r0: number;
  readonly r1: number;
  readonly p0: number;
  readonly p1: number;
}

/**
 * A plan cut for a thread count: for each of its steps, one list of chunks
 * per thread (see {@linkcode WorkQueue}). Thread t's list holds the t-th
 * contiguous share of each operation's chunks, in the plan's order, so the
 * larger first operations of a step come first and the small ones fill the
 * tail. For one thread each operation is one chunk.
 */
export type Schedule = readonly (readonly (readonly Chunk[])[])[];

/**
 * Cuts `plan` into chunks for `threads` threads. Chunk bounds depend only on
 * the plan and the thread count, never on which thread runs a chunk, so
 * results are bit-identical for any thread count.
 */
export function schedule(kernels: KernelExports, plan: Plan, threads: number): Schedule {
  return plan.steps.map((step) => {
    const lists: Chunk[][] = Array.from({ length: threads }, () => []);
    for (const i of step) {
      const chunks = chunksOf(kernels, plan.ops[i], i, threads);
      for (let t = 0; t < threads; t++) {
        const [from, to] = split(chunks.length, t, threads, 1);
        lists[t].push(...chunks.slice(from, to));
      }
    }
    return lists;
  });
}

/** The chunks of operation `op` (index `index`) for `threads` threads. */
function chunksOf(kernels: KernelExports, op: Op, index: number, threads: number): Chunk[] {
  const rows = (total: number, count: number, grain: number, panels = 0) =>
    Array.from({ length: count }, (_, i) => {
      const [r0, r1] = split(total, i, count, grain);
      return { op: index, r0, r1, p0: 0, p1: panels };
    }).filter((c) => c.r0 < c.r1);
  switch (op.kind) {
    case "conv2d":
      return gemmChunks(kernels, index, threads, op.n * op.oh * op.ow, op.c, op.weights.n, op);
    case "linear":
      return gemmChunks(kernels, index, threads, op.m, op.weights.k, op.weights.n, null);
    case "conv2d_grad_input":
      return gemmChunks(kernels, index, threads, op.n * op.oh * op.ow, op.c, op.oc, op);
    case "conv2d_grad_weight": {
      // Chunks of dW: output channels [r0, r1) x columns [p0, p1), each summed
      // over every pixel in the same order, so any split gives the same bits.
      // By Winograd, [p0, p1) are input channels (multiples of 8), output
      // channels multiples of 12 (the kernel transforms 4 at a time).
      const winograd = winogradWeightGrad(kernels, op);
      if (winograd) {
        if (threads === 1) return [{ op: index, r0: 0, r1: op.oc, p0: 0, p1: op.c }];
        const byInput = op.c >= op.oc;
        const f2x5 = winograd === kernels.winograd_f2x5_weight_grad;
        const [total, grain, block] = byInput
          ? [op.c, 8, f2x5 ? WINOGRAD_5X5_WEIGHT_GRAD_CB : WINOGRAD_WEIGHT_GRAD_CB]
          : [op.oc, 2 * MR, f2x5 ? WINOGRAD_5X5_WEIGHT_GRAD_OB : WINOGRAD_WEIGHT_GRAD_OB];
        // As many chunks as the kernel would make blocks of these channels on one thread, rounded
        // up to a multiple of the thread count: each chunk transforms the other side's channels
        // once, so more chunks would transform them more often than one thread does.
        const count = Math.ceil(Math.ceil(total / block) / threads) * threads;
        return Array.from({ length: count }, (_, i) => {
          const [a, b] = split(total, i, count, grain);
          return byInput
            ? { op: index, r0: 0, r1: op.oc, p0: a, p1: b }
            : { op: index, r0: a, r1: b, p0: 0, p1: op.c };
        }).filter((c) => c.r0 < c.r1 && c.p0 < c.p1);
      }
      const k = op.kh * op.kw * op.c;
      if (threads === 1) return [{ op: index, r0: 0, r1: op.oc, p0: 0, p1: k }];
      if (op.c < 8) {
        // The band path (conv1): channels in multiples of 8 (the transposed tile's width), all
        // columns (each chunk copies the input band of every block once).
        const count = chunkCount(Math.ceil(op.oc / 8), threads, 2);
        return Array.from({ length: count }, (_, i) => {
          const [r0, r1] = split(op.oc, i, count, 8);
          return { op: index, r0, r1, p0: 0, p1: k };
        }).filter((c) => c.r0 < c.r1);
      }
      if (k >= op.oc) {
        const count = chunkCount(Math.ceil(k / 8), threads, 2);
        return Array.from({ length: count }, (_, i) => {
          const [p0, p1] = split(k, i, count, 8);
          return { op: index, r0: 0, r1: op.oc, p0, p1 };
        }).filter((c) => c.p0 < c.p1);
      }
      const count = chunkCount(Math.ceil(op.oc / MR), threads, 2);
      return Array.from({ length: count }, (_, i) => {
        const [r0, r1] = split(op.oc, i, count, MR);
        return { op: index, r0, r1, p0: 0, p1: k };
      }).filter((c) => c.r0 < c.r1);
    }
    case "relu_grad":
      return rows(op.pixels, chunkCount(op.pixels, threads, 64), 1);
    case "maxpool2d":
    case "avgpool2d":
    case "adaptive_avgpool2d": {
      const count = chunkCount(op.n * op.oh, threads, 2);
      return rows(op.n * op.oh, count, count > threads ? 2 : 1);
    }
    case "maxpool2d_grad":
    case "avgpool2d_grad":
    case "adaptive_avgpool2d_grad": {
      const units = op.n * Math.ceil(op.c / POOL_GRAD_CHANNELS);
      return rows(units, chunkCount(units, threads, 1), 1);
    }
    case "dropout":
      // One chunk: whichever thread claims it draws the whole mask.
      return rows(1, 1, 1);
    case "optim_step":
      return optimChunks(op, index, threads);
    case "zero":
      return elementChunks(op.size, 4, index, threads);
    case "fold_batchnorm":
      return rows(op.n, chunkCount(op.n * op.k, threads, 1 << 16), 1);
    case "pack_gemm":
    case "pack_winograd": {
      // Whole panels: every float of a panel is written by the chunk that owns it.
      const panels = Math.ceil(op.weights.n / PANEL_WIDTH);
      const count = chunkCount(panels, threads, 2);
      return Array.from({ length: count }, (_, i) => {
        const [p0, p1] = split(panels, i, count, 1);
        return { op: index, r0: 0, r1: 0, p0, p1 };
      }).filter((c) => c.p0 < c.p1);
    }
  }
}

/**
 * Packed weights up to which a 1x1 input gradient's GEMM goes with rows outer
 * (`gemm_acc_by_rows`): each tile of 6 rows takes every panel, its rows of dY
 * in L1, the panels in L2 (2 MiB a core on the Intel host, 1 MiB on recent
 * AMD ones), and dX is written row by row. Intel Xeon, one thread, batch 16:
 * GoogLeNet's 1x1 input gradients 0.89 of the blocked order's time (the
 * 16-32-channel ones 0.60-0.80); the linear layers' weights (4-8 MB) are read
 * once by the blocked order instead of once per row tile.
 */
const BY_ROWS_PANEL_BYTES = 1 << 20;

/** Channels per unit of work of the pool backward kernels (`asm/`). */
const POOL_GRAD_CHANNELS = 16;

/** Parameters of `maxpool2d_backward` since it takes `relu` (the last). */
const MAXPOOL_BACKWARD_PARAMS = 18;

/** The geometry a convolution-like GEMM is cut by (a forward convolution or an input gradient). */
interface ConvShape {
  readonly n: number;
  readonly oh: number;
  readonly ow: number;
  readonly winograd: { readonly variant: keyof typeof WINOGRAD_SHAPES } | null;
}

/**
 * Chunks of a GEMM of `m` rows, depth `c` (per tap) and `oc` columns: rows in
 * multiples of the micro-kernel's, or column panels when rows are few, or
 * Winograd tiles (at most one kernel block each, so that each chunk takes one
 * pass over the weights).
 */
function gemmChunks(
  kernels: KernelExports,
  index: number,
  threads: number,
  m: number,
  c: number,
  oc: number,
  conv: ConvShape | null,
): Chunk[] {
  const rows = (total: number, count: number, grain: number, panels = 0) =>
    Array.from({ length: count }, (_, i) => {
      const [r0, r1] = split(total, i, count, grain);
      return { op: index, r0, r1, p0: 0, p1: panels };
    }).filter((ch) => ch.r0 < ch.r1);
  if (conv?.winograd) {
    const { n, m: tile } = WINOGRAD_SHAPES[conv.winograd.variant];
    const tiles = conv.n * Math.ceil(conv.oh / tile) * Math.ceil(conv.ow / tile);
    if (threads === 1) return rows(tiles, 1, 1);
    const block = kernels.winograd_block_tiles(n * n, c, oc);
    const least = Math.ceil(tiles / block);
    const count = Math.ceil(Math.max(chunkCount(tiles, threads, 4 * MR), least) / threads) *
      threads;
    return rows(tiles, count, count > threads ? MR : 1);
  }
  const panels = Math.ceil(oc / PANEL_WIDTH);
  if (threads === 1 || m >= 8 * MR * threads) {
    return rows(m, chunkCount(m, threads, 4 * MR), MR, panels);
  }
  // Too few rows to share (small maps, batch-1 linear layers): share the panels.
  const count = chunkCount(panels, threads, 2);
  return Array.from({ length: count }, (_, i) => {
    const [p0, p1] = split(panels, i, count, 1);
    return { op: index, r0: 0, r1: m, p0, p1 };
  }).filter((ch) => ch.p0 < ch.p1);
}

/** Scratch bytes one thread needs for the plan's convolutions, pools and gradients. */
export function scratchBytes(kernels: KernelExports, plan: Plan): number {
  let bytes = 0;
  for (const op of plan.ops) {
    if ((op.kind === "conv2d" || op.kind === "conv2d_grad_input") && op.winograd) {
      const oc = op.kind === "conv2d" ? op.weights.n : op.oc;
      bytes = Math.max(bytes, kernels.winograd_scratch_bytes(op.c, oc));
    } else if (op.kind === "conv2d" && !isPointwise(op)) {
      bytes = Math.max(bytes, kernels.conv2d_scratch_bytes(op.kh * op.kw * op.c));
    } else if (op.kind === "conv2d_grad_input" && !(op.kh === 1 && op.kw === 1 && op.ph === 0)) {
      bytes = Math.max(bytes, kernels.conv2d_scratch_bytes(op.kh * op.kw * op.c));
    } else if (op.kind === "conv2d_grad_weight") {
      bytes = Math.max(bytes, weightGradScratch(kernels, op));
    } else if (op.kind === "maxpool2d") {
      bytes = Math.max(bytes, kernels.maxpool2d_scratch_bytes(op.w, op.c));
    } else if (op.kind === "pack_winograd") {
      bytes = Math.max(bytes, weightKernels(kernels).pack_winograd_scratch_bytes());
    } else if (op.kind === "optim_step") {
      bytes = Math.max(bytes, optimScratchBytes(op));
    }
  }
  return Math.ceil(bytes / 64) * 64;
}

function sum(outputs: readonly { channels: number }[]): number {
  return outputs.reduce((total, o) => total + o.channels, 0);
}

/**
 * Whether a weight gradient is a plain GEMM over pixels (a 1x1 stride-1
 * convolution without padding, or a linear layer): `gemm_weight_grad`'s case.
 */
function isDense(op: Op & { kind: "conv2d_grad_weight" }): boolean {
  return op.kh === 1 && op.kw === 1 && op.sh === 1 && op.sw === 1 && op.ph === 0 &&
    op.pw === 0 && op.oh === op.h && op.ow === op.w;
}

function isPointwise(op: Op & { kind: "conv2d" }): boolean {
  return op.kh === 1 && op.kw === 1 && op.sh === 1 && op.sw === 1 && op.ph === 0 && op.pw === 0;
}

/**
 * Runs one chunk of `plan` (from {@linkcode schedule}) with the thread's
 * `scratch` (its `layout.scratchBytes` bytes).
 */
export function runChunk(
  k: KernelExports,
  plan: Plan,
  layout: MemoryLayout,
  chunk: Chunk,
  scratch: number,
  seeds: ArrayLike<number>,
): void {
  const op = plan.ops[chunk.op];
  const { r0, r1, p0, p1 } = chunk;
  const at = (v: View) => layout.arena + (plan.buffers[v.buffer].offset + v.channelOffset) * 4;
  switch (op.kind) {
    case "conv2d": {
      if (op.winograd) {
        const kernel = k[`winograd_${op.winograd.variant}_bias_relu`];
        const u = layout.weights + op.winograd.offset * 4;
        const { x, y } = op;
        kernel(
          at(x),
          x.stride,
          op.h,
          op.w,
          op.c,
          u,
          op.weights.n,
          at(y),
          y.stride,
          scratch,
          r0,
          r1,
        );
        return;
      }
      const w = layout.weights + op.weights.offset * 4;
      if (isPointwise(op)) {
        // Each output takes its own panels of the GEMM; the driver adds 32 bytes per panel to C.
        let first = 0;
        for (let o = 0; o <= op.moreOutputs.length; o++) {
          const { y, channels } = o === 0
            ? { y: op.y, channels: op.weights.n - sum(op.moreOutputs) }
            : op.moreOutputs[o - 1];
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
              r0,
              r1,
              from,
              to,
            );
          }
          first = last;
        }
        return;
      }
      k.conv2d_bias_relu(
        at(op.x),
        op.x.stride,
        ...geometry(op),
        w,
        op.weights.n,
        at(op.y),
        op.y.stride,
        scratch,
        r0,
        r1,
        p0,
        p1,
      );
      return;
    }
    case "linear": {
      const gemm = op.relu ? k.gemm_bias_relu : k.gemm_bias;
      const w = layout.weights + op.weights.offset * 4;
      gemm(
        op.weights.n,
        op.weights.k,
        at(op.x),
        op.x.stride,
        w,
        at(op.y),
        op.y.stride,
        r0,
        r1,
        p0,
        p1,
      );
      return;
    }
    case "maxpool2d":
    case "avgpool2d": {
      const pool = op.kind === "maxpool2d" ? k.maxpool2d : k.avgpool2d;
      const { x, y } = op;
      pool(
        at(x),
        x.stride,
        op.h,
        op.w,
        op.c,
        op.k,
        op.s,
        op.p,
        op.oh,
        op.ow,
        at(y),
        y.stride,
        scratch,
        r0,
        r1,
      );
      return;
    }
    case "adaptive_avgpool2d": {
      const { x, y } = op;
      k.adaptive_avgpool2d(
        at(x),
        x.stride,
        op.h,
        op.w,
        op.c,
        op.oh,
        op.ow,
        at(y),
        y.stride,
        r0,
        r1,
      );
      return;
    }
    case "dropout":
      k.dropout(at(op.x), op.count, op.p, seeds[op.stream]);
      return;
    case "conv2d_grad_input": {
      const { dy, dx } = op;
      if (op.winograd) {
        const kernel = k[`winograd_${op.winograd.variant}_${op.accumulate ? "acc" : "bias"}`];
        const u = layout.weights + op.winograd.offset * 4;
        kernel(at(dy), dy.stride, op.h, op.w, op.c, u, op.oc, at(dx), dx.stride, scratch, r0, r1);
        return;
      }
      const w = layout.weights + op.weights.offset * 4;
      if (op.kh === 1 && op.kw === 1 && op.ph === 0 && op.pw === 0) {
        // Rows outer when every panel stays in L2 (see BY_ROWS_PANEL_BYTES); the same bits either way.
        const byRows = Math.ceil(op.oc / PANEL_WIDTH) * (op.c + 1) * PANEL_WIDTH * 4 <=
          BY_ROWS_PANEL_BYTES;
        const gemm = op.accumulate
          ? (byRows && k.gemm_acc_by_rows) || k.gemm_acc
          : (byRows && k.gemm_bias_by_rows) || k.gemm_bias;
        gemm(op.oc, op.c, at(dy), dy.stride, w, at(dx), dx.stride, r0, r1, p0, p1);
        return;
      }
      const conv = op.accumulate ? k.conv2d_acc : k.conv2d_bias;
      conv(
        at(dy),
        dy.stride,
        ...geometry(op),
        w,
        op.oc,
        at(dx),
        dx.stride,
        scratch,
        r0,
        r1,
        p0,
        p1,
      );
      return;
    }
    case "conv2d_grad_weight": {
      const { x, dy } = op;
      const dw = layout.weights + op.grad.offset * 4;
      const winograd = winogradWeightGrad(k, op);
      if (winograd) {
        // Output channels [r0, r1) x input channels [p0, p1).
        winograd(
          at(x),
          x.stride,
          op.n,
          op.h,
          op.w,
          op.c,
          at(dy),
          dy.stride,
          op.oc,
          dw,
          scratch,
          r0,
          r1,
          p0,
          p1,
        );
      } else if (isDense(op) && k.gemm_weight_grad) {
        // Weight and bias gradient in one pass over dY (the bias with the chunks that start at column 0).
        const db = p0 === 0 ? dw + op.oc * op.grad.k * 4 : 0;
        k.gemm_weight_grad(
          at(x),
          x.stride,
          op.n * op.oh * op.ow,
          op.c,
          at(dy),
          dy.stride,
          op.oc,
          dw,
          db,
          scratch,
          r0,
          r1,
          p0,
          p1,
        );
        return;
      } else {
        k.conv2d_weight_grad(
          at(x),
          x.stride,
          op.n,
          ...geometry(op),
          at(dy),
          dy.stride,
          op.oc,
          dw,
          scratch,
          r0,
          r1,
          p0,
          p1,
        );
      }
      if (p0 === 0) {
        const db = dw + op.oc * op.grad.k * 4;
        k.bias_grad(at(dy), dy.stride, op.n * op.oh * op.ow, db, r0, r1);
      }
      return;
    }
    case "relu_grad":
      k.relu_backward(at(op.dy), op.dy.stride, at(op.y), op.y.stride, op.c, r0, r1);
      return;
    case "maxpool2d_grad":
      k.maxpool2d_backward(
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
        at(op.dy),
        op.dy.stride,
        at(op.dx),
        op.dx.stride,
        op.accumulate ? 1 : 0,
        r0,
        r1,
        op.relu ? 1 : 0,
      );
      // A module built before the pool took `relu` (a precompiled `wasmModule`) ignores it: mask here.
      if (op.relu && k.maxpool2d_backward.length < MAXPOOL_BACKWARD_PARAMS) {
        const groups = Math.ceil(op.c / POOL_GRAD_CHANNELS), plane = op.h * op.w;
        for (let g = r0; g < r1;) {
          const img = Math.floor(g / groups), end = Math.min(r1, (img + 1) * groups);
          const c0 = (g - img * groups) * POOL_GRAD_CHANNELS;
          const c1 = Math.min((end - img * groups) * POOL_GRAD_CHANNELS, op.c);
          k.relu_backward(
            at(op.dx) + c0 * 4,
            op.dx.stride,
            at(op.x) + c0 * 4,
            op.x.stride,
            c1 - c0,
            img * plane,
            (img + 1) * plane,
          );
          g = end;
        }
      }
      return;
    case "avgpool2d_grad":
      k.avgpool2d_backward(
        at(op.dy),
        op.dy.stride,
        op.h,
        op.w,
        op.c,
        op.k,
        op.s,
        op.p,
        op.oh,
        op.ow,
        at(op.dx),
        op.dx.stride,
        op.accumulate ? 1 : 0,
        r0,
        r1,
      );
      return;
    case "adaptive_avgpool2d_grad":
      k.adaptive_avgpool2d_backward(
        at(op.dy),
        op.dy.stride,
        op.h,
        op.w,
        op.c,
        op.oh,
        op.ow,
        at(op.dx),
        op.dx.stride,
        op.accumulate ? 1 : 0,
        r0,
        r1,
      );
      return;
    case "optim_step":
      runOptimChunk(k, layout.weights, op, chunk, scratch);
      return;
    case "zero":
      runZeroChunk(k, layout.weights, op, chunk);
      return;
    case "fold_batchnorm": {
      const w = (floats: number) => layout.weights + floats * 4;
      weightKernels(k).fold_batchnorm(
        w(op.weight),
        w(op.batchNorm),
        op.eps,
        op.n,
        op.k,
        w(op.outWeight),
        w(op.outBias),
        r0,
        r1,
      );
      return;
    }
    case "pack_gemm": {
      const w = (floats: number) => layout.weights + floats * 4;
      const { rows, cols } = op;
      weightKernels(k).pack_gemm(
        w(op.source),
        op.base,
        op.weights.k,
        op.weights.n,
        rows.c,
        rows.a,
        rows.b,
        cols.c,
        cols.a,
        cols.b,
        op.bias < 0 ? 0 : w(op.bias),
        w(op.weights.offset),
        p0,
        p1,
      );
      return;
    }
    case "pack_winograd": {
      const w = (floats: number) => layout.weights + floats * 4;
      const { n, r } = WINOGRAD_SHAPES[op.weights.variant];
      weightKernels(k).pack_winograd(
        w(op.source),
        op.base,
        op.os,
        op.cs,
        op.ts,
        op.bias < 0 ? 0 : w(op.bias),
        op.c,
        op.weights.n,
        n,
        r,
        w(op.weights.offset),
        scratch,
        p0,
        p1,
      );
      return;
    }
  }
}

/**
 * The weight-packing kernels, or a BackendError for a module built before
 * them (a precompiled `wasmModule`): the model then repacks in TypeScript.
 */
export function weightKernels(k: KernelExports): Required<
  Pick<
    KernelExports,
    "pack_gemm" | "pack_winograd" | "pack_winograd_scratch_bytes" | "fold_batchnorm"
  >
> {
  const { pack_gemm, pack_winograd, pack_winograd_scratch_bytes, fold_batchnorm } = k;
  if (!pack_gemm || !pack_winograd || !pack_winograd_scratch_bytes || !fold_batchnorm) {
    throw new BackendError(
      "The kernel module has no weight-packing exports (pack_gemm, pack_winograd, " +
        "fold_batchnorm): rebuild it with `deno task build`",
    );
  }
  return { pack_gemm, pack_winograd, pack_winograd_scratch_bytes, fold_batchnorm };
}

/**
 * A convolution's geometry in the order the im2col-family kernels take it:
 * h, w, c, kh, kw, sh, sw, ph, pw, oh, ow.
 */
function geometry(
  g: ConvGeometry,
): [number, number, number, number, number, number, number, number, number, number, number] {
  return [g.h, g.w, g.c, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow];
}

/** Scratch bytes of a weight-gradient kernel. */
function weightGradScratch(
  kernels: KernelExports,
  op: Op & { kind: "conv2d_grad_weight" },
): number {
  const winograd = winogradWeightGrad(kernels, op);
  if (winograd && winograd === kernels.winograd_f2x5_weight_grad) {
    return kernels.winograd_f2x5_weight_grad_scratch_bytes!();
  }
  if (winograd) return kernels.winograd_weight_grad_scratch_bytes!();
  if (isDense(op) && kernels.gemm_weight_grad_scratch_bytes) {
    return kernels.gemm_weight_grad_scratch_bytes(op.c, op.oc);
  }
  return kernels.conv2d_weight_grad_scratch_bytes(op.c, op.kh, op.kw, op.ow, op.oc);
}

/**
 * Smallest map side whose 5x5 weight gradient goes by Winograd F(2x2, 5x5)
 * (GoogLeNet's 5x5 layers, batch 16, one thread, process CPU time against
 * the direct kernel: 0.54-0.78x on 28x28 and 14x14 maps, 1.2x on 7x7, where
 * a 4x4 grid of 2x2 tiles covers 64 pixels for 49 and most patches cross
 * the edge). 12, not 14: the same even-sided tiling, and the training parity
 * fixtures' 12x14 maps (96x112 inputs) then check it against PyTorch. Its
 * error against f64 is up to 1.5e-5 of the largest element, 5-10x the direct kernel's.
 */
const WINOGRAD_5X5_WEIGHT_GRAD_MIN_SIDE = 12;

/** Smallest map side whose 3x3 weight gradient goes by Winograd F(4x4, 3x3). */
const WINOGRAD_WEIGHT_GRAD_MIN_SIDE = 7;

/**
 * The most output (OB) and input (CB) channels of one block of
 * `winograd_f4x3_weight_grad` (asm/winograd_grad.ts): the threads' chunks follow its blocks.
 */
const WINOGRAD_WEIGHT_GRAD_OB = 96, WINOGRAD_WEIGHT_GRAD_CB = 64;

/** The same for `winograd_f2x5_weight_grad` (asm/winograd_grad5.ts). */
const WINOGRAD_5X5_WEIGHT_GRAD_OB = 128, WINOGRAD_5X5_WEIGHT_GRAD_CB = 48;

/**
 * The Winograd kernel for a weight gradient, or null for the direct one:
 * F(4x4, 3x3) for 3x3 "same" stride-1 convolutions on maps of at least 7x7
 * with channel counts that are multiples of 4 (batch 16, one thread, CPU time:
 * 2.3-2.7x faster than the direct kernel on 56x56, 1.9-2.3x on 28x28,
 * 1.1-1.7x on 14x14 when measured against the first Winograd kernel; since it
 * transforms into the GEMM's packed layout, 1.5x faster than the direct kernel
 * on 7x7 too (inception5's 3x3s, `bench/winograd_weight_grad.ts --direct`)).
 * Its L2 error against f64 on those layers is 4x the direct kernel's (8e-6 at
 * most), far below the network's float32 error (3.7e-4).
 * F(2x2, 5x5) for 5x5 "same" stride-1 convolutions on maps of at least 12x12
 * (see WINOGRAD_5X5_WEIGHT_GRAD_MIN_SIDE). Null also for a module built before these kernels.
 */
function winogradWeightGrad(
  kernels: KernelExports,
  op: Op & { kind: "conv2d_grad_weight" },
): KernelExports["winograd_f4x3_weight_grad"] | null {
  const same5x5 = op.kh === 5 && op.kw === 5 && op.sh === 1 && op.sw === 1 && op.ph === 2 &&
    op.pw === 2 && op.oh === op.h && op.ow === op.w;
  if (same5x5) {
    if (op.c % 4 !== 0 || op.oc % 4 !== 0) return null;
    if (Math.min(op.h, op.w) < WINOGRAD_5X5_WEIGHT_GRAD_MIN_SIDE) return null;
    return kernels.winograd_f2x5_weight_grad ?? null;
  }
  const same3x3 = op.kh === 3 && op.kw === 3 && op.sh === 1 && op.sw === 1 && op.ph === 1 &&
    op.pw === 1 && op.oh === op.h && op.ow === op.w;
  if (!same3x3 || op.c % 4 !== 0 || op.oc % 4 !== 0) return null;
  if (Math.min(op.h, op.w) < WINOGRAD_WEIGHT_GRAD_MIN_SIDE) return null;
  return kernels.winograd_f4x3_weight_grad ?? null;
}

/** Numbers a {@linkcode ChunkTrace} records per chunk: operation, step, start and end (ms since the epoch), thread. */
export const TRACE_FIELDS = 5;

/**
 * Where the threads of a traced run write what they ran (for benches): in
 * thread t's region of `chunks` records (from `t * chunks * TRACE_FIELDS`), a
 * count, then one record of `TRACE_FIELDS` numbers per chunk, then one per
 * barrier (operation -1: the step, when the thread arrived and left).
 */
export interface ChunkTrace {
  readonly buffer: Float64Array;
  /** Records per thread. */
  readonly records: number;
  /**
   * One flag per thread, set (atomically, after its last record) when the
   * thread has written all of its records: a thread records its last barrier
   * after leaving it, so the caller may leave first and must wait for these.
   */
  readonly done: Int32Array;
}

/**
 * Thread `tid`'s part of a run on the pool's `control` block: in each step,
 * the chunks it claims from `queue` (it runs none once any thread has failed),
 * then the barrier that every thread meets, failed or not. Returns the first
 * error this thread hit (the block's FAILED flag is then set), or null.
 */
export function runSteps(
  k: KernelExports,
  plan: Plan,
  layout: MemoryLayout,
  steps: Schedule,
  queue: WorkQueue,
  control: Int32Array,
  tid: number,
  seeds: ArrayLike<number>,
  mayBlock: boolean,
  trace: ChunkTrace | null = null,
): unknown {
  const threads = steps[0]?.length ?? 1;
  const scratch = layout.scratch + tid * layout.scratchBytes;
  let failure: unknown = null;
  // A traced run's records: [count, then op, step, start, end, thread per record].
  const base = trace ? tid * trace.records * TRACE_FIELDS : 0;
  const record = (op: number, step: number, start: number, end: number) => {
    const t = trace!.buffer, n = t[base];
    if (n + 2 > trace!.records) return;
    t.set([op, step, start, end, tid], base + (n + 1) * TRACE_FIELDS);
    t[base] = n + 1;
  };
  const now = () => performance.timeOrigin + performance.now();
  if (trace) trace.buffer[base] = 0;
  for (const [s, step] of steps.entries()) {
    queue.forEach(step, tid, (chunk) => {
      if (Atomics.load(control, FAILED) !== 0) return;
      const start = trace ? now() : 0;
      try {
        runChunk(k, plan, layout, chunk, scratch, seeds);
      } catch (error) {
        failure ??= error;
        Atomics.store(control, FAILED, 1);
      }
      if (trace) record(chunk.op, s, start, now());
    });
    const arrived = trace ? now() : 0;
    barrier(control, threads, mayBlock);
    if (trace) record(-1, s, arrived, now());
  }
  if (trace) {
    Atomics.store(trace.done, tid, 1);
    Atomics.notify(trace.done, tid);
  }
  return failure;
}

/** Runs a whole schedule on the calling thread, one chunk after another. */
export function runSerial(
  k: KernelExports,
  plan: Plan,
  layout: MemoryLayout,
  steps: Schedule,
  seeds: ArrayLike<number>,
): void {
  for (const step of steps) {
    for (const list of step) {
      for (const chunk of list) runChunk(k, plan, layout, chunk, layout.scratch, seeds);
    }
  }
}
