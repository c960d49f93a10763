/**
 * Lowers a {@linkcode Plan} to WebGPU dispatches: which kernel variant each
 * operation runs, its parameter struct, its bindings and its workgroup grid.
 *
 * Bindings are windows: each operation binds only the arena regions of the
 * buffers it reads and writes (and the weight region of its layer), at an
 * offset aligned down to `minStorageBufferOffsetAlignment`, and addresses the
 * rest relative to the window. So the arena may exceed
 * `maxStorageBufferBindingSize` (it must fit `maxBufferSize`); only one
 * activation buffer or one layer's weights must fit a binding.
 *
 * @module
 */

import type { DropoutOp, Op, Plan, View } from "../../graph/ops.ts";
import { BackendError } from "../../errors.ts";
import { packedSize, PANEL_WIDTH } from "../pack.ts";
import {
  dropoutShader,
  ELEMENTWISE_GROUP,
  GEMM_TILE,
  gemmShader,
  type KernelFamily,
  type KernelParams,
  packParams,
  poolShader,
} from "./shaders.ts";

/** Limits the lowering checks bindings against (bytes). */
export interface BindingLimits {
  /** Largest storage binding (bytes). */
  readonly maxStorageBufferBindingSize: number;
  /** Largest buffer (bytes). */
  readonly maxBufferSize: number;
  /** Alignment of storage binding offsets (bytes). */
  readonly minStorageBufferOffsetAlignment: number;
  /** Largest workgroup count along one grid dimension. */
  readonly maxComputeWorkgroupsPerDimension: number;
}

/** A binding of a window of a buffer, and where the window starts in floats. */
export interface BindingWindow {
  /** Which buffer: the activation arena, the weight blob or the plan's dropout masks. */
  readonly buffer: "arena" | "weights" | "mask";
  /** Byte offset of the binding. */
  readonly offset: number;
  /** Byte size of the binding; 0 binds the whole buffer. */
  readonly size: number;
  /** Float index of the window's first float in the whole buffer. */
  readonly base: number;
}

/** One dispatch of a lowered plan, before any GPU object exists. */
export interface DispatchSpec {
  /** Pipeline cache key, also the kernel's label. */
  readonly kernel: string;
  /** WGSL of the kernel (compiled once per key). */
  readonly code: () => string;
  /** The packed parameter struct. */
  readonly params: Int32Array;
  /** Bindings by binding index (0: x, 1: y, 2: weights or mask). */
  readonly bindings: ReadonlyMap<number, BindingWindow>;
  /** Workgroup grid. */
  readonly groups: readonly [number, number, number];
}

/** Where one dropout operation's mask lives in the plan's mask buffer. */
export interface DropoutMask {
  /** The dropout operation. */
  readonly op: DropoutOp;
  /** Its first float in the mask buffer. */
  readonly offset: number;
}

/** A plan lowered to dispatches, plus the dropout mask layout. */
export interface LoweredPlan {
  /** The dispatches, in the plan's order. */
  readonly dispatches: readonly DispatchSpec[];
  /** Floats of dropout mask the plan needs per call. */
  readonly maskFloats: number;
  /** For each dropout op: where its mask starts in the mask buffer. */
  readonly masks: readonly DropoutMask[];
}

/**
 * Lowers `plan` for a device with `limits`.
 *
 * @param plan The plan.
 * @param limits The device's (or the test's) limits.
 * @returns The dispatches, in order.
 * @throws {BackendError} When an activation buffer or a layer's weights exceed a binding, or the arena a buffer.
 *
 * @example
 * ```ts
 * import { lowerPlan } from "./program.ts";
 * import { PlanBuilder } from "../../graph/planner.ts";
 * const b = new PlanBuilder();
 * const x = b.alloc(1, 4, 4, 8, "x");
 * const limits = { maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 28,
 *   minStorageBufferOffsetAlignment: 256, maxComputeWorkgroupsPerDimension: 65535 };
 * console.log(lowerPlan(b.build(x, [{ value: x, shape: [1, 4, 4, 8] }]), limits).dispatches.length); // 0
 * ```
 */
