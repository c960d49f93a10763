/**
 * Builds a {@linkcode Plan}: layers append operations on symbolic buffers,
 * then the arena planner places the buffers so that buffers whose lifetimes
 * overlap never share memory (greedy by size, first fit, as TFLite's arena).
 *
 * @module
 */

import { ShapeError } from "../errors.ts";
import type { BufferSpec, Op, Plan, View } from "./ops.ts";

/** Options of {@linkcode PlanBuilder.build}. */
export interface BuildOptions {
  /** The input transform ({@linkcode Plan.inputTransform}); none by default. */
  readonly inputTransform?: Plan["inputTransform"];
  /**
   * An operation index no step spans: the backward half of a training plan
   * starts a step of its own. None by default.
   */
  readonly stepBreak?: number;
  /** The weight layout the operations' offsets belong to ({@linkcode Plan.weightLayout}); none by default. */
  readonly weightLayout?: Plan["weightLayout"];
}

/** A symbolic NHWC activation: a view plus its logical shape. */
export interface Value {
  readonly view: View;
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly c: number;
}

/** PyTorch's pooling output size (`pooling_output_shape` in ATen). */
export function poolOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padding: number,
  ceilMode: boolean,
): number {
  let out = Math.floor((size + 2 * padding - kernel + (ceilMode ? stride - 1 : 0)) / stride) + 1;
  // The last window must start inside the input or the left padding.
  if (ceilMode && (out - 1) * stride >= size + padding) out--;
  return out;
}

/** Records operations and buffer uses, then lays out the arena. */
export class PlanBuilder {
  readonly ops: Op[] = [];
  /** Each buffer's dense shape [n, h, w, c], by buffer id. */
  readonly shapes: [number, number, number, number][] = [];
  #sizes: number[] = [];
  #first: number[] = [];
  #last: number[] = [];
  #streams = 0;

  /** A new dense buffer of n*h*w*c floats, as a value. */
  alloc(n: number, h: number, w: number, c: number, name: string): Value {
    if (n < 1 || h < 1 || w < 1 || c < 1) {
      throw new ShapeError(
        `Input is too small for this network: ${name} would have shape [${n}, ${c}, ${h}, ${w}]`,
      );
    }
    const buffer = this.#sizes.length;
    this.#sizes.push(n * h * w * c);
    this.shapes.push([n, h, w, c]);
    this.#first.push(this.ops.length);
    this.#last.push(this.ops.length);
    return { view: { buffer, channelOffset: 0, stride: c }, n, h, w, c };
  }

  /** Channels [offset, offset + c) of `value`, sharing its buffer. */
  slice(value: Value, offset: number, c: number): Value {
    return {
      ...value,
      view: { ...value.view, channelOffset: value.view.channelOffset + offset },
      c,
    };
  }

  /** Appends an operation that reads and writes the given values. */
  push(op: Op, ...uses: Value[]): void {
    this.pushViews(op, ...uses.map((v) => v.view));
  }

  /** Appends an operation that reads and writes the given views. */
  pushViews(op: Op, ...uses: View[]): void {
    const index = this.ops.length;
    this.ops.push(op);
    for (const v of uses) {
      this.#first[v.buffer] = Math.min(this.#first[v.buffer], index);
      this.#last[v.buffer] = Math.max(this.#last[v.buffer], index);
    }
  }

  /** A fresh dropout seed stream. */
  stream(): number {
    return this.#streams++;
  }

