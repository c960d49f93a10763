/**
 * The optimizer's weight operations on the Wasm kernels (`asm/optim.ts`):
 * `optim_step` and the gradients' `zero`, how each is cut into chunks of
 * elements and how a chunk calls its kernel. Elements are independent, so
 * any cut gives the same bits; with a gather a chunk holds whole rows.
 *
 * @module
 */

import type { OptimStepOp, UpdateRule, ZeroOp } from "../../graph/ops.ts";
import { BackendError } from "../../errors.ts";
import type { Chunk } from "./executor.ts";

/**
 * `adam_update` and `sgd_update` of `asm/optim.ts` (byte addresses; element
 * bounds and rows in floats): read the parameter at `x`, write it at `xo`,
 * with the rule's constants at `rule` ({@linkcode ruleConstants}); a gathered
 * gradient's rows are transposed into `scratch` ({@linkcode optimScratchBytes}).
 */
export interface OptimKernels {
  adam_update(
    x: number,
    xo: number,
    g: number,
    m: number,
    v: number,
    e0: number,
    e1: number,
    k: number,
    gc: number,
    ga: number,
    rule: number,
    scratch: number,
  ): void;
  sgd_update(
    x: number,
    xo: number,
    g: number,
    buf: number,
    e0: number,
    e1: number,
    k: number,
    gc: number,
    ga: number,
    rule: number,
    scratch: number,
  ): void;
  zero_fill(x: number, e0: number, e1: number): void;
}

// Flag bits of the kernels (asm/optim.ts).
const DECOUPLED = 1, DECAY = 2, MOMENTUM = 4, FIRST = 8, NESTEROV = 16;

/** Elements a chunk takes at least: below this the claim costs more than the update. */
const CHUNK_ELEMENTS = 1 << 16;

/**
 * The optimizer kernels of a kernel module, or null for a module built
 * before them (the optimizers then update in TypeScript).
 *
 * @param k The instance's exports.
 * @returns The two kernels, or null.
 *
 * @example
 * ```ts
 * import { optimKernels } from "./optim.ts";
 * console.log(optimKernels({})); // null
 * ```
 */
export function optimKernels(k: object): OptimKernels | null {
  const { adam_update, sgd_update, zero_fill } = k as Partial<OptimKernels>;
  // Modules built before the constants moved to memory took them as 10 or 5 more arguments.
  return typeof adam_update === "function" && adam_update.length === 12 &&
      typeof sgd_update === "function" && sgd_update.length === 11 &&
      typeof zero_fill === "function"
    ? { adam_update, sgd_update, zero_fill }
    : null;
}

/**
 * Scratch bytes a thread needs for an `optim_step`: a row of a gathered
 * gradient (transposed there before its update), none for a contiguous one.
 *
 * @param op The operation.
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { optimScratchBytes } from "./optim.ts";
 * const op = {
 *   kind: "optim_step", name: "conv1.conv.weight", x: 0, xOut: 0, grad: 0, size: 9408, k: 147,
 *   gather: { c: 49, a: 3, b: 1 }, state: [], rule: "sgd", constants: 0,
 * } as const;
 * console.log(optimScratchBytes(op)); // 588
 * ```
 */
export function optimScratchBytes(op: OptimStepOp): number {
  return op.gather ? op.k * 4 : 0;
}

/** Floats each parameter's rule constants take in the weight blob (16: a cache line apart). */
export const RULE_FLOATS = 16;

/**
 * The floats `adam_update` or `sgd_update` reads at its `rule` address: the
 * rule's f32 constants, then its flag bits as a float. A step writes them
 * there before it runs, so that the operations, and the plan, stay the same
 * from step to step.
 *
 * @param rule The update rule of one parameter's step.
 * @returns At most {@linkcode RULE_FLOATS} numbers.
 *
 * @example
 * ```ts
 * import { ruleConstants } from "./optim.ts";
 * const sgd = { kind: "sgd", weightDecay: 0, momentum: 0.9, keep: 1, step: -0.1, nesterov: false, first: true } as const;
 * console.log(ruleConstants(sgd)); // [ 0, 0.9, 1, -0.1, 12 ]
 * ```
 */
export function ruleConstants(rule: UpdateRule): number[] {
  if (rule.kind === "adam") {
    const flags = (rule.decoupled ? DECOUPLED : 0) | (rule.weightDecay !== 0 ? DECAY : 0);
    return [
      rule.b1,
      rule.b2,
      rule.a1,
      rule.a2,
      rule.weightDecay,
      rule.eps,
      rule.stepSize,
      rule.bc2,
      rule.shrink,
      flags,
    ];
  }
  const flags = (rule.weightDecay !== 0 ? DECAY : 0) | (rule.momentum !== 0 ? MOMENTUM : 0) |
    (rule.first ? FIRST : 0) | (rule.nesterov ? NESTEROV : 0);
  return [rule.weightDecay, rule.momentum, rule.keep, rule.step, flags];
}

