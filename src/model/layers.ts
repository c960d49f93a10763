/**
 * GoogLeNet's layers, mirroring `tools/reference/seed_googlenet.py` class by
 * class and attribute by attribute, so that PyTorch's state-dict keys fall
 * out of the attribute paths. A layer holds hyper-parameters and where its
 * packed weights live; `lower` appends its operations to a plan.
 *
 * @module
 */

import type { PackedRef, WinogradRef, WinogradVariant } from "../graph/ops.ts";
import type { Variant } from "./variant.ts";
import { poolOutputSize } from "../graph/planner.ts";
import type { PlanBuilder, Value } from "../graph/planner.ts";
import {
  convRowOrder,
  identityRowOrder,
  nhwcFlattenRowOrder,
  packedSize,
  PANEL_WIDTH,
  type RowOrder,
  rowSources,
  winogradSize,
} from "../backend/pack.ts";
import { ShapeError } from "../errors.ts";
import type { RepackLayer } from "../backend/repack.ts";

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
  /** The layer's state-dict entries in PyTorch's order: key and shape. */
  readonly entries: readonly (readonly [string, readonly number[]])[];
}

/** Options of a convolution. */
export interface Conv2dOptions {
  /** Square kernel size. */
  kernelSize: number;
  /** Stride (default 1). */
  stride?: number;
  /** Zero padding on each side (default 0). */
  padding?: number;
  /**
   * A BatchNorm after a bias-free conv (torchvision's BasicConv2d): its
   * state-dict prefix and eps. It is folded into the packed weights.
   */
  batchNorm?: { key: string; eps: number };
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
  readonly entries: readonly (readonly [string, readonly number[]])[];
  readonly batchNorm: { key: string; eps: number } | null;
  packed: PackedRef = { offset: -1, k: 0, n: 0 };
  /** Where a Winograd form of the weights (its variant included) lives, when the model keeps one. */
  winograd: WinogradRef | null = null;

  constructor(
    readonly key: string,
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv2dOptions,
  ) {
    this.kernelSize = options.kernelSize;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.batchNorm = options.batchNorm ?? null;
    const ks = this.kernelSize;
    this.weightShape = [outChannels, inChannels, ks, ks];
    this.k = inChannels * ks * ks;
    this.n = outChannels;
    this.fanOut = outChannels * ks * ks;
    this.order = convRowOrder(inChannels, ks, ks);
    const bn = this.batchNorm?.key;
    this.entries = bn
      ? [
        [`${key}.weight`, this.weightShape],
        [`${bn}.weight`, [outChannels]],
        [`${bn}.bias`, [outChannels]],
        [`${bn}.running_mean`, [outChannels]],
        [`${bn}.running_var`, [outChannels]],
        [`${bn}.num_batches_tracked`, []],
      ]
      : [[`${key}.weight`, this.weightShape], [`${key}.bias`, [outChannels]]];
  }

  /**
   * A 1x1 convolution whose packed weights `fused` continue with other 1x1
   * convolutions of the same input: one GEMM writing its first channels to `y`
   * and the following ones to `more`, in order.
   */
  lowerFused(
    b: PlanBuilder,
    x: Value,
    y: Value,
    more: Value[],
    moreKeys: string[],
    fused: PackedRef,
  ): void {
    b.push(
      {
        kind: "conv2d",
        name: [this.key, ...more.map((m) => `+${m.c}`)].join(""),
        x: x.view,
        y: y.view,
        n: x.n,
        h: x.h,
        w: x.w,
        c: x.c,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        oh: x.h,
        ow: x.w,
        weights: fused,
        moreOutputs: more.map((m) => ({ y: m.view, channels: m.c })),
        layers: [this.key, ...moreKeys],
        winograd: null,
      },
      x,
      y,
      ...more,
    );
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
        moreOutputs: [],
        layers: [this.key],
        winograd: this.winograd,
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
  readonly entries: readonly (readonly [string, readonly number[]])[];
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
    this.entries = [[`${key}.weight`, this.weightShape], [`${key}.bias`, [outFeatures]]];
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
        layer: this.key,
      },
      x,
      y,
    );
    return y;
  }
}