export function lowerPlan(plan: Plan, limits: BindingLimits): LoweredPlan {
  const arenaBytes = arenaBufferBytes(plan);
  if (arenaBytes > limits.maxBufferSize) {
    throw new BackendError(
      `The plan's activations need a ${mib(arenaBytes)} GPU buffer but the device's ` +
        `maxBufferSize is ${mib(limits.maxBufferSize)}: use a smaller batch or image`,
    );
  }
  const align = Math.max(limits.minStorageBufferOffsetAlignment, 16);
  const window = (buffer: BindingWindow["buffer"], start: number, floats: number, what: string) => {
    const offset = Math.floor((start * 4) / align) * align;
    const size = Math.ceil(((start + floats) * 4 - offset) / 16) * 16;
    if (size > limits.maxStorageBufferBindingSize) {
      throw new BackendError(
        `${what} needs a ${mib(size)} storage binding but the device's ` +
          `maxStorageBufferBindingSize is ${mib(limits.maxStorageBufferBindingSize)}: ` +
          `use a smaller batch or image`,
      );
    }
    return { buffer, offset, size, base: offset / 4 };
  };
  const view = (v: View, op: Op) => {
    const spec = plan.buffers[v.buffer];
    const w = window("arena", spec.offset, spec.size, `Operation "${op.name}"`);
    return { w, at: spec.offset - w.base + v.channelOffset };
  };
  const outputs = (first: View, rest: readonly View[], op: Op) => {
    const specs = [first, ...rest].map((v) => plan.buffers[v.buffer]);
    const start = Math.min(...specs.map((b) => b.offset));
    const end = Math.max(...specs.map((b) => b.offset + b.size));
    const w = window("arena", start, end - start, `Operation "${op.name}"`);
    return { w, at: [first, ...rest].map((v, i) => specs[i].offset - w.base + v.channelOffset) };
  };
  const grid = (groups: number): [number, number, number] => {
    const x = Math.min(groups, limits.maxComputeWorkgroupsPerDimension);
    return [x, Math.ceil(groups / x), 1];
  };
  const dispatches: DispatchSpec[] = [];
  const masks: DropoutMask[] = [];
  let maskFloats = 0;
  const push = <F extends KernelFamily>(
    family: F,
    kernel: string,
    code: () => string,
    params: KernelParams<F>,
    bindings: [number, BindingWindow][],
    groups: readonly [number, number, number],
  ) => {
    dispatches.push({
      kernel,
      code,
      params: packParams(family, params),
      bindings: new Map(bindings),
      groups,
    });
  };
  for (const op of plan.ops) {
    switch (op.kind) {
      case "conv2d":
      case "linear": {
        const x = view(op.x, op);
        // The outputs (up to three for a fused 1x1 convolution) share one binding window.
        const more = op.kind === "conv2d" ? op.moreOutputs : [];
        if (more.length > 2) throw new Error(`Internal: "${op.name}" has more than three outputs`);
        const ys = outputs(op.y, more.map((o) => o.y), op);
        const firstColumns = op.weights.n - more.reduce((t, o) => t + o.channels, 0);
        const n1 = more.length > 0 ? firstColumns : op.weights.n;
        const n2 = more.length > 1 ? n1 + more[0].channels : op.weights.n;
        const ref = op.weights;
        const wt = window(
          "weights",
          ref.offset,
          packedSize(ref.k, ref.n),
          `The weights of "${op.name}"`,
        );
        const conv = op.kind === "conv2d" ? op : null;
        const im2col = conv !== null &&
          !(conv.kh === 1 && conv.kw === 1 && conv.sh === 1 && conv.sw === 1 && conv.ph === 0 &&
            conv.pw === 0);
        const depthAligned = (conv ? conv.c : ref.k) % 4 === 0;
        const vec4 = depthAligned && op.x.stride % 4 === 0 && x.at % 4 === 0;
        const m = op.kind === "conv2d" ? op.n * op.oh * op.ow : op.m;
        const tilesM = Math.ceil(m / GEMM_TILE);
        const gy = Math.min(tilesM, limits.maxComputeWorkgroupsPerDimension);
        push(
          "gemm",
          `gemm${im2col ? "_im2col" : ""}${vec4 ? "_vec4" : ""}`,
          () => gemmShader({ im2col, vec4 }),
          {
            m,
            n: ref.n,
            k: ref.k,
            npad: Math.ceil(ref.n / PANEL_WIDTH) * PANEL_WIDTH,
            xoff: x.at,
            xstride: op.x.stride,
            yoff: ys.at[0],
            ystride: op.y.stride,
            n1,
            yoff1: ys.at[1] ?? 0,
            ystride1: more[0]?.y.stride ?? 0,
            n2,
            yoff2: ys.at[2] ?? 0,
            ystride2: more[1]?.y.stride ?? 0,
            woff: ref.offset - wt.base,
            relu: conv || op.kind === "linear" && op.relu ? 1 : 0,
            h: conv?.h ?? 0,
            w: conv?.w ?? 0,
            c: conv?.c ?? 0,
            kw: conv?.kw ?? 0,
            sh: conv?.sh ?? 0,
            sw: conv?.sw ?? 0,
            ph: conv?.ph ?? 0,
            pw: conv?.pw ?? 0,
            oh: conv?.oh ?? 0,
            ow: conv?.ow ?? 0,
          },
          [[0, x.w], [1, ys.w], [2, wt]],
          [Math.ceil(ref.n / GEMM_TILE), gy, Math.ceil(tilesM / gy)],
        );
        break;
      }
      case "maxpool2d":
      case "avgpool2d":
      case "adaptive_avgpool2d": {
        const x = view(op.x, op), y = view(op.y, op);
        const total = op.n * op.oh * op.ow * op.c;
        const window = op.kind === "adaptive_avgpool2d" ? { k: 0, s: 0, p: 0 } : op;
        const kind = op.kind;
        push(
          "pool",
          kind,
          () => poolShader(kind),
          {
            total,
            c: op.c,
            xoff: x.at,
            xstride: op.x.stride,
            yoff: y.at,
            ystride: op.y.stride,
            h: op.h,
            w: op.w,
            k: window.k,
            s: window.s,
            p: window.p,
            oh: op.oh,
            ow: op.ow,
          },
          [[0, x.w], [1, y.w]],
          grid(Math.ceil(total / ELEMENTWISE_GROUP)),
        );
        break;
      }
      case "dropout": {
        const x = view(op.x, op);
        masks.push({ op, offset: maskFloats });
        push(
          "dropout",
          "dropout",
          dropoutShader,
          { count: op.count, xoff: x.at, moff: maskFloats },
          [[0, x.w], [2, { buffer: "mask", offset: 0, size: 0, base: 0 }]],
          grid(Math.ceil(op.count / ELEMENTWISE_GROUP)),
        );
        maskFloats += op.count;
        break;
      }
      case "conv2d_grad_input":
      case "conv2d_grad_weight":
      case "relu_grad":
      case "maxpool2d_grad":
      case "avgpool2d_grad":
      case "adaptive_avgpool2d_grad":
        throw new BackendError(
          `"${op.name}" is a backward operation: training runs on the Wasm backend`,
        );
      case "pack_gemm":
      case "pack_winograd":
      case "fold_batchnorm":
      case "optim_step":
      case "zero":
        throw new BackendError(
          `"${op.name}" is a weight operation: training's repack and optimizer run on the Wasm backend`,
        );
      default: {
        const missing: never = op;
        throw new Error(`Internal: no shader for ${JSON.stringify(missing)}`);
      }
    }
  }
  return { dispatches, maskFloats, masks };
}

/**
 * Bytes of the arena buffer a plan needs: its floats, rounded up to 256 bytes
 * so that every 16-byte-rounded binding window stays inside.
 *
 * @param plan The plan.
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { arenaBufferBytes } from "./program.ts";
 * import { PlanBuilder } from "../../graph/planner.ts";
 * const b = new PlanBuilder();
 * const x = b.alloc(1, 1, 1, 3, "x");
 * console.log(arenaBufferBytes(b.build(x, [{ value: x, shape: [1, 3] }]))); // 256
 * ```
 */
export function arenaBufferBytes(plan: Plan): number {
  return Math.max(256, Math.ceil((plan.arenaSize * 4) / 256) * 256);
}

/**
 * Formats bytes as MiB (KiB below 1 MiB) for messages.
 *
 * @param bytes A byte count.
 * @returns Like `"128.0 MiB"` or `"16.0 KiB"`.
 *
 * @example
 * ```ts
 * import { mib } from "./program.ts";
 * console.log(mib(1 << 27)); // "128.0 MiB"
 * ```
 */
export function mib(bytes: number): string {
  return bytes < 1048576
    ? `${(bytes / 1024).toFixed(1)} KiB`
    : `${(bytes / 1048576).toFixed(1)} MiB`;
}