  /** Places the buffers and returns the plan; outputs stay live to the end. */
  build(
    input: Value,
    outputs: { value: Value; shape: number[] }[],
    options: BuildOptions = {},
  ): Plan {
    const { inputTransform = null, stepBreak = -1, weightLayout = null } = options;
    const end = this.ops.length;
    this.#first[input.view.buffer] = -1;
    for (const { value } of outputs) this.#last[value.view.buffer] = end;
    const order = this.#sizes.map((_, i) => i).sort((a, b) =>
      this.#sizes[b] - this.#sizes[a] || a - b
    );
    const offsets = new Array<number>(this.#sizes.length).fill(0);
    const placed: number[] = [];
    let arenaSize = 0;
    for (const b of order) {
      const live = placed
        .filter((o) => this.#first[o] <= this.#last[b] && this.#first[b] <= this.#last[o])
        .sort((x, y) => offsets[x] - offsets[y]);
      let offset = 0;
      for (const o of live) {
        if (offset + this.#sizes[b] <= offsets[o]) break;
        // Offsets stay multiples of 4 floats: 16-byte aligned for the vector kernels.
        offset = Math.max(offset, offsets[o] + align4(this.#sizes[o]));
      }
      offsets[b] = offset;
      placed.push(b);
      arenaSize = Math.max(arenaSize, offset + align4(this.#sizes[b]));
    }
    const buffers: BufferSpec[] = this.#sizes.map((size, i) => ({ size, offset: offsets[i] }));
    return {
      ops: this.ops,
      steps: groupSteps(this.ops, buffers, stepBreak),
      buffers,
      arenaSize,
      input: input.view.buffer,
      outputs: outputs.map(({ value, shape }) => ({ buffer: value.view.buffer, shape })),
      dropoutStreams: this.#streams,
      inputTransform,
      weightLayout,
    };
  }
}

/** Channels [view.channelOffset, + channels) of every pixel of a buffer. */
interface Access {
  readonly view: View;
  readonly channels: number;
}

/** What an operation reads and what it writes (in the arena; gradients in the weight blob are apart). */
function accesses(op: Op): { reads: Access[]; writes: Access[] } {
  const all = (view: View, channels: number) => ({ view, channels });
  switch (op.kind) {
    case "conv2d": {
      const more = op.moreOutputs.reduce((sum, o) => sum + o.channels, 0);
      return {
        reads: [all(op.x, op.c)],
        writes: [
          all(op.y, op.weights.n - more),
          ...op.moreOutputs.map((o) => all(o.y, o.channels)),
        ],
      };
    }
    case "linear":
      return { reads: [all(op.x, op.weights.k)], writes: [all(op.y, op.weights.n)] };
    case "maxpool2d":
    case "avgpool2d":
    case "adaptive_avgpool2d":
      return { reads: [all(op.x, op.c)], writes: [all(op.y, op.c)] };
    case "dropout": {
      const dense = all(op.x, op.x.stride);
      return { reads: [dense], writes: [dense] };
    }
    case "conv2d_grad_input": {
      const dx = all(op.dx, op.oc);
      return { reads: op.accumulate ? [all(op.dy, op.c), dx] : [all(op.dy, op.c)], writes: [dx] };
    }
    case "conv2d_grad_weight":
      return { reads: [all(op.x, op.c), all(op.dy, op.oc)], writes: [] };
    case "relu_grad":
      return { reads: [all(op.y, op.c), all(op.dy, op.c)], writes: [all(op.dy, op.c)] };
    case "maxpool2d_grad":
    case "avgpool2d_grad":
    case "adaptive_avgpool2d_grad": {
      const dx = all(op.dx, op.c);
      const reads = [all(op.dy, op.c)];
      if (op.kind === "maxpool2d_grad") reads.push(all(op.x, op.c));
      if (op.accumulate) reads.push(dx);
      return { reads, writes: [dx] };
    }
    case "pack_gemm":
    case "pack_winograd":
    case "fold_batchnorm":
    case "optim_step":
    case "zero":
      // The weight blob alone: nothing in the arena.
      return { reads: [], writes: [] };
  }
}

/**
 * Whether two accesses may touch the same float: their buffers' arena ranges
 * meet and, within one buffer, their channel ranges meet (two buffers that
 * share memory at different times count as meeting).
 */
function overlaps(a: Access, b: Access, buffers: readonly BufferSpec[]): boolean {
  const A = buffers[a.view.buffer], B = buffers[b.view.buffer];
  if (A.offset + A.size <= B.offset || B.offset + B.size <= A.offset) return false;
  if (a.view.buffer !== b.view.buffer) return true;
  const a0 = a.view.channelOffset, b0 = b.view.channelOffset;
  return a0 < b0 + b.channels && b0 < a0 + a.channels;
}

/**
 * Groups consecutive operations into steps: an operation joins the current
 * step unless it reads or writes what one of the step's operations writes,
 * or writes what one of them reads.
 */
function groupSteps(
  ops: readonly Op[],
  buffers: readonly BufferSpec[],
  stepBreak: number,
): number[][] {
  const steps: number[][] = [];
  let step: number[] = [];
  const touched = ops.map(accesses);
  const meet = (xs: Access[], ys: Access[]) =>
    xs.some((x) => ys.some((y) => overlaps(x, y, buffers)));
  for (let i = 0; i < ops.length; i++) {
    const a = touched[i];
    const conflict = step.some((j) => {
      const b = touched[j];
      return meet(a.writes, b.reads) || meet(a.writes, b.writes) || meet(a.reads, b.writes);
    });
    if (conflict || (i === stepBreak && step.length > 0)) {
      steps.push(step);
      step = [];
    }
    step.push(i);
  }
  if (step.length > 0) steps.push(step);
  return steps;
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