/** `BasicConv2d`: conv + ReLU (seed), or conv + BatchNorm + ReLU (torchvision, folded). */
export class BasicConv2d {
  readonly conv: Conv2d;
  constructor(
    key: string,
    inChannels: number,
    outChannels: number,
    options: Conv2dOptions,
    variant: Variant,
  ) {
    const eps = variant.batchNormEps;
    this.conv = new Conv2d(`${key}.conv`, inChannels, outChannels, {
      ...options,
      batchNorm: eps === null ? undefined : { key: `${key}.bn`, eps },
    });
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
    variant: Variant,
  ) {
    const conv = (name: string, inC: number, outC: number, kernelSize: number) =>
      new BasicConv2d(`${key}.${name}`, inC, outC, {
        kernelSize,
        padding: (kernelSize - 1) / 2,
      }, variant);
    this.branch1 = conv("branch1", inChannels, ch1x1, 1);
    this.branch2 = [
      conv("branch2.0", inChannels, ch3x3red, 1),
      conv("branch2.1", ch3x3red, ch3x3, 3),
    ];
    this.branch3 = [
      conv("branch3.0", inChannels, ch5x5red, 1),
      conv("branch3.1", ch5x5red, ch5x5, variant.branch3Kernel),
    ];
    // ceil_mode changes nothing for a 3x3 stride-1 pool with padding 1; torchvision sets it.
    this.branch4 = [
      new MaxPool2d(`${key}.branch4.0`, 3, 1, 1, variant.name === "torchvision"),
      conv("branch4.1", inChannels, poolProj, 1),
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
    const [b1, r3, r5] = [this.branch1, this.branch2[0], this.branch3[0]].map((c) => c.conv);
    // The operations that read only x come first (the 1x1 convolutions, the
    // max pool), so that the plan runs them as one step and the rest as a second.
    const slots = [this.branch1, this.branch2[1], this.branch3[1], this.branch4[1]].map(slot);
    let reduced: Value[];
    if (this.fusable) {
      // The three 1x1 convolutions of x as one GEMM (their weights are packed back to back).
      const t3 = b.alloc(x.n, x.h, x.w, r3.outChannels, r3.key);
      const t5 = b.alloc(x.n, x.h, x.w, r5.outChannels, r5.key);
      b1.lowerFused(b, x, slots[0], [t3, t5], [r3.key, r5.key], {
        offset: b1.packed.offset,
        k: b1.k,
        n: b1.n + r3.n + r5.n,
      });
      reduced = [t3, t5];
    } else {
      this.branch1.lower(b, x, slots[0]);
      reduced = [this.branch2[0].lower(b, x), this.branch3[0].lower(b, x)];
    }
    const pooled = this.branch4[0].lower(b, x);
    this.branch2[1].lower(b, reduced[0], slots[1]);
    this.branch3[1].lower(b, reduced[1], slots[2]);
    this.branch4[1].lower(b, pooled, slots[3]);
    return out;
  }

  /**
   * Whether branch1, branch2.0 and branch3.0 can run as one GEMM: their packed
   * weights are adjacent (the model lays them out so) and each fills whole panels.
   */
  get fusable(): boolean {
    const [b1, r3, r5] = [this.branch1, this.branch2[0], this.branch3[0]].map((c) => c.conv);
    return [b1, r3, r5].every((c) => c.n % PANEL_WIDTH === 0) &&
      r3.packed.offset === b1.packed.offset + packedSize(b1.k, b1.n) &&
      r5.packed.offset === r3.packed.offset + packedSize(r3.k, r3.n);
  }
}

/** The auxiliary classifier used in training mode. */
export class InceptionAux {
  /** AvgPool2d(5, stride 3) in the seed variant; torchvision pools adaptively to 4x4. */
  readonly averagePool: AvgPool2d | null;
  readonly conv: BasicConv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(
    readonly key: string,
    inChannels: number,
    numClasses: number,
    readonly variant: Variant,
  ) {
    this.averagePool = variant.auxPool === "avgpool5s3"
      ? new AvgPool2d(`${key}.averagePool`, 5, 3)
      : null;
    this.conv = new BasicConv2d(`${key}.conv`, inChannels, 128, { kernelSize: 1 }, variant);
    // 2048 = 128 x 4 x 4, flattened NCHW by PyTorch and NHWC here.
    this.fc1 = new Linear(`${key}.fc1`, 2048, 1024, { c: 128, h: 4, w: 4 });
    this.fc2 = new Linear(`${key}.fc2`, 1024, numClasses);
  }

