/**
 * The backward pass, derived from a forward plan's operations alone: one rule
 * per forward operation kind (as PyTorch's `derivatives.yaml` has one entry
 * per op), walked in reverse. A gradient lives in an arena buffer shaped like
 * the activation it belongs to; a channel slice of a concatenation gets the
 * same slice of the concatenation's gradient, so the backward of the free
 * concatenation is free too. Where an activation feeds several consumers
 * (an Inception block's input, the aux heads' branch points), the first
 * backward writer overwrites its gradient and the others add to it, in a
 * fixed order.
 *
 * @module
 */

import type {
  Conv2dOp,
  GradRef,
  LinearOp,
  Op,
  PackedRef,
  Pool2dOp,
  View,
  WinogradRef,
} from "./ops.ts";
import type { PlanBuilder, Value } from "./planner.ts";

/** What the backward pass needs to know of one layer's parameters. */
export interface LayerGradients {
  /** Where its weight and bias gradients accumulate; null when the layer is frozen. */
  readonly grad: GradRef | null;
  /** Its transposed, flipped weights for the input gradient (depth kh*kw*out, in columns). */
  readonly transposed: PackedRef;
  /** The same in a Winograd form, when kept. */
  readonly transposedWinograd: WinogradRef | null;
}

/** Options of {@linkcode appendBackward}. */
export interface BackwardOptions {
  /** Each logits output of the forward pass (main head first), dense [n, classes]. */
  readonly heads: readonly Value[];
  /** The parameters of a layer, by state-dict prefix. */
  readonly layer: (key: string) => LayerGradients;
}

/** Where a gradient buffer sits for an activation buffer: its buffer, channel offset and pixel stride. */
interface GradBase {
  readonly buffer: number;
  readonly channelOffset: number;
  readonly stride: number;
}

/**
 * Appends the backward operations of the forward operations already in `b`
 * (all of them, in reverse), starting from the gradients of the `heads`. The
 * gradients of the heads arrive in one new buffer `[n, heads * classes]`
 * (head h at channel offset h * classes), which the caller fills between the
 * forward and the backward half.
 *
 * @returns The output-gradient buffer, and the index of the first backward operation.
 */
