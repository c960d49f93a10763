/**
 * GoogLeNet's layers, mirroring `tools/reference/seed_googlenet.py` class by
 * class and attribute by attribute, so that PyTorch's state-dict keys fall
 * out of the attribute paths. A layer holds hyper-parameters and where its
 * packed weights live; `lower` appends its operations to a plan.
 *
 * @module
 */

import type { PackedRef } from "../graph/ops.ts";
import { poolOutputSize } from "../graph/planner.ts";
import type { PlanBuilder, Value } from "../graph/planner.ts";
import {
  convRowOrder,
  identityRowOrder,
  nhwcFlattenRowOrder,
  type RowOrder,
} from "../backend/pack.ts";
import { ShapeError } from "../errors.ts";

/** A layer whose weight and bias become one packed GEMM matrix. */
export interface GemmLayer {
  /** State-dict prefix: the layer's keys are `${key}.weight` and `${key}.bias`. */
  readonly key: string;
  /** PyTorch's weight shape (OIHW or [out, in]). */
  readonly weightShape: readonly number[];
  /** Fan-in (K of the GEMM). */
  readonly k: number;
  /** Outputs (N of the GEMM). */
  readonly n: number;
  /** How packed rows map to PyTorch's flattened weight. */
  readonly order: RowOrder;
  /** Fan-out as PyTorch's initialisers count it. */
  readonly fanOut: number;
  /** Where the packed matrix lives; set once by the model's weight layout. */
  packed: PackedRef;
}

/** Options of a convolution. */
export interface Conv2dOptions {
  /** Square kernel size. */
  kernelSize: number;
  /** Stride (default 1). */
  stride?: number;
  /** Zero padding on each side (default 0). */
  padding?: number;
}

/** `nn.Conv2d` with bias, always followed by ReLU here (BasicConv2d). */
export class Conv2d implements GemmLayer {
  readonly weightShape: readonly number[];
  readonly k: number;
  readonly n: number;
  readonly order: RowOrder;
  readonly fanOut: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  packed: PackedRef = { offset: -1, k: 0, n: 0 };

  constructor(
    readonly key: string,
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv2dOptions,
  ) {
    this.kernelSize = options.kernelSize;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    const ks = this.kernelSize;
    this.weightShape = [outChannels, inChannels, ks, ks];
    this.k = inChannels * ks * ks;
    this.n = outChannels;
    this.fanOut = outChannels * ks * ks;
    this.order = convRowOrder(inChannels, ks, ks);
  }

  /** conv + bias + ReLU into `out` (a channel slice) or a new buffer. */
  lower(b: PlanBuilder, x: Value, out?: Value): Value {
    const { kernelSize: k, stride: s, padding: p } = this;
    const oh = Math.floor((x.h + 2 * p - k) / s) + 1;
    const ow = Math.floor((x.w + 2 * p - k) / s) + 1;
    const y = out ?? b.alloc(x.n, oh, ow, this.outChannels, this.key);
    if (y.h !== oh || y.w !== ow || y.c !== this.outChannels) {
      throw new Error(`Internal: ${this.key} output slice does not match its shape`);
    }
    b.push(
      {
        kind: "conv2d",
        name: this.key,
        x: x.view,
        y: y.view,
        n: x.n,
        h: x.h,
        w: x.w,
        c: x.c,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        ph: p,
        pw: p,
        oh,
        ow,
        weights: this.packed,
      },
      x,
      y,
    );
    return y;
  }
}

/** `nn.Linear`. `inputLayout` says the input arrives NHWC-flattened. */
export class Linear implements GemmLayer {
  readonly weightShape: readonly number[];
  readonly k: number;
  readonly n: number;
  readonly order: RowOrder;
  readonly fanOut: number;
  packed: PackedRef = { offset: -1, k: 0, n: 0 };

  constructor(
    readonly key: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    inputLayout?: { c: number; h: number; w: number },
  ) {
    this.weightShape = [outFeatures, inFeatures];
    this.k = inFeatures;
    this.n = outFeatures;
    this.fanOut = outFeatures;
    this.order = inputLayout
      ? nhwcFlattenRowOrder(inputLayout.c, inputLayout.h, inputLayout.w)
      : identityRowOrder;
  }

  /** y = x W^T + b (then ReLU if `relu`) on a dense [n, features] value. */
  lower(b: PlanBuilder, x: Value, relu = false): Value {
    const features = x.h * x.w * x.c;
    if (features !== this.inFeatures) {
      throw new ShapeError(
        `${this.key} expects ${this.inFeatures} input features, got ${features} ` +
          `([${x.c}, ${x.h}, ${x.w}] per image)`,
      );
    }
    const y = b.alloc(x.n, 1, 1, this.outFeatures, this.key);
    b.push(
      {
        kind: "linear",
        name: this.key,
        x: { ...x.view, stride: features },
        y: y.view,
        m: x.n,
        weights: this.packed,
        relu,
      },
      x,
      y,
    );
    return y;
  }
}

/** `BasicConv2d`: conv + ReLU, no BatchNorm. */
export class BasicConv2d {
  readonly conv: Conv2d;
  constructor(key: string, inChannels: number, outChannels: number, options: Conv2dOptions) {
    this.conv = new Conv2d(`${key}.conv`, inChannels, outChannels, options);
  }

  /** Appends conv + ReLU. */
  lower(b: PlanBuilder, x: Value, out?: Value): Value {
    return this.conv.lower(b, x, out);
  }
}

/** `nn.MaxPool2d(kernel, stride, padding, ceil_mode)`. */
export class MaxPool2d {
  constructor(
    readonly name: string,
    readonly kernelSize: number,
    readonly stride: number,
    readonly padding = 0,
    readonly ceilMode = false,
  ) {}