  /** Appends pool, conv, fc1 + ReLU, fc2, with the variant's dropout when asked. */
  lower(b: PlanBuilder, x: Value, dropout: boolean): Value {
    const pooled = this.averagePool
      ? this.averagePool.lower(b, x)
      : lowerAdaptiveAvgPool(b, x, 4, 4, `${this.key}.pool`);
    let v = this.conv.lower(b, pooled);
    if (v.h !== 4 || v.w !== 4) {
      throw new ShapeError(
        `${this.key} needs a 4x4 map after its average pool (a 224x224 input gives it), got ` +
          `${v.h}x${v.w}: use 224x224 inputs in training mode or create the model with auxLogits: false`,
      );
    }
    const { p, beforeFc1 } = this.variant.auxDropout;
    if (dropout && beforeFc1) pushDropout(b, v, p, `${this.key}.dropout1`);
    v = this.fc1.lower(b, v, true);
    if (dropout) pushDropout(b, v, p, `${this.key}.dropout2`);
    return this.fc2.lower(b, v);
  }
}

/** Appends an adaptive average pool to oh x ow (PyTorch's bins: floor(i*h/oh) to ceil((i+1)*h/oh)). */
export function lowerAdaptiveAvgPool(
  b: PlanBuilder,
  x: Value,
  oh: number,
  ow: number,
  name: string,
): Value {
  const y = b.alloc(x.n, oh, ow, x.c, name);
  b.push(
    {
      kind: "adaptive_avgpool2d",
      name,
      x: x.view,
      y: y.view,
      n: x.n,
      h: x.h,
      w: x.w,
      c: x.c,
      oh,
      ow,
    },
    x,
    y,
  );
  return y;
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

/** Where a layer's input-gradient weights live (packed by `packLayer` in `src/backend/repack.ts`). */
export interface TransposedRefs {
  /** The GEMM-packed transposed weights. */
  readonly packed: PackedRef;
  /** Their Winograd form, when the layer keeps one. */
  readonly winograd: WinogradRef | null;
}

/**
 * The layout of a layer's input-gradient weights starting at `offset`
 * (floats): a convolution's input gradient is a convolution of the output
 * gradient with the weights transposed (in and out swapped) and flipped, so
 * it has depth kh * kw * out and `in` columns; a linear layer's has depth out.
 *
 * @returns The references and the first float past them.
 */
export function transposedLayout(
  layer: GemmLayer,
  offset: number,
): { refs: TransposedRefs; end: number } {
  const [k, n] = layer instanceof Conv2d
    ? [layer.kernelSize * layer.kernelSize * layer.outChannels, layer.inChannels]
    : [layer.n, layer.k];
  const packed = { offset, k, n };
  let end = offset + packedSize(k, n);
  let winograd: WinogradRef | null = null;
  if (layer instanceof Conv2d && layer.winograd) {
    const variant: WinogradVariant = layer.winograd.variant;
    winograd = { offset: end, k, n, variant };
    end += winogradSize(layer.outChannels, layer.inChannels, variant);
  }
  return { refs: { packed, winograd }, end };
}

/**
 * `layer` as the backend's repack and packing need it.
 *
 * @param layer The layer (its `packed` and `winograd` refs set).
 * @param transposed Where its input-gradient weights go, or null to leave them out.
 * @returns The descriptor.
 */
export function repackLayerOf(layer: GemmLayer, transposed: TransposedRefs | null): RepackLayer {
  const conv = layer instanceof Conv2d ? layer : null;
  return {
    key: layer.key,
    k: layer.k,
    n: layer.n,
    order: layer.order,
    conv,
    packed: layer.packed,
    winograd: conv?.winograd ?? null,
    transposed,
    batchNormEps: conv?.batchNorm?.eps ?? null,
  };
}

// weight[row + sources[r]] = dw[row + r]: one packed-order row back to PyTorch's order.
function scatterRow(
  weight: Float32Array,
  dw: Float32Array,
  row: number,
  sources: Int32Array,
): void {
  for (let r = 0; r < sources.length; r++) weight[row + sources[r]] = dw[row + r];
}

/**
 * A layer's parameter gradients under its state-dict keys (PyTorch layouts),
 * from the gradients of its folded GEMM: `dW` `[n, k]` in the packed row
 * order and `db` `[n]`. A BatchNorm folded into a convolution (torchvision,
 * frozen statistics) passes them on by the chain rule: with
 * `s = gamma / sqrt(var + eps)`, `dconv = dW s`, `dgamma = (sum_k W dW -
 * mean db) / sqrt(var + eps)`, `dbeta = db`.
 *
 * @param params The layer's current parameters by key.
 */
export function layerGradients(
  layer: GemmLayer,
  dw: Float32Array,
  db: Float32Array,
  params: (key: string) => Float32Array,
): Map<string, Float32Array> {
  const { k, n } = layer;
  const weight = new Float32Array(n * k);
  const sources = rowSources(k, layer.order);
  for (let o = 0; o < n; o++) scatterRow(weight, dw, o * k, sources);
  const bn = layer instanceof Conv2d ? layer.batchNorm : null;
  if (!bn) {
    return new Map([[`${layer.key}.weight`, weight], [`${layer.key}.bias`, new Float32Array(db)]]);
  }
  const w = params(`${layer.key}.weight`);
  const gamma = params(`${bn.key}.weight`), mean = params(`${bn.key}.running_mean`);
  const variance = params(`${bn.key}.running_var`);
  const dgamma = new Float32Array(n);
  for (let o = 0; o < n; o++) {
    const inv = 1 / Math.sqrt(variance[o] + bn.eps);
    const scale = gamma[o] * inv;
    let dot = 0;
    for (let i = o * k; i < (o + 1) * k; i++) {
      dot += w[i] * weight[i];
      weight[i] *= scale;
    }
    dgamma[o] = (dot - mean[o] * db[o]) * inv;
  }
  return new Map([
    [`${layer.key}.weight`, weight],
    [`${bn.key}.weight`, dgamma],
    [`${bn.key}.bias`, new Float32Array(db)],
  ]);
}