export function appendBackward(
  b: PlanBuilder,
  options: BackwardOptions,
): { gradOutputs: Value; start: number } {
  const forward = b.ops.slice();
  const start = forward.length;
  const requiresGrad = propagateRequiresGrad(forward, options.layer);

  const [n, , , classes] = b.shapes[options.heads[0].view.buffer];
  const gradOutputs = b.alloc(n, 1, 1, classes * options.heads.length, "grad_outputs");
  const bases = new Map<number, GradBase>();
  options.heads.forEach((head, i) => {
    bases.set(head.view.buffer, {
      buffer: gradOutputs.view.buffer,
      channelOffset: i * classes,
      stride: classes * options.heads.length,
    });
  });

  /** The gradient view of `v`, if anything downstream produced one. */
  const gradOf = (v: View): View | null => {
    const base = bases.get(v.buffer);
    if (!base) return null;
    const natural = b.shapes[v.buffer][3];
    return {
      buffer: base.buffer,
      channelOffset: base.channelOffset + v.channelOffset,
      stride: v.stride * (base.stride / natural),
    };
  };
  /**
   * Gradient buffers that a max pool's backward left masked by its input's
   * ReLU (see `reluOutput`), with nothing added since (the pool's backward
   * comes after the buffer's other readers'): their ReLU's `relu_grad` would
   * change nothing, so it is left out.
   */
  const masked = new Set<number>();
  /** The gradient view of `v` to write: a new buffer for the first writer, which must cover all of it. */
  const gradTarget = (v: View, channels: number, name: string) => {
    const existing = gradOf(v);
    if (existing) {
      masked.delete(existing.buffer);
      return { dx: existing, accumulate: true };
    }
    const [bn, bh, bw, bc] = b.shapes[v.buffer];
    if (v.channelOffset !== 0 || channels !== v.stride) {
      throw new Error(`Internal: the first gradient written for ${name} does not cover its buffer`);
    }
    const g = b.alloc(bn, bh, bw, bc, `${name}.grad`);
    bases.set(v.buffer, { buffer: g.view.buffer, channelOffset: 0, stride: bc });
    return { dx: gradOf(v)!, accumulate: false };
  };

  /**
   * The backward of a max or average pool, overwriting or adding to its
   * input's gradient. With `relu` (a max pool over a ReLU's output, emitted
   * after every other writer of that gradient), the kernel also applies the
   * ReLU's mask, and the ReLUs' `relu_grad` is left out.
   */
  const poolBackward = (op: Pool2dOp, dy: View, relu: boolean) => {
    const { dx, accumulate } = gradTarget(op.x, op.c, op.name);
    const kind = op.kind === "maxpool2d" ? "maxpool2d_grad" : "avgpool2d_grad";
    const { n, h, w, c, k, s, p, oh, ow } = op;
    const uses = kind === "maxpool2d_grad" ? [op.x, dy, dx] : [dy, dx];
    if (relu) masked.add(dx.buffer);
    b.pushViews(
      { kind, name: op.name, x: op.x, dy, dx, n, h, w, c, k, s, p, oh, ow, accumulate, relu },
      ...uses,
    );
  };
  /** Max pools over a ReLU's output, by the index of that output's first reader: emitted after it. */
  const deferred = new Map<number, Pool2dOp[]>();

  for (let i = forward.length - 1; i >= 0; i--) {
    const op = forward[i];
    switch (op.kind) {
      case "conv2d":
        convBackward(
          b,
          op,
          true,
          options.layer,
          requiresGrad.has(op.x.buffer),
          gradOf,
          gradTarget,
          masked,
        );
        break;
      case "linear":
        convBackward(
          b,
          linearAsConv(op),
          op.relu,
          options.layer,
          requiresGrad.has(op.x.buffer),
          gradOf,
          gradTarget,
          masked,
        );
        break;
      case "maxpool2d":
      case "avgpool2d": {
        const dy = gradOf(op.y);
        if (!dy || !requiresGrad.has(op.x.buffer)) break;
        const relu = op.kind === "maxpool2d" && reluOutput(forward, op.x.buffer);
        const first = relu ? firstReader(forward, op.x.buffer) : i;
        if (first < i) {
          // Its input's other readers (an Inception block's 1x1 GEMM, an aux head) write their
          // gradients first; the pool then adds its own and applies the ReLU's mask.
          deferred.set(first, [...(deferred.get(first) ?? []), op]);
          break;
        }
        poolBackward(op, dy, relu);
        break;
      }
      case "adaptive_avgpool2d": {
        const dy = gradOf(op.y);
        if (!dy || !requiresGrad.has(op.x.buffer)) break;
        const { dx, accumulate } = gradTarget(op.x, op.c, op.name);
        const { n, h, w, c, oh, ow } = op;
        b.pushViews(
          {
            kind: "adaptive_avgpool2d_grad",
            name: op.name,
            dy,
            dx,
            n,
            h,
            w,
            c,
            oh,
            ow,
            accumulate,
          },
          dy,
          dx,
        );
        break;
      }
      case "dropout": {
        // Replays the forward's mask (same stream, so the same seed) on the gradient, in place.
        const dy = gradOf(op.x);
        if (dy) b.pushViews({ ...op, name: `${op.name}.grad`, x: dy }, dy);
        break;
      }
      case "conv2d_grad_input":
      case "conv2d_grad_weight":
      case "relu_grad":
      case "maxpool2d_grad":
      case "avgpool2d_grad":
      case "adaptive_avgpool2d_grad":
        throw new Error(`Internal: "${op.name}" is already a backward operation`);
      case "pack_gemm":
      case "pack_winograd":
      case "fold_batchnorm":
      case "optim_step":
      case "zero":
        throw new Error(`Internal: "${op.name}" is a weight operation, not part of a forward pass`);
      default: {
        const missing: never = op;
        throw new Error(`Internal: no backward rule for ${JSON.stringify(missing)}`);
      }
    }
    for (const pool of deferred.get(i) ?? []) poolBackward(pool, gradOf(pool.y)!, true);
  }
  return { gradOutputs, start };
}

/**
 * Whether every forward operation that writes `buffer` is a convolution (always
 * followed by its ReLU here) or a linear layer with its ReLU: then the whole
 * buffer is ReLU outputs (a dropout or pool writing it rules that out).
 */
function reluOutput(ops: readonly Op[], buffer: number): boolean {
  let relu = false;
  for (const op of ops) {
    const writes = op.kind === "conv2d"
      ? [op.y, ...op.moreOutputs.map((o) => o.y)]
      : op.kind === "dropout"
      ? [op.x]
      : "y" in op
      ? [op.y]
      : [];
    if (!writes.some((v) => v.buffer === buffer)) continue;
    if (op.kind === "conv2d" || (op.kind === "linear" && op.relu)) relu = true;
    else return false;
  }
  return relu;
}