  /** Appends the pool. */
  lower(b: PlanBuilder, x: Value): Value {
    return lowerPool(b, "maxpool2d", this, x);
  }
}

/** `nn.AvgPool2d(kernel, stride, padding)` with PyTorch's defaults (count_include_pad, floor mode). */
export class AvgPool2d {
  readonly ceilMode = false;
  constructor(
    readonly name: string,
    readonly kernelSize: number,
    readonly stride: number,
    readonly padding = 0,
  ) {}

  /** Appends the pool. */
  lower(b: PlanBuilder, x: Value): Value {
    return lowerPool(b, "avgpool2d", this, x);
  }
}

function lowerPool(
  b: PlanBuilder,
  kind: "maxpool2d" | "avgpool2d",
  pool: MaxPool2d | AvgPool2d,
  x: Value,
): Value {
  const { kernelSize: k, stride: s, padding: p, ceilMode } = pool;
  const oh = poolOutputSize(x.h, k, s, p, ceilMode);
  const ow = poolOutputSize(x.w, k, s, p, ceilMode);
  const y = b.alloc(x.n, oh, ow, x.c, pool.name);
  b.push(
    {
      kind,
      name: pool.name,
      x: x.view,
      y: y.view,
      n: x.n,
      h: x.h,
      w: x.w,
      c: x.c,
      k,
      s,
      p,
      oh,
      ow,
    },
    x,
    y,
  );
  return y;
}

/** The four-branch Inception block; branch outputs are written in place into the concat. */
export class Inception {
  readonly branch1: BasicConv2d;
  readonly branch2: readonly [BasicConv2d, BasicConv2d];
  readonly branch3: readonly [BasicConv2d, BasicConv2d];
  readonly branch4: readonly [MaxPool2d, BasicConv2d];
  readonly outChannels: number;

  constructor(
    readonly key: string,
    inChannels: number,
    ch1x1: number,
    ch3x3red: number,
    ch3x3: number,
    ch5x5red: number,
    ch5x5: number,
    poolProj: number,
  ) {
    this.branch1 = new BasicConv2d(`${key}.branch1`, inChannels, ch1x1, { kernelSize: 1 });
    this.branch2 = [
      new BasicConv2d(`${key}.branch2.0`, inChannels, ch3x3red, { kernelSize: 1 }),
      new BasicConv2d(`${key}.branch2.1`, ch3x3red, ch3x3, { kernelSize: 3, padding: 1 }),
    ];
    this.branch3 = [
      new BasicConv2d(`${key}.branch3.0`, inChannels, ch5x5red, { kernelSize: 1 }),
      new BasicConv2d(`${key}.branch3.1`, ch5x5red, ch5x5, { kernelSize: 5, padding: 2 }),
    ];
    this.branch4 = [
      new MaxPool2d(`${key}.branch4.0`, 3, 1, 1),
      new BasicConv2d(`${key}.branch4.1`, inChannels, poolProj, { kernelSize: 1 }),
    ];
    this.outChannels = ch1x1 + ch3x3 + ch5x5 + poolProj;
  }

  /** Appends the four branches, each writing its channel slice of one output. */
  lower(b: PlanBuilder, x: Value): Value {
    const out = b.alloc(x.n, x.h, x.w, this.outChannels, this.key);
    let c = 0;
    const slot = (conv: BasicConv2d) => {
      const v = b.slice(out, c, conv.conv.outChannels);
      c += conv.conv.outChannels;
      return v;
    };
    this.branch1.lower(b, x, slot(this.branch1));
    this.branch2[1].lower(b, this.branch2[0].lower(b, x), slot(this.branch2[1]));
    this.branch3[1].lower(b, this.branch3[0].lower(b, x), slot(this.branch3[1]));
    this.branch4[1].lower(b, this.branch4[0].lower(b, x), slot(this.branch4[1]));
    return out;
  }
}

/** The auxiliary classifier used in training mode. */
export class InceptionAux {
  readonly averagePool: AvgPool2d;
  readonly conv: BasicConv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(readonly key: string, inChannels: number, numClasses: number) {
    this.averagePool = new AvgPool2d(`${key}.averagePool`, 5, 3);
    this.conv = new BasicConv2d(`${key}.conv`, inChannels, 128, { kernelSize: 1 });
    // 2048 = 128 x 4 x 4, flattened NCHW by PyTorch and NHWC here.
    this.fc1 = new Linear(`${key}.fc1`, 2048, 1024, { c: 128, h: 4, w: 4 });
    this.fc2 = new Linear(`${key}.fc2`, 1024, numClasses);
  }

  /** Appends pool, conv, fc1 + ReLU, fc2, with dropout 0.5 before each fc when asked. */
  lower(b: PlanBuilder, x: Value, dropout: boolean): Value {
    let v = this.conv.lower(b, this.averagePool.lower(b, x));
    if (v.h !== 4 || v.w !== 4) {
      throw new ShapeError(
        `${this.key} needs a 4x4 map after its average pool (a 224x224 input gives it), got ` +
          `${v.h}x${v.w}: use 224x224 inputs in training mode or create the model with auxLogits: false`,
      );
    }
    if (dropout) pushDropout(b, v, 0.5, `${this.key}.dropout1`);
    v = this.fc1.lower(b, v, true);
    if (dropout) pushDropout(b, v, 0.5, `${this.key}.dropout2`);
    return this.fc2.lower(b, v);
  }
}

/** Appends in-place dropout over a dense value. */
export function pushDropout(b: PlanBuilder, x: Value, p: number, name: string): void {
  b.push({
    kind: "dropout",
    name,
    x: x.view,
    count: x.n * x.h * x.w * x.c,
    p,
    stream: b.stream(),
  }, x);
}
