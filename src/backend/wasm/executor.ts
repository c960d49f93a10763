/**
 * Runs a plan's operations on the Wasm kernels. The same function runs on
 * the calling thread and on every worker: each thread takes its share of
 * each operation's rows (or panels) and the threads meet at a barrier
 * between operations.
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

/**
 * Thread `tid`'s block [m0, m1) x [p0, p1) of a GEMM with `rows` rows and
 * `panels` column panels: rows when each thread gets at least 8 micro-kernel
 * tiles of them, else panels (small maps and batch-1 linear layers).
 */
export function split(
  rows: number,
  panels: number,
  tid: number,
  threads: number,
): [number, number, number, number] {
  if (threads === 1) return [0, rows, 0, panels];
  if (rows >= 8 * MR * threads) return [...share(rows, tid, threads, MR), 0, panels];
  return [0, rows, ...share(panels, tid, threads, 1)];
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

/** Runs operation `op` for thread `tid` of `threads`. */
export function runOp(
  k: KernelExports,
  plan: Plan,
  layout: MemoryLayout,
  op: Op,
  tid: number,
  threads: number,
  seeds: ArrayLike<number>,
): void {
  const at = (v: View) => layout.arena + (plan.buffers[v.buffer].offset + v.channelOffset) * 4;
  switch (op.kind) {
    case "conv2d": {
      if (op.winograd) {
        const { variant } = op.winograd;
        const { m } = WINOGRAD_SHAPES[variant];
        const tiles = op.n * Math.ceil(op.oh / m) * Math.ceil(op.ow / m);
        const [t0, t1] = share(tiles, tid, threads, 1);
        if (t0 < t1) {
          k[`winograd_${variant}_bias_relu`](
            at(op.x),
            op.x.stride,
            op.h,
            op.w,
            op.c,
            layout.weights + op.winograd.offset * 4,
            op.weights.n,
            at(op.y),
            op.y.stride,
            layout.scratch + tid * layout.scratchBytes,
            t0,
            t1,
          );
        }
        return;
      }
      const w = layout.weights + op.weights.offset * 4;
      const [m0, m1, p0, p1] = split(
        op.n * op.oh * op.ow,
        Math.ceil(op.weights.n / PANEL_WIDTH),
        tid,
        threads,
      );
      if (m0 >= m1 || p0 >= p1) return;
      if (isPointwise(op)) {
        // Each output takes its own panels of the GEMM; the driver adds 32 bytes per panel to C.
        let first = 0;
        const outputs = [
          { y: op.y, channels: op.weights.n - sum(op.moreOutputs) },
          ...op.moreOutputs,
        ];
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
      } else {
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
          layout.scratch + tid * layout.scratchBytes,
          m0,
          m1,
          p0,
          p1,
        );
      }
      return;
    }
    case "linear": {
      const [m0, m1, p0, p1] = split(op.m, Math.ceil(op.weights.n / PANEL_WIDTH), tid, threads);
      if (m0 >= m1 || p0 >= p1) return;
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
        m0,
        m1,
        p0,
        p1,
      );
      return;
    }
    case "maxpool2d":
    case "avgpool2d": {
      const [r0, r1] = share(op.n * op.oh, tid, threads, 1);
      if (r0 >= r1) return;
      const pool = op.kind === "maxpool2d" ? k.maxpool2d : k.avgpool2d;
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
      );
      return;
    }
    case "adaptive_avgpool2d": {
      const [r0, r1] = share(op.n * op.oh, tid, threads, 1);
      if (r0 < r1) {
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
        );
      }
      return;
    }
    case "dropout":
      if (tid === 0) k.dropout(at(op.x), op.count, op.p, seeds[op.stream]);
      return;
  }
}