/** The index of the first forward operation that reads `buffer` (as its input `x`). */
function firstReader(ops: readonly Op[], buffer: number): number {
  return ops.findIndex((op) => "x" in op && typeof op.x === "object" && op.x.buffer === buffer);
}

/** The buffers whose gradient some trainable parameter needs (autograd's `requires_grad`). */
function propagateRequiresGrad(
  ops: readonly Op[],
  layer: (key: string) => LayerGradients,
): Set<number> {
  const needs = new Set<number>();
  for (const op of ops) {
    switch (op.kind) {
      case "conv2d": {
        const xNeeds = needs.has(op.x.buffer);
        const ys = [op.y, ...op.moreOutputs.map((o) => o.y)];
        op.layers.forEach((key, i) => {
          if (xNeeds || layer(key).grad) needs.add(ys[i].buffer);
        });
        break;
      }
      case "linear":
        if (needs.has(op.x.buffer) || layer(op.layer).grad) needs.add(op.y.buffer);
        break;
      case "maxpool2d":
      case "avgpool2d":
      case "adaptive_avgpool2d":
        if (needs.has(op.x.buffer)) needs.add(op.y.buffer);
        break;
      default:
        break;
    }
  }
  return needs;
}

/** A linear layer as the 1x1 convolution over `m` one-pixel images it is. */
function linearAsConv(op: LinearOp): Conv2dOp {
  return {
    kind: "conv2d",
    name: op.name,
    x: op.x,
    y: op.y,
    n: op.m,
    h: 1,
    w: 1,
    c: op.weights.k,
    kh: 1,
    kw: 1,
    sh: 1,
    sw: 1,
    ph: 0,
    pw: 0,
    oh: 1,
    ow: 1,
    weights: op.weights,
    moreOutputs: [],
    layers: [op.layer],
    winograd: null,
  };
}

/**
 * Conv (+ ReLU) backward, for each layer a fused GEMM holds: the ReLU's mask
 * on the output gradient (unless a max pool's backward applied it: `masked`), the weight and bias gradients (trainable layers),
 * the input gradient (when something upstream trains).
 */
function convBackward(
  b: PlanBuilder,
  op: Conv2dOp,
  relu: boolean,
  layer: (key: string) => LayerGradients,
  xNeedsGrad: boolean,
  gradOf: (v: View) => View | null,
  gradTarget: (v: View, channels: number, name: string) => { dx: View; accumulate: boolean },
  masked: ReadonlySet<number>,
): void {
  const more = op.moreOutputs.reduce((sum, o) => sum + o.channels, 0);
  const parts = [
    { y: op.y, channels: op.weights.n - more },
    ...op.moreOutputs,
  ];
  parts.forEach((part, i) => {
    const key = op.layers[i];
    const dy = gradOf(part.y);
    if (!dy) return;
    const refs = layer(key);
    const pixels = op.n * op.oh * op.ow;
    if (relu && !masked.has(dy.buffer)) {
      b.pushViews(
        { kind: "relu_grad", name: `${key}.relu`, y: part.y, dy, pixels, c: part.channels },
        part.y,
        dy,
      );
    }
    if (refs.grad) {
      b.pushViews(
        {
          kind: "conv2d_grad_weight",
          name: key,
          x: op.x,
          dy,
          n: op.n,
          h: op.h,
          w: op.w,
          c: op.c,
          kh: op.kh,
          kw: op.kw,
          sh: op.sh,
          sw: op.sw,
          ph: op.ph,
          pw: op.pw,
          oh: op.oh,
          ow: op.ow,
          oc: part.channels,
          grad: refs.grad,
        },
        op.x,
        dy,
      );
    }
    if (!xNeedsGrad) return;
    if (op.sh !== 1 || op.sw !== 1) {
      throw new Error(
        `Internal: "${key}" has stride ${op.sh}x${op.sw}; input gradients need stride 1`,
      );
    }
    const { dx, accumulate } = gradTarget(op.x, op.c, key);
    b.pushViews(
      {
        kind: "conv2d_grad_input",
        name: key,
        dy,
        dx,
        n: op.n,
        h: op.oh,
        w: op.ow,
        c: part.channels,
        kh: op.kh,
        kw: op.kw,
        sh: 1,
        sw: 1,
        ph: op.kh - 1 - op.ph,
        pw: op.kw - 1 - op.pw,
        oh: op.h,
        ow: op.w,
        oc: op.c,
        weights: refs.transposed,
        winograd: refs.transposedWinograd,
        accumulate,
      },
      dy,
      dx,
    );
  });
}