/**
 * The chunks of an `optim_step` at plan index `index` for `threads`
 * threads: element ranges of about `CHUNK_ELEMENTS` or more, whole rows when
 * the gradient is gathered, at most 4 per thread.
 *
 * @param op The operation.
 * @param index Its index in the plan.
 * @param threads Threads of the run.
 * @returns Chunks `[r0, r1)` of elements.
 *
 * @example
 * ```ts
 * import { optimChunks } from "./optim.ts";
 * const op = {
 *   kind: "optim_step", name: "fc.bias", x: 0, xOut: 0, grad: 16, size: 10, k: 10, gather: null,
 *   state: [], rule: "sgd", constants: 32,
 * } as const;
 * console.log(optimChunks(op, 0, 2)); // [{ op: 0, r0: 0, r1: 10, p0: 0, p1: 0 }]
 * ```
 */
export function optimChunks(op: OptimStepOp, index: number, threads: number): Chunk[] {
  return elementChunks(op.size, op.gather ? op.k : 4, index, threads);
}

/**
 * Chunks `[r0, r1)` of `size` elements in multiples of `grain` (the last
 * one takes the rest): about `CHUNK_ELEMENTS` or more each, at most 4 per thread.
 *
 * @param size Elements.
 * @param grain What every bound but the end is a multiple of.
 * @param index The operation's index in the plan.
 * @param threads Threads of the run.
 * @returns The chunks, in order.
 *
 * @example
 * ```ts
 * import { elementChunks } from "./optim.ts";
 * console.log(elementChunks(200_000, 4, 3, 2).map((c) => [c.r0, c.r1])); // [[0, 66664], [66664, 133332], [133332, 200000]]
 * ```
 */
export function elementChunks(
  size: number,
  grain: number,
  index: number,
  threads: number,
): Chunk[] {
  const units = Math.ceil(size / grain);
  const count = Math.max(1, Math.min(threads * 4, units, Math.floor(size / CHUNK_ELEMENTS)));
  const chunks: Chunk[] = [];
  for (let i = 0; i < count; i++) {
    const r0 = Math.min(size, Math.floor(units * i / count) * grain);
    const r1 = Math.min(size, Math.floor(units * (i + 1) / count) * grain);
    if (r0 < r1) chunks.push({ op: index, r0, r1, p0: 0, p1: 0 });
  }
  return chunks;
}

/**
 * Zeroes elements `[chunk.r0, chunk.r1)` of a `zero` operation's region.
 *
 * @param kernels The instance's exports.
 * @param weights Byte address of the weight blob.
 * @param op The operation.
 * @param chunk The chunk.
 * @throws {BackendError} For a kernel module without the optimizer kernels.
 *
 * @example
 * ```ts ignore
 * runZeroChunk(exports, layout.weights, op, { op: 0, r0: 0, r1: op.size, p0: 0, p1: 0 });
 * ```
 */
export function runZeroChunk(kernels: object, weights: number, op: ZeroOp, chunk: Chunk): void {
  requireKernels(kernels).zero_fill(weights + op.offset * 4, chunk.r0, chunk.r1);
}

function requireKernels(kernels: object): OptimKernels {
  const k = optimKernels(kernels);
  if (!k) {
    throw new BackendError(
      "The kernel module has no optimizer exports (adam_update, sgd_update, zero_fill) of this " +
        "version: rebuild " +
        "it with `deno task build`",
    );
  }
  return k;
}

/**
 * Runs elements `[chunk.r0, chunk.r1)` of an `optim_step`.
 *
 * @param kernels The instance's exports.
 * @param weights Byte address of the weight blob.
 * @param op The operation.
 * @param chunk The chunk.
 * @param scratch Byte address of the thread's scratch ({@linkcode optimScratchBytes}).
 * @throws {BackendError} For a kernel module without the optimizer kernels.
 *
 * @example
 * ```ts ignore
 * runOptimChunk(exports, layout.weights, op, { op: 0, r0: 0, r1: op.size, p0: 0, p1: 0 }, scratch);
 * ```
 */
export function runOptimChunk(
  kernels: object,
  weights: number,
  op: OptimStepOp,
  chunk: Chunk,
  scratch: number,
): void {
  const k = requireKernels(kernels);
  const at = (floats: number) => weights + floats * 4;
  const gc = op.gather ? op.gather.c : 0, ga = op.gather ? op.gather.a : 0;
  if (op.rule === "adam") {
    k.adam_update(
      at(op.x),
      at(op.xOut),
      at(op.grad),
      at(op.state[0]),
      at(op.state[1]),
      chunk.r0,
      chunk.r1,
      op.k,
      gc,
      ga,
      at(op.constants),
      scratch,
    );
    return;
  }
  k.sgd_update(
    at(op.x),
    at(op.xOut),
    at(op.grad),
    op.state.length ? at(op.state[0]) : 0,
    chunk.r0,
    chunk.r1,
    op.k,
    gc,
    ga,
    at(op.constants),
    scratch,
  );
}
